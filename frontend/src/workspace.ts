/**
 * The workspace: builds the page (tool column, top bar, stage, sidebar, "?" overlay), wires the
 * model, the views and the controller together, and is the Host they all talk to. The task's
 * annotation lives in TaskStore (saving, drafts, lead time), what the person does with the task
 * as a whole in TaskFlow (save, submit, skip, review, moving on), and the canvas area in Stage.
 */
import { ApiClient, type FetchLike } from "./api";
import { Controller } from "./controller/controller";
import { translator, type Translate } from "./i18n";
import { AnnotationDocument, type ChangeKind } from "./model/document";
import { ModeMachine, type Tool } from "./model/modes";
import { ViewTransform } from "./model/transform";
import type { ImageHandoff } from "./session";
import { Stage } from "./stage";
import { TaskFlow } from "./taskflow";
import { TaskStore } from "./taskstore";
import type { FrameStats, ShapeJSON, ViewState, WorkspaceConfig } from "./types";
import { HelpOverlay, Toolbar, TopBar } from "./view/chrome";
import { h } from "./view/dom";
import type { Host, NoticeAction, Tone } from "./view/host";
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
    this.store = new TaskStore(this, api, draftStorage(options.storage), now, {
      saved: (version, submit) => {
        this.topbar.update();
        this.emit(EVENTS.saved, { version, submit });
      },
    });
    this.flow = new TaskFlow(this, api, this.store, images, {
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
    this.stage = new Stage(root, this, images, () => this.flow.prefetchLikelyNext());
    this.renderer = this.stage.renderer;
    this.toolbar = new Toolbar(this);
    this.topbar = new TopBar(this);
    this.sidebar = new Sidebar(this);
    this.help = new HelpOverlay(this);
    root.append(
      this.topbar.element,
      h("div", { class: "dl-body" }, this.toolbar.element, this.stage.element, this.sidebar.element),
      this.help.element,
    );
    this.controller = new Controller(this, this.renderer, {
      onPointer: (p) => this.stage.showPosition(p),
      isHelpOpen: () => this.help.open,
      spaceHeld: (held) => this.stage.element.classList.toggle("is-space", held),
    });

    this.wire();
    this.store.restoreDrafts();
    this.stage.loadImage();
    this.topbar.update();
    this.stage.updateStatus();
  }

  /** Listen to the model, the page and the window; lay the stage out and follow its size. */
  private wire(): void {
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
    this.listen(this.root, "mousedown", (event) => {
      if ((event.target as HTMLElement).closest?.("button, [role='option']")) event.preventDefault();
    });
    this.listen(window, "pagehide", () => this.store.flush());
    this.listen(document, "visibilitychange", () => {
      if (document.visibilityState === "hidden") {
        this.store.flush();
        this.store.pauseClock();
      } else this.store.resumeClock();
    });
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

  get destroyed(): boolean {
    return this.dead;
  }

  destroy(): void {
    if (this.dead) return;
    this.dead = true;
    this.store.flush();
    this.controller.destroy();
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
