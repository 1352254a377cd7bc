"""The jobs page: every job of an organization with a live progress bar, its speed and errors,
and buttons to cancel or retry."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from defectlab.errors import DefectLabError
from defectlab.jobs import kinds, services
from defectlab.jobs.api import job_rate
from defectlab.jobs.models import FINISHED, Job
from defectlab.tenancy.models import Organization
from defectlab.tenancy.viewsets import acting_user
from defectlab.web.access import scoped_or_404

SHOWN = 50


def job_row(job: Job, *, may_steer: bool = False) -> dict[str, Any]:
    """What the pages show of a job: its name, how far it is, how fast, what may be done (and
    why a job that ended cannot be retried, when its kind says so)."""
    refusal = services.retry_refusal(job)
    return {
        "job": job,
        "kind": kinds.title(job.kind),
        "percent": round(100 * job.done / job.total, 1) if job.total else None,
        "rate": job_rate(job),
        "may_steer": may_steer,
        "finished": job.state in FINISHED,
        "retryable": services.may_run_again(job) and refusal is None,
        "retry_refusal": refusal or "",
    }


def _rows(request: HttpRequest, organization: Organization) -> dict[str, Any]:
    jobs = list(
        Job.objects.filter(organization=organization)
        .select_related("started_by", "project")
        .order_by("-id")[:SHOWN]
    )
    rows = [job_row(job, may_steer=services.may_steer(request.user, job)) for job in jobs]
    return {
        "organization": organization,
        "rows": rows,
        # The table polls while something is still moving, and stops once all is done.
        "active": any(not row["finished"] for row in rows),
        "current_organization_id": organization.pk,
    }


@login_required
def jobs_page(request: HttpRequest, pk: int) -> HttpResponse:
    organization = scoped_or_404(Organization.objects.all(), request, pk=pk)
    context = _rows(request, organization)
    if request.headers.get("HX-Request"):
        return render(request, "web/_job_rows.html", context)
    return render(request, "web/jobs.html", context)


@login_required
@require_POST
def job_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    job = scoped_or_404(Job.objects.all(), request, pk=pk)
    try:
        services.require_steer(request.user, job)
        if action == "cancel":
            services.cancel_job(job, acting_user(request))
            messages.success(request, _("The job was asked to stop."))
        else:
            services.retry_job(job, acting_user(request))
            messages.success(request, _("The job was started again."))
    except DefectLabError as refusal:
        messages.error(request, refusal.message)
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect("jobs", job.organization_id)
