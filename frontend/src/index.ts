/**
 * DefectLab's annotation canvas. The page embeds the config as JSON in
 * <script type="application/json" id="workspace-config"> next to <div id="workspace">, and loads
 * this module; it mounts itself. mountWorkspace() is there for pages that want to do it by hand.
 */
import "./styles.css";
import { Session } from "./session";
import { Workspace, type WorkspaceOptions } from "./workspace";
import type { WorkspaceConfig } from "./types";

export type { FrameStats, LabelDef, Point, ShapeJSON, ViewState, WorkspaceConfig } from "./types";
export type { WorkspaceOptions } from "./workspace";
export { EVENTS, Workspace } from "./workspace";
export { ImageHandoff, Session } from "./session";

declare global {
  interface Window {
    __defectlabWorkspace?: Workspace;
  }
}

const mounted = new WeakMap<HTMLElement, Workspace>();

/** Mount the workspace in `root`; mounting the same element again returns the same workspace. */
export function mountWorkspace(root: HTMLElement, config: WorkspaceConfig, options?: WorkspaceOptions): Workspace {
  const existing = mounted.get(root);
  if (existing && !existing.destroyed) return existing;
  const workspace = new Workspace(root, config, options);
  mounted.set(root, workspace);
  window.__defectlabWorkspace = workspace;
  return workspace;
}

/**
 * Mount on #workspace with the config from #workspace-config, if the page has both. Submitting
 * or skipping then moves to the next task in place (a Session), with its image decoded ahead.
 */
export function autoMount(doc: Document = document): Workspace | null {
  const root = doc.getElementById("workspace");
  const source = doc.getElementById("workspace-config");
  if (!root || !source?.textContent) return null;
  const fetchImpl = (input: string, init?: RequestInit) => fetch(input, init);
  let current: Workspace | null = null;
  const session: Session = new Session(fetchImpl, {
    mount: (config) => {
      const workspace = mountWorkspace(root, config, {
        fetch: fetchImpl,
        images: session.images,
        openTask: (id) => session.open(workspace.config, id),
      });
      current = workspace;
    },
    unmount: () => current?.destroy(),
    navigate: (url) => window.location.assign(url),
  });
  session.hooks.mount(JSON.parse(source.textContent) as WorkspaceConfig);
  // Back and forward between tasks opened in place: load the page the address bar now shows.
  window.addEventListener("popstate", () => window.location.reload());
  return current;
}

if (typeof document !== "undefined") {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => autoMount(), { once: true });
  else autoMount();
}
