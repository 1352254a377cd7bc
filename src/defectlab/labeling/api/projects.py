"""Projects: list, create, change and delete them, their labels and their task pages."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from defectlab.errors import Invalid
from defectlab.jobs.api import JobSerializer
from defectlab.labeling import services, tasklist
from defectlab.labeling.api.assignments import ProjectAssignments
from defectlab.labeling.api.serializers import (
    LabelSerializer,
    ProjectChangeSerializer,
    ProjectSerializer,
    TaskPageSerializer,
    task_rows,
)
from defectlab.labeling.models import Project, TaskStatus
from defectlab.params import query_int
from defectlab.tenancy.roles import Can
from defectlab.tenancy.services import require
from defectlab.tenancy.viewsets import TenantViewSet, acting_user

# ---------------------------------------------------------------------------- projects

TASK_FILTERS = [
    OpenApiParameter(
        "status",
        str,
        pattern=r"^({0})(,({0}))*$".format("|".join(TaskStatus.values)),
        description="Comma-separated statuses.",
    ),
    OpenApiParameter(
        "assignee",
        str,
        pattern=r"^(me|none|[0-9]{1,18})$",
        description="A user id, `me` or `none`.",
    ),
    OpenApiParameter(
        "has_annotation", bool, description="Only tasks with (true) or without (false) one."
    ),
    OpenApiParameter(
        "has_prediction", bool, description="Only tasks with (true) or without (false) one."
    ),
    OpenApiParameter("label", int, description="Tasks whose annotation uses this label id."),
    OpenApiParameter("cursor", str, description="`next_cursor` of the previous page."),
    OpenApiParameter(
        "sort",
        str,
        enum=["id", "-id", "file_name", "-file_name", "updated", "-updated", "status", "-status"],
        description="Sort key; a leading `-` reverses. Default `id`. `status` groups the "
        "tasks by status code (alphabetical), in id order within each.",
    ),
    OpenApiParameter("order", str, enum=["asc", "desc"], description="Older form of `sort=-id`."),
    OpenApiParameter("page_size", int, description="1–200, default 50."),
]


@extend_schema_view(
    list=extend_schema(
        description="The projects of your organizations, each with its labels and stored "
        "`counts` of tasks per status.",
        parameters=[
            OpenApiParameter("organization", int, description="Only this organization's projects.")
        ],
    ),
    retrieve=extend_schema(description="One project, with its labels and task counts."),
)
class ProjectViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    ProjectAssignments,
    TenantViewSet,
):
    # ``/api/projects/``: the project itself here; assigning and handing out tasks from
    # ``ProjectAssignments``; its uploads, imports and exports are data movement's
    # (``transfer.api.projects``, on the same prefix).
    # (Comments, not docstrings: drf-spectacular would print a class docstring as the
    # description of every operation.)
    queryset = Project.objects.order_by("id")
    serializer_class = ProjectSerializer
    capabilities = {
        "update": Can.MANAGE_PROJECTS,
        "partial_update": Can.MANAGE_PROJECTS,
        "destroy": Can.MANAGE_PROJECTS,
        "labels": Can.VIEW,
        **ProjectAssignments.capabilities,
    }

    def get_queryset(self) -> QuerySet[Project]:
        projects = super().get_queryset().prefetch_related("labels")
        organization = query_int(self.request.query_params, "organization")
        return (
            projects.filter(organization_id=organization) if organization is not None else projects
        )

    def create(self, request: Request) -> Response:
        """Create a project in an organization (managers), with its labels and tags."""
        form = ProjectSerializer(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        organization = data.pop("organization")
        require(request.user, organization.pk, Can.MANAGE_PROJECTS)
        project = services.create_project(organization, acting_user(request), **data)
        return Response(ProjectSerializer(project, context={"request": request}).data, status=201)

    @extend_schema(request=ProjectChangeSerializer)
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Change the project's settings (managers). Labels change through their own
        addresses; a project does not move to another organization."""
        return super().update(request, *args, **kwargs)

    @extend_schema(request=ProjectChangeSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Change some of the project's settings (managers); fields left out keep their
        value."""
        return super().partial_update(request, *args, **kwargs)

    def perform_update(self, serializer: Any) -> None:
        if "labels" in serializer.validated_data:
            raise Invalid(
                _("Change labels through /api/projects/{id}/labels/ and /api/labels/{id}/.")
            )
        if (
            serializer.validated_data.get("organization", serializer.instance.organization)
            != serializer.instance.organization
        ):
            raise Invalid(_("A project cannot move to another organization."))
        fields = {
            name: value
            for name, value in serializer.validated_data.items()
            if name != "organization"
        }
        services.update_project(serializer.instance, actor=acting_user(self.request), **fields)

    @extend_schema(request=None, responses={202: JobSerializer})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Delete the project: it answers 404 from now on, and the job this answers removes its
        tasks and their files, then the project."""
        job = services.delete_project(self.get_object(), actor=acting_user(request))
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        methods=["get"],
        responses=LabelSerializer(many=True),
        description="The project's labels (classes), in their order.",
    )
    @extend_schema(
        methods=["post"],
        request=LabelSerializer,
        responses={201: LabelSerializer},
        description='Add a label to the project (managers): `{"name", "color"?, '
        '"hotkey"?, "attributes"?}`.',
    )
    @action(detail=True, methods=["get", "post"])
    def labels(self, request: Request, pk: str) -> Response:
        project = self.get_object()
        if request.method == "GET":
            return Response(LabelSerializer(project.labels.all(), many=True).data)
        require(request.user, project.organization_id, Can.MANAGE_PROJECTS)
        form = LabelSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        label = services.add_label(project, actor=acting_user(request), **form.validated_data)
        return Response(LabelSerializer(label).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=TASK_FILTERS, responses=TaskPageSerializer)
    @action(detail=True, methods=["get"])
    def tasks(self, request: Request, pk: str) -> Response:
        """The project's tasks one page at a time, filtered and sorted, with `total`: how many
        the filters match. Pages are found by key: pass `next_cursor` back as `cursor`."""
        project = self.get_object()
        user = acting_user(request)
        page, next_cursor = tasklist.task_page(project, request.query_params, user)
        total, more = tasklist.task_count(project, request.query_params, user)
        return Response(
            {
                "results": task_rows(page),
                "next_cursor": next_cursor,
                "total": total,
                "total_capped": more,
            }
        )
