// @vitest-environment jsdom
// Review shows who did the work and the version history; two versions diff shape by shape, and
// leaving a task with unsaved changes asks first (issue 9, points 7 and 8).
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import devConfig from "../dev-config.json";
import { LeaveGuard } from "../src/guard";
import { AnnotationDocument } from "../src/model/document";
import { countDiff, diffVersions } from "../src/model/versiondiff";
import { mountWorkspace } from "../src/index";
import type { WorkspaceConfig } from "../src/types";
import { duration } from "../src/view/history";
import type { Workspace } from "../src/workspace";
import { box, LABELS, MemoryStorage } from "./fixtures";

const t = (key: string, params?: Record<string, string | number>) => `${key}${JSON.stringify(params ?? {})}`;

describe("the diff of two versions", () => {
  it("matches shapes by id: removed, added, changed and unchanged", () => {
    const older = [
      box(0, 0, 10, 10, 1, { id: "a" }),
      box(20, 20, 30, 30, 1, { id: "b" }),
      box(40, 40, 50, 50, 1, { id: "c", attributes: { severity: "minor" } }),
      box(60, 60, 70, 70, 2, { id: "d" }),
    ];
    const newer = [
      box(0, 0, 10, 10, 1, { id: "a" }), // unchanged
      box(21, 20, 30, 30, 1, { id: "b" }), // moved
      box(40, 40, 50, 50, 1, { id: "c", attributes: { severity: "major" } }), // attribute
      box(60, 60, 70, 70, 3, { id: "d" }), // class
      box(80, 80, 90, 90, 1, { id: "e" }), // new
    ];
    const entries = diffVersions(older.slice(0, 4), newer);
    const byId = Object.fromEntries(entries.map((e) => [e.shape.id, e.kind]));
    expect(byId).toEqual({ a: "unchanged", b: "changed", c: "changed", d: "changed", e: "added" });
    expect(entries.find((e) => e.shape.id === "b")?.before).toEqual(older[1]);

    const removed = diffVersions(older, [older[0]]);
    expect(countDiff(removed)).toEqual({ removed: 3, added: 0, changed: 0, unchanged: 1 });
    expect(removed.filter((e) => e.kind === "removed").map((e) => e.shape.id)).toEqual(["b", "c", "d"]);
  });

  it("ignores the score, key order of attributes and sub-pixel noise below 1/100 px", () => {
    const older = [box(0, 0, 10, 10, 1, { id: "a", attributes: { x: "1", y: "2" }, score: 0.4 })];
    const newer = [box(0.001, 0, 10, 10, 1, { id: "a", attributes: { y: "2", x: "1" } })];
    expect(countDiff(diffVersions(older, newer)).unchanged).toBe(1);
  });

  it("matches shapes without an id only when identical", () => {
    const older = [box(0, 0, 10, 10), box(20, 20, 30, 30), box(20, 20, 30, 30)];
    const newer = [box(20, 20, 30, 30), box(0, 0, 11, 10)];
    expect(countDiff(diffVersions(older, newer))).toEqual({ removed: 2, added: 1, changed: 0, unchanged: 1 });
  });

  it("can follow drawn shapes: each new or accepted shape gets an id of its own", () => {
    const doc = new AnnotationDocument(LABELS);
    doc.load([box(0, 0, 5, 5)], [], [{ id: 4, modelName: "m", modelVersion: "1", shapes: [box(9, 9, 19, 19)] }]);
    const drawn = doc.addShape({ type: "box", points: [[1, 1], [3, 3]], label: 1 });
    const other = doc.addShape({ type: "box", points: [[1, 1], [3, 3]], label: 1 });
    doc.acceptAllProposals();
    const ids = doc.annotationJSON().map((s) => s.id);
    expect(ids[0]).toBeUndefined(); // loaded as saved: untouched
    expect(drawn.id).toMatch(/^s\w+$/);
    expect(new Set(ids.slice(1)).size).toBe(3);
    expect(ids).toContain(other.id);
  });
});

describe("time spent", () => {
  it("reads as seconds, minutes or hours", () => {
    expect(duration(45.4, t)).toBe('duration.seconds{"s":45}');
    expect(duration(200, t)).toBe('duration.minutes{"m":3,"s":20}');
    expect(duration(3900, t)).toBe('duration.hours{"h":1,"m":5}');
  });
});

describe("the unsaved-changes guard", () => {
  it("lets saved work go without asking", async () => {
    const ask = vi.fn(async () => false);
    const guard = new LeaveGuard({ dirty: false }, ask);
    expect(await guard.mayLeave()).toBe(true);
    expect(ask).not.toHaveBeenCalled();
    const event = new Event("beforeunload", { cancelable: true }) as BeforeUnloadEvent;
    guard.beforeUnload(event);
    expect(event.defaultPrevented).toBe(false);
  });

  it("asks about unsaved work; Cancel stays, OK leaves and the unload prompt is off after", async () => {
    const doc = { dirty: true };
    const answers = [false, true];
    const guard = new LeaveGuard(doc, async () => answers.shift()!);
    const unload = () => {
      const event = new Event("beforeunload", { cancelable: true }) as BeforeUnloadEvent;
      guard.beforeUnload(event);
      return event.defaultPrevented;
    };
    expect(unload()).toBe(true);
    expect(await guard.mayLeave()).toBe(false);
    expect(unload()).toBe(true);
    expect(await guard.mayLeave()).toBe(true);
    expect(unload()).toBe(false);
    guard.stay(); // moving on failed: ask again
    expect(unload()).toBe(true);
  });
});

// ---- in the workspace ---------------------------------------------------------------------------

const VERSIONS = [
  { version: 2, author: 5, author_name: "Li Wei", lead_time: 30, created_at: "2026-12-01T10:05:00Z", proposals: [], tags: [],
    shapes: [box(0, 0, 10, 10, 1, { id: "a" }), box(30, 30, 40, 40, 1, { id: "c" })] },
  { version: 1, author: 5, author_name: "Li Wei", lead_time: 20, created_at: "2026-12-01T10:00:00Z", proposals: [], tags: [],
    shapes: [box(0, 0, 10, 10, 1, { id: "a" }), box(20, 20, 30, 30, 1, { id: "b" })] },
];

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

function config(mode: "annotate" | "review"): WorkspaceConfig {
  const base = structuredClone(devConfig) as unknown as WorkspaceConfig;
  base.mode = mode;
  base.annotation.shapes = VERSIONS[0].shapes;
  base.predictions = [];
  base.api.versions = "/api/tasks/1/annotation/versions/";
  base.annotator = { name: "Li Wei", seconds: 200 };
  return base;
}

const json = (body: unknown, status = 200) =>
  new Response(body === null ? null : JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

function mount(cfg: WorkspaceConfig, fetch = vi.fn(async (_url: string, _init?: RequestInit) => json(VERSIONS))) {
  workspace = mountWorkspace(root, cfg, { storage: new MemoryStorage(), fetch, navigate: vi.fn(), openTask: vi.fn() });
  workspace.flushSidebar();
  return { ws: workspace, fetch };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

describe("review's account of the work", () => {
  it("names the annotator and the time, and lists the versions newest first when opened", async () => {
    const { fetch } = mount(config("review"));
    const section = root.querySelector(".dl-work-section")!;
    expect(section.textContent).toContain("Annotated by Li Wei");
    expect(section.textContent).toContain("Time spent: 3 min 20 s");
    expect(fetch).not.toHaveBeenCalled();
    const details = section.querySelector("details")!;
    details.open = true;
    details.dispatchEvent(new Event("toggle"));
    await settle();
    expect(fetch.mock.calls[0][0]).toBe("/api/tasks/1/annotation/versions/");
    const rows = [...section.querySelectorAll<HTMLElement>(".dl-history-row")];
    expect(rows.map((row) => row.dataset.version)).toEqual(["2", "1"]);
    expect(rows[0].textContent).toContain("Li Wei");
    expect(rows[0].textContent).toContain("2 shapes");
  });

  it("diffs two picked versions read-only, and goes back with Escape", async () => {
    const { ws } = mount(config("review"));
    const details = root.querySelector<HTMLDetailsElement>(".dl-history")!;
    details.open = true;
    details.dispatchEvent(new Event("toggle"));
    await settle();
    const compare = root.querySelector<HTMLButtonElement>(".dl-history-compare")!;
    expect(compare.disabled).toBe(true);
    for (const box of root.querySelectorAll<HTMLInputElement>(".dl-history-pick")) box.click();
    expect(compare.disabled).toBe(false);
    compare.click();
    const legend = [...root.querySelectorAll<HTMLElement>(".dl-diff-legend li")].map((li) => li.textContent);
    expect(legend).toEqual(["Removed: 1", "Added: 1", "Changed: 0", "Unchanged: 1"]);
    expect(root.querySelector(".dl-stage")!.classList.contains("is-diff")).toBe(true);
    // Read-only: the canvas' shortcuts do nothing to the annotation meanwhile.
    window.dispatchEvent(new KeyboardEvent("keydown", { key: "z", ctrlKey: true, bubbles: true }));
    ws.doc.select(ws.doc.shapes[0].uid);
    window.dispatchEvent(new KeyboardEvent("keydown", { key: "Delete", bubbles: true }));
    expect(ws.getShapes().map((shape) => shape.id)).toEqual(["a", "c"]);
    expect(ws.doc.dirty).toBe(false);
    window.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
    expect(root.querySelector(".dl-stage")!.classList.contains("is-diff")).toBe(false);
    expect(root.querySelector<HTMLElement>(".dl-diff-panel")!.hidden).toBe(true);
  });

  it("is not shown to the annotator", () => {
    mount(config("annotate"));
    expect(root.querySelector(".dl-work-section")).toBeNull();
  });
});

describe("skip with unsaved changes", () => {
  it("asks; Cancel keeps the work, the second time OK skips", async () => {
    const { ws, fetch } = mount(config("annotate"));
    ws.doc.addShape({ type: "box", points: [[1, 1], [5, 5]], label: 1 });
    const skipping = ws.skip();
    await settle();
    const dialog = root.querySelector(".dl-confirm")!;
    expect(dialog.textContent).toContain(devConfig.strings["leave.message"]);
    root.querySelector<HTMLButtonElement>(".dl-confirm-cancel")!.click();
    await skipping;
    expect(fetch).not.toHaveBeenCalled();
    expect(ws.getShapes()).toHaveLength(3);
    expect(root.querySelector(".dl-confirm")).toBeNull();

    fetch.mockImplementation(async (url: string) => (url.includes("release") ? json(null, 204) : json({ id: 9 })));
    const again = ws.skip();
    await settle();
    root.querySelector<HTMLButtonElement>(".dl-confirm-ok")!.click();
    await again;
    expect(fetch.mock.calls.map((call) => call[0])).toEqual([ws.config.api.release, ws.config.api.reserve]);
  });

  it("does not ask when everything is saved", async () => {
    const { ws, fetch } = mount(config("annotate"));
    fetch.mockImplementation(async (url: string) => (url.includes("release") ? json(null, 204) : json({ id: 9 })));
    await ws.skip();
    expect(root.querySelector(".dl-confirm")).toBeNull();
    expect(fetch).toHaveBeenCalledTimes(2);
  });
});
