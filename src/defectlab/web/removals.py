"""Deleting from the pages: a project (confirmed by typing its name; a job finishes the work) and
the tasks selected in the project's table. Each asks in the browser first (``data-confirm``)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from defectlab.errors import DefectLabError, Invalid
from defectlab.labeling import services
from defectlab.labeling.models import Project, Task
from defectlab.tenancy import services as tenancy
from defectlab.tenancy.roles import Can
from defectlab.tenancy.viewsets import acting_user
from defectlab.web.access import scoped_or_404


@require_POST
def project_delete(request: HttpRequest, pk: int) -> HttpResponse:
    current = scoped_or_404(Project.objects.all(), request, pk=pk)
    try:
        tenancy.require(request.user, current.organization_id, Can.MANAGE_PROJECTS)
        if request.POST.get("name", "").strip() != current.name:
            raise Invalid(_("Type the project's name exactly to delete it."))
        job = services.delete_project(current, actor=acting_user(request))
    except DefectLabError as refusal:
        messages.error(request, refusal.message)
        return redirect("project_settings", current.pk)
    messages.success(
        request,
        _("Project %(name)s is deleted; its images are being removed (job %(job)s).")
        % {"name": current.name, "job": job.pk},
    )
    return redirect("organization", current.organization_id)


@require_POST
def tasks_delete(request: HttpRequest, pk: int) -> HttpResponse:
    current = scoped_or_404(Project.objects.all(), request, pk=pk)
    try:
        tenancy.require(request.user, current.organization_id, Can.MANAGE_PROJECTS)
        ids = [int(value) for value in request.POST.getlist("tasks") if value.isdigit()]
        tasks = list(Task.objects.filter(project=current, id__in=ids[:200]))
        if not tasks:
            raise Invalid(_("Select the tasks to delete first."))
        for task in tasks:
            services.delete_task(task, actor=acting_user(request))
    except DefectLabError as refusal:
        messages.error(request, refusal.message)
    else:
        count = len(tasks)
        messages.success(
            request,
            ngettext("%(count)s task deleted.", "%(count)s tasks deleted.", count)
            % {"count": count},
        )
    return redirect("project", current.pk)
