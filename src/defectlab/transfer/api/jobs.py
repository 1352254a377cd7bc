"""What a URL import job did with each address: ``GET /api/jobs/{id}/items/``."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from defectlab.jobs.models import Job
from defectlab.params import keyset_page
from defectlab.schema import page_serializer
from defectlab.tenancy.viewsets import TenantViewSet
from defectlab.transfer.models import ImportState, UrlImportItem

ITEMS_PAGE = 500


class UrlImportItemSerializer(serializers.Serializer[Any]):
    index = serializers.IntegerField()
    url = serializers.CharField()
    state = serializers.CharField()
    error = serializers.CharField()
    rule = serializers.CharField()
    task = serializers.IntegerField(source="task_id", allow_null=True)


class JobItemViewSet(TenantViewSet):
    # Registered on the jobs' prefix beside ``jobs.api.JobViewSet`` (same rows, same access).
    queryset = Job.objects.all()
    serializer_class = UrlImportItemSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "state", str, enum=ImportState.values, description="Only the items in this state."
            ),
            OpenApiParameter("cursor", str, description="`next_cursor` of the previous page."),
        ],
        responses=page_serializer("UrlImportItemPageSerializer", UrlImportItemSerializer),
    )
    @action(detail=True, methods=["get"])
    def items(self, request: Request, pk: str) -> Response:
        """The per-URL results of a URL import, in list order, 500 a page."""
        job = self.get_object()
        rows = UrlImportItem.objects.filter(job=job)
        state = request.query_params.get("state")
        if state:
            rows = rows.filter(state=state)
        page, next_cursor = keyset_page(
            rows, request.query_params.get("cursor"), ITEMS_PAGE, key="index"
        )
        return Response(
            {"results": UrlImportItemSerializer(page, many=True).data, "next_cursor": next_cursor}
        )
