/** Pure geometry in image pixels: boxes, polygons, hit distances. No DOM here. */
import type { Point, ShapeType } from "../types";

export interface BBox {
  minX: number;
  minY: number;
  maxX: number;
  maxY: number;
}

export function normalizeBox(a: Point, b: Point): [Point, Point] {
  return [
    [Math.min(a[0], b[0]), Math.min(a[1], b[1])],
    [Math.max(a[0], b[0]), Math.max(a[1], b[1])],
  ];
}

export function clampPoint(p: Point, width: number, height: number): Point {
  return [Math.min(Math.max(p[0], 0), width), Math.min(Math.max(p[1], 0), height)];
}

export function bboxOf(points: readonly Point[]): BBox {
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  for (const [x, y] of points) {
    if (x < minX) minX = x;
    if (y < minY) minY = y;
    if (x > maxX) maxX = x;
    if (y > maxY) maxY = y;
  }
  return { minX, minY, maxX, maxY };
}

export function bboxIntersects(a: BBox, b: BBox): boolean {
  return a.minX <= b.maxX && b.minX <= a.maxX && a.minY <= b.maxY && b.minY <= a.maxY;
}

export function bboxArea(b: BBox): number {
  return Math.max(0, b.maxX - b.minX) * Math.max(0, b.maxY - b.minY);
}

/** Positive when the vertices run clockwise on screen (y down). */
export function signedArea(points: readonly Point[]): number {
  let sum = 0;
  const n = points.length;
  if (n < 3) return 0;
  // Relative to the first vertex: keeps precision for small polygons far from the origin.
  const [ox, oy] = points[0];
  for (let i = 0; i < n; i++) {
    const [ax, ay] = points[i];
    const [bx, by] = points[(i + 1) % n];
    sum += (ax - ox) * (by - oy) - (bx - ox) * (ay - oy);
  }
  return sum / 2;
}

export function shapeArea(type: ShapeType, points: readonly Point[]): number {
  if (type === "box") return bboxArea(bboxOf(points));
  if (type === "polygon") return Math.abs(signedArea(points));
  return 0;
}

export function pointInPolygon(p: Point, points: readonly Point[]): boolean {
  let inside = false;
  const [px, py] = p;
  for (let i = 0, j = points.length - 1; i < points.length; j = i++) {
    const [xi, yi] = points[i];
    const [xj, yj] = points[j];
    if (yi > py !== yj > py && px < ((xj - xi) * (py - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

export function distanceToSegment(p: Point, a: Point, b: Point): number {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const len2 = dx * dx + dy * dy;
  let t = len2 === 0 ? 0 : ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2;
  t = Math.max(0, Math.min(1, t));
  return Math.hypot(p[0] - (a[0] + t * dx), p[1] - (a[1] + t * dy));
}

function orientation(a: Point, b: Point, c: Point): number {
  return Math.sign((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]));
}

function onSegment(a: Point, b: Point, p: Point): boolean {
  return (
    Math.min(a[0], b[0]) <= p[0] &&
    p[0] <= Math.max(a[0], b[0]) &&
    Math.min(a[1], b[1]) <= p[1] &&
    p[1] <= Math.max(a[1], b[1])
  );
}

/** Whether segments ab and cd share any point (touching counts, as on the server). */
export function segmentsIntersect(a: Point, b: Point, c: Point, d: Point): boolean {
  const o1 = orientation(a, b, c);
  const o2 = orientation(a, b, d);
  const o3 = orientation(c, d, a);
  const o4 = orientation(c, d, b);
  if (o1 * o2 < 0 && o3 * o4 < 0) return true;
  return (
    (o1 === 0 && onSegment(a, b, c)) ||
    (o2 === 0 && onSegment(a, b, d)) ||
    (o3 === 0 && onSegment(c, d, a)) ||
    (o4 === 0 && onSegment(c, d, b))
  );
}

/** Whether two non-adjacent edges of the closed ring meet (the server refuses such outlines). */
export function polygonSelfIntersects(points: readonly Point[]): boolean {
  const n = points.length;
  if (n < 4) return false;
  for (let i = 0; i < n; i++) {
    const a = points[i];
    const b = points[(i + 1) % n];
    for (let j = i + 2; j < n; j++) {
      if (i === 0 && j === n - 1) continue; // adjacent through the closing edge
      if (segmentsIntersect(a, b, points[j], points[(j + 1) % n])) return true;
    }
  }
  return false;
}

export type PolygonProblem = "tooFew" | "noArea" | "crosses";
export type PolygonResult = { ok: true; points: Point[] } | { ok: false; problem: PolygonProblem };

/** Turn clicked vertices into a polygon the server accepts, or say what is wrong with them. */
export function buildPolygon(vertices: readonly Point[]): PolygonResult {
  const points: Point[] = [];
  for (const v of vertices) {
    const last = points[points.length - 1];
    if (!last || last[0] !== v[0] || last[1] !== v[1]) points.push([v[0], v[1]]);
  }
  while (points.length > 1) {
    const first = points[0];
    const last = points[points.length - 1];
    if (first[0] !== last[0] || first[1] !== last[1]) break;
    points.pop();
  }
  if (points.length < 3) return { ok: false, problem: "tooFew" };
  if (polygonSelfIntersects(points)) return { ok: false, problem: "crosses" };
  if (Math.abs(signedArea(points)) < 1e-6) return { ok: false, problem: "noArea" };
  return { ok: true, points };
}

/** Distance from p to the shape's outline (box edges, polygon ring, nearest point). */
export function distanceToOutline(type: ShapeType, points: readonly Point[], p: Point): number {
  if (type === "box") {
    const [[x1, y1], [x2, y2]] = points;
    const ring: Point[] = [
      [x1, y1],
      [x2, y1],
      [x2, y2],
      [x1, y2],
    ];
    return distanceToRing(ring, p);
  }
  if (type === "polygon") return distanceToRing(points, p);
  let best = Infinity;
  for (const q of points) best = Math.min(best, Math.hypot(q[0] - p[0], q[1] - p[1]));
  return best;
}

function distanceToRing(ring: readonly Point[], p: Point): number {
  let best = Infinity;
  for (let i = 0; i < ring.length; i++) {
    best = Math.min(best, distanceToSegment(p, ring[i], ring[(i + 1) % ring.length]));
  }
  return best;
}

export function containsPoint(type: ShapeType, points: readonly Point[], p: Point): boolean {
  if (type === "box") {
    const [[x1, y1], [x2, y2]] = points;
    return p[0] >= x1 && p[0] <= x2 && p[1] >= y1 && p[1] <= y2;
  }
  if (type === "polygon") return pointInPolygon(p, points);
  return false;
}

export function translatePoints(points: readonly Point[], dx: number, dy: number): Point[] {
  return points.map(([x, y]) => [x + dx, y + dy] as Point);
}

/** The largest part of (dx, dy) that keeps a shape with this bbox inside the image. */
export function clampTranslation(b: BBox, dx: number, dy: number, width: number, height: number): Point {
  const cx = Math.min(Math.max(dx, -b.minX), width - b.maxX);
  const cy = Math.min(Math.max(dy, -b.minY), height - b.maxY);
  // A shape already sticking out (an imported prediction) may still move, just not further out.
  return [b.minX < 0 || b.maxX > width ? dx : cx, b.minY < 0 || b.maxY > height ? dy : cy];
}

/**
 * The eight resize handles of a box, clockwise from the top-left corner in image space:
 * 0 top-left, 1 top, 2 top-right, 3 right, 4 bottom-right, 5 bottom, 6 bottom-left, 7 left.
 */
export function boxHandles(points: readonly Point[]): Point[] {
  const [[x1, y1], [x2, y2]] = points;
  const mx = (x1 + x2) / 2;
  const my = (y1 + y2) / 2;
  return [
    [x1, y1],
    [mx, y1],
    [x2, y1],
    [x2, my],
    [x2, y2],
    [mx, y2],
    [x1, y2],
    [x1, my],
  ];
}

/** The box after dragging handle `handle` to p; dragging past the opposite side flips it. */
export function resizeBox(points: readonly Point[], handle: number, p: Point): [Point, Point] {
  let [[x1, y1], [x2, y2]] = points;
  if (handle === 0 || handle === 6 || handle === 7) x1 = p[0];
  if (handle === 2 || handle === 3 || handle === 4) x2 = p[0];
  if (handle === 0 || handle === 1 || handle === 2) y1 = p[1];
  if (handle === 4 || handle === 5 || handle === 6) y2 = p[1];
  return normalizeBox([x1, y1], [x2, y2]);
}

export function pointsEqual(a: readonly Point[], b: readonly Point[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i][0] !== b[i][0] || a[i][1] !== b[i][1]) return false;
  return true;
}

/** Coordinates rounded to 1/100 px: what is sent to the server and kept in drafts. */
export function roundPoint(p: Point): Point {
  return [Math.round(p[0] * 100) / 100, Math.round(p[1] * 100) / 100];
}
