"""Model evaluation's services: starting one (a job, `runs`), deleting one, the approved tasks
it runs on, and comparing two evaluations of a project.

Which version. A version number or an alias of one of the organization's models, resolved when
the evaluation starts (as pre-annotation does): the whole run uses that version.

Which thresholds. mAP needs the whole precision–recall curve, so the model runs at a low
confidence (``PREDICT_CONF``, as COCO's evaluation does) with at most ``MAX_DET`` detections an
image. Precision, recall and the confusion matrix are read at ``conf``: the one chosen when the
evaluation starts, else the model's (`registry.thresholds`: the organization's sensitivity of
the model over the version's defaults). The detector's NMS IoU is the model's too.

Which labels. The project's mapping of the model's classes (`inference.mapping`): a class mapped
to no label is left out. The annotation's shapes of labels no class maps to are kept out of the
metrics, counted and named (`Evaluation.setup`: the mapping used, the labels evaluated and
``not_evaluated`` {label: shapes}; the report page says "Not evaluated: …"). They still count
as ground truth for the label-error finding, so a prediction on such a shape is no "extra"; a
finding about such a shape (not found, another class on it) is suppressed: the model cannot
predict that label, so its disagreement there says nothing about the label.

Which tasks. The project's approved tasks, their current annotation the ground truth. Each
evaluation keeps how many there were and a hash of their (task id, annotation version) list, so
a comparison says when the two ran on different ground truth.

A project without approved tasks, or a model none of whose classes maps to a label of the
project, is refused at start (there would be nothing to measure)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from defectlab.errors import Invalid, NotFound
from defectlab.evaluation import Report
from defectlab.inference import registry
from defectlab.inference.mapping import class_map, project_model
from defectlab.inference.models import DetectionModel, ModelVersion
from defectlab.inference.preannotation import resolve_version
from defectlab.insight.models import Evaluation, EvaluationState
from defectlab.jobs.models import FINISHED, Job
from defectlab.jobs.services import cancel_job, start_job
from defectlab.labeling.models import Label, Project, Task, TaskStatus
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import User
from defectlab.tenancy.roles import Can
from defectlab.tenancy.services import record, require

KIND = "model_evaluation"
PREDICT_CONF = 0.001
MAX_DET = 100


def approved_tasks(project: Project) -> Any:
    return Task.objects.filter(project=project, status=TaskStatus.APPROVED)


def approved_snapshot(project: Project) -> tuple[int, str]:
    """How many approved tasks the project has and a hash of their (task id, annotation
    version) list: equal hashes mean the same ground truth."""
    rows = (
        approved_tasks(project)
        .order_by("id")
        .values_list("id", "annotation__version")
        .iterator(chunk_size=2000)
    )
    digest, count = hashlib.sha256(), 0
    for task_id, version in rows:
        digest.update(f"{task_id}:{version};".encode())
        count += 1
    return count, digest.hexdigest()


def label_of_class(project: Project, version: ModelVersion) -> list[int | None]:
    """Each class index of ``version`` → the project label its detections count as (None:
    left out), by the project's mapping for the version's model."""
    names = list(version.names or [])
    mapping = class_map(project, names, project_model(project, version.model).classes)
    return [mapping.get(name) for name in names]


def start_evaluation(
    project: Project,
    user: User | None,
    *,
    model: DetectionModel,
    version: int | None = None,
    alias: str | None = None,
    conf: float | None = None,
    tile: bool | None = None,
) -> Evaluation:
    """Evaluate ``model``'s version (a ``version`` number or an ``alias``) against the
    project's approved annotations, as a job (managers)."""
    if user is not None:
        require(user, project.organization_id, Can.MANAGE_PROJECTS)
    if model.organization_id != project.organization_id:
        raise NotFound(_("Not found."))
    chosen = resolve_version(model, version=version, alias=alias)
    if conf is not None:
        conf = registry.clean_sensitivity(conf, None)["conf"]
    if not approved_tasks(project).exists():
        raise Invalid(
            _("This project has no approved tasks yet: a model is evaluated against them."),
            code="no_approved_tasks",
        )
    if not any(label is not None for label in label_of_class(project, chosen)):
        raise Invalid(
            _("None of the model's classes becomes a label of this project; map them first."),
            code="no_mapped_classes",
        )
    model_conf, iou, _max_det = registry.thresholds(chosen)
    with transaction.atomic():
        evaluation = Evaluation.objects.create(
            organization_id=project.organization_id,
            project=project,
            version=chosen,
            model_name=model.name,
            version_number=chosen.number,
            alias=alias or "",
            conf=conf if conf is not None else model_conf,
            conf_chosen=conf is not None,
            iou=iou,
            tile=project_model(project, model).tile if tile is None else bool(tile),
            created_by=user,
        )
        job = start_job(
            project.organization,
            KIND,
            params={"evaluation": evaluation.pk},
            user=user,
            project=project,
        )
        evaluation.job = job
        evaluation.save(update_fields=["job"])
        record(
            None,
            AuditAction.EVALUATION_STARTED,
            organization=project.organization_id,
            target=project,
            actor=user,
            data={
                "evaluation": evaluation.pk,
                "model": model.pk,
                "number": chosen.number,
                "alias": alias or "",
                "job": job.pk,
            },
        )
    return evaluation


def delete_evaluation(evaluation: Evaluation, user: User | None) -> None:
    """Delete an evaluation and its findings (managers); a run still going is stopped."""
    if user is not None:
        require(user, evaluation.organization_id, Can.MANAGE_PROJECTS)
    with transaction.atomic():
        job = evaluation.job
        if job is not None and job.state not in FINISHED:
            cancel_job(job, user)
        record(
            None,
            AuditAction.EVALUATION_DELETED,
            organization=evaluation.organization_id,
            target=evaluation,
            actor=user,
            data={
                "project": evaluation.project_id,
                "model": evaluation.model_name,
                "number": evaluation.version_number,
            },
        )
        evaluation.delete()


def retry_refusal(job: Job) -> str | None:
    """Why an evaluation's job cannot run again (registered with its kind): the evaluation,
    or the model version it ran, was deleted since (a retry would fail again). None: it can."""
    evaluation = Evaluation.objects.filter(pk=job.params.get("evaluation")).first()
    if evaluation is None:
        return _("The evaluation was deleted.")
    if evaluation.version_id is None:
        return _("The model version was deleted: start a new evaluation with another version.")
    return None


def report_of(evaluation: Evaluation) -> Report | None:
    """The evaluation's report, once it is done."""
    if evaluation.state != EvaluationState.DONE or not evaluation.report:
        return None
    return Report.from_json(evaluation.report)


# ---------------------------------------------------------------------------- comparing


@dataclass(frozen=True)
class ClassDelta:
    label: int
    a: dict[str, Any] | None  # the class's row of each report (None: not in that one)
    b: dict[str, Any] | None
    delta: dict[str, float | None]  # b − a of each measure (None where either is missing)


@dataclass(frozen=True)
class Comparison:
    a: Evaluation
    b: Evaluation
    same_ground_truth: bool
    setup_differences: list[str]  # of `SETUP`, what differs (empty: the same setup)
    overall: dict[str, float | None]  # "map50", "map50_95": b − a
    classes: list[ClassDelta]


SETUP = ("conf", "tile", "labels", "mapping", "images")


def setup_differences(a: Evaluation, b: Evaluation) -> list[str]:
    """What of the run's setup differs between two evaluations: the confidence threshold, the
    tiling, the labels evaluated, the mapping (a class name both models have mapped to other
    labels) and the images evaluated (``images``, ``broken``: equal approved tasks can still
    differ in which images could be read)."""
    setup_a, setup_b = a.setup or {}, b.setup or {}
    classes_a = {name: label for name, label in setup_a.get("classes", [])}
    classes_b = {name: label for name, label in setup_b.get("classes", [])}
    differ = {
        "conf": a.conf != b.conf,
        "tile": a.tile != b.tile,
        "labels": setup_a.get("labels") != setup_b.get("labels"),
        "mapping": any(classes_a[name] != classes_b[name] for name in classes_a.keys() & classes_b),
        "images": (a.images, a.broken) != (b.images, b.broken),
    }
    return [key for key in SETUP if differ[key]]


MEASURES = ("ap50", "ap50_95", "precision", "recall", "best_f1", "best_conf")


def _minus(b: Any, a: Any) -> float | None:
    return None if a is None or b is None else round(float(b) - float(a), 6)


def compare(a: Evaluation, b: Evaluation) -> Comparison:
    """Evaluation ``b`` against ``a`` (both done, of one project): per class, b − a."""
    if a.project_id != b.project_id:
        raise Invalid(
            _("Only evaluations of the same project can be compared."), code="other_project"
        )
    if a.state != EvaluationState.DONE or b.state != EvaluationState.DONE:
        raise Invalid(_("Both evaluations must have finished."), code="not_done")
    first, second = a.report, b.report
    labels = sorted({int(key) for key in (*first["classes"], *second["classes"])})
    rows = []
    for label in labels:
        row_a, row_b = first["classes"].get(str(label)), second["classes"].get(str(label))
        rows.append(
            ClassDelta(
                label,
                row_a,
                row_b,
                {m: _minus((row_b or {}).get(m), (row_a or {}).get(m)) for m in MEASURES},
            )
        )
    return Comparison(
        a,
        b,
        a.approved_hash == b.approved_hash,
        setup_differences(a, b),
        {key: _minus(second.get(key), first.get(key)) for key in ("map50", "map50_95")},
        rows,
    )


def label_names(project: Project, ids: Iterable[int] | None = None) -> dict[int, str]:
    """The project's label names by id (a label deleted since: "#id")."""
    names = dict(Label.objects.filter(project=project).values_list("id", "name"))
    return names | {label: f"#{label}" for label in ids or () if label not in names}


def aliases_now(evaluations: Iterable[Evaluation]) -> Mapping[int, list[str]]:
    """The aliases that name each evaluation's version now (by evaluation id)."""
    found: dict[int, list[str]] = {}
    for evaluation in evaluations:
        version = evaluation.version
        found[evaluation.pk] = (
            sorted(version.aliases.values_list("name", flat=True)) if version else []
        )
    return found
