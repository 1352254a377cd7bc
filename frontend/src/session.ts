/**
 * A labeling session: one task after another in the same page. Opening the next task fetches its
 * configuration as JSON and swaps the workspace in place (the URL follows with history.pushState),
 * and the next task's image is downloaded and decoded while the person is still looking at this
 * one, so it is on screen as soon as the swap happens. Anything unexpected falls back to a plain
 * page load, which always works.
 */
import type { FetchLike } from "./api";
import type { WorkspaceConfig } from "./types";

/** Decoded images ahead of time, by task id. Holds only the most recent one (a 5 MP image is 20 MB). */
export class ImageHandoff {
  private held: { taskId: number; image: Promise<ImageBitmap | null> } | null = null;

  constructor(private readonly fetchImpl: FetchLike) {}

  /** Start downloading and decoding `url` for task `taskId`, replacing whatever was held. */
  prefetch(taskId: number, url: string): void {
    if (this.held?.taskId === taskId) return;
    this.drop();
    if (typeof createImageBitmap !== "function") return;
    const image = this.fetchImpl(url, { credentials: "same-origin" })
      .then((response) => (response.ok ? response.blob() : null))
      .then((blob) => (blob ? createImageBitmap(blob) : null))
      .catch(() => null);
    this.held = { taskId, image };
  }

  /** The decoded image for `taskId` if one was prefetched (it is handed over, not kept). */
  take(taskId: number): Promise<ImageBitmap | null> | null {
    if (this.held?.taskId !== taskId) return null;
    const { image } = this.held;
    this.held = null;
    return image;
  }

  drop(): void {
    if (!this.held) return;
    void this.held.image.then((bitmap) => bitmap?.close());
    this.held = null;
  }
}

export interface SessionHooks {
  /** Build the workspace for `config` in the session's root (the previous one is already gone). */
  mount(config: WorkspaceConfig): void;
  /** Tear the current workspace down (drafts are flushed by it). */
  unmount(): void;
  /** The plain page load used when switching in place is not possible. */
  navigate(url: string): void;
}

export class Session {
  readonly images: ImageHandoff;
  private switching = false;

  constructor(
    private readonly fetchImpl: FetchLike,
    readonly hooks: SessionHooks,
    private readonly history: Pick<History, "pushState"> | null = typeof window !== "undefined" ? window.history : null,
  ) {
    this.images = new ImageHandoff(fetchImpl);
  }

  /** Open task `id` of the same kind (annotate / review) as `current`. */
  async open(current: WorkspaceConfig, id: number): Promise<void> {
    const pageUrl = current.workspaceUrl.replace("{id}", String(id));
    if (this.switching || !current.configUrl || !this.history) {
      this.hooks.navigate(pageUrl);
      return;
    }
    this.switching = true;
    try {
      const config = await this.fetchConfig(current.configUrl.replace("{id}", String(id)));
      if (!config || config.task.id !== id) {
        this.hooks.navigate(pageUrl);
        return;
      }
      this.hooks.unmount();
      this.history.pushState({ taskId: id }, "", pageUrl);
      if (typeof document !== "undefined") document.title = retitle(document.title, config.task.fileName);
      this.hooks.mount(config);
    } finally {
      this.switching = false;
    }
  }

  private async fetchConfig(url: string): Promise<WorkspaceConfig | null> {
    try {
      const response = await this.fetchImpl(url, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      const type = response.headers.get("Content-Type") ?? "";
      if (!response.ok || !type.includes("application/json")) return null;
      return (await response.json()) as WorkspaceConfig;
    } catch {
      return null;
    }
  }
}

/** "old.jpg · DefectLab" becomes "new.jpg · DefectLab": the page's own suffix stays. */
export function retitle(title: string, fileName: string): string {
  const cut = title.lastIndexOf(" · ");
  return cut < 0 ? fileName : fileName + title.slice(cut);
}
