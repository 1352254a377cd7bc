/** The parts around the canvas: the tool column, the top bar, notices, the status line and the "?" overlay. */
import { SHORTCUTS } from "../controller/keymap";
import type { Tool } from "../model/modes";
import { h, icon, setText } from "./dom";
import type { Host, NoticeAction, Tone } from "./host";
import { ICONS } from "./icons";

const TOOL_KEYS: Record<Tool, string> = { select: "V", box: "B", polygon: "P", points: "K" };

function toolButton(iconMarkup: string, caption: string, key: string | null, title: string): HTMLButtonElement {
  return h(
    "button",
    { type: "button", class: "dl-tool", title: key ? `${title} (${key})` : title, "aria-label": title },
    icon(iconMarkup),
    h("span", { class: "dl-tool-caption", text: caption }),
    key ? h("kbd", { text: key }) : null,
  );
}

export class Toolbar {
  readonly element: HTMLElement;
  private readonly toolButtons = new Map<Tool, HTMLButtonElement>();
  private readonly undoButton: HTMLButtonElement;
  private readonly redoButton: HTMLButtonElement;

  constructor(private readonly host: Host) {
    const { t } = host;
    this.element = h("nav", { class: "dl-toolbar", "aria-label": t("toolbar.title") });
    const tools = h("div", { class: "dl-tool-group", role: "group", "aria-label": t("toolbar.tools") });
    for (const tool of host.tools) {
      const button = toolButton(ICONS[tool], t(`tool.${tool}`), TOOL_KEYS[tool], t(`tool.${tool}`));
      button.setAttribute("aria-pressed", "false");
      button.addEventListener("click", () => host.setTool(tool));
      this.toolButtons.set(tool, button);
      tools.append(button);
    }
    const zoomIn = toolButton(ICONS.zoomIn, t("view.zoomIn"), "+", t("view.zoomIn"));
    const zoomOut = toolButton(ICONS.zoomOut, t("view.zoomOut"), "−", t("view.zoomOut"));
    const fit = toolButton(ICONS.fit, t("view.fit"), "F", t("view.fit"));
    const rotate = toolButton(ICONS.rotate, t("view.rotate"), "R", t("view.rotate"));
    zoomIn.addEventListener("click", () => host.zoomBy(1.25));
    zoomOut.addEventListener("click", () => host.zoomBy(0.8));
    fit.addEventListener("click", () => host.fit());
    rotate.addEventListener("click", () => host.rotate(1));
    this.undoButton = toolButton(ICONS.undo, t("edit.undo"), null, `${t("edit.undo")} (Ctrl+Z)`);
    this.redoButton = toolButton(ICONS.redo, t("edit.redo"), null, `${t("edit.redo")} (Ctrl+Shift+Z)`);
    this.undoButton.addEventListener("click", () => host.undo());
    this.redoButton.addEventListener("click", () => host.redo());
    const help = toolButton(ICONS.help, t("help.button"), "?", t("help.title"));
    help.addEventListener("click", () => host.toggleHelp());
    this.element.append(
      tools,
      h("div", { class: "dl-tool-group", role: "group", "aria-label": t("toolbar.view") }, zoomIn, zoomOut, fit, rotate),
      h("div", { class: "dl-tool-group", role: "group", "aria-label": t("toolbar.edit") }, this.undoButton, this.redoButton),
      h("div", { class: "dl-tool-group dl-tool-group-end" }, help),
    );
    this.update();
  }

  update(): void {
    for (const [tool, button] of this.toolButtons) {
      const on = tool === this.host.modes.tool;
      button.classList.toggle("is-active", on);
      button.setAttribute("aria-pressed", String(on));
    }
    this.undoButton.disabled = !this.host.doc.canUndo;
    this.redoButton.disabled = !this.host.doc.canRedo;
  }
}

export class TopBar {
  readonly element: HTMLElement;
  private readonly state: HTMLElement;
  private readonly actionButtons: HTMLButtonElement[] = [];

  constructor(private readonly host: Host) {
    const { t, config } = host;
    const brightness = slider(t("image.brightness"), ICONS.sun);
    const contrast = slider(t("image.contrast"), ICONS.contrast);
    const apply = () => host.setImageFilter(Number(brightness.input.value), Number(contrast.input.value));
    brightness.input.addEventListener("input", apply);
    contrast.input.addEventListener("input", apply);
    const reset = h("button", { type: "button", class: "dl-btn dl-btn-small", text: t("image.reset") });
    reset.addEventListener("click", () => {
      brightness.input.value = "100";
      contrast.input.value = "100";
      apply();
    });

    this.state = h("span", { class: "dl-save-state", role: "status" });
    const save = h("button", { type: "button", class: "dl-btn", title: `${t("action.save")} (Ctrl+S)`, text: t("action.save") });
    const skip = h("button", { type: "button", class: "dl-btn", title: t("action.skipHint"), text: t("action.skip") });
    save.addEventListener("click", () => host.save());
    skip.addEventListener("click", () => host.skip());
    this.actionButtons.push(save, skip);
    const actions = h("div", { class: "dl-actions" }, this.state, save, skip);
    if (config.mode === "annotate") {
      const submit = h("button", { type: "button", class: "dl-btn dl-btn-primary dl-btn-submit", title: `${t("action.submit")} (Ctrl+Enter)` }, icon(ICONS.check), t("action.submit"));
      submit.addEventListener("click", () => host.submit());
      this.actionButtons.push(submit);
      actions.append(submit);
    } else {
      const reject = h("button", { type: "button", class: "dl-btn dl-btn-reject" }, icon(ICONS.close), t("review.reject"));
      const approve = h("button", { type: "button", class: "dl-btn dl-btn-approve dl-btn-submit", title: `${t("review.approve")} (Ctrl+Enter)` }, icon(ICONS.check), t("review.approve"));
      reject.addEventListener("click", () => host.review("reject"));
      approve.addEventListener("click", () => host.review("approve"));
      this.actionButtons.push(reject, approve);
      actions.append(reject, approve);
    }

    this.element = h(
      "header",
      { class: "dl-topbar" },
      h(
        "div",
        { class: "dl-task" },
        h("span", { class: "dl-file", text: config.task.fileName, title: config.task.fileName }),
        h("span", { class: `dl-status dl-status-${config.task.status}`, text: t(`status.${config.task.status}`) }),
        config.mode === "review" ? h("span", { class: "dl-mode-badge", text: t("mode.review") }) : null,
      ),
      h("div", { class: "dl-adjust", role: "group", "aria-label": t("image.adjust") }, brightness.element, contrast.element, reset),
      actions,
    );
    this.update();
  }

  update(): void {
    const { doc, t, busy } = this.host;
    setText(this.state, busy ? t("state.saving") : doc.dirty ? t("state.unsaved") : t("state.saved"));
    this.state.classList.toggle("is-dirty", doc.dirty && !busy);
    for (const button of this.actionButtons) button.disabled = busy;
  }
}

function slider(caption: string, iconMarkup: string): { element: HTMLElement; input: HTMLInputElement } {
  const input = h("input", { type: "range", min: 20, max: 300, step: 5, value: 100, "aria-label": caption });
  const element = h("label", { class: "dl-slider", title: caption }, icon(iconMarkup), h("span", { class: "dl-slider-caption", text: caption }), input);
  return { element, input };
}

interface NoticeOptions {
  sticky?: boolean;
  actions?: NoticeAction[];
  id?: string;
}

export class Notices {
  readonly element = h("div", { class: "dl-notices", "aria-live": "polite" });
  private readonly byId = new Map<string, HTMLElement>();

  constructor(private readonly closeLabel: string) {}

  show(text: string, tone: Tone = "info", options: NoticeOptions = {}): HTMLElement {
    if (options.id) this.dismiss(options.id);
    const close = h("button", { type: "button", class: "dl-icon-btn", "aria-label": this.closeLabel, title: this.closeLabel }, icon(ICONS.close));
    const notice = h("div", { class: `dl-notice dl-notice-${tone}`, role: tone === "error" ? "alert" : "status" }, h("span", { class: "dl-notice-text", text }));
    for (const action of options.actions ?? []) {
      const button = h("button", { type: "button", class: "dl-btn dl-btn-small", text: action.label });
      button.addEventListener("click", () => {
        notice.remove();
        action.run();
      });
      notice.append(button);
    }
    notice.append(close);
    close.addEventListener("click", () => notice.remove());
    if (options.id) {
      notice.dataset.id = options.id;
      this.byId.set(options.id, notice);
    }
    this.element.append(notice);
    while (this.element.children.length > 4) this.element.firstElementChild?.remove();
    const sticky = options.sticky ?? (tone === "error" || tone === "warning" || (options.actions?.length ?? 0) > 0);
    if (!sticky) setTimeout(() => notice.remove(), 4000);
    return notice;
  }

  dismiss(id: string): void {
    this.byId.get(id)?.remove();
    this.byId.delete(id);
  }
}

export class HelpOverlay {
  readonly element: HTMLElement;

  constructor(host: Host) {
    const { t, config } = host;
    const close = h("button", { type: "button", class: "dl-icon-btn dl-help-close", "aria-label": t("help.close"), title: t("help.close") }, icon(ICONS.close));
    close.addEventListener("click", () => host.toggleHelp(false));
    const columns = h("div", { class: "dl-help-columns" });
    for (const group of SHORTCUTS) {
      const rows = group.items
        .filter((item) => !item.only || item.only === config.mode)
        .map((item) =>
          h(
            "tr",
            {},
            h("td", { class: "dl-help-keys" }, ...keysFor(item.keys, t)),
            h("td", { text: t(item.action) }),
          ),
        );
      if (rows.length === 0) continue;
      columns.append(h("section", {}, h("h3", { text: t(group.title) }), h("table", {}, h("tbody", {}, ...rows))));
    }
    const dialog = h(
      "div",
      { class: "dl-help-dialog", role: "dialog", "aria-modal": "true", "aria-label": t("help.title") },
      h("div", { class: "dl-help-head" }, h("h2", { text: t("help.title") }), close),
      columns,
    );
    this.element = h("div", { class: "dl-help", hidden: true }, dialog);
    this.element.addEventListener("click", (event) => {
      if (event.target === this.element) host.toggleHelp(false);
    });
  }

  get open(): boolean {
    return !this.element.hidden;
  }

  set open(value: boolean) {
    this.element.hidden = !value;
  }
}

function keysFor(alternatives: string[][], t: Host["t"]): Node[] {
  const nodes: Node[] = [];
  alternatives.forEach((caps, i) => {
    if (i > 0) nodes.push(document.createTextNode(" / "));
    caps.forEach((cap, j) => {
      if (j > 0) nodes.push(document.createTextNode("+"));
      nodes.push(h("kbd", { text: cap.startsWith("@") ? t(cap.slice(1)) : cap }));
    });
  });
  return nodes;
}

export class StatusLine {
  readonly element = h("div", { class: "dl-statusline", "aria-hidden": "true" });
  private readonly position = h("span");
  private readonly zoom = h("span");
  private readonly count = h("span");

  constructor() {
    this.element.append(this.position, this.zoom, this.count);
  }

  setPosition(text: string): void {
    setText(this.position, text);
  }

  setZoom(text: string): void {
    setText(this.zoom, text);
  }

  setCount(text: string): void {
    setText(this.count, text);
  }
}
