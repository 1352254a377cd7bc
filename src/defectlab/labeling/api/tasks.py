"""Tasks: their annotation and its versions, predictions, reviews, review issues, and giving
one back; and the issues themselves (resolve, reopen)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from defectlab.labeling import issues, services, workflow
from defectlab.labeling.api.serializers import (
    AnnotationSerializer,
    AnnotationVersionSerializer,
    IssueSerializer,
    NewIssueSerializer,
    PredictionSerializer,
    ReviewSerializer,
    SaveAnnotationSerializer,
    TaskSerializer,
)
from defectlab.labeling.models import Annotation, AnnotationVersion, Issue, Task
from defectlab.tenancy.roles import Can
from defectlab.tenancy.services import require
from defectlab.tenancy.viewsets import TenantViewSet, acting_user


@extend_schema_view(
    retrieve=extend_schema(
        description="One task: its image's file name and size, status, assignee, lock, and "
        "signed `image_url` / `thumbnail_url`."
    ),
    update=extend_schema(description='Assign the task (managers): `{"assignee": id | null}`.'),
    partial_update=extend_schema(
        description='Assign the task (managers): `{"assignee": id | null}`.'
    ),
    destroy=extend_schema(
        description="Delete the task with its annotations and stored image (managers)."
    ),
)
class TaskViewSet(
    mixins.RetrieveModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin, TenantViewSet
):
    queryset = Task.objects.select_related("project")
    serializer_class = TaskSerializer
    capabilities = {
        "update": Can.MANAGE_PROJECTS,
        "partial_update": Can.MANAGE_PROJECTS,
        "destroy": Can.MANAGE_PROJECTS,
        "release": Can.ANNOTATE,
        "review": Can.VIEW,
    }

    def perform_update(self, serializer: Any) -> None:
        task = serializer.instance
        assert isinstance(task, Task)
        if "assignee" in serializer.validated_data:  # one home for assigning: the audit, the tally
            assignee = serializer.validated_data["assignee"]
            services.assign_tasks(
                task.project,
                [task.pk],
                assignee.pk if assignee else None,
                actor=acting_user(self.request),
            )
        task.refresh_from_db()

    def perform_destroy(self, instance: Task) -> None:
        services.delete_task(instance, actor=acting_user(self.request))

    @extend_schema(
        methods=["get"],
        responses={200: AnnotationSerializer, 204: None},
        description="The task's current annotation (its `version`, shapes in image pixels, "
        "tags); 204 when nothing has been saved yet.",
    )
    @extend_schema(
        methods=["put"],
        request=SaveAnnotationSerializer,
        responses=AnnotationSerializer,
        description="Save a new version of the annotation, and with `submit` submit the task. "
        "Send the `version` you loaded: if someone saved since, the answer is 409 `stale` and "
        "nothing is overwritten. Who may save or submit which task: 403 with the reason.",
    )
    @action(detail=True, methods=["get", "put"])
    def annotation(self, request: Request, pk: str) -> Response:
        """The current annotation. PUT saves a new version; a stale `version` answers 409. Who
        may save or submit which task is workflow.check's to say (403 with the reason)."""
        task = self.get_object()
        if request.method == "GET":
            current = Annotation.objects.filter(task=task).first()
            return Response(AnnotationSerializer(current).data) if current else Response(status=204)
        form = SaveAnnotationSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        annotation = workflow.save_annotation(
            task,
            acting_user(request),
            base_version=data.get("version"),
            shapes=data["shapes"],
            tags=data.get("tags"),
            lead_time=data["lead_time"],
            submit=data["submit"],
            proposals=data.get("proposals"),
        )
        return Response(AnnotationSerializer(annotation).data)

    @extend_schema(responses=AnnotationVersionSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="annotation/versions")
    def annotation_versions(self, request: Request, pk: str) -> Response:
        """Every saved version of the task's annotation, newest first, with its author, time
        spent and the proposals' fates decided up to it."""
        task = self.get_object()
        versions = AnnotationVersion.objects.filter(annotation__task=task).select_related("author")
        return Response(AnnotationVersionSerializer(versions, many=True).data)

    @extend_schema(
        methods=["get"],
        responses=PredictionSerializer(many=True),
        description="The model predictions stored on the task.",
    )
    @extend_schema(
        methods=["post"],
        request=PredictionSerializer,
        responses={201: PredictionSerializer},
        description='Store a model\'s proposals on the task (managers): `{"model_name", '
        '"model_version", "shapes"}`; shapes may carry a `score`.',
    )
    @action(detail=True, methods=["get", "post"])
    def predictions(self, request: Request, pk: str) -> Response:
        task = self.get_object()
        if request.method == "GET":
            return Response(PredictionSerializer(task.predictions.all(), many=True).data)
        require(request.user, task.organization_id, Can.MANAGE_PROJECTS)
        form = PredictionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        prediction = workflow.add_prediction(
            task,
            model_name=form.validated_data["model_name"],
            model_version=form.validated_data.get("model_version", ""),
            shapes=form.validated_data.get("shapes", []),
        )
        return Response(PredictionSerializer(prediction).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        methods=["get"],
        responses=ReviewSerializer(many=True),
        description="The task's review history: verdicts with their comments.",
    )
    @extend_schema(
        methods=["post"],
        request=ReviewSerializer,
        responses={201: ReviewSerializer},
        description="Approve or reject a submitted task (reviewers; not your own work unless "
        "the project allows self-approval). A rejected task goes back to its author with the "
        "comment; a task with an open issue is not approved (409 `open_issues`).",
    )
    @action(detail=True, methods=["get", "post"])
    def review(self, request: Request, pk: str) -> Response:
        """GET: the task's review history. POST: approve or reject a submitted task (not your
        own unless the project allows self-approval)."""
        task = self.get_object()
        if request.method == "GET":
            return Response(ReviewSerializer(task.reviews.all(), many=True).data)
        form = ReviewSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        verdict = workflow.review(
            task,
            acting_user(request),
            verdict=form.validated_data["verdict"],
            comment=form.validated_data.get("comment", ""),
        )
        return Response(ReviewSerializer(verdict).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        methods=["get"],
        responses=IssueSerializer(many=True),
        description="The review issues pinned on the task, open and resolved, oldest first.",
    )
    @extend_schema(
        methods=["post"],
        request=NewIssueSerializer,
        responses={201: IssueSerializer},
        description="Pin an issue on the image (reviewers and managers, on a submitted task): "
        "at a `point`, on a `shape` by its id, or both.",
    )
    @action(detail=True, methods=["get", "post"])
    def issues(self, request: Request, pk: str) -> Response:
        """GET: the issues pinned on the task, open and resolved. POST: pin one (reviewers and
        managers, on a submitted task) at a point, on a shape by its id, or both."""
        task = self.get_object()
        if request.method == "GET":
            return Response(IssueSerializer(task.issues.all(), many=True).data)
        form = NewIssueSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        issue = issues.open_issue(
            task,
            acting_user(request),
            message=data["message"],
            point=data.get("point"),
            shape=data.get("shape"),
            box=data.get("box"),
        )
        return Response(IssueSerializer(issue).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["post"])
    def release(self, request: Request, pk: str) -> Response:
        """Give back a task you reserved and skip it: "next" hands it to you again only after
        everything else (remembered for your account, whichever client asks)."""
        workflow.skip(self.get_object(), acting_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(retrieve=extend_schema(description="One review issue of a task."))
class IssueViewSet(mixins.RetrieveModelMixin, TenantViewSet):
    """One review issue; resolving and reopening it. Who may is labeling.issues' to say."""

    queryset = Issue.objects.all()
    serializer_class = IssueSerializer

    @extend_schema(request=None, responses=IssueSerializer)
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk: str) -> Response:
        """Mark the issue fixed: the task's annotator (assignee or submitter) or a reviewer."""
        issue = issues.resolve(self.get_object(), acting_user(request))
        return Response(IssueSerializer(issue).data)

    @extend_schema(request=None, responses=IssueSerializer)
    @action(detail=True, methods=["post"])
    def reopen(self, request: Request, pk: str) -> Response:
        """Open a resolved issue again: the same people as resolve."""
        issue = issues.reopen(self.get_object(), acting_user(request))
        return Response(IssueSerializer(issue).data)
