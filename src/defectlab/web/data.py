"""Data in and out of a project: upload images, import from URLs, import a dataset, export —
and the page of one job (its progress, the URLs that failed, the file to download)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods

from defectlab.datasets import FORMATS
from defectlab.errors import DefectLabError, Invalid
from defectlab.jobs import kinds
from defectlab.jobs.models import Job, JobState
from defectlab.jobs.services import may_steer
from defectlab.labeling.models import Project
from defectlab.tenancy.roles import Can
from defectlab.tenancy.viewsets import acting_user
from defectlab.transfer.datasetimport import start_dataset_import
from defectlab.transfer.exports import start_export
from defectlab.transfer.models import ImportState, UrlImportItem
from defectlab.transfer.services import import_by_reference, upload_images
from defectlab.transfer.urlimport import start_url_import, urls_from_file
from defectlab.web.access import role_allows, scoped_or_404
from defectlab.web.jobs import job_row
from defectlab.web.preannotate import job_summary

FAILURES_SHOWN = 500


@login_required
@require_http_methods(["GET", "POST"])
def project_data(request: HttpRequest, pk: int) -> HttpResponse:
    project = scoped_or_404(Project.objects.select_related("organization"), request, pk=pk)
    if not role_allows(request, project.organization_id, Can.MANAGE_PROJECTS):
        return redirect("project", project.pk)
    if request.method == "POST":
        try:
            return _act(request, project, request.POST.get("action", ""))
        except DefectLabError as refusal:
            messages.error(request, refusal.message)
            return redirect("project_data", project.pk)
    return render(
        request,
        "web/project_data.html",
        {
            "project": project,
            "formats": [(name, fmt.title) for name, fmt in FORMATS.items()],
            "import_formats": [
                (name, fmt.title) for name, fmt in FORMATS.items() if fmt.loader is not None
            ],
            "jobs": [
                job_row(job) for job in Job.objects.filter(project=project).order_by("-id")[:10]
            ],
            "task_counts": _task_counts(project),
            "current_organization_id": project.organization_id,
        },
    )


def _act(request: HttpRequest, project: Project, action: str) -> HttpResponse:
    user = acting_user(request)
    if action == "upload":
        files = [(f.name or "upload", f) for f in request.FILES.getlist("files")]
        if not files:
            raise Invalid(_("Choose one or more images or zip archives."))
        tasks = upload_images(project, files, user)
        messages.success(
            request,
            ngettext("%(count)s image was added.", "%(count)s images were added.", len(tasks))
            % {"count": len(tasks)},
        )
        return redirect("project", project.pk)
    if action == "import_urls":
        listed = request.FILES.get("list")
        if listed is not None:
            urls = urls_from_file(listed.name or "list.txt", listed.read())
        else:
            lines = (line.strip() for line in request.POST.get("urls", "").splitlines())
            urls = [line for line in lines if line and not line.startswith("#")]
        if request.POST.get("keep") == "reference":
            created = import_by_reference(project, urls, user)
            messages.success(
                request,
                ngettext(
                    "%(count)s image was added by reference.",
                    "%(count)s images were added by reference.",
                    created,
                )
                % {"count": created},
            )
            return redirect("project", project.pk)
        job = start_url_import(project, urls, user)
        return _started(request, job)
    if action == "export":
        data = request.POST
        ratios = {name: _ratio(data.get(f"split_{name}")) for name in ("train", "val", "test")}
        split = {name: ratio for name, ratio in ratios.items() if ratio is not None}
        job = start_export(
            project,
            {
                "format": data.get("format"),
                "only_approved": data.get("tasks") == "approved",
                "include_unlabeled": data.get("tasks") == "all",
                "include_predictions": data.get("include_predictions") == "on",
                "to_storage": data.get("to_storage") == "on",
                "split": split,
                "seed": _seed(data.get("seed", "")),
            },
            user,
        )
        return _started(request, job)
    if action == "import_dataset":
        archive = request.FILES.get("archive")
        if archive is None:
            raise Invalid(_("Choose the dataset's zip archive."))
        job = start_dataset_import(project, archive, request.POST.get("format", ""), user)
        return _started(request, job)
    raise Invalid(_("Unknown action."))


def _task_counts(project: Project) -> dict[str, int]:
    """How many tasks each choice of the export form writes, from the project's counters."""
    return {
        "labeled": project.count_submitted + project.count_approved,
        "approved": project.count_approved,
        "all": project.task_count,
    }


def _ratio(raw: str | None) -> float | None:
    """A split ratio from the form; None for a field left empty (or below zero)."""
    if raw is None or not raw.strip():
        return None
    try:
        ratio = float(raw)
    except ValueError:
        raise Invalid(_("“%(value)s” is not a number.") % {"value": raw}) from None
    return ratio if ratio >= 0 else None


def _seed(raw: str) -> int:
    text = raw.strip() or "0"
    if not text.lstrip("-").isdigit():
        raise Invalid(_("The seed must be a whole number."))
    return int(text)


def _started(request: HttpRequest, job: Job) -> HttpResponse:
    messages.success(request, _("The job has started; this page follows it."))
    return redirect("job", job.pk)


@login_required
def job_page(request: HttpRequest, pk: int) -> HttpResponse:
    """One job: its progress (live while it runs), its error, its failures, its file."""
    job = scoped_or_404(Job.objects.select_related("started_by", "project"), request, pk=pk)
    failures = (
        list(
            UrlImportItem.objects.filter(job=job, state=ImportState.FAILED).order_by("index")[
                :FAILURES_SHOWN
            ]
        )
        if kinds.has_items(job.kind)
        else []
    )
    context = {
        "row": job_row(job, may_steer=may_steer(request.user, job)),
        "failures": failures,
        "download": kinds.has_download(job.kind) and job.state == JobState.SUCCEEDED,
        "preannotation": job_summary(job),
        "current_organization_id": job.organization_id,
    }
    template = "web/_job_detail.html" if request.headers.get("HX-Request") else "web/job.html"
    return render(request, template, context)
