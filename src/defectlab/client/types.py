"""What the server answers, as typed records. Each is built from the JSON with ``parse``: fields
the server adds later are kept in ``raw`` and do not break an older client."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

R = TypeVar("R")

ShapeType = Literal["box", "polygon", "points"]
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED_STATES = ("succeeded", "failed", "cancelled")


def parse(record: type[R], data: Any) -> R:
    """``data`` (a JSON object) as ``record``: known fields by name, the whole object as ``raw``."""
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object for {record.__name__}, got {type(data).__name__}")
    names = {item.name for item in dataclasses.fields(cast(Any, record))} - {"raw"}
    values = {name: data[name] for name in names if name in data}
    for name, kind in _NESTED.get(record.__name__, {}).items():
        if isinstance(values.get(name), list):
            values[name] = [parse(kind, item) for item in values[name]]
    built: R = cast(Any, record)(**values, raw=data)
    return built


@dataclass(frozen=True)
class User:
    id: int
    email: str = ""
    name: str = ""
    language: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Token:
    """A personal API token. ``key`` (``dl_…``) is only in the answer that created it."""

    id: int
    name: str = ""
    prefix: str = ""
    created_at: str | None = None
    last_used_at: str | None = None
    expires_at: str | None = None
    key: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Organization:
    id: int
    name: str = ""
    role: str | None = None
    created_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Label:
    id: int
    name: str = ""
    color: str = ""
    hotkey: str = ""
    attributes: list[dict[str, Any]] = field(default_factory=list)
    order: int = 0
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Project:
    id: int
    organization: int = 0
    name: str = ""
    description: str = ""
    instructions: str = ""
    shape_types: list[str] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)
    allow_self_approval: bool = False
    queue_order: str = "age"
    labels: list[Label] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    created_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def label(self, name: str) -> Label:
        """The project's label called ``name`` (KeyError when there is none)."""
        for label in self.labels:
            if label.name == name:
                return label
        raise KeyError(name)


@dataclass(frozen=True)
class Task:
    id: int
    project: int = 0
    file_name: str = ""
    width: int | None = None
    height: int | None = None
    status: str = ""
    assignee: int | None = None
    lock_owner: int | None = None
    lock_expires_at: str | None = None
    has_annotation: bool = False
    has_prediction: bool = False
    top_score: float | None = None
    disagreement: float | None = None
    image_url: str | None = None
    thumbnail_url: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class TaskPage:
    """One page of a task list: ``total`` tasks match the filters (``total_capped``: more do)."""

    results: list[Task]
    next_cursor: str | None
    total: int
    total_capped: bool = False


@dataclass(frozen=True)
class Annotation:
    version: int
    shapes: list[dict[str, Any]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    author: int | None = None
    lead_time: float = 0.0
    author_name: str = ""
    proposals: list[dict[str, Any]] = field(default_factory=list)
    created_at: str | None = None
    updated_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Prediction:
    id: int
    model_name: str = ""
    model_version: str = ""
    shapes: list[dict[str, Any]] = field(default_factory=list)
    created_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Review:
    id: int
    verdict: str = ""
    comment: str = ""
    annotation_version: int | None = None
    reviewer: int | None = None
    created_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Job:
    """A background job (export, dataset import, URL import, project deletion …)."""

    id: int
    kind: str = ""
    title: str = ""
    state: JobState = "queued"
    done: int = 0
    failed: int = 0
    total: int | None = None  # None until the job knows it
    rate: float | None = None
    error: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    organization: int | None = None
    project: int | None = None
    attempts: int = 0
    cancel_requested: bool = False
    started_by: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def succeeded(self) -> bool:
        return self.state == "succeeded"


@dataclass(frozen=True)
class UploadResult:
    """What uploads made: ``created`` tasks in all; ``tasks`` as the server listed them (every
    one when each request held at most 100 images, as the batches of ``upload_folder`` do)."""

    created: int
    tasks: list[Task] = field(default_factory=list)


# ---------------------------------------------------------------------------- detection service


@dataclass(frozen=True)
class ModelInfo:
    """The model version that answered a detection call: ``alias`` is the alias it was reached
    by (None when asked by version number), ``sha256`` the hash of its file."""

    name: str
    version: int
    alias: str | None = None
    sha256: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Detection:
    """One thing found, in the image's pixels: ``box`` is ``(x1, y1, x2, y2)``; ``polygon``
    the outline a segmentation model gives (None from a box model)."""

    class_name: str
    class_id: int
    score: float
    box: tuple[float, float, float, float]
    polygon: list[tuple[float, float]] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Detection:
        x1, y1, x2, y2 = (float(v) for v in data["box"])
        outline = data.get("polygon")
        return cls(
            class_name=str(data.get("class", "")),
            class_id=int(data.get("class_id", -1)),
            score=float(data.get("score", 0.0)),
            box=(x1, y1, x2, y2),
            polygon=[(float(x), float(y)) for x, y in outline] if outline else None,
            raw=data,
        )


@dataclass(frozen=True)
class ImageError:
    """Why one image of a call has no detections (``unreadable`` …): the others are answered."""

    code: str
    message: str


@dataclass(frozen=True)
class ImageResult:
    """The answer for one image. ``index`` is its place in the list given to ``detect`` (across
    batches), ``name`` the file's path or name (None for bytes), ``model`` the version that
    answered it. Either ``error`` is set or ``width``, ``height`` and ``detections`` are."""

    index: int
    name: str | None = None
    width: int | None = None
    height: int | None = None
    detections: list[Detection] = field(default_factory=list)
    error: ImageError | None = None
    model: ModelInfo | None = None
    timings: dict[str, float] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def from_json(
        cls, data: dict[str, Any], *, model: ModelInfo | None = None, name: str | None = None
    ) -> ImageResult:
        error = data.get("error")
        return cls(
            index=int(data["index"]),
            name=name,
            width=data.get("width"),
            height=data.get("height"),
            detections=[Detection.from_json(item) for item in data.get("detections") or ()],
            error=(
                ImageError(str(error.get("code", "")), str(error.get("message", "")))
                if isinstance(error, dict)
                else None
            ),
            model=model,
            timings=dict(data.get("timings") or {}),
            raw=data,
        )


@dataclass(frozen=True)
class Answer:
    """One call's answer (at most ``MAX_IMAGES`` images): the model that answered, a result per
    image in the order sent, and the call's ``timings`` (``queue_ms``, ``total_ms``)."""

    model: ModelInfo
    results: list[ImageResult]
    timings: dict[str, float] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Any, names: list[str | None] | None = None) -> Answer:
        if not isinstance(data, dict) or not isinstance(data.get("results"), list):
            raise TypeError("expected the detection service's answer (model, results)")
        model = parse(ModelInfo, data.get("model") or {})
        names = names or []
        results = []
        for item in data["results"]:
            index = int(item["index"])
            name = names[index] if 0 <= index < len(names) else None
            results.append(ImageResult.from_json(item, model=model, name=name))
        return cls(model, results, dict(data.get("timings") or {}), raw=data)


_NESTED: dict[str, dict[str, type]] = {"Project": {"labels": Label}}


def box(
    label: int | Label,
    x1: float,
    y1: float,
    x2: float,
    y2: float,
    *,
    score: float | None = None,
    attributes: dict[str, str] | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    """A box shape in image pixels, as the API takes it (annotations and predictions alike)."""
    return _shape("box", label, [[x1, y1], [x2, y2]], score, attributes, id)


def polygon(
    label: int | Label,
    points: list[tuple[float, float]] | list[list[float]],
    *,
    score: float | None = None,
    attributes: dict[str, str] | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    """A polygon (three or more ``(x, y)`` vertices in image pixels)."""
    return _shape("polygon", label, [[x, y] for x, y in points], score, attributes, id)


def _shape(
    kind: str,
    label: int | Label,
    points: list[list[float]],
    score: float | None,
    attributes: dict[str, str] | None,
    id: str | None,
) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "type": kind,
        "points": points,
        "label": label.id if isinstance(label, Label) else label,
    }
    if score is not None:
        shape["score"] = score
    if attributes:
        shape["attributes"] = attributes
    if id is not None:
        shape["id"] = id
    return shape
