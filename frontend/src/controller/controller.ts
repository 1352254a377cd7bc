/**
 * Turns pointer, wheel and keyboard events into model changes, always through the mode machine;
 * the keys themselves are read by the Keyboard (keyboard.ts).
 * Geometry is computed in image space (view.toImage), so every rotation behaves the same.
 */
import type { Shape } from "../model/document";
import { buildPolygon, clampPoint, clampTranslation, normalizeBox, polygonSelfIntersects, resizeBox, translatePoints, bboxOf } from "../model/geometry";
import { handleAt, handleCursor, OUTLINE_TOLERANCE, shapeAt } from "../model/hittest";
import type { Point } from "../types";
import type { Host } from "../view/host";
import type { Renderer } from "../view/renderer";
import { Keyboard } from "./keyboard";

const CLOSE_RADIUS = 10;
const CLICK_SLOP = 4;
const WHEEL_STEP = 0.0015;

export interface ControllerHooks {
  /** A pointer moved over the image: image coordinates, or null when it left. */
  onPointer(image: Point | null): void;
  isHelpOpen(): boolean;
  spaceHeld(held: boolean): void;
}

export class Controller {
  private space = false;
  private downAt: Point | null = null;
  private readonly disposers: (() => void)[] = [];
  private readonly keyboard: Keyboard;

  constructor(
    private readonly host: Host,
    private readonly renderer: Renderer,
    private readonly hooks: ControllerHooks,
  ) {
    this.keyboard = new Keyboard(host, renderer, {
      isHelpOpen: () => hooks.isHelpOpen(),
      setSpace: (held) => this.setSpace(held),
      finishVertices: () => this.finishVertices(),
    });
    const target = renderer.eventTarget;
    this.listen(target, "pointerdown", (e) => this.pointerDown(e as PointerEvent));
    this.listen(target, "pointermove", (e) => this.pointerMove(e as PointerEvent));
    this.listen(target, "pointerup", (e) => this.pointerUp(e as PointerEvent));
    this.listen(target, "pointercancel", (e) => this.pointerUp(e as PointerEvent));
    this.listen(target, "pointerleave", () => this.pointerLeave());
    this.listen(target, "dblclick", (e) => this.doubleClick(e as MouseEvent));
    this.listen(target, "wheel", (e) => this.wheel(e as WheelEvent), { passive: false });
    this.listen(target, "contextmenu", (e) => e.preventDefault());
    this.listen(window, "keydown", (e) => this.keyboard.keyDown(e as KeyboardEvent));
    this.listen(window, "keyup", (e) => this.keyUp(e as KeyboardEvent));
    this.listen(window, "blur", () => this.setSpace(false));
  }

  destroy(): void {
    for (const dispose of this.disposers) dispose();
  }

  private listen(target: EventTarget, type: string, handler: (event: Event) => void, options?: AddEventListenerOptions): void {
    target.addEventListener(type, handler, options);
    this.disposers.push(() => target.removeEventListener(type, handler, options));
  }

  private local(event: MouseEvent): Point {
    const rect = this.renderer.eventTarget.getBoundingClientRect();
    return [event.clientX - rect.left, event.clientY - rect.top];
  }

  private imageSize(): { width: number; height: number } {
    return this.host.config.task;
  }

  private clampToImage(p: Point): Point {
    const { width, height } = this.imageSize();
    return clampPoint(p, width, height);
  }

  private invalidateAll(): void {
    this.host.viewMoved();
  }

  // ---- pointer --------------------------------------------------------------------------------

  private pointerDown(event: PointerEvent): void {
    const { modes, view, doc } = this.host;
    const screen = this.local(event);
    this.downAt = screen;
    this.renderer.eventTarget.focus({ preventScroll: true });
    if (event.button === 1 || (event.button === 0 && this.space)) {
      event.preventDefault();
      if (modes.mode.kind === "editing") return;
      modes.beginPan(screen, view.state);
      this.capture(event);
      this.updateCursor();
      return;
    }
    if (event.button !== 0) return;
    const image = view.toImage(screen);
    const clamped = this.clampToImage(image);
    const mode = modes.mode;
    if (mode.kind === "idle" && this.host.placeIssueAt?.(clamped, shapeAt(doc.shapes, image, OUTLINE_TOLERANCE / view.scale))) return;

    if (mode.kind === "drawing") {
      if (mode.shape === "box") {
        this.finishBox(clamped);
      } else if (
        mode.shape === "polygon" &&
        mode.vertices.length >= 3 &&
        this.nearScreen(mode.vertices[0], screen, CLOSE_RADIUS)
      ) {
        this.finishVertices();
      } else {
        modes.addVertex(mode.shape, clamped);
        this.renderer.invalidate("overlay");
      }
      return;
    }
    if (mode.kind !== "idle") return;

    // The selected shape's handles take precedence with every tool.
    if (this.grabHandle(event, screen, image)) return;

    const tool = modes.tool;
    if (tool === "box") {
      if (!this.canDraw()) return;
      modes.beginBox(clamped);
      this.capture(event);
      this.renderer.invalidate("overlay");
      return;
    }
    if (tool === "polygon" || tool === "points") {
      if (!this.canDraw()) return;
      modes.addVertex(tool, clamped);
      this.renderer.invalidate("overlay");
      return;
    }

    const hit = shapeAt(doc.shapes, image, OUTLINE_TOLERANCE / view.scale);
    if (hit) {
      doc.select(hit.uid);
      modes.beginEdit("move", hit.uid, -1, image, hit.points);
      this.capture(event);
      this.renderer.invalidate("shapes", "overlay");
    } else {
      // Dragging the empty image pans: the most natural gesture for people new to the tool.
      doc.select(null);
      modes.beginPan(screen, view.state);
      this.capture(event);
      this.updateCursor();
    }
  }

  /** Pressed on a handle of the selected shape: start resizing or moving that vertex (Alt removes it). */
  private grabHandle(event: PointerEvent, screen: Point, image: Point): boolean {
    const { modes, view, doc } = this.host;
    const selected = doc.selected;
    if (!selected || selected.locked || selected.hidden) return false;
    const handle = handleAt(selected, screen, view);
    if (handle < 0) return false;
    if (event.altKey && selected.type !== "box") {
      this.removeVertex(selected, handle);
      return true;
    }
    modes.beginEdit(selected.type === "box" ? "resize" : "vertex", selected.uid, handle, image, selected.points);
    this.capture(event);
    this.renderer.invalidate("shapes", "overlay");
    return true;
  }

  private pointerMove(event: PointerEvent): void {
    const { modes, view, doc } = this.host;
    const screen = this.local(event);
    const image = view.toImage(screen);
    this.renderer.pointer.screen = screen;
    this.hooks.onPointer(image);
    const mode = modes.mode;

    if (mode.kind === "panning") {
      view.set(mode.startView);
      view.panBy(screen[0] - mode.startScreen[0], screen[1] - mode.startScreen[1]);
      this.invalidateAll();
      return;
    }
    if (mode.kind === "editing") {
      const shape = doc.get(mode.uid);
      if (!shape) return;
      const { width, height } = this.imageSize();
      let points: Point[];
      if (mode.action === "move") {
        const [dx, dy] = clampTranslation(bboxOf(mode.before), image[0] - mode.start[0], image[1] - mode.start[1], width, height);
        points = translatePoints(mode.before, dx, dy);
      } else if (mode.action === "resize") {
        points = resizeBox(mode.before, mode.handle, this.clampToImage(image));
      } else {
        points = mode.before.map((p, i) => (i === mode.handle ? this.clampToImage(image) : p));
      }
      doc.previewGeometry(shape.uid, points);
      this.renderer.invalidate("overlay");
      return;
    }
    if (mode.kind === "drawing") {
      modes.moveCursor(this.clampToImage(image));
      this.renderer.invalidate("overlay");
      return;
    }
    if (event.buttons === 0) this.hover(screen, image);
    if (modes.tool !== "select") this.renderer.invalidate("overlay");
  }

  private pointerUp(event: PointerEvent): void {
    const { modes, doc, view } = this.host;
    const mode = modes.mode;
    if (mode.kind === "panning") {
      modes.endPan();
      this.updateCursor();
      this.renderer.invalidate("overlay");
      return;
    }
    if (mode.kind === "editing") {
      const edit = modes.endEdit()!;
      const shape = doc.get(edit.uid);
      if (shape) {
        if (shape.type === "polygon" && polygonSelfIntersects(shape.points)) {
          doc.previewGeometry(shape.uid, edit.before);
          this.host.notify(this.host.t("polygon.crosses"), "warning");
        } else {
          doc.commitGeometry(shape.uid, edit.before);
        }
      }
      this.renderer.invalidate("shapes", "overlay");
      return;
    }
    if (mode.kind === "drawing" && mode.shape === "box" && this.downAt) {
      const screen = this.local(event);
      const moved = Math.hypot(screen[0] - this.downAt[0], screen[1] - this.downAt[1]);
      // A click without a drag leaves the box open: the next click sets the other corner.
      if (moved > CLICK_SLOP) this.finishBox(this.clampToImage(view.toImage(screen)));
    }
    this.downAt = null;
  }

  private pointerLeave(): void {
    this.renderer.pointer.screen = null;
    this.hooks.onPointer(null);
    if (this.renderer.pointer.hoverUid !== null) {
      this.renderer.pointer.hoverUid = null;
      this.renderer.pointer.hoverHandle = -1;
    }
    this.renderer.invalidate("overlay");
  }

  private doubleClick(event: MouseEvent): void {
    const mode = this.host.modes.mode;
    if (mode.kind === "drawing" && mode.shape !== "box") {
      event.preventDefault();
      this.finishVertices();
    }
  }

  private wheel(event: WheelEvent): void {
    event.preventDefault();
    const unit = event.deltaMode === 1 ? 16 : event.deltaMode === 2 ? 400 : 1;
    const delta = Math.max(-300, Math.min(300, event.deltaY * unit));
    this.host.view.zoomAt(this.local(event), Math.exp(-delta * WHEEL_STEP));
    this.invalidateAll();
  }

  private capture(event: PointerEvent): void {
    try {
      this.renderer.eventTarget.setPointerCapture(event.pointerId);
    } catch {
      /* synthetic events have no active pointer */
    }
  }

  private nearScreen(image: Point, screen: Point, radius: number): boolean {
    const s = this.host.view.toScreen(image);
    return Math.hypot(s[0] - screen[0], s[1] - screen[1]) <= radius;
  }

  private hover(screen: Point, image: Point): void {
    const { doc, view } = this.host;
    const pointer = this.renderer.pointer;
    let uid: number | null = null;
    let handle = -1;
    const selected = doc.selected;
    if (selected && !selected.locked && !selected.hidden) {
      handle = handleAt(selected, screen, view);
      if (handle >= 0) uid = selected.uid;
    }
    if (uid === null && this.host.modes.tool === "select") {
      uid = shapeAt(doc.shapes, image, OUTLINE_TOLERANCE / view.scale)?.uid ?? null;
    }
    if (uid !== pointer.hoverUid || handle !== pointer.hoverHandle) {
      pointer.hoverUid = uid;
      pointer.hoverHandle = handle;
      this.renderer.invalidate("overlay");
      this.updateCursor();
    }
  }

  private updateCursor(): void {
    const { modes, doc, view } = this.host;
    const pointer = this.renderer.pointer;
    let cursor = "default";
    if (modes.mode.kind === "panning") cursor = "grabbing";
    else if (this.space) cursor = "grab";
    else if (pointer.hoverHandle >= 0) {
      const shape = doc.get(pointer.hoverUid);
      cursor = shape?.type === "box" ? handleCursor(pointer.hoverHandle, view.rotation) : "move";
    } else if (modes.tool !== "select") cursor = "crosshair";
    else if (pointer.hoverUid !== null) cursor = "move";
    this.renderer.eventTarget.style.cursor = cursor;
  }

  // ---- creating shapes ------------------------------------------------------------------------

  private canDraw(): boolean {
    if (this.host.activeLabel !== null) return true;
    this.host.notify(this.host.t("labels.none"), "warning");
    return false;
  }

  private finishBox(corner: Point): void {
    const { modes, doc, view } = this.host;
    const corners = modes.finishBox(corner);
    this.renderer.invalidate("overlay");
    if (!corners || this.host.activeLabel === null) return;
    const [a, b] = normalizeBox(corners[0], corners[1]);
    // Boxes smaller than a pixel are slips of the hand, not defects.
    if (b[0] - a[0] < 1 || b[1] - a[1] < 1 || (b[0] - a[0]) * view.scale < 2 || (b[1] - a[1]) * view.scale < 2) return;
    const shape = doc.addShape({ type: "box", points: [a, b], label: this.host.activeLabel });
    doc.select(shape.uid, "drawn");
    this.renderer.invalidate("shapes", "overlay");
  }

  private finishVertices(): void {
    const { modes, doc, view, t } = this.host;
    const mode = modes.mode;
    if (mode.kind !== "drawing" || mode.shape === "box") return;
    // A double-click adds the same spot twice: drop vertices closer than a few screen px.
    const tolerance = CLICK_SLOP / view.scale;
    const vertices: Point[] = [];
    for (const v of mode.vertices) {
      const last = vertices[vertices.length - 1];
      if (!last || Math.hypot(v[0] - last[0], v[1] - last[1]) > tolerance) vertices.push(v);
    }
    if (mode.shape === "points") {
      modes.finishVertices();
      if (vertices.length && this.host.activeLabel !== null) {
        const shape = doc.addShape({ type: "points", points: vertices, label: this.host.activeLabel });
        doc.select(shape.uid, "drawn");
      }
      this.renderer.invalidate("shapes", "overlay");
      return;
    }
    const result = buildPolygon(vertices);
    if (!result.ok) {
      // Keep drawing: the person can add or remove vertices and close again.
      this.host.notify(t(`polygon.${result.problem}`), "warning");
      return;
    }
    modes.finishVertices();
    if (this.host.activeLabel !== null) {
      const shape = doc.addShape({ type: "polygon", points: result.points, label: this.host.activeLabel });
      doc.select(shape.uid, "drawn");
    }
    this.renderer.invalidate("shapes", "overlay");
  }

  private removeVertex(shape: Shape, index: number): void {
    const minimum = shape.type === "polygon" ? 3 : 1;
    if (shape.points.length <= minimum) return;
    const points = shape.points.filter((_, i) => i !== index);
    if (shape.type === "polygon" && buildPolygon(points).ok === false) return;
    this.host.doc.setGeometry(shape.uid, points);
    this.renderer.invalidate("overlay");
  }

  // ---- Space held (from the keyboard) ---------------------------------------------------------

  private setSpace(held: boolean): void {
    if (this.space === held) return;
    this.space = held;
    this.hooks.spaceHeld(held);
    this.updateCursor();
  }

  private keyUp(event: KeyboardEvent): void {
    if (event.key === " " || event.code === "Space") this.setSpace(false);
  }
}
