/**
 * This task's annotation as the server and the drafts know it: the version it was loaded at, the
 * working time spent on it (the lead time, which stops while the page is hidden), saving it, the
 * drafts in localStorage offered back on load, and what a failed request means for the person.
 */
import { type ApiClient, type ApiError } from "./api";
import { Autosave } from "./autosave";
import { DraftStore, restoreDraft } from "./model/draft";
import { proposalDecisions } from "./model/fates";
import type { Host } from "./view/host";

export interface TaskStoreHooks {
  /** The server took the annotation; `version` is the one it now has. */
  saved(version: number | null, submit: boolean): void;
}

export class TaskStore {
  private version: number | null;
  private readonly autosave: Autosave;
  private activeSince: number;
  private activeMs = 0;

  constructor(
    private readonly host: Host,
    private readonly api: ApiClient,
    storage: Storage | null,
    private readonly now: () => number,
    private readonly hooks: TaskStoreHooks,
  ) {
    this.version = host.config.annotation.version;
    this.activeSince = this.now();
    this.autosave = new Autosave(new DraftStore(storage), host.doc, host.config.task.id, () => this.version, this.now);
  }

  /** Send the annotation (submit: as finished). False when the server refused; the person was told why. */
  async save(submit: boolean): Promise<boolean> {
    const doc = this.host.doc;
    this.autosave.flush();
    const sentRevision = doc.revision;
    const result = await this.api.saveAnnotation({
      version: this.version,
      shapes: doc.annotationJSON(),
      tags: doc.tagList(),
      lead_time: Math.round(this.leadTimeMs() / 100) / 10,
      submit,
      proposals: proposalDecisions(doc),
    });
    if (!result.ok) {
      this.explain(result.error, this.host.t("error.save"));
      return false;
    }
    this.autosave.clear();
    this.version = result.data?.version ?? this.version;
    this.activeMs = 0;
    this.activeSince = this.now();
    // Edits made while the request was in flight stay unsaved (and go to a new draft).
    if (doc.revision === sentRevision) doc.markSaved();
    else this.autosave.schedule();
    this.hooks.saved(this.version, submit);
    return true;
  }

  /** Tell the person what a failed request means; `what` names what failed. */
  explain(error: ApiError, what: string): void {
    const { t } = this.host;
    if (error.status === 409 && error.code === "stale") {
      // The draft stays in localStorage under this version; after a reload it is offered back.
      this.autosave.flush(true);
      this.host.notify(t("error.stale"), "error", {
        id: "stale",
        actions: [{ label: t("action.reload"), run: () => window.location.reload() }],
      });
      return;
    }
    if (error.status === 0) {
      this.autosave.flush(true);
      this.host.notify(t("error.network"), "error", { id: "network" });
      return;
    }
    const index = typeof error.details?.shape === "number" ? error.details.shape : null;
    if (index !== null) {
      const shape = this.host.doc.shapes.filter((s) => s.proposal === null)[index];
      if (shape) this.host.reveal(shape.uid);
    }
    const text = error.message ? `${what} ${error.message}` : what;
    this.host.notify(text, "error", { id: "error" });
  }

  // ---- drafts ---------------------------------------------------------------------------------

  /** The shapes or tags changed: a draft is written soon. */
  changed(): void {
    this.autosave.schedule();
  }

  /** Write the draft now if anything is unsaved. */
  flush(): void {
    this.autosave.flush();
  }

  /** On load: put back this version's draft, or offer one left from another version. */
  restoreDrafts(): void {
    const { doc, t } = this.host;
    const own = this.autosave.own();
    if (own) {
      restoreDraft(doc, own);
      this.host.notify(t("draft.restored"), "info", {
        id: "draft",
        actions: [{ label: t("draft.discard"), run: () => this.discardDraft() }],
      });
      return;
    }
    const older = this.autosave.older();
    if (older) {
      this.host.notify(t("draft.older"), "warning", {
        id: "draft",
        actions: [
          {
            label: t("draft.restoreOlder"),
            run: () => {
              restoreDraft(doc, older);
              this.autosave.schedule();
            },
          },
          { label: t("draft.discard"), run: () => this.autosave.clear() },
        ],
      });
    }
  }

  private discardDraft(): void {
    const { config } = this.host;
    this.autosave.clear();
    this.host.doc.load(config.annotation.shapes, config.annotation.tags, config.predictions);
  }

  // ---- lead time ------------------------------------------------------------------------------

  /** The page was hidden: the clock stops. */
  pauseClock(): void {
    this.activeMs += Math.max(0, this.now() - this.activeSince);
    this.activeSince = this.now();
  }

  /** The page is visible again: the clock runs from now. */
  resumeClock(): void {
    this.activeSince = this.now();
  }

  private leadTimeMs(): number {
    const running = document.visibilityState === "hidden" ? 0 : this.now() - this.activeSince;
    return this.activeMs + Math.max(0, running);
  }
}
