/**
 * The canvas layer of review's version diff: two saved versions drawn over the image, each shape
 * coloured by what became of it (model/versiondiff). It lies over the editing layers and takes
 * the pointer, so the view still zooms (wheel) and pans (drag) but nothing can be edited, and it
 * redraws itself whenever the view or the stage's size changes. Nothing here is ever saved.
 */
import type { DiffEntry } from "../model/versiondiff";
import type { ViewTransform } from "../model/transform";
import type { Point, ShapeJSON } from "../types";
import { h } from "./dom";

/** The diff's colours; the sidebar's legend uses the same ones. */
export const DIFF_COLORS = { removed: "#e53935", added: "#2ecc40", changed: "#ffb300", unchanged: "#cfd8dc" } as const;
const LINE_PX = 2.5;
const WHEEL_STEP = 0.0015;

export class DiffLayer {
  readonly canvas: HTMLCanvasElement;
  private entries: DiffEntry[] = [];
  private frame = 0;
  private drawnKey = "";
  private drag: Point | null = null;

  constructor(
    private readonly stage: HTMLElement,
    private readonly view: ViewTransform,
    /** The view moved here: the editing layers follow it too. */
    private readonly viewMoved: () => void,
  ) {
    this.canvas = h("canvas", { class: "dl-layer dl-layer-diff", hidden: true });
    this.canvas.addEventListener("wheel", (event) => this.wheel(event), { passive: false });
    this.canvas.addEventListener("pointerdown", (event) => {
      this.drag = [event.clientX, event.clientY];
      try {
        this.canvas.setPointerCapture(event.pointerId);
      } catch {
        /* synthetic events have no active pointer */
      }
    });
    this.canvas.addEventListener("pointermove", (event) => {
      if (!this.drag) return;
      this.view.panBy(event.clientX - this.drag[0], event.clientY - this.drag[1]);
      this.drag = [event.clientX, event.clientY];
      this.viewMoved();
    });
    const stop = () => (this.drag = null);
    this.canvas.addEventListener("pointerup", stop);
    this.canvas.addEventListener("pointercancel", stop);
    // Over the editing layers, under the notices and the status line.
    const overlay = stage.querySelector(".dl-layer-overlay");
    if (overlay) overlay.after(this.canvas);
    else stage.append(this.canvas);
  }

  get active(): boolean {
    return !this.canvas.hidden;
  }

  show(entries: DiffEntry[]): void {
    this.entries = entries;
    this.canvas.hidden = false;
    this.stage.classList.add("is-diff");
    this.drawnKey = "";
    this.loop();
  }

  hide(): void {
    this.canvas.hidden = true;
    this.stage.classList.remove("is-diff");
    this.entries = [];
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
  }

  /** Draw now if the view or the size changed since the last frame (tests call it directly). */
  draw(): void {
    const width = this.stage.clientWidth;
    const height = this.stage.clientHeight;
    const dpr = window.devicePixelRatio || 1;
    const { scale, x, y, rotation } = this.view.state;
    const key = [width, height, dpr, scale, x, y, rotation].join(",");
    if (key === this.drawnKey) return;
    this.drawnKey = key;
    this.canvas.width = Math.round(width * dpr);
    this.canvas.height = Math.round(height * dpr);
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
    let ctx: CanvasRenderingContext2D | null = null;
    try {
      ctx = this.canvas.getContext("2d");
    } catch {
      ctx = null; // no canvas support (a DOM test environment)
    }
    if (!ctx) return;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    const [a, b, c, d, e, f] = this.view.matrix();
    ctx.setTransform(a * dpr, b * dpr, c * dpr, d * dpr, e * dpr, f * dpr);
    // Unchanged first and faint, so what changed is drawn over it.
    const order = ["unchanged", "removed", "changed", "added"];
    const sorted = [...this.entries].sort((p, q) => order.indexOf(p.kind) - order.indexOf(q.kind));
    for (const entry of sorted) this.paint(ctx, entry, scale);
  }

  private loop(): void {
    if (this.canvas.hidden) return;
    this.draw();
    if (typeof requestAnimationFrame === "function") this.frame = requestAnimationFrame(() => this.loop());
  }

  private paint(ctx: CanvasRenderingContext2D, entry: DiffEntry, scale: number): void {
    ctx.lineWidth = LINE_PX / scale;
    ctx.setLineDash([]);
    ctx.globalAlpha = 1;
    if (entry.kind === "unchanged") {
      // Grey, not the class colour: a red class must not pass for a removed shape.
      ctx.globalAlpha = 0.5;
      stroke(ctx, entry.shape, DIFF_COLORS.unchanged, scale);
      return;
    }
    if (entry.kind === "changed" && entry.before) {
      // Where it was: thin and dashed, under where it is now.
      ctx.lineWidth = 1 / scale;
      ctx.setLineDash([4 / scale, 4 / scale]);
      stroke(ctx, entry.before, DIFF_COLORS.changed, scale);
      ctx.lineWidth = LINE_PX / scale;
      ctx.setLineDash([]);
    }
    if (entry.kind === "removed") ctx.setLineDash([8 / scale, 5 / scale]);
    stroke(ctx, entry.shape, DIFF_COLORS[entry.kind], scale);
  }

  private wheel(event: WheelEvent): void {
    event.preventDefault();
    const rect = this.canvas.getBoundingClientRect();
    const delta = Math.max(-300, Math.min(300, event.deltaY * (event.deltaMode === 1 ? 16 : 1)));
    this.view.zoomAt([event.clientX - rect.left, event.clientY - rect.top], Math.exp(-delta * WHEEL_STEP));
    this.viewMoved();
  }
}

function stroke(ctx: CanvasRenderingContext2D, shape: ShapeJSON, color: string, scale: number): void {
  ctx.strokeStyle = color;
  ctx.fillStyle = color;
  ctx.beginPath();
  const points = shape.points;
  if (shape.type === "box" && points.length === 2) {
    const [[x1, y1], [x2, y2]] = points;
    ctx.rect(Math.min(x1, x2), Math.min(y1, y2), Math.abs(x2 - x1), Math.abs(y2 - y1));
  } else if (shape.type === "points") {
    for (const [x, y] of points) {
      ctx.moveTo(x + 4 / scale, y);
      ctx.arc(x, y, 4 / scale, 0, Math.PI * 2);
    }
  } else {
    points.forEach(([x, y], i) => (i === 0 ? ctx.moveTo(x, y) : ctx.lineTo(x, y)));
    ctx.closePath();
  }
  ctx.stroke();
}
