/**
 * Shapes carried over from another image (the previous one in the project's list): a camera
 * that films the same part shows most defects where they were, so the inspector starts from the
 * last image's shapes. Images differ in size, so each shape is clipped to this image: a box to
 * its corners, a polygon by the image's edges, points outside dropped; what is left with no area
 * (or no points) is not carried. Shapes of classes this project does not have are left behind.
 */
import type { Point, ShapeJSON, ShapeType } from "../types";
import { buildPolygon } from "./geometry";

export interface Carried {
  type: ShapeType;
  points: Point[];
  label: number;
  attributes?: Record<string, string>;
}

/** Keep the part of a polygon inside one half-plane (Sutherland–Hodgman, one edge). */
function clipEdge(points: Point[], inside: (p: Point) => boolean, cross: (a: Point, b: Point) => Point): Point[] {
  const out: Point[] = [];
  points.forEach((current, i) => {
    const previous = points[(i + points.length - 1) % points.length];
    if (inside(current)) {
      if (!inside(previous)) out.push(cross(previous, current));
      out.push(current);
    } else if (inside(previous)) out.push(cross(previous, current));
  });
  return out;
}

/** The part of a polygon inside the rectangle (0, 0)–(width, height). */
export function clipPolygon(points: readonly Point[], width: number, height: number): Point[] {
  const atX = (x: number) => (a: Point, b: Point): Point => [x, a[1] + ((b[1] - a[1]) * (x - a[0])) / (b[0] - a[0])];
  const atY = (y: number) => (a: Point, b: Point): Point => [a[0] + ((b[0] - a[0]) * (y - a[1])) / (b[1] - a[1]), y];
  let out = points.map(([x, y]) => [x, y] as Point);
  out = clipEdge(out, (p) => p[0] >= 0, atX(0));
  out = clipEdge(out, (p) => p[0] <= width, atX(width));
  out = clipEdge(out, (p) => p[1] >= 0, atY(0));
  return clipEdge(out, (p) => p[1] <= height, atY(height));
}

/** One shape clipped to a width × height image, or null when nothing of it is left. */
export function clipShape(shape: ShapeJSON, width: number, height: number): Carried | null {
  const clamp = ([x, y]: Point): Point => [Math.min(width, Math.max(0, x)), Math.min(height, Math.max(0, y))];
  let points: Point[];
  if (shape.type === "box") {
    if (shape.points.length !== 2) return null;
    const [a, b] = shape.points.map(clamp);
    if (Math.abs(b[0] - a[0]) < 1 || Math.abs(b[1] - a[1]) < 1) return null;
    points = [a, b];
  } else if (shape.type === "points") {
    points = shape.points.filter(([x, y]) => x >= 0 && y >= 0 && x <= width && y <= height).map(([x, y]) => [x, y] as Point);
    if (points.length === 0) return null;
  } else {
    const built = buildPolygon(clipPolygon(shape.points, width, height));
    if (!built.ok) return null;
    points = built.points;
  }
  return { type: shape.type, points, label: shape.label, attributes: { ...(shape.attributes ?? {}) } };
}

/** The shapes to add to this image: clipped to it, and only of classes it knows. */
export function carryShapes(shapes: readonly ShapeJSON[], width: number, height: number, labels: ReadonlySet<number>): Carried[] {
  const carried: Carried[] = [];
  for (const shape of shapes) {
    if (!labels.has(shape.label)) continue;
    const clipped = clipShape(shape, width, height);
    if (clipped) carried.push(clipped);
  }
  return carried;
}
