/**
 * DefectLab's annotation canvas. The page embeds the config as JSON in
 * <script type="application/json" id="workspace-config"> next to <div id="workspace">, and loads
 * this module; it mounts itself. mountWorkspace() is there for pages that want to do it by hand.
 */
import "./styles.css";
import { Workspace, type WorkspaceOptions } from "./workspace";
import type { WorkspaceConfig } from "./types";

export type { FrameStats, LabelDef, Point, ShapeJSON, ViewState, WorkspaceConfig } from "./types";
export type { WorkspaceOptions } from "./workspace";
export { EVENTS, Workspace } from "./workspace";

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

/** Mount on #workspace with the config from #workspace-config, if the page has both. */
export function autoMount(doc: Document = document): Workspace | null {
  const root = doc.getElementById("workspace");
  const source = doc.getElementById("workspace-config");
  if (!root || !source?.textContent) return null;
  return mountWorkspace(root, JSON.parse(source.textContent) as WorkspaceConfig);
}

if (typeof document !== "undefined") {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => autoMount(), { once: true });
  else autoMount();
}
