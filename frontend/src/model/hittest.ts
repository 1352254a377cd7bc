/** Which shape or handle is under a screen point. Works in image space, so any view rotation holds. */
import type { Point } from "../types";
import type { Shape } from "./document";
import { boxHandles, containsPoint, distanceToOutline, shapeArea } from "./geometry";
import type { ViewTransform } from "./transform";

/** How near (in screen px) the pointer must be to an outline or a handle to grab it. */
export const OUTLINE_TOLERANCE = 6;
export const HANDLE_RADIUS = 8;

/**
 * The shape under image point `p`, skipping hidden and locked ones. Of several, the smallest
 * wins, so a small defect inside a large region stays clickable; equal sizes go to the topmost.
 */
export function shapeAt(shapes: readonly Shape[], p: Point, tolerance: number): Shape | null {
  let best: Shape | null = null;
  let bestArea = Infinity;
  for (let i = shapes.length - 1; i >= 0; i--) {
    const shape = shapes[i];
    if (shape.hidden || shape.locked) continue;
    const b = shape.bbox;
    if (p[0] < b.minX - tolerance || p[0] > b.maxX + tolerance || p[1] < b.minY - tolerance || p[1] > b.maxY + tolerance) {
      continue;
    }
    const hit =
      containsPoint(shape.type, shape.points, p) || distanceToOutline(shape.type, shape.points, p) <= tolerance;
    if (!hit) continue;
    const area = shapeArea(shape.type, shape.points);
    if (area < bestArea) {
      best = shape;
      bestArea = area;
    }
  }
  return best;
}

/** Where a shape's grab handles are, in image space: box corners and edge midpoints, or vertices. */
export function handlePoints(shape: Shape): Point[] {
  return shape.type === "box" ? boxHandles(shape.points) : shape.points;
}

/** Index of the handle of `shape` within HANDLE_RADIUS screen px of `screen`, or -1. */
export function handleAt(shape: Shape, screen: Point, view: ViewTransform, radius = HANDLE_RADIUS): number {
  const handles = handlePoints(shape);
  let best = -1;
  let bestDistance = radius;
  for (let i = 0; i < handles.length; i++) {
    const [sx, sy] = view.toScreen(handles[i]);
    const d = Math.hypot(sx - screen[0], sy - screen[1]);
    if (d <= bestDistance) {
      best = i;
      bestDistance = d;
    }
  }
  return best;
}

const RESIZE_CURSORS = ["nwse-resize", "ns-resize", "nesw-resize", "ew-resize"];

/** The CSS cursor for a box handle, turned with the view so the arrows match the screen. */
export function handleCursor(handle: number, rotation: number): string {
  return RESIZE_CURSORS[(handle + (rotation / 90) * 2) % 4];
}
