"""The client's resources: organizations, projects, labels, tasks, annotations, predictions,
reviews and tokens. Methods take ids or the records themselves and answer typed records."""

from __future__ import annotations

import builtins
import contextlib
import mimetypes
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from defectlab.client.errors import ApiError
from defectlab.client.progress import ProgressBar
from defectlab.client.transport import Transport, pages
from defectlab.client.types import (
    Annotation,
    Job,
    Label,
    Organization,
    Prediction,
    Project,
    Review,
    Task,
    TaskPage,
    Token,
    UploadResult,
    User,
    parse,
)

# What uploads take: the server's image types and zip archives of them.
UPLOAD_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".zip"})
BATCH_FILES = 50  # images per upload request: at most 100, so the answer lists every task
BATCH_BYTES = 64 * 1024 * 1024


class HasId(Protocol):
    @property
    def id(self) -> int: ...


Ref = int | HasId


def id_of(thing: Ref) -> int:
    """The id of a record, or the id itself."""
    return thing if isinstance(thing, int) else thing.id


class Resource:
    def __init__(self, transport: Transport) -> None:
        self._t = transport


class Tokens(Resource):
    """Your personal API tokens (``Authorization: Bearer dl_…``)."""

    def list(self) -> list[Token]:
        return [parse(Token, row) for row in self._t.call("GET", "/api/tokens/")]

    def create(self, name: str, *, expires_at: str | None = None) -> Token:
        """A new token; its ``key`` is in this answer only."""
        body: dict[str, Any] = {"name": name}
        if expires_at is not None:
            body["expires_at"] = expires_at
        return parse(Token, self._t.call("POST", "/api/tokens/", json=body))

    def delete(self, token: Ref) -> None:
        self._t.call("DELETE", f"/api/tokens/{id_of(token)}/")


class Organizations(Resource):
    def list(self) -> list[Organization]:
        return [parse(Organization, row) for row in self._t.call("GET", "/api/organizations/")]

    def get(self, organization: Ref) -> Organization:
        return parse(
            Organization, self._t.call("GET", f"/api/organizations/{id_of(organization)}/")
        )

    def create(self, name: str) -> Organization:
        """A new organization, with you as its owner."""
        return parse(Organization, self._t.call("POST", "/api/organizations/", json={"name": name}))

    def rename(self, organization: Ref, name: str) -> Organization:
        answer = self._t.call(
            "PATCH", f"/api/organizations/{id_of(organization)}/", json={"name": name}
        )
        return parse(Organization, answer)

    def members(self, organization: Ref) -> builtins.list[dict[str, Any]]:
        """``[{"id", "user": {"id", "email", "name"}, "role", "created_at"}]``."""
        answer = self._t.call("GET", f"/api/organizations/{id_of(organization)}/members/")
        return list(answer)


class Projects(Resource):
    def list(self, organization: Ref | None = None) -> list[Project]:
        params = {"organization": id_of(organization) if organization is not None else None}
        return [parse(Project, row) for row in self._t.call("GET", "/api/projects/", params=params)]

    def get(self, project: Ref) -> Project:
        return parse(Project, self._t.call("GET", f"/api/projects/{id_of(project)}/"))

    def create(
        self,
        organization: Ref,
        name: str,
        *,
        labels: Sequence[dict[str, Any] | str] = (),
        tags: Sequence[dict[str, Any] | str] = (),
        shape_types: Sequence[str] = ("box", "polygon"),
        instructions: str = "",
        description: str = "",
        allow_self_approval: bool = False,
    ) -> Project:
        """A new project. ``labels`` are names or ``{"name", "color"?, "hotkey"?,
        "attributes"?}``; ``tags`` image-level tags such as ``["OK", "NG"]``."""
        body = {
            "organization": id_of(organization),
            "name": name,
            "labels": [{"name": label} if isinstance(label, str) else label for label in labels],
            "tags": list(tags),
            "shape_types": list(shape_types),
            "instructions": instructions,
            "description": description,
            "allow_self_approval": allow_self_approval,
        }
        return parse(Project, self._t.call("POST", "/api/projects/", json=body))

    def update(self, project: Ref, **fields: Any) -> Project:
        """Change fields (``name``, ``instructions``, ``tags``, ``allow_self_approval`` …);
        labels change through ``client.labels``."""
        return parse(
            Project, self._t.call("PATCH", f"/api/projects/{id_of(project)}/", json=fields)
        )

    def delete(self, project: Ref) -> Job:
        """Delete the project: it is gone at once, and the answered job removes its data."""
        return parse(Job, self._t.call("DELETE", f"/api/projects/{id_of(project)}/"))

    def assign(self, project: Ref, tasks: Iterable[Ref], assignee: Ref | None) -> int:
        """Assign tasks to a member (None: to nobody); answers how many changed."""
        body = {
            "tasks": [id_of(task) for task in tasks],
            "assignee": id_of(assignee) if assignee is not None else None,
        }
        answer = self._t.call("POST", f"/api/projects/{id_of(project)}/assign/", json=body)
        return int(answer["updated"])

    def next_task(self, project: Ref) -> Task | None:
        """Reserve the next task to label (None when none is left)."""
        answer = self._t.call("POST", f"/api/projects/{id_of(project)}/next-task/")
        return parse(Task, answer) if answer else None

    def next_review(self, project: Ref) -> Task | None:
        """Reserve the next submitted task to review (None when none waits)."""
        answer = self._t.call("POST", f"/api/projects/{id_of(project)}/next-review/")
        return parse(Task, answer) if answer else None


class Labels(Resource):
    def list(self, project: Ref) -> list[Label]:
        rows = self._t.call("GET", f"/api/projects/{id_of(project)}/labels/")
        return [parse(Label, row) for row in rows]

    def create(
        self,
        project: Ref,
        name: str,
        *,
        color: str | None = None,
        hotkey: str | None = None,
        attributes: Sequence[dict[str, Any]] = (),
    ) -> Label:
        body: dict[str, Any] = {"name": name, "attributes": list(attributes)}
        if color is not None:
            body["color"] = color
        if hotkey is not None:
            body["hotkey"] = hotkey
        return parse(
            Label, self._t.call("POST", f"/api/projects/{id_of(project)}/labels/", json=body)
        )

    def update(self, label: Ref, **fields: Any) -> Label:
        return parse(Label, self._t.call("PATCH", f"/api/labels/{id_of(label)}/", json=fields))

    def delete(self, label: Ref) -> None:
        self._t.call("DELETE", f"/api/labels/{id_of(label)}/")


class Tasks(Resource):
    def page(
        self, project: Ref, *, cursor: str | None = None, page_size: int = 100, **filters: Any
    ) -> TaskPage:
        """One page of the project's tasks. Filters: ``status`` (one or a list), ``assignee``
        (an id, ``"me"`` or ``"none"``), ``has_annotation``, ``has_prediction``, ``label`` (an
        id), ``sort`` (``id``, ``-id``, ``file_name``, ``-file_name``, ``updated``,
        ``-updated``)."""
        params = {**filters, "cursor": cursor, "page_size": page_size}
        for name in ("label", "assignee"):  # a record or an id (assignee: also "me", "none")
            if filters.get(name) is not None and not isinstance(filters[name], str):
                params[name] = id_of(filters[name])
        answer = self._t.call("GET", f"/api/projects/{id_of(project)}/tasks/", params=params)
        return TaskPage(
            results=[parse(Task, row) for row in answer["results"]],
            next_cursor=answer.get("next_cursor"),
            total=int(answer.get("total", 0)),
            total_capped=bool(answer.get("total_capped", False)),
        )

    def list(self, project: Ref, *, page_size: int = 100, **filters: Any) -> Iterator[Task]:
        """Every task that matches the filters (see ``page``), fetched a page at a time as the
        iteration goes: ``for task in client.tasks.list(project, status="new"): …``."""

        def fetch(cursor: str | None) -> dict[str, Any]:
            page = self.page(project, cursor=cursor, page_size=page_size, **filters)
            return {"results": page.results, "next_cursor": page.next_cursor}

        for page in pages(fetch):
            yield from page["results"]

    def count(self, project: Ref, **filters: Any) -> int:
        """How many tasks match the filters (the server counts up to 10,000 beyond its stored
        counters; ``page(...).total_capped`` says when more match)."""
        return self.page(project, page_size=1, **filters).total

    def get(self, task: Ref) -> Task:
        return parse(Task, self._t.call("GET", f"/api/tasks/{id_of(task)}/"))

    def delete(self, task: Ref) -> None:
        self._t.call("DELETE", f"/api/tasks/{id_of(task)}/")

    def release(self, task: Ref) -> None:
        """Give back a reserved task and skip it."""
        self._t.call("POST", f"/api/tasks/{id_of(task)}/release/")

    def import_(self, project: Ref, items: Sequence[str | dict[str, Any]]) -> dict[str, Any]:
        """Create tasks by reference, in one call: image addresses, or objects such as
        ``{"image": "s3://bucket/a.png", "width": 2448, "height": 2048}``. Answers the server's
        answer (``{"created": n, …}``); one bad row imports nothing and the error names it."""
        answer = self._t.call(
            "POST", f"/api/projects/{id_of(project)}/import/", json={"tasks": list(items)}
        )
        return dict(answer or {})

    def upload(
        self,
        project: Ref,
        paths: Iterable[str | os.PathLike[str]],
        *,
        batch_files: int = BATCH_FILES,
        batch_bytes: int = BATCH_BYTES,
        progress: bool = False,
    ) -> UploadResult:
        """Upload image files and folders of them (walked recursively; JPEG, PNG, BMP, TIFF and
        zip archives) in batches of at most ``batch_files`` files and about ``batch_bytes``.
        Each batch lands whole or not at all; an error stops at the failing batch (the
        server's message names the file), and the batches before it stay: the ApiError's
        ``uploaded`` is the UploadResult of those, ``remaining`` the files not uploaded."""
        files = sorted_files(paths)
        created = 0
        tasks: builtins.list[Task] = []
        bar = ProgressBar("Uploading", unit="files") if progress else None
        try:
            for done, batch in batches(files, batch_files, batch_bytes):
                try:
                    answer = self._t.call(
                        "POST",
                        f"/api/projects/{id_of(project)}/upload/",
                        body=multipart(batch, "files"),
                        timeout=600,
                    )
                except ApiError as error:
                    error.uploaded = UploadResult(created=created, tasks=tasks)
                    error.remaining = files[done - len(batch) :]
                    raise
                created += int(answer["created"])
                tasks += [parse(Task, row) for row in answer["tasks"]]
                if bar is not None:
                    bar.update(done, len(files))
        finally:
            if bar is not None:
                bar.close()
        return UploadResult(created=created, tasks=tasks)


def sorted_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The files named, and the uploadable files under the folders named, in name order."""
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found += sorted(
                child
                for child in path.rglob("*")
                if child.is_file()
                and child.suffix.lower() in UPLOAD_SUFFIXES
                and not child.name.startswith(".")
            )
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"No such file or folder: {path}")
    return found


def batches(
    files: list[Path], most_files: int, most_bytes: int
) -> Iterator[tuple[int, list[Path]]]:
    """``files`` in runs of at most ``most_files`` and about ``most_bytes`` (a larger file goes
    alone), each with how many files are done once it is."""
    batch: list[Path] = []
    size = 0
    for index, path in enumerate(files):
        length = path.stat().st_size
        if batch and (len(batch) >= most_files or size + length > most_bytes):
            yield index, batch
            batch, size = [], 0
        batch.append(path)
        size += length
    if batch:
        yield len(files), batch


def multipart(paths: Sequence[Path], field: str, **data: str) -> Any:
    """A ``Body`` sending ``paths`` as the multipart field ``field`` (streamed from disk)."""

    def body(stack: contextlib.ExitStack) -> tuple[list[tuple[str, Any]], dict[str, str]]:
        files = [
            (
                field,
                (
                    path.name,
                    stack.enter_context(path.open("rb")),
                    mimetypes.guess_type(path.name)[0] or "application/octet-stream",
                ),
            )
            for path in paths
        ]
        return files, dict(data)

    return body


class Annotations(Resource):
    def get(self, task: Ref) -> Annotation | None:
        """The task's current annotation (None when it has none)."""
        answer = self._t.call("GET", f"/api/tasks/{id_of(task)}/annotation/")
        return parse(Annotation, answer) if answer else None

    def save(
        self,
        task: Ref,
        shapes: Sequence[dict[str, Any]],
        *,
        version: int | None = None,
        tags: Sequence[str] | None = None,
        lead_time: float = 0.0,
        submit: bool = False,
        proposals: Sequence[dict[str, Any]] | None = None,
    ) -> Annotation:
        """Save a new version. ``version`` is the one you started from (None for the first);
        if someone saved since, ApiError 409 ``stale`` says so and nothing is overwritten.
        ``proposals``: ``[{"prediction", "index", "fate"}]``, what became of model proposals."""
        body: dict[str, Any] = {
            "version": version,
            "shapes": list(shapes),
            "lead_time": lead_time,
            "submit": submit,
        }
        if tags is not None:
            body["tags"] = list(tags)
        if proposals is not None:
            body["proposals"] = list(proposals)
        answer = self._t.call("PUT", f"/api/tasks/{id_of(task)}/annotation/", json=body)
        return parse(Annotation, answer)

    def submit(self, task: Ref, shapes: Sequence[dict[str, Any]], **options: Any) -> Annotation:
        """``save(..., submit=True)``: the task goes to review."""
        return self.save(task, shapes, submit=True, **options)

    def versions(self, task: Ref) -> list[Annotation]:
        """Every saved version, newest first."""
        rows = self._t.call("GET", f"/api/tasks/{id_of(task)}/annotation/versions/")
        return [parse(Annotation, row) for row in rows]


class Predictions(Resource):
    def list(self, task: Ref) -> list[Prediction]:
        rows = self._t.call("GET", f"/api/tasks/{id_of(task)}/predictions/")
        return [parse(Prediction, row) for row in rows]

    def create(
        self,
        task: Ref,
        shapes: Sequence[dict[str, Any]],
        *,
        model_name: str,
        model_version: str = "",
    ) -> Prediction:
        """Store a model's proposals for the task (pre-labeling); shapes may carry a ``score``."""
        body = {"model_name": model_name, "model_version": model_version, "shapes": list(shapes)}
        answer = self._t.call("POST", f"/api/tasks/{id_of(task)}/predictions/", json=body)
        return parse(Prediction, answer)


class Reviews(Resource):
    def list(self, task: Ref) -> list[Review]:
        return [
            parse(Review, row) for row in self._t.call("GET", f"/api/tasks/{id_of(task)}/review/")
        ]

    def approve(self, task: Ref, comment: str = "") -> Review:
        return self._verdict(task, "approve", comment)

    def reject(self, task: Ref, comment: str) -> Review:
        """Send the task back to whoever submitted it, with ``comment``."""
        return self._verdict(task, "reject", comment)

    def _verdict(self, task: Ref, verdict: str, comment: str) -> Review:
        answer = self._t.call(
            "POST",
            f"/api/tasks/{id_of(task)}/review/",
            json={"verdict": verdict, "comment": comment},
        )
        return parse(Review, answer)


class Account(Resource):
    def me(self) -> User:
        return parse(User, self._t.call("GET", "/api/account/"))
