/**
 * Review issues on screen: numbered pins over the image (a layer of small buttons that follows
 * the view), and the sidebar section listing them, where the reviewer writes a new one and the
 * annotator resolves each. Resolved issues stay, dimmed. Clicking a pin or a row brings its
 * place into view.
 */
import type { IssueBoard } from "../issues";
import type { IssueJSON } from "../types";
import { h, icon, setHidden } from "./dom";
import type { Host } from "./host";
import { ICONS } from "./icons";

export interface IssueActions {
  /** Bring issue `id` into view (and select its shape). */
  focus(id: number): void;
  /** Send the placed issue with this comment. */
  send(message: string): void;
  cancel(): void;
  settle(id: number, resolved: boolean): void;
}

/** The pins: one button per issue, kept at its image point as the view moves. */
export class IssuePins {
  readonly element = h("div", { class: "dl-pins" });

  constructor(
    private readonly host: Host,
    private readonly board: IssueBoard,
    private readonly actions: IssueActions,
  ) {}

  /** Rebuild the pins (issues changed) and place them. */
  update(): void {
    const { t } = this.host;
    const pins: HTMLElement[] = this.board.issues.map((issue, index) => {
      const pin = h("button", {
        type: "button",
        class: `dl-pin${issue.resolved ? " is-resolved" : ""}`,
        "data-id": issue.id,
        title: issue.message,
        "aria-label": t("issues.pin", { number: index + 1 }),
        text: String(index + 1),
      });
      pin.addEventListener("click", () => this.actions.focus(issue.id));
      return pin;
    });
    const draft = this.board.draft;
    if (draft) {
      const pin = h("span", { class: "dl-pin is-draft", text: "+", "data-x": draft.point[0], "data-y": draft.point[1] });
      pins.push(pin);
    }
    this.element.replaceChildren(...pins);
    this.place();
  }

  /** Move the pins to where their points are now on screen. */
  place(): void {
    for (const pin of Array.from(this.element.children) as HTMLElement[]) {
      const issue = this.board.get(Number(pin.dataset.id));
      const point = issue ? issue.point : ([Number(pin.dataset.x), Number(pin.dataset.y)] as const);
      const [x, y] = this.host.view.toScreen([point[0], point[1]]);
      pin.style.left = `${Math.round(x)}px`;
      pin.style.top = `${Math.round(y)}px`;
    }
  }
}

/** The sidebar section: the issues, and the form for the one being placed. */
export class IssuePanel {
  readonly element: HTMLElement;
  readonly text: HTMLTextAreaElement;
  private readonly list = h("ol", { class: "dl-issues", role: "list" });
  private readonly form: HTMLElement;
  private readonly count = h("span", { class: "dl-count dl-count-issues" });

  constructor(
    private readonly host: Host,
    private readonly board: IssueBoard,
    private readonly actions: IssueActions,
  ) {
    const { t, config } = host;
    this.text = h("textarea", { class: "dl-issue-text", rows: 2, placeholder: t("issues.placeholder"), "aria-label": t("issues.comment") });
    const add = h("button", { type: "button", class: "dl-btn dl-btn-primary dl-issue-add", text: t("issues.add") });
    const cancel = h("button", { type: "button", class: "dl-btn dl-issue-cancel", text: t("issues.cancel") });
    add.addEventListener("click", () => actions.send(this.text.value));
    cancel.addEventListener("click", () => actions.cancel());
    this.text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        actions.send(this.text.value);
      } else if (event.key === "Escape") {
        event.preventDefault();
        actions.cancel();
      }
      event.stopPropagation();
    });
    this.form = h("div", { class: "dl-issue-form", hidden: true }, this.text, h("div", { class: "dl-row-buttons" }, add, cancel));
    const hint = config.mode === "review" ? h("p", { class: "dl-hint", text: t("issues.hint") }) : null;
    const title = h("h2", { text: t("issues.title") }, " ", this.count);
    this.element = h("section", { class: "dl-section dl-issues-section" }, title, this.list, this.form, hint);
    this.update();
  }

  update(): void {
    const { t } = this.host;
    const issues = this.board.issues;
    const open = this.board.openCount;
    this.count.textContent = issues.length ? t("issues.open", { count: open }) : "";
    // The annotator sees the section only when the task has issues.
    setHidden(this.element, this.host.config.mode !== "review" && issues.length === 0);
    this.list.replaceChildren(...issues.map((issue, index) => this.row(issue, index + 1)));
    const drafting = this.board.draft !== null;
    if (this.form.hidden === drafting) {
      setHidden(this.form, !drafting);
      if (drafting) this.text.focus({ preventScroll: true });
      else this.text.value = "";
    }
  }

  private row(issue: IssueJSON, number: number): HTMLElement {
    const { t } = this.host;
    const settle = h(
      "button",
      { type: "button", class: "dl-btn dl-btn-small dl-issue-settle" },
      icon(issue.resolved ? ICONS.undo : ICONS.check),
      issue.resolved ? t("issues.reopen") : t("issues.resolve"),
    );
    settle.addEventListener("click", (event) => {
      event.stopPropagation();
      this.actions.settle(issue.id, !issue.resolved);
    });
    const row = h(
      "li",
      { class: `dl-issue${issue.resolved ? " is-resolved" : ""}`, "data-id": issue.id },
      h("span", { class: "dl-issue-number", text: String(number) }),
      h("span", { class: "dl-issue-message", text: issue.message }),
      h("span", { class: "dl-issue-state", text: issue.resolved ? t("issues.resolved") : "" }),
      settle,
    );
    row.addEventListener("click", () => this.actions.focus(issue.id));
    return row;
  }
}
