"""A model's sensitivity preview: a version run once on a few of the organization's images with
almost nothing left out, so that a person can move the confidence and IoU thresholds in the
browser and see at once which boxes a detection with those thresholds keeps.

The run is a job (``sensitivity_preview``): the model works in the worker, never in a web
process. It runs the chosen version (a number, or an alias resolved when the job starts) on up
to ``SAMPLES`` tasks of one project — the most recent ones unless the caller names them — with
the engine at a confidence floor of ``FLOOR``, no suppression (IoU 1.0: greedy NMS drops a box
only when its IoU is *above* the threshold) and at most ``CANDIDATES`` boxes per image, and keeps
each image's candidates in the job's result: boxes in image pixels, scores, class ids, the image
size and the task. The page filters them (score above the confidence, then per-class greedy NMS
at the IoU, at most the version's ``max_det``), as the engine does (`engine.decode.nms`).

Images are read as pre-annotation reads them (`preannotation.image_of`): stored ones on the
engine's thread, referenced ones through the guarded fetcher here. Tiling is not previewed.

Saving the chosen thresholds is `registry.set_sensitivity`; which thresholds a detection then
uses is `registry.thresholds`."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils.translation import gettext as _

from defectlab.errors import Invalid, NotFound
from defectlab.inference.models import DetectionModel, ModelVersion, VersionState
from defectlab.inference.preannotation import (
    failure_reason,
    image_of,
    load_detector,
    resolve_version,
)
from defectlab.jobs.models import FINISHED, Job
from defectlab.jobs.services import start_job
from defectlab.labeling.models import Project, Task
from defectlab.labeling.services import is_viewable
from defectlab.tenancy.models import User
from defectlab.tenancy.roles import Can
from defectlab.tenancy.services import require

if TYPE_CHECKING:
    from defectlab.inference.engine import Detections
    from defectlab.jobs.runner import Progress

KIND = "sensitivity_preview"
SAMPLES = 8  # images in one preview at most
FLOOR = 0.01  # the lowest confidence the page offers
NO_SUPPRESSION = 1.0  # no IoU is above 1: greedy NMS keeps every box
CANDIDATES = 1000  # boxes kept per image, best first
PREVIEW = Can.REVIEW  # who may run one: reviewers and above (saving needs a manager)
# The output layouts whose boxes come out of the model already suppressed (no NMS to preview).
END_TO_END = ("end2end", "segment_end2end")


def start_preview(
    model: DetectionModel,
    user: User | None,
    *,
    project: Project,
    version: int | None = None,
    alias: str | None = None,
    tasks: Sequence[int] | None = None,
) -> Job:
    """Start a preview of ``model``'s ``version`` (a number) or ``alias`` on ``project``'s
    ``tasks`` (their ids, at most `SAMPLES` used; None: the most recent ones). The same person
    asking again for the same preview while it still runs gets that job, not a second one."""
    if user is not None:
        require(user, model.organization_id, PREVIEW)
    if project.organization_id != model.organization_id:
        raise NotFound(_("Not found."))
    chosen = resolve_version(model, version=version, alias=alias)
    samples = sample_tasks(project, tasks)
    if not samples:
        raise Invalid(_("This project has no images to preview yet."), code="no_images")
    params = {"model": model.pk, "version": chosen.pk, "number": chosen.number,
              "alias": alias or "", "tasks": samples}  # fmt: skip
    with transaction.atomic():
        DetectionModel.objects.select_for_update().filter(pk=model.pk).first()
        running = Job.objects.filter(
            organization_id=model.organization_id, kind=KIND, started_by=user
        ).exclude(state__in=FINISHED)
        for job in running:
            if job.params == params:
                return job
        return start_job(model.organization, KIND, params=params, user=user, project=project)


def sample_tasks(project: Project, tasks: Sequence[int] | None = None) -> list[int]:
    """Ids of at most `SAMPLES` of ``project``'s tasks whose image can be shown: those of
    ``tasks`` that are the project's (in their order), or else its most recent ones."""
    rows = Task.objects.filter(project=project).only("id", "image")
    if tasks is not None:
        wanted = [int(pk) for pk in tasks][: SAMPLES * 4]
        found = {task.pk: task for task in rows.filter(pk__in=wanted)}
        picked = [found[pk] for pk in dict.fromkeys(wanted) if pk in found]
    else:
        picked = list(rows.order_by("-id")[: SAMPLES * 4])
    return [task.pk for task in picked if is_viewable(task)][:SAMPLES]


def run_preview(job: Job, progress: Progress) -> dict[str, Any]:
    """The job's handler: each sample's candidates (see the module docstring). Running it
    again gives the same result."""
    params = job.params
    version = (
        ModelVersion.objects.select_related("model")
        .filter(pk=params.get("version") or 0, organization_id=job.organization_id)
        .first()
    )
    if version is None:
        raise NotFound(_("The model version was deleted."))
    if version.state != VersionState.READY:
        raise Invalid(_("Version %(number)s is no longer ready.") % {"number": version.number})
    ids = [int(pk) for pk in params.get("tasks", [])]
    found = Task.objects.filter(organization_id=job.organization_id, pk__in=ids).only(
        "id", "organization_id", "image", "width", "height"
    )
    by_id = {task.pk: task for task in found}
    tasks = [by_id[pk] for pk in ids if pk in by_id]
    progress.total(len(tasks))
    detector = load_detector(version)
    images: list[dict[str, Any]] = []
    stream = detector.detect_stream(
        [image_of(task) for task in tasks], conf=FLOOR, iou=NO_SUPPRESSION, max_det=CANDIDATES
    )
    names = list(detector.names)
    with closing(stream):
        for task, result in zip(tasks, stream, strict=True):
            if isinstance(result, Exception):
                images.append({"task": task.pk, "error": failure_reason(result)})
                progress.step(failed=1)
                continue
            images.append(candidates_of(task.pk, result))
            if len(result.names) > len(names):
                names = list(result.names)
            progress.step()
    progress.flush()
    return {
        "model": version.model_id,
        "version": version.number,
        "alias": params.get("alias", ""),
        "layout": version.layout,
        "nms": version.layout not in END_TO_END,
        "max_det": version.max_det,
        "floor": FLOOR,
        "names": names,
        "images": images,
    }


def candidates_of(task_id: int, found: Detections) -> dict[str, Any]:
    """One image's candidates as the page reads them: boxes rounded to 1/100 pixel, scores as
    the shortest decimals that read back as the engine's float32 scores."""
    import numpy as np  # the worker's: web processes never load numpy for this module

    boxes = np.round(np.asarray(found.boxes, dtype=np.float64), 2).reshape(-1, 4)
    scores = np.asarray(found.scores, dtype=np.float32)
    return {
        "task": task_id,
        "width": found.width,
        "height": found.height,
        "boxes": boxes.tolist(),
        "scores": [float(str(score)) for score in scores],
        "classes": [int(label) for label in found.classes],
    }


def latest_preview(model: DetectionModel) -> Job | None:
    """The model's most recent preview job (any person's)."""
    return (
        Job.objects.filter(organization_id=model.organization_id, kind=KIND, params__model=model.pk)
        .order_by("-id")
        .first()
    )
