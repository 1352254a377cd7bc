"""The model registry's pages: an organization's models (with an upload that makes the model
if it is new), and a model's page: its versions (state, what was read from the file,
thresholds, notes, each editable by managers, and how annotators took its proposals: the
acceptance rate and per class what they kept, moved and deleted) and its aliases, moved with a
select.

An upload is checked at once (a refusal is a message and changes nothing); its check then runs
in the worker, and the model's page refreshes its versions while one is validating, and itself
once none is."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from defectlab.errors import DefectLabError, Invalid, NotFound
from defectlab.inference import acceptance, registry
from defectlab.inference.models import DetectionModel, ModelVersion, VersionState
from defectlab.tenancy.models import Organization
from defectlab.tenancy.roles import Can, allows
from defectlab.tenancy.services import role_in
from defectlab.tenancy.viewsets import acting_user
from defectlab.textlists import split_items
from defectlab.web.access import role_allows, scoped_or_404

MANAGE = Can.MANAGE_PROJECTS
# The output layouts the engine recognises, as people call them.
LAYOUTS = {
    "yolov5": gettext_lazy("YOLOv5 detection"),
    "yolov8": gettext_lazy("YOLOv8 / YOLO11 detection"),
    "end2end": gettext_lazy("End-to-end detection (YOLOv10, YOLO26)"),
    "segment": gettext_lazy("YOLOv8 / YOLO11 segmentation"),
    "segment_end2end": gettext_lazy("End-to-end segmentation (YOLO26)"),
}


def _may_manage(request: HttpRequest, organization_id: int) -> bool:
    return allows(role_in(request.user, organization_id), MANAGE)


def _number(value: str | None, name: str, kind: type = float) -> Any:
    if value is None or not value.strip():
        return None
    try:
        return kind(value.strip())
    except ValueError:
        raise Invalid(_("%(name)s must be a number.") % {"name": name}) from None


def _upload(request: HttpRequest, model: DetectionModel) -> ModelVersion:
    upload = request.FILES.get("file")
    if upload is None:
        raise Invalid(_("Choose the .onnx file to upload."))
    return registry.upload_version(
        model,
        acting_user(request),
        upload.read(),
        file_name=upload.name or "",
        notes=request.POST.get("notes", ""),
        names=split_items(request.POST.get("names", "")) or None,
        input_size=_number(request.POST.get("input_size"), "input_size", int),
    )


@login_required
@require_http_methods(["GET", "POST"])
def models_page(request: HttpRequest, pk: int) -> HttpResponse:
    organization = scoped_or_404(Organization.objects.all(), request, pk=pk)
    if request.method == "POST" and role_allows(request, organization.pk, MANAGE):
        try:
            name = request.POST.get("name", "").strip()
            with transaction.atomic():  # a refused file leaves no new, empty model behind
                model = DetectionModel.objects.filter(organization=organization, name=name).first()
                model = model or registry.create_model(
                    organization,
                    acting_user(request),
                    name=name,
                    description=request.POST.get("description", ""),
                )
                version = _upload(request, model)
            messages.success(
                request,
                _("Version %(number)s was uploaded and is being checked.")
                % {"number": version.number},
            )
            return redirect("model", model.pk)
        except DefectLabError as refusal:
            messages.error(request, refusal.message)
        return redirect("models", organization.pk)
    rows = list(
        DetectionModel.objects.filter(organization=organization)
        .prefetch_related("versions", "aliases__version")
        .order_by("name")
    )
    for row in rows:
        row.latest = max(row.versions.all(), key=lambda v: v.number, default=None)  # type: ignore[attr-defined]
    return render(
        request,
        "web/models.html",
        {
            "organization": organization,
            "models": rows,
            "can_manage": _may_manage(request, organization.pk),
            "current_organization_id": organization.pk,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def model_page(request: HttpRequest, pk: int) -> HttpResponse:
    model = scoped_or_404(DetectionModel.objects.select_related("organization"), request, pk=pk)
    if request.method == "POST":
        if role_allows(request, model.organization_id, MANAGE):
            try:
                _act(request, model)
            except DefectLabError as refusal:
                messages.error(request, refusal.message)
        return redirect("model", model.pk)
    versions = list(
        model.versions.select_related("uploaded_by").prefetch_related("aliases").order_by("-number")
    )
    taken = acceptance.acceptance_of_versions(versions)
    for version in versions:
        version.layout_label = LAYOUTS.get(version.layout, version.layout)
        version.acceptance = taken[version.pk]
    validating = any(v.state == VersionState.VALIDATING for v in versions)
    response = render(
        request,
        "web/model.html",
        {
            "organization": model.organization,
            "model": model,
            "versions": versions,
            "ready": [v for v in versions if v.state == VersionState.READY],
            "aliases": model.aliases.select_related("version").order_by("name"),
            "validating": validating,
            "can_manage": _may_manage(request, model.organization_id),
            "current_organization_id": model.organization_id,
        },
    )
    if request.headers.get("HX-Request") and not validating:
        # The check the page was following has ended: the whole page again, so the alias
        # forms offer the version that just became ready.
        response["HX-Refresh"] = "true"
    return response


def _act(request: HttpRequest, model: DetectionModel) -> None:
    """Do what the form asked."""
    user = acting_user(request)
    action = request.POST.get("action")
    if action == "upload":
        version = _upload(request, model)
        messages.success(
            request,
            _("Version %(number)s was uploaded and is being checked.") % {"number": version.number},
        )
    elif action == "alias":
        number = _number(request.POST.get("version"), "version", int)
        if number is None:
            raise Invalid(_("Choose a version."))
        registry.move_alias(model, user, request.POST.get("alias", ""), number)
        messages.success(request, _("The alias was moved."))
    elif action == "unalias":
        registry.delete_alias(model, user, request.POST.get("alias", ""))
        messages.success(request, _("The alias was removed."))
    elif action == "version":
        chosen = model.versions.filter(pk=_number(request.POST.get("id"), "id", int) or 0).first()
        if chosen is None:
            raise NotFound(_("Not found."))
        registry.update_version(
            chosen,
            user,
            notes=request.POST.get("notes", ""),
            conf=_number(request.POST.get("conf"), "conf"),
            iou=_number(request.POST.get("iou"), "iou"),
            max_det=_number(request.POST.get("max_det"), "max_det", int),
        )
        messages.success(request, _("The version was saved."))
