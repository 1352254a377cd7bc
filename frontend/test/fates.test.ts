// What became of the model's proposals (issue 9): worked out on save, not offered again once
// decided, and in review only a read-only reference layer that nothing can be accepted from.
import { describe, expect, it } from "vitest";
import { AnnotationDocument } from "../src/model/document";
import { proposalDecisions } from "../src/model/fates";
import type { PredictionJSON } from "../src/types";
import { box, LABELS } from "./fixtures";

const PREDICTION: PredictionJSON = {
  id: 7,
  modelName: "yolo",
  modelVersion: "1",
  shapes: [
    box(10, 10, 20, 20, 3, { score: 0.9 }),
    box(30, 30, 40, 40, 3, { score: 0.8 }),
    box(50, 50, 60, 60, 3, { score: 0.7 }),
    box(70, 70, 80, 80, 3, { score: 0.6 }),
  ],
};

function annotating(prediction: PredictionJSON = PREDICTION) {
  const doc = new AnnotationDocument(LABELS);
  doc.load([], [], [prediction]);
  return doc;
}

describe("proposal fates", () => {
  it("say which proposals were accepted as is, changed or dropped, and leave pending ones out", () => {
    const doc = annotating();
    const [asIs, moved, dropped] = doc.proposals();
    doc.acceptProposals([asIs.uid, moved.uid]);
    doc.setGeometry(moved.uid, [[31, 31], [41, 41]]);
    doc.removeShapes([dropped.uid]);
    expect(proposalDecisions(doc)).toEqual([
      { prediction: 7, index: 0, fate: "accepted" },
      { prediction: 7, index: 1, fate: "changed" },
      { prediction: 7, index: 2, fate: "dropped" },
    ]);
  });

  it("count a class change as a change, and an accepted then deleted proposal as dropped", () => {
    const doc = annotating();
    const [relabelled, deleted] = doc.proposals();
    doc.acceptAllProposals();
    doc.setLabel(relabelled.uid, 2);
    doc.removeShapes([deleted.uid]);
    expect(proposalDecisions(doc).slice(0, 2)).toEqual([
      { prediction: 7, index: 0, fate: "changed" },
      { prediction: 7, index: 1, fate: "dropped" },
    ]);
  });

  it("are not offered again once decided", () => {
    const doc = annotating({ ...PREDICTION, fates: ["accepted", null, "dropped", null] });
    expect(doc.proposals().map((s) => s.proposal)).toEqual([
      { predictionId: 7, index: 1 },
      { predictionId: 7, index: 3 },
    ]);
    doc.acceptAllProposals();
    expect(proposalDecisions(doc)).toEqual([
      { prediction: 7, index: 1, fate: "accepted" },
      { prediction: 7, index: 3, fate: "accepted" },
    ]);
  });
});

describe("in review", () => {
  function reviewing() {
    const doc = new AnnotationDocument(LABELS, undefined, { review: true });
    // The annotator accepted the first two proposals: they are in the submitted shapes.
    doc.load([box(10, 10, 20, 20, 3), box(30, 30, 40, 40, 3)], [], [{ ...PREDICTION, fates: ["accepted", "accepted", "dropped", null] }]);
    return doc;
  }

  it("the document holds exactly the submitted shapes, with no proposal pending", () => {
    const doc = reviewing();
    expect(doc.proposals()).toEqual([]);
    expect(doc.annotationJSON()).toEqual([box(10, 10, 20, 20, 3, { attributes: {} }), box(30, 30, 40, 40, 3, { attributes: {} })]);
    expect(proposalDecisions(doc)).toEqual([]);
  });

  it("accepting all cannot duplicate anything", () => {
    const doc = reviewing();
    doc.acceptAllProposals();
    expect(doc.annotationJSON()).toHaveLength(2);
    expect(doc.dirty).toBe(false);
  });

  it("the proposals are a reference layer, hidden until asked for", () => {
    const doc = reviewing();
    expect(doc.reference).toHaveLength(4);
    expect(doc.showReference).toBe(false);
    doc.setReferenceShown(true);
    expect(doc.showReference).toBe(true);
    expect(doc.shapes).toHaveLength(2);
  });
});
