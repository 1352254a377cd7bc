"""The annotation workspace page: the configuration the canvas module starts from."""

from __future__ import annotations

from typing import Any

from django.db.models import Sum
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.urls import reverse

from defectlab.insight import findings
from defectlab.labeling.models import (
    Annotation,
    AnnotationVersion,
    Issue,
    Review,
    Task,
    TaskStatus,
    Verdict,
)
from defectlab.labeling.proposals import current_fates, fates_by_shape
from defectlab.labeling.services import is_viewable
from defectlab.labeling.tasklist import neighbours
from defectlab.media.services import signed_url
from defectlab.tenancy.models import User
from defectlab.tenancy.viewsets import acting_user
from defectlab.web.canvas_strings import canvas_strings


def workspace_config(request: HttpRequest, task: Task, mode: str) -> dict[str, Any]:
    project = task.project
    previous, following = neighbours(task, acting_user(request))
    annotation = Annotation.objects.filter(task=task).first()
    rejection = (
        Review.objects.filter(task=task, verdict=Verdict.REJECT).order_by("-id").first()
        if task.status == TaskStatus.REJECTED
        else None
    )
    # Only a guess, to fetch its image ahead: the server reserves what really comes next.
    likely_next = (
        Task.objects.filter(project=project, id__gt=task.pk, status=TaskStatus.NEW)
        .order_by("id")
        .only("id", "image")
        .first()
    )
    reserve_url = "project-next-review" if mode == "review" else "project-next-task"
    return {
        "task": {
            "id": task.pk,
            "width": task.width,
            "height": task.height,
            "imageUrl": signed_url(task.pk, "image") if is_viewable(task) else None,
            "fileName": task.file_name,
            "status": task.status,
        },
        "project": {
            "id": project.pk,
            "name": project.name,
            "labels": [
                {
                    "id": label.pk,
                    "name": label.name,
                    "color": label.color,
                    "hotkey": label.hotkey,
                    "attributes": label.attributes,
                }
                for label in project.labels.all()
            ],
            "tags": project.tags,
            "shapeTypes": project.shape_types,
            "instructions": project.instructions,
        },
        "annotation": {
            "version": annotation.version if annotation else None,
            "shapes": annotation.shapes if annotation else [],
            "tags": annotation.tags if annotation else [],
        },
        "predictions": _predictions(task, annotation),
        "reviewComment": rejection.comment if rejection else None,
        "issues": [issue_json(issue) for issue in task.issues.all()],
        "highlights": _highlights(request, task),
        "mode": mode,
        "api": {
            "annotation": reverse("task-annotation", args=[task.pk]),
            "reserve": reverse(reserve_url, args=[project.pk]),
            "release": reverse("task-release", args=[task.pk]),
            "review": reverse("task-review", args=[task.pk]),
            "issues": reverse("task-issues", args=[task.pk]),
            "issue": reverse("issue-detail", args=[0]).replace("/0/", "/{id}/"),
            "versions": reverse("task-annotation-versions", args=[task.pk]),
            "annotationOf": _per_task_url("task-annotation"),
        },
        "annotator": _annotator(task) if mode == "review" else None,
        "workspaceUrl": _per_task_url("review" if mode == "review" else "annotate"),
        "configUrl": _per_task_url(f"{mode}_config"),
        "likelyNext": {
            "id": likely_next.pk,
            "imageUrl": signed_url(likely_next.pk, "image") if is_viewable(likely_next) else None,
        }
        if likely_next
        else None,
        "neighbours": {"previous": previous, "next": following},
        "csrfToken": get_token(request),
        "strings": canvas_strings(),
    }


def _highlights(request: HttpRequest, task: Task) -> list[dict[str, Any]]:
    """What the canvas outlines as label errors: those of the finding named by ``?finding=<id>``
    (a link from the label-error list), none otherwise (nor in the JSON config a canvas asks for
    when it moves on to another task). The canvas ignores a highlight it cannot draw. Anything
    but 1 to 18 ASCII digits (``str.isdigit`` alone takes "²", which ``int`` refuses) is no
    finding."""
    finding = request.GET.get("finding", "")
    if not (finding.isascii() and finding.isdecimal() and len(finding) <= 18):
        return []
    return finding_highlights(task, int(finding), acting_user(request))


def finding_highlights(task: Task, finding_id: int, user: User) -> list[dict[str, Any]]:
    """The highlights of label-error finding ``finding_id`` on ``task``, as ``user`` may see them:
    ``[{"box": [x1, y1, x2, y2], "kind": "missing" | "wrong_class" | "loose_box" | "extra" |
    "duplicate", "text": "<translated one-line explanation>", "shape": "<annotation shape id or
    ''>"}]`` in image pixels (docs/api.md, the canvas's ``highlights``); none for a finding of
    another task or organization (`defectlab.insight.findings.highlights`)."""
    return findings.highlights(task, finding_id, user)


def issue_json(issue: Issue) -> dict[str, Any]:
    """An issue as the canvas reads it (the API's form, in the canvas's words)."""
    return {
        "id": issue.pk,
        "point": [issue.x, issue.y],
        "shape": issue.shape or None,
        "box": issue.box,
        "message": issue.message,
        "resolved": issue.resolved_at is not None,
    }


def _predictions(task: Task, annotation: Annotation | None) -> list[dict[str, Any]]:
    """The task's newest predictions, each shape with its fate: accepted, changed or dropped once
    someone decided it (the canvas does not offer it again), null while undecided."""
    fates = fates_by_shape(current_fates(annotation))
    return [
        {
            "id": prediction.pk,
            "modelName": prediction.model_name,
            "modelVersion": prediction.model_version,
            "shapes": prediction.shapes,
            "fates": [
                fates.get(prediction.pk, {}).get(index) for index in range(len(prediction.shapes))
            ],
        }
        for prediction in task.predictions.all()[:5]
    ]


def _annotator(task: Task) -> dict[str, Any] | None:
    """Who submitted the work under review and the working time they spent on it: the lead time
    of the versions they saved (a reviewer's corrections are the reviewer's time, not theirs)."""
    submitter = task.submitted_by
    if submitter is None:
        return None
    seconds = AnnotationVersion.objects.filter(annotation__task=task, author=submitter).aggregate(
        total=Sum("lead_time")
    )["total"]
    return {"name": submitter.name or submitter.email, "seconds": round(seconds or 0.0)}


def _per_task_url(name: str) -> str:
    """The URL of page ``name`` with "{id}" where the task id goes."""
    return reverse(name, args=[0]).replace("/0/", "/{id}/")
