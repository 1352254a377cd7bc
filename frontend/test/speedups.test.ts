// @vitest-environment jsdom
// The inspector's speed-ups: zoom to a shape, previous / next image, copying the previous image's
// shapes (clipped, one undo), shape numbers as the list shows them, captions at the top edge.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import devConfig from "../dev-config.json";
import { mountWorkspace } from "../src/index";
import { carryShapes, clipPolygon, clipShape } from "../src/model/carry";
import { AnnotationDocument, shapeNumbers } from "../src/model/document";
import { bboxOf } from "../src/model/geometry";
import { ViewTransform } from "../src/model/transform";
import type { Point, Rotation, ShapeJSON, WorkspaceConfig } from "../src/types";
import { CAPTION_HEIGHT, captionBottom, captionLimit } from "../src/view/draw";
import type { Workspace } from "../src/workspace";
import { box, LABELS, MemoryStorage, polygon } from "./fixtures";

describe("zooming to a shape", () => {
  it("centres the shape and fills the view with it, at every rotation", () => {
    for (const rotation of [0, 90, 180, 270] as Rotation[]) {
      const view = new ViewTransform({ scale: 0.2, x: 0, y: 0, rotation });
      const shape = { minX: 1000, minY: 2000, maxX: 1200, maxY: 2100 };
      view.fitBox(shape, 800, 600, 50);
      const a = view.toScreen([shape.minX, shape.minY]);
      const b = view.toScreen([shape.maxX, shape.maxY]);
      expect((a[0] + b[0]) / 2).toBeCloseTo(400);
      expect((a[1] + b[1]) / 2).toBeCloseTo(300);
      const w = Math.abs(a[0] - b[0]);
      const h = Math.abs(a[1] - b[1]);
      // The long side touches the margin; nothing of the shape is outside it.
      expect(Math.max(w / 700, h / 500)).toBeCloseTo(1);
      expect(w).toBeLessThanOrEqual(700 + 1e-6);
      expect(h).toBeLessThanOrEqual(500 + 1e-6);
    }
  });

  it("does not blow a speck up to the whole screen", () => {
    const view = new ViewTransform();
    view.fitBox({ minX: 10, minY: 10, maxX: 11, maxY: 11 }, 800, 600, 50, 24);
    expect(view.scale).toBeCloseTo(500 / 24);
  });
});

describe("copying the previous image's shapes", () => {
  it("clips a box to this image and drops one that falls outside", () => {
    expect(clipShape(box(3900, -20, 4200, 50), 4000, 3000)?.points).toEqual([
      [3900, 0],
      [4000, 50],
    ]);
    expect(clipShape(box(4100, 10, 4200, 50), 4000, 3000)).toBeNull();
  });

  it("cuts a polygon along the image's edges", () => {
    const clipped = clipPolygon(
      [
        [-10, -10],
        [50, -10],
        [50, 50],
        [-10, 50],
      ],
      40,
      30,
    );
    expect(bboxOf(clipped)).toEqual({ minX: 0, minY: 0, maxX: 40, maxY: 30 });
    const triangle = polygon([
      [90, 10],
      [120, 10],
      [90, 40],
    ]);
    expect(clipShape(triangle, 100, 100)?.points.every(([x]) => x <= 100)).toBe(true);
    expect(clipShape(polygon([[110, 10], [120, 10], [110, 40]]), 100, 100)).toBeNull();
  });

  it("keeps the points inside, and only classes this project has", () => {
    const points: ShapeJSON = { type: "points", points: [[5, 5], [500, 5]], label: 1 };
    expect(clipShape(points, 100, 100)?.points).toEqual([[5, 5]]);
    const carried = carryShapes([box(1, 1, 9, 9, 1), box(1, 1, 9, 9, 99)], 100, 100, new Set([1, 2, 3]));
    expect(carried.map((s) => s.label)).toEqual([1]);
  });

  it("adds them as one undo step, keeping valid attribute values", () => {
    const doc = new AnnotationDocument(LABELS);
    doc.load([box(0, 0, 5, 5, 3)], []);
    doc.addShapes([
      { type: "box", points: [[1, 1], [9, 9]], label: 1, attributes: { severity: "major", direction: "bogus" } },
      { type: "box", points: [[2, 2], [8, 8]], label: 3 },
    ]);
    expect(doc.shapes).toHaveLength(3);
    expect(doc.shapes[1].attributes).toEqual({ severity: "major", direction: "along" });
    doc.undo();
    expect(doc.shapes).toHaveLength(1);
    doc.redo();
    expect(doc.shapes).toHaveLength(3);
  });
});

describe("shape numbers and captions", () => {
  it("numbers shapes and proposals apart, as the shape list does", () => {
    const doc = new AnnotationDocument(LABELS);
    doc.load([box(0, 0, 5, 5), box(10, 10, 20, 20)], [], [
      { id: 9, modelName: "m", modelVersion: "1", shapes: [box(30, 30, 40, 40, 2, { score: 0.9 })] },
    ]);
    const numbers = shapeNumbers(doc.shapes);
    expect(doc.shapes.map((s) => numbers.get(s.uid))).toEqual(doc.shapes.map((s) => doc.ordinal(s.uid)));
    expect([...numbers.values()].sort()).toEqual([1, 1, 2]);
  });

  it("sits above a shape, but inside it at the image's top edge", () => {
    expect(captionBottom(100, 16)).toBe(100);
    // A shape touching the image's top (at screen y 16): the caption goes inside, under that edge.
    expect(captionBottom(16, 16)).toBe(16 + CAPTION_HEIGHT);
    expect(captionBottom(20, 16)).toBe(20 + CAPTION_HEIGHT);
    // Its top above the view: the caption stays at the view's top.
    expect(captionBottom(-200, 0)).toBe(CAPTION_HEIGHT);
  });

  it("knows where the image's top edge is on screen, at any rotation", () => {
    const view = new ViewTransform();
    view.fit(400, 300, 800, 600);
    expect(captionLimit(view, 400, 300)).toBeCloseTo(view.toScreen([0, 0])[1]);
    view.set({ rotation: 90 });
    const corners: Point[] = [[0, 0], [400, 0], [0, 300], [400, 300]];
    const top = Math.min(...corners.map((p) => view.toScreen(p)[1]));
    expect(captionLimit(view, 400, 300)).toBeCloseTo(Math.max(0, top));
  });
});

// ---- in the workspace -------------------------------------------------------------------------

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

function config(overrides: Partial<WorkspaceConfig> = {}): WorkspaceConfig {
  const base = structuredClone(devConfig) as unknown as WorkspaceConfig;
  base.annotation.shapes = [box(10, 10, 50, 50, 3)];
  base.predictions = [];
  base.neighbours = { previous: 100, next: 102 };
  base.api.annotationOf = "/api/tasks/{id}/annotation/";
  return { ...base, ...overrides };
}

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

describe("the keys in the workspace", () => {
  it("Z zooms to the selected shape", () => {
    workspace = mountWorkspace(root, config(), { storage: new MemoryStorage() });
    const before = workspace.getView();
    press("z");
    expect(workspace.getView()).toEqual(before); // nothing selected
    workspace.reveal(workspace.doc.shapes[0].uid);
    press("z");
    // The shape (10..50) is centred in the view (jsdom lays nothing out: a 0 × 0 view).
    const centre = workspace.view.toScreen([30, 30]);
    expect(centre[0]).toBeCloseTo(0);
    expect(centre[1]).toBeCloseTo(0);
    expect(workspace.getView()).not.toEqual(before);
  });

  it(", and . save changes first, then open the previous and next image", async () => {
    const openTask = vi.fn();
    const fetch = vi.fn(async () => json(200, { version: 2, shapes: [], tags: [] }));
    workspace = mountWorkspace(root, config(), { storage: new MemoryStorage(), fetch, openTask });
    press(".");
    await vi.waitFor(() => expect(openTask).toHaveBeenCalledWith(102));
    expect(fetch).not.toHaveBeenCalled(); // nothing changed: nothing to save
    workspace.doc.addShape({ type: "box", points: [[1, 1], [9, 9]], label: 3 });
    press(",");
    await vi.waitFor(() => expect(openTask).toHaveBeenCalledWith(100));
    expect((fetch.mock.calls[0] as unknown as [string, RequestInit])[1].method).toBe("PUT");
  });

  it("stays at the list's end, saying so", () => {
    const openTask = vi.fn();
    workspace = mountWorkspace(root, config({ neighbours: { previous: 100, next: null } }), { storage: new MemoryStorage(), openTask });
    press("PageDown");
    expect(openTask).not.toHaveBeenCalled();
    expect(root.textContent).toContain("last image");
  });

  it("Ctrl+Shift+V copies the previous image's shapes, clipped, and Ctrl+Z takes them away", async () => {
    const shapes = [box(3990, 2990, 4100, 3100, 1), box(5000, 10, 5100, 20, 2)];
    const fetch = vi.fn(async () => json(200, { version: 1, shapes, tags: [] }));
    workspace = mountWorkspace(root, config(), { storage: new MemoryStorage(), fetch });
    press("V", { ctrlKey: true, shiftKey: true });
    await vi.waitFor(() => expect(workspace!.getShapes()).toHaveLength(2));
    expect((fetch.mock.calls[0] as unknown as [string])[0]).toBe("/api/tasks/100/annotation/");
    expect(workspace.getShapes()[1].points).toEqual([
      [3990, 2990],
      [4000, 3000],
    ]);
    press("z", { ctrlKey: true });
    expect(workspace.getShapes()).toHaveLength(1);
  });
});
