// @vitest-environment jsdom
// The hotkeys where order decides: which key wins when two readings are possible, and which keys
// are left to the browser (default not prevented) so Tab, Enter and Space keep their usual jobs.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import devConfig from "../dev-config.json";
import { mountWorkspace } from "../src/index";
import type { WorkspaceConfig } from "../src/types";
import type { Workspace } from "../src/workspace";
import { box, MemoryStorage } from "./fixtures";

let root: HTMLElement;
let workspace: Workspace | null = null;

function config(): WorkspaceConfig {
  const base = structuredClone(devConfig) as unknown as WorkspaceConfig;
  base.annotation.shapes = [box(10, 10, 50, 50, 1, { attributes: { severity: "minor", direction: "along" } })];
  base.annotation.tags = [];
  base.predictions[0].shapes = [box(100, 100, 200, 200, 2, { score: 0.8 })];
  // A class on a built-in letter (H hides) and one on a free letter.
  base.project.labels[4].hotkey = "h";
  base.project.labels[6].hotkey = "m";
  return base;
}

function mount(cfg = config(), fetch?: (url: string, init?: RequestInit) => Promise<Response>): Workspace {
  workspace = mountWorkspace(root, cfg, { storage: new MemoryStorage(), navigate: vi.fn(), ...(fetch ? { fetch } : {}) });
  return workspace;
}

/** Press `key` on `target`; true when the canvas took it (the browser's default was prevented). */
function press(key: string, init: KeyboardEventInit = {}, target: EventTarget = window): boolean {
  return !target.dispatchEvent(new KeyboardEvent("keydown", { key, bubbles: true, cancelable: true, ...init }));
}

const accepted = (ws: Workspace) => ws.doc.shapes.filter((s) => s.proposal === null);

beforeEach(() => {
  HTMLCanvasElement.prototype.getContext = (() => null) as never;
  root = document.createElement("div");
  document.body.append(root);
});

afterEach(() => {
  workspace?.destroy();
  workspace = null;
  document.body.replaceChildren();
});

describe("hotkeys", () => {
  it("reads Ctrl combinations first: Shift+Z redoes, Z undoes, Y redoes; others go to the browser", () => {
    const ws = mount();
    ws.doc.toggleTag("OK");
    expect(press("z", { ctrlKey: true })).toBe(true);
    expect(ws.getTags()).toEqual([]);
    expect(press("Z", { ctrlKey: true, shiftKey: true })).toBe(true);
    expect(ws.getTags()).toEqual(["OK"]);
    press("z", { metaKey: true });
    expect(press("y", { ctrlKey: true })).toBe(true);
    expect(ws.getTags()).toEqual(["OK"]);
    // Ctrl+B is not the box tool, and Ctrl+C is the browser's.
    expect(press("b", { ctrlKey: true })).toBe(false);
    expect(ws.getMode().tool).toBe("select");
    expect(press("c", { ctrlKey: true })).toBe(false);
  });

  it("saves with Ctrl+S and approves with Ctrl+Enter in review mode", async () => {
    const calls: string[] = [];
    const fetch = vi.fn(async (url: string, init?: RequestInit) => {
      calls.push(`${init?.method} ${url}`);
      return url.includes("/annotation/")
        ? new Response(JSON.stringify({ version: 4 }), { status: 200, headers: { "Content-Type": "application/json" } })
        : new Response(null, { status: 204 });
    });
    const cfg = config();
    cfg.mode = "review";
    mount(cfg, fetch);
    expect(press("s", { ctrlKey: true })).toBe(true);
    await vi.waitFor(() => expect(calls).toEqual(["PUT /api/tasks/101/annotation/"]));
    await vi.waitFor(() => expect(root.classList.contains("is-busy")).toBe(false));
    expect(press("Enter", { ctrlKey: true })).toBe(true);
    await vi.waitFor(() => expect(calls[1]).toBe("POST /api/tasks/101/review/"));
  });

  it("leaves Alt combinations alone", () => {
    const ws = mount();
    expect(press("b", { altKey: true })).toBe(false);
    expect(ws.getMode().tool).toBe("select");
  });

  it("gives built-in letters precedence over a class on the same letter; free letters choose classes", () => {
    const ws = mount();
    const shape = ws.doc.shapes[0];
    ws.reveal(shape.uid);
    expect(press("h")).toBe(true); // hides, not class 5
    expect(shape.hidden).toBe(true);
    expect(ws.activeLabel).toBe(1);
    expect(press("m")).toBe(true);
    expect(ws.activeLabel).toBe(7);
    expect(shape.label).toBe(7);
    expect(press("M", { shiftKey: true })).toBe(false); // Shift+letter is never a class
    expect(press("A", { shiftKey: true })).toBe(false); // nor "accept all"
    expect(ws.doc.proposals()).toHaveLength(1);
    expect(press("L", { shiftKey: true })).toBe(false);
    expect(shape.locked).toBe(false);
    expect(press("H", { shiftKey: true })).toBe(true); // Shift+H: all shapes
    expect(ws.doc.shapes.every((s) => s.hidden)).toBe(true);
    expect(press("K", { shiftKey: true })).toBe(false); // tools only without Shift
    expect(press("k")).toBe(true);
    expect(ws.getMode().tool).toBe("points");
  });

  it("reads digits by their key position: Shift+digit toggles tags, a digit chooses a class", () => {
    const ws = mount();
    expect(press("&", { code: "Digit2" })).toBe(true); // an AZERTY "2"
    expect(ws.activeLabel).toBe(2);
    expect(press("@", { code: "Digit2", shiftKey: true })).toBe(true);
    expect(ws.getTags()).toEqual(["NG"]);
    expect(press("9", { code: "Numpad9" })).toBe(false); // no class on 9
    expect(press(")", { code: "Digit0", shiftKey: true })).toBe(false);
    expect(ws.getTags()).toEqual(["NG"]);
  });

  it("uses Enter and Backspace for the drawing first, then for the selection", () => {
    const ws = mount();
    ws.setTool("polygon");
    for (const p of [[0, 0], [100, 0], [100, 100], [0, 100]] as [number, number][]) ws.modes.addVertex("polygon", p);
    expect(press("Backspace")).toBe(true);
    expect(ws.modes.mode).toMatchObject({ kind: "drawing", vertices: [[0, 0], [100, 0], [100, 100]] });
    expect(accepted(ws)).toHaveLength(1);
    expect(press("Enter")).toBe(true);
    expect(ws.modes.mode.kind).toBe("idle");
    expect(accepted(ws)).toHaveLength(2);
    // Now Backspace deletes the new, selected polygon.
    expect(press("Backspace")).toBe(true);
    expect(accepted(ws)).toHaveLength(1);
    // Enter on a selected proposal accepts it; on nothing it is the browser's.
    expect(press("Enter")).toBe(false);
    ws.reveal(ws.doc.proposals()[0].uid);
    expect(press("Enter")).toBe(true);
    expect(accepted(ws)).toHaveLength(2);
    expect(press("Delete")).toBe(true);
    expect(press("Delete")).toBe(false); // nothing selected
  });

  it("cancels with Escape: the drawing, then the selection", () => {
    const ws = mount();
    ws.reveal(ws.doc.shapes[0].uid);
    ws.setTool("polygon");
    ws.modes.addVertex("polygon", [5, 5]);
    expect(press("Escape")).toBe(true);
    expect(ws.modes.mode.kind).toBe("idle");
    expect(ws.doc.selected).toBeDefined();
    expect(press("Escape")).toBe(true);
    expect(ws.doc.selected).toBeUndefined();
  });

  it("moves Tab through attributes only when the selected shape has some", () => {
    const ws = mount();
    expect(press("Tab")).toBe(false);
    ws.reveal(ws.doc.shapes[0].uid);
    expect(press("Tab")).toBe(true);
    expect(press("Tab", { shiftKey: true })).toBe(true);
    ws.doc.setLabel(ws.doc.shapes[0].uid, 5); // burr: no attributes
    expect(press("Tab")).toBe(false);
  });

  it("leaves Enter, Space and Tab to a focused button, and every key but Escape to a text field", () => {
    const ws = mount();
    const button = root.querySelector(".dl-tag") as HTMLButtonElement;
    expect(press("Enter", {}, button)).toBe(false);
    expect(press(" ", {}, button)).toBe(false);
    expect(press("Tab", {}, button)).toBe(false);
    expect(press("b", {}, button)).toBe(true);
    expect(ws.getMode().tool).toBe("box");
    const search = root.querySelector(".dl-search") as HTMLInputElement;
    const comment = document.createElement("textarea");
    root.append(comment);
    comment.focus();
    expect(press("v", {}, comment)).toBe(false);
    expect(ws.getMode().tool).toBe("box");
    press("Escape", {}, comment);
    expect(document.activeElement).not.toBe(comment);
    expect(press("/")).toBe(true);
    expect(document.activeElement).toBe(search);
  });

  it("zooms with + = and - _ −, rotates with R and Shift+R, fits with F", () => {
    const ws = mount();
    const scale = () => ws.getView().scale;
    const start = scale();
    for (const key of ["+", "="]) expect(press(key)).toBe(true);
    expect(scale()).toBeCloseTo(start * 1.5625);
    for (const key of ["-", "_", "−"]) expect(press(key)).toBe(true);
    expect(scale()).toBeCloseTo(start * 1.5625 * 0.512);
    expect(press("r")).toBe(true);
    expect(ws.getView().rotation).toBe(90);
    expect(press("R", { shiftKey: true })).toBe(true);
    expect(press("R", { shiftKey: true })).toBe(true);
    expect(ws.getView().rotation).toBe(270);
    expect(press("f")).toBe(true);
  });

  it("holds Space for panning, and lets only Escape or ? through while the overlay is open", () => {
    const ws = mount();
    expect(press(" ")).toBe(true);
    expect(root.querySelector(".dl-stage")!.classList.contains("is-space")).toBe(true);
    window.dispatchEvent(new KeyboardEvent("keyup", { key: " " }));
    expect(root.querySelector(".dl-stage")!.classList.contains("is-space")).toBe(false);
    expect(press("?")).toBe(true);
    expect(press("b")).toBe(false);
    expect(ws.getMode().tool).toBe("select");
    expect(press("?")).toBe(true);
    expect((root.querySelector(".dl-help") as HTMLElement).hidden).toBe(true);
  });

  it("nudges the selected shape with the arrows (Shift: 10 px), and pans when nothing is selected", () => {
    const ws = mount();
    const view = ws.getView();
    expect(press("ArrowRight")).toBe(true);
    expect(ws.getView().x).toBeCloseTo(view.x - 40);
    ws.reveal(ws.doc.shapes[0].uid);
    press("ArrowDown", { shiftKey: true });
    press("ArrowLeft");
    expect(ws.getShapes()[0].points).toEqual([[9, 20], [49, 60]]);
  });
});

/** Pointer events on the canvas, in screen px (the view starts unscaled in a DOM test). */
function pointer(type: string, x: number, y: number): void {
  const canvas = root.querySelector("canvas.dl-layer-overlay")!;
  canvas.dispatchEvent(new MouseEvent(type, { clientX: x, clientY: y, button: 0, buttons: type === "pointerup" ? 0 : 1, bubbles: true, cancelable: true }));
}

function drawBox(x1: number, y1: number, x2: number, y2: number): void {
  press("b");
  pointer("pointerdown", x1, y1);
  pointer("pointermove", x2, y2);
  pointer("pointerup", x2, y2);
}

function drawPolygon(points: [number, number][]): void {
  press("p");
  for (const [x, y] of points) {
    pointer("pointerdown", x, y);
    pointer("pointerup", x, y);
  }
  press("Enter");
}

describe("class keys and the selection", () => {
  it("choose the class of the next shape: 1, draw, 2, draw, 3, draw polygon gives classes 1, 2, 3", () => {
    const ws = mount();
    ws.setView({ scale: 1, x: 0, y: 0, rotation: 0 });
    press("1");
    drawBox(300, 300, 400, 380);
    press("2");
    drawBox(500, 300, 600, 380);
    press("3");
    drawPolygon([[700, 300], [800, 310], [790, 420], [710, 400]]);
    const drawn = accepted(ws).slice(1);
    expect(drawn.map((s) => s.type)).toEqual(["box", "box", "polygon"]);
    expect(drawn.map((s) => s.label)).toEqual([1, 2, 3]);
    // The polygon just drawn is still selected (Delete removes it), and the next class key is for the next shape.
    expect(ws.doc.selected).toBe(drawn[2]);
    press("4");
    expect(drawn[2].label).toBe(3);
    expect(ws.activeLabel).toBe(4);
    expect(ws.doc.canUndo).toBe(true);
    ws.doc.undo(); // the polygon goes: its class was never changed
    expect(accepted(ws)).toHaveLength(3);
  });

  it("keep the chosen class when a just-drawn shape's attribute changes", () => {
    const ws = mount();
    ws.setView({ scale: 1, x: 0, y: 0, rotation: 0 });
    press("1");
    drawBox(300, 300, 400, 380);
    press("2");
    press("]"); // the drawn scratch's severity: its selection must not take the class back
    expect(accepted(ws)[1].attributes.severity).toBe("major");
    expect(ws.activeLabel).toBe(2);
    drawBox(500, 300, 600, 380);
    expect(accepted(ws).slice(1).map((s) => s.label)).toEqual([1, 2]);
  });

  it("relabel a shape the person clicked, with a highlight and a notice, and Ctrl+Z undoes it", () => {
    vi.useFakeTimers();
    try {
      const ws = mount();
      ws.setView({ scale: 1, x: 0, y: 0, rotation: 0 });
      const shape = ws.doc.shapes[0];
      pointer("pointerdown", 30, 30); // inside the scratch at (10, 10)–(50, 50), with the select tool
      pointer("pointerup", 30, 30);
      expect(ws.doc.selected).toBe(shape);
      expect(ws.doc.relabelTarget).toBe(shape);
      expect(press("2")).toBe(true);
      expect(shape.label).toBe(2);
      expect(ws.activeLabel).toBe(2);
      const panel = root.querySelector(".dl-selection")!;
      expect(panel.classList.contains("is-relabelled")).toBe(true);
      expect(root.querySelector(".dl-notice")?.textContent).toContain("Class changed to dent");
      vi.advanceTimersByTime(1000);
      expect(panel.classList.contains("is-relabelled")).toBe(false);
      expect(press("z", { ctrlKey: true })).toBe(true);
      expect(shape.label).toBe(1);
      expect(ws.activeLabel).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it("relabel a shape picked in the list, and a just-drawn shape once the person clicks it", () => {
    const ws = mount();
    ws.setView({ scale: 1, x: 0, y: 0, rotation: 0 });
    ws.flushSidebar();
    (root.querySelector(".dl-shape-row") as HTMLElement).click();
    expect(ws.doc.selectionPicked).toBe(true);
    press("3");
    expect(ws.doc.shapes[0].label).toBe(3);
    press("1");
    drawBox(300, 300, 400, 380);
    const drawn = accepted(ws)[1];
    expect(ws.doc.relabelTarget).toBeUndefined();
    press("v");
    pointer("pointerdown", 350, 340);
    pointer("pointerup", 350, 340);
    expect(ws.doc.relabelTarget).toBe(drawn);
    press("2");
    expect(drawn.label).toBe(2);
  });
});
