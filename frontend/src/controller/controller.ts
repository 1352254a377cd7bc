/**
 * Turns pointer, wheel and keyboard events into model changes, always through the mode machine.
 * Geometry is computed in image space (view.toImage), so every rotation behaves the same.
 */
import type { Shape } from "../model/document";
import { buildPolygon, clampPoint, clampTranslation, normalizeBox, polygonSelfIntersects, resizeBox, translatePoints, bboxOf } from "../model/geometry";
import { handleAt, handleCursor, OUTLINE_TOLERANCE, shapeAt } from "../model/hittest";
import type { Tool } from "../model/modes";
import type { Point } from "../types";
import type { Host } from "../view/host";
import type { Renderer } from "../view/renderer";

const CLOSE_RADIUS = 10;
const CLICK_SLOP = 4;
const WHEEL_STEP = 0.0015;

export interface ControllerHooks {
  /** A pointer moved over the image: image coordinates, or null when it left. */
  onPointer(image: Point | null): void;
  isHelpOpen(): boolean;
  spaceHeld(held: boolean): void;
}

function isEditable(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  if (!el || !el.tagName) return false;
  const tag = el.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT") return true;
  if (tag === "INPUT") {
    const type = (el as HTMLInputElement).type;
    return !["button", "checkbox", "radio", "submit", "reset"].includes(type);
  }
  return el.isContentEditable;
}

/** A key action that always counts as handled. */
function always(run: (event: KeyboardEvent) => void): (event: KeyboardEvent) => boolean {
  return (event) => {
    run(event);
    return true;
  };
}

export class Controller {
  private space = false;
  private downAt: Point | null = null;
  private readonly disposers: (() => void)[] = [];

  constructor(
    private readonly host: Host,
    private readonly renderer: Renderer,
    private readonly hooks: ControllerHooks,
  ) {
    const target = renderer.eventTarget;
    this.listen(target, "pointerdown", (e) => this.pointerDown(e as PointerEvent));
    this.listen(target, "pointermove", (e) => this.pointerMove(e as PointerEvent));
    this.listen(target, "pointerup", (e) => this.pointerUp(e as PointerEvent));
    this.listen(target, "pointercancel", (e) => this.pointerUp(e as PointerEvent));
    this.listen(target, "pointerleave", () => this.pointerLeave());
    this.listen(target, "dblclick", (e) => this.doubleClick(e as MouseEvent));
    this.listen(target, "wheel", (e) => this.wheel(e as WheelEvent), { passive: false });
    this.listen(target, "contextmenu", (e) => e.preventDefault());
    this.listen(window, "keydown", (e) => this.keyDown(e as KeyboardEvent));
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
    const selected = doc.selected;
    if (selected && !selected.locked && !selected.hidden) {
      const handle = handleAt(selected, screen, view);
      if (handle >= 0) {
        if (event.altKey && selected.type !== "box") {
          this.removeVertex(selected, handle);
          return;
        }
        modes.beginEdit(selected.type === "box" ? "resize" : "vertex", selected.uid, handle, image, selected.points);
        this.capture(event);
        this.renderer.invalidate("shapes", "overlay");
        return;
      }
    }

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
    doc.select(shape.uid);
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
        doc.select(shape.uid);
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
      doc.select(shape.uid);
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

  // ---- keyboard -------------------------------------------------------------------------------

  private setSpace(held: boolean): void {
    if (this.space === held) return;
    this.space = held;
    this.hooks.spaceHeld(held);
    this.updateCursor();
  }

  private keyUp(event: KeyboardEvent): void {
    if (event.key === " " || event.code === "Space") this.setSpace(false);
  }

  private keyDown(event: KeyboardEvent): void {
    if (event.defaultPrevented) return;
    if (isEditable(event.target)) {
      if (event.key === "Escape") (event.target as HTMLElement).blur();
      return;
    }
    if (this.hooks.isHelpOpen()) {
      if (event.key === "Escape" || event.key === "?") {
        this.host.toggleHelp(false);
        event.preventDefault();
      }
      return;
    }
    const ctrl = event.ctrlKey || event.metaKey;
    // A keyboard user on a sidebar button: Enter and Space press it, Tab moves on, as usual.
    const target = event.target as HTMLElement | null;
    const onControl = !!target?.closest?.("button, a, summary, [role='option']");
    if (onControl && !ctrl && (event.key === "Enter" || event.key === " " || event.key === "Tab")) return;
    if (!ctrl && event.altKey) return;
    const handled = ctrl ? this.commandKey(event) : this.plainKey(event);
    if (handled) event.preventDefault();
  }

  /** Ctrl (or ⌘) with a key: history, saving, submitting. False leaves the key to the browser. */
  private commandKey(event: KeyboardEvent): boolean {
    const host = this.host;
    const lower = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (lower === "z" && event.shiftKey) host.redo();
    else if (lower === "z") host.undo();
    else if (lower === "y") host.redo();
    else if (lower === "s") host.save();
    else if (event.key === "Enter") {
      if (host.config.mode === "review") host.review("approve");
      else host.submit();
    } else return false;
    return true;
  }

  /**
   * A key without Ctrl or Alt, read in this order: Shift+digit toggles a tag; then the named keys
   * (KEY_ACTIONS: drawing, selection, view); then digits and letters choose classes, except that
   * the built-in letters win over a class with the same hotkey. False leaves the key to the browser.
   */
  private plainKey(event: KeyboardEvent): boolean {
    const digit = /^(?:Digit|Numpad)([0-9])$/.exec(event.code)?.[1];
    if (event.shiftKey && digit !== undefined && digit !== "0") {
      const tag = this.host.config.project.tags[Number(digit) - 1];
      if (tag) this.host.doc.toggleTag(tag.name);
      return true;
    }
    const action = this.keyActions.get(event.key) ?? (event.key.startsWith("Arrow") ? this.keyActions.get("Arrow") : undefined);
    if (action) return action(event);
    return this.choiceKey(event, digit);
  }

  /** The named keys, each answering whether it did something (false: the browser's default stays). */
  private readonly keyActions = new Map<string, (event: KeyboardEvent) => boolean>([
    [" ", always(() => this.setSpace(true))],
    ["Escape", () => this.cancelKey()],
    ["Enter", () => this.enterKey()],
    ["Backspace", () => this.backspaceKey()],
    ["Delete", () => this.deleteKey()],
    ["Tab", (event) => this.tabKey(event.shiftKey)],
    ["[", always(() => this.host.doc.cycleAttributeValue(-1))],
    ["]", always(() => this.host.doc.cycleAttributeValue(1))],
    // Every "Arrow…" key (plainKey looks it up by that prefix).
    ["Arrow", always((event) => this.arrow(event.key, event.shiftKey ? 10 : 1))],
    ["+", always(() => this.host.zoomBy(1.25))],
    ["=", always(() => this.host.zoomBy(1.25))],
    ["-", always(() => this.host.zoomBy(0.8))],
    ["_", always(() => this.host.zoomBy(0.8))],
    ["−", always(() => this.host.zoomBy(0.8))],
    ["?", always(() => this.host.toggleHelp())],
    ["/", always(() => this.host.focusSearch())],
  ]);

  /** Escape: stop drawing, else undo the edit in progress, else clear the selection. */
  private cancelKey(): boolean {
    const { doc, modes } = this.host;
    const mode = modes.mode;
    if (mode.kind === "drawing") modes.cancel();
    else if (mode.kind === "editing") {
      const edit = modes.endEdit()!;
      doc.previewGeometry(edit.uid, edit.before);
    } else doc.select(null);
    this.renderer.invalidate("shapes", "overlay");
    return true;
  }

  /** Enter: finish the polygon or points being drawn, else accept the selected proposal. */
  private enterKey(): boolean {
    const { doc, modes } = this.host;
    const mode = modes.mode;
    const selected = doc.selected;
    if (mode.kind === "drawing" && mode.shape !== "box") this.finishVertices();
    else if (selected?.proposal) doc.acceptProposals([selected.uid]);
    else return false;
    return true;
  }

  /** Backspace: remove the last vertex while drawing, else delete the selected shape as Delete does. */
  private backspaceKey(): boolean {
    const { modes } = this.host;
    const mode = modes.mode;
    if (!(mode.kind === "drawing" && mode.shape !== "box")) return this.deleteKey();
    modes.removeLastVertex();
    this.renderer.invalidate("overlay");
    return true;
  }

  private deleteKey(): boolean {
    const { doc, modes } = this.host;
    const selected = doc.selected;
    if (!selected || modes.mode.kind !== "idle") return false;
    doc.removeShapes([selected.uid]);
    return true;
  }

  /** Tab: the next (Shift: previous) attribute of the selected shape; without one, Tab moves the focus. */
  private tabKey(back: boolean): boolean {
    const { doc } = this.host;
    const selected = doc.selected;
    if (!(selected && doc.attributeDefs(selected).length)) return false;
    doc.cycleAttributeFocus(back ? -1 : 1);
    return true;
  }

  /** Digits and letters: a class by its digit, a built-in letter, else a class by its letter. */
  private choiceKey(event: KeyboardEvent, digit: string | undefined): boolean {
    const { key, shiftKey: shift } = event;
    const lower = key.length === 1 ? key.toLowerCase() : key;
    if (!shift && digit !== undefined && this.labelForKey(digit)) {
      this.host.setActiveLabel(this.labelForKey(digit)!);
      return true;
    }
    if (this.letter(lower, shift)) return true;
    if (!shift && key.length === 1 && this.labelForKey(lower)) {
      this.host.setActiveLabel(this.labelForKey(lower)!);
      return true;
    }
    return false;
  }

  private labelForKey(key: string): number | null {
    const label = this.host.doc.labels.find((l) => l.hotkey && l.hotkey.toLowerCase() === key);
    return label ? label.id : null;
  }

  /** The built-in letter keys; a class whose hotkey is one of these letters loses to them. */
  private letter(key: string, shift: boolean): boolean {
    const host = this.host;
    const { doc } = host;
    const selected = doc.selected;
    const tools: Record<string, Tool> = { v: "select", b: "box", p: "polygon", k: "points" };
    if (!shift && tools[key]) {
      if (host.tools.includes(tools[key])) host.setTool(tools[key]);
      return true;
    }
    switch (key) {
      case "f":
        host.fit();
        return true;
      case "r":
        host.rotate(shift ? -1 : 1);
        return true;
      case "a":
        if (shift) return false;
        doc.acceptAllProposals();
        return true;
      case "h":
        if (shift) {
          const anyShown = doc.shapes.some((s) => !s.hidden);
          doc.setHidden(doc.shapes.map((s) => s.uid), anyShown);
        } else if (selected) doc.setHidden([selected.uid], !selected.hidden);
        this.renderer.invalidate("shapes", "overlay");
        return true;
      case "l":
        if (shift) return false;
        if (selected) doc.setLocked([selected.uid], !selected.locked);
        this.renderer.invalidate("shapes", "overlay");
        return true;
      default:
        return false;
    }
  }

  private arrow(key: string, step: number): void {
    const { doc, view } = this.host;
    const dir: Record<string, Point> = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    const [sx, sy] = dir[key] ?? [0, 0];
    const selected = doc.selected;
    if (selected && !selected.locked && this.host.modes.mode.kind === "idle") {
      // Arrows move on screen; turn the screen direction into image space for rotated views.
      const origin = view.toImage([0, 0]);
      const moved = view.toImage([sx, sy]);
      const ix = Math.round((moved[0] - origin[0]) * view.scale);
      const iy = Math.round((moved[1] - origin[1]) * view.scale);
      const { width, height } = this.imageSize();
      const [dx, dy] = clampTranslation(selected.bbox, ix * step, iy * step, width, height);
      if (dx !== 0 || dy !== 0) doc.setGeometry(selected.uid, translatePoints(selected.points, dx, dy));
      this.renderer.invalidate("overlay");
    } else {
      view.panBy(-sx * 40 * step, -sy * 40 * step);
      this.invalidateAll();
    }
  }
}
