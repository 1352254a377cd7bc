// Deterministic synthetic shapes for the dev harness, the smoke check and the benchmark.
// Plain JavaScript so both the browser harness (through Vite) and Node scripts can import it.

/** mulberry32: a small seeded PRNG, so every run draws the same shapes. */
export function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEVERITY = ["minor", "major", "critical"];

/**
 * `count` shapes spread over a width x height image: about 70% boxes, 25% polygons, 5% points.
 * Labels cycle through `labels` (LabelDef[]); attributes get valid options.
 */
export function makeShapes(count, width, height, labels, seed = 1, options = {}) {
  const rnd = random(seed);
  const shapes = [];
  const maxSize = options.maxSize ?? Math.max(40, Math.min(width, height) / 12);
  for (let i = 0; i < count; i++) {
    const label = labels[Math.floor(rnd() * labels.length)];
    const attributes = {};
    for (const def of label.attributes) attributes[def.name] = def.options[Math.floor(rnd() * def.options.length)];
    const w = 12 + rnd() * maxSize;
    const h = 12 + rnd() * maxSize;
    const x = rnd() * (width - w);
    const y = rnd() * (height - h);
    const kind = rnd();
    let shape;
    if (options.polygonsOnly ? false : kind < 0.7 || options.boxesOnly) {
      shape = { type: "box", points: [[r2(x), r2(y)], [r2(x + w), r2(y + h)]], label: label.id, attributes };
    } else if (kind < 0.95 || options.polygonsOnly) {
      // A star-free polygon: vertices at increasing angles around a centre, never self-crossing.
      const n = 5 + Math.floor(rnd() * 6);
      const cx = x + w / 2;
      const cy = y + h / 2;
      const points = [];
      for (let k = 0; k < n; k++) {
        const angle = (k / n) * Math.PI * 2;
        const radius = 0.6 + 0.4 * rnd();
        points.push([r2(cx + Math.cos(angle) * radius * w / 2), r2(cy + Math.sin(angle) * radius * h / 2)]);
      }
      shape = { type: "polygon", points, label: label.id, attributes };
    } else {
      const points = [];
      for (let k = 0; k < 3; k++) points.push([r2(x + rnd() * w), r2(y + rnd() * h)]);
      shape = { type: "points", points, label: label.id, attributes };
    }
    if (options.scores) shape.score = Math.round((0.3 + 0.7 * rnd()) * 100) / 100;
    shapes.push(shape);
  }
  return shapes;
}

function r2(v) {
  return Math.round(v * 100) / 100;
}

export { SEVERITY };
