"""REST API for jobs: list and follow them, download what they made, cancel, retry. (A URL
import's per-address results: ``transfer.api.jobs``.)"""

from __future__ import annotations

import time
from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse, HttpResponseBase
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from defectlab.errors import NotFound
from defectlab.jobs import kinds, services
from defectlab.jobs.models import Job, JobState
from defectlab.media.storage import default_storage
from defectlab.params import keyset_page, query_int
from defectlab.schema import page_serializer
from defectlab.tenancy.viewsets import TenantViewSet, acting_user

PAGE = 50
MAX_WAIT = 60  # seconds `?wait=` may hold a request
POLL = 0.25  # seconds between looks at a job being waited for


def job_rate(job: Job) -> float | None:
    """Steps a second since the job started (the speed the pages show)."""
    if job.started_at is None or job.done == 0:
        return None
    end = job.finished_at or timezone.now()
    seconds = (end - job.started_at).total_seconds()
    return round(job.done / seconds, 2) if seconds > 0 else None


def download_key(job: Job) -> str | None:
    """The storage key of the file a succeeded job made, if its kind makes one."""
    key = job.result.get("key") if job.state == JobState.SUCCEEDED else None
    return key if kinds.has_download(job.kind) and isinstance(key, str) else None


class JobSerializer(serializers.ModelSerializer[Job]):
    started_by = serializers.SerializerMethodField()
    rate = serializers.SerializerMethodField()
    title = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "organization",
            "project",
            "kind",
            "title",
            "state",
            "done",
            "failed",
            "total",
            "rate",
            "error",
            "result",
            "download_url",
            "params",
            "attempts",
            "cancel_requested",
            "started_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_started_by(self, job: Job) -> str | None:
        return job.started_by.email if job.started_by else None

    def get_title(self, job: Job) -> str:
        """The kind's title in the caller's language."""
        return kinds.title(job.kind)

    def get_rate(self, job: Job) -> float | None:
        """Steps a second since the job started; null before the first step."""
        return job_rate(job)

    def get_download_url(self, job: Job) -> str | None:
        """Where the file the job made is downloaded (a path on this server), once it has
        succeeded; null before, and for kinds that make no file."""
        return reverse("job-download", args=[job.pk]) if download_key(job) else None


class JobViewSet(mixins.RetrieveModelMixin, TenantViewSet):
    queryset = Job.objects.select_related("started_by")
    serializer_class = JobSerializer

    def get_object(self) -> Any:
        job = super().get_object()
        if self.action in ("cancel", "retry"):
            services.require_steer(self.request.user, job)
        return job

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "wait",
                int,
                description=f"Seconds (at most {MAX_WAIT}) to hold the answer until the job has "
                "ended: a script follows a job with one request at a time instead of polling.",
            )
        ]
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The job: its state, progress, result or error."""
        job = self.get_object()
        wait = min(max(query_int(request.query_params, "wait") or 0, 0), MAX_WAIT)
        deadline = time.monotonic() + wait
        while not job.finished and time.monotonic() < deadline:
            time.sleep(min(POLL, max(0.0, deadline - time.monotonic())))
            job.refresh_from_db()
        return Response(JobSerializer(job).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("organization", int, description="Only this organization's jobs."),
            OpenApiParameter("project", int, description="Only this project's jobs."),
            OpenApiParameter("cursor", str, description="`next_cursor` of the previous page."),
        ],
        responses=page_serializer("JobPageSerializer", JobSerializer),
    )
    def list(self, request: Request) -> Response:
        """The caller's organizations' jobs, newest first, 50 a page."""
        jobs: QuerySet[Job] = self.get_queryset()
        for name in ("organization", "project"):
            value = query_int(request.query_params, name)
            if value is not None:
                jobs = jobs.filter(**{f"{name}_id": value})
        page, next_cursor = keyset_page(
            jobs, request.query_params.get("cursor"), PAGE, descending=True
        )
        return Response(
            {"results": JobSerializer(page, many=True).data, "next_cursor": next_cursor}
        )

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def download(self, request: Request, pk: str) -> HttpResponseBase:
        """The archive an export job wrote (404 until it has succeeded)."""
        job = self.get_object()
        key = download_key(job)
        if key is None:
            raise NotFound(_("This job has no file to download."))
        storage = default_storage()
        if not storage.exists(key):
            raise NotFound(_("The exported file is no longer in storage."))
        return FileResponse(
            storage.open(key),
            as_attachment=True,
            filename=job.result.get("file_name") or f"export-{job.pk}.zip",
            content_type="application/zip",
        )

    @extend_schema(request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        """Ask a queued or running job to stop (whoever started it, or a manager): a queued
        one at once, a running one at its next progress report; 409 when it has finished."""
        job = services.cancel_job(self.get_object(), acting_user(request))
        return Response(JobSerializer(job).data)

    @extend_schema(request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str) -> Response:
        """Run a failed or cancelled job (or one with failed steps) again with the same
        parameters (whoever started it, or a manager); steps that succeeded are not redone.
        409 for a job still going or one that succeeded whole, or one its kind will not run
        again (a model evaluation whose evaluation or model version was deleted), with the
        reason."""
        job = services.retry_job(self.get_object(), acting_user(request))
        return Response(JobSerializer(job).data)
