/**
 * The canvas's explicit interaction modes. Every pointer and key handler asks the machine what
 * state it is in and moves it only along the transitions listed in TRANSITIONS.
 */
import type { Point, ShapeType, ViewState } from "../types";

export type Tool = "select" | ShapeType;

export type EditAction = "move" | "resize" | "vertex";

export type Mode =
  | { kind: "idle" }
  | { kind: "drawing"; shape: "box"; anchor: Point; cursor: Point }
  | { kind: "drawing"; shape: "polygon" | "points"; vertices: Point[]; cursor: Point | null }
  | { kind: "editing"; action: EditAction; uid: number; handle: number; start: Point; before: Point[] }
  | { kind: "panning"; startScreen: Point; startView: ViewState; resume: Mode };

export type ModeKind = Mode["kind"];

/** Which mode may follow which. Panning always returns to the mode it interrupted. */
export const TRANSITIONS: Record<ModeKind, readonly ModeKind[]> = {
  idle: ["drawing", "editing", "panning"],
  drawing: ["drawing", "idle", "panning"],
  editing: ["idle"],
  panning: ["idle", "drawing"],
};

export class ModeError extends Error {}

export type ModeListener = (mode: Mode, tool: Tool) => void;

export class ModeMachine {
  private current: Mode = { kind: "idle" };
  private currentTool: Tool = "select";
  private readonly listeners = new Set<ModeListener>();

  get mode(): Mode {
    return this.current;
  }

  get tool(): Tool {
    return this.currentTool;
  }

  onChange(listener: ModeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Switching tools abandons a shape being drawn; an edit or a pan in progress finishes first. */
  setTool(tool: Tool): void {
    if (this.current.kind === "drawing") this.go({ kind: "idle" });
    this.currentTool = tool;
    this.notify();
  }

  beginBox(p: Point): void {
    this.go({ kind: "drawing", shape: "box", anchor: p, cursor: p });
  }

  /** First click of a polygon or point set, or a further vertex of the one being drawn. */
  addVertex(shape: "polygon" | "points", p: Point): void {
    const mode = this.current;
    if (mode.kind === "drawing" && mode.shape === shape) {
      this.go({ ...mode, vertices: [...mode.vertices, p], cursor: p });
    } else {
      this.go({ kind: "drawing", shape, vertices: [p], cursor: p });
    }
  }

  /** Backspace while drawing: drop the last vertex; dropping the only one cancels the drawing. */
  removeLastVertex(): void {
    const mode = this.current;
    if (mode.kind !== "drawing" || mode.shape === "box") return;
    if (mode.vertices.length <= 1) this.go({ kind: "idle" });
    else this.go({ ...mode, vertices: mode.vertices.slice(0, -1) });
  }

  moveCursor(p: Point): void {
    const mode = this.current;
    if (mode.kind !== "drawing") return;
    // The cursor is not a state change worth announcing: it moves on every pointer event.
    this.current = { ...mode, cursor: p } as Mode;
  }

  /** End a box drawing; returns its two corners. */
  finishBox(p: Point): [Point, Point] | null {
    const mode = this.current;
    if (mode.kind !== "drawing" || mode.shape !== "box") return null;
    this.go({ kind: "idle" });
    return [mode.anchor, p];
  }

  /** End a polygon or point-set drawing; returns the clicked vertices. */
  finishVertices(): Point[] | null {
    const mode = this.current;
    if (mode.kind !== "drawing" || mode.shape === "box") return null;
    this.go({ kind: "idle" });
    return mode.vertices;
  }

  beginEdit(action: EditAction, uid: number, handle: number, start: Point, before: Point[]): void {
    this.go({ kind: "editing", action, uid, handle, start, before });
  }

  endEdit(): Extract<Mode, { kind: "editing" }> | null {
    const mode = this.current;
    if (mode.kind !== "editing") return null;
    this.go({ kind: "idle" });
    return mode;
  }

  /** Start panning; a polygon being drawn is resumed when the pan ends. */
  beginPan(screen: Point, view: ViewState): void {
    const resume: Mode = this.current.kind === "drawing" ? this.current : { kind: "idle" };
    this.go({ kind: "panning", startScreen: screen, startView: view, resume });
  }

  endPan(): Extract<Mode, { kind: "panning" }> | null {
    const mode = this.current;
    if (mode.kind !== "panning") return null;
    this.go(mode.resume);
    return mode;
  }

  /** Esc: abandon whatever is in progress. */
  cancel(): void {
    if (this.current.kind !== "idle") this.go({ kind: "idle" });
  }

  private go(next: Mode): void {
    if (!TRANSITIONS[this.current.kind].includes(next.kind)) {
      throw new ModeError(`no transition from ${this.current.kind} to ${next.kind}`);
    }
    this.current = next;
    this.notify();
  }

  private notify(): void {
    for (const listener of this.listeners) listener(this.current, this.currentTool);
  }
}
