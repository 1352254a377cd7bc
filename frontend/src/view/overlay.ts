/**
 * The overlay layer: the hovered and the selected shape (with its handles), a shape whose class
 * just changed (a short highlight), the shape being drawn, and the crosshair. It is small work, so it is redrawn on every pointer move.
 */
import type { AnnotationDocument, Shape } from "../model/document";
import { handlePoints } from "../model/hittest";
import type { ModeMachine } from "../model/modes";
import type { ViewTransform } from "../model/transform";
import { CAPTION_FONT, drawCaption, safeColor, tracePath, tracePoints } from "./draw";
import type { Pointer } from "./renderer";

export interface Frame {
  dpr: number;
  width: number;
  height: number;
  /** The shape drawn here instead of on the shapes layer (selected, or being edited). */
  activeUid: number | null;
  /** Captions stay below this screen y (the image's top edge, or the view's). */
  captionLimit: number;
}

export class OverlayPainter {
  private frame: Frame = { dpr: 1, width: 0, height: 0, activeUid: null, captionLimit: 0 };
  /** A shape to highlight for a moment (its class was just changed), or null. */
  flashUid: number | null = null;

  constructor(
    private readonly doc: AnnotationDocument,
    private readonly view: ViewTransform,
    private readonly modes: ModeMachine,
    private readonly pointer: Pointer,
  ) {}

  private applyView(ctx: CanvasRenderingContext2D): void {
    const [a, b, c, d, e, f] = this.view.matrix();
    const r = this.frame.dpr;
    ctx.setTransform(a * r, b * r, c * r, d * r, e * r, f * r);
  }

  paint(ctx: CanvasRenderingContext2D, frame: Frame): void {
    this.frame = frame;
    const px = 1 / this.view.scale;
    this.applyView(ctx);
    ctx.lineJoin = "round";
    const hovered = this.doc.get(this.pointer.hoverUid);
    const active = this.doc.get(frame.activeUid);
    if (hovered && hovered !== active && !hovered.hidden) {
      const color = safeColor(this.doc.label(hovered.label)?.color);
      ctx.beginPath();
      if (hovered.type === "points") tracePoints(ctx, hovered.points, 4 * px);
      else tracePath(ctx, hovered);
      ctx.globalAlpha = 0.25;
      ctx.fillStyle = color;
      ctx.fill();
      ctx.globalAlpha = 1;
      ctx.lineWidth = 3 * px;
      ctx.strokeStyle = color;
      ctx.stroke();
    }
    const flashed = this.doc.get(this.flashUid);
    if (flashed && !flashed.hidden) this.drawFlash(ctx, flashed, px);
    if (active && !active.hidden) this.drawActive(ctx, active, px);
    this.drawDrawing(ctx, px);
    this.drawCrosshair(ctx);
  }

  private drawActive(ctx: CanvasRenderingContext2D, shape: Shape, px: number): void {
    const color = safeColor(this.doc.label(shape.label)?.color);
    ctx.beginPath();
    if (shape.type === "points") tracePoints(ctx, shape.points, 4 * px);
    else tracePath(ctx, shape);
    ctx.globalAlpha = 0.3;
    ctx.fillStyle = color;
    ctx.fill();
    ctx.globalAlpha = 1;
    ctx.lineWidth = 6 * px;
    ctx.strokeStyle = "#000";
    ctx.stroke();
    ctx.lineWidth = 2.5 * px;
    ctx.strokeStyle = "#fff";
    if (shape.proposal) ctx.setLineDash([7 * px, 5 * px]);
    ctx.stroke();
    ctx.setLineDash([]);
    // Handles and caption in screen space, so they keep their size at any zoom.
    ctx.setTransform(this.frame.dpr, 0, 0, this.frame.dpr, 0, 0);
    const b = shape.bbox;
    const [sx1, sy1] = this.view.toScreen([b.minX, b.minY]);
    const [sx2, sy2] = this.view.toScreen([b.maxX, b.maxY]);
    // On a shape only a few pixels wide the handles would hide it: zoom in to edit it.
    const roomy = Math.max(Math.abs(sx2 - sx1), Math.abs(sy2 - sy1)) >= 16 || shape.type === "points";
    if (!shape.locked && roomy) {
      const handles = handlePoints(shape);
      handles.forEach((h, i) => {
        const [x, y] = this.view.toScreen(h);
        const hot = i === this.pointer.hoverHandle && this.pointer.hoverUid === shape.uid;
        const r = hot ? 6 : 4.5;
        ctx.fillStyle = hot ? color : "#fff";
        ctx.strokeStyle = "#000";
        ctx.lineWidth = 1.5;
        ctx.fillRect(x - r, y - r, 2 * r, 2 * r);
        ctx.strokeRect(x - r, y - r, 2 * r, 2 * r);
      });
    }
    ctx.font = CAPTION_FONT;
    ctx.textBaseline = "bottom";
    drawCaption(ctx, this.view, this.doc, shape, color, true, this.doc.ordinal(shape.uid), this.frame.captionLimit);
    this.applyView(ctx);
  }

  /** A wide yellow halo around the shape, under its own outline. */
  private drawFlash(ctx: CanvasRenderingContext2D, shape: Shape, px: number): void {
    ctx.beginPath();
    if (shape.type === "points") tracePoints(ctx, shape.points, 6 * px);
    else tracePath(ctx, shape);
    ctx.globalAlpha = 0.85;
    ctx.lineWidth = 12 * px;
    ctx.strokeStyle = "#ffd600";
    ctx.stroke();
    ctx.globalAlpha = 1;
  }

  private drawDrawing(ctx: CanvasRenderingContext2D, px: number): void {
    const mode = this.modes.mode.kind === "panning" ? this.modes.mode.resume : this.modes.mode;
    if (mode.kind !== "drawing") return;
    ctx.setLineDash([]);
    if (mode.shape === "box") {
      const [ax, ay] = mode.anchor;
      const [cx, cy] = mode.cursor;
      ctx.beginPath();
      ctx.rect(Math.min(ax, cx), Math.min(ay, cy), Math.abs(cx - ax), Math.abs(cy - ay));
      ctx.globalAlpha = 0.15;
      ctx.fillStyle = "#fff";
      ctx.fill();
      ctx.globalAlpha = 1;
      this.doubleStroke(ctx, px);
      return;
    }
    const vertices = mode.vertices;
    ctx.beginPath();
    ctx.moveTo(vertices[0][0], vertices[0][1]);
    for (const v of vertices.slice(1)) ctx.lineTo(v[0], v[1]);
    if (mode.shape === "polygon" && mode.cursor) ctx.lineTo(mode.cursor[0], mode.cursor[1]);
    if (mode.shape === "polygon") this.doubleStroke(ctx, px);
    ctx.setTransform(this.frame.dpr, 0, 0, this.frame.dpr, 0, 0);
    vertices.forEach((v, i) => {
      const [x, y] = this.view.toScreen(v);
      const r = i === 0 && mode.shape === "polygon" ? 6 : 4;
      ctx.beginPath();
      ctx.arc(x, y, r, 0, Math.PI * 2);
      ctx.fillStyle = i === 0 ? "#ffd600" : "#fff";
      ctx.fill();
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = "#000";
      ctx.stroke();
    });
    this.applyView(ctx);
  }

  private doubleStroke(ctx: CanvasRenderingContext2D, px: number): void {
    ctx.lineWidth = 4 * px;
    ctx.strokeStyle = "#000";
    ctx.stroke();
    ctx.lineWidth = 2 * px;
    ctx.strokeStyle = "#ffd600";
    ctx.stroke();
  }

  private drawCrosshair(ctx: CanvasRenderingContext2D): void {
    const p = this.pointer.screen;
    if (!p || this.modes.tool === "select" || this.modes.mode.kind === "panning") return;
    ctx.setTransform(this.frame.dpr, 0, 0, this.frame.dpr, 0, 0);
    ctx.beginPath();
    ctx.moveTo(0, Math.round(p[1]) + 0.5);
    ctx.lineTo(this.frame.width, Math.round(p[1]) + 0.5);
    ctx.moveTo(Math.round(p[0]) + 0.5, 0);
    ctx.lineTo(Math.round(p[0]) + 0.5, this.frame.height);
    ctx.lineWidth = 1;
    ctx.strokeStyle = "rgba(255,255,255,0.55)";
    ctx.setLineDash([4, 4]);
    ctx.stroke();
    ctx.setLineDash([]);
  }
}
