"""A project's pre-annotation page (managers): run a ready version or an alias of one of the
organization's models on the project's tasks (all, the unlabeled ones, or those the task
table's filter shows), with tiling on or off; how the project uses the model (each class →
a project label or nothing, tiling by default, pre-annotating new tasks on import); and the
project's recent pre-annotation jobs. Also what a pre-annotation job's page shows of it.

The rules live in `defectlab.inference.preannotation`; this only reads the forms."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from defectlab.errors import DefectLabError, Invalid
from defectlab.inference import mapping, preannotation
from defectlab.inference.models import (
    DetectionModel,
    MLBackend,
    ModelAlias,
    ProjectModel,
    VersionState,
)
from defectlab.jobs.models import Job
from defectlab.labeling import tasklist
from defectlab.labeling.models import Project
from defectlab.tenancy.roles import Can
from defectlab.tenancy.viewsets import acting_user
from defectlab.web.access import role_allows, scoped_or_404
from defectlab.web.jobs import job_row

# The task table's filter parameters (its other parameters sort and page).
FILTER_KEYS = ("status", "label", "assignee", "has_annotation", "has_prediction")
RECENT = 10
NONE = "none"  # a class proposes nothing


@login_required
@require_http_methods(["GET", "POST"])
def project_preannotate(request: HttpRequest, pk: int) -> HttpResponse:
    project = scoped_or_404(Project.objects.select_related("organization"), request, pk=pk)
    if not role_allows(request, project.organization_id, Can.MANAGE_PROJECTS):
        return redirect("project", project.pk)
    data = request.POST if request.method == "POST" else request.GET
    models = list(
        DetectionModel.objects.filter(organization_id=project.organization_id)
        .prefetch_related("versions", Prefetch("aliases", ModelAlias.objects.order_by("name")))
        .order_by("name")
    )
    model = _chosen(project, models, data.get("model", ""))
    errors: dict[str, str] = {}
    action = request.POST.get("action", "")
    if request.method == "POST" and (model is not None or action == "backend"):
        try:
            return _act(request, project, model, action)
        except DefectLabError as refusal:
            errors[action] = refusal.message
    context = {
        "project": project,
        "models": models,
        "backends": MLBackend.objects.filter(organization_id=project.organization_id).order_by(
            "name"
        ),
        "model": model,
        "errors": errors,
        "jobs": _recent(project),
        "current_organization_id": project.organization_id,
    }
    if model is not None:
        context.update(_model_context(request, project, model, data, errors))
    return render(request, "web/preannotate.html", context)


def _chosen(project: Project, models: list[DetectionModel], raw: str) -> DetectionModel | None:
    """The model the page is about: the one asked for, else the one pre-annotating new tasks,
    else the first with a ready version, else the first."""
    for model in models:
        if str(model.pk) == raw:
            return model
    on_import = set(
        ProjectModel.objects.filter(project=project)
        .exclude(on_import="")
        .values_list("model_id", flat=True)
    )
    ready = [m for m in models if any(v.state == VersionState.READY for v in m.versions.all())]
    ordered = [*(m for m in models if m.pk in on_import), *ready, *models]
    return ordered[0] if ordered else None


def _filters(data: QueryDict) -> dict[str, str]:
    return {key: str(data.get(key)) for key in FILTER_KEYS if data.get(key)}


def _act(
    request: HttpRequest, project: Project, model: DetectionModel | None, action: str
) -> HttpResponse:
    data = request.POST
    user = acting_user(request)
    if action == "backend":
        backend = MLBackend.objects.filter(
            organization_id=project.organization_id, pk=_number(data.get("backend"))
        ).first()
        if backend is None:
            raise Invalid(_("Choose a model backend."))
        scope = data.get("scope", "all")
        job = preannotation.start_preannotation(
            project, user, backend=backend, scope=scope if scope in ("all", "unlabeled") else None
        )
        messages.success(request, _("Pre-annotation has started; this page follows it."))
        return redirect("job", job.pk)
    if model is None:
        raise Invalid(_("Unknown action."))
    if action == "start":
        kind, _sep, name = data.get("run", "").partition(":")
        scope = data.get("scope", "all")
        job = preannotation.start_preannotation(
            project,
            user,
            model=model,
            version=int(name)
            if kind == "version" and name.isdecimal() and name.isascii()
            else None,
            alias=name if kind == "alias" else None,
            scope=scope if scope != "filter" else None,
            filters=_filters(data) if scope == "filter" else None,
            tile=data.get("tile") == "on",
        )
        messages.success(request, _("Pre-annotation has started; this page follows it."))
        return redirect("job", job.pk)
    if action == "mapping":
        names = mapping.model_names(model)
        stored = mapping.project_model(project, model).classes
        classes: dict[str, Any] = mapping.class_map(project, names, stored)
        for name in names:  # a class the form leaves out keeps its label
            raw = data.get(f"class:{name}")
            if raw is not None:
                classes[name] = (
                    None if raw == NONE else int(raw) if raw.isascii() and raw.isdecimal() else raw
                )
        mapping.save_project_model(
            project,
            model,
            user,
            classes=classes,
            tile=data.get("tile") == "on",
            on_import=data.get("on_import", ""),
        )
        messages.success(request, _("The model's settings for this project were saved."))
        return redirect(f"{reverse('project_preannotate', args=[project.pk])}?model={model.pk}")
    raise Invalid(_("Unknown action."))


def _number(raw: str | None) -> int:
    return int(raw) if raw and raw.isascii() and raw.isdecimal() else 0


def _count(project: Project, params: dict[str, str], request: HttpRequest) -> dict[str, Any]:
    try:
        count, more = tasklist.task_count(project, params, acting_user(request))
    except DefectLabError:
        return {"count": 0, "more": False}
    return {"count": count, "more": more}


def _model_context(
    request: HttpRequest,
    project: Project,
    model: DetectionModel,
    data: QueryDict,
    errors: dict[str, str],
) -> dict[str, Any]:
    settings = mapping.project_model(project, model)
    names = mapping.model_names(model)
    mapped = mapping.class_map(project, names, settings.classes)
    retyped = "mapping" in errors  # a refused mapping is shown as it was chosen
    ready = sorted(
        (v for v in model.versions.all() if v.state == VersionState.READY),
        key=lambda v: -v.number,
    )
    aliases = list(model.aliases.all())
    ready_ids = {v.pk for v in ready}
    by_id = {v.pk: v for v in model.versions.all()}
    filters = _filters(data)
    runs = [
        {
            "value": f"alias:{alias.name}",
            "alias": alias.name,
            "number": by_id[alias.version_id].number,
        }
        for alias in aliases
        if alias.version_id in ready_ids
    ] + [{"value": f"version:{v.number}", "number": v.number, "notes": v.notes} for v in ready]
    return {
        "settings": settings,
        "classes": [
            {
                "name": name,
                "field": f"class:{name}",
                "chosen": data.get(f"class:{name}", "")
                if retyped
                else (NONE if mapped[name] is None else str(mapped[name])),
            }
            for name in names
        ],
        "labels": list(project.labels.all()),
        "ready": ready,
        "aliases": [
            {
                "name": alias.name,
                "version": by_id.get(alias.version_id),
                "ready": alias.version_id in ready_ids,
            }
            for alias in aliases
        ],
        "tile_default": data.get("tile") == "on" if retyped else settings.tile,
        "on_import": data.get("on_import", "") if retyped else settings.on_import,
        "filters": filters,
        "scope": data.get("scope") or ("filter" if filters else "all"),
        "counts": {
            "all": _count(project, {}, request),
            "unlabeled": _count(project, {"has_annotation": "false"}, request),
            "filter": _count(project, filters, request) if filters else None,
        },
        "runs": runs,
        "run": data.get("run") or (runs[0]["value"] if runs else ""),
    }


def _recent(project: Project) -> dict[str, Any]:
    jobs = (
        Job.objects.filter(project=project, kind=preannotation.KIND)
        .select_related("started_by")
        .order_by("-id")[:RECENT]
    )
    rows = [job_row(job) | {"summary": job_summary(job)} for job in jobs]
    return {"rows": rows, "active": any(not row["finished"] for row in rows)}


def job_summary(job: Job) -> dict[str, Any] | None:
    """What a pre-annotation job ran and did so far (None for a job of another kind): the model
    and version, the alias it was started by, its counts, and the tasks that failed."""
    if job.kind != preannotation.KIND:
        return None
    params, result = job.params, job.result or {}
    counts = result if "tasks" in result else result.get("counts", {})
    model = result.get("model") or result.get("backend")
    if model is None and params.get("backend"):
        backend = MLBackend.objects.filter(pk=params["backend"]).first()
        model = backend.name if backend is not None else ""
    elif model is None:
        found = DetectionModel.objects.filter(pk=params.get("model") or 0).first()
        model = found.name if found is not None else ""
    return {
        "model": model,
        "model_id": params.get("model"),
        "backend": bool(params.get("backend")),
        "version": result.get("version", params.get("number")),
        "alias": params.get("alias", ""),
        "on_import": bool(params.get("on_import")),
        "tile": bool(params.get("tile")),
        "tasks": counts.get("tasks", 0),
        "predictions": counts.get("predictions", 0),
        "shapes": counts.get("shapes", 0),
        "decided_kept": counts.get("decided_kept", 0),
        "failed": counts.get("failed", 0),
        "errors": counts.get("errors", []),
    }
