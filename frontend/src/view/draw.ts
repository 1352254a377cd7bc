/** Small drawing helpers shared by the canvas layers; pure functions of their arguments. */
import type { AnnotationDocument, Shape } from "../model/document";
import type { ViewTransform } from "../model/transform";
import type { Point } from "../types";

const FALLBACK_COLOR = "#9e9e9e";
export const CAPTION_FONT = "600 12px system-ui, 'Noto Sans CJK SC', 'Microsoft YaHei', sans-serif";

export function safeColor(color: string | undefined): string {
  return color && /^#[0-9a-fA-F]{3,8}$/.test(color) ? color : FALLBACK_COLOR;
}

/** A rectangle's outline `width` device px wide, centred on its edges, as four filled bands. */
export function outline(ctx: CanvasRenderingContext2D, x: number, y: number, w: number, h: number, width: number): void {
  const half = Math.floor(width / 2);
  const left = x - half;
  const top = y - half;
  ctx.fillRect(left, top, w + width, width);
  ctx.fillRect(left, top + h, w + width, width);
  if (h > width) {
    ctx.fillRect(left, top + width, width, h - width);
    ctx.fillRect(left + w, top + width, width, h - width);
  }
}

/** Add a shape's outline to the current path; vertices closer than `minStep` to the last one drawn are skipped. */
export function tracePath(ctx: CanvasRenderingContext2D, shape: Shape, minStep = 0): void {
  const points = shape.points;
  if (shape.type === "box") {
    const [[x1, y1], [x2, y2]] = points;
    ctx.rect(x1, y1, x2 - x1, y2 - y1);
    return;
  }
  let [lx, ly] = points[0];
  ctx.moveTo(lx, ly);
  // A model's polygon can have hundreds of vertices: at low zoom most fall on the same pixel.
  for (let i = 1; i < points.length; i++) {
    const [x, y] = points[i];
    if (Math.abs(x - lx) < minStep && Math.abs(y - ly) < minStep) continue;
    ctx.lineTo(x, y);
    lx = x;
    ly = y;
  }
  ctx.closePath();
}

export function tracePoints(ctx: CanvasRenderingContext2D, points: readonly Point[], r: number): void {
  for (const [x, y] of points) ctx.rect(x - r, y - r, 2 * r, 2 * r);
}

/** Black or white, whichever reads better on `color`. */
export function contrastText(color: string): string {
  const hex = safeColor(color).slice(1);
  const full = hex.length === 3 ? hex.replace(/./g, (c) => c + c) : hex.slice(0, 6);
  const [r, g, b] = [0, 2, 4].map((i) => parseInt(full.slice(i, i + 2), 16) / 255);
  const luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  return luminance > 0.55 ? "#000" : "#fff";
}

/** The caption tag's height, in screen px. */
export const CAPTION_HEIGHT = 17;

/**
 * Where a caption's bottom edge goes: just above the shape's top (`shapeTop`), unless that would
 * put it above `limit` (the image's top edge on screen, or the view's): then inside the shape,
 * under its top edge (or under the limit when the shape's top is beyond it), so it is never clipped.
 */
export function captionBottom(shapeTop: number, limit: number): number {
  if (shapeTop - CAPTION_HEIGHT >= limit) return shapeTop;
  return Math.max(shapeTop, limit) + CAPTION_HEIGHT;
}

/** The topmost screen y of the image (any rotation), or of the view when that is lower. */
export function captionLimit(view: ViewTransform, width: number, height: number): number {
  const corners = [view.toScreen([0, 0]), view.toScreen([width, 0]), view.toScreen([0, height]), view.toScreen([width, height])];
  return Math.max(0, Math.min(...corners.map((p) => p[1])));
}

/**
 * A shape's number (as the shape list shows it), class name and score in a tag at its top-left
 * corner, in screen space.
 */
export function drawCaption(
ctx: CanvasRenderingContext2D,
view: ViewTransform,
doc: AnnotationDocument,
shape: Shape,
color: string,
strong: boolean,
number: number,
limit: number,
): void {
  const b = shape.bbox;
  const corners = [view.toScreen([b.minX, b.minY]), view.toScreen([b.maxX, b.maxY])];
  const x = Math.min(corners[0][0], corners[1][0]);
  const y = Math.min(corners[0][1], corners[1][1]);
  const w = Math.abs(corners[0][0] - corners[1][0]);
  // A shape too narrow for a caption gets none (selecting it shows one): with many small shapes
  // on screen every extra text costs frame time.
  if (!strong && w < 24) return;
  let text = `${number > 0 ? `#${number} ` : ""}${doc.label(shape.label)?.name ?? `#${shape.label}`}`;
  if (shape.score !== undefined) text += ` ${shape.score.toFixed(2)}`;
  const tw = ctx.measureText(text).width + 8;
  const ty = captionBottom(y, limit);
  ctx.globalAlpha = strong ? 1 : 0.85;
  ctx.fillStyle = color;
  ctx.fillRect(x, ty - CAPTION_HEIGHT, tw, CAPTION_HEIGHT);
  ctx.globalAlpha = 1;
  ctx.fillStyle = contrastText(color);
  ctx.fillText(text, x + 4, ty - 2);
}
