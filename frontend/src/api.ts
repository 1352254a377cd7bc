/** The server calls the canvas makes. Writes carry the CSRF token; cookies are same-origin. */
import type { IssueJSON, NewIssue, ProposalDecision, ShapeJSON, WorkspaceConfig } from "./types";

export interface ApiError {
  status: number;
  code: string;
  message: string;
  details?: Record<string, unknown>;
}

export type ApiResult<T> = { ok: true; status: number; data: T } | { ok: false; error: ApiError };

export interface SaveBody {
  version: number | null;
  shapes: ShapeJSON[];
  tags: string[];
  lead_time: number;
  submit: boolean;
  /** What became of the proposals decided on (see docs/api.md); earlier fates are kept. */
  proposals?: ProposalDecision[];
}

export interface SavedAnnotation {
  version: number;
  shapes: ShapeJSON[];
  tags: string[];
}

export interface AnnotationVersionJSON {
  version: number;
  shapes: ShapeJSON[];
  author: number | null;
  author_name: string;
  /** Seconds of work that went into this version. */
  lead_time: number;
  created_at: string;
}

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export class ApiClient {
  constructor(
    private readonly urls: WorkspaceConfig["api"],
    private readonly csrfToken: string,
    private readonly fetchImpl: FetchLike,
  ) {}

  saveAnnotation(body: SaveBody): Promise<ApiResult<SavedAnnotation>> {
    return this.call<SavedAnnotation>("PUT", this.urls.annotation, body);
  }

  /** Another task's current annotation (read only); null when it has none (204). */
  annotationOf(url: string): Promise<ApiResult<SavedAnnotation | null>> {
    return this.call<SavedAnnotation | null>("GET", url);
  }

  /**
   * Ask the server to reserve a task for this person (to label, or to review in review mode) and
   * say which: the one they already hold, else the first in their line. null when none is left (204).
   */
  async reserveTask(): Promise<ApiResult<{ id: number } | null>> {
    return this.call<{ id: number } | null>("POST", this.urls.reserve);
  }

  release(): Promise<ApiResult<null>> {
    return this.call<null>("POST", this.urls.release);
  }

  review(verdict: "approve" | "reject", comment: string): Promise<ApiResult<unknown>> {
    return this.call("POST", this.urls.review, { verdict, comment });
  }

  /** Pin a review issue on the task (reviewers). */
  openIssue(issue: NewIssue): Promise<ApiResult<IssueJSON>> {
    return this.call<IssueJSON>("POST", this.urls.issues ?? "", issue);
  }

  /** Resolve an issue, or open it again. */
  settleIssue(id: number, resolved: boolean): Promise<ApiResult<IssueJSON>> {
    const url = `${(this.urls.issue ?? "").replace("{id}", String(id))}${resolved ? "resolve" : "reopen"}/`;
    return this.call<IssueJSON>("POST", url);
  }

  /** Every saved version of the annotation, newest first. */
  versions(): Promise<ApiResult<AnnotationVersionJSON[]>> {
    return this.call<AnnotationVersionJSON[]>("GET", this.urls.versions ?? "");
  }

  private async call<T>(method: string, url: string, body?: unknown): Promise<ApiResult<T>> {
    let response: Response;
    try {
      response = await this.fetchImpl(url, {
        method,
        credentials: "same-origin",
        headers:
          method === "GET"
            ? { Accept: "application/json" }
            : { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": this.csrfToken },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      return { ok: false, error: { status: 0, code: "network", message: "" } };
    }
    if (response.status === 204) return { ok: true, status: 204, data: null as T };
    let data: unknown = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (response.ok) return { ok: true, status: response.status, data: data as T };
    const error = (data as { error?: Partial<ApiError> } | null)?.error ?? {};
    return {
      ok: false,
      error: {
        status: response.status,
        code: typeof error.code === "string" ? error.code : `http_${response.status}`,
        message: typeof error.message === "string" ? error.message : "",
        details: error.details,
      },
    };
  }
}
