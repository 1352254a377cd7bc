/**
 * The one transform between image pixels and screen (CSS) pixels:
 * screen = offset + rotate(rotation) * (scale * image). Rotation is clockwise on screen.
 */
import type { Point, Rotation, ViewState } from "../types";
import type { BBox } from "./geometry";

export const MIN_SCALE = 0.01;
export const MAX_SCALE = 64;

const COS: Record<Rotation, number> = { 0: 1, 90: 0, 180: -1, 270: 0 };
const SIN: Record<Rotation, number> = { 0: 0, 90: 1, 180: 0, 270: -1 };

export function normalizeRotation(degrees: number): Rotation {
  const r = ((Math.round(degrees / 90) * 90) % 360 + 360) % 360;
  return r as Rotation;
}

export class ViewTransform {
  scale = 1;
  x = 0;
  y = 0;
  rotation: Rotation = 0;

  constructor(state?: Partial<ViewState>) {
    if (state) this.set(state);
  }

  get state(): ViewState {
    return { scale: this.scale, x: this.x, y: this.y, rotation: this.rotation };
  }

  set(state: Partial<ViewState>): void {
    if (state.scale !== undefined && Number.isFinite(state.scale)) {
      this.scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, state.scale));
    }
    if (state.x !== undefined && Number.isFinite(state.x)) this.x = state.x;
    if (state.y !== undefined && Number.isFinite(state.y)) this.y = state.y;
    if (state.rotation !== undefined) this.rotation = normalizeRotation(state.rotation);
  }

  /** [a, b, c, d, e, f] as CanvasRenderingContext2D.setTransform takes it. */
  matrix(): [number, number, number, number, number, number] {
    const c = COS[this.rotation] * this.scale;
    const s = SIN[this.rotation] * this.scale;
    return [c, s, -s, c, this.x, this.y];
  }

  toScreen(p: Point): Point {
    const c = COS[this.rotation] * this.scale;
    const s = SIN[this.rotation] * this.scale;
    return [c * p[0] - s * p[1] + this.x, s * p[0] + c * p[1] + this.y];
  }

  toImage(p: Point): Point {
    const c = COS[this.rotation];
    const s = SIN[this.rotation];
    const dx = (p[0] - this.x) / this.scale;
    const dy = (p[1] - this.y) / this.scale;
    // The inverse of a rotation is its transpose.
    return [c * dx + s * dy, -s * dx + c * dy];
  }

  /** Zoom by `factor`, keeping the image point under `screen` where it is. */
  zoomAt(screen: Point, factor: number): void {
    const anchor = this.toImage(screen);
    this.scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, this.scale * factor));
    this.pin(anchor, screen);
  }

  /** Rotate by quarter turns (clockwise when positive), keeping the image point under `screen`. */
  rotateBy(quarterTurns: number, screen: Point): void {
    const anchor = this.toImage(screen);
    this.rotation = normalizeRotation(this.rotation + 90 * quarterTurns);
    this.pin(anchor, screen);
  }

  panBy(dx: number, dy: number): void {
    this.x += dx;
    this.y += dy;
  }

  /** Move the offset so that image point `image` lands on screen point `screen`. */
  pin(image: Point, screen: Point): void {
    this.x = 0;
    this.y = 0;
    const at = this.toScreen(image);
    this.x = screen[0] - at[0];
    this.y = screen[1] - at[1];
  }

  /** Show the whole image centred in a viewport, with `margin` screen px around it. */
  fit(imageWidth: number, imageHeight: number, viewWidth: number, viewHeight: number, margin = 16): void {
    const sideways = this.rotation === 90 || this.rotation === 270;
    const w = sideways ? imageHeight : imageWidth;
    const h = sideways ? imageWidth : imageHeight;
    const availableW = Math.max(1, viewWidth - 2 * margin);
    const availableH = Math.max(1, viewHeight - 2 * margin);
    this.scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, Math.min(availableW / w, availableH / h)));
    this.pin([imageWidth / 2, imageHeight / 2], [viewWidth / 2, viewHeight / 2]);
  }

  /**
   * Zoom and centre on an image-space box (a shape), `margin` screen px around it. A box only a
   * few pixels wide is padded to `minSize` image px, so a speck does not fill the screen.
   */
  fitBox(box: BBox, viewWidth: number, viewHeight: number, margin = 48, minSize = 24): void {
    const w = Math.max(minSize, box.maxX - box.minX);
    const h = Math.max(minSize, box.maxY - box.minY);
    const sideways = this.rotation === 90 || this.rotation === 270;
    const availableW = Math.max(1, viewWidth - 2 * margin);
    const availableH = Math.max(1, viewHeight - 2 * margin);
    const scale = Math.min(availableW / (sideways ? h : w), availableH / (sideways ? w : h));
    this.scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, scale));
    this.pin([(box.minX + box.maxX) / 2, (box.minY + box.maxY) / 2], [viewWidth / 2, viewHeight / 2]);
  }

  /** The part of the image plane a viewport shows, as an image-space box (exact: rotations are right angles). */
  visibleRect(viewWidth: number, viewHeight: number): BBox {
    const corners = [
      this.toImage([0, 0]),
      this.toImage([viewWidth, 0]),
      this.toImage([0, viewHeight]),
      this.toImage([viewWidth, viewHeight]),
    ];
    return {
      minX: Math.min(...corners.map((p) => p[0])),
      minY: Math.min(...corners.map((p) => p[1])),
      maxX: Math.max(...corners.map((p) => p[0])),
      maxY: Math.max(...corners.map((p) => p[1])),
    };
  }
}
