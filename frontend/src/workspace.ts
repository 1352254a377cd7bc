/**
 * The workspace: builds the DOM, wires model, views and controller together, and runs the task
 * workflow against the server (save, submit, skip, review) with drafts in localStorage.
 */
import { type ApiError, ApiClient, type FetchLike } from "./api";
import { Controller } from "./controller/controller";
import { translator, type Translate } from "./i18n";
import { AnnotationDocument, type ChangeKind } from "./model/document";
import { Autosave } from "./autosave";
import { DraftStore, restoreDraft } from "./model/draft";
import { ModeMachine, type Tool } from "./model/modes";
import { ViewTransform } from "./model/transform";
import type { FrameStats, Point, ShapeJSON, ViewState, WorkspaceConfig } from "./types";
import { HelpOverlay, Notices, StatusLine, Toolbar, TopBar } from "./view/chrome";
import { h } from "./view/dom";
import type { Host, NoticeAction, Tone } from "./view/host";
import type { ImageHandoff } from "./session";
import { Renderer } from "./view/renderer";
import { Sidebar, type SidebarChange } from "./view/sidebar";

export interface WorkspaceOptions {
  fetch?: FetchLike;
  /** Where drafts live; null turns drafts off. Defaults to window.localStorage. */
  storage?: Storage | null;
  /** How to open another task's page. Defaults to location.assign. */
  navigate?: (url: string) => void;
  /** Open task `id` (the session switches in place); defaults to navigating to its page. */
  openTask?: (id: number) => void | Promise<void>;
  /** Decoded images handed over from the previous task; null downloads each image itself. */
  images?: ImageHandoff | null;
  now?: () => number;
}

/** Events dispatched on the root element (bubbling), for pages and tests that want to react. */
export const EVENTS = {
  change: "defectlab:change",
  select: "defectlab:select",
  mode: "defectlab:mode",
  saved: "defectlab:saved",
  done: "defectlab:done",
} as const;

export class Workspace implements Host {
  readonly t: Translate;
  readonly doc: AnnotationDocument;
  readonly modes = new ModeMachine();
  readonly view = new ViewTransform();
  readonly tools: Tool[];
  activeLabel: number | null;
  busy = false;

  private version: number | null;
  private readonly api: ApiClient;
  private readonly autosave: Autosave;
  private readonly navigate: (url: string) => void;
  private readonly openTask: (id: number) => void | Promise<void>;
  private readonly images: ImageHandoff | null;
  private readonly now: () => number;
  private readonly renderer: Renderer;
  private readonly controller: Controller;
  private readonly sidebar: Sidebar;
  private readonly toolbar: Toolbar;
  private readonly topbar: TopBar;
  private readonly notices: Notices;
  private readonly help: HelpOverlay;
  private readonly status: StatusLine;
  private readonly stage: HTMLElement;
  private readonly loading: HTMLElement;
  private readonly pending = new Set<SidebarChange>();
  private sidebarFrame = 0;
  private resizeObserver: ResizeObserver | null = null;
  private fitted = false;
  private viewTouched = false;
  private activeSince: number;
  private activeMs = 0;
  private warnedProposals = false;
  private dead = false;
  private readonly disposers: (() => void)[] = [];

  constructor(
    readonly root: HTMLElement,
    readonly config: WorkspaceConfig,
    options: WorkspaceOptions = {},
  ) {
    this.t = translator(config.strings ?? {});
    this.now = options.now ?? (() => Date.now());
    this.navigate = options.navigate ?? ((url) => window.location.assign(url));
    this.openTask = options.openTask ?? ((id) => this.navigate(config.workspaceUrl.replace("{id}", String(id))));
    this.images = options.images ?? null;
    const fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
    this.api = new ApiClient(config.api, config.csrfToken, fetchImpl);
    let storage: Storage | null = null;
    if (options.storage !== undefined) storage = options.storage;
    else {
      try {
        storage = window.localStorage;
      } catch {
        storage = null; // storage blocked by the browser's privacy settings
      }
    }
    this.version = config.annotation.version;
    const allowed = config.project.shapeTypes?.length ? config.project.shapeTypes : ["box", "polygon"];
    this.tools = ["select", ...(["box", "polygon", "points"] as const).filter((t) => allowed.includes(t))];
    this.activeLabel = config.project.labels[0]?.id ?? null;
    this.activeSince = this.now();

    this.doc = new AnnotationDocument(config.project.labels);
    this.doc.load(config.annotation.shapes, config.annotation.tags, config.predictions);
    this.autosave = new Autosave(new DraftStore(storage), this.doc, config.task.id, () => this.version, this.now);

    // ---- DOM ----
    root.classList.add("dl-workspace");
    root.replaceChildren();
    this.stage = h("div", { class: "dl-stage" });
    this.renderer = new Renderer(this.stage, this.doc, this.view, this.modes, config.task);
    this.renderer.eventTarget.tabIndex = 0;
    this.renderer.eventTarget.setAttribute("aria-label", this.t("canvas.label"));
    this.loading = h("div", { class: "dl-loading", text: this.t("image.loading") });
    this.notices = new Notices(this.t("notice.close"));
    this.status = new StatusLine();
    this.stage.append(this.loading, this.notices.element, this.status.element);
    this.toolbar = new Toolbar(this);
    this.topbar = new TopBar(this);
    this.sidebar = new Sidebar(this);
    this.help = new HelpOverlay(this);
    root.append(
      this.topbar.element,
      h("div", { class: "dl-body" }, this.toolbar.element, this.stage, this.sidebar.element),
      this.help.element,
    );
    this.controller = new Controller(this, this.renderer, {
      onPointer: (p) => this.showPosition(p),
      isHelpOpen: () => this.help.open,
      spaceHeld: (held) => this.stage.classList.toggle("is-space", held),
    });

    // ---- wiring ----
    this.disposers.push(
      this.doc.onChange((kind) => this.onDocChange(kind)),
      this.modes.onChange(() => {
        this.toolbar.update();
        this.renderer.invalidate("shapes", "overlay");
        this.emit(EVENTS.mode, { mode: this.modes.mode.kind, tool: this.modes.tool });
      }),
    );
    // Buttons clicked with the mouse do not take the focus, so shortcuts (Tab, Enter, Space)
    // keep working on the canvas right after; keyboard users still reach them with Tab.
    this.listen(root, "mousedown", (event) => {
      if ((event.target as HTMLElement).closest?.("button, [role='option']")) event.preventDefault();
    });
    this.listen(window, "pagehide", () => this.autosave.flush());
    this.listen(document, "visibilitychange", () => {
      if (document.visibilityState === "hidden") {
        this.autosave.flush();
        this.pauseClock();
      } else this.activeSince = this.now();
    });
    this.layout();
    this.listen(window, "resize", () => this.layout());
    if (typeof ResizeObserver === "function") {
      this.resizeObserver = new ResizeObserver(() => this.layout());
      this.resizeObserver.observe(this.stage);
    }

    this.restoreDrafts();
    this.loadImage();
    this.topbar.update();
    this.updateStatus();
  }

  // ---- public API (also on window.__defectlabWorkspace) ---------------------------------------

  setView(state: Partial<ViewState>): void {
    this.view.set(state);
    this.viewTouched = true;
    this.fitted = true;
    this.viewChanged();
  }

  getView(): ViewState {
    return this.view.state;
  }

  /** Replace the accepted shapes (proposals stay); the undo history starts over. */
  loadShapes(shapes: ShapeJSON[]): void {
    this.doc.replaceAnnotations(shapes);
  }

  getShapes(): ShapeJSON[] {
    return this.doc.annotationJSON();
  }

  getTags(): string[] {
    return this.doc.tagList();
  }

  frameStats(): FrameStats {
    return this.renderer.frameStats();
  }

  resetFrameStats(): void {
    this.renderer.resetFrameStats();
  }

  /** Draw now instead of on the next animation frame (for tests and benchmarks). */
  renderNow(): void {
    this.renderer.invalidate("image", "shapes", "overlay");
    this.renderer.render();
  }

  getMode(): { mode: string; tool: Tool } {
    return { mode: this.modes.mode.kind, tool: this.modes.tool };
  }

  setTool(tool: Tool): void {
    if (!this.tools.includes(tool)) return;
    this.modes.setTool(tool);
    this.renderer.pointer.hoverUid = null;
    this.renderer.invalidate("overlay");
  }

  setActiveLabel(id: number): void {
    if (!this.doc.label(id)) return;
    this.activeLabel = id;
    const selected = this.doc.selected;
    if (selected && !selected.locked) this.doc.setLabel(selected.uid, id);
    this.queueSidebar("label");
  }

  reveal(uid: number): void {
    const shape = this.doc.get(uid);
    if (!shape) return;
    this.doc.select(uid);
    const { width, height } = this.renderer;
    const visible = this.view.visibleRect(width, height);
    const b = shape.bbox;
    if (b.maxX < visible.minX || b.minX > visible.maxX || b.maxY < visible.minY || b.minY > visible.maxY) {
      this.view.pin([(b.minX + b.maxX) / 2, (b.minY + b.maxY) / 2], [width / 2, height / 2]);
      this.viewChanged();
    }
  }

  notify(text: string, tone: Tone = "info", options: { sticky?: boolean; actions?: NoticeAction[]; id?: string } = {}): void {
    this.notices.show(text, tone, options);
  }

  zoomBy(factor: number): void {
    this.view.zoomAt([this.renderer.width / 2, this.renderer.height / 2], factor);
    this.viewTouched = true;
    this.viewChanged();
  }

  viewMoved(): void {
    this.viewTouched = true;
    this.viewChanged();
  }

  fit(): void {
    this.view.fit(this.config.task.width, this.config.task.height, this.renderer.width, this.renderer.height);
    this.viewTouched = false;
    this.viewChanged();
  }

  rotate(quarterTurns: number): void {
    this.view.rotateBy(quarterTurns, [this.renderer.width / 2, this.renderer.height / 2]);
    if (!this.viewTouched) this.view.fit(this.config.task.width, this.config.task.height, this.renderer.width, this.renderer.height);
    this.viewChanged();
  }

  undo(): void {
    if (this.modes.mode.kind !== "idle") return;
    this.doc.undo();
  }

  redo(): void {
    if (this.modes.mode.kind !== "idle") return;
    this.doc.redo();
  }

  toggleHelp(open?: boolean): void {
    this.help.open = open ?? !this.help.open;
    if (this.help.open) (this.help.element.querySelector(".dl-help-close") as HTMLElement | null)?.focus();
    else this.renderer.eventTarget.focus({ preventScroll: true });
  }

  focusSearch(): void {
    this.sidebar.search.focus();
    this.sidebar.search.select();
  }

  setImageFilter(brightness: number, contrast: number): void {
    this.renderer.setFilter(brightness, contrast);
  }

  /** Save without submitting (Ctrl+S). */
  async save(): Promise<boolean> {
    if (this.busy) return false;
    this.setBusy(true);
    const ok = await this.saveAnnotation(false);
    this.setBusy(false);
    if (ok) this.notify(this.t("notice.saved"), "success");
    return ok;
  }

  /** Save with submit=true, then open the next task. */
  async submit(): Promise<void> {
    if (this.busy || this.config.mode !== "annotate") return;
    const waiting = this.doc.proposals().length;
    if (waiting > 0 && !this.warnedProposals) {
      this.warnedProposals = true;
      this.notify(this.t("notice.proposalsLeft", { count: waiting }), "warning", { id: "proposals" });
      return;
    }
    this.setBusy(true);
    if (await this.saveAnnotation(true)) {
      await this.goNext();
    }
    this.setBusy(false);
  }

  /** Give the task back and open the next one. */
  async skip(): Promise<void> {
    if (this.busy) return;
    this.setBusy(true);
    this.autosave.flush();
    const released = await this.api.release();
    if (!released.ok) this.showError(released.error, this.t("error.release"));
    else await this.goNext();
    this.setBusy(false);
  }

  async review(verdict: "approve" | "reject"): Promise<void> {
    if (this.busy || this.config.mode !== "review") return;
    const comment = this.sidebar.comment?.value.trim() ?? "";
    if (verdict === "reject" && !comment) {
      this.notify(this.t("review.commentRequired"), "warning");
      this.sidebar.comment?.focus();
      return;
    }
    this.setBusy(true);
    // A reviewer's corrections are saved first, so the verdict is about what they see.
    if (this.doc.dirty && !(await this.saveAnnotation(false))) {
      this.setBusy(false);
      return;
    }
    const result = await this.api.review(verdict, comment);
    if (!result.ok) this.showError(result.error, this.t("error.review"));
    else {
      this.notify(verdict === "approve" ? this.t("review.approved") : this.t("review.rejected"), "success");
      await this.goNext();
    }
    this.setBusy(false);
  }

  get destroyed(): boolean {
    return this.dead;
  }

  destroy(): void {
    if (this.dead) return;
    this.dead = true;
    this.autosave.flush();
    this.controller.destroy();
    this.renderer.destroy();
    this.resizeObserver?.disconnect();
    if (this.sidebarFrame) cancelAnimationFrame(this.sidebarFrame);
    for (const dispose of this.disposers) dispose();
    this.root.replaceChildren();
    this.root.classList.remove("dl-workspace");
  }

  // ---- workflow -------------------------------------------------------------------------------

  private async saveAnnotation(submit: boolean): Promise<boolean> {
    this.autosave.flush();
    const sentRevision = this.doc.revision;
    const result = await this.api.saveAnnotation({
      version: this.version,
      shapes: this.doc.annotationJSON(),
      tags: this.doc.tagList(),
      lead_time: Math.round(this.leadTimeMs() / 100) / 10,
      submit,
    });
    if (!result.ok) {
      this.showError(result.error, this.t("error.save"));
      return false;
    }
    this.autosave.clear();
    this.version = result.data?.version ?? this.version;
    this.activeMs = 0;
    this.activeSince = this.now();
    // Edits made while the request was in flight stay unsaved (and go to a new draft).
    if (this.doc.revision === sentRevision) this.doc.markSaved();
    else this.autosave.schedule();
    this.topbar.update();
    this.emit(EVENTS.saved, { version: this.version, submit });
    return true;
  }

  private async goNext(): Promise<void> {
    const next = await this.api.reserveTask();
    if (!next.ok) {
      this.showError(next.error, this.t("error.next"));
      return;
    }
    if (next.data === null || next.status === 204 || typeof next.data?.id !== "number") {
      this.showDone();
      return;
    }
    await this.openTask(next.data.id);
  }

  private showDone(): void {
    this.autosave.flush();
    this.controller.destroy();
    this.renderer.destroy();
    // The page may say where "back" is: <div id="workspace" data-project-url="…">.
    const back = this.root.dataset.projectUrl;
    this.root.replaceChildren(
      h(
        "div",
        { class: "dl-done", role: "status" },
        h("p", { class: "dl-done-title", text: this.t("done") }),
        back ? h("a", { class: "dl-btn dl-btn-primary", href: back, text: this.t("done.back") }) : null,
      ),
    );
    this.emit(EVENTS.done, {});
  }

  private showError(error: ApiError, what: string): void {
    if (error.status === 409 && error.code === "stale") {
      // The draft stays in localStorage under this version; after a reload it is offered back.
      this.autosave.flush(true);
      this.notify(this.t("error.stale"), "error", {
        id: "stale",
        actions: [{ label: this.t("action.reload"), run: () => window.location.reload() }],
      });
      return;
    }
    if (error.status === 0) {
      this.autosave.flush(true);
      this.notify(this.t("error.network"), "error", { id: "network" });
      return;
    }
    const index = typeof error.details?.shape === "number" ? error.details.shape : null;
    if (index !== null) {
      const shape = this.doc.shapes.filter((s) => s.proposal === null)[index];
      if (shape) this.reveal(shape.uid);
    }
    const text = error.message ? `${what} ${error.message}` : what;
    this.notify(text, "error", { id: "error" });
  }

  private setBusy(busy: boolean): void {
    this.busy = busy;
    this.root.classList.toggle("is-busy", busy);
    this.topbar.update();
    this.queueSidebar("busy");
  }

  private leadTimeMs(): number {
    const running = document.visibilityState === "hidden" ? 0 : this.now() - this.activeSince;
    return this.activeMs + Math.max(0, running);
  }

  private pauseClock(): void {
    this.activeMs += Math.max(0, this.now() - this.activeSince);
    this.activeSince = this.now();
  }

  // ---- drafts ---------------------------------------------------------------------------------

  private restoreDrafts(): void {
    const own = this.autosave.own();
    if (own) {
      restoreDraft(this.doc, own);
      this.notify(this.t("draft.restored"), "info", {
        id: "draft",
        actions: [{ label: this.t("draft.discard"), run: () => this.discardDraft() }],
      });
      return;
    }
    const older = this.autosave.older();
    if (older) {
      this.notify(this.t("draft.older"), "warning", {
        id: "draft",
        actions: [
          {
            label: this.t("draft.restoreOlder"),
            run: () => {
              restoreDraft(this.doc, older);
              this.autosave.schedule();
            },
          },
          { label: this.t("draft.discard"), run: () => this.autosave.clear() },
        ],
      });
    }
  }

  private discardDraft(): void {
    this.autosave.clear();
    this.doc.load(this.config.annotation.shapes, this.config.annotation.tags, this.config.predictions);
  }

  // ---- rendering and layout -------------------------------------------------------------------

  private loadImage(): void {
    const handed = this.images?.take(this.config.task.id);
    if (handed) {
      void handed.then((bitmap) => (bitmap ? this.showImage(bitmap) : this.downloadImage()));
      return;
    }
    this.downloadImage();
  }

  private downloadImage(): void {
    if (this.dead) return;
    const image = new Image();
    image.decoding = "async";
    const done = () => this.showImage(image);
    image.addEventListener("error", () => {
      if (this.dead) return;
      this.loading.textContent = this.t("image.error");
      this.loading.classList.add("is-error");
    });
    image.addEventListener("load", () => {
      // decode() makes the first frame cheap: the pixels are ready before they are drawn.
      if (typeof image.decode === "function") image.decode().then(done, done);
      else done();
    });
    if (this.config.task.imageUrl) image.src = this.config.task.imageUrl;
    else image.dispatchEvent(new Event("error"));
  }

  private showImage(image: CanvasImageSource & { width: number; height: number }): void {
    if (this.dead) {
      if (typeof ImageBitmap !== "undefined" && image instanceof ImageBitmap) image.close();
      return;
    }
    this.loading.remove();
    const task = this.config.task;
    if (!(task.width > 0 && task.height > 0)) {
      // The server did not know the size yet: the image itself tells it.
      task.width = image.width;
      task.height = image.height;
      this.fit();
    }
    this.renderer.setImage(image);
    // The next task's image travels while this one is being looked at.
    const next = this.config.likelyNext;
    if (next?.imageUrl) {
      if (this.images) this.images.prefetch(next.id, next.imageUrl);
      else new Image().src = next.imageUrl;
    }
  }

  private layout(): void {
    if (this.dead) return;
    const top = Math.max(0, this.root.getBoundingClientRect().top + window.scrollY);
    this.root.style.setProperty("--dl-top", `${Math.round(top)}px`);
    const rect = this.stage.getBoundingClientRect();
    const width = Math.floor(rect.width);
    const height = Math.floor(rect.height);
    if (width <= 0 || height <= 0) return;
    this.renderer.resize(width, height);
    if (!this.fitted || !this.viewTouched) {
      this.view.fit(this.config.task.width, this.config.task.height, width, height);
      this.fitted = true;
    }
    this.viewChanged();
  }

  private viewChanged(): void {
    this.renderer.viewMoved();
    this.updateStatus();
  }

  private updateStatus(): void {
    this.status.setZoom(`${Math.round(this.view.scale * 100)}%${this.view.rotation ? ` · ${this.view.rotation}°` : ""}`);
    this.status.setCount(this.t("status.shapes", { count: this.doc.shapes.length }));
  }

  private showPosition(p: Point | null): void {
    const { width, height } = this.config.task;
    if (!p || p[0] < 0 || p[1] < 0 || p[0] > width || p[1] > height) this.status.setPosition("");
    else this.status.setPosition(`${Math.floor(p[0])}, ${Math.floor(p[1])}`);
  }

  private onDocChange(kind: ChangeKind): void {
    if (kind === "geometry") {
      this.renderer.invalidate("overlay");
      return;
    }
    if (kind === "history") {
      this.toolbar.update();
      this.topbar.update();
      return;
    }
    if (kind === "shapes" || kind === "tags") {
      this.autosave.schedule();
      this.warnedProposals = false;
      this.updateStatus();
    }
    if (kind === "selection") {
      const shape = this.doc.selected;
      if (shape && this.doc.label(shape.label)) this.activeLabel = shape.label;
      this.pending.add("label");
      this.emit(EVENTS.select, { index: shape ? this.doc.indexOf(shape.uid) : null });
    }
    this.renderer.invalidate("shapes", "overlay");
    this.queueSidebar(kind);
    if (kind === "shapes" || kind === "tags") this.emit(EVENTS.change, { kind });
  }

  private queueSidebar(change: SidebarChange): void {
    this.pending.add(change);
    if (this.sidebarFrame || this.dead) return;
    const run = () => {
      this.sidebarFrame = 0;
      const changes = new Set(this.pending);
      this.pending.clear();
      this.sidebar.update(changes);
    };
    if (typeof requestAnimationFrame === "function") this.sidebarFrame = requestAnimationFrame(run);
    else run();
  }

  /** Apply sidebar updates now (tests). */
  flushSidebar(): void {
    if (this.sidebarFrame) cancelAnimationFrame(this.sidebarFrame);
    this.sidebarFrame = 0;
    const changes = new Set(this.pending);
    this.pending.clear();
    this.sidebar.update(changes);
  }

  get sidebarRows(): number {
    return this.sidebar.renderedRows;
  }

  private emit(type: string, detail: unknown): void {
    this.root.dispatchEvent(new CustomEvent(type, { detail, bubbles: true }));
  }

  private listen(target: EventTarget, type: string, handler: (event: Event) => void): void {
    target.addEventListener(type, handler);
    this.disposers.push(() => target.removeEventListener(type, handler));
  }
}
