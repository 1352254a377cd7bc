// A synthetic "dark industrial" test image as an 8-bit greyscale PNG, written with Node's zlib only.
import { deflateSync } from "node:zlib";
import { random } from "./synthetic-shapes.mjs";

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(buffers) {
  let c = 0xffffffff;
  for (const buf of buffers) for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const name = Buffer.from(type, "ascii");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32([name, data]));
  return Buffer.concat([length, name, data, crc]);
}

/** A brushed-metal looking dark image with a few bright scratches and dark pits. */
export function syntheticPng(width, height, seed = 7) {
  const rnd = random(seed);
  const rows = Buffer.alloc((width + 1) * height);
  const streaks = new Float32Array(height);
  for (let y = 0; y < height; y++) streaks[y] = (rnd() - 0.5) * 10;
  const pits = Array.from({ length: 40 }, () => [rnd() * width, rnd() * height, 4 + rnd() * 30]);
  const scratches = Array.from({ length: 25 }, () => {
    const x = rnd() * width;
    const y = rnd() * height;
    const angle = rnd() * Math.PI;
    return { x, y, dx: Math.cos(angle), dy: Math.sin(angle), length: 80 + rnd() * 600 };
  });
  for (let y = 0; y < height; y++) {
    const offset = y * (width + 1);
    rows[offset] = 0; // filter: none
    for (let x = 0; x < width; x++) {
      const vignette = 1 - 0.45 * (((x - width / 2) / width) ** 2 + ((y - height / 2) / height) ** 2) * 2;
      const v = 38 + 22 * vignette + streaks[y] + ((x * 7 + y * 13) % 9) - 4;
      rows[offset + 1 + x] = Math.max(0, Math.min(255, v));
    }
  }
  const put = (x, y, value) => {
    if (x < 0 || y < 0 || x >= width || y >= height) return;
    rows[y * (width + 1) + 1 + x] = value;
  };
  for (const s of scratches) {
    for (let t = 0; t < s.length; t++) {
      const x = Math.round(s.x + s.dx * t);
      const y = Math.round(s.y + s.dy * t);
      put(x, y, 200);
      put(x + 1, y, 150);
    }
  }
  for (const [cx, cy, r] of pits) {
    for (let y = Math.floor(cy - r); y <= cy + r; y++) {
      for (let x = Math.floor(cx - r); x <= cx + r; x++) {
        const d = Math.hypot(x - cx, y - cy) / r;
        if (d <= 1) put(x, y, 12 + 20 * d);
      }
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 0; // greyscale
  header[10] = 0;
  header[11] = 0;
  header[12] = 0;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(rows, { level: 3 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}
