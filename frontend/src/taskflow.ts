/**
 * What the person does with the task as a whole, one request at a time (busy meanwhile): save it
 * (Ctrl+S), submit it (asking once about proposals still undecided), skip it, or give the
 * reviewer's verdict. After submit, skip or a verdict the server reserves the task to work on now
 * and that task opens, or there is none left and the work is done. The likely next task's image
 * is fetched ahead meanwhile, though the server may hand out another. The previous / next image
 * keys open the neighbours in the project's list instead, and the previous image's shapes can be
 * copied onto this one.
 */
import type { ApiClient } from "./api";
import { carryShapes } from "./model/carry";
import type { ImageHandoff } from "./session";
import type { TaskStore } from "./taskstore";
import type { Host } from "./view/host";

export interface TaskFlowHooks {
  busyChanged(busy: boolean): void;
  /** Open task `id` (in place, or by loading its page). */
  openTask(id: number): void | Promise<void>;
  /** No task is left for this person. */
  done(): void;
  /** May the person leave this task? Asks first when something is unsaved (guard.ts). */
  mayLeave(): Promise<boolean>;
  /** Moving on failed: the person is still on this task. */
  stay(): void;
  /** The reviewer's comment box (review mode only). */
  reviewComment(): HTMLTextAreaElement | null;
}

export class TaskFlow {
  private working = false;
  private warnedProposals = false;

  constructor(
    private readonly host: Host,
    private readonly api: ApiClient,
    private readonly store: TaskStore,
    private readonly images: ImageHandoff | null,
    private readonly hooks: TaskFlowHooks,
  ) {}

  /** A request is under way: the buttons wait for it. */
  get busy(): boolean {
    return this.working;
  }

  /** The shapes changed: submitting with undecided proposals asks again. */
  shapesChanged(): void {
    this.warnedProposals = false;
  }

  /** Save without submitting (Ctrl+S). */
  async save(): Promise<boolean> {
    if (this.working) return false;
    this.setBusy(true);
    const ok = await this.store.save(false);
    this.setBusy(false);
    if (ok) this.host.notify(this.host.t("notice.saved"), "success");
    return ok;
  }

  /** Save with submit=true, then open the next task. */
  async submit(): Promise<void> {
    if (this.working || this.host.config.mode !== "annotate") return;
    const waiting = this.host.doc.proposals().length;
    if (waiting > 0 && !this.warnedProposals) {
      this.warnedProposals = true;
      this.host.notify(this.host.t("notice.proposalsLeft", { count: waiting }), "warning", { id: "proposals" });
      return;
    }
    this.setBusy(true);
    if (await this.store.save(true)) {
      await this.moveOn();
    }
    this.setBusy(false);
  }

  /** Give the task back and open the next one; unsaved changes ask first (and stay a draft). */
  async skip(): Promise<void> {
    if (this.working || !(await this.hooks.mayLeave())) return;
    this.setBusy(true);
    this.store.flush();
    const released = await this.api.release();
    if (!released.ok) {
      this.store.explain(released.error, this.host.t("error.release"));
      this.hooks.stay();
    } else await this.moveOn();
    this.setBusy(false);
  }

  async review(verdict: "approve" | "reject"): Promise<void> {
    const { t, doc } = this.host;
    if (this.working || this.host.config.mode !== "review") return;
    const comment = this.hooks.reviewComment()?.value.trim() ?? "";
    if (verdict === "reject" && !comment) {
      this.host.notify(t("review.commentRequired"), "warning");
      this.hooks.reviewComment()?.focus();
      return;
    }
    this.setBusy(true);
    // A reviewer's corrections are saved first, so the verdict is about what they see.
    if (doc.dirty && !(await this.store.save(false))) {
      this.setBusy(false);
      return;
    }
    const result = await this.api.review(verdict, comment);
    if (!result.ok) this.store.explain(result.error, t("error.review"));
    else {
      this.host.notify(verdict === "approve" ? t("review.approved") : t("review.rejected"), "success");
      await this.moveOn();
    }
    this.setBusy(false);
  }

  /**
   * Open the task before (-1) or after (+1) this one in the project's list, saving first when
   * something changed; a refused save keeps the person here, with the reason.
   */
  async openNeighbour(step: -1 | 1): Promise<void> {
    const neighbours = this.host.config.neighbours;
    const id = step < 0 ? neighbours?.previous : neighbours?.next;
    if (this.working) return;
    if (id === null || id === undefined) {
      const { t } = this.host;
      this.host.notify(step < 0 ? t("neighbour.first") : t("neighbour.last"), "info", { id: "neighbour" });
      return;
    }
    this.setBusy(true);
    if (!this.host.doc.dirty || (await this.store.save(false))) await this.hooks.openTask(id);
    this.setBusy(false);
  }

  /**
   * Copy the previous image's shapes (the task before this one in the list) onto this image as
   * new shapes, clipped to it: one undo takes them all away again.
   */
  async copyPrevious(): Promise<void> {
    const { t, config, doc } = this.host;
    const previous = config.neighbours?.previous;
    if (this.working || config.mode !== "annotate" || !config.api.annotationOf) return;
    if (previous === null || previous === undefined) {
      this.host.notify(t("neighbour.first"), "info", { id: "neighbour" });
      return;
    }
    this.setBusy(true);
    const result = await this.api.annotationOf(config.api.annotationOf.replace("{id}", String(previous)));
    this.setBusy(false);
    if (!result.ok) {
      this.store.explain(result.error, t("error.copy"));
      return;
    }
    const labels = new Set(doc.labels.map((label) => label.id));
    const shapes = carryShapes(result.data?.shapes ?? [], config.task.width, config.task.height, labels);
    doc.addShapes(shapes);
    if (shapes.length) this.host.notify(t("copy.done", { count: shapes.length }), "success", { id: "copy" });
    else this.host.notify(t("copy.none"), "info", { id: "copy" });
  }

  /** Start fetching the likely next task's image, so it is on screen at once if that task comes. */
  prefetchLikelyNext(): void {
    const next = this.host.config.likelyNext;
    if (next?.imageUrl) {
      if (this.images) this.images.prefetch(next.id, next.imageUrl);
      else new Image().src = next.imageUrl;
    }
  }

  /** Ask the server to reserve a task for this person and open it; none left: done. */
  private async moveOn(): Promise<void> {
    const reserved = await this.api.reserveTask();
    if (!reserved.ok) {
      this.store.explain(reserved.error, this.host.t("error.next"));
      return;
    }
    if (reserved.data === null || reserved.status === 204 || typeof reserved.data?.id !== "number") {
      this.hooks.done();
      return;
    }
    await this.hooks.openTask(reserved.data.id);
  }

  private setBusy(busy: boolean): void {
    this.working = busy;
    this.hooks.busyChanged(busy);
  }
}
