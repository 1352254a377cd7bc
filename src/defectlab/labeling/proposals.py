"""What became of the model's proposals on a task: each one shown to the annotator is accepted
as is, accepted and then changed, or dropped. The fates are kept with every annotation version
(AnnotationVersion.proposal_fates), so a decided proposal is not offered again when the task is
opened later, and a reviewer sees the submitted shapes rather than the proposals on top of them.

A fate names its proposal by the prediction's id and the shape's place in that prediction's
shapes. A save may say nothing about proposals (scripts, older clients): the fates decided so far
are carried over to the new version unchanged. A fate naming a prediction that is gone — a
model pre-annotated the task again after the canvas was opened, which replaces its undecided
prediction by a new one — is left out: the proposal no longer exists, and what the annotator
kept of it is in the shapes they saved."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from defectlab.errors import Invalid
from defectlab.labeling.models import Annotation, AnnotationVersion, Prediction, Task

FATES = ("accepted", "changed", "dropped")


def clean_fates(task: Task, data: Any) -> list[dict[str, Any]]:
    """The fates a client sent, checked: each names a shape of one of this task's predictions,
    once, with a known fate. None (said nothing) is an empty list."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise Invalid(_("Proposal fates must be a list."), code="invalid_proposals")
    sizes = {
        prediction_id: len(shapes)
        for prediction_id, shapes in Prediction.objects.filter(task=task).values_list(
            "id", "shapes"
        )
    }
    gone = _gone(task, data, sizes)
    cleaned: dict[tuple[int, int], dict[str, Any]] = {}
    for item in data:
        prediction = item.get("prediction") if isinstance(item, dict) else None
        index = item.get("index") if isinstance(item, dict) else None
        fate = item.get("fate") if isinstance(item, dict) else None
        if prediction in gone:
            continue
        if fate not in FATES:
            raise Invalid(
                _("A proposal's fate must be accepted, changed or dropped."),
                code="invalid_proposals",
            )
        if (
            not isinstance(prediction, int)
            or not isinstance(index, int)
            or not 0 <= index < sizes.get(prediction, 0)
        ):
            raise Invalid(
                _("This task has no proposal at index %(index)s of prediction %(prediction)s.")
                % {"index": index, "prediction": prediction},
                code="invalid_proposals",
            )
        cleaned[(prediction, index)] = {"prediction": prediction, "index": index, "fate": fate}
    return list(cleaned.values())


def _gone(task: Task, data: list[Any], sizes: dict[int, int]) -> set[int]:
    """Prediction ids named in ``data`` that are no longer in the task's organization (another
    task's prediction is a mistake, refused as one)."""
    named: set[int] = set()
    for item in data:
        prediction = item.get("prediction") if isinstance(item, dict) else None
        if isinstance(prediction, int) and prediction not in sizes:
            named.add(prediction)
    if not named:
        return set()
    present = Prediction.objects.filter(
        organization_id=task.organization_id, pk__in=named
    ).values_list("pk", flat=True)
    return named - set(present)


def merge_fates(earlier: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fates decided so far, with the newly sent ones replacing earlier word on the same
    proposal; ordered by prediction and index."""
    merged = {(fate["prediction"], fate["index"]): fate for fate in earlier}
    merged.update({(fate["prediction"], fate["index"]): fate for fate in new})
    return [merged[key] for key in sorted(merged)]


def current_fates(annotation: Annotation | None) -> list[dict[str, Any]]:
    """The fates stored with the annotation's current version (none before the first save)."""
    if annotation is None:
        return []
    row = (
        AnnotationVersion.objects.filter(annotation=annotation, version=annotation.version)
        .values_list("proposal_fates", flat=True)
        .first()
    )
    return list(row or [])


def version_fates(task: Task, version: int | None) -> list[dict[str, Any]]:
    """The fates kept with ``version`` of the task's annotation (none for no version)."""
    if not version:
        return []
    row = (
        AnnotationVersion.objects.filter(annotation__task=task, version=version)
        .values_list("proposal_fates", flat=True)
        .first()
    )
    return list(row or [])


def fates_by_shape(fates: list[dict[str, Any]]) -> dict[int, dict[int, str]]:
    """Fates looked up by prediction id, then by the shape's index in it."""
    found: dict[int, dict[int, str]] = {}
    for fate in fates:
        found.setdefault(fate["prediction"], {})[fate["index"]] = fate["fate"]
    return found
