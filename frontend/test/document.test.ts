import { describe, expect, it } from "vitest";
import { AnnotationDocument } from "../src/model/document";
import type { PredictionJSON } from "../src/types";
import { box, LABELS, polygon } from "./fixtures";

function fresh(shapes = [box(10, 10, 20, 20)], predictions: PredictionJSON[] = []) {
  const doc = new AnnotationDocument(LABELS);
  doc.load(shapes, ["NG"], predictions);
  return doc;
}

const PREDICTIONS: PredictionJSON[] = [
  {
    id: 11,
    modelName: "yolo",
    modelVersion: "1",
    shapes: [box(100, 100, 150, 150, 2, { score: 0.91, id: "p1" }), box(200, 200, 250, 260, 1, { score: 0.42 })],
  },
];

describe("undo and redo", () => {
  it("undoes and redoes adding a shape, with class defaults for attributes", () => {
    const doc = fresh([]);
    const shape = doc.addShape({ type: "box", points: [[30, 40], [10, 20]], label: 1 });
    expect(shape.points).toEqual([[10, 20], [30, 40]]);
    expect(shape.attributes).toEqual({ severity: "minor", direction: "along" });
    expect(doc.shapes).toHaveLength(1);
    doc.undo();
    expect(doc.shapes).toHaveLength(0);
    doc.redo();
    expect(doc.shapes).toHaveLength(1);
    expect(doc.shapes[0]).toBe(shape);
  });

  it("records a drag as one move, whatever the number of preview steps", () => {
    const doc = fresh();
    const shape = doc.shapes[0];
    const before = shape.points.map((p) => [...p] as [number, number]);
    doc.previewGeometry(shape.uid, [[11, 11], [21, 21]]);
    doc.previewGeometry(shape.uid, [[15, 15], [25, 25]]);
    doc.commitGeometry(shape.uid, before);
    expect(shape.bbox).toEqual({ minX: 15, minY: 15, maxX: 25, maxY: 25 });
    doc.undo();
    expect(shape.points).toEqual([[10, 10], [20, 20]]);
    expect(shape.bbox.minX).toBe(10);
    expect(doc.canUndo).toBe(false);
    doc.redo();
    expect(shape.points).toEqual([[15, 15], [25, 25]]);
  });

  it("does not record a drag that ended where it started", () => {
    const doc = fresh();
    const shape = doc.shapes[0];
    doc.commitGeometry(shape.uid, shape.points.map((p) => [...p] as [number, number]));
    expect(doc.canUndo).toBe(false);
  });

  it("undoes a resize", () => {
    const doc = fresh();
    const uid = doc.shapes[0].uid;
    doc.setGeometry(uid, [[10, 10], [40, 50]]);
    expect(doc.get(uid)!.points).toEqual([[10, 10], [40, 50]]);
    doc.undo();
    expect(doc.get(uid)!.points).toEqual([[10, 10], [20, 20]]);
  });

  it("undoes a delete, putting the shape back in its place and order", () => {
    const doc = fresh([box(0, 0, 1, 1), box(2, 2, 3, 3), box(4, 4, 5, 5)]);
    const middle = doc.shapes[1];
    doc.select(middle.uid);
    doc.removeShapes([middle.uid]);
    expect(doc.shapes).toHaveLength(2);
    expect(doc.selectedUid).toBeNull();
    doc.undo();
    expect(doc.shapes[1]).toBe(middle);
  });

  it("refuses to delete or change a locked shape", () => {
    const doc = fresh();
    const uid = doc.shapes[0].uid;
    doc.setLocked([uid], true);
    doc.removeShapes([uid]);
    doc.setGeometry(uid, [[0, 0], [1, 1]]);
    doc.setAttribute(uid, "severity", "major");
    expect(doc.shapes).toHaveLength(1);
    expect(doc.canUndo).toBe(false);
  });

  it("undoes an attribute change", () => {
    const doc = fresh([box(0, 0, 5, 5, 1, { attributes: { severity: "minor", direction: "along" } })]);
    const uid = doc.shapes[0].uid;
    doc.setAttribute(uid, "severity", "critical");
    expect(doc.get(uid)!.attributes.severity).toBe("critical");
    doc.undo();
    expect(doc.get(uid)!.attributes.severity).toBe("minor");
  });

  it("changing the class keeps attribute values the new class shares", () => {
    const doc = fresh([box(0, 0, 5, 5, 1, { attributes: { severity: "major", direction: "across" } })]);
    const uid = doc.shapes[0].uid;
    doc.setLabel(uid, 2);
    expect(doc.get(uid)!.attributes).toEqual({ severity: "major" });
    doc.undo();
    expect(doc.get(uid)!.label).toBe(1);
    expect(doc.get(uid)!.attributes).toEqual({ severity: "major", direction: "across" });
  });

  it("undoes an image tag toggle", () => {
    const doc = fresh();
    doc.toggleTag("OK");
    expect(doc.tagList().sort()).toEqual(["NG", "OK"]);
    doc.undo();
    expect(doc.tagList()).toEqual(["NG"]);
  });

  it("caps the history depth and forgets the redo branch on a new change", () => {
    const doc = new AnnotationDocument(LABELS, 3);
    doc.load([], []);
    for (let i = 0; i < 5; i++) doc.addShape({ type: "box", points: [[i, i], [i + 1, i + 1]], label: 3 });
    let undone = 0;
    while (doc.undo()) undone++;
    expect(undone).toBe(3);
    expect(doc.shapes).toHaveLength(2);
    doc.redo();
    doc.addShape({ type: "box", points: [[9, 9], [10, 10]], label: 3 });
    expect(doc.canRedo).toBe(false);
  });

  it("tracks unsaved changes against the last save", () => {
    const doc = fresh();
    expect(doc.dirty).toBe(false);
    doc.toggleTag("OK");
    expect(doc.dirty).toBe(true);
    doc.markSaved();
    expect(doc.dirty).toBe(false);
  });
});

describe("keyboard attribute editing", () => {
  it("Tab cycles the focused attribute and [ / ] step its value, wrapping around", () => {
    const doc = fresh([box(0, 0, 5, 5, 1, { attributes: { severity: "minor", direction: "along" } })]);
    const uid = doc.shapes[0].uid;
    doc.select(uid);
    doc.cycleAttributeValue(1);
    expect(doc.get(uid)!.attributes.severity).toBe("major");
    doc.cycleAttributeValue(-1);
    doc.cycleAttributeValue(-1);
    expect(doc.get(uid)!.attributes.severity).toBe("critical");
    doc.cycleAttributeFocus(1);
    expect(doc.attributeFocus).toBe(1);
    doc.cycleAttributeValue(1);
    expect(doc.get(uid)!.attributes.direction).toBe("across");
    doc.cycleAttributeFocus(1);
    expect(doc.attributeFocus).toBe(0);
  });
});

describe("predictions", () => {
  it("load as proposals that are not part of the saved annotation", () => {
    const doc = fresh([box(0, 0, 5, 5)], PREDICTIONS);
    expect(doc.proposals()).toHaveLength(2);
    expect(doc.annotationJSON()).toHaveLength(1);
  });

  it("accepting one turns it into an annotation without the model's score", () => {
    const doc = fresh([], PREDICTIONS);
    const first = doc.proposals()[0];
    doc.acceptProposals([first.uid]);
    expect(doc.annotationJSON()).toEqual([
      { type: "box", points: [[100, 100], [150, 150]], label: 2, attributes: {}, id: "p1" },
    ]);
    doc.undo();
    expect(first.proposal).toEqual({ predictionId: 11, index: 0 });
    expect(first.score).toBe(0.91);
  });

  it("accepting all is one undo step", () => {
    const doc = fresh([], PREDICTIONS);
    doc.acceptAllProposals();
    expect(doc.proposals()).toHaveLength(0);
    expect(doc.annotationJSON()).toHaveLength(2);
    doc.undo();
    expect(doc.proposals()).toHaveLength(2);
  });

  it("dropping one removes it, and undo brings it back", () => {
    const doc = fresh([], PREDICTIONS);
    const second = doc.proposals()[1];
    doc.removeShapes([second.uid]);
    expect(doc.proposals()).toHaveLength(1);
    doc.undo();
    expect(doc.proposals()[1]).toBe(second);
  });
});

describe("the saved form", () => {
  it("rounds coordinates and sends only the server's fields", () => {
    const doc = fresh([polygon([[0.123, 0.456], [10.001, 0], [5, 9.999]])]);
    const [json] = doc.annotationJSON();
    expect(json).toEqual({ type: "polygon", points: [[0.12, 0.46], [10, 0], [5, 10]], label: 2, attributes: {} });
    expect(Object.keys(json).sort()).toEqual(["attributes", "label", "points", "type"]);
  });

  it("replaces annotations for tests and benchmarks but keeps proposals", () => {
    const doc = fresh([], PREDICTIONS);
    doc.replaceAnnotations([box(1, 1, 2, 2), box(3, 3, 4, 4)]);
    expect(doc.annotationJSON()).toHaveLength(2);
    expect(doc.proposals()).toHaveLength(2);
  });
});

describe("the selection and class choices", () => {
  it("relabels only a shape the person picked: not one selected because it was just drawn, nor a locked one", () => {
    const doc = fresh();
    const kinds: string[] = [];
    doc.onChange((kind) => kinds.push(kind));
    const drawn = doc.addShape({ type: "box", points: [[30, 30], [40, 40]], label: 1 });
    doc.select(drawn.uid, "drawn");
    expect(doc.selected).toBe(drawn);
    expect(doc.relabelTarget).toBeUndefined();
    kinds.length = 0;
    doc.select(drawn.uid); // the person clicks the shape they drew
    expect(kinds).toEqual(["selection"]);
    expect(doc.relabelTarget).toBe(drawn);
    doc.setLocked([drawn.uid], true);
    expect(doc.relabelTarget).toBeUndefined();
    doc.setLocked([drawn.uid], false);
    doc.removeShapes([drawn.uid]);
    expect(doc.selectionPicked).toBe(false);
    doc.select(null);
    expect(doc.relabelTarget).toBeUndefined();
  });

  it("counts and numbers the annotation's shapes apart from the proposals", () => {
    const doc = fresh([box(10, 10, 20, 20), box(30, 30, 40, 40)], PREDICTIONS);
    expect(doc.counts()).toEqual({ shapes: 2, proposals: 2 });
    const added = doc.addShape({ type: "box", points: [[50, 50], [60, 60]], label: 1 });
    expect(doc.ordinal(added.uid)).toBe(3);
    expect(doc.ordinal(doc.proposals()[1].uid)).toBe(2);
    doc.acceptProposals([doc.proposals()[0].uid]);
    expect(doc.counts()).toEqual({ shapes: 4, proposals: 1 });
  });
});
