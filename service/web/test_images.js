// Test images drawn in the browser (gradients, shapes, text), encoded as
// JPEG q90: a race needs no files of the user's. Deterministic per index.

export async function generateTestImages(count, width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  const images = [];
  for (let i = 0; i < count; i++) {
    draw(ctx, width, height, i);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
    images.push({ name: `generated-${i + 1}.jpg`, blob });
  }
  return images;
}

function draw(ctx, w, h, seed) {
  let state = 0x9e3779b9 ^ (seed * 2654435761);
  const random = () => {  // xorshift32: the same picture every time
    state ^= state << 13; state ^= state >>> 17; state ^= state << 5;
    return ((state >>> 0) % 10000) / 10000;
  };
  const sky = ctx.createLinearGradient(0, 0, w, h);
  sky.addColorStop(0, `hsl(${seed * 57 % 360}, 60%, 70%)`);
  sky.addColorStop(1, `hsl(${(seed * 57 + 140) % 360}, 50%, 30%)`);
  ctx.fillStyle = sky;
  ctx.fillRect(0, 0, w, h);
  for (let k = 0; k < 60; k++) {
    ctx.fillStyle = `hsla(${Math.floor(random() * 360)}, 70%, ${30 + random() * 50}%, 0.7)`;
    ctx.beginPath();
    if (k % 2) ctx.arc(random() * w, random() * h, 10 + random() * 120, 0, 2 * Math.PI);
    else ctx.rect(random() * w, random() * h, 20 + random() * 200, 20 + random() * 200);
    ctx.fill();
  }
  ctx.fillStyle = "rgba(255,255,255,0.85)";
  ctx.font = `bold ${Math.round(h / 8)}px sans-serif`;
  ctx.fillText(`pixpool #${seed + 1}`, w * 0.05, h * 0.9);
}
