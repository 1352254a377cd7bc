/** The JSON the page hands to the canvas and the shapes the server stores (see geometry.py). */

export type Point = [number, number];
export type ShapeType = "box" | "polygon" | "points";
export type Rotation = 0 | 90 | 180 | 270;

export interface ShapeJSON {
  type: ShapeType;
  points: Point[];
  label: number;
  attributes?: Record<string, string>;
  score?: number;
  id?: string;
}

export interface AttributeDef {
  name: string;
  options: string[];
  default: string;
}

export interface LabelDef {
  id: number;
  name: string;
  color: string;
  hotkey: string;
  attributes: AttributeDef[];
}

export interface TagDef {
  name: string;
  color: string;
}

/** What became of a model proposal: accepted as is, accepted and then changed, or dropped. */
export type ProposalFate = "accepted" | "changed" | "dropped";

/** A proposal's fate as the server stores it: the prediction, the shape's index in it, the fate. */
export interface ProposalDecision {
  prediction: number;
  index: number;
  fate: ProposalFate;
}

export interface PredictionJSON {
  id: number;
  modelName: string;
  modelVersion: string;
  shapes: ShapeJSON[];
  /** Per shape, its fate once someone decided it (not offered again); null or absent: undecided. */
  fates?: (ProposalFate | null)[];
}

/** A reviewer's remark pinned on the image (see docs/api.md, "Review issues"). */
export interface IssueJSON {
  id: number;
  /** Where the pin is, in image pixels. */
  point: Point;
  /** The id of the shape it is about, when it is about one. */
  shape: string | null;
  /** That shape's box [x1, y1, x2, y2] when the issue was opened. */
  box: [number, number, number, number] | null;
  message: string;
  resolved: boolean;
}

/** What the canvas sends to pin an issue. */
export interface NewIssue {
  message: string;
  point: Point;
  shape?: string;
  box?: [number, number, number, number];
}

export interface WorkspaceConfig {
  task: { id: number; width: number; height: number; imageUrl: string; fileName: string; status: string };
  project: {
    id: number;
    name: string;
    labels: LabelDef[];
    tags: TagDef[];
    shapeTypes: ShapeType[];
    instructions: string;
  };
  annotation: { version: number | null; shapes: ShapeJSON[]; tags: string[] };
  predictions: PredictionJSON[];
  /** The latest rejection comment, shown to the annotator. */
  reviewComment: string | null;
  /** The review issues pinned on the task, oldest first (numbered from 1 in that order). */
  issues?: IssueJSON[];
  /** Label-error highlights to outline (highlights.ts reads them; anything it cannot draw is left out). */
  highlights?: unknown;
  mode: "annotate" | "review";
  /** reserve: where to ask for a task to work on now (next-task, or next-review in review mode). */
  /** issues: this task's issues; issue: one issue's URL with "{id}" where its id goes. */
  api: {
    annotation: string;
    reserve: string;
    release: string;
    review: string;
    issues?: string;
    issue?: string;
    versions?: string;
    /** Any task's annotation, "{id}" replaced (copying shapes from the previous image). */
    annotationOf?: string;
  };
  /** Review: who submitted the task and the working time they spent on it (seconds). */
  annotator?: { name: string; seconds: number } | null;
  /** URL of this page for another task: "{id}" is replaced. */
  workspaceUrl: string;
  /** URL of this workspace's configuration (JSON) for another task: "{id}" is replaced. */
  configUrl?: string;
  /**
   * A guess at the task the server will reserve next (the first new one after this), only so that
   * its image can be fetched ahead. The server decides what comes next, and may hand out another.
   */
  likelyNext: { id: number; imageUrl: string | null } | null;
  /**
   * The tasks before and after this one in the project's task list (id order), for the previous
   * / next image keys and for copying the previous image's shapes; null at either end.
   */
  neighbours?: { previous: number | null; next: number | null };
  csrfToken: string;
  /** Every user-visible text, translated by the server (keys in web/canvas_strings.py). */
  strings: Record<string, string>;
}

/** scale: screen px per image px; x, y: where image (0, 0) lands on screen; rotation: clockwise degrees. */
export interface ViewState {
  scale: number;
  x: number;
  y: number;
  rotation: Rotation;
}

export interface FrameStats {
  /** Frames rendered since the last reset. */
  frames: number;
  /** The longest single render, in milliseconds (performance.now() around each render). */
  maxMs: number;
  /** All render time added up, in milliseconds. */
  totalMs: number;
}
