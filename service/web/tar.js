// A POSIX ustar archive of in-memory files, for "Download all": each entry
// is a 512-byte header and the data padded to 512 bytes; two zero blocks
// end the archive. Names are made ASCII, at most 100 bytes, and unique.

export function makeTar(files) {
  const parts = [];
  const used = new Set();
  const now = Math.floor(Date.now() / 1000);
  for (const { name, bytes } of files) {
    const unique = uniqueName(safeName(name), used);
    parts.push(header(unique, bytes.length, now), bytes, new Uint8Array(padding(bytes.length)));
  }
  parts.push(new Uint8Array(1024));
  return new Blob(parts, { type: "application/x-tar" });
}

function safeName(name) {
  const s = (name || "image").replace(/[^A-Za-z0-9._-]/g, "_").replace(/^\.+/, "");
  return s.slice(-90) || "image";
}

function uniqueName(name, used) {
  let candidate = name;
  for (let n = 2; used.has(candidate); n++) {
    const dot = name.lastIndexOf(".");
    candidate = dot > 0 ? `${name.slice(0, dot)}-${n}${name.slice(dot)}` : `${name}-${n}`;
  }
  used.add(candidate);
  return candidate;
}

function padding(size) {
  return (512 - (size % 512)) % 512;
}

function header(name, size, mtime) {
  const h = new Uint8Array(512);
  const put = (offset, length, text) => {
    for (let i = 0; i < Math.min(length, text.length); i++) h[offset + i] = text.charCodeAt(i);
  };
  const octal = (value, length) => value.toString(8).padStart(length - 1, "0");
  put(0, 100, name);
  put(100, 8, "0000644");
  put(108, 8, "0000000");
  put(116, 8, "0000000");
  put(124, 12, octal(size, 12));
  put(136, 12, octal(mtime, 12));
  put(148, 8, "        ");  // checksum counted as spaces
  put(156, 1, "0");         // a regular file
  put(257, 6, "ustar");
  put(263, 2, "00");
  put(265, 32, "pixpool");
  put(297, 32, "pixpool");
  const sum = h.reduce((a, b) => a + b, 0);
  put(148, 8, `${octal(sum, 7)}\0 `);
  return h;
}
