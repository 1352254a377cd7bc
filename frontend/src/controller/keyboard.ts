/**
 * Turns key presses into model changes. A key is read in a fixed order, and the order decides
 * where two readings are possible: a text field or the "?" overlay first; then Ctrl (or ⌘)
 * combinations; then, without Ctrl or Alt, Shift+digit for tags, the named keys (keyActions), and
 * last digits and letters, where the built-in letters win over a class with the same hotkey. A key
 * the canvas does nothing with keeps the browser's default (Tab moves the focus, Enter presses).
 */
import { clampTranslation, translatePoints } from "../model/geometry";
import type { Tool } from "../model/modes";
import type { Point } from "../types";
import type { Host } from "../view/host";
import type { Renderer } from "../view/renderer";

/** What the keyboard needs from the pointer side, which owns panning and the drawing in progress. */
export interface KeyboardHooks {
  isHelpOpen(): boolean;
  /** Space is held: dragging pans. */
  setSpace(held: boolean): void;
  /** Finish the polygon or points being drawn. */
  finishVertices(): void;
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

export class Keyboard {
  constructor(
    private readonly host: Host,
    private readonly renderer: Renderer,
    private readonly hooks: KeyboardHooks,
  ) {}

  /** The named keys, each answering whether it did something (false: the browser's default stays). */
  private readonly keyActions = new Map<string, (event: KeyboardEvent) => boolean>([
    [" ", always(() => this.hooks.setSpace(true))],
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
    [",", always(() => this.host.openNeighbour(-1))],
    [".", always(() => this.host.openNeighbour(1))],
    ["PageUp", always(() => this.host.openNeighbour(-1))],
    ["PageDown", always(() => this.host.openNeighbour(1))],
    ["/", always(() => this.host.focusSearch())],
  ]);

  keyDown(event: KeyboardEvent): void {
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
    else if (lower === "v" && event.shiftKey && host.config.mode === "annotate") host.copyPrevious();
    else if (lower === "s") host.save();
    else if (event.key === "Enter") {
      if (host.config.mode === "review") host.review("approve");
      else host.submit();
    } else return false;
    return true;
  }

  /**
   * A key without Ctrl or Alt, read in this order: Shift+digit toggles a tag; then the named keys
   * (keyActions: drawing, selection, view); then digits and letters choose classes, except that
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

  /** Escape: stop drawing, else undo the edit in progress, else clear the selection. */
  private cancelKey(): boolean {
    const { doc, modes } = this.host;
    const mode = modes.mode;
    this.host.cancelIssue?.();
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
    if (mode.kind === "drawing" && mode.shape !== "box") this.hooks.finishVertices();
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
      case "i":
        if (shift || host.config.mode !== "review") return false;
        host.startIssue?.();
        return true;
      case "e":
        // Shift+E: the plain letter stays a class's hotkey (a task opened from a finding too).
        return shift && (host.toggleHighlights?.() ?? false);
      case "z":
        if (shift) return false;
        host.zoomToSelection();
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
      const { width, height } = this.host.config.task;
      const [dx, dy] = clampTranslation(selected.bbox, ix * step, iy * step, width, height);
      if (dx !== 0 || dy !== 0) doc.setGeometry(selected.uid, translatePoints(selected.points, dx, dy));
      this.renderer.invalidate("overlay");
    } else {
      view.panBy(-sx * 40 * step, -sy * 40 * step);
      this.host.viewMoved();
    }
  }
}
