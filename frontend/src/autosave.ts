/** Keeps a draft of the document in localStorage whenever it has unsaved changes. */
import type { AnnotationDocument } from "./model/document";
import { type Draft, type DraftStore, draftFromDocument } from "./model/draft";

export const DRAFT_DELAY_MS = 400;

export class Autosave {
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly store: DraftStore,
    private readonly doc: AnnotationDocument,
    private readonly taskId: number,
    private readonly version: () => number | null,
    private readonly now: () => number,
  ) {}

  /** Write soon: edits come in bursts, one write per burst is enough. */
  schedule(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), DRAFT_DELAY_MS);
  }

  /** Write now if anything is unsaved (or always, when forced). */
  flush(force = false): void {
    this.cancel();
    if (!this.doc.dirty && !force) return;
    this.store.save(draftFromDocument(this.doc, this.taskId, this.version(), this.now()));
  }

  cancel(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** The draft made from the version now loaded. */
  own(): Draft | null {
    return this.store.load(this.taskId, this.version());
  }

  /** The newest draft made from another version (left by a save that came back stale). */
  older(): Draft | null {
    return this.store.others(this.taskId, this.version())[0] ?? null;
  }

  /** Forget every draft of this task (after a successful save). */
  clear(): void {
    this.cancel();
    this.store.clearAll(this.taskId);
  }
}
