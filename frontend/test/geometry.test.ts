import { describe, expect, it } from "vitest";
import {
  bboxOf,
  buildPolygon,
  clampTranslation,
  containsPoint,
  distanceToOutline,
  normalizeBox,
  pointInPolygon,
  polygonSelfIntersects,
  resizeBox,
  roundPoint,
  signedArea,
} from "../src/model/geometry";

describe("box normalisation", () => {
  it("orders corners whichever way the box was dragged", () => {
    expect(normalizeBox([30, 40], [10, 20])).toEqual([
      [10, 20],
      [30, 40],
    ]);
    expect(normalizeBox([10, 40], [30, 20])).toEqual([
      [10, 20],
      [30, 40],
    ]);
  });

  it("resizing past the opposite edge flips the box instead of inverting it", () => {
    const box: [number, number][] = [
      [10, 10],
      [20, 20],
    ];
    // handle 0 is the top-left corner; dragging it beyond the bottom-right swaps the corners.
    expect(resizeBox(box, 0, [30, 25])).toEqual([
      [20, 20],
      [30, 25],
    ]);
    // an edge handle moves one side only
    expect(resizeBox(box, 3, [50, 999])).toEqual([
      [10, 10],
      [50, 20],
    ]);
    expect(resizeBox(box, 5, [999, 12])).toEqual([
      [10, 10],
      [20, 12],
    ]);
  });
});

describe("polygon building", () => {
  it("accepts three or more distinct vertices", () => {
    const result = buildPolygon([
      [0, 0],
      [10, 0],
      [10, 10],
    ]);
    expect(result).toEqual({
      ok: true,
      points: [
        [0, 0],
        [10, 0],
        [10, 10],
      ],
    });
  });

  it("drops repeated clicks and a closing vertex equal to the first", () => {
    const result = buildPolygon([
      [0, 0],
      [0, 0],
      [10, 0],
      [10, 10],
      [10, 10],
      [0, 0],
    ]);
    expect(result.ok && result.points).toEqual([
      [0, 0],
      [10, 0],
      [10, 10],
    ]);
  });

  it("refuses fewer than three vertices, collinear ones and crossing outlines", () => {
    expect(
      buildPolygon([
        [0, 0],
        [5, 5],
        [0, 0],
      ]),
    ).toEqual({ ok: false, problem: "tooFew" });
    expect(
      buildPolygon([
        [0, 0],
        [5, 5],
        [10, 10],
      ]),
    ).toEqual({ ok: false, problem: "noArea" });
    expect(
      buildPolygon([
        [0, 0],
        [10, 10],
        [10, 0],
        [0, 10],
      ]),
    ).toEqual({ ok: false, problem: "crosses" });
  });

  it("finds self-intersection only between non-adjacent edges", () => {
    const square: [number, number][] = [
      [0, 0],
      [10, 0],
      [10, 10],
      [0, 10],
    ];
    expect(polygonSelfIntersects(square)).toBe(false);
    expect(Math.abs(signedArea(square))).toBe(100);
  });
});

describe("point tests", () => {
  const square: [number, number][] = [
    [0, 0],
    [10, 0],
    [10, 10],
    [0, 10],
  ];

  it("tells inside from outside for polygons and boxes", () => {
    expect(pointInPolygon([5, 5], square)).toBe(true);
    expect(pointInPolygon([15, 5], square)).toBe(false);
    expect(
      containsPoint("box", [
        [0, 0],
        [10, 10],
      ], [10, 10]),
    ).toBe(true);
  });

  it("measures the distance to the outline, not the interior", () => {
    expect(distanceToOutline("polygon", square, [5, 5])).toBe(5);
    expect(distanceToOutline("box", [
      [0, 0],
      [10, 10],
    ], [13, 5])).toBe(3);
    expect(distanceToOutline("points", [[3, 4]], [0, 0])).toBe(5);
  });

  it("keeps a moved shape inside the image", () => {
    const b = bboxOf([
      [10, 10],
      [30, 30],
    ]);
    expect(clampTranslation(b, -50, 5, 100, 100)).toEqual([-10, 5]);
    expect(clampTranslation(b, 500, 500, 100, 100)).toEqual([70, 70]);
  });

  it("rounds coordinates to a hundredth of a pixel", () => {
    expect(roundPoint([1.23456, 9.87654])).toEqual([1.23, 9.88]);
  });
});
