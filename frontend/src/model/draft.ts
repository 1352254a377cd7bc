/**
 * Drafts in localStorage, so a closed tab or a crash loses nothing. A draft belongs to one task
 * and to the annotation version it started from; saving to the server clears it.
 */
import type { Point, PredictionJSON, ProposalDecision, ShapeJSON } from "../types";
import type { AnnotationDocument } from "./document";
import { toJSON } from "./document";
import { proposalDecisions } from "./fates";

export const DRAFT_FORMAT = 1;
const PREFIX = "defectlab.draft.";

export interface Draft {
  format: typeof DRAFT_FORMAT;
  taskId: number;
  version: number | null;
  shapes: ShapeJSON[];
  /** Proposals still waiting for a decision; accepted and dropped ones are gone from here. */
  proposals: { predictionId: number; index?: number; shape: ShapeJSON }[];
  /** What became of the proposals decided so far (absent in drafts from before fates). */
  decisions?: ProposalDecision[];
  tags: string[];
  savedAt: number;
}

export function draftKey(taskId: number, version: number | null): string {
  return `${PREFIX}${taskId}.${version ?? 0}`;
}

export function draftFromDocument(doc: AnnotationDocument, taskId: number, version: number | null, now: number): Draft {
  return {
    format: DRAFT_FORMAT,
    taskId,
    version,
    shapes: doc.annotationJSON(),
    proposals: doc.proposals().map((s) => ({ ...s.proposal!, shape: toJSON(s) })),
    decisions: proposalDecisions(doc),
    tags: doc.tagList(),
    savedAt: now,
  };
}

/**
 * Put a draft back into a document. Proposals still pending in the draft are offered again at
 * their place in their prediction (as the draft had them); the others were decided, and what
 * became of them is sent with the next save.
 */
export function restoreDraft(doc: AnnotationDocument, draft: Draft): void {
  const predictions = doc.sourcePredictions.map((p) => pendingFromDraft(p, draft));
  doc.load(draft.shapes, draft.tags, predictions);
  doc.priorDecisions = draft.decisions ?? [];
  // What came from the draft is not on the server yet.
  doc.revision++;
}

/** A prediction as the draft left it: its pending shapes offered, every other one not. */
function pendingFromDraft(prediction: PredictionJSON, draft: Draft): PredictionJSON {
  const own = draft.proposals.filter((p) => p.predictionId === prediction.id);
  const shapes = [...prediction.shapes];
  const fates = shapes.map((json, index) => {
    if (prediction.fates?.[index]) return prediction.fates[index];
    // Older drafts say no index: the pending shape is the one drawn the same.
    const pending = own.find((p) => (p.index === undefined ? sameShape(p.shape, json) : p.index === index));
    if (!pending) return "dropped" as const; // decided in the draft: not offered again
    shapes[index] = pending.shape;
    return null;
  });
  return { ...prediction, shapes, fates };
}

function sameShape(a: ShapeJSON, b: ShapeJSON): boolean {
  return a.type === b.type && a.label === b.label && JSON.stringify(a.points) === JSON.stringify(b.points);
}

export function serializeDraft(draft: Draft): string {
  return JSON.stringify(draft);
}

function isPoint(value: unknown): value is Point {
  return Array.isArray(value) && value.length === 2 && value.every((n) => typeof n === "number" && Number.isFinite(n));
}

function isShape(value: unknown): value is ShapeJSON {
  const s = value as ShapeJSON;
  return (
    typeof s === "object" &&
    s !== null &&
    (s.type === "box" || s.type === "polygon" || s.type === "points") &&
    Array.isArray(s.points) &&
    s.points.every(isPoint) &&
    typeof s.label === "number"
  );
}

function isDecision(value: unknown): value is ProposalDecision {
  const d = value as ProposalDecision;
  return (
    typeof d === "object" &&
    d !== null &&
    typeof d.prediction === "number" &&
    typeof d.index === "number" &&
    ["accepted", "changed", "dropped"].includes(d.fate)
  );
}

/** The draft in `text`, or null when it is missing, corrupt or of another format. */
export function parseDraft(text: string | null): Draft | null {
  if (!text) return null;
  let data: Draft;
  try {
    data = JSON.parse(text) as Draft;
  } catch {
    return null;
  }
  if (
    typeof data !== "object" ||
    data === null ||
    data.format !== DRAFT_FORMAT ||
    typeof data.taskId !== "number" ||
    !Array.isArray(data.shapes) ||
    !data.shapes.every(isShape) ||
    !Array.isArray(data.proposals) ||
    !data.proposals.every((p) => typeof p?.predictionId === "number" && isShape(p.shape)) ||
    !(data.decisions === undefined || (Array.isArray(data.decisions) && data.decisions.every(isDecision))) ||
    !Array.isArray(data.tags) ||
    !data.tags.every((t) => typeof t === "string")
  ) {
    return null;
  }
  return data;
}

/** The drafts of one browser; every method survives a missing or full localStorage. */
export class DraftStore {
  constructor(private readonly storage: Storage | null) {}

  /** Store a draft; when storage is full, the oldest drafts of other tasks make room. */
  save(draft: Draft): boolean {
    if (!this.storage) return false;
    const key = draftKey(draft.taskId, draft.version);
    const text = serializeDraft(draft);
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        this.storage.setItem(key, text);
        return true;
      } catch {
        if (!this.dropOldest(draft.taskId)) return false; // nothing left to drop: go on without a draft
      }
    }
    return false;
  }

  private dropOldest(keepTask: number): boolean {
    try {
      const storage = this.storage!;
      let oldest: { key: string; savedAt: number } | null = null;
      for (let i = 0; i < storage.length; i++) {
        const key = storage.key(i);
        if (!key?.startsWith(PREFIX) || key.startsWith(`${PREFIX}${keepTask}.`)) continue;
        const savedAt = parseDraft(storage.getItem(key))?.savedAt ?? 0;
        if (!oldest || savedAt < oldest.savedAt) oldest = { key, savedAt };
      }
      if (!oldest) return false;
      storage.removeItem(oldest.key);
      return true;
    } catch {
      return false;
    }
  }

  load(taskId: number, version: number | null): Draft | null {
    try {
      return parseDraft(this.storage?.getItem(draftKey(taskId, version)) ?? null);
    } catch {
      return null;
    }
  }

  /** Drafts of this task made from another version (left behind by a save that came back stale). */
  others(taskId: number, version: number | null): Draft[] {
    const found: Draft[] = [];
    const own = draftKey(taskId, version);
    try {
      const storage = this.storage;
      if (!storage) return found;
      for (let i = 0; i < storage.length; i++) {
        const key = storage.key(i);
        if (!key || key === own || !key.startsWith(`${PREFIX}${taskId}.`)) continue;
        const draft = parseDraft(storage.getItem(key));
        if (draft) found.push(draft);
      }
    } catch {
      return found;
    }
    return found.sort((a, b) => b.savedAt - a.savedAt);
  }

  clear(taskId: number, version: number | null): void {
    try {
      this.storage?.removeItem(draftKey(taskId, version));
    } catch {
      /* nothing to clear */
    }
  }

  clearAll(taskId: number): void {
    try {
      const storage = this.storage;
      if (!storage) return;
      const keys: string[] = [];
      for (let i = 0; i < storage.length; i++) {
        const key = storage.key(i);
        if (key?.startsWith(`${PREFIX}${taskId}.`)) keys.push(key);
      }
      for (const key of keys) storage.removeItem(key);
    } catch {
      /* nothing to clear */
    }
  }
}
