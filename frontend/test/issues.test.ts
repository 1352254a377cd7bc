// @vitest-environment jsdom
// Review issues (issue 9): the reviewer pins a remark on a shape or a point with I, the pins are
// numbered over the image and listed in the sidebar; the annotator jumps to each and resolves it.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import devConfig from "../dev-config.json";
import { mountWorkspace } from "../src/index";
import { draftAt, focusRect } from "../src/issues";
import type { IssueJSON, WorkspaceConfig } from "../src/types";
import type { Workspace } from "../src/workspace";
import { box, MemoryStorage } from "./fixtures";

const ISSUE: IssueJSON = { id: 7, point: [100, 100], shape: "s1", box: [100, 100, 200, 200], message: "Too short", resolved: false };

function config(mode: "annotate" | "review", issues: IssueJSON[] = []): WorkspaceConfig {
  const base = structuredClone(devConfig) as unknown as WorkspaceConfig;
  base.mode = mode;
  base.annotation.shapes = [box(100, 100, 200, 200, 2, { id: "s1", attributes: { severity: "minor" } }), box(300, 300, 350, 350, 2)];
  base.annotation.tags = [];
  base.predictions = [];
  base.issues = issues;
  base.api = { ...base.api, issues: "/api/tasks/101/issues/", issue: "/api/issues/{id}/" };
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

type Call = { url: string; body: unknown };

function server(answer: (call: Call) => unknown, status = 201) {
  const calls: Call[] = [];
  const fetch = vi.fn(async (url: string, init?: RequestInit) => {
    const call = { url, body: init?.body ? JSON.parse(String(init.body)) : null };
    calls.push(call);
    return new Response(JSON.stringify(answer(call)), { status, headers: { "Content-Type": "application/json" } });
  });
  return { calls, fetch };
}

function mount(cfg: WorkspaceConfig, fetch?: (url: string, init?: RequestInit) => Promise<Response>): Workspace {
  workspace = mountWorkspace(root, cfg, { storage: new MemoryStorage(), fetch, navigate: vi.fn() });
  workspace.flushSidebar();
  return workspace;
}

function press(key: string): boolean {
  return !window.dispatchEvent(new KeyboardEvent("keydown", { key, bubbles: true, cancelable: true }));
}

const flush = () => new Promise((resolve) => setTimeout(resolve, 0));

describe("placing an issue", () => {
  it("goes on a shape's box corner with its id, or at a rounded point", () => {
    const ws = mount(config("review"));
    const [first, second] = ws.doc.shapes;
    expect(draftAt([5, 5], first)).toEqual({ point: [100, 100], box: [100, 100, 200, 200], shape: "s1" });
    expect(draftAt([5, 5], second)).toEqual({ point: [300, 300], box: [300, 300, 350, 350] });
    expect(draftAt([10.4, 20.6], null)).toEqual({ point: [10, 21] });
  });

  it("brings a shape's box with a margin into view, or a square around a point", () => {
    expect(focusRect(ISSUE)).toEqual({ minX: 50, minY: 50, maxX: 250, maxY: 250 });
    expect(focusRect({ ...ISSUE, box: null }, 100)).toEqual({ minX: 50, minY: 50, maxX: 150, maxY: 150 });
  });
});

describe("review issues", () => {
  it("I pins an issue on the selected shape; the comment is sent and the pin numbered", async () => {
    const { calls, fetch } = server((call) => ({ ...ISSUE, id: 9, message: (call.body as { message: string }).message }));
    const ws = mount(config("review"), fetch);
    ws.doc.select(ws.doc.shapes[0].uid);
    expect(press("i")).toBe(true);
    const text = root.querySelector<HTMLTextAreaElement>(".dl-issue-text")!;
    expect(text.closest<HTMLElement>(".dl-issue-form")!.hidden).toBe(false);
    expect(root.querySelector(".dl-pin.is-draft")).not.toBeNull();
    text.value = "The scratch goes on";
    text.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true, cancelable: true }));
    await flush();
    expect(calls).toEqual([
      { url: "/api/tasks/101/issues/", body: { message: "The scratch goes on", point: [100, 100], shape: "s1" } },
    ]);
    const pins = [...root.querySelectorAll<HTMLElement>(".dl-pin")];
    expect(pins.map((p) => p.textContent)).toEqual(["1"]);
    expect(root.querySelector(".dl-issue-message")!.textContent).toBe("The scratch goes on");
    expect(ws.issues.openCount).toBe(1);
  });

  it("without a selection, I waits for a click; Escape gives up and nothing is sent", () => {
    const { calls, fetch } = server(() => ISSUE);
    const ws = mount(config("review"), fetch);
    press("i");
    expect(root.classList.contains("is-placing-issue")).toBe(true);
    expect(ws.placeIssueAt([40.2, 50.7], null)).toBe(true);
    expect(ws.issues.draft).toEqual({ point: [40, 51] });
    expect(ws.placeIssueAt([1, 1], null)).toBe(false); // one click places one issue
    press("Escape");
    expect(ws.issues.draft).toBeNull();
    expect(calls).toEqual([]);
  });

  it("an empty comment is not sent", async () => {
    const { calls, fetch } = server(() => ISSUE);
    const ws = mount(config("review"), fetch);
    ws.doc.select(ws.doc.shapes[0].uid);
    press("i");
    root.querySelector<HTMLButtonElement>(".dl-issue-add")!.click();
    await flush();
    expect(calls).toEqual([]);
    expect(ws.issues.draft).not.toBeNull();
  });

  it("I does nothing for the annotator, who sees no issue section on a task without issues", () => {
    const ws = mount(config("annotate"));
    ws.doc.select(ws.doc.shapes[0].uid);
    expect(press("i")).toBe(false);
    expect(ws.issues.draft).toBeNull();
    expect(root.querySelector<HTMLElement>(".dl-issues-section")!.hidden).toBe(true);
  });
});

describe("the annotator and the pins", () => {
  it("sees each pin and comment, jumps to one (its shape selected), resolves it, dimmed", async () => {
    const second: IssueJSON = { id: 8, point: [20, 30], shape: null, box: null, message: "Dust?", resolved: true };
    const { calls, fetch } = server(() => ({ ...ISSUE, resolved: true }), 200);
    vi.spyOn(HTMLElement.prototype, "getBoundingClientRect").mockReturnValue({ top: 0, left: 0, width: 800, height: 600 } as DOMRect);
    const ws = mount(config("annotate", [ISSUE, second]), fetch);
    const section = root.querySelector<HTMLElement>(".dl-issues-section")!;
    expect(section.hidden).toBe(false);
    expect(section.textContent).toContain("Too short");
    const pins = [...root.querySelectorAll<HTMLElement>(".dl-pin")];
    expect(pins.map((p) => [p.textContent, p.classList.contains("is-resolved")])).toEqual([
      ["1", false],
      ["2", true],
    ]);
    ws.view.set({ scale: 0.1, x: 0, y: 0 });
    pins[0].click();
    expect(ws.doc.selected?.id).toBe("s1");
    expect(ws.view.scale).toBeGreaterThan(0.1);
    expect(ws.view.toScreen([150, 150]).map(Math.round)).toEqual([400, 300]); // centred
    vi.restoreAllMocks();
    root.querySelector<HTMLButtonElement>(".dl-issue[data-id='7'] .dl-issue-settle")!.click();
    await flush();
    expect(calls.map((c) => c.url)).toEqual(["/api/issues/7/resolve/"]);
    expect(ws.issues.openCount).toBe(0);
    expect(root.querySelector(".dl-pin[data-id='7']")!.classList.contains("is-resolved")).toBe(true);
    expect(root.querySelector(".dl-issue[data-id='7']")!.classList.contains("is-resolved")).toBe(true);
  });

  it("a refusal leaves the issue open and says why", async () => {
    const { fetch } = server(() => ({ error: { code: "not_yours", message: "Not yours." } }), 403);
    const ws = mount(config("annotate", [ISSUE]), fetch);
    root.querySelector<HTMLButtonElement>(".dl-issue-settle")!.click();
    await flush();
    expect(ws.issues.openCount).toBe(1);
    expect(root.querySelector(".dl-notices")!.textContent).toContain("Not yours.");
  });
});
