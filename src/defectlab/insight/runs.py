"""The evaluation job (`model_evaluation`): the version run on each approved task of the
project, its detections and the task's approved annotation measured by `defectlab.evaluation`
(see `evaluations` for which version, thresholds, labels and tasks).

Images are read on the engine's thread while the model runs (`Detector.detect_stream`, as
pre-annotation does). An image that cannot be had or read is counted and named (the first
``MAX_ERRORS``) and left out of the report; the run goes on.

The report and the findings — the ``KEEP`` highest-scoring disagreements of the whole run,
ranked — are written in one transaction at the end, so an evaluation is either done with all
of its findings or has none: a retried or re-delivered job starts again from the first task
and replaces whatever an earlier attempt left. A cancel is noticed at each progress report."""

from __future__ import annotations

import hashlib
import heapq
import itertools
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from defectlab.errors import NotFound
from defectlab.evaluation import Box, Finding, Sample, evaluate, findings, shape_box
from defectlab.geometry import Shape, ShapeError
from defectlab.inference.preannotation import failure_reason, image_of
from defectlab.inference.registry import load_detector
from defectlab.insight import models
from defectlab.insight.evaluations import (
    KIND,
    MAX_DET,
    PREDICT_CONF,
    approved_tasks,
    label_of_class,
)
from defectlab.insight.models import Evaluation, EvaluationState
from defectlab.jobs.models import Job, JobState
from defectlab.labeling.models import Annotation, Task
from defectlab.labeling.sizes import note_size, size_known

if TYPE_CHECKING:
    from defectlab.inference.engine import Detections, Detector
    from defectlab.jobs.runner import Progress

PART = 64  # approved tasks read at once
KEEP = 5000  # findings kept per evaluation, the highest scores
MAX_ERRORS = 20  # unreadable images named in the evaluation


@dataclass
class Found:
    """One finding with where it is, until it is ranked and stored."""

    task: int
    finding: Finding
    shape: str


def _box(box: Box | None) -> list[float] | None:
    return None if box is None else [box.x1, box.y1, box.x2, box.y2]


@dataclass
class Collector:
    """What a run gathers as the samples stream through `evaluate`: the hash of the ground
    truth it saw, the unreadable images, and the best findings."""

    evaluation: Evaluation
    classes: list[int | None]
    progress: Progress
    detector: Detector
    labels: frozenset[int] = field(init=False)
    digest: Any = field(default_factory=hashlib.sha256)
    approved: int = 0
    images: int = 0
    broken: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    best: list[tuple[float, int, Found]] = field(default_factory=list)
    found: int = 0
    not_evaluated: Counter[int] = field(default_factory=Counter)
    order: Iterator[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.labels = frozenset(label for label in self.classes if label is not None)

    def samples(self) -> Iterator[Sample]:
        after = 0
        fields = ("id", "organization_id", "project_id", "image", "width", "height")
        tasks = approved_tasks(self.evaluation.project)
        while True:
            part = list(tasks.filter(id__gt=after).order_by("id").only(*fields)[:PART])
            if not part:
                return
            after = part[-1].pk
            yield from self._part(part)

    def _part(self, part: list[Task]) -> Iterator[Sample]:
        annotations = {
            row[0]: row[1:]
            for row in Annotation.objects.filter(
                task_id__in=[task.pk for task in part]
            ).values_list("task_id", "version", "shapes")
        }
        found = self.detector.detect_stream(
            [image_of(task) for task in part],
            conf=PREDICT_CONF,
            # The NMS IoU recorded at start: a sensitivity changed while queued does not count.
            iou=self.evaluation.iou,
            max_det=MAX_DET,
            tile=self.evaluation.tile,
        )
        with closing(found):
            for task, result in zip(part, found, strict=True):
                version, shapes = annotations.get(task.pk, (None, []))
                self.digest.update(f"{task.pk}:{version};".encode())
                self.approved += 1
                if isinstance(result, Exception):
                    self._broken(task, failure_reason(result))
                    continue
                if not size_known(task):
                    note_size(task, (result.width, result.height))
                truths = self._truths(shapes)
                predictions = self._predictions(result)
                self._keep(
                    task.pk, Sample(task.pk, [box for box, _id in truths], predictions), truths
                )
                sample = Sample(
                    task.pk, [box for box, _id in truths if box.label in self.labels], predictions
                )
                self.images += 1
                self.progress.step()
                yield sample

    def _broken(self, task: Task, reason: str) -> None:
        self.broken += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"task": task.pk, "error": reason})
        self.progress.step(failed=1)

    def _truths(self, shapes: Sequence[dict[str, Any]]) -> list[tuple[Box, str]]:
        """Every readable shape of the annotation, each label's: the findings see them all
        (a prediction on a shape of a label no class maps to is not "extra"); `evaluate` sees
        only the mapped labels', and the others are counted in ``not_evaluated``."""
        truths = []
        for data in shapes or []:
            try:
                shape = Shape.from_dict(data)
            except (ShapeError, TypeError, ValueError, KeyError):
                continue
            if shape.label not in self.labels:
                self.not_evaluated[shape.label] += 1
            truths.append((shape_box(shape, shape.label), shape.id or ""))
        return truths

    def _predictions(self, result: Detections) -> list[Box]:
        """The detections as boxes of the labels their classes become; classes that become one
        label are suppressed among themselves at the run's IoU first (`Detections.merged_by`),
        so a second class's box on one defect is no false positive."""
        boxes = []
        for shape in result.merged_by(self.classes, self.evaluation.iou).shapes():
            label = self.classes[shape.label] if 0 <= shape.label < len(self.classes) else None
            if label is None:
                continue
            clipped = shape.clipped(result.width, result.height)
            x1, y1, x2, y2 = clipped.bbox()
            if x2 > x1 and y2 > y1:
                boxes.append(shape_box(clipped, label, float(shape.score or 0.0)))
        return boxes

    def _keep(self, task_id: int, sample: Sample, truths: list[tuple[Box, str]]) -> None:
        for finding in findings(sample, conf=self.evaluation.conf):
            truth = finding.truth
            if finding.kind != "extra" and truth is not None and truth.label not in self.labels:
                # The model cannot predict that label: whatever it says of such a shape (not
                # found, another class on it) is no sign of a label error. Suppressed.
                continue
            self.found += 1
            shape = next((sid for box, sid in truths if box == finding.truth), "")
            entry = (finding.score, -next(self.order), Found(task_id, finding, shape))
            if len(self.best) < KEEP:
                heapq.heappush(self.best, entry)
            elif entry[:2] > self.best[0][:2]:
                heapq.heapreplace(self.best, entry)

    def setup(self) -> dict[str, Any]:
        names = list(self.evaluation.version.names or []) if self.evaluation.version else []
        return {
            "classes": [
                [names[index] if index < len(names) else str(index), label]
                for index, label in enumerate(self.classes)
            ],
            "labels": sorted(self.labels),
            "not_evaluated": {str(label): n for label, n in sorted(self.not_evaluated.items())},
        }

    def ranked(self) -> list[models.Finding]:
        entries = sorted(self.best, key=lambda entry: (-entry[0], -entry[1]))
        return [
            models.Finding(
                organization_id=self.evaluation.organization_id,
                evaluation_id=self.evaluation.pk,
                task_id=found.task,
                rank=rank,
                kind=found.finding.kind,
                score=found.finding.score,
                truth_label=found.finding.truth.label if found.finding.truth else None,
                predicted_label=found.finding.prediction.label
                if found.finding.prediction
                else None,
                truth_box=_box(found.finding.truth),
                predicted_box=_box(found.finding.prediction),
                predicted_score=found.finding.prediction.score
                if found.finding.prediction
                else None,
                truth_shape=found.shape,
                iou=found.finding.iou,
            )
            for rank, (_score, _order, found) in enumerate(entries, 1)
        ]


def run_evaluation(job: Job, progress: Progress) -> dict[str, Any]:
    """The job's handler (see the module docstring)."""
    evaluation = (
        Evaluation.objects.select_related("project", "version__model")
        .filter(pk=job.params.get("evaluation"))
        .first()
    )
    if evaluation is None:
        raise NotFound(_("The evaluation was deleted."))
    version = evaluation.version
    if version is None:
        raise NotFound(_("The model version was deleted."))
    # A retry starts again: what an earlier attempt left goes.
    models.Finding.objects.filter(evaluation=evaluation).delete()
    Evaluation.objects.filter(pk=evaluation.pk).update(
        state=EvaluationState.RUNNING, error="", error_code="", finished_at=None
    )
    classes = label_of_class(evaluation.project, version)
    collector = Collector(evaluation, classes, progress, load_detector(version))
    progress.total(approved_tasks(evaluation.project).count())
    progress.at(0)
    report = evaluate(
        collector.samples(), sorted(collector.labels), conf=evaluation.conf, max_det=MAX_DET
    )
    progress.flush()  # a cancel asked for meanwhile wins over writing the report
    with transaction.atomic():
        if not Evaluation.objects.select_for_update().filter(pk=evaluation.pk).exists():
            raise NotFound(_("The evaluation was deleted."))
        models.Finding.objects.filter(evaluation=evaluation).delete()
        models.Finding.objects.bulk_create(collector.ranked(), batch_size=1000)
        Evaluation.objects.filter(pk=evaluation.pk).update(
            state=EvaluationState.DONE,
            report=report.to_json(),
            approved=collector.approved,
            approved_hash=collector.digest.hexdigest(),
            images=collector.images,
            broken=collector.broken,
            errors=collector.errors,
            setup=collector.setup(),
            findings_found=collector.found,
            finished_at=timezone.now(),
        )
    return {
        "evaluation": evaluation.pk,
        "images": collector.images,
        "broken": collector.broken,
        "findings": len(collector.best),
        "map50": report.map50,
        "map50_95": report.map50_95,
    }


def on_job_finished(sender: Any, job_id: int, kind: str, state: str, **_kwargs: Any) -> None:
    """An evaluation whose job failed or was cancelled fails with it (one that finished its
    report first stays done)."""
    if kind != KIND or state == JobState.SUCCEEDED:
        return
    job = Job.objects.filter(pk=job_id).only("error").first()
    cancelled = state == JobState.CANCELLED
    message = (job.error if job else "") or (
        _("The evaluation was cancelled.") if cancelled else _("The evaluation failed.")
    )
    Evaluation.objects.filter(job_id=job_id).exclude(state=EvaluationState.DONE).update(
        state=EvaluationState.FAILED,
        error_code="cancelled" if cancelled else "failed",
        error=message,
        finished_at=timezone.now(),
    )
