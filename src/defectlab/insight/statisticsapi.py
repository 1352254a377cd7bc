"""REST API of project statistics, under the project's own address (registered on the same
prefix as labeling's ``ProjectViewSet``):

* ``GET /api/projects/{id}/statistics/`` — the project's statistics (``insight.statistics``),
  filtered like the task list, as JSON, or with ``?format=csv`` (or ``Accept: text/csv``) as one
  tidy CSV table. Whoever may see the project's tasks may see them (``Can.VIEW``).
"""

from __future__ import annotations

from django.http import HttpResponse
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from defectlab.api import CsvRenderer
from defectlab.insight import statistics
from defectlab.labeling.api.projects import TASK_FILTERS
from defectlab.labeling.models import Project
from defectlab.tenancy.roles import Can
from defectlab.tenancy.viewsets import TenantViewSet, acting_user

STATISTICS_PARAMETERS = [
    *(
        parameter
        for parameter in TASK_FILTERS
        if parameter.name in ("status", "assignee", "has_annotation", "has_prediction", "label")
    ),
    OpenApiParameter(
        "start",
        OpenApiTypes.DATE,
        description="First UTC day of the activity parts (throughput, rejections); default: "
        "29 days before `end`.",
    ),
    OpenApiParameter(
        "end", OpenApiTypes.DATE, description="Last UTC day of the activity parts; default today."
    ),
    OpenApiParameter("format", str, enum=["json", "csv"], description="`csv` for the CSV table."),
]


class ProjectStatisticsViewSet(TenantViewSet):
    # ``/api/projects/{id}/statistics/`` (comments, not a docstring: drf-spectacular would print
    # a class docstring as the description of every operation).
    queryset = Project.objects.order_by("id")
    capabilities = {"statistics": Can.VIEW}

    @extend_schema(
        parameters=STATISTICS_PARAMETERS,
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "text/csv"): OpenApiTypes.STR,
        },
        description="The project's statistics, each one SQL aggregate over stored counters, "
        "filtered like the task list (`status`, `assignee`, `label`, `has_annotation`, "
        "`has_prediction`): `statuses` (tasks per status), `classes` (per class: images, "
        "shapes, `sizes` — shapes per bin of `size_edges`, log10 of the box's share of the "
        "image — and `unknown_size`), `tags` (images per image tag), `shapes_per_image` "
        "(images with 0, 1, …, 10 or more shapes); and for the UTC days `start`–`end`: "
        "`throughput` (per day and person: tasks submitted, verdicts given, their work "
        "approved and rejected, labeling seconds) and `rejections_by_class` / "
        "`rejections_by_person` (approved, rejected, rate). Anyone who may see the project's "
        "tasks; per person, reviewers and managers see everyone's work, others their own "
        "(`throughput`, `rejections_by_person`). `?format=csv` answers one table: section, "
        "key, detail, value.",
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, CsvRenderer])
    def statistics(self, request: Request, pk: str) -> HttpResponseBase:
        project = self.get_object()
        chosen = statistics.statistics_filter_from(
            request.query_params, acting_user(request), project
        )
        found = statistics.statistics(project, chosen)
        if request.accepted_renderer.format == "csv":
            return HttpResponse(
                statistics.as_csv(found),
                content_type="text/csv; charset=utf-8",
                headers={
                    "Content-Disposition": "attachment; "
                    f'filename="{statistics.csv_file_name(project, chosen)}"'
                },
            )
        return Response(statistics.as_json(found))
