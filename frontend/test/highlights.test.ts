// @vitest-environment jsdom
// Label-error highlights (issue 14): the page hands over boxes a finding points at; the canvas
// draws them as a layer nobody can edit, lists them with their explanations, centres on the
// first, hides and shows them with E, and leaves the annotation (and its undo history) alone.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import devConfig from "../dev-config.json";
import { highlightFocus, MAX_HIGHLIGHTS, readHighlights, screenRect, type Highlight } from "../src/highlights";
import { mountWorkspace } from "../src/index";
import type { WorkspaceConfig } from "../src/types";
import type { Workspace } from "../src/workspace";
import { box, MemoryStorage } from "./fixtures";

const GOOD = [
  { box: [100, 100, 200, 180], kind: "missing", text: "A scratch the model sees (0.91) is not labelled.", shape: "" },
  { box: [300, 300, 360, 340], kind: "wrong_class", text: "Labelled dent, the model says scratch.", shape: "s1" },
];

describe("reading highlights from the config", () => {
  it("keeps good ones in order and clips them to the image", () => {
    const read = readHighlights([...GOOD, { box: [3900, 2900, 4100, 3100], kind: "extra", text: " edge ", shape: "x" }], 4000, 3000);
    expect(read.map((h) => h.kind)).toEqual(["missing", "wrong_class", "extra"]);
    expect(read[2]).toEqual({ box: [3900, 2900, 4000, 3000], kind: "extra", text: "edge", shape: "x" });
  });

  it("leaves out what cannot be drawn, whatever the page sent", () => {
    const bad: unknown[] = [
      null,
      7,
      "box",
      { box: [10, 10, 5, 20], kind: "missing" }, // x2 < x1
      { box: [10, 10, 10, 20], kind: "missing" }, // no width
      { box: [10, 10, 20], kind: "missing" },
      { box: [10, 10, 20, "30"], kind: "missing" },
      { box: [10, Number.NaN, 20, 30], kind: "missing" },
      { box: [10, 10, 20, Number.POSITIVE_INFINITY], kind: "missing" },
      { box: [10, 10, 20, 30], kind: "sideways" },
      { box: [10, 10, 20, 30] },
      { box: [5000, 10, 5100, 30], kind: "loose_box" }, // wholly off the image
      { kind: "missing" },
    ];
    expect(readHighlights(bad, 4000, 3000)).toEqual([]);
    expect(readHighlights(undefined, 4000, 3000)).toEqual([]);
    expect(readHighlights({ box: [1, 2, 3, 4], kind: "missing" }, 4000, 3000)).toEqual([]);
  });

  it("takes missing text and shape as empty, and caps how many and how long", () => {
    const [one] = readHighlights([{ box: [1, 2, 30, 40], kind: "loose_box", text: 5, shape: 9 }], 100, 100);
    expect(one).toEqual({ box: [1, 2, 30, 40], kind: "loose_box", text: "", shape: "" });
    const many = Array.from({ length: 80 }, () => ({ box: [1, 1, 9, 9], kind: "extra", text: "x".repeat(500), shape: "" }));
    const read = readHighlights(many, 100, 100);
    expect(read).toHaveLength(MAX_HIGHLIGHTS);
    expect(read[0].text).toHaveLength(300);
  });

  it("does not clip to a size still unknown", () => {
    expect(readHighlights([GOOD[0]], 0, 0)[0].box).toEqual([100, 100, 200, 180]);
  });
});

describe("where to look", () => {
  const at = (box: [number, number, number, number]): Highlight => ({ box, kind: "missing", text: "", shape: "" });

  it("shows a big box with half its size around it", () => {
    expect(highlightFocus(at([100, 100, 500, 300]))).toEqual({ minX: -100, minY: 0, maxX: 700, maxY: 400 });
  });

  it("shows a tiny defect with its surroundings", () => {
    const r = highlightFocus(at([100, 100, 104, 102]), 120);
    expect(r.maxX - r.minX).toBe(120);
    expect(r.maxY - r.minY).toBe(120);
    expect((r.minX + r.maxX) / 2).toBe(102);
  });

  it("puts a box on screen the same way under a quarter turn", () => {
    const turned = (p: [number, number]): [number, number] => [500 - p[1], p[0]];
    expect(screenRect([100, 10, 200, 60], turned)).toEqual({ left: 440, top: 100, width: 50, height: 100 });
    expect(screenRect([100, 10, 200, 60], (p) => [p[0] * 2, p[1] * 2])).toEqual({ left: 200, top: 20, width: 200, height: 100 });
  });
});

describe("highlights in the workspace", () => {
  let root: HTMLElement;
  let workspace: Workspace | null = null;

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

  function mount(highlights: unknown, change?: (cfg: WorkspaceConfig) => void): Workspace {
    const cfg = structuredClone(devConfig) as unknown as WorkspaceConfig;
    change?.(cfg);
    cfg.annotation.shapes = [box(300, 300, 360, 340, 2, { id: "s1" }), box(10, 10, 50, 50, 1, { id: "s2" })];
    cfg.annotation.tags = [];
    cfg.predictions = [];
    cfg.highlights = highlights;
    workspace = mountWorkspace(root, cfg, { storage: new MemoryStorage() });
    workspace.flushSidebar();
    return workspace;
  }

  const press = (key: string, shiftKey = false) =>
    window.dispatchEvent(new KeyboardEvent("keydown", { key, shiftKey, bubbles: true, cancelable: true }));

  it("draws a layer that takes no pointer and lists each with its text", () => {
    mount([...GOOD, { box: [1, 1, 0, 0], kind: "missing", text: "bad", shape: "" }]);
    const outlines = root.querySelectorAll(".dl-highlights .dl-highlight");
    expect(outlines).toHaveLength(2);
    expect(outlines[0].classList.contains("is-missing")).toBe(true);
    expect(outlines[0].textContent).toContain("1");
    const rows = root.querySelectorAll(".dl-highlights-section .dl-highlight-row");
    expect(Array.from(rows, (row) => row.querySelector(".dl-highlight-text")?.textContent)).toEqual(GOOD.map((h) => h.text));
    expect((root.querySelector(".dl-highlights-section") as HTMLElement).hidden).toBe(false);
    expect(root.querySelector(".dl-highlights-section h2")?.textContent).toContain(devConfig.strings["highlights.title"]);
    // Above the shapes, under the issue pins.
    const layer = root.querySelector(".dl-highlights") as HTMLElement;
    expect(layer.nextElementSibling?.classList.contains("dl-pins")).toBe(true);
  });

  it("is not there at all without highlights, and Shift+E does nothing", () => {
    const ws = mount(undefined);
    expect((root.querySelector(".dl-highlights-section") as HTMLElement).hidden).toBe(true);
    expect(ws.toggleHighlights()).toBe(false);
  });

  it("hides and shows them with Shift+E and the button, whose label stays put", () => {
    const ws = mount(GOOD);
    const layer = root.querySelector(".dl-highlights") as HTMLElement;
    const button = root.querySelector(".dl-highlight-toggle") as HTMLButtonElement;
    const label = button.textContent;
    expect(label).toBe(devConfig.strings["highlights.show"]);
    expect(button.getAttribute("aria-pressed")).toBe("true");
    press("E", true);
    expect(layer.classList.contains("is-off")).toBe(true);
    expect(button.textContent).toBe(label);
    expect(button.getAttribute("aria-pressed")).toBe("false");
    button.click();
    expect(ws.highlights.shown).toBe(true);
    expect(button.getAttribute("aria-pressed")).toBe("true");
    expect(button.textContent).toBe(label);
  });

  it("leaves a plain E to a class whose hotkey it is", () => {
    const cfg = structuredClone(devConfig) as unknown as WorkspaceConfig;
    const ws = mount(GOOD, (c) => {
      c.project.labels = cfg.project.labels.map((l, i) => ({ ...l, hotkey: i === 1 ? "e" : "" }));
    });
    const wanted = ws.config.project.labels[1].id;
    expect(ws.activeLabel).not.toBe(wanted);
    press("e");
    expect(ws.activeLabel).toBe(wanted);
    expect(ws.highlights.shown).toBe(true);
    press("E", true);
    expect(ws.highlights.shown).toBe(false);
    expect(ws.activeLabel).toBe(wanted);
  });

  it("lists Shift+E for the highlights in the shortcut overlay", () => {
    mount(GOOD);
    const rows = Array.from(root.querySelectorAll(".dl-help tr, .dl-help li, .dl-help .dl-help-row"));
    const row = rows.find((r) => r.textContent?.includes(devConfig.strings["help.highlights"]));
    expect(row?.textContent).toContain("Shift");
    expect(row?.textContent).toContain("E");
  });

  it("lists them as buttons in list items, pressed by Enter and Space", () => {
    mount(GOOD);
    const list = root.querySelector(".dl-highlight-list") as HTMLElement;
    const items = Array.from(list.children) as HTMLElement[];
    expect(items.map((item) => item.tagName)).toEqual(["LI", "LI"]);
    const rows = items.map((item) => item.querySelector(".dl-highlight-row") as HTMLButtonElement);
    expect(rows.map((row) => row.tagName)).toEqual(["BUTTON", "BUTTON"]);
    expect(rows.every((row) => row.type === "button")).toBe(true);
    // The canvas's keys leave a focused button alone (so the browser presses it): Enter does not
    // accept a proposal, Space does not start panning.
    rows[1].focus();
    for (const key of ["Enter", " "]) {
      const event = new KeyboardEvent("keydown", { key, bubbles: true, cancelable: true });
      rows[1].dispatchEvent(event);
      expect(event.defaultPrevented).toBe(false);
    }
    rows[1].click();
    expect(rows[1].classList.contains("is-focused")).toBe(true);
    expect(rows[1].getAttribute("aria-current")).toBe("true");
    expect(rows[0].getAttribute("aria-current")).toBe("false");
  });

  it("centres on the first once, selects the shape a highlight names, and saves nothing of them", () => {
    const ws = mount(GOOD);
    const before = JSON.stringify(ws.getShapes());
    ws.highlights.centreFirst();
    expect(root.querySelector(".dl-highlight.is-focused")?.getAttribute("data-index")).toBe("0");
    expect(ws.doc.selected).toBeUndefined(); // the first names no shape
    (root.querySelectorAll(".dl-highlight-row")[1] as HTMLElement).click();
    expect(ws.doc.selected?.id).toBe("s1");
    expect(root.querySelector(".dl-highlight-row.is-focused")?.getAttribute("data-index")).toBe("1");
    ws.highlights.centreFirst(); // only once: the person's choice stays
    expect(root.querySelector(".dl-highlight.is-focused")?.getAttribute("data-index")).toBe("1");
    expect(JSON.stringify(ws.getShapes())).toBe(before);
    expect(ws.doc.canUndo).toBe(false);
  });
});
