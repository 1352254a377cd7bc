// @vitest-environment jsdom
// Moving to the next task in place: the configuration fetch, the fallbacks, the image handoff.
import { afterEach, describe, expect, it, vi } from "vitest";
import devConfig from "../dev-config.json";
import { ImageHandoff, Session, type SessionHooks } from "../src/session";
import type { WorkspaceConfig } from "../src/types";

const current = structuredClone(devConfig) as unknown as WorkspaceConfig;

function nextConfig(id: number): WorkspaceConfig {
  const next = structuredClone(current);
  next.task = { ...next.task, id, fileName: `panel-${id}.jpg` };
  return next;
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

function hooks() {
  const log: string[] = [];
  const mounted: WorkspaceConfig[] = [];
  const calls: SessionHooks = {
    mount: (config) => {
      log.push(`mount ${config.task.id}`);
      mounted.push(config);
    },
    unmount: () => log.push("unmount"),
    navigate: (url) => log.push(`navigate ${url}`),
  };
  const history = { pushState: vi.fn((_state: unknown, _title: string, url?: string | URL | null) => log.push(`push ${url}`)) };
  return { log, mounted, calls, history };
}

describe("a session", () => {
  it("swaps the workspace in place and moves the address bar", async () => {
    const { log, mounted, calls, history } = hooks();
    document.title = "panel-101.jpg · DefectLab";
    const fetch = vi.fn(async () => json(200, nextConfig(202)));
    await new Session(fetch, calls, history).open(current, 202);
    expect(fetch).toHaveBeenCalledWith("/tasks/202/annotate/config/", expect.objectContaining({ credentials: "same-origin" }));
    expect(log).toEqual(["unmount", "push /tasks/202/annotate/", "mount 202"]);
    expect(mounted[0].task.fileName).toBe("panel-202.jpg");
    expect(document.title).toBe("panel-202.jpg · DefectLab");
  });

  it.each([
    ["an error answer", async () => json(403, { error: { code: "forbidden", message: "no" } })],
    ["a page instead of JSON (signed out)", async () => new Response("<html>", { status: 200, headers: { "Content-Type": "text/html" } })],
    ["another task than asked for", async () => json(200, nextConfig(999))],
    ["a network failure", async (): Promise<Response> => { throw new TypeError("offline"); }],
  ])("falls back to loading the page on %s, and keeps the current workspace until then", async (_case, answer) => {
    const { log, calls, history } = hooks();
    await new Session(vi.fn(answer), calls, history).open(current, 202);
    expect(log).toEqual(["navigate /tasks/202/annotate/"]);
  });

  it("loads the page when the configuration has no config URL", async () => {
    const { log, calls, history } = hooks();
    const fetch = vi.fn();
    await new Session(fetch, calls, history).open({ ...current, configUrl: undefined }, 5);
    expect(fetch).not.toHaveBeenCalled();
    expect(log).toEqual(["navigate /tasks/5/annotate/"]);
  });
});

describe("the image handoff", () => {
  const bitmaps: { id: string; close: ReturnType<typeof vi.fn> }[] = [];
  afterEach(() => {
    vi.unstubAllGlobals();
    bitmaps.length = 0;
  });

  function decodeStub() {
    vi.stubGlobal(
      "createImageBitmap",
      vi.fn(async (blob: Blob) => {
        const bitmap = { id: await blob.text(), close: vi.fn() };
        bitmaps.push(bitmap);
        return bitmap;
      }),
    );
  }

  it("hands the decoded image to the task it was fetched for, once", async () => {
    decodeStub();
    const fetch = vi.fn(async (url: string) => new Response(url));
    const images = new ImageHandoff(fetch);
    images.prefetch(7, "/media/seven");
    expect(images.take(8)).toBeNull();
    const taken = await images.take(7);
    expect((taken as unknown as { id: string }).id).toBe("/media/seven");
    expect(images.take(7)).toBeNull();
  });

  it("holds one image: a newer prefetch closes the older bitmap", async () => {
    decodeStub();
    const images = new ImageHandoff(vi.fn(async (url: string) => new Response(url)));
    images.prefetch(1, "/media/one");
    images.prefetch(1, "/media/one"); // the same task again does not fetch twice
    images.prefetch(2, "/media/two");
    await vi.waitFor(() => expect(bitmaps.map((b) => b.id).sort()).toEqual(["/media/one", "/media/two"]));
    await vi.waitFor(() => expect(bitmaps.find((b) => b.id === "/media/one")?.close).toHaveBeenCalled());
    expect(images.take(1)).toBeNull();
    expect(await images.take(2)).toBe(bitmaps.find((b) => b.id === "/media/two"));
  });

  it("gives null for an image the server refused, so the workspace downloads it itself", async () => {
    decodeStub();
    const images = new ImageHandoff(vi.fn(async () => new Response("gone", { status: 404 })));
    images.prefetch(3, "/media/expired");
    expect(await images.take(3)).toBeNull();
  });
});
