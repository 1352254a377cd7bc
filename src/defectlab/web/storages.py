"""A project's storages page: S3 / MinIO connections (a source feeds tasks, a target receives
annotations), with "test connection" in plain words, sync, and removal."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from defectlab.errors import DefectLabError, Invalid, NotFound
from defectlab.labeling.models import Project
from defectlab.media import connections
from defectlab.media.models import Encryption, MediaMode, StorageConnection, StorageRole
from defectlab.tenancy.roles import Can
from defectlab.tenancy.viewsets import acting_user
from defectlab.transfer.sync import start_sync
from defectlab.web.access import role_allows, scoped_or_404


@login_required
@require_http_methods(["GET", "POST"])
def project_storages(request: HttpRequest, pk: int) -> HttpResponse:
    project = scoped_or_404(Project.objects.select_related("organization"), request, pk=pk)
    if not role_allows(request, project.organization_id, Can.MANAGE_PROJECTS):
        return redirect("project", project.pk)
    problems: list[dict[str, str]] | None = None
    form: QueryDict | dict[str, Any] = {}
    if request.method == "POST":
        form = request.POST
        try:
            outcome = _act(request, project)
        except DefectLabError as refusal:
            messages.error(request, refusal.message)
        else:
            if isinstance(outcome, HttpResponse):
                return outcome
            problems = outcome
    return render(
        request,
        "web/storages.html",
        {
            "project": project,
            "storages": StorageConnection.objects.filter(project=project)
            .select_related("last_sync_job")
            .order_by("role", "name"),
            "roles": StorageRole.choices,
            "encryptions": Encryption.choices,
            "media_modes": MediaMode.choices,
            "form": form,
            "problems": problems,
            "current_organization_id": project.organization_id,
        },
    )


def _act(request: HttpRequest, project: Project) -> HttpResponse | list[dict[str, str]]:
    """Run the form's action: a response (redirect) or, for a test, the problems found."""
    data = request.POST
    action = data.get("action", "")
    if action in ("sync", "delete", "test_saved"):
        connection = StorageConnection.objects.filter(project=project, pk=data.get("storage") or 0)
        existing = connection.first()
        if existing is None:
            raise NotFound(_("Not found."))
        if action == "sync":
            job = start_sync(existing, acting_user(request))
            return redirect("job", job.pk)
        if action == "delete":
            connections.delete_connection(existing, acting_user(request))
            messages.success(request, _("The storage was removed; its tasks stay."))
            return redirect("project_storages", project.pk)
        return connections.connection_problems(existing)
    fields = _fields(data)
    secret = data.get("secret_key", "")
    if action == "test":
        draft = connections.draft_connection(
            project, role=data.get("role", ""), secret_key=secret, **fields
        )
        return connections.connection_problems(draft, secret_key=secret)
    if action == "add":
        created = connections.create_connection(
            project, acting_user(request), role=data.get("role", ""), secret_key=secret, **fields
        )
        messages.success(request, _("The storage %(name)s was added.") % {"name": created.name})
        return redirect("project_storages", project.pk)
    raise Invalid(_("Unknown action."))


def _fields(data: QueryDict) -> dict[str, Any]:
    public: dict[str, str] = {}
    for number, line in enumerate(data.get("public_endpoints", "").splitlines(), start=1):
        if not line.strip():
            continue
        host, sep, url = line.partition("=")
        if not sep:
            raise Invalid(
                _("Line %(row)s of the public endpoints: write host=endpoint URL.")
                % {"row": number}
            )
        public[host.strip()] = url.strip()
    return {
        "name": data.get("name", ""),
        "endpoint_url": data.get("endpoint_url", ""),
        "bucket": data.get("bucket", ""),
        "prefix": data.get("prefix", ""),
        "region": data.get("region", "") or "us-east-1",
        "path_style": data.get("path_style") == "on",
        "public_endpoints": public,
        "sse": data.get("sse", "none"),
        "kms_key_id": data.get("kms_key_id", ""),
        "access_key": data.get("access_key", ""),
        "media_mode": data.get("media_mode", "presign"),
    }
