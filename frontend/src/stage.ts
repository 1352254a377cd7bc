/**
 * The stage: the canvas area in the middle of the workspace. It holds the renderer, the loading
 * message, the notices and the status line; shows the task's image (handed over already decoded
 * by the session, or downloaded); keeps the view fitted to the image until the person zooms or
 * pans it themselves; and reports the zoom, the shape and proposal counts and the pointer's pixel below.
 */
import type { Point, ViewState } from "./types";
import { Notices, StatusLine } from "./view/chrome";
import { h } from "./view/dom";
import type { Host } from "./view/host";
import type { ImageHandoff } from "./session";
import { Renderer } from "./view/renderer";

type Picture = CanvasImageSource & { width: number; height: number };

export class Stage {
  readonly element: HTMLElement;
  readonly renderer: Renderer;
  readonly notices: Notices;
  private readonly loading: HTMLElement;
  private readonly status: StatusLine;
  private resizeObserver: ResizeObserver | null = null;
  /** The view was fitted (or set) once; until then every layout fits it. */
  private fitted = false;
  /** The person zoomed or panned: layout and rotation stop re-fitting the view. */
  private viewTouched = false;
  private closed = false;
  /** Called whenever the view changed (the issue pins follow it). */
  onView: () => void = () => {};

  constructor(
    private readonly root: HTMLElement,
    private readonly host: Host,
    private readonly images: ImageHandoff | null,
    /** Called once the image is on screen (the next task's image may start travelling then). */
    private readonly imageShown: () => void,
  ) {
    const { t } = host;
    this.element = h("div", { class: "dl-stage" });
    this.renderer = new Renderer(this.element, host.doc, host.view, host.modes, host.config.task);
    this.renderer.eventTarget.tabIndex = 0;
    this.renderer.eventTarget.setAttribute("aria-label", t("canvas.label"));
    this.loading = h("div", { class: "dl-loading", text: t("image.loading") });
    this.notices = new Notices(t("notice.close"));
    this.status = new StatusLine();
    this.element.append(this.loading, this.notices.element, this.status.element);
  }

  /** Follow the stage's size as the window or the page around it changes. */
  observeResize(): void {
    if (typeof ResizeObserver === "function") {
      this.resizeObserver = new ResizeObserver(() => this.layout());
      this.resizeObserver.observe(this.element);
    }
  }

  destroy(): void {
    this.closed = true;
    this.renderer.destroy();
    this.resizeObserver?.disconnect();
  }

  // ---- the view -------------------------------------------------------------------------------

  setView(state: Partial<ViewState>): void {
    this.host.view.set(state);
    this.viewTouched = true;
    this.fitted = true;
    this.viewChanged();
  }

  zoomBy(factor: number): void {
    this.host.view.zoomAt([this.renderer.width / 2, this.renderer.height / 2], factor);
    this.viewTouched = true;
    this.viewChanged();
  }

  /** The person moved the view directly (wheel, drag, arrows). */
  viewMoved(): void {
    this.viewTouched = true;
    this.viewChanged();
  }

  fit(): void {
    const { task } = this.host.config;
    this.host.view.fit(task.width, task.height, this.renderer.width, this.renderer.height);
    this.viewTouched = false;
    this.viewChanged();
  }

  /** Zoom to the selected shape, centred with room around it; nothing selected: nothing happens. */
  zoomToSelection(): boolean {
    const shape = this.host.doc.selected;
    if (!shape) return false;
    this.host.view.fitBox(shape.bbox, this.renderer.width, this.renderer.height);
    this.viewTouched = true;
    this.viewChanged();
    return true;
  }

  rotate(quarterTurns: number): void {
    const { view, config } = this.host;
    view.rotateBy(quarterTurns, [this.renderer.width / 2, this.renderer.height / 2]);
    if (!this.viewTouched) view.fit(config.task.width, config.task.height, this.renderer.width, this.renderer.height);
    this.viewChanged();
  }

  /** Select a shape, and centre it if it is entirely off screen. */
  reveal(uid: number): void {
    const { doc, view } = this.host;
    const shape = doc.get(uid);
    if (!shape) return;
    doc.select(uid);
    const { width, height } = this.renderer;
    const visible = view.visibleRect(width, height);
    const b = shape.bbox;
    if (b.maxX < visible.minX || b.minX > visible.maxX || b.maxY < visible.minY || b.minY > visible.maxY) {
      view.pin([(b.minX + b.maxX) / 2, (b.minY + b.maxY) / 2], [width / 2, height / 2]);
      this.viewChanged();
    }
  }

  /** Measure the stage: the workspace fills the viewport below its own top. */
  layout(): void {
    if (this.closed) return;
    const top = Math.max(0, this.root.getBoundingClientRect().top + window.scrollY);
    this.root.style.setProperty("--dl-top", `${Math.round(top)}px`);
    const rect = this.element.getBoundingClientRect();
    const width = Math.floor(rect.width);
    const height = Math.floor(rect.height);
    if (width <= 0 || height <= 0) return;
    this.renderer.resize(width, height);
    if (!this.fitted || !this.viewTouched) {
      this.host.view.fit(this.host.config.task.width, this.host.config.task.height, width, height);
      this.fitted = true;
    }
    this.viewChanged();
  }

  private viewChanged(): void {
    this.renderer.viewMoved();
    this.onView();
    this.updateStatus();
  }

  // ---- the status line ------------------------------------------------------------------------

  updateStatus(): void {
    const { view, doc, t } = this.host;
    this.status.setZoom(`${Math.round(view.scale * 100)}%${view.rotation ? ` · ${view.rotation}°` : ""}`);
    // Proposals waiting for a decision are not the annotation's shapes: they are counted apart.
    const { shapes, proposals } = doc.counts();
    const count = t("status.shapes", { count: shapes });
    this.status.setCount(proposals ? `${count} · ${t("status.proposals", { count: proposals })}` : count);
  }

  /** The image pixel under the pointer, or nothing when it is outside the image. */
  showPosition(p: Point | null): void {
    const { width, height } = this.host.config.task;
    if (!p || p[0] < 0 || p[1] < 0 || p[0] > width || p[1] > height) this.status.setPosition("");
    else this.status.setPosition(`${Math.floor(p[0])}, ${Math.floor(p[1])}`);
  }

  // ---- the image ------------------------------------------------------------------------------

  loadImage(): void {
    const handed = this.images?.take(this.host.config.task.id);
    if (handed) {
      void handed.then((bitmap) => (bitmap ? this.showImage(bitmap) : this.downloadImage()));
      return;
    }
    this.downloadImage();
  }

  private downloadImage(): void {
    if (this.closed) return;
    const image = new Image();
    image.decoding = "async";
    const done = () => this.showImage(image);
    image.addEventListener("error", () => {
      if (this.closed) return;
      this.loading.textContent = this.host.t("image.error");
      this.loading.classList.add("is-error");
    });
    image.addEventListener("load", () => {
      // decode() makes the first frame cheap: the pixels are ready before they are drawn.
      if (typeof image.decode === "function") image.decode().then(done, done);
      else done();
    });
    if (this.host.config.task.imageUrl) image.src = this.host.config.task.imageUrl;
    else image.dispatchEvent(new Event("error"));
  }

  private showImage(image: Picture): void {
    if (this.closed) {
      if (typeof ImageBitmap !== "undefined" && image instanceof ImageBitmap) image.close();
      return;
    }
    this.loading.remove();
    const task = this.host.config.task;
    if (!(task.width > 0 && task.height > 0)) {
      // The server did not know the size yet: the image itself tells it.
      task.width = image.width;
      task.height = image.height;
      this.fit();
    }
    this.renderer.setImage(image);
    this.imageShown();
  }
}
