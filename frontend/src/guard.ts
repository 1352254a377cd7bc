/**
 * Leaving a task with unsaved changes asks first. Skip (and any other way of moving on inside the
 * page) asks with a small in-page dialog; closing the tab, reloading or following a link asks
 * with the browser's own prompt (beforeunload). Saved or submitted work never asks, and once the
 * person said "leave" the page does not ask again on the way out.
 */
import type { AnnotationDocument } from "./model/document";

export class LeaveGuard {
  private letGo = false;
  private asking = false;

  constructor(
    private readonly doc: Pick<AnnotationDocument, "dirty">,
    /** Ask the person whether to leave anyway: true to leave, false to stay. */
    private readonly ask: () => Promise<boolean>,
  ) {}

  /** The question is on screen (the canvas' shortcuts wait meanwhile). */
  get open(): boolean {
    return this.asking;
  }

  /** May the person leave this task now? Asks only when something is unsaved. */
  async mayLeave(): Promise<boolean> {
    if (this.letGo || !this.doc.dirty) return true;
    if (this.asking) return false;
    this.asking = true;
    try {
      this.letGo = await this.ask();
    } finally {
      this.asking = false;
    }
    return this.letGo;
  }

  /** Moving on failed and the person is still on this task: ask again next time. */
  stay(): void {
    this.letGo = false;
  }

  /** window's beforeunload: the browser asks when something is unsaved. */
  beforeUnload(event: BeforeUnloadEvent): void {
    if (this.letGo || !this.doc.dirty) return;
    event.preventDefault();
    event.returnValue = ""; // older browsers ask only when returnValue is set
  }
}

export interface ConfirmText {
  message: string;
  confirm: string;
  cancel: string;
}

/** A small modal question inside `root`: resolves true for `confirm`, false for Cancel or Escape. */
export function confirmDialog(root: HTMLElement, text: ConfirmText): Promise<boolean> {
  return new Promise((resolve) => {
    const doc = root.ownerDocument;
    const make = (tag: string, className: string, content: string) => {
      const el = doc.createElement(tag);
      el.className = className;
      el.textContent = content;
      return el;
    };
    const message = make("p", "dl-confirm-text", text.message);
    message.id = "dl-confirm-text";
    const cancel = make("button", "dl-btn dl-confirm-cancel", text.cancel) as HTMLButtonElement;
    const ok = make("button", "dl-btn dl-btn-danger dl-confirm-ok", text.confirm) as HTMLButtonElement;
    cancel.type = ok.type = "button";
    const buttons = make("div", "dl-row-buttons dl-confirm-buttons", "");
    buttons.append(cancel, ok);
    const dialog = make("div", "dl-confirm-dialog", "");
    dialog.setAttribute("role", "alertdialog");
    dialog.setAttribute("aria-modal", "true");
    dialog.setAttribute("aria-describedby", message.id);
    dialog.append(message, buttons);
    const backdrop = make("div", "dl-confirm", "");
    backdrop.append(dialog);
    const previous = doc.activeElement as HTMLElement | null;
    const close = (answer: boolean) => {
      backdrop.remove();
      previous?.focus?.({ preventScroll: true });
      resolve(answer);
    };
    cancel.addEventListener("click", () => close(false));
    ok.addEventListener("click", () => close(true));
    backdrop.addEventListener("keydown", (event) => {
      // The canvas' shortcuts must not act behind the question.
      event.stopPropagation();
      if (event.key === "Escape") {
        event.preventDefault();
        close(false);
      } else if (event.key === "Tab") {
        event.preventDefault();
        (doc.activeElement === cancel ? ok : cancel).focus();
      }
    });
    root.append(backdrop);
    cancel.focus();
  });
}
