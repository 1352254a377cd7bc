// @vitest-environment jsdom
// The review workspace shows the submitted shapes only (issue 9): the model's proposals are an
// optional faded layer, nothing in review accepts them, and saves tell the server their fates.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import devConfig from "../dev-config.json";
import { mountWorkspace } from "../src/index";
import type { WorkspaceConfig } from "../src/types";
import type { Workspace } from "../src/workspace";
import { box, MemoryStorage } from "./fixtures";

const SUBMITTED = [box(100, 100, 200, 200, 2, { attributes: { severity: "minor" } })];

function config(mode: "annotate" | "review"): WorkspaceConfig {
  const base = structuredClone(devConfig) as unknown as WorkspaceConfig;
  base.mode = mode;
  base.annotation.shapes = SUBMITTED;
  base.annotation.tags = [];
  base.predictions[0].shapes = [
    box(100, 100, 200, 200, 2, { score: 0.8, attributes: { severity: "minor" } }),
    box(300, 300, 400, 400, 2, { score: 0.5, attributes: { severity: "minor" } }),
  ];
  base.predictions[0].fates = ["accepted", "dropped"];
  return base;
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

function mount(cfg: WorkspaceConfig, fetch?: (url: string, init?: RequestInit) => Promise<Response>) {
  workspace = mountWorkspace(root, cfg, { storage: new MemoryStorage(), fetch, navigate: vi.fn() });
  workspace.flushSidebar();
  return workspace;
}

describe("review", () => {
  it("shows exactly the submitted shapes, and A accepts nothing", () => {
    const ws = mount(config("review"));
    expect(ws.getShapes()).toEqual(SUBMITTED);
    expect(ws.doc.proposals()).toHaveLength(0);
    window.dispatchEvent(new KeyboardEvent("keydown", { key: "a", bubbles: true, cancelable: true }));
    expect(ws.getShapes()).toEqual(SUBMITTED);
  });

  it("offers no accept-all, only a toggle for the faded proposals, off at first", () => {
    const ws = mount(config("review"));
    const section = root.querySelector(".dl-predictions")!;
    expect(section.textContent).not.toContain(devConfig.strings["predictions.acceptAll"]);
    const toggle = section.querySelector<HTMLButtonElement>(".dl-reference-toggle")!;
    expect(toggle.getAttribute("aria-pressed")).toBe("false");
    toggle.click();
    ws.flushSidebar();
    expect(ws.doc.showReference).toBe(true);
    expect(root.querySelector(".dl-reference-toggle")!.getAttribute("aria-pressed")).toBe("true");
    expect(ws.getShapes()).toEqual(SUBMITTED);
  });

  it("lists no proposal shortcuts in the help", () => {
    mount(config("review"));
    expect(root.querySelector(".dl-help")?.textContent).not.toContain(devConfig.strings["help.acceptAll"]);
  });
});

describe("annotating", () => {
  it("does not offer decided proposals again, and a save says what became of the rest", async () => {
    const cfg = config("annotate");
    cfg.predictions[0].fates = ["accepted", null];
    const bodies: unknown[] = [];
    const fetch = vi.fn(async (_url: string, init?: RequestInit) => {
      bodies.push(JSON.parse(String(init?.body)));
      return new Response(JSON.stringify({ version: 4 }), { status: 200, headers: { "Content-Type": "application/json" } });
    });
    const ws = mount(cfg, fetch);
    expect(ws.doc.proposals()).toHaveLength(1);
    ws.doc.removeShapes([ws.doc.proposals()[0].uid]);
    await ws.save();
    expect(bodies[0]).toMatchObject({ shapes: SUBMITTED, proposals: [{ prediction: 11, index: 1, fate: "dropped" }] });
  });
});
