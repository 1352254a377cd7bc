/**
 * Draws the image and every shape on canvases: one for the image, one for all shapes that are
 * not being touched, one overlay for the selected / hovered shape and the drawing in progress.
 * A pointer move only redraws the overlay. The image and shape layers are larger than the view
 * by a margin, so a pan within it only moves them (a CSS transform) instead of redrawing; a zoom
 * redraws them, once per frame.
 */
import { type AnnotationDocument, type Shape, shapeNumbers } from "../model/document";
import { bboxIntersects } from "../model/geometry";
import { CAPTION_FONT, captionLimit, drawCaption, outline, safeColor, tracePath, tracePoints } from "./draw";
import { OverlayPainter } from "./overlay";
import type { ModeMachine } from "../model/modes";
import type { ViewTransform } from "../model/transform";
import type { BBox } from "../model/geometry";
import type { FrameStats, Point, ViewState } from "../types";

export type Layer = "image" | "shapes" | "overlay";
type Retained = "image" | "shapes";

/** What a retained layer holds: drawn for this view, covering `margin` CSS px around the viewport. */
interface Drawn {
  view: ViewState;
  margin: number;
}

interface ImageLevel {
  source: CanvasImageSource;
  /** Level pixels per image pixel, about 1, 1/2, 1/4, ... */
  scale: number;
}

interface Group {
  color: string;
  boxes: Shape[];
  filled: Shape[];
  proposals: Shape[];
  points: Shape[];
}

const FILL_ALPHA = 0.14;
const PROPOSAL_FILL_ALPHA = 0.06;
/** Review's reference layer of proposals: faded, so the submitted shapes stand out. */
const REFERENCE_ALPHA = 0.45;
const CAPTION_LIMIT = 150;
const HALO_LIMIT = 300;
const SETTLE_MS = 150;
/** How long a shape whose class changed stays highlighted. */
const FLASH_MS = 900;
/** Screen px below which consecutive polygon vertices merge while drawing. */
const SIMPLIFY_PX = 1;

type Quality = "full" | "crowded" | "moving";
const HALO = "rgba(0,0,0,0.55)";
const SMALLEST_LEVEL = 512;


export interface Pointer {
  /** Last pointer position over the canvas, in screen px; null when it left. */
  screen: Point | null;
  hoverUid: number | null;
  hoverHandle: number;
}

export class Renderer {
  readonly stage: HTMLElement;
  readonly pointer: Pointer = { screen: null, hoverUid: null, hoverHandle: -1 };
  width = 0;
  height = 0;
  /** Shapes drawn in the last frame (after culling). */
  visibleCount = 0;

  private readonly canvases: Record<Layer, HTMLCanvasElement>;
  private readonly contexts: Partial<Record<Layer, CanvasRenderingContext2D>> = {};
  private readonly dirty: Record<Layer, boolean> = { image: true, shapes: true, overlay: true };
  private readonly groups = new Map<string, Group>();
  private readonly rects: number[] = [];
  private levels: ImageLevel[] = [];
  private dpr = 1;
  private frameHandle = 0;
  private stats: FrameStats = { frames: 0, maxMs: 0, totalMs: 0 };
  private destroyed = false;
  /** When the view last moved; while it moves, crowded scenes draw a cheaper outline. */
  private lastMotion = -Infinity;
  private moved = false;
  private readonly drawn: Record<Retained, Drawn | null> = { image: null, shapes: null };
  /** Scale and rotation of the previous frame: unchanged means a pan, worth a margin. */
  private previous: ViewState | null = null;
  /** CSS px the retained layers reach beyond each side of the view. */
  private margin = 0;
  private settleTimer: ReturnType<typeof setTimeout> | null = null;
  private flashTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly overlay: OverlayPainter;

  constructor(
    stage: HTMLElement,
    private readonly doc: AnnotationDocument,
    private readonly view: ViewTransform,
    private readonly modes: ModeMachine,
    private readonly imageSize: { width: number; height: number },
  ) {
    this.stage = stage;
    const make = (layer: Layer) => {
      const canvas = document.createElement("canvas");
      canvas.className = `dl-layer dl-layer-${layer}`;
      stage.appendChild(canvas);
      let context: CanvasRenderingContext2D | null = null;
      try {
        context = canvas.getContext("2d", { alpha: true, desynchronized: false });
      } catch {
        context = null; // no canvas support (a DOM test environment): nothing is drawn
      }
      if (context) this.contexts[layer] = context;
      return canvas;
    };
    this.canvases = { image: make("image"), shapes: make("shapes"), overlay: make("overlay") };
    this.overlay = new OverlayPainter(doc, view, modes, this.pointer);
  }

  /** The canvas that receives pointer events (the top one). */
  get eventTarget(): HTMLCanvasElement {
    return this.canvases.overlay;
  }

  get imageCanvas(): HTMLCanvasElement {
    return this.canvases.image;
  }

  /** Use a decoded image; smaller copies for zoomed-out views are made in the background. */
  setImage(image: CanvasImageSource & { width: number; height: number }): void {
    this.levels = [{ source: image, scale: image.width / this.imageSize.width }];
    this.invalidate("image");
    void this.buildLevels(image);
  }

  private async buildLevels(image: CanvasImageSource & { width: number; height: number }): Promise<void> {
    if (typeof createImageBitmap !== "function") return;
    const levels: ImageLevel[] = [];
    let { width, height } = image;
    try {
      // Full resolution as a bitmap too: decoded once, never re-decoded in the middle of a zoom.
      levels.push({ source: await createImageBitmap(image), scale: width / this.imageSize.width });
      while (Math.max(width, height) > SMALLEST_LEVEL) {
        width = Math.max(1, Math.round(width / 2));
        height = Math.max(1, Math.round(height / 2));
        const bitmap = await createImageBitmap(image, {
          resizeWidth: width,
          resizeHeight: height,
          resizeQuality: "high",
        });
        levels.push({ source: bitmap, scale: width / this.imageSize.width });
      }
    } catch {
      return; // full resolution alone still works, only slower when zoomed out
    }
    if (this.destroyed) return;
    this.levels = levels;
    this.invalidate("image");
  }

  resize(width: number, height: number): void {
    const dpr = Math.max(1, Math.min(3, globalThis.devicePixelRatio || 1));
    if (width === this.width && height === this.height && dpr === this.dpr) return;
    this.width = width;
    this.height = height;
    this.dpr = dpr;
    // A quarter of the view on each side (less on dense screens, to bound memory).
    this.margin = Math.round(Math.min(320, Math.max(width, height) / 4) / Math.min(dpr, 2));
    for (const [layer, canvas] of Object.entries(this.canvases)) {
      const m = layer === "overlay" ? 0 : this.margin;
      canvas.width = Math.max(1, Math.round((width + 2 * m) * dpr));
      canvas.height = Math.max(1, Math.round((height + 2 * m) * dpr));
      canvas.style.width = `${width + 2 * m}px`;
      canvas.style.height = `${height + 2 * m}px`;
      canvas.style.left = `${-m}px`;
      canvas.style.top = `${-m}px`;
      canvas.style.transform = "";
    }
    this.drawn.image = this.drawn.shapes = null;
    this.invalidate("image", "shapes", "overlay");
  }

  setFilter(brightness: number, contrast: number): void {
    const neutral = brightness === 100 && contrast === 100;
    this.canvases.image.style.filter = neutral ? "" : `brightness(${brightness}%) contrast(${contrast}%)`;
  }

  /** Highlight a shape for a moment (its class just changed), so the change does not go unseen. */
  flash(uid: number): void {
    if (this.flashTimer) clearTimeout(this.flashTimer);
    this.overlay.flashUid = uid;
    this.invalidate("overlay");
    this.flashTimer = setTimeout(() => {
      this.flashTimer = null;
      this.overlay.flashUid = null;
      this.invalidate("overlay");
    }, FLASH_MS);
  }

  /** The view moved: reposition or redraw the retained layers, redraw the overlay. */
  viewMoved(): void {
    this.moved = true;
    this.lastMotion = performance.now();
    this.invalidate("overlay");
  }

  invalidate(...layers: Layer[]): void {
    for (const layer of layers) this.dirty[layer] = true;
    if (this.frameHandle || this.destroyed) return;
    if (typeof requestAnimationFrame !== "function") return;
    this.frameHandle = requestAnimationFrame(() => {
      this.frameHandle = 0;
      this.render();
    });
  }

  frameStats(): FrameStats {
    return { ...this.stats };
  }

  resetFrameStats(): void {
    this.stats = { frames: 0, maxMs: 0, totalMs: 0 };
  }

  /** Draw every dirty layer now. */
  render(): void {
    const started = performance.now();
    const view = this.view.state;
    const panning = this.previous !== null && this.previous.scale === view.scale && this.previous.rotation === view.rotation;
    for (const layer of ["image", "shapes"] as const) {
      if (!this.dirty[layer] && this.moved && !this.shift(layer, view)) this.dirty[layer] = true;
      if (!this.dirty[layer]) continue;
      // While zooming every frame redraws anyway: draw just the view. When panning, draw the margin too.
      const margin = panning ? this.margin : 0;
      if (layer === "image") this.drawImage(margin);
      else this.drawShapes(margin);
      this.drawn[layer] = { view, margin };
      this.canvases[layer].style.transform = "";
    }
    if (this.dirty.overlay) this.drawOverlay();
    this.dirty.image = this.dirty.shapes = this.dirty.overlay = false;
    this.moved = false;
    this.previous = view;
    const elapsed = performance.now() - started;
    this.stats.frames++;
    this.stats.totalMs += elapsed;
    if (elapsed > this.stats.maxMs) this.stats.maxMs = elapsed;
  }

  /** Move a retained layer instead of redrawing it, when what it holds still covers the view. */
  private shift(layer: Retained, view: ViewState): boolean {
    const drawn = this.drawn[layer];
    if (!drawn || drawn.view.scale !== view.scale || drawn.view.rotation !== view.rotation) return false;
    const dx = view.x - drawn.view.x;
    const dy = view.y - drawn.view.y;
    if (Math.abs(dx) > drawn.margin || Math.abs(dy) > drawn.margin) return false;
    this.canvases[layer].style.transform = dx || dy ? `translate(${dx}px, ${dy}px)` : "";
    // A shift by a fraction of a device pixel blurs a little: redraw crisply once the view rests.
    if (!Number.isInteger(dx * this.dpr) || !Number.isInteger(dy * this.dpr)) this.scheduleSettle();
    return true;
  }

  destroy(): void {
    this.destroyed = true;
    if (this.settleTimer !== null) clearTimeout(this.settleTimer);
    if (this.flashTimer !== null) clearTimeout(this.flashTimer);
    if (this.frameHandle) cancelAnimationFrame(this.frameHandle);
    for (const level of this.levels) {
      if (typeof ImageBitmap !== "undefined" && level.source instanceof ImageBitmap) level.source.close();
    }
    for (const canvas of Object.values(this.canvases)) canvas.remove();
  }

  // ---- layers ---------------------------------------------------------------------------------

  private begin(layer: Layer): CanvasRenderingContext2D | null {
    const ctx = this.contexts[layer];
    if (!ctx) return null;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvases[layer].width, this.canvases[layer].height);
    return ctx;
  }

  /** Image-to-canvas transform; `offset` is where the view's top-left is in the canvas (the layer margin). */
  private applyView(ctx: CanvasRenderingContext2D, offset = 0): void {
    const [a, b, c, d, e, f] = this.view.matrix();
    const r = this.dpr;
    ctx.setTransform(a * r, b * r, c * r, d * r, (e + offset) * r, (f + offset) * r);
  }

  /** The image-space box seen through the view widened by `margin` screen px on every side. */
  private coverage(margin: number): BBox {
    const corners: Point[] = [
      this.view.toImage([-margin, -margin]),
      this.view.toImage([this.width + margin, -margin]),
      this.view.toImage([-margin, this.height + margin]),
      this.view.toImage([this.width + margin, this.height + margin]),
    ];
    return {
      minX: Math.min(corners[0][0], corners[1][0], corners[2][0], corners[3][0]),
      minY: Math.min(corners[0][1], corners[1][1], corners[2][1], corners[3][1]),
      maxX: Math.max(corners[0][0], corners[1][0], corners[2][0], corners[3][0]),
      maxY: Math.max(corners[0][1], corners[1][1], corners[2][1], corners[3][1]),
    };
  }

  private drawImage(margin: number): void {
    const ctx = this.begin("image");
    if (!ctx) return;
    const { width, height } = this.imageSize;
    this.applyView(ctx, this.margin);
    const level = this.levels.length ? this.pickLevel() : null;
    if (!level) {
      ctx.fillStyle = "#2a2d33";
      ctx.fillRect(0, 0, width, height);
      return;
    }
    const visible = this.coverage(margin);
    const minX = Math.max(0, visible.minX);
    const minY = Math.max(0, visible.minY);
    const maxX = Math.min(width, visible.maxX);
    const maxY = Math.min(height, visible.maxY);
    if (maxX <= minX || maxY <= minY) return;
    // Only the visible part of the right-sized copy is drawn: the cost follows the screen, not the image.
    const sourceW = (level.source as { width: number }).width;
    const sourceH = (level.source as { height: number }).height;
    const lx = sourceW / width;
    const ly = sourceH / height;
    const sx = Math.max(0, Math.floor(minX * lx));
    const sy = Math.max(0, Math.floor(minY * ly));
    const sw = Math.min(sourceW, Math.ceil(maxX * lx)) - sx;
    const sh = Math.min(sourceH, Math.ceil(maxY * ly)) - sy;
    if (sw <= 0 || sh <= 0) return;
    // Past 2 screen px per image px, show real pixels: inspectors zoom in to judge single pixels.
    ctx.imageSmoothingEnabled = this.view.scale * this.dpr < 2;
    ctx.imageSmoothingQuality = "low";
    ctx.drawImage(level.source, sx, sy, sw, sh, sx / lx, sy / ly, sw / lx, sh / ly);
  }

  private pickLevel(): ImageLevel {
    const devicePxPerImagePx = this.view.scale * this.dpr;
    let chosen = this.levels[0];
    for (const level of this.levels) {
      if (level.scale >= devicePxPerImagePx) chosen = level;
    }
    return chosen;
  }

  private drawShapes(margin: number): void {
    const ctx = this.begin("shapes");
    if (!ctx) return;
    const scale = this.view.scale;
    const visible = this.coverage(margin + 4);
    for (const group of this.groups.values()) {
      group.boxes.length = 0;
      group.filled.length = 0;
      group.proposals.length = 0;
      group.points.length = 0;
    }
    const skip = this.activeUid();
    let count = 0;
    let outlined = 0;
    for (const shape of this.doc.shapes) {
      if (shape.hidden || shape.uid === skip || !bboxIntersects(shape.bbox, visible)) continue;
      const group = this.group(this.doc.label(shape.label)?.color);
      if (shape.type === "points") group.points.push(shape);
      else if (shape.proposal) group.proposals.push(shape);
      else if (shape.type === "box") group.boxes.push(shape);
      else group.filled.push(shape);
      if (shape.type !== "box" || shape.proposal) outlined++;
      count++;
    }
    this.visibleCount = count;
    // Boxes stay axis-aligned under right-angle rotations, so they are drawn as pixel-snapped
    // rectangles: the cheapest thing a software rasteriser can fill. Stroked paths (polygons,
    // dashed proposals) cost far more per pixel, so their dark halo is dropped when there are many.
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    const band = Math.max(1, Math.round(2 * this.dpr));
    for (const group of this.groups.values()) {
      if (group.boxes.length) this.drawBoxes(ctx, group.boxes, group.color, band);
    }
    this.applyView(ctx, this.margin);
    const px = 1 / scale;
    ctx.lineJoin = "miter";
    // Quality steps down only when many outlines are on screen: first the halo goes, and while
    // the view is moving, path fills go and outlines become 1 device px (the rasteriser's fast
    // hairline). Once the view has been still for SETTLE_MS, full quality is drawn again.
    const crowded = outlined > HALO_LIMIT;
    const moving = crowded && performance.now() - this.lastMotion < SETTLE_MS;
    const quality: Quality = !crowded ? "full" : moving ? "moving" : "crowded";
    if (moving) this.scheduleSettle();
    const minStep = SIMPLIFY_PX * px;
    for (const group of this.groups.values()) {
      if (group.filled.length) {
        ctx.beginPath();
        for (const shape of group.filled) tracePath(ctx, shape, minStep);
        this.fillAndStroke(ctx, group.color, FILL_ALPHA, px, false, quality);
      }
      if (group.proposals.length) {
        ctx.beginPath();
        for (const shape of group.proposals) tracePath(ctx, shape, minStep);
        this.fillAndStroke(ctx, group.color, PROPOSAL_FILL_ALPHA, px, true, quality);
      }
      if (group.points.length) {
        ctx.beginPath();
        for (const shape of group.points) tracePoints(ctx, shape.points, 3 * px);
        ctx.fillStyle = group.color;
        ctx.fill();
        ctx.lineWidth = px;
        ctx.strokeStyle = "#000";
        ctx.stroke();
      }
    }
    if (this.doc.showReference) this.drawReference(ctx, visible, minStep, px);
    if (count <= CAPTION_LIMIT) this.drawCaptions(ctx, skip, this.margin);
  }

  /** Review: the model's proposals, dashed and faded under nothing else; never hit or selected. */
  private drawReference(ctx: CanvasRenderingContext2D, visible: BBox, minStep: number, px: number): void {
    ctx.lineWidth = 2 * px;
    ctx.setLineDash([7 * px, 5 * px]);
    for (const shape of this.doc.reference) {
      if (!bboxIntersects(shape.bbox, visible)) continue;
      const color = safeColor(this.doc.label(shape.label)?.color);
      ctx.beginPath();
      if (shape.type === "points") tracePoints(ctx, shape.points, 3 * px);
      else tracePath(ctx, shape, minStep);
      ctx.fillStyle = ctx.strokeStyle = color;
      ctx.globalAlpha = PROPOSAL_FILL_ALPHA;
      ctx.fill();
      ctx.globalAlpha = REFERENCE_ALPHA;
      ctx.stroke();
    }
    ctx.globalAlpha = 1;
    ctx.setLineDash([]);
  }

  /** Filled boxes with a dark halo and a coloured outline, as device-pixel rectangles. */
  private drawBoxes(ctx: CanvasRenderingContext2D, boxes: Shape[], color: string, band: number): void {
    const rects = this.rects;
    rects.length = 0;
    const [a, b, c, d, e0, f0] = this.view.matrix();
    const e = e0 + this.margin;
    const f = f0 + this.margin;
    const r = this.dpr;
    for (const shape of boxes) {
      const [[x1, y1], [x2, y2]] = shape.points;
      const sx1 = (a * x1 + c * y1 + e) * r;
      const sy1 = (b * x1 + d * y1 + f) * r;
      const sx2 = (a * x2 + c * y2 + e) * r;
      const sy2 = (b * x2 + d * y2 + f) * r;
      const left = Math.round(Math.min(sx1, sx2));
      const top = Math.round(Math.min(sy1, sy2));
      rects.push(left, top, Math.max(1, Math.round(Math.max(sx1, sx2)) - left), Math.max(1, Math.round(Math.max(sy1, sy2)) - top));
    }
    ctx.globalAlpha = FILL_ALPHA;
    ctx.fillStyle = color;
    for (let i = 0; i < rects.length; i += 4) ctx.fillRect(rects[i], rects[i + 1], rects[i + 2], rects[i + 3]);
    ctx.globalAlpha = 1;
    ctx.fillStyle = HALO;
    for (let i = 0; i < rects.length; i += 4) outline(ctx, rects[i], rects[i + 1], rects[i + 2], rects[i + 3], band * 2);
    ctx.fillStyle = color;
    for (let i = 0; i < rects.length; i += 4) outline(ctx, rects[i], rects[i + 1], rects[i + 2], rects[i + 3], band);
  }

  private scheduleSettle(): void {
    if (this.settleTimer !== null) clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => {
      this.settleTimer = null;
      this.invalidate("image", "shapes");
    }, SETTLE_MS + 10);
  }

  private fillAndStroke(ctx: CanvasRenderingContext2D, color: string, alpha: number, px: number, dashed: boolean, quality: Quality): void {
    if (quality !== "moving") {
      ctx.globalAlpha = alpha;
      ctx.fillStyle = color;
      ctx.fill();
      ctx.globalAlpha = 1;
    }
    ctx.setLineDash([]);
    if (quality === "full") {
      // A dark halo under the colour keeps outlines visible on bright and dark images alike.
      ctx.lineWidth = 4 * px;
      ctx.strokeStyle = HALO;
      ctx.stroke();
    }
    if (dashed) ctx.setLineDash([7 * px, 5 * px]);
    ctx.lineWidth = quality === "moving" ? px / this.dpr : 2 * px;
    ctx.strokeStyle = color;
    ctx.stroke();
    if (dashed) ctx.setLineDash([]);
  }

  private group(color: string | undefined): Group {
    const key = safeColor(color);
    let group = this.groups.get(key);
    if (!group) {
      group = { color: key, boxes: [], filled: [], proposals: [], points: [] };
      this.groups.set(key, group);
    }
    return group;
  }

  private drawCaptions(ctx: CanvasRenderingContext2D, skip: number | null, offset: number): void {
    ctx.setTransform(this.dpr, 0, 0, this.dpr, offset * this.dpr, offset * this.dpr);
    ctx.font = CAPTION_FONT;
    ctx.textBaseline = "bottom";
    // Numbered as the shape list numbers them, so "#1 is a scratch" points at one shape.
    const numbers = shapeNumbers(this.doc.shapes);
    const limit = captionLimit(this.view, this.imageSize.width, this.imageSize.height);
    for (const group of this.groups.values()) {
      for (const list of [group.boxes, group.filled, group.proposals, group.points]) {
        for (const shape of list) {
          if (shape.uid !== skip) drawCaption(ctx, this.view, this.doc, shape, group.color, false, numbers.get(shape.uid) ?? 0, limit);
        }
      }
    }
  }

  /** The shape drawn on the overlay instead of the shapes layer (selected or being edited). */
  private activeUid(): number | null {
    const mode = this.modes.mode;
    if (mode.kind === "editing") return mode.uid;
    return this.doc.selectedUid;
  }

  private drawOverlay(): void {
    const ctx = this.begin("overlay");
    if (!ctx) return;
    this.overlay.paint(ctx, { dpr: this.dpr, width: this.width, height: this.height, activeUid: this.activeUid(), captionLimit: captionLimit(this.view, this.imageSize.width, this.imageSize.height) });
  }
}
