"""Pre-annotation: a model run on a project's tasks as a job, its detections kept as the
tasks' predictions, which inspectors then accept or fix in the canvas. The model is a registry
version (run by the engine here) or an external backend (asked over HTTP, `backends`).

Which version. A job names a version, or an alias resolved when the job is started: the whole
job runs that version even if the alias moves meanwhile. Only a ready version runs.

Which tasks. Those the task table's filter names (all, unlabeled, one status, one label, …)
among the tasks that exist when the job starts (the largest id then is kept in the job), in id
order. A job started on import names the new tasks' ids instead.

Which thresholds: `registry.thresholds` — the organization's saved sensitivity of the model
(its ``conf`` / ``iou``) where set, else the version's own defaults, read when the job runs.

Which labels: `mapping` (the project's class → label mapping for the model; a backend's regions
name the project's labels already).

Replace, never duplicate. A task keeps at most one prediction per source (`Prediction.source`:
``version:<id>``, ``backend:<id>``): running the same source again replaces its prediction by
a new one — unless someone already decided one of its proposals: then that prediction stays as
it was, the record of what they were shown (counted as ``decided_kept``). The task's row is
locked while a part is written, as a save locks it, so a proposal decided meanwhile is seen; a
canvas opened on the replaced prediction names one that is gone, and its fates are left out
(`labeling.proposals`) rather than read as fates of the new shapes.

A killed worker. Tasks are read in parts of ``PART``; the predictions of a part — or of what
was done of it when ``PART_SECONDS`` passed — and the job's checkpoint (the last task id done
and the counts so far, in ``Job.result``) commit in one transaction, so the job delivered again
carries on after the last commit and does no task twice.

The engine reads a part's images on a thread of its own while the model runs
(`Detector.detect_stream`): images in this installation's storage are read there; an image kept
by reference (an address, another storage) is fetched here first, since the allowlist and the
storage connection are read from the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, cast

from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone
from django.utils.translation import gettext as _

from defectlab.errors import Conflict, DefectLabError, Invalid, NotFound
from defectlab.inference import backends
from defectlab.inference.engine.errors import EngineError
from defectlab.inference.mapping import Proposer, project_model
from defectlab.inference.models import (
    DetectionModel,
    MLBackend,
    ModelAlias,
    ModelVersion,
    ProjectModel,
    VersionState,
)
from defectlab.inference.registry import load_detector
from defectlab.jobs.models import FINISHED, Job, JobState
from defectlab.jobs.services import start_job
from defectlab.labeling.models import AnnotationVersion, Prediction, Project, Task
from defectlab.labeling.sizes import note_size, size_known
from defectlab.labeling.tasklist import TaskFilter, task_filter_from
from defectlab.labeling.tasks import PredictionRow, insert_predictions
from defectlab.media.references import ImageRef
from defectlab.media.storage import default_storage
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import User
from defectlab.tenancy.roles import Can
from defectlab.tenancy.services import record, require

if TYPE_CHECKING:
    from defectlab.jobs.runner import Progress

KIND = "preannotate"
PART = 64  # tasks read at once (and committed at once, unless PART_SECONDS pass first)
PART_SECONDS = 2.0  # at most this much work is lost when a worker is killed
MAX_ERRORS = 20  # failed tasks named in the job's result
SCOPES = {"all": {}, "unlabeled": {"has_annotation": "false"}}
Shapes = list[dict[str, Any]]


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
    model: DetectionModel | None = None,
    version: int | None = None,
    alias: str | None = None,
    backend: MLBackend | None = None,
    scope: str | None = None,
    filters: Mapping[str, str] | None = None,
    tile: bool | None = None,
) -> Job:
    """Start pre-annotating ``project``'s tasks (managers) with a version of ``model`` (its
    ``version`` number or ``alias``) or with an external ``backend``. The tasks: ``scope``
    ("all", "unlabeled") or the task table's ``filters`` (its query parameters). ``tile`` None:
    the project's setting for the model. 409 while the same source is still pre-annotating
    the project."""
    if user is not None:
        require(user, project.organization_id, Can.MANAGE_PROJECTS)
    if (model is None) == (backend is None):
        raise Invalid(_("Name either a model or a model backend."))
    owner = model if model is not None else backend
    if owner is None or owner.organization_id != project.organization_id:
        raise NotFound(_("Not found."))
    if scope is not None and scope not in SCOPES:
        raise Invalid(_("The scope must be all or unlabeled."))
    query = dict(SCOPES[scope] if scope is not None else filters or {})
    _filter_of(query, user)  # refuses a malformed filter now, not in the worker
    if model is not None:
        chosen = resolve_version(model, version=version, alias=alias)
        tiled = project_model(project, model).tile if tile is None else bool(tile)
        what: dict[str, Any] = {"model": model.pk, "version": chosen.pk, "number": chosen.number,
                                "alias": alias or "", "tile": tiled, "source": chosen.source}  # fmt: skip
        busy = _("Version %(number)s is already pre-annotating this project.") % {
            "number": chosen.number
        }
    else:
        backend = cast(MLBackend, backend)
        what = {"backend": backend.pk, "source": f"backend:{backend.pk}"}
        busy = _("Backend “%(name)s” is already pre-annotating this project.") % {
            "name": backend.name
        }
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()
        running = Job.objects.filter(project=project, kind=KIND).exclude(state__in=FINISHED)
        if any(job.params.get("source") == what["source"] for job in running):
            raise Conflict(busy, code="already_running")
        return _start(project, user, what, query)


def _start(
    project: Project,
    user: User | None,
    what: dict[str, Any],
    query: dict[str, str],
    task_ids: tuple[int, int] | None = None,
) -> Job:
    if task_ids is None:
        newest = Task.objects.filter(project=project).aggregate(newest=Max("id"))["newest"]
        task_ids = (0, newest or 0)
    params = {**what, "filter": query, "from_id": task_ids[0], "up_to": task_ids[1],
              "on_import": user is None}  # fmt: skip
    job = start_job(project.organization, KIND, params=params, user=user, project=project)
    record(
        None,
        AuditAction.PREANNOTATION_STARTED,
        organization=project.organization_id,
        target=project,
        actor=user,
        data={key: what[key] for key in ("model", "number", "alias", "backend") if key in what}
        | {"job": job.pk},
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
        if job.params.get("on_import") and job.params.get("source") == version.source:
            job.params["from_id"] = min(job.params["from_id"], first)
            job.params["up_to"] = max(job.params["up_to"], last)
            job.save(update_fields=["params"])
            return
    what = {"model": row.model_id, "version": version.pk, "number": version.number,
            "alias": row.on_import, "tile": row.tile, "source": version.source}  # fmt: skip
    _start(row.project, None, what, {}, task_ids=(first, last))


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
        return asdict(self) | {"engine_seconds": round(self.engine_seconds, 3)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Counts:
        return cls(**{item.name: data[item.name] for item in fields(cls) if item.name in data})


class VersionRun:
    """A registry version, run here by the engine."""

    def __init__(self, project: Project, version: ModelVersion, tile: bool) -> None:
        if version.state != VersionState.READY:
            raise Conflict(_("Version %(number)s is no longer ready.") % {"number": version.number})
        self.version, self.tile = version, tile
        self.source = version.source
        self.names = (version.model.name, str(version.number))
        self.detector = load_detector(version)
        classes = project_model(project, version.model).classes
        self.proposer = Proposer(project, self.detector.names, classes)

    def describe(self) -> dict[str, Any]:
        return {"model": self.version.model.name, "version": self.version.number}

    def predict(self, part: list[Task]) -> Iterator[Shapes | str]:
        """Each task's proposals, or why its image could not be had or read, in turn."""
        found = self.detector.detect_stream([image_of(task) for task in part], tile=self.tile)
        with closing(found):
            for task, result in zip(part, found, strict=True):
                if isinstance(result, Exception):
                    yield failure_reason(result)
                    continue
                if not size_known(task):
                    note_size(task, (result.width, result.height))
                yield self.proposer.shapes(
                    result, task.width or 0, task.height or 0, iou=self.detector.iou
                )


class BackendRun:
    """An external model backend, asked for a part's tasks at once."""

    def __init__(self, project: Project, backend: MLBackend) -> None:
        self.project, self.backend = project, backend
        self.source = f"backend:{backend.pk}"
        self.names = (backend.name, backend.model_version)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend.name, "version": self.backend.model_version}

    def predict(self, part: list[Task]) -> Iterator[Shapes | str]:
        # Read again for each part: a backend deleted or moved (a new address or header, say
        # because the old one leaked) is never asked again with what it was.
        backend = MLBackend.objects.filter(pk=self.backend.pk).first()
        if backend is None:
            raise NotFound(_("The model backend was deleted."))
        self.backend = backend
        predicted = backends.predict_tasks(self.backend, self.project, part)
        self.names = (self.backend.name, predicted.model_version or self.backend.model_version)
        yield from predicted.shapes


def run_preannotation(job: Job, progress: Progress) -> dict[str, Any]:
    """The job's handler (see the module docstring)."""
    params = job.params
    project = Project.objects.filter(pk=job.project_id or 0).first()
    if project is None:
        raise NotFound(_("The project was deleted."))
    run = _run_of(project, params)
    tasks = _scoped_tasks(job, project)
    counts = Counts.from_dict(job.result.get("counts", {}))
    after = int(job.result.get("after", params.get("from_id", 1) - 1))
    progress.total(tasks.count())
    progress.at(counts.tasks, failed=counts.failed)
    for part in _parts(tasks, after):
        done: list[tuple[Task, Shapes | str]] = []
        started = time.perf_counter()
        for task, result in zip(part, run.predict(part), strict=True):
            done.append((task, result))
            if time.perf_counter() - started >= PART_SECONDS:
                _commit(job, done, run, counts, progress, started)
                done, started = [], time.perf_counter()
        _commit(job, done, run, counts, progress, started)
    progress.flush()
    return {**run.describe(), "alias": params.get("alias", ""), **counts.as_dict()}


def _commit(
    job: Job,
    done: list[tuple[Task, Shapes | str]],
    run: VersionRun | BackendRun,
    counts: Counts,
    progress: Progress,
    started: float,
) -> None:
    """What was done since ``started``: stored with the checkpoint, then reported (which
    notices a cancel)."""
    counts.engine_seconds += time.perf_counter() - started
    _store(job, done, run, counts)
    progress.done, progress.failed = counts.tasks, counts.failed
    progress.step(0)


def _run_of(project: Project, params: Mapping[str, Any]) -> VersionRun | BackendRun:
    if params.get("backend"):
        backend = MLBackend.objects.filter(pk=params["backend"]).first()
        if backend is None:
            raise NotFound(_("The model backend was deleted."))
        return BackendRun(project, backend)
    version = ModelVersion.objects.select_related("model").filter(pk=params["version"]).first()
    if version is None:
        raise NotFound(_("The model version was deleted."))
    return VersionRun(project, version, bool(params.get("tile")))


def image_of(task: Task) -> Callable[[], bytes]:
    """What reads ``task``'s image for the engine's stream: a read from this installation's
    storage, made on the stream's thread; an image kept by reference is fetched now (see the
    module docstring), a failure kept to be raised there."""
    ref = ImageRef.parse(task.image)
    if ref is not None and ref.stored:
        key = ref.location
        return lambda: default_storage().read(key)
    try:
        if ref is None:
            raise Invalid(_("The task's image address cannot be read."))
        data = ref.read(task.organization_id)
    except (DefectLabError, OSError) as error:
        failure = error
        return lambda: _raise(failure)
    return lambda: data


def _raise(error: Exception) -> bytes:
    raise error


def failure_reason(error: Exception) -> str:
    if isinstance(error, EngineError):
        return error.localized(_)
    if isinstance(error, DefectLabError):
        return error.message
    if isinstance(error, FileNotFoundError):
        return _("The task's image is no longer in storage.")
    return str(error) or error.__class__.__name__


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


def _store(
    job: Job, done: list[tuple[Task, Shapes | str]], run: VersionRun | BackendRun, counts: Counts
) -> None:
    """Predictions of the tasks ``done`` and the job's checkpoint, in one transaction."""
    if not done:
        return
    part = [task for task, _result in done]
    shapes: dict[int, Shapes] = {}
    for task, result in done:
        counts.tasks += 1
        if isinstance(result, str):
            counts.failed += 1
            if len(counts.errors) < MAX_ERRORS:
                counts.errors.append({"task": task.pk, "error": result})
        else:
            shapes[task.pk] = result
    with transaction.atomic():
        # The tasks' rows locked first, as a save of an annotation locks its task: a proposal
        # decided while this part ran is seen here, and no save lands between the look and
        # the write.
        list(Task.objects.select_for_update().filter(pk__in=sorted(shapes)).values_list("pk"))
        existing = dict(
            Prediction.objects.filter(task_id__in=list(shapes), source=run.source).values_list(
                "task_id", "id"
            )
        )
        decided = _decided(list(shapes), set(existing.values()))
        kept = {task_id for task_id in shapes if existing.get(task_id) in decided}
        # An undecided prediction is replaced by a new row: a canvas opened on the old one
        # then names a prediction that is gone, whose fates are left out (labeling.proposals),
        # never fates of the new shapes.
        Prediction.objects.filter(
            pk__in=[existing[task_id] for task_id in existing if task_id not in kept]
        ).delete()
        organization_id = part[0].organization_id
        insert_predictions(
            [
                PredictionRow(task_id, organization_id, *run.names, rows, run.source)
                for task_id, rows in shapes.items()
                if task_id not in kept
            ]
        )
        counts.decided_kept += len(kept)
        counts.predictions += len(shapes) - len(kept)
        counts.shapes += sum(len(rows) for task_id, rows in shapes.items() if task_id not in kept)
        Job.objects.filter(pk=job.pk).update(
            result={"after": part[-1].pk, "counts": counts.as_dict()},
            done=counts.tasks,
            failed=counts.failed,
            updated_at=timezone.now(),
        )


def _decided(task_ids: list[int], predictions: set[int]) -> set[int]:
    """Those of ``predictions`` with a proposal someone decided (in their task's current
    annotation version)."""
    if not predictions:
        return set()
    rows = AnnotationVersion.objects.filter(
        annotation__task_id__in=task_ids, version=F("annotation__version")
    ).values_list("proposal_fates", flat=True)
    return {fate["prediction"] for fates in rows for fate in fates or []} & predictions
