import { describe, expect, it } from "vitest";
import { AnnotationDocument } from "../src/model/document";
import { handleAt, handleCursor, shapeAt } from "../src/model/hittest";
import { ViewTransform } from "../src/model/transform";
import type { Rotation } from "../src/types";
import { box, LABELS, polygon } from "./fixtures";

function docWith(...shapes: Parameters<AnnotationDocument["load"]>[0]) {
  const doc = new AnnotationDocument(LABELS);
  doc.load(shapes, []);
  return doc;
}

describe("hit-testing", () => {
  it("picks the smallest shape under the point, so nested defects stay clickable", () => {
    const doc = docWith(box(0, 0, 100, 100), box(40, 40, 60, 60));
    expect(shapeAt(doc.shapes, [50, 50], 1)?.uid).toBe(doc.shapes[1].uid);
    expect(shapeAt(doc.shapes, [10, 10], 1)?.uid).toBe(doc.shapes[0].uid);
    expect(shapeAt(doc.shapes, [200, 200], 1)).toBeNull();
  });

  it("grabs an outline within the tolerance from outside", () => {
    const doc = docWith(box(10, 10, 20, 20));
    expect(shapeAt(doc.shapes, [22, 15], 3)).not.toBeNull();
    expect(shapeAt(doc.shapes, [24, 15], 3)).toBeNull();
  });

  it("skips hidden and locked shapes", () => {
    const doc = docWith(box(0, 0, 10, 10), box(0, 0, 10, 10));
    doc.setHidden([doc.shapes[0].uid], true);
    doc.setLocked([doc.shapes[1].uid], true);
    expect(shapeAt(doc.shapes, [5, 5], 1)).toBeNull();
  });

  it("hits polygons by their outline and interior, not their bbox corners", () => {
    const doc = docWith(
      polygon([
        [0, 0],
        [100, 0],
        [0, 100],
      ]),
    );
    expect(shapeAt(doc.shapes, [20, 20], 1)).not.toBeNull();
    expect(shapeAt(doc.shapes, [90, 90], 1)).toBeNull();
  });

  it("finds the same shape from the screen in every rotated view", () => {
    const doc = docWith(box(100, 200, 140, 260), box(3000, 100, 3100, 150));
    for (const rotation of [0, 90, 180, 270] as Rotation[]) {
      const view = new ViewTransform({ scale: 0.25, rotation });
      view.fit(4000, 3000, 1200, 900);
      // Where the first box's centre is on screen, whatever the rotation.
      const screen = view.toScreen([120, 230]);
      const hit = shapeAt(doc.shapes, view.toImage(screen), 6 / view.scale);
      expect(hit?.uid, `rotation ${rotation}`).toBe(doc.shapes[0].uid);
    }
  });

  it("finds box handles in screen space at any rotation and points the cursor along the screen", () => {
    const doc = docWith(box(100, 100, 300, 200));
    const shape = doc.shapes[0];
    for (const rotation of [0, 90, 180, 270] as Rotation[]) {
      const view = new ViewTransform({ scale: 0.5, x: 400, y: 300, rotation });
      const bottomRight = view.toScreen([300, 200]);
      expect(handleAt(shape, [bottomRight[0] + 3, bottomRight[1] - 2], view)).toBe(4);
      expect(handleAt(shape, [bottomRight[0] + 40, bottomRight[1] + 40], view)).toBe(-1);
    }
    expect(handleCursor(0, 0)).toBe("nwse-resize");
    expect(handleCursor(0, 90)).toBe("nesw-resize");
    expect(handleCursor(1, 90)).toBe("ew-resize");
  });

  it("uses polygon vertices as handles", () => {
    const doc = docWith(
      polygon([
        [0, 0],
        [100, 0],
        [50, 80],
      ]),
    );
    const view = new ViewTransform({ scale: 1 });
    expect(handleAt(doc.shapes[0], [51, 79], view)).toBe(2);
  });
});
