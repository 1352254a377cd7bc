"""A model's sensitivity page: a quality lead picks a version (or an alias) and one of the
organization's projects, starts a preview (a job: `inference.sensitivity`), then moves the
confidence and IoU sliders and sees the boxes on the sample images change at once, in the
browser (static/defectlab/sensitivity.js filters the job's candidates as the engine would);
managers save the chosen values as the organization's thresholds for the model, or clear them.

The page follows a running preview by htmx polling, and shows itself whole again once the
preview is done. Without ``?job=`` it shows the model's most recent preview."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from defectlab.errors import DefectLabError, Invalid
from defectlab.inference import registry, sensitivity
from defectlab.inference.models import DetectionModel, ModelVersion, VersionState
from defectlab.jobs.models import Job, JobState
from defectlab.labeling.models import Project, Task
from defectlab.labeling.services import is_viewable
from defectlab.media.services import signed_url
from defectlab.tenancy.roles import Can, allows
from defectlab.tenancy.services import role_in
from defectlab.tenancy.viewsets import acting_user
from defectlab.web.access import role_allows, scoped_or_404
from defectlab.web.jobs import job_row

MANAGE = Can.MANAGE_PROJECTS


@login_required
@require_http_methods(["GET", "POST"])
def model_sensitivity(request: HttpRequest, pk: int) -> HttpResponse:
    model = scoped_or_404(DetectionModel.objects.select_related("organization"), request, pk=pk)
    job = _job(request, model)
    if request.method == "POST":
        return _act(request, model, job)
    response = render(request, "web/model_sensitivity.html", _context(request, model, job))
    if request.headers.get("HX-Request") and (job is None or job.finished):
        # The preview the page was following has ended: the whole page again, with its images.
        response["HX-Refresh"] = "true"
    return response


def _job(request: HttpRequest, model: DetectionModel) -> Job | None:
    """The preview ``?job=`` names (the model's own, else 404), or the model's latest."""
    raw = request.GET.get("job") or request.POST.get("job") or ""
    if raw.isascii() and raw.isdecimal():
        job = scoped_or_404(Job.objects.select_related("started_by"), request, pk=int(raw))
        if job.kind != sensitivity.KIND or job.params.get("model") != model.pk:
            raise Http404
        return job
    return sensitivity.latest_preview(model)


def _act(request: HttpRequest, model: DetectionModel, job: Job | None) -> HttpResponse:
    page = reverse("model_sensitivity", args=[model.pk])
    action = request.POST.get("action", "")
    capability = Can.REVIEW if action == "preview" else MANAGE
    if not role_allows(request, model.organization_id, capability):
        return redirect(page)
    user = acting_user(request)
    try:
        if action == "preview":
            job = _start(request, model)
            messages.success(request, _("The preview has started; this page follows it."))
        elif action == "save":
            registry.set_sensitivity(
                model, user, conf=request.POST.get("conf"), iou=request.POST.get("iou")
            )
            messages.success(request, _("Saved: detections with this model use these values."))
        elif action == "reset":
            registry.set_sensitivity(model, user, conf=None, iou=None)
            messages.success(request, _("Cleared: detections use each version's own values again."))
        else:
            raise Invalid(_("Unknown action."))
    except DefectLabError as refusal:
        messages.error(request, refusal.message)
    return redirect(f"{page}?job={job.pk}" if job is not None else page)


def _start(request: HttpRequest, model: DetectionModel) -> Job:
    raw = request.POST.get("project", "")
    project = Project.objects.filter(
        organization_id=model.organization_id,
        pk=int(raw) if raw.isascii() and raw.isdecimal() else 0,
    ).first()
    if project is None:
        raise Invalid(_("Choose a project."))
    kind, _sep, name = request.POST.get("run", "").partition(":")
    return sensitivity.start_preview(
        model,
        acting_user(request),
        project=project,
        version=int(name) if kind == "version" and name.isascii() and name.isdecimal() else None,
        alias=name if kind == "alias" else None,
    )


def _runs(model: DetectionModel) -> list[dict[str, Any]]:
    """What can be previewed: the aliases naming a ready version, then each ready version."""
    ready = list(model.versions.filter(state=VersionState.READY).order_by("-number"))
    numbers = {version.pk: version.number for version in ready}
    aliases = [alias for alias in model.aliases.order_by("name") if alias.version_id in numbers]
    return [
        {"value": f"alias:{alias.name}", "alias": alias.name, "number": numbers[alias.version_id]}
        for alias in aliases
    ] + [{"value": f"version:{v.number}", "number": v.number, "notes": v.notes} for v in ready]


def _context(request: HttpRequest, model: DetectionModel, job: Job | None) -> dict[str, Any]:
    runs = _runs(model)
    version = _version_of(model, job, runs)
    conf, iou, max_det = registry.thresholds(version) if version else (0.25, 0.7, 300)
    params = job.params if job is not None else {}
    chosen_run = (
        f"alias:{params['alias']}" if params.get("alias") else f"version:{params.get('number')}"
    )
    role = role_in(request.user, model.organization_id)
    return {
        "organization": model.organization,
        "model": model,
        "runs": runs,
        "run": chosen_run if job is not None else (runs[0]["value"] if runs else ""),
        "projects": Project.objects.filter(organization_id=model.organization_id).order_by("name"),
        "project_id": job.project_id if job is not None else None,
        "version": version,
        "start": {"conf": min(max(conf, 0.01), 0.99), "iou": min(max(iou, 0.05), 1.0)},
        "max_det": max_det,
        "saved": model.conf is not None or model.iou is not None,
        "job": job,
        "row": job_row(job) if job is not None else None,
        "preview": _preview(job) if job is not None else None,
        "can_manage": allows(role, MANAGE),
        "can_preview": allows(role, Can.REVIEW),
        "current_organization_id": model.organization_id,
    }


def _version_of(
    model: DetectionModel, job: Job | None, runs: list[dict[str, Any]]
) -> ModelVersion | None:
    """The version the sliders start from: the preview's, else the first the page offers."""
    versions = model.versions.select_related("model")
    if job is not None:
        found = versions.filter(pk=job.params.get("version") or 0).first()
        if found is not None:
            return found
    if runs:
        return versions.filter(number=runs[0]["number"]).first()
    return None


def _preview(job: Job) -> dict[str, Any] | None:
    """What the page's script draws: the job's candidates, each image with its signed URL."""
    if job.state != JobState.SUCCEEDED:
        return None
    result = job.result or {}
    images = list(result.get("images", []))
    tasks = Task.objects.filter(
        organization_id=job.organization_id, pk__in=[image["task"] for image in images]
    ).only("id", "image")
    urls = {task.pk: signed_url(task.pk, "image") for task in tasks if is_viewable(task)}
    drawn = [image | {"url": urls.get(image["task"])} for image in images if "error" not in image]
    return {
        "version": result.get("version"),
        "alias": result.get("alias", ""),
        "nms": bool(result.get("nms", True)),
        "images": images,
        "drawn": drawn,
        "failed": [image for image in images if "error" in image],
        # What the script reads (in the order of the page's figures).
        "data": {
            "names": result.get("names", []),
            "nms": bool(result.get("nms", True)),
            "max_det": int(result.get("max_det", 300)),
            "images": drawn,
        },
    }
