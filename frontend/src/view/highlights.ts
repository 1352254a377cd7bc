/**
 * Label-error highlights on screen: a layer of thick dashed outlines over the image, one colour
 * per kind with a small numbered tag, above the shapes and below the pins, that follows the view
 * and never takes the pointer (nothing in it can be selected, moved or saved); and the sidebar's
 * "label errors" section listing them with their explanations, with a button (and Shift+E) to
 * hide and show the layer. Clicking a row brings its place into view.
 */
import { HIGHLIGHT_COLORS, highlightFocus, screenRect, type Highlight } from "../highlights";
import { h, setHidden } from "./dom";
import type { Host } from "./host";

/** How far outside its box (screen pixels) an outline is drawn: its border's width. */
const OUTSIDE = 3;

export interface HighlightActions {
  /** Bring highlight `index` into view (and select the shape it names). */
  focus(index: number): void;
  toggle(): void;
}

/** The outlines: one box per highlight, kept on its image box as the view moves. */
export class HighlightLayer {
  readonly element = h("div", { class: "dl-highlights", "aria-hidden": "true" });
  private focused = -1;

  constructor(
    private readonly host: Host,
    private readonly highlights: readonly Highlight[],
  ) {
    const { t } = host;
    this.element.replaceChildren(
      ...highlights.map((highlight, index) => {
        const color = HIGHLIGHT_COLORS[highlight.kind];
        const tag = h("span", { class: "dl-highlight-tag", text: `${index + 1} ${t(`highlights.kind.${highlight.kind}`)}` });
        tag.style.background = color;
        const outline = h("div", { class: `dl-highlight is-${highlight.kind}`, "data-index": index, title: highlight.text }, tag);
        outline.style.borderColor = color;
        return outline;
      }),
    );
    setHidden(this.element, highlights.length === 0);
  }

  get shown(): boolean {
    return !this.element.classList.contains("is-off");
  }

  set shown(value: boolean) {
    this.element.classList.toggle("is-off", !value);
  }

  focus(index: number): void {
    this.focused = index;
    for (const outline of Array.from(this.element.children) as HTMLElement[]) {
      outline.classList.toggle("is-focused", outline.dataset.index === String(index));
    }
  }

  get focusedIndex(): number {
    return this.focused;
  }

  /** Move the outlines to where their boxes are now on screen. */
  place(): void {
    const toScreen = (p: [number, number]) => this.host.view.toScreen(p) as [number, number];
    for (const outline of Array.from(this.element.children) as HTMLElement[]) {
      const highlight = this.highlights[Number(outline.dataset.index)];
      if (!highlight) continue;
      const r = screenRect(highlight.box, toScreen);
      // Drawn just outside the box, so the outline never hides the edge it is about.
      outline.style.left = `${Math.round(r.left) - OUTSIDE}px`;
      outline.style.top = `${Math.round(r.top) - OUTSIDE}px`;
      outline.style.width = `${Math.round(r.width) + 2 * OUTSIDE}px`;
      outline.style.height = `${Math.round(r.height) + 2 * OUTSIDE}px`;
    }
  }
}

/** The sidebar section: the highlights with their explanations, and the show / hide button. */
export class HighlightPanel {
  readonly element: HTMLElement;
  readonly toggleButton: HTMLButtonElement;
  private readonly list = h("ol", { class: "dl-highlight-list", role: "list" });

  constructor(host: Host, highlights: readonly Highlight[], actions: HighlightActions) {
    const { t } = host;
    // One fixed label; whether the highlights are shown is the button's pressed state alone.
    this.toggleButton = h("button", {
      type: "button",
      class: "dl-btn dl-btn-small dl-highlight-toggle",
      "aria-pressed": "true",
      title: t("highlights.toggleKey"),
      text: t("highlights.show"),
    });
    this.toggleButton.addEventListener("click", () => actions.toggle());
    const count = h("span", { class: "dl-count", text: String(highlights.length) });
    const title = h("h2", { text: t("highlights.title") }, " ", count);
    this.list.replaceChildren(
      ...highlights.map((highlight, index) => {
        const mark = h("span", { class: "dl-highlight-mark", text: String(index + 1) });
        mark.style.background = HIGHLIGHT_COLORS[highlight.kind];
        // A real button in each list item: the list stays a list of items for a screen reader,
        // and Enter and Space press it (the canvas's keys leave a focused button alone).
        const row = h(
          "button",
          { type: "button", class: `dl-highlight-row is-${highlight.kind}`, "data-index": index },
          mark,
          h("span", { class: "dl-highlight-kind", text: t(`highlights.kind.${highlight.kind}`) }),
          h("span", { class: "dl-highlight-text", text: highlight.text }),
        );
        row.addEventListener("click", () => actions.focus(index));
        return h("li", { class: "dl-highlight-item" }, row);
      }),
    );
    const head = h("div", { class: "dl-highlight-head" }, title, this.toggleButton);
    const hint = h("p", { class: "dl-hint", text: t("highlights.hint") });
    this.element = h("section", { class: "dl-section dl-highlights-section" }, head, hint, this.list);
    setHidden(this.element, highlights.length === 0);
    this.update(true, -1);
  }

  update(shown: boolean, focused: number): void {
    this.toggleButton.setAttribute("aria-pressed", shown ? "true" : "false");
    for (const row of Array.from(this.list.querySelectorAll<HTMLElement>(".dl-highlight-row"))) {
      row.classList.toggle("is-focused", row.dataset.index === String(focused));
      row.setAttribute("aria-current", row.dataset.index === String(focused) ? "true" : "false");
    }
  }
}

/** Where the highlights live in the page, and what they need of the stage. */
export interface HighlightMount {
  stage: HTMLElement;
  sidebar: HTMLElement;
  /** The drawing area's size in screen pixels. */
  size(): { width: number; height: number };
  /** The view was moved here: redraw, and stop fitting the image. */
  viewMoved(): void;
}

/** The layer and the panel together: focusing a highlight, showing and hiding them. */
export class HighlightView {
  readonly layer: HighlightLayer;
  readonly panel: HighlightPanel;
  private centred = false;

  constructor(
    private readonly host: Host,
    readonly highlights: readonly Highlight[],
    private readonly mount: HighlightMount,
  ) {
    const actions = { focus: (index: number) => this.focus(index), toggle: () => void this.toggle() };
    this.layer = new HighlightLayer(host, highlights);
    this.panel = new HighlightPanel(host, highlights, actions);
    // Over the shapes, under the issue pins and the notices.
    const pins = mount.stage.querySelector(".dl-pins");
    if (pins) pins.before(this.layer.element);
    else mount.stage.append(this.layer.element);
    mount.sidebar.insertBefore(this.panel.element, mount.sidebar.firstChild);
  }

  get shown(): boolean {
    return this.layer.shown;
  }

  place(): void {
    if (this.highlights.length) this.layer.place();
  }

  /** Once, when the image is on screen: centre and zoom on the first highlight. */
  centreFirst(): void {
    if (this.centred || !this.highlights.length) return;
    this.centred = true;
    this.focus(0);
  }

  /** Show them if hidden, hide them if shown; false when there are none. */
  toggle(show = !this.layer.shown): boolean {
    if (!this.highlights.length) return false;
    this.layer.shown = show;
    this.panel.update(show, this.layer.focusedIndex);
    return true;
  }

  /** Bring highlight `index` into view, zoomed to it, and select the shape it names. */
  focus(index: number): void {
    const highlight = this.highlights[index];
    if (!highlight) return;
    const { host } = this;
    const shape = highlight.shape ? host.doc.shapes.find((s) => s.id === highlight.shape) : undefined;
    // With the shape it names, both in view: a loose box is judged against the box drawn.
    const [x1, y1, x2, y2] = highlight.box;
    const b = shape?.bbox;
    const around = b ? { ...highlight, box: [Math.min(x1, b.minX), Math.min(y1, b.minY), Math.max(x2, b.maxX), Math.max(y2, b.maxY)] as Highlight["box"] } : highlight;
    const r = highlightFocus(around);
    const { width, height } = this.mount.size();
    if (width > 0 && height > 0) {
      const scale = Math.min(width / (r.maxX - r.minX), height / (r.maxY - r.minY), 8);
      host.view.set({ scale });
      host.view.pin([(r.minX + r.maxX) / 2, (r.minY + r.maxY) / 2], [width / 2, height / 2]);
    }
    this.layer.shown = true;
    this.layer.focus(index);
    this.panel.update(true, index);
    if (shape) host.doc.select(shape.uid);
    this.mount.viewMoved();
    this.layer.place();
  }
}
