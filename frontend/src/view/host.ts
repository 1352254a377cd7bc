/** What the views and the controller need from the workspace that owns them. */
import type { Translate } from "../i18n";
import type { AnnotationDocument, Shape } from "../model/document";
import type { ModeMachine, Tool } from "../model/modes";
import type { ViewTransform } from "../model/transform";
import type { Point, WorkspaceConfig } from "../types";

export type Tone = "info" | "success" | "warning" | "error";

export interface NoticeAction {
  label: string;
  run: () => void;
}

export interface Host {
  readonly t: Translate;
  readonly config: WorkspaceConfig;
  readonly doc: AnnotationDocument;
  readonly modes: ModeMachine;
  readonly view: ViewTransform;
  readonly tools: Tool[];
  readonly activeLabel: number | null;
  readonly busy: boolean;
  setActiveLabel(id: number): void;
  setTool(tool: Tool): void;
  /** Select a shape and bring it into view if it is off screen. */
  reveal(uid: number): void;
  notify(text: string, tone?: Tone, options?: { sticky?: boolean; actions?: NoticeAction[]; id?: string }): void;
  zoomBy(factor: number): void;
  /** The view was panned or zoomed directly (wheel, drag): redraw, and stop auto-fitting. */
  viewMoved(): void;
  fit(): void;
  /** Zoom to the selected shape; false when none is selected. */
  zoomToSelection(): boolean;
  /** Save if needed, then open the task before (-1) or after (+1) this one in the list. */
  openNeighbour(step: -1 | 1): void;
  /** Add the previous image's shapes to this one, clipped to it (one undo step). */
  copyPrevious(): void;
  rotate(quarterTurns: number): void;
  undo(): void;
  redo(): void;
  save(): void;
  submit(): void;
  skip(): void;
  review(verdict: "approve" | "reject"): void;
  toggleHelp(open?: boolean): void;
  focusSearch(): void;
  setImageFilter(brightness: number, contrast: number): void;
  /** Review: pin an issue on the selected shape, or on the next click on the image. */
  startIssue?(): void;
  /** The click that places an issue (`shape`: the shape under it); false when none is being placed. */
  placeIssueAt?(point: Point, shape: Shape | null): boolean;
  /** Stop placing an issue. */
  cancelIssue?(): void;
  /** Show or hide the label-error highlights; false when the task has none. */
  toggleHighlights?(): boolean;
}
