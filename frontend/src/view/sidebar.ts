/**
 * The right sidebar. Each section redraws only when its own part of the model changed, and the
 * shape list is virtualised: only the rows in view exist, so 2,000 shapes cost a dozen rows.
 */
import type { ChangeKind, Shape } from "../model/document";
import { h, icon, setHidden, setText } from "./dom";
import type { Host } from "./host";
import { ICONS } from "./icons";
import { contrastText, safeColor } from "./draw";

export type SidebarChange = ChangeKind | "label" | "busy";

const ROW_HEIGHT = 32;
const OVERSCAN = 4;
/** How long the selected shape's panel stays highlighted after its class changed. */
const FLASH_MS = 900;

function swatch(color: string): HTMLElement {
  const el = h("span", { class: "dl-swatch", "aria-hidden": "true" });
  el.style.background = safeColor(color);
  return el;
}

export class Sidebar {
  readonly element: HTMLElement;
  readonly search: HTMLInputElement;
  readonly comment: HTMLTextAreaElement | null = null;
  private readonly labelButtons = new Map<number, HTMLButtonElement>();
  private readonly tagButtons = new Map<string, HTMLButtonElement>();
  private readonly selection: HTMLElement;
  private readonly shapeList: ShapeList;
  private readonly shapeCount: HTMLElement;
  private readonly proposalCount: HTMLElement;
  private flashTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly predictions: HTMLElement | null = null;
  private readonly reviewButtons: HTMLButtonElement[] = [];

  constructor(private readonly host: Host) {
    const { t, config } = host;
    this.element = h("aside", { class: "dl-sidebar", "aria-label": t("sidebar.title") });
    if (config.mode === "annotate" && config.reviewComment) this.element.append(this.rejectionNote(config.reviewComment));
    if (config.mode === "review") {
      this.comment = h("textarea", {
        class: "dl-comment",
        rows: 3,
        placeholder: t("review.commentPlaceholder"),
        "aria-label": t("review.comment"),
      });
      this.element.append(this.reviewSection(this.comment));
    }
    if (config.project.instructions.trim()) this.element.append(this.instructions(config.project.instructions));

    this.search = h("input", {
      type: "search",
      class: "dl-search",
      placeholder: t("labels.search"),
      "aria-label": t("labels.search"),
      autocomplete: "off",
    });
    this.element.append(this.classesSection(this.search));
    if (config.project.tags.length) this.element.append(this.tagsSection());

    this.selection = h("div", { class: "dl-selection" });
    this.element.append(section(t("selection.title"), "dl-selection-section", [this.selection]));

    if (host.doc.predictions.length) {
      this.predictions = h("div", { class: "dl-predictions" });
      this.element.append(section(t("predictions.title"), "dl-predictions-section", [this.predictions]));
    }

    // The annotation's shapes and the proposals waiting for a decision are counted apart.
    this.shapeCount = h("span", { class: "dl-count dl-count-shapes" });
    this.proposalCount = h("span", { class: "dl-count dl-count-proposals", hidden: true });
    this.shapeList = new ShapeList(host);
    const shapes = section(t("shapes.title"), "dl-shapes-section", [this.shapeList.element]);
    shapes.querySelector("h2")!.append(" ", this.shapeCount, " ", this.proposalCount);
    this.element.append(shapes);

    this.update(new Set<SidebarChange>(["shapes", "tags", "selection", "label", "busy"]));
  }

  /** The reviewer's reason for sending the task back, shown to the annotator. */
  private rejectionNote(comment: string): HTMLElement {
    const { t } = this.host;
    return h("section", { class: "dl-callout", role: "note" }, h("strong", { text: t("review.rejectedTitle") }), h("p", { text: comment }));
  }

  /** Review mode: the comment and the approve / reject buttons. */
  private reviewSection(comment: HTMLTextAreaElement): HTMLElement {
    const host = this.host;
    const { t } = host;
    const approve = h("button", { type: "button", class: "dl-btn dl-btn-approve" }, icon(ICONS.check), t("review.approve"));
    const reject = h("button", { type: "button", class: "dl-btn dl-btn-reject" }, icon(ICONS.close), t("review.reject"));
    approve.addEventListener("click", () => host.review("approve"));
    reject.addEventListener("click", () => host.review("reject"));
    this.reviewButtons.push(approve, reject);
    return section(t("review.title"), "dl-review", [comment, h("div", { class: "dl-row-buttons" }, approve, reject)]);
  }

  private instructions(text: string): HTMLElement {
    const details = h("details", { class: "dl-section dl-instructions" }, h("summary", { text: this.host.t("instructions.title") }));
    details.append(h("p", { text }));
    return details;
  }

  /** Classes: the search box, then one button per class with its hotkey. */
  private classesSection(search: HTMLInputElement): HTMLElement {
    const host = this.host;
    const labelList = h("ul", { class: "dl-labels", role: "list" });
    for (const label of host.doc.labels) {
      const button = h(
        "button",
        { type: "button", class: "dl-label", "data-id": label.id, title: label.name },
        swatch(label.color),
        h("span", { class: "dl-label-name", text: label.name }),
        label.hotkey ? h("kbd", { text: label.hotkey.toUpperCase() }) : null,
      );
      button.addEventListener("click", () => host.setActiveLabel(label.id));
      this.labelButtons.set(label.id, button);
      labelList.append(h("li", {}, button));
    }
    const empty = h("p", { class: "dl-muted", text: host.t("labels.noMatch"), hidden: true });
    search.addEventListener("input", () => this.filterClasses(empty));
    search.addEventListener("keydown", (event) => this.searchKey(event));
    return section(host.t("labels.title"), "dl-classes", [search, labelList, empty]);
  }

  /** Show the classes whose name contains the search text, or whose hotkey it is. */
  private filterClasses(empty: HTMLElement): void {
    const query = this.search.value.trim().toLowerCase();
    let shown = 0;
    for (const label of this.host.doc.labels) {
      const match = !query || label.name.toLowerCase().includes(query) || label.hotkey.toLowerCase() === query;
      setHidden(this.labelButtons.get(label.id)!.parentElement as HTMLElement, !match);
      if (match) shown++;
    }
    setHidden(empty, shown > 0);
  }

  /** In the search box, Enter chooses the first class shown and Escape clears; no key reaches the canvas. */
  private searchKey(event: KeyboardEvent): void {
    const host = this.host;
    if (event.key === "Enter") {
      const first = host.doc.labels.find((l) => !(this.labelButtons.get(l.id)!.parentElement as HTMLElement).hidden);
      if (first) host.setActiveLabel(first.id);
      this.search.blur();
      event.preventDefault();
    } else if (event.key === "Escape") {
      this.search.value = "";
      this.search.dispatchEvent(new Event("input"));
      this.search.blur();
      event.preventDefault();
    }
    event.stopPropagation();
  }

  /** Image tags, toggled by Shift+1..9. */
  private tagsSection(): HTMLElement {
    const host = this.host;
    const tags = h("div", { class: "dl-tags" });
    host.config.project.tags.forEach((tag, i) => {
      const button = h(
        "button",
        { type: "button", class: "dl-tag", "aria-pressed": "false", title: tag.name },
        h("span", { class: "dl-tag-name", text: tag.name }),
        i < 9 ? h("kbd", { text: `⇧${i + 1}` }) : null,
      );
      button.style.setProperty("--dl-tag-color", safeColor(tag.color));
      button.style.setProperty("--dl-tag-text", contrastText(tag.color));
      button.addEventListener("click", () => host.doc.toggleTag(tag.name));
      this.tagButtons.set(tag.name, button);
      tags.append(button);
    });
    return section(host.t("tags.title"), "dl-tags-section", [tags]);
  }

  update(changes: Set<SidebarChange>): void {
    if (changes.has("label")) this.updateLabels();
    if (changes.has("tags")) this.updateTags();
    if (changes.has("shapes") || changes.has("selection") || changes.has("visibility")) this.updateSelection();
    if (changes.has("shapes") || changes.has("visibility")) this.updatePredictions();
    if (changes.has("shapes")) {
      const { shapes, proposals } = this.host.doc.counts();
      setText(this.shapeCount, String(shapes));
      setText(this.proposalCount, this.host.t("status.proposals", { count: proposals }));
      setHidden(this.proposalCount, proposals === 0);
    }
    if (changes.has("shapes") || changes.has("selection") || changes.has("visibility")) {
      this.shapeList.refresh(changes.has("selection"));
    }
    if (changes.has("busy")) for (const b of this.reviewButtons) b.disabled = this.host.busy;
  }

  /** Highlight the selected shape's panel for a moment: its class was just changed. */
  flashSelection(): void {
    if (this.flashTimer) clearTimeout(this.flashTimer);
    this.selection.classList.add("is-relabelled");
    this.flashTimer = setTimeout(() => {
      this.flashTimer = null;
      this.selection.classList.remove("is-relabelled");
    }, FLASH_MS);
  }

  /** Rows currently in the DOM (for tests: the list must stay small). */
  get renderedRows(): number {
    return this.shapeList.renderedRows;
  }

  private updateLabels(): void {
    for (const [id, button] of this.labelButtons) {
      const active = id === this.host.activeLabel;
      button.classList.toggle("is-active", active);
      button.setAttribute("aria-pressed", String(active));
    }
  }

  private updateTags(): void {
    for (const [name, button] of this.tagButtons) {
      const on = this.host.doc.tags.has(name);
      button.classList.toggle("is-on", on);
      button.setAttribute("aria-pressed", String(on));
    }
  }

  private updateSelection(): void {
    const { doc, t } = this.host;
    const shape = doc.selected;
    this.selection.replaceChildren();
    if (!shape) {
      this.selection.append(h("p", { class: "dl-muted", text: t("selection.none") }));
      return;
    }
    const label = doc.label(shape.label);
    const head = h(
      "div",
      { class: "dl-selection-head" },
      swatch(label?.color ?? ""),
      h("strong", { text: label?.name ?? `#${shape.label}` }),
      h("span", { class: "dl-muted", text: `#${doc.ordinal(shape.uid)} · ${t(`shape.${shape.type}`)}` }),
    );
    this.selection.append(head);

    if (shape.proposal) {
      const accept = h("button", { type: "button", class: "dl-btn dl-btn-primary" }, icon(ICONS.check), t("predictions.accept"), h("kbd", { text: "Enter" }));
      const drop = h("button", { type: "button", class: "dl-btn" }, icon(ICONS.close), t("predictions.drop"), h("kbd", { text: "Del" }));
      accept.addEventListener("click", () => doc.acceptProposals([shape.uid]));
      drop.addEventListener("click", () => doc.removeShapes([shape.uid]));
      const score = shape.score !== undefined ? t("predictions.score", { score: shape.score.toFixed(2) }) : "";
      this.selection.append(
        h("p", { class: "dl-proposal-note", text: [t("predictions.proposal"), score].filter(Boolean).join(" · ") }),
        h("div", { class: "dl-row-buttons" }, accept, drop),
      );
    }

    const defs = doc.attributeDefs(shape);
    if (defs.length) {
      const list = h("div", { class: "dl-attributes" });
      defs.forEach((def, index) => {
        const current = shape.attributes[def.name] ?? def.default;
        const options = h("div", { class: "dl-options", role: "radiogroup", "aria-label": def.name });
        for (const option of def.options) {
          const button = h("button", {
            type: "button",
            class: "dl-option",
            role: "radio",
            "aria-checked": String(option === current),
            text: option,
            disabled: shape.locked,
          });
          button.addEventListener("click", () => doc.setAttribute(shape.uid, def.name, option));
          options.append(button);
        }
        const row = h("div", { class: "dl-attribute" }, h("span", { class: "dl-attribute-name", text: def.name }), options);
        row.classList.toggle("is-focused", index === doc.attributeFocus);
        list.append(row);
      });
      list.append(h("p", { class: "dl-hint", text: t("attributes.hint") }));
      this.selection.append(list);
    }

    const hide = h("button", { type: "button", class: "dl-btn", "aria-pressed": String(shape.hidden) }, icon(shape.hidden ? ICONS.eyeOff : ICONS.eye), shape.hidden ? t("shape.show") : t("shape.hide"), h("kbd", { text: "H" }));
    const lock = h("button", { type: "button", class: "dl-btn", "aria-pressed": String(shape.locked) }, icon(shape.locked ? ICONS.lock : ICONS.unlock), shape.locked ? t("shape.unlock") : t("shape.lock"), h("kbd", { text: "L" }));
    const remove = h("button", { type: "button", class: "dl-btn dl-btn-danger", disabled: shape.locked }, icon(ICONS.trash), t("shape.delete"), h("kbd", { text: "Del" }));
    hide.addEventListener("click", () => doc.setHidden([shape.uid], !shape.hidden));
    lock.addEventListener("click", () => doc.setLocked([shape.uid], !shape.locked));
    remove.addEventListener("click", () => doc.removeShapes([shape.uid]));
    this.selection.append(h("div", { class: "dl-row-buttons dl-shape-actions" }, hide, lock, remove));
  }

  private updatePredictions(): void {
    if (!this.predictions) return;
    const { doc, t } = this.host;
    if (doc.reviewing) {
      this.referenceToggle(this.predictions);
      return;
    }
    const left = new Map<number, number>();
    for (const shape of doc.shapes) {
      if (shape.proposal) left.set(shape.proposal.predictionId, (left.get(shape.proposal.predictionId) ?? 0) + 1);
    }
    this.predictions.replaceChildren();
    let total = 0;
    for (const prediction of doc.predictions) {
      const count = left.get(prediction.id) ?? 0;
      total += count;
      const accept = h("button", { type: "button", class: "dl-btn dl-btn-primary", disabled: count === 0 }, icon(ICONS.check), t("predictions.acceptAll"));
      const drop = h("button", { type: "button", class: "dl-btn", disabled: count === 0 }, icon(ICONS.close), t("predictions.dropAll"));
      accept.addEventListener("click", () => doc.acceptAllProposals(prediction.id));
      drop.addEventListener("click", () => doc.dropAllProposals(prediction.id));
      this.predictions.append(
        h(
          "div",
          { class: "dl-prediction" },
          h("div", { class: "dl-prediction-name" }, h("strong", { text: prediction.modelName }), " ", h("span", { class: "dl-muted", text: prediction.modelVersion })),
          h("p", { class: "dl-muted", text: t("predictions.left", { count }) }),
          h("div", { class: "dl-row-buttons" }, accept, drop),
        ),
      );
    }
    if (total > 0) this.predictions.append(h("p", { class: "dl-hint", text: t("predictions.hint") }));
  }

  /** Review: nothing to accept; the proposals are a faded, read-only layer, off at first. */
  private referenceToggle(into: HTMLElement): void {
    const { doc, t } = this.host;
    const shown = doc.showReference;
    const toggle = h(
      "button",
      { type: "button", class: "dl-btn dl-reference-toggle", "aria-pressed": String(shown) },
      icon(shown ? ICONS.eye : ICONS.eyeOff),
      shown ? t("predictions.hideReference") : t("predictions.showReference"),
    );
    toggle.addEventListener("click", () => doc.setReferenceShown(!doc.showReference));
    into.replaceChildren(toggle, h("p", { class: "dl-hint", text: t("predictions.referenceHint") }));
  }
}

function section(title: string, className: string, children: Node[]): HTMLElement {
  return h("section", { class: `dl-section ${className}` }, h("h2", { text: title }), ...children);
}

/** The virtualised list of shapes: a fixed row height and only the visible rows in the DOM. */
class ShapeList {
  readonly element: HTMLElement;
  private readonly spacer: HTMLElement;
  private readonly rows: HTMLElement[] = [];
  private readonly signatures = new WeakMap<HTMLElement, string>();
  private scheduled = false;

  constructor(private readonly host: Host) {
    this.element = h("div", { class: "dl-shape-list", role: "listbox", "aria-label": host.t("shapes.title"), tabindex: "-1" });
    this.spacer = h("div", { class: "dl-shape-spacer" });
    this.element.append(this.spacer);
    this.element.addEventListener("scroll", () => this.schedule());
    this.element.addEventListener("click", (event) => {
      const target = event.target as HTMLElement;
      const row = target.closest<HTMLElement>(".dl-shape-row");
      if (!row) return;
      const uid = Number(row.dataset.uid);
      const shape = host.doc.get(uid);
      if (!shape) return;
      const action = target.closest<HTMLElement>("[data-action]")?.dataset.action;
      if (action === "hide") host.doc.setHidden([uid], !shape.hidden);
      else if (action === "lock") host.doc.setLocked([uid], !shape.locked);
      else host.reveal(uid);
    });
  }

  get renderedRows(): number {
    return this.rows.filter((r) => !r.hidden).length;
  }

  refresh(scrollToSelection: boolean): void {
    const doc = this.host.doc;
    this.spacer.style.height = `${doc.shapes.length * ROW_HEIGHT}px`;
    if (scrollToSelection && doc.selectedUid !== null) {
      const index = doc.indexOf(doc.selectedUid);
      const top = index * ROW_HEIGHT;
      const view = this.element.clientHeight;
      if (view > 0 && (top < this.element.scrollTop || top + ROW_HEIGHT > this.element.scrollTop + view)) {
        this.element.scrollTop = Math.max(0, top - view / 2);
      }
    }
    this.render();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.render();
    });
  }

  private render(): void {
    const { doc, t } = this.host;
    const view = this.element.clientHeight || ROW_HEIGHT * 8;
    const first = Math.max(0, Math.floor(this.element.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(doc.shapes.length, Math.ceil((this.element.scrollTop + view) / ROW_HEIGHT) + OVERSCAN);
    const needed = Math.max(0, last - first);
    // Shapes and proposals are numbered apart, as they are counted apart.
    const numbers: number[] = [];
    let accepted = 0;
    let proposed = 0;
    for (let i = 0; i < last; i++) {
      const n = doc.shapes[i].proposal ? ++proposed : ++accepted;
      if (i >= first) numbers.push(n);
    }
    while (this.rows.length < needed) {
      const row = h("div", { class: "dl-shape-row", role: "option" });
      this.rows.push(row);
      this.element.append(row);
    }
    this.rows.forEach((row, k) => {
      const index = first + k;
      const shape = doc.shapes[index];
      if (k >= needed || !shape) {
        setHidden(row, true);
        return;
      }
      setHidden(row, false);
      const selected = shape.uid === doc.selectedUid;
      const signature = [index, numbers[k], shape.uid, shape.label, shape.hidden, shape.locked, selected, shape.proposal !== null, shape.score, shape.type].join("|");
      if (this.signatures.get(row) === signature) return;
      this.signatures.set(row, signature);
      this.fill(row, shape, index, numbers[k], selected, t);
    });
  }

  private fill(row: HTMLElement, shape: Shape, index: number, number: number, selected: boolean, t: Host["t"]): void {
    const label = this.host.doc.label(shape.label);
    row.dataset.uid = String(shape.uid);
    row.style.transform = `translateY(${index * ROW_HEIGHT}px)`;
    row.setAttribute("aria-selected", String(selected));
    row.classList.toggle("is-selected", selected);
    row.classList.toggle("is-hidden", shape.hidden);
    row.classList.toggle("is-proposal", shape.proposal !== null);
    const name = h("span", { class: "dl-shape-name", text: label?.name ?? `#${shape.label}` });
    const badge = shape.proposal
      ? h("span", { class: "dl-badge", text: shape.score !== undefined ? shape.score.toFixed(2) : t("predictions.proposalShort") })
      : null;
    const hide = h("button", { type: "button", class: "dl-icon-btn", "data-action": "hide", title: shape.hidden ? t("shape.show") : t("shape.hide"), "aria-pressed": String(shape.hidden) }, icon(shape.hidden ? ICONS.eyeOff : ICONS.eye));
    const lock = h("button", { type: "button", class: "dl-icon-btn", "data-action": "lock", title: shape.locked ? t("shape.unlock") : t("shape.lock"), "aria-pressed": String(shape.locked) }, icon(shape.locked ? ICONS.lock : ICONS.unlock));
    const sw = swatch(label?.color ?? "");
    sw.style.color = contrastText(label?.color ?? "");
    row.replaceChildren(
      h("span", { class: "dl-shape-index", text: String(number) }),
      sw,
      name,
      h("span", { class: "dl-shape-type", text: t(`shape.${shape.type}`) }),
      ...(badge ? [badge] : []),
      hide,
      lock,
    );
  }
}
