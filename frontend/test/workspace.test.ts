// @vitest-environment jsdom
// The workspace in a DOM without a canvas backend: keyboard, sidebar and the save / submit flow.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import devConfig from "../dev-config.json";
import { autoMount, mountWorkspace } from "../src/index";
import { draftKey } from "../src/model/draft";
import type { ShapeJSON, WorkspaceConfig } from "../src/types";
import type { Workspace } from "../src/workspace";
import { box, MemoryStorage } from "./fixtures";

type Call = { url: string; method: string; body: unknown };

function config(overrides: Partial<WorkspaceConfig> = {}): WorkspaceConfig {
  const base = structuredClone(devConfig) as unknown as WorkspaceConfig;
  base.annotation.shapes = [box(10, 10, 50, 50, 1, { attributes: { severity: "minor", direction: "along" } })];
  base.annotation.tags = [];
  base.predictions[0].shapes = [box(100, 100, 200, 200, 2, { score: 0.8 })];
  return { ...base, ...overrides };
}

function server(responses: Record<string, () => Response>) {
  const calls: Call[] = [];
  const fetch = vi.fn(async (url: string, init?: RequestInit) => {
    calls.push({ url, method: init?.method ?? "GET", body: init?.body ? JSON.parse(String(init.body)) : undefined });
    const make = responses[`${init?.method} ${url}`];
    return make ? make() : new Response(null, { status: 500 });
  });
  return { calls, fetch };
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

function press(key: string, init: KeyboardEventInit = {}) {
  window.dispatchEvent(new KeyboardEvent("keydown", { key, bubbles: true, cancelable: true, ...init }));
}

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

function mount(cfg = config(), options: Parameters<typeof mountWorkspace>[2] = {}) {
  workspace = mountWorkspace(root, cfg, { storage: new MemoryStorage(), ...options });
  return workspace;
}

describe("the workspace", () => {
  it("shows only server-provided text", () => {
    const cfg = config();
    cfg.strings = Object.fromEntries(Object.keys(cfg.strings).map((k) => [k, `«${k}»`]));
    mount(cfg);
    const text = root.textContent ?? "";
    expect(text).toContain("«action.submit»");
    expect(text).not.toMatch(/\bSubmit\b|\bUndo\b|\bClasses\b/);
  });

  it("exposes itself for benchmarks and round-trips shapes", () => {
    const ws = mount();
    expect(window.__defectlabWorkspace).toBe(ws);
    const shapes: ShapeJSON[] = [box(1, 1, 5, 5, 3, { attributes: {} })];
    ws.loadShapes(shapes);
    expect(ws.getShapes()).toEqual(shapes);
    ws.setView({ scale: 2, x: 10, y: 20, rotation: 90 });
    expect(ws.getView()).toEqual({ scale: 2, x: 10, y: 20, rotation: 90 });
    ws.renderNow();
    expect(ws.frameStats().frames).toBe(1);
    ws.resetFrameStats();
    expect(ws.frameStats()).toEqual({ frames: 0, maxMs: 0, totalMs: 0 });
  });

  it("mounts itself from #workspace and #workspace-config, once", () => {
    const page = document.createElement("div");
    page.id = "workspace";
    const source = document.createElement("script");
    source.type = "application/json";
    source.id = "workspace-config";
    source.textContent = JSON.stringify(config());
    document.body.append(page, source);
    const first = autoMount();
    expect(first).not.toBeNull();
    expect(mountWorkspace(page, config())).toBe(first);
    first!.destroy();
  });

  it("switches tools by key and by button", () => {
    const ws = mount();
    press("b");
    expect(ws.getMode().tool).toBe("box");
    press("p");
    expect(ws.getMode().tool).toBe("polygon");
    (root.querySelector(".dl-tool") as HTMLButtonElement).click();
    expect(ws.getMode().tool).toBe("select");
  });

  it("toggles image tags with Shift+digit and by clicking", () => {
    const ws = mount();
    press("!", { shiftKey: true, code: "Digit1" });
    expect(ws.getTags()).toEqual(["OK"]);
    (root.querySelectorAll(".dl-tag")[1] as HTMLButtonElement).click();
    expect(ws.getTags().sort()).toEqual(["NG", "OK"]);
    press("z", { ctrlKey: true });
    expect(ws.getTags()).toEqual(["OK"]);
  });

  it("changes the selected shape's class with its hotkey and attributes with [ ]", () => {
    const ws = mount();
    ws.reveal(ws.doc.shapes[0].uid);
    press("2", { code: "Digit2" });
    expect(ws.getShapes()[0].label).toBe(2);
    press("]");
    expect(ws.getShapes()[0].attributes).toEqual({ severity: "major" });
    press("Delete");
    expect(ws.getShapes()).toEqual([]);
    press("y", { ctrlKey: true }); // nothing to redo
    press("z", { ctrlKey: true });
    expect(ws.getShapes()).toHaveLength(1);
  });

  it("accepts all proposals with A", () => {
    const ws = mount();
    press("a");
    expect(ws.getShapes()).toHaveLength(2);
  });

  it("counts the proposals waiting for a decision apart from the shapes, and numbers them apart", () => {
    const cfg = config();
    cfg.annotation.shapes = [];
    cfg.predictions[0].shapes = [1, 2, 3, 4].map((i) => box(100 * i, 100, 100 * i + 50, 150, 2, { score: 0.5 }));
    const ws = mount(cfg);
    ws.flushSidebar();
    const text = (selector: string) => (root.querySelector(selector) as HTMLElement).textContent;
    const proposalCount = root.querySelector(".dl-count-proposals") as HTMLElement;
    expect(text(".dl-count-shapes")).toBe("0");
    expect(proposalCount.hidden).toBe(false);
    expect(text(".dl-count-proposals")).toBe("4 proposals");
    expect(text(".dl-statusline")).toContain("0 shapes · 4 proposals");
    // A shape drawn now is the first shape, not the fifth.
    ws.doc.addShape({ type: "box", points: [[10, 10], [40, 40]], label: 1 });
    ws.reveal(ws.doc.shapes[4].uid);
    ws.flushSidebar();
    expect(text(".dl-count-shapes")).toBe("1");
    expect(text(".dl-statusline")).toContain("1 shapes · 4 proposals");
    expect(text(".dl-selection-head")).toContain("#1 ·");
    expect([...root.querySelectorAll(".dl-shape-index")].map((el) => el.textContent)).toEqual(["1", "2", "3", "4", "1"]);
    press("a");
    ws.flushSidebar();
    expect(text(".dl-count-shapes")).toBe("5");
    expect(proposalCount.hidden).toBe(true);
    expect(text(".dl-statusline")).not.toContain("proposals");
  });

  it("keeps the shape list small with 2,000 shapes", () => {
    const ws = mount();
    ws.loadShapes(Array.from({ length: 2000 }, (_, i) => box(i, i, i + 5, i + 5, 3)));
    ws.flushSidebar();
    expect(ws.sidebarRows).toBeLessThan(30);
    expect(root.querySelectorAll(".dl-shape-row").length).toBeLessThan(30);
  });

  it("submits, then opens the next task", async () => {
    const { calls, fetch } = server({
      "PUT /api/tasks/101/annotation/": () => json(200, { version: 4, shapes: [], tags: [] }),
      "POST /api/projects/7/next-task/": () => json(200, { id: 202 }),
    });
    const navigate = vi.fn();
    const ws = mount(config({ predictions: [] }), { fetch, navigate });
    press("2", { code: "Digit2" }); // choose a class: nothing selected, nothing changes
    await ws.submit();
    expect(calls.map((c) => `${c.method} ${c.url}`)).toEqual(["PUT /api/tasks/101/annotation/", "POST /api/projects/7/next-task/"]);
    expect(calls[0].body).toMatchObject({ version: 3, tags: [], submit: true, shapes: [{ type: "box", label: 1 }] });
    expect(typeof (calls[0].body as { lead_time: number }).lead_time).toBe("number");
    expect(navigate).toHaveBeenCalledWith("/tasks/202/annotate/");
  });

  it("shows an image handed over by the session, then fetches the next task's ahead", async () => {
    const bitmap = { width: 1600, height: 1200 };
    const images = { take: vi.fn(() => Promise.resolve(bitmap)), prefetch: vi.fn(), drop: vi.fn() };
    const cfg = config({ likelyNext: { id: 102, imageUrl: "/media/next" } });
    mount(cfg, { images: images as never });
    expect(images.take).toHaveBeenCalledWith(101);
    await vi.waitFor(() => expect(root.querySelector(".dl-loading")).toBeNull());
    expect(images.prefetch).toHaveBeenCalledWith(102, "/media/next");
  });

  it("opens the next task through the session when it has one", async () => {
    const { fetch } = server({
      "PUT /api/tasks/101/annotation/": () => json(200, { version: 4, shapes: [], tags: [] }),
      "POST /api/projects/7/next-task/": () => json(200, { id: 202 }),
    });
    const openTask = vi.fn();
    const navigate = vi.fn();
    const ws = mount(config({ predictions: [] }), { fetch, openTask, navigate });
    await ws.submit();
    expect(openTask).toHaveBeenCalledWith(202);
    expect(navigate).not.toHaveBeenCalled();
  });

  it("asks once before submitting with undecided proposals", async () => {
    const { calls, fetch } = server({
      "PUT /api/tasks/101/annotation/": () => json(200, { version: 4 }),
      "POST /api/projects/7/next-task/": () => new Response(null, { status: 204 }),
    });
    root.dataset.projectUrl = "/projects/7/";
    const ws = mount(config(), { fetch, navigate: vi.fn() });
    await ws.submit();
    expect(calls).toHaveLength(0);
    expect(root.querySelector(".dl-notice-warning")).not.toBeNull();
    await ws.submit();
    expect(calls).toHaveLength(2);
    // 204: nothing left, the done message replaces the workspace.
    expect(root.textContent).toContain(devConfig.strings.done);
    expect(root.querySelector("a")?.getAttribute("href")).toBe("/projects/7/");
  });

  it("keeps the draft and says so when the server answers 409 stale", async () => {
    const storage = new MemoryStorage();
    const { fetch } = server({
      "PUT /api/tasks/101/annotation/": () => json(409, { error: { code: "stale", message: "changed", details: { version: 5 } } }),
    });
    const ws = mount(config(), { fetch, storage, navigate: vi.fn() });
    ws.doc.toggleTag("NG");
    const ok = await ws.save();
    expect(ok).toBe(false);
    expect(root.textContent).toContain(devConfig.strings["error.stale"]);
    expect(storage.getItem(draftKey(101, 3))).toContain('"NG"');
  });

  it("restores a draft on reload with a notice, and clears it after a successful save", async () => {
    const storage = new MemoryStorage();
    const first = mount(config(), { storage });
    first.doc.toggleTag("OK");
    first.doc.addShape({ type: "box", points: [[1, 1], [9, 9]], label: 3 });
    first.destroy(); // like closing the tab: the draft is flushed
    workspace = null;
    root.replaceChildren();

    const { fetch } = server({ "PUT /api/tasks/101/annotation/": () => json(200, { version: 4 }) });
    const second = mount(config(), { storage, fetch });
    expect(second.getTags()).toEqual(["OK"]);
    expect(second.getShapes()).toHaveLength(2);
    expect(root.textContent).toContain(devConfig.strings["draft.restored"]);
    await second.save();
    expect(storage.length).toBe(0);
  });

  it("in review mode, rejecting needs a comment and then posts the verdict", async () => {
    const { calls, fetch } = server({
      "POST /api/tasks/101/review/": () => json(201, { id: 1 }),
      "POST /api/projects/7/next-task/": () => new Response(null, { status: 204 }),
    });
    const ws = mount(config({ mode: "review" }), { fetch, navigate: vi.fn() });
    await ws.review("reject");
    expect(calls).toHaveLength(0);
    const comment = root.querySelector("textarea") as HTMLTextAreaElement;
    comment.value = "Scratch at the left edge is missing";
    await ws.review("reject");
    expect(calls[0]).toEqual({ url: "/api/tasks/101/review/", method: "POST", body: { verdict: "reject", comment: "Scratch at the left edge is missing" } });
  });

  it("sends the CSRF token on writes", async () => {
    const fetch = vi.fn(async () => new Response(null, { status: 204 }));
    const ws = mount(config(), { fetch, navigate: vi.fn() });
    await ws.skip();
    const init = (fetch.mock.calls[0] as unknown as [string, RequestInit])[1];
    expect((init.headers as Record<string, string>)["X-CSRFToken"]).toBe("dev-csrf-token");
    expect(init.credentials).toBe("same-origin");
  });

  it("opens and closes the shortcut overlay with ?", () => {
    mount();
    const overlay = root.querySelector(".dl-help") as HTMLElement;
    expect(overlay.hidden).toBe(true);
    press("?");
    expect(overlay.hidden).toBe(false);
    expect(overlay.querySelectorAll("tr").length).toBeGreaterThan(20);
    press("Escape");
    expect(overlay.hidden).toBe(true);
  });
});
