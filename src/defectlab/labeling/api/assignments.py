"""Who works on which task: assigning tasks, handing out the next task to label or review."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from defectlab.labeling import services, workflow
from defectlab.labeling.api.serializers import AssignSerializer, TaskSerializer
from defectlab.tenancy.roles import Can
from defectlab.tenancy.viewsets import TenantViewSet, acting_user


class ProjectAssignments(TenantViewSet):
    # The project's actions that say who works on which task; mixed into ``ProjectViewSet``
    # (same URLs, same rows).
    capabilities = {
        "assign": Can.MANAGE_PROJECTS,
        "next_task": Can.ANNOTATE,
        "next_review": Can.REVIEW,
    }

    @extend_schema(
        request=AssignSerializer,
        responses=inline_serializer("AssignResult", {"updated": serializers.IntegerField()}),
    )
    @action(detail=True, methods=["post"])
    def assign(self, request: Request, pk: str) -> Response:
        """Assign tasks of the project to a member, or to nobody (managers): `{"tasks": [ids],
        "assignee": user id | null}`. Answers how many tasks changed."""
        project = self.get_object()
        form = AssignSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        assignee = form.validated_data["assignee"]
        updated = services.assign_tasks(
            project, form.validated_data["tasks"], assignee, actor=acting_user(request)
        )
        return Response({"updated": updated})

    @extend_schema(request=None, responses={200: TaskSerializer, 204: None})
    @action(detail=True, methods=["post"], url_path="next-task")
    def next_task(self, request: Request, pk: str) -> Response:
        """Reserve and return the next task for you, tasks you skipped last; 204 when there is
        nothing left."""
        task = workflow.next_task(self.get_object(), acting_user(request))
        if task is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(TaskSerializer(task).data)

    @extend_schema(request=None, responses={200: TaskSerializer, 204: None})
    @action(detail=True, methods=["post"], url_path="next-review")
    def next_review(self, request: Request, pk: str) -> Response:
        """Reserve and return the next submitted task to review, tasks you skipped last; 204 when
        none is waiting."""
        task = workflow.next_review(self.get_object(), acting_user(request))
        if task is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(TaskSerializer(task).data)
