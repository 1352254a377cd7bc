"""Pre-annotation: a registry model version run on a project's tasks as a job, its detections
kept as the tasks' predictions, which inspectors then accept or fix in the canvas.

Which version. A job names a version, or an alias resolved when the job is started: the whole
job runs that version even if the alias moves meanwhile. Only a ready version runs.

Which tasks. Those the task table's filter names (all, unlabeled, one status, one label, …)
among the tasks that exist when the job starts (the largest id then is kept in the job), in id
order. A job started on import names the new tasks' ids instead.

Which labels. A model's class names become the project's labels by its `ProjectModel` row
(``classes``: name → label id, or None to propose nothing for that class); a class it does not
name goes to the project label of the same name (case aside), else is left out. A polygon on a
project without polygons is proposed as its box, a box on a project of polygons only as its
four corners; the label's attributes get their defaults.

Replace, never duplicate. A task keeps at most one prediction per source ("version:<id>",
`Prediction.source`): running the same version again replaces the shapes of its prediction in
place (the same row, which the canvas and the proposals' fates name) — unless someone already
decided one of its proposals: then that prediction stays as it was, the record of what they
were shown (counted as ``decided_kept``).

A killed worker. Tasks go in parts of ``PART``; a part's predictions and the job's checkpoint
(the last task id done and the counts so far, in ``Job.result``) commit in one transaction, so
the job delivered again carries on after the last whole part and does no task twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone
from django.utils.translation import gettext as _

from defectlab.errors import Conflict, DefectLabError, Invalid, NotFound
from defectlab.geometry import Shape, ShapeError
from defectlab.inference.engine.errors import EngineError
from defectlab.inference.models import (
    DetectionModel,
    ModelAlias,
    ModelVersion,
    ProjectModel,
    VersionState,
)
from defectlab.inference.registry import read_file, refusal
from defectlab.jobs.models import FINISHED, Job, JobState
from defectlab.jobs.services import start_job
from defectlab.labeling.models import AnnotationVersion, Label, Prediction, Project, Task
from defectlab.labeling.sizes import note_size, size_known
from defectlab.labeling.tasklist import TaskFilter, task_filter_from
from defectlab.labeling.tasks import PredictionRow, insert_predictions
from defectlab.media.references import ImageRef
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import User
from defectlab.tenancy.roles import Can
from defectlab.tenancy.services import record, require

if TYPE_CHECKING:
    from defectlab.inference.engine import Detections, Detector
    from defectlab.jobs.runner import Progress

KIND = "preannotate"
PART = 32  # tasks per committed part
MAX_ERRORS = 20  # failed tasks named in the job's result
SCOPES = {"all": {}, "unlabeled": {"has_annotation": "false"}}


# ---------------------------------------------------------------------------- class mapping


def _labels(project: Project) -> list[Label]:
    return list(Label.objects.filter(project_id=project.pk).order_by("id"))


def class_map(
    project: Project, names: Sequence[str], stored: Mapping[str, Any] | None = None
) -> dict[str, int | None]:
    """Each class name → the project label its detections become (None: none). ``stored``
    (a `ProjectModel`'s ``classes``) wins where it names a label still in the project, or
    None; other names go to the label of the same name, case aside."""
    labels = _labels(project)
    ids = {label.pk for label in labels}
    by_name = {label.name.casefold(): label.pk for label in labels}
    chosen: dict[str, int | None] = {}
    for name in names:
        if stored is not None and name in stored and (stored[name] is None or stored[name] in ids):
            chosen[name] = stored[name]
        else:
            chosen[name] = by_name.get(name.casefold())
    return chosen


def project_model(project: Project, model: DetectionModel) -> ProjectModel:
    """The project's settings for ``model`` (unsaved defaults when it has none)."""
    found = ProjectModel.objects.filter(project=project, model=model).first()
    return found or ProjectModel(
        organization_id=project.organization_id, project=project, model=model
    )


def model_names(model: DetectionModel) -> list[str]:
    """The class names of the model's newest ready version (those of its newest version while
    none is ready)."""
    versions = model.versions.order_by("-number")
    version = versions.filter(state=VersionState.READY).first() or versions.first()
    return list(version.names) if version is not None else []


def save_project_model(
    project: Project,
    model: DetectionModel,
    user: User | None,
    *,
    classes: Mapping[str, Any] | None = None,
    tile: bool | None = None,
    on_import: str | None = None,
) -> ProjectModel:
    """Change how ``project`` uses ``model`` (managers): the class → label mapping (names the
    model does not have, or labels not in the project, are refused), tiling, and the alias
    that pre-annotates new tasks on import ("" for none; one model per project at a time)."""
    if user is not None:
        require(user, project.organization_id, Can.MANAGE_PROJECTS)
    if model.organization_id != project.organization_id:
        raise NotFound(_("Not found."))
    with transaction.atomic():
        settings = ProjectModel.objects.select_for_update().filter(project=project, model=model)
        row = settings.first() or project_model(project, model)
        if classes is not None:
            row.classes = _clean_classes(project, model, classes)
        if tile is not None:
            row.tile = bool(tile)
        if on_import is not None:
            row.on_import = _clean_on_import(project, model, on_import)
        row.updated_by = user
        row.save()
        record(
            None,
            AuditAction.PROJECT_MODEL_CHANGED,
            organization=project.organization_id,
            target=project,
            actor=user,
            data={
                "model": model.pk,
                "classes": row.classes,
                "tile": row.tile,
                "on_import": row.on_import,
            },
        )
    return row


def _clean_classes(
    project: Project, model: DetectionModel, classes: Mapping[str, Any]
) -> dict[str, int | None]:
    if not isinstance(classes, Mapping):
        raise Invalid(_("The class mapping must be an object of class name → label id."))
    names = set(model_names(model))
    labels = {label.pk for label in _labels(project)}
    cleaned: dict[str, int | None] = {}
    for name, label in classes.items():
        if name not in names:
            raise Invalid(_("The model has no class named “%(name)s”.") % {"name": name})
        if label is not None and (isinstance(label, bool) or label not in labels):
            raise Invalid(
                _("Class “%(name)s”: this project has no label %(label)s.")
                % {"name": name, "label": label}
            )
        cleaned[name] = label
    return cleaned


def _clean_on_import(project: Project, model: DetectionModel, alias: str) -> str:
    alias = (alias or "").strip()
    if not alias:
        return ""
    if not model.aliases.filter(name=alias).exists():
        raise Invalid(_("The model has no alias “%(name)s”.") % {"name": alias})
    others = ProjectModel.objects.filter(project=project).exclude(model=model).exclude(on_import="")
    if others.exists():
        raise Conflict(
            _("Another model already pre-annotates this project's new tasks; switch it off first.")
        )
    return alias


# ---------------------------------------------------------------------------- starting


def resolve_version(
    model: DetectionModel, *, version: int | None, alias: str | None
) -> ModelVersion:
    """The ready version ``version`` (a number) or ``alias`` names (exactly one of them)."""
    if (version is None) == (not alias):
        raise Invalid(_("Name either a version or an alias of the model."))
    chosen: ModelVersion | None
    if alias:
        found = ModelAlias.objects.select_related("version").filter(model=model, name=alias).first()
        if found is None:
            raise NotFound(_("The model has no alias “%(name)s”.") % {"name": alias})
        chosen = found.version
    else:
        chosen = model.versions.filter(number=int(version or 0)).first()
        if chosen is None:
            raise NotFound(_("This model has no version %(number)s.") % {"number": version})
    if chosen.state != VersionState.READY:
        raise Conflict(
            _("Version %(number)s is %(state)s; only a ready version can pre-annotate.")
            % {"number": chosen.number, "state": chosen.get_state_display()},
            code="version_not_ready",
        )
    return chosen


def start_preannotation(
    project: Project,
    user: User | None,
    *,
    model: DetectionModel,
    version: int | None = None,
    alias: str | None = None,
    scope: str | None = None,
    filters: Mapping[str, str] | None = None,
    tile: bool | None = None,
) -> Job:
    """Start pre-annotating ``project``'s tasks with a version of ``model`` (managers). The
    tasks: ``scope`` ("all", "unlabeled") or the task table's ``filters`` (its query
    parameters). ``tile`` None: the project's setting for the model. 409 while the same
    version is still pre-annotating the project."""
    if user is not None:
        require(user, project.organization_id, Can.MANAGE_PROJECTS)
    if model.organization_id != project.organization_id:
        raise NotFound(_("Not found."))
    chosen = resolve_version(model, version=version, alias=alias)
    if scope is not None and scope not in SCOPES:
        raise Invalid(_("The scope must be all or unlabeled."))
    query = dict(SCOPES[scope] if scope is not None else filters or {})
    _filter_of(query, user)  # refuses a malformed filter now, not in the worker
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()
        running = Job.objects.filter(project=project, kind=KIND).exclude(state__in=FINISHED)
        if any(job.params.get("version") == chosen.pk for job in running):
            raise Conflict(
                _("Version %(number)s is already pre-annotating this project.")
                % {"number": chosen.number},
                code="already_running",
            )
        tiled = project_model(project, model).tile if tile is None else bool(tile)
        return _start(project, user, model, chosen, alias=alias or "", query=query, tile=tiled)


def _start(
    project: Project,
    user: User | None,
    model: DetectionModel,
    version: ModelVersion,
    *,
    alias: str,
    query: dict[str, str],
    tile: bool,
    task_ids: tuple[int, int] | None = None,
) -> Job:
    if task_ids is None:
        newest = Task.objects.filter(project=project).aggregate(newest=Max("id"))["newest"]
        task_ids = (0, newest or 0)
    params: dict[str, Any] = {
        "model": model.pk,
        "version": version.pk,
        "number": version.number,
        "alias": alias,
        "filter": query,
        "tile": tile,
        "from_id": task_ids[0],
        "up_to": task_ids[1],
        "on_import": user is None,
    }
    job = start_job(project.organization, KIND, params=params, user=user, project=project)
    record(
        None,
        AuditAction.PREANNOTATION_STARTED,
        organization=project.organization_id,
        target=project,
        actor=user,
        data={"model": model.pk, "version": version.number, "alias": alias, "job": job.pk},
    )
    return job


def on_tasks_added(project_id: int, first: int, last: int, **_: Any) -> None:
    """Pre-annotate tasks ``first``…``last`` just added to the project when a model is set to
    do so on import (its alias naming a ready version). Runs inside the adding transaction, so
    the job starts with the tasks or not at all. A large import adds its tasks in parts: while
    the job of an earlier part still waits in the queue, the new part joins it."""
    row = (
        ProjectModel.objects.select_related("project__organization", "model")
        .filter(project_id=project_id)
        .exclude(on_import="")
        .first()
    )
    if row is None:
        return
    try:
        version = resolve_version(row.model, version=None, alias=row.on_import)
    except DefectLabError:
        return  # the alias names a version not ready (or none): the import goes on as usual
    waiting = Job.objects.select_for_update().filter(
        project_id=project_id, kind=KIND, state=JobState.QUEUED, attempts=0
    )
    for job in waiting:
        if job.params.get("on_import") and job.params.get("version") == version.pk:
            job.params["from_id"] = min(job.params["from_id"], first)
            job.params["up_to"] = max(job.params["up_to"], last)
            job.save(update_fields=["params"])
            return
    _start(row.project, None, row.model, version, alias=row.on_import, query={},
           tile=row.tile, task_ids=(first, last))  # fmt: skip


# ---------------------------------------------------------------------------- the job


@dataclass
class Counts:
    """What a pre-annotation did so far (kept in the job's checkpoint and result)."""

    tasks: int = 0
    predictions: int = 0
    shapes: int = 0
    decided_kept: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    engine_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks,
            "predictions": self.predictions,
            "shapes": self.shapes,
            "decided_kept": self.decided_kept,
            "failed": self.failed,
            "errors": self.errors,
            "engine_seconds": round(self.engine_seconds, 3),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Counts:
        known = {key: data[key] for key in cls().as_dict() if key in data}
        return cls(**known)


class Proposer:
    """Detections as a project's prediction shapes: class index → label (see the module
    docstring), shape types the project uses, attribute defaults."""

    def __init__(self, project: Project, names: Sequence[str], classes: Mapping[str, Any]):
        mapping = class_map(project, names, classes)
        self.labels = [mapping.get(name) for name in names]
        labels = {label.pk: label for label in _labels(project)}
        self.defaults = {
            pk: {attribute["name"]: attribute["default"] for attribute in label.attributes}
            for pk, label in labels.items()
        }
        self.boxes = "box" in project.shape_types
        self.polygons = "polygon" in project.shape_types

    def shapes(self, found: Detections, width: int, height: int) -> list[dict[str, Any]]:
        proposed = []
        for shape in found.shapes():
            label = self.labels[shape.label] if 0 <= shape.label < len(self.labels) else None
            if label is None:
                continue
            converted = self._typed(shape, label)
            if (found.width, found.height) != (width, height):
                converted = converted.clipped(width, height)
            try:
                converted.validate(width, height)
            except ShapeError:
                continue
            proposed.append(converted.to_dict())
        return proposed

    def _typed(self, shape: Shape, label: int) -> Shape:
        attributes = self.defaults.get(label, {})
        if shape.type == "polygon" and not self.polygons:
            xs = [x for x, _ in shape.points]
            ys = [y for _, y in shape.points]
            return Shape.box(min(xs), min(ys), max(xs), max(ys), label=label,
                             attributes=attributes, score=shape.score)  # fmt: skip
        if shape.type == "box" and not self.boxes and self.polygons:
            (x1, y1), (x2, y2) = shape.points
            corners = [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
            return Shape.polygon(corners, label=label, attributes=attributes, score=shape.score)
        return Shape(shape.type, shape.points, label, attributes, shape.score)


def run_preannotation(job: Job, progress: Progress) -> dict[str, Any]:
    """The job's handler (see the module docstring)."""
    params = job.params
    project = Project.objects.filter(pk=job.project_id or 0).first()
    version = ModelVersion.objects.select_related("model").filter(pk=params["version"]).first()
    if project is None or version is None:
        raise NotFound(_("The project or the model version was deleted."))
    if version.state != VersionState.READY:
        raise Conflict(_("Version %(number)s is no longer ready.") % {"number": version.number})
    detector = load_detector(version)
    proposer = Proposer(project, detector.names, project_model(project, version.model).classes)
    tasks = _scoped_tasks(job, project)
    counts = Counts.from_dict(job.result.get("counts", {}))
    after = int(job.result.get("after", params.get("from_id", 1) - 1))
    progress.total(tasks.count())
    progress.at(counts.tasks, failed=counts.failed)
    source = version.source
    names = (version.model.name, str(version.number))
    tile = bool(params.get("tile"))
    for part in _parts(tasks, after):
        found = _detect(detector, part, tile, counts)
        _store(job, part, found, proposer, source, names, counts)
        progress.done, progress.failed = counts.tasks, counts.failed
        progress.step(0)  # writes now and then, and notices a cancel
    progress.flush()
    return {
        "model": version.model.name,
        "version": version.number,
        "alias": params.get("alias", ""),
        **counts.as_dict(),
    }


def load_detector(version: ModelVersion) -> Detector:
    """The engine's detector for ``version``, with its thresholds and input size."""
    from defectlab.inference.engine import Detector

    try:
        return Detector(
            read_file(version),
            names=version.names or None,
            conf=version.conf,
            iou=version.iou,
            max_det=version.max_det,
            input_size=(version.input_height, version.input_width),
        )
    except EngineError as error:
        raise refusal(error) from None
    except FileNotFoundError:
        raise NotFound(_("The model's file is no longer in storage; upload it again.")) from None


def _scoped_tasks(job: Job, project: Project) -> Any:
    params = job.params
    tasks = _filter_of(params.get("filter") or {}, job.started_by).apply(
        Task.objects.filter(project=project)
    )
    return tasks.filter(id__gte=params.get("from_id", 0), id__lte=params.get("up_to", 0))


def _filter_of(query: Mapping[str, str], user: User | None) -> TaskFilter:
    """The task table's filter of ``query``; "assignee=me" needs the person who started it."""
    if user is None and query.get("assignee") == "me":
        raise Invalid(_("“assignee=me” needs a person; name the assignee by id."))
    return task_filter_from(query, cast(User, user))


def _parts(tasks: Any, after: int) -> Iterator[list[Task]]:
    fields = ("id", "organization_id", "project_id", "image", "width", "height", "has_annotation")
    while True:
        part = list(tasks.filter(id__gt=after).order_by("id").only(*fields)[:PART])
        if not part:
            return
        yield part
        after = part[-1].pk


def _detect(
    detector: Detector, part: list[Task], tile: bool, counts: Counts
) -> list[Detections | str]:
    """Each task's detections, or why its image could not be had or read."""
    found: list[Detections | str] = []
    for task in part:
        started = time.perf_counter()
        try:
            ref = ImageRef.parse(task.image)
            if ref is None:
                raise Invalid(_("The task's image address cannot be read."))
            data = ref.read(task.organization_id)
            found.append(detector.detect(data, tile=tile))
        except EngineError as error:
            found.append(error.localized(_))
        except (DefectLabError, OSError) as error:
            found.append(str(getattr(error, "message", "") or error))
        counts.engine_seconds += time.perf_counter() - started
    return found


def _store(
    job: Job,
    part: list[Task],
    found: list[Detections | str],
    proposer: Proposer,
    source: str,
    names: tuple[str, str],
    counts: Counts,
) -> None:
    """One part's predictions and the job's checkpoint, in one transaction."""
    shapes: dict[int, list[dict[str, Any]]] = {}
    for task, result in zip(part, found, strict=True):
        counts.tasks += 1
        if isinstance(result, str):
            counts.failed += 1
            if len(counts.errors) < MAX_ERRORS:
                counts.errors.append({"task": task.pk, "error": result})
            continue
        if not size_known(task):
            note_size(task, (result.width, result.height))
        shapes[task.pk] = proposer.shapes(result, task.width or 0, task.height or 0)
    with transaction.atomic():
        existing = dict(
            Prediction.objects.filter(task_id__in=list(shapes), source=source).values_list(
                "task_id", "id"
            )
        )
        decided = _decided(part, set(existing.values()))
        now = timezone.now()
        changed = [
            Prediction(pk=existing[task_id], shapes=rows, created_at=now)
            for task_id, rows in shapes.items()
            if task_id in existing and existing[task_id] not in decided
        ]
        Prediction.objects.bulk_update(changed, ["shapes", "created_at"])
        by_task = {task.pk: task for task in part}
        insert_predictions(
            [
                PredictionRow(task_id, by_task[task_id].organization_id, *names, rows, source)
                for task_id, rows in shapes.items()
                if task_id not in existing
            ]
        )
        kept = [task_id for task_id in shapes if existing.get(task_id) in decided]
        counts.decided_kept += len(kept)
        counts.predictions += len(shapes) - len(kept)
        counts.shapes += sum(len(shapes[task_id]) for task_id in shapes if task_id not in kept)
        Job.objects.filter(pk=job.pk).update(
            result={"after": part[-1].pk, "counts": counts.as_dict()},
            done=counts.tasks,
            failed=counts.failed,
            updated_at=now,
        )


def _decided(part: list[Task], predictions: set[int]) -> set[int]:
    """Those of ``predictions`` with a proposal someone decided (in their task's current
    annotation version)."""
    if not predictions:
        return set()
    annotated = [task.pk for task in part if task.has_annotation]
    rows = AnnotationVersion.objects.filter(
        annotation__task_id__in=annotated, version=F("annotation__version")
    ).values_list("proposal_fates", flat=True)
    return {fate["prediction"] for fates in rows for fate in fates or []} & predictions
