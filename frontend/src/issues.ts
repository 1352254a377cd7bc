/**
 * Review issues on the canvas: the reviewer's remarks pinned to a point or a shape of the image
 * (CVAT calls them issues). The board holds the task's issues in their order (the pins' numbers),
 * the one being written (placed, not yet sent), and talks to the server to pin, resolve and
 * reopen them. Approval with an open issue is refused by the server; the board only shows.
 */
import type { ApiClient, ApiError } from "./api";
import type { Shape } from "./model/document";
import type { BBox } from "./model/geometry";
import type { IssueJSON, NewIssue, Point } from "./types";

/** An issue placed on the image whose comment is still being written. */
export interface IssueDraft {
  point: Point;
  shape?: string;
  box?: [number, number, number, number];
}

/** Where a new issue goes: on `shape` (its box's top-left corner), else at `point`. */
export function draftAt(point: Point, shape: Shape | null | undefined): IssueDraft {
  if (!shape) return { point: [Math.round(point[0]), Math.round(point[1])] };
  const b = shape.bbox;
  const draft: IssueDraft = { point: [b.minX, b.minY], box: [b.minX, b.minY, b.maxX, b.maxY] };
  if (shape.id) draft.shape = shape.id;
  return draft;
}

/**
 * The part of the image to bring into view for an issue: its shape's box with a margin around
 * it, or a square around a bare point (`size` image pixels across).
 */
export function focusRect(issue: IssueJSON, size = 120): BBox {
  if (issue.box) {
    const [x1, y1, x2, y2] = issue.box;
    const mx = Math.max((x2 - x1) * 0.5, size / 4);
    const my = Math.max((y2 - y1) * 0.5, size / 4);
    return { minX: x1 - mx, minY: y1 - my, maxX: x2 + mx, maxY: y2 + my };
  }
  const [x, y] = issue.point;
  return { minX: x - size / 2, minY: y - size / 2, maxX: x + size / 2, maxY: y + size / 2 };
}

export class IssueBoard {
  private list: IssueJSON[];
  /** The issue placed and being written, or null. */
  draft: IssueDraft | null = null;
  private readonly listeners = new Set<() => void>();

  constructor(
    issues: IssueJSON[],
    private readonly api: ApiClient,
  ) {
    this.list = issues.map((issue) => ({ ...issue }));
  }

  get issues(): readonly IssueJSON[] {
    return this.list;
  }

  get openCount(): number {
    return this.list.filter((issue) => !issue.resolved).length;
  }

  /** The pin's number: the issue's place (from 1) among the task's issues. */
  number(id: number): number {
    return this.list.findIndex((issue) => issue.id === id) + 1;
  }

  get(id: number): IssueJSON | undefined {
    return this.list.find((issue) => issue.id === id);
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  place(draft: IssueDraft | null): void {
    this.draft = draft;
    this.changed();
  }

  /** Send the draft with its comment; the error (nothing pinned) when the server refused. */
  async send(message: string): Promise<ApiError | null> {
    const draft = this.draft;
    const text = message.trim();
    if (!draft || !text) return null;
    const body: NewIssue = { message: text, point: draft.point };
    if (draft.shape) body.shape = draft.shape;
    else if (draft.box) body.box = draft.box;
    const result = await this.api.openIssue(body);
    if (!result.ok) return result.error;
    this.list.push(result.data);
    this.draft = null;
    this.changed();
    return null;
  }

  /** Resolve issue `id` (or reopen it); the error when the server refused. */
  async settle(id: number, resolved: boolean): Promise<ApiError | null> {
    const result = await this.api.settleIssue(id, resolved);
    if (!result.ok) return result.error;
    this.list = this.list.map((issue) => (issue.id === id ? { ...issue, resolved: result.data.resolved } : issue));
    this.changed();
    return null;
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}
