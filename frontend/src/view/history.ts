/**
 * Review's account of the work: who submitted the task, the time they spent on it, and the
 * version history (newest first, fetched when first opened). Picking two versions shows what
 * changed between them on the canvas (view/difflayer) until "Back to the annotation" or Escape;
 * the annotation being reviewed is never touched by it.
 */
import type { AnnotationVersionJSON, ApiClient } from "../api";
import { countDiff, diffVersions, type DiffKind } from "../model/versiondiff";
import { DiffLayer, DIFF_COLORS } from "./difflayer";
import { h, setHidden, setText } from "./dom";
import type { Host } from "./host";

/** "45 s", "3 min 20 s", "1 h 5 min": working time as a person says it. */
export function duration(seconds: number, t: Host["t"]): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return t("duration.seconds", { s });
  if (s < 3600) return t("duration.minutes", { m: Math.floor(s / 60), s: s % 60 });
  return t("duration.hours", { h: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) });
}

const KINDS: DiffKind[] = ["removed", "added", "changed", "unchanged"];

export class ReviewHistory {
  readonly element: HTMLElement;
  private readonly list = h("ol", { class: "dl-history-list" });
  private readonly compare: HTMLButtonElement;
  private readonly diffPanel = h("div", { class: "dl-diff-panel", hidden: true, role: "status" });
  private readonly picked: number[] = [];
  private versions: AnnotationVersionJSON[] | null = null;
  private readonly onKey = (event: KeyboardEvent) => {
    if (event.key === "Escape" && this.layer.active) this.back();
  };

  constructor(
    private readonly host: Host,
    private readonly api: ApiClient,
    private readonly layer: DiffLayer,
  ) {
    const { t, config } = host;
    const annotator = config.annotator;
    this.compare = h("button", { type: "button", class: "dl-btn dl-btn-small dl-history-compare", disabled: true, text: t("history.compare") });
    this.compare.addEventListener("click", () => this.showDiff());
    const details = h("details", { class: "dl-history" }, h("summary", { text: t("history.title") }));
    details.append(h("p", { class: "dl-hint", text: t("history.hint") }), this.list, this.compare);
    details.addEventListener("toggle", () => {
      if (details.open && this.versions === null) void this.load();
    });
    this.element = h(
      "section",
      { class: "dl-section dl-work-section" },
      h("h2", { text: t("work.title") }),
      // Nobody submitted it (yet): no name and no time to show, only the history.
      annotator ? h("p", { class: "dl-work-annotator", text: t("work.annotator", { name: annotator.name }) }) : null,
      annotator ? h("p", { class: "dl-work-time", text: t("work.time", { time: duration(annotator.seconds, t) }) }) : null,
      details,
      this.diffPanel,
    );
    window.addEventListener("keydown", this.onKey);
  }

  /** The diff is on screen: the canvas is read-only meanwhile. */
  get diffing(): boolean {
    return this.layer.active;
  }

  destroy(): void {
    window.removeEventListener("keydown", this.onKey);
    this.layer.hide();
  }

  private async load(): Promise<void> {
    const { t } = this.host;
    this.versions = [];
    this.list.replaceChildren(h("li", { class: "dl-muted", text: t("history.loading") }));
    const result = await this.api.versions();
    if (!result.ok) {
      this.versions = null; // opening it again tries again
      this.list.replaceChildren(h("li", { class: "dl-muted", text: t("history.error") }));
      return;
    }
    this.versions = [...result.data].sort((a, b) => b.version - a.version);
    this.list.replaceChildren(...this.versions.map((version) => this.row(version)));
    if (this.versions.length === 0) this.list.append(h("li", { class: "dl-muted", text: t("history.none") }));
  }

  private row(version: AnnotationVersionJSON): HTMLElement {
    const { t } = this.host;
    const lang = document.documentElement.lang || undefined;
    const when = new Date(version.created_at).toLocaleString(lang, { dateStyle: "short", timeStyle: "short" });
    const box = h("input", { type: "checkbox", class: "dl-history-pick", "data-version": version.version });
    box.addEventListener("change", () => this.pick(version.version, box.checked));
    return h(
      "li",
      { class: "dl-history-row", "data-version": version.version },
      h(
        "label",
        {},
        box,
        h("strong", { text: t("history.version", { n: version.version }) }),
        " ",
        h("span", { class: "dl-history-author", text: version.author_name || t("work.nobody") }),
        h("span", { class: "dl-muted dl-history-meta", text: `${when} · ${t("status.shapes", { count: version.shapes.length })}` }),
      ),
    );
  }

  /** Two versions at most are picked: a third replaces the one picked first. */
  private pick(version: number, on: boolean): void {
    const at = this.picked.indexOf(version);
    if (at >= 0) this.picked.splice(at, 1);
    if (on) this.picked.push(version);
    while (this.picked.length > 2) {
      const dropped = this.picked.shift();
      const box = this.list.querySelector<HTMLInputElement>(`input[data-version="${dropped}"]`);
      if (box) box.checked = false;
    }
    this.compare.disabled = this.picked.length !== 2;
  }

  private showDiff(): void {
    const { t } = this.host;
    const chosen = (this.versions ?? []).filter((v) => this.picked.includes(v.version));
    if (chosen.length !== 2) return;
    const [newer, older] = chosen; // newest first
    const entries = diffVersions(older.shapes, newer.shapes);
    const counts = countDiff(entries);
    this.host.doc.select(null);
    this.layer.show(entries);
    const legend = h("ul", { class: "dl-diff-legend" });
    for (const kind of KINDS) {
      const swatch = h("span", { class: `dl-diff-swatch dl-diff-${kind}`, "aria-hidden": "true" });
      swatch.style.borderColor = DIFF_COLORS[kind];
      legend.append(h("li", { "data-kind": kind }, swatch, t(`diff.${kind}`, { count: counts[kind] })));
    }
    const back = h("button", { type: "button", class: "dl-btn dl-btn-primary dl-diff-back", text: t("diff.back") }, h("kbd", { text: "Esc" }));
    back.addEventListener("click", () => this.back());
    this.diffPanel.replaceChildren(
      h("p", { class: "dl-diff-title", text: t("diff.title", { older: older.version, newer: newer.version }) }),
      legend,
      h("p", { class: "dl-hint", text: t("diff.hint") }),
      back,
    );
    setHidden(this.diffPanel, false);
    // Into view within the sidebar only (scrollIntoView would move the page too).
    const sidebar = this.element.closest<HTMLElement>(".dl-sidebar");
    const below = sidebar ? this.diffPanel.getBoundingClientRect().bottom - sidebar.getBoundingClientRect().bottom : 0;
    if (sidebar && below > 0) sidebar.scrollTop += below + 8;
  }

  private back(): void {
    this.layer.hide();
    setHidden(this.diffPanel, true);
    setText(this.diffPanel, "");
    this.host.viewMoved();
  }
}
