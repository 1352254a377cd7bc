/**
 * The workspace: builds the page (tool column, top bar, stage, sidebar, "?" overlay), wires the
 * model, the views and the controller together, and is the Host they all talk to. The task's
 * annotation lives in TaskStore (saving, drafts, lead time), what the person does with the task
 * as a whole in TaskFlow (save, submit, skip, review, moving on), and the canvas area in Stage.
 */
import { ApiClient, type FetchLike } from "./api";
import { Controller } from "./controller/controller";
import { translator, type Translate } from "./i18n";
import { readHighlights } from "./highlights";
import { draftAt, focusRect, IssueBoard } from "./issues";
import { AnnotationDocument, type ChangeKind, type Shape } from "./model/document";
import { ModeMachine, type Tool } from "./model/modes";
import { ViewTransform } from "./model/transform";
import type { ImageHandoff } from "./session";
import { confirmDialog, LeaveGuard } from "./guard";
import { Stage } from "./stage";
import { TaskFlow } from "./taskflow";
import { TaskStore } from "./taskstore";
import type { FrameStats, Point, ShapeJSON, ViewState, WorkspaceConfig } from "./types";
import { HelpOverlay, Toolbar, TopBar } from "./view/chrome";
import { DiffLayer } from "./view/difflayer";
import { h } from "./view/dom";
import { ReviewHistory } from "./view/history";
import { HighlightView } from "./view/highlights";
import type { Host, NoticeAction, Tone } from "./view/host";
import { IssuePanel, IssuePins } from "./view/issues";
import type { Renderer } from "./view/renderer";
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

/** Where drafts live: the option if given (null: none), else localStorage if the browser allows it. */
function draftStorage(option: Storage | null | undefined): Storage | null {
  if (option !== undefined) return option;
  try {
    return window.localStorage;
  } catch {
    return null; // storage blocked by the browser's privacy settings
  }
}

export class Workspace implements Host {
  readonly t: Translate;
  readonly doc: AnnotationDocument;
  readonly modes = new ModeMachine();
  readonly view = new ViewTransform();
  readonly tools: Tool[];
  activeLabel: number | null;
  /** The review issues pinned on the task. */
  readonly issues: IssueBoard;

  private readonly navigate: (url: string) => void;
  private readonly openTask: (id: number) => void | Promise<void>;
  private readonly store: TaskStore;
  private readonly flow: TaskFlow;
  private readonly stage: Stage;
  private readonly renderer: Renderer;
  private readonly controller: Controller;
  private readonly sidebar: Sidebar;
  private readonly toolbar: Toolbar;
  private readonly topbar: TopBar;
  private readonly help: HelpOverlay;
  private readonly pins: IssuePins;
  private readonly issuePanel: IssuePanel;
  /** The label-error highlights the page handed over (none unless opened from a finding). */
  readonly highlights: HighlightView;
  /** "I" was pressed with no shape selected: the next click on the image places an issue. */
  private placingIssue = false;
  private readonly guard: LeaveGuard;
  private readonly history: ReviewHistory | null = null;
  private readonly pending = new Set<SidebarChange>();
  private sidebarFrame = 0;
  private dead = false;
  private readonly disposers: (() => void)[] = [];

  constructor(
    readonly root: HTMLElement,
    readonly config: WorkspaceConfig,
    options: WorkspaceOptions = {},
  ) {
    this.t = translator(config.strings ?? {});
    const now = options.now ?? (() => Date.now());
    this.navigate = options.navigate ?? ((url) => window.location.assign(url));
    this.openTask = options.openTask ?? ((id) => this.navigate(config.workspaceUrl.replace("{id}", String(id))));
    const images = options.images ?? null;
    const fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
    const api = new ApiClient(config.api, config.csrfToken, fetchImpl);
    const allowed = config.project.shapeTypes?.length ? config.project.shapeTypes : ["box", "polygon"];
    this.tools = ["select", ...(["box", "polygon", "points"] as const).filter((t) => allowed.includes(t))];
    this.activeLabel = config.project.labels[0]?.id ?? null;

    this.doc = new AnnotationDocument(config.project.labels, undefined, { review: config.mode === "review" });
    this.doc.load(config.annotation.shapes, config.annotation.tags, config.predictions);
    this.issues = new IssueBoard(config.issues ?? [], api);
    this.store = new TaskStore(this, api, draftStorage(options.storage), now, {
      saved: (version, submit) => {
        this.topbar.update();
        this.emit(EVENTS.saved, { version, submit });
      },
    });
    this.guard = new LeaveGuard(this.doc, () =>
      confirmDialog(root, { message: this.t("leave.message"), confirm: this.t("leave.confirm"), cancel: this.t("leave.cancel") }),
    );
    this.flow = new TaskFlow(this, api, this.store, images, {
      mayLeave: () => this.guard.mayLeave(),
      stay: () => this.guard.stay(),
      busyChanged: (busy) => {
        this.root.classList.toggle("is-busy", busy);
        this.topbar.update();
        this.queueSidebar("busy");
      },
      openTask: (id) => this.openTask(id),
      done: () => this.showDone(),
      reviewComment: () => this.sidebar.comment,
    });

    root.classList.add("dl-workspace");
    root.replaceChildren();
    this.stage = new Stage(root, this, images, () => {
      this.flow.prefetchLikelyNext();
      this.highlights?.centreFirst();
    });
    this.renderer = this.stage.renderer;
    this.toolbar = new Toolbar(this);
    this.topbar = new TopBar(this);
    this.sidebar = new Sidebar(this);
    this.help = new HelpOverlay(this);
    [this.pins, this.issuePanel] = this.mountIssues();
    this.highlights = this.mountHighlights();
    if (config.mode === "review" && config.api.versions) {
      const layer = new DiffLayer(this.stage.element, this.view, () => this.stage.viewMoved());
      this.history = new ReviewHistory(this, api, layer);
      this.sidebar.element.querySelector(".dl-review")?.after(this.history.element);
    }
    root.append(
      this.topbar.element,
      h("div", { class: "dl-body" }, this.toolbar.element, this.stage.element, this.sidebar.element),
      this.help.element,
    );
    this.controller = new Controller(this, this.renderer, {
      onPointer: (p) => this.stage.showPosition(p),
      // The help, the leave question and the version diff each hold the canvas' shortcuts.
      isHelpOpen: () => this.help.open || this.guard.open || (this.history?.diffing ?? false),
      spaceHeld: (held) => this.stage.element.classList.toggle("is-space", held),
    });

    this.wire();
    this.store.restoreDrafts();
    this.stage.loadImage();
    this.topbar.update();
    this.stage.updateStatus();
  }

  /** The review issues: numbered pins over the image and their list in the sidebar. */
  private mountIssues(): [IssuePins, IssuePanel] {
    const actions = {
      focus: (id: number) => this.focusIssue(id),
      send: (message: string) => void this.sendIssue(message),
      cancel: () => this.cancelIssue(),
      settle: (id: number, resolved: boolean) => void this.settleIssue(id, resolved),
    };
    const pins = new IssuePins(this, this.issues, actions);
    const panel = new IssuePanel(this, this.issues, actions);
    this.stage.element.append(pins.element);
    this.sidebar.element.insertBefore(panel.element, this.sidebar.element.querySelector(".dl-instructions, .dl-classes"));
    return [pins, panel];
  }

  /** The label-error highlights the page handed over: outlines over the image, their list. */
  private mountHighlights(): HighlightView {
    const { task } = this.config;
    const view = new HighlightView(this, readHighlights(this.config.highlights, task.width, task.height), {
      stage: this.stage.element,
      sidebar: this.sidebar.element,
      size: () => ({ width: this.renderer.width, height: this.renderer.height }),
      viewMoved: () => this.stage.viewMoved(),
    });
    this.stage.onView = () => {
      this.pins.place();
      view.place();
    };
    return view;
  }

  /** Listen to the model, the page and the window; lay the stage out and follow its size. */
  private wire(): void {
    this.disposers.push(
      this.doc.onChange((kind) => this.onDocChange(kind)),
      this.issues.onChange(() => {
        this.pins.update();
        this.issuePanel.update();
      }),
      this.modes.onChange(() => {
        this.toolbar.update();
        this.renderer.invalidate("shapes", "overlay");
        this.emit(EVENTS.mode, { mode: this.modes.mode.kind, tool: this.modes.tool });
      }),
    );
    // Buttons clicked with the mouse do not take the focus, so shortcuts (Tab, Enter, Space)
    // keep working on the canvas right after; keyboard users still reach them with Tab.
    this.listen(this.root, "mousedown", (event) => {
      if ((event.target as HTMLElement).closest?.("button, [role='option']")) event.preventDefault();
    });
    this.listen(window, "pagehide", () => this.store.flush());
    this.listen(window, "beforeunload", (event) => this.guard.beforeUnload(event as BeforeUnloadEvent));
    this.listen(document, "visibilitychange", () => {
      if (document.visibilityState === "hidden") {
        this.store.flush();
        this.store.pauseClock();
      } else this.store.resumeClock();
    });
    this.pins.update();
    this.highlights.place();
    this.stage.layout();
    this.listen(window, "resize", () => this.stage.layout());
    this.stage.observeResize();
  }

  // ---- public API (also on window.__defectlabWorkspace) ---------------------------------------

  /** A request to the server is under way. */
  get busy(): boolean {
    return this.flow.busy;
  }

  setView(state: Partial<ViewState>): void {
    this.stage.setView(state);
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

  /**
   * Choose the class of the next shape. A shape the person picked (clicked, or chose in the list)
   * takes the class too, visibly and undoably; a shape selected only because it was just drawn
   * keeps its class (doc.relabelTarget).
   */
  setActiveLabel(id: number): void {
    const label = this.doc.label(id);
    if (!label) return;
    this.activeLabel = id;
    const target = this.doc.relabelTarget;
    if (target && target.label !== id) {
      this.doc.setLabel(target.uid, id);
      this.renderer.flash(target.uid);
      this.sidebar.flashSelection();
      this.notify(this.t("notice.relabelled", { label: label.name }), "info", { id: "relabel" });
    }
    this.queueSidebar("label");
  }

  reveal(uid: number): void {
    this.stage.reveal(uid);
  }

  notify(text: string, tone: Tone = "info", options: { sticky?: boolean; actions?: NoticeAction[]; id?: string } = {}): void {
    this.stage.notices.show(text, tone, options);
  }

  zoomBy(factor: number): void {
    this.stage.zoomBy(factor);
  }

  viewMoved(): void {
    this.stage.viewMoved();
  }

  fit(): void {
    this.stage.fit();
  }

  rotate(quarterTurns: number): void {
    this.stage.rotate(quarterTurns);
  }

  zoomToSelection(): boolean {
    return this.stage.zoomToSelection();
  }

  /** Save if needed, then open the previous (-1) or next (+1) image in the project's list. */
  openNeighbour(step: -1 | 1): Promise<void> {
    return this.flow.openNeighbour(step);
  }

  /** Copy the previous image's shapes onto this one, clipped to it; one undo takes them away. */
  copyPrevious(): Promise<void> {
    return this.flow.copyPrevious();
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
  save(): Promise<boolean> {
    return this.flow.save();
  }

  /** Save with submit=true, then open the next task. */
  submit(): Promise<void> {
    return this.flow.submit();
  }

  /** Give the task back and open the next one. */
  skip(): Promise<void> {
    return this.flow.skip();
  }

  review(verdict: "approve" | "reject"): Promise<void> {
    return this.flow.review(verdict);
  }

  startIssue(): void {
    if (this.config.mode !== "review" || !this.config.api.issues) return;
    const shape = this.doc.selected;
    if (shape && !shape.proposal) {
      this.issues.place(draftAt([shape.bbox.minX, shape.bbox.minY], shape));
      return;
    }
    this.placingIssue = true;
    this.root.classList.add("is-placing-issue");
    this.notify(this.t("issues.clickToPlace"), "info", { id: "issue", sticky: true });
  }

  placeIssueAt(point: Point, shape: Shape | null): boolean {
    if (!this.placingIssue) return false;
    this.stopPlacing();
    this.issues.place(draftAt(point, shape && !shape.proposal ? shape : null));
    return true;
  }

  /** Show or hide the label-error highlights (Shift+E); false when the task has none. */
  toggleHighlights(): boolean {
    return this.highlights.toggle();
  }

  cancelIssue(): void {
    if (this.placingIssue) this.stopPlacing();
    if (this.issues.draft) this.issues.place(null);
  }

  /** Bring issue `id` into view, zoomed to it, and select the shape it is about. */
  focusIssue(id: number): void {
    const issue = this.issues.get(id);
    if (!issue) return;
    const r = focusRect(issue);
    const { width, height } = this.renderer;
    const scale = Math.min(width / (r.maxX - r.minX), height / (r.maxY - r.minY), 8);
    this.view.set({ scale: Math.max(scale, this.view.scale) });
    this.view.pin([(r.minX + r.maxX) / 2, (r.minY + r.maxY) / 2], [width / 2, height / 2]);
    this.stage.viewMoved();
    const shape = issue.shape ? this.doc.shapes.find((s) => s.id === issue.shape) : undefined;
    if (shape) this.doc.select(shape.uid);
    for (const pin of Array.from(this.pins.element.children)) {
      pin.classList.toggle("is-focused", (pin as HTMLElement).dataset.id === String(id));
    }
  }

  private stopPlacing(): void {
    this.placingIssue = false;
    this.root.classList.remove("is-placing-issue");
    this.stage.notices.dismiss("issue");
  }

  private async sendIssue(message: string): Promise<void> {
    if (!message.trim()) {
      this.notify(this.t("issues.commentRequired"), "warning", { id: "issue" });
      return;
    }
    const error = await this.issues.send(message);
    if (error) this.store.explain(error, this.t("issues.error"));
    else this.notify(this.t("issues.added"), "success", { id: "issue" });
  }

  private async settleIssue(id: number, resolved: boolean): Promise<void> {
    const error = await this.issues.settle(id, resolved);
    if (error) this.store.explain(error, this.t("issues.error"));
  }

  get destroyed(): boolean {
    return this.dead;
  }

  destroy(): void {
    if (this.dead) return;
    this.dead = true;
    this.store.flush();
    this.controller.destroy();
    this.history?.destroy();
    this.stage.destroy();
    if (this.sidebarFrame) cancelAnimationFrame(this.sidebarFrame);
    for (const dispose of this.disposers) dispose();
    this.root.replaceChildren();
    this.root.classList.remove("dl-workspace");
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

  // ---- inside -----------------------------------------------------------------------------------

  /** No task is left: the workspace gives way to a message (and a way back, if the page gave one). */
  private showDone(): void {
    this.store.flush();
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
      this.store.changed();
      this.flow.shapesChanged();
      this.stage.updateStatus();
    }
    if (kind === "selection") {
      const shape = this.doc.selected;
      // A picked shape shows its class as the chosen one; a just-drawn shape leaves the choice alone.
      if (shape && this.doc.selectionPicked && this.doc.label(shape.label)) this.activeLabel = shape.label;
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

  private emit(type: string, detail: unknown): void {
    this.root.dispatchEvent(new CustomEvent(type, { detail, bubbles: true }));
  }

  private listen(target: EventTarget, type: string, handler: (event: Event) => void): void {
    target.addEventListener(type, handler);
    this.disposers.push(() => target.removeEventListener(type, handler));
  }
}
