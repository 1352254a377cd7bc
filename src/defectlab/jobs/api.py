"""REST API for jobs: list and follow them, cancel, retry."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from defectlab.api import TenantViewSet, acting_user
from defectlab.jobs import services
from defectlab.jobs.models import Job
from defectlab.params import decode_cursor, encode_cursor, query_int
from defectlab.tenancy.roles import Can
from defectlab.tenancy.services import record, require, role_in

PAGE = 50


def job_rate(job: Job) -> float | None:
    """Steps a second since the job started (the speed the pages show)."""
    if job.started_at is None or job.done == 0:
        return None
    end = job.finished_at or timezone.now()
    seconds = (end - job.started_at).total_seconds()
    return round(job.done / seconds, 2) if seconds > 0 else None


class JobSerializer(serializers.ModelSerializer[Job]):
    started_by = serializers.SerializerMethodField()
    rate = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "organization",
            "project",
            "kind",
            "state",
            "done",
            "failed",
            "total",
            "rate",
            "error",
            "result",
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

    def get_rate(self, job: Job) -> float | None:
        return job_rate(job)


class JobViewSet(mixins.RetrieveModelMixin, TenantViewSet):
    queryset = Job.objects.select_related("started_by")
    serializer_class = JobSerializer

    def get_object(self) -> Any:
        job = super().get_object()
        if self.action in ("cancel", "retry"):
            _may_steer(self.request, job)
        return job

    @extend_schema(
        parameters=[
            OpenApiParameter("organization", int),
            OpenApiParameter("project", int),
            OpenApiParameter("cursor", str),
        ],
        responses=JobSerializer(many=True),
    )
    def list(self, request: Request) -> Response:
        """The caller's organizations' jobs, newest first, 50 a page."""
        jobs: QuerySet[Job] = self.get_queryset().order_by("-id")
        for name in ("organization", "project"):
            value = query_int(request.query_params, name)
            if value is not None:
                jobs = jobs.filter(**{f"{name}_id": value})
        after = decode_cursor(request.query_params.get("cursor"))
        if after is not None:
            jobs = jobs.filter(id__lt=after)
        page = list(jobs[: PAGE + 1])
        return Response(
            {
                "results": JobSerializer(page[:PAGE], many=True).data,
                "next_cursor": encode_cursor(page[PAGE - 1].pk) if len(page) > PAGE else None,
            }
        )

    @extend_schema(request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        job = services.cancel_job(self.get_object())
        record(request._request, "job.cancelled", organization=job.organization_id, target=job)
        return Response(JobSerializer(job).data)

    @extend_schema(request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str) -> Response:
        job = services.retry_job(self.get_object(), acting_user(request))
        record(request._request, "job.retried", organization=job.organization_id, target=job)
        return Response(JobSerializer(job).data)


def _may_steer(request: Request, job: Job) -> None:
    """Whoever started a job may stop or retry it; otherwise managing projects is needed."""
    if job.started_by_id == request.user.pk and role_in(request.user, job.organization_id):
        return
    require(request.user, job.organization_id, Can.MANAGE_PROJECTS)
