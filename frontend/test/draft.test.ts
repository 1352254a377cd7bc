import { describe, expect, it } from "vitest";
import { AnnotationDocument } from "../src/model/document";
import { proposalDecisions } from "../src/model/fates";
import { DraftStore, draftFromDocument, draftKey, parseDraft, restoreDraft, serializeDraft } from "../src/model/draft";
import { box, LABELS, MemoryStorage } from "./fixtures";

const PREDICTION = { id: 5, modelName: "m", modelVersion: "v", shapes: [box(10, 10, 20, 20, 2, { score: 0.5 }), box(30, 30, 40, 40, 3)] };

function docWithWork() {
  const doc = new AnnotationDocument(LABELS);
  doc.load([box(1, 2, 3, 4)], ["NG"], [PREDICTION]);
  doc.addShape({ type: "box", points: [[50, 50], [60, 60]], label: 3 });
  doc.acceptProposals([doc.proposals()[0].uid]);
  doc.toggleTag("OK");
  return doc;
}

describe("drafts", () => {
  it("are keyed by task and annotation version", () => {
    expect(draftKey(12, 3)).toBe("defectlab.draft.12.3");
    expect(draftKey(12, null)).toBe("defectlab.draft.12.0");
  });

  it("serialise and restore everything that would be saved, plus open proposals", () => {
    const doc = docWithWork();
    const draft = parseDraft(serializeDraft(draftFromDocument(doc, 12, 3, 1000)))!;
    expect(draft.shapes).toHaveLength(3);
    expect(draft.proposals).toEqual([{ predictionId: 5, index: 1, shape: { type: "box", points: [[30, 30], [40, 40]], label: 3, attributes: {} } }]);
    expect(draft.decisions).toEqual([{ prediction: 5, index: 0, fate: "accepted" }]);

    const reopened = new AnnotationDocument(LABELS);
    reopened.load([box(1, 2, 3, 4)], ["NG"], [PREDICTION]);
    restoreDraft(reopened, draft);
    expect(reopened.annotationJSON()).toEqual(doc.annotationJSON());
    expect(reopened.tagList().sort()).toEqual(["NG", "OK"]);
    // The accepted proposal is not offered again, and its fate still goes to the server.
    expect(reopened.proposals().map((s) => s.proposal)).toEqual([{ predictionId: 5, index: 1 }]);
    expect(proposalDecisions(reopened)).toEqual([{ prediction: 5, index: 0, fate: "accepted" }]);
    expect(reopened.dirty).toBe(true);
  });

  it("from before fates put back the pending proposals they kept, and offer no other", () => {
    const draft = parseDraft(
      JSON.stringify({ format: 1, taskId: 12, version: 3, shapes: [box(1, 2, 3, 4)], proposals: [{ predictionId: 5, shape: box(30, 30, 40, 40, 3) }], tags: [], savedAt: 1 }),
    )!;
    const reopened = new AnnotationDocument(LABELS);
    reopened.load([], [], [PREDICTION]);
    restoreDraft(reopened, draft);
    expect(reopened.proposals().map((s) => s.proposal)).toEqual([{ predictionId: 5, index: 1 }]);
    expect(reopened.annotationJSON()).toHaveLength(1);
  });

  it("ignore corrupt or foreign data", () => {
    expect(parseDraft(null)).toBeNull();
    expect(parseDraft("{not json")).toBeNull();
    expect(parseDraft(JSON.stringify({ format: 99 }))).toBeNull();
    expect(parseDraft(JSON.stringify({ format: 1, taskId: 1, shapes: [{ type: "circle" }], proposals: [], tags: [] }))).toBeNull();
  });

  it("are stored, found for other versions, and cleared per task", () => {
    const storage = new MemoryStorage();
    const store = new DraftStore(storage);
    const doc = docWithWork();
    store.save(draftFromDocument(doc, 7, 2, 1));
    store.save(draftFromDocument(doc, 7, 3, 2));
    store.save(draftFromDocument(doc, 8, 3, 3));
    expect(store.load(7, 3)?.savedAt).toBe(2);
    expect(store.others(7, 3).map((d) => d.version)).toEqual([2]);
    store.clearAll(7);
    expect(store.load(7, 3)).toBeNull();
    expect(store.load(8, 3)).not.toBeNull();
  });

  it("make room by dropping the oldest drafts of other tasks when storage is full", () => {
    const storage = new MemoryStorage();
    storage.capacity = 2;
    const store = new DraftStore(storage);
    const doc = docWithWork();
    store.save(draftFromDocument(doc, 1, 1, 100));
    store.save(draftFromDocument(doc, 2, 1, 50));
    expect(store.save(draftFromDocument(doc, 3, 1, 200))).toBe(true);
    expect(store.load(2, 1)).toBeNull();
    expect(store.load(1, 1)).not.toBeNull();
    expect(store.load(3, 1)).not.toBeNull();
  });

  it("survive a full or missing localStorage without throwing", () => {
    const storage = new MemoryStorage();
    storage.full = true;
    expect(new DraftStore(storage).save(draftFromDocument(docWithWork(), 1, 1, 1))).toBe(false);
    const none = new DraftStore(null);
    expect(none.load(1, 1)).toBeNull();
    expect(none.others(1, 1)).toEqual([]);
  });
});
