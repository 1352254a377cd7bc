import { describe, expect, it } from "vitest";
import { ViewTransform, normalizeRotation } from "../src/model/transform";
import type { Point, Rotation } from "../src/types";

const ROTATIONS: Rotation[] = [0, 90, 180, 270];

function close(a: Point, b: Point, digits = 9) {
  expect(a[0]).toBeCloseTo(b[0], digits);
  expect(a[1]).toBeCloseTo(b[1], digits);
}

describe("the image-to-screen transform", () => {
  it("round-trips image → screen → image at every rotation", () => {
    for (const rotation of ROTATIONS) {
      const view = new ViewTransform({ scale: 0.37, x: 123.4, y: -56.7, rotation });
      for (const p of [
        [0, 0],
        [4000, 3000],
        [1234.5, 17.25],
        [-3, 9999],
      ] as Point[]) {
        close(view.toImage(view.toScreen(p)), p);
      }
    }
  });

  it("matches the canvas matrix it hands to setTransform", () => {
    for (const rotation of ROTATIONS) {
      const view = new ViewTransform({ scale: 2, x: 10, y: 20, rotation });
      const [a, b, c, d, e, f] = view.matrix();
      const p: Point = [7, 3];
      close(view.toScreen(p), [a * p[0] + c * p[1] + e, b * p[0] + d * p[1] + f]);
    }
  });

  it("turns the image clockwise on screen by 90° steps", () => {
    const view = new ViewTransform({ scale: 1, x: 0, y: 0, rotation: 90 });
    // The image's +x axis points down the screen after a quarter turn clockwise.
    close(view.toScreen([1, 0]), [0, 1]);
    close(view.toScreen([0, 1]), [-1, 0]);
  });

  it("zooms around the cursor: the point under it stays put", () => {
    const view = new ViewTransform({ scale: 0.5, x: 30, y: 40, rotation: 90 });
    const cursor: Point = [300, 200];
    const before = view.toImage(cursor);
    view.zoomAt(cursor, 3);
    expect(view.scale).toBeCloseTo(1.5);
    close(view.toImage(cursor), before);
  });

  it("rotates around a screen point and keeps it fixed", () => {
    const view = new ViewTransform({ scale: 0.8, x: 5, y: 6 });
    const centre: Point = [400, 300];
    const before = view.toImage(centre);
    view.rotateBy(1, centre);
    expect(view.rotation).toBe(90);
    close(view.toImage(centre), before);
    view.rotateBy(-2, centre);
    expect(view.rotation).toBe(270);
  });

  it("fits the whole image, turned or not, centred in the viewport", () => {
    const view = new ViewTransform();
    view.fit(4000, 3000, 1000, 800, 0);
    expect(view.scale).toBeCloseTo(0.25);
    close(view.toScreen([2000, 1500]), [500, 400]);
    view.set({ rotation: 90 });
    view.fit(4000, 3000, 1000, 800, 0);
    expect(view.scale).toBeCloseTo(0.2); // 800 / 4000 once the long side stands upright
    const r = view.visibleRect(1000, 800);
    // Turned a quarter, the image's x axis runs down the screen and fills its height.
    expect(r.minX).toBeCloseTo(0);
    expect(r.maxX).toBeCloseTo(4000);
  });

  it("reports the visible part of the image for culling", () => {
    const view = new ViewTransform({ scale: 2, x: -200, y: -100 });
    expect(view.visibleRect(400, 300)).toEqual({ minX: 100, minY: 50, maxX: 300, maxY: 200 });
  });

  it("normalises any multiple of 90° and clamps the scale", () => {
    expect(normalizeRotation(-90)).toBe(270);
    expect(normalizeRotation(450)).toBe(90);
    const view = new ViewTransform({ scale: 1e9 });
    expect(view.scale).toBe(64);
  });
});
