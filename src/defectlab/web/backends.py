"""The organization's model backends page: the servers that speak Label Studio's ML-backend
protocol (``inference.backends``), each with its address, whether an Authorization header is set
(never the header), the address it fetches images from, the last check (up, down or not
checked, with its message and time) and the model version it last named.

Managers add, edit, check (optionally with a project: then ``/setup`` is tried too) and delete
them; everyone else of the organization reads. A check answers on the page that asked: ok and
the model version, or the problem with the rule that refused the address and where that rule
is lifted (the organization's network access page, or only the operator)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from defectlab.errors import DefectLabError, NotFound
from defectlab.inference import backends
from defectlab.inference.models import MLBackend
from defectlab.ingest.policy import OPERATOR_OPENABLE, ORGANIZATION_OPENABLE
from defectlab.labeling.models import Project
from defectlab.tenancy.models import Organization
from defectlab.tenancy.roles import allows
from defectlab.tenancy.services import role_in
from defectlab.tenancy.viewsets import acting_user
from defectlab.web.access import role_allows, scoped_or_404

MANAGE = backends.MANAGE


@login_required
@require_http_methods(["GET", "POST"])
def backends_page(request: HttpRequest, pk: int) -> HttpResponse:
    organization = scoped_or_404(Organization.objects.all(), request, pk=pk)
    checked: dict[str, Any] | None = None
    if request.method == "POST":
        if role_allows(request, organization.pk, MANAGE):
            try:
                checked = _act(request, organization)
            except DefectLabError as refusal:
                messages.error(request, refusal.message)
        if checked is None:
            return redirect("backends", organization.pk)
    rows = list(MLBackend.objects.filter(organization=organization).order_by("name"))
    public_urls = list(settings.PUBLIC_URLS)
    return render(
        request,
        "web/backends.html",
        {
            "organization": organization,
            "backends": rows,
            "projects": Project.objects.filter(organization=organization).order_by("name"),
            "checked": checked,
            "public_url": public_urls[0] if public_urls else "",
            "name_limit": backends.MAX_NAME,
            "note_limit": backends.MAX_NOTE,
            "can_manage": allows(role_in(request.user, organization.pk), MANAGE),
            "current_organization_id": organization.pk,
        },
    )


def _act(request: HttpRequest, organization: Organization) -> dict[str, Any] | None:
    """Do what the form asked; what a check found (to show on this page), or None."""
    user = acting_user(request)
    action = request.POST.get("action")
    if action == "add":
        made = backends.create_backend(
            organization,
            user,
            name=request.POST.get("name", ""),
            url=request.POST.get("url", ""),
            auth=request.POST.get("auth", ""),
            media_base_url=request.POST.get("media_base_url", ""),
            note=request.POST.get("note", ""),
        )
        messages.success(
            request, _("The model backend “%(name)s” was added.") % {"name": made.name}
        )
        return None
    backend = MLBackend.objects.filter(
        organization=organization, pk=_id(request.POST.get("backend"))
    ).first()
    if backend is None:
        raise NotFound(_("Not found."))
    if action == "edit":
        changes: dict[str, Any] = {
            name: request.POST.get(name, "") for name in ("name", "url", "media_base_url", "note")
        }
        if request.POST.get("auth", "").strip():  # empty keeps the header; the box removes it
            changes["auth"] = request.POST["auth"]
        elif request.POST.get("remove_auth"):
            changes["auth"] = ""
        backends.update_backend(backend, user, **changes)
        messages.success(request, _("The model backend was saved."))
    elif action == "delete":
        backends.delete_backend(backend, user)
        messages.success(
            request, _("The model backend “%(name)s” was deleted.") % {"name": backend.name}
        )
    elif action == "check":
        return _check(request, organization, backend)
    return None


def _check(request: HttpRequest, organization: Organization, backend: MLBackend) -> dict[str, Any]:
    project = None
    if request.POST.get("project"):
        project = Project.objects.filter(
            organization=organization, pk=_id(request.POST.get("project"))
        ).first()
        if project is None:
            raise NotFound(_("No such project in this organization."))
    health = backends.check(backend, acting_user(request), project=project)
    problem = health.problem
    rule = str((problem.details or {}).get("rule") or "") if problem else ""
    if rule in ORGANIZATION_OPENABLE:
        opens = "organization"
    elif rule in OPERATOR_OPENABLE:
        opens = "operator"
    else:
        opens = ""
    return {
        "backend": backend,
        "project": project,
        "ok": health.ok,
        "model_version": health.model_version,
        "problem": problem.message if problem else "",
        "code": problem.code if problem else "",
        "rule": rule if problem and problem.code == "backend_refused" else "",
        "opens": opens if problem and problem.code == "backend_refused" else "",
    }


def _id(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
