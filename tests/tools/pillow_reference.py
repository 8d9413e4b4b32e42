#!/usr/bin/python3
"""Reference output for pixpool's default chain, made by Pillow itself:
GaussianBlur(radius=5) then ImageFilter.CONTOUR, as in the classic recipe.

Usage: pillow_reference.py INPUT OUTPUT [SIGMA]
INPUT is read with Pillow (PNG recommended, so both sides see the same
pixels); OUTPUT is written as PNG in the same mode (L or RGB)."""
import sys

from PIL import Image, ImageFilter


def main() -> int:
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    sigma = float(sys.argv[3]) if len(sys.argv) == 4 else 5.0
    image = Image.open(sys.argv[1])
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    out = image.filter(ImageFilter.GaussianBlur(radius=sigma)).filter(ImageFilter.CONTOUR)
    out.save(sys.argv[2], format="PNG")
    return 0


if __name__ == "__main__":
    sys.exit(main())
