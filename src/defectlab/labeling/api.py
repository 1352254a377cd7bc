"""REST API for projects, labels, tasks, annotations, predictions and reviews."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from defectlab.api import TenantViewSet, acting_user
from defectlab.datasets import FORMATS
from defectlab.errors import Invalid
from defectlab.geometry import ShapeType
from defectlab.ingest.uploads import images_from_uploads
from defectlab.ingest.urlimport import start_url_import, urls_from_entries, urls_from_file
from defectlab.jobs.api import JobSerializer
from defectlab.labeling import services, workflow
from defectlab.labeling.datasetimport import importable_formats, start_dataset_import
from defectlab.labeling.exports import start_export
from defectlab.labeling.models import (
    Annotation,
    AnnotationVersion,
    Label,
    Prediction,
    Project,
    Review,
    Task,
    TaskStatus,
)
from defectlab.media.services import signed_url
from defectlab.params import query_int
from defectlab.schema import documented_field
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import Membership, Organization, User
from defectlab.tenancy.roles import Can
from defectlab.tenancy.services import record, require

# ---------------------------------------------------------------------------- serializers


# What the services check, stated in the schema too (the services keep their own messages).
NON_BLANK = r"\S"
COLOR = {"type": "string", "pattern": r"^#[0-9a-fA-F]{6}$", "example": "#1e88e5"}
ColorField = documented_field("ColorField", serializers.CharField, COLOR)
HotkeyField = documented_field(
    "HotkeyField",
    serializers.CharField,
    {"type": "string", "pattern": r"^[1-9a-z]$", "description": "One digit 1–9 or a letter."},
)
AttributesField = documented_field(
    "AttributesField",
    serializers.JSONField,
    {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "pattern": NON_BLANK},
                "options": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "minItems": 1,
                },
                "default": {"type": "string", "description": "One of the options."},
            },
            "required": ["name", "options"],
        },
        "description": "Per-shape attributes, e.g. severity with its options (names unique).",
    },
)
ShapeTypesField = documented_field(
    "ShapeTypesField",
    serializers.JSONField,
    {
        "type": "array",
        "items": {"type": "string", "enum": [shape_type.value for shape_type in ShapeType]},
        "minItems": 1,
    },
)
TagsField = documented_field(
    "TagsField",
    serializers.JSONField,
    {
        "type": "array",
        "items": {
            "oneOf": [
                {"type": "string", "pattern": NON_BLANK},
                {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "pattern": NON_BLANK},
                        "color": COLOR,
                    },
                    "required": ["name"],
                },
            ]
        },
        "uniqueItems": True,
        "description": "Image-level tags such as OK / NG (names unique).",
    },
)


SHAPE = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": [shape_type.value for shape_type in ShapeType]},
        "points": {
            "type": "array",
            "items": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
            "description": "[x, y] in image pixels: a box's two corners, a polygon's 3 or more "
            "vertices.",
        },
        "label": {"type": "integer", "description": "A label of the task's project."},
        "attributes": {"type": "object", "additionalProperties": {"type": "string"}},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "id": {"type": "string"},
    },
    "required": ["type", "points", "label"],
    "additionalProperties": False,
}
ShapesField = documented_field(
    "ShapesField", serializers.JSONField, {"type": "array", "items": SHAPE}
)


class LabelSerializer(serializers.ModelSerializer[Label]):
    color = ColorField(max_length=7, required=False)
    hotkey = HotkeyField(max_length=1, required=False, allow_blank=True)
    attributes = AttributesField(required=False)

    class Meta:
        model = Label
        fields = ["id", "name", "color", "hotkey", "attributes", "order"]
        read_only_fields = ["id"]


class ProjectSerializer(serializers.ModelSerializer[Project]):
    labels = LabelSerializer(many=True, required=False)
    organization = serializers.PrimaryKeyRelatedField(queryset=Organization.objects.all())
    counts = serializers.SerializerMethodField()
    shape_types = ShapeTypesField(required=False)
    tags = TagsField(required=False)

    class Meta:
        model = Project
        fields = [
            "id",
            "organization",
            "name",
            "description",
            "instructions",
            "shape_types",
            "tags",
            "allow_self_approval",
            "labels",
            "counts",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]

    def get_counts(self, project: Project) -> dict[str, int]:
        return {
            status: getattr(project, counter) for status, counter in services.COUNTER.items()
        } | {"total": project.task_count}

    def validate_shape_types(self, value: Any) -> list[str]:
        return services.clean_shape_types(value)

    def validate_tags(self, value: Any) -> list[dict[str, str]]:
        return services.clean_tags(value)


class ProjectChangeSerializer(ProjectSerializer):
    """What PUT and PATCH take: labels change through their own endpoints."""

    class Meta(ProjectSerializer.Meta):
        fields = [field for field in ProjectSerializer.Meta.fields if field != "labels"]


class TaskSerializer(serializers.ModelSerializer[Task]):
    image_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()

    class Meta:
        model = Task
        fields = [
            "id",
            "project",
            "file_name",
            "width",
            "height",
            "status",
            "assignee",
            "lock_owner",
            "lock_expires_at",
            "has_annotation",
            "has_prediction",
            "image_url",
            "thumbnail_url",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [field for field in fields if field != "assignee"]

    def get_image_url(self, task: Task) -> str | None:
        return signed_url(task.pk, "image") if services.is_viewable(task) else None

    def get_thumbnail_url(self, task: Task) -> str | None:
        return signed_url(task.pk, "thumb") if services.is_viewable(task) else None

    def validate_assignee(self, user: User | None) -> User | None:
        task = self.instance
        assert isinstance(task, Task)
        if (
            user is not None
            and not Membership.objects.filter(
                organization_id=task.organization_id, user=user
            ).exists()
        ):
            raise serializers.ValidationError(
                _("The assignee must be a member of this organization.")
            )
        return user


def _iso(value: datetime | None) -> str | None:
    """A datetime as DRF's DateTimeField writes it: ISO 8601 in the current zone, UTC as Z."""
    if value is None:
        return None
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def task_rows(tasks: list[Task]) -> list[dict[str, Any]]:
    """Exactly ``TaskSerializer(tasks, many=True).data`` (a test holds them equal), written out:
    DRF builds 15 fields per request and walks them per task, 60 % of a task page's time."""
    rows = []
    for task in tasks:
        viewable = services.is_viewable(task)
        rows.append(
            {
                "id": task.pk,
                "project": task.project_id,
                "file_name": task.file_name,
                "width": task.width,
                "height": task.height,
                "status": task.status,
                "assignee": task.assignee_id,
                "lock_owner": task.lock_owner_id,
                "lock_expires_at": _iso(task.lock_expires_at),
                "has_annotation": task.has_annotation,
                "has_prediction": task.has_prediction,
                "image_url": signed_url(task.pk, "image") if viewable else None,
                "thumbnail_url": signed_url(task.pk, "thumb") if viewable else None,
                "created_at": _iso(task.created_at),
                "updated_at": _iso(task.updated_at),
            }
        )
    return rows


class TaskPageSerializer(serializers.Serializer[Any]):
    results = TaskSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class AnnotationSerializer(serializers.ModelSerializer[Annotation]):
    class Meta:
        model = Annotation
        fields = ["version", "shapes", "tags", "author", "lead_time", "created_at", "updated_at"]


class SaveAnnotationSerializer(serializers.Serializer[Any]):
    version = serializers.IntegerField(
        allow_null=True,
        required=False,
        help_text="The version you started from; omit or null for the first.",
    )
    shapes = ShapesField()
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    lead_time = serializers.FloatField(required=False, default=0.0, min_value=0.0)
    submit = serializers.BooleanField(required=False, default=False)


class AnnotationVersionSerializer(serializers.ModelSerializer[AnnotationVersion]):
    class Meta:
        model = AnnotationVersion
        fields = ["version", "shapes", "tags", "author", "lead_time", "created_at"]


class PredictionSerializer(serializers.ModelSerializer[Prediction]):
    shapes = ShapesField(required=False)

    class Meta:
        model = Prediction
        fields = ["id", "model_name", "model_version", "shapes", "created_at"]
        read_only_fields = ["id", "created_at"]


class ReviewSerializer(serializers.ModelSerializer[Review]):
    class Meta:
        model = Review
        fields = ["id", "verdict", "comment", "annotation_version", "reviewer", "created_at"]
        read_only_fields = ["id", "annotation_version", "reviewer", "created_at"]


class AssignSerializer(serializers.Serializer[Any]):
    tasks = serializers.ListField(child=serializers.IntegerField(), max_length=10_000)
    assignee = serializers.IntegerField(allow_null=True)


IMAGE_ADDRESS = {"type": "string", "pattern": r"^(https?|s3)://\S+$"}


class ImportSerializer(serializers.Serializer[Any]):
    tasks = documented_field(
        "ImportTasksField",
        serializers.JSONField,
        {
            "type": "array",
            "minItems": 1,
            "items": {
                "oneOf": [
                    IMAGE_ADDRESS,
                    {
                        "type": "object",
                        "properties": {
                            "image": IMAGE_ADDRESS,
                            "width": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
                            "height": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
                            "file_name": {"type": "string"},
                        },
                        "required": ["image"],
                    },
                ]
            },
            "description": "Image addresses (http(s):// or s3://), or objects with one.",
        },
    )()


class ImportUrlsSerializer(serializers.Serializer[Any]):
    urls = serializers.ListField(
        child=documented_field(
            "WebAddressField",
            serializers.CharField,
            {"type": "string", "pattern": r"^https?://[^\s/?#]+", "maxLength": 2048},
        )(),
        min_length=1,
        max_length=100_000,
        help_text="http:// or https:// addresses of images (or objects with `url`).",
    )


SplitField = documented_field(
    "SplitField",
    serializers.JSONField,
    {
        "type": "object",
        "properties": {name: {"type": "number", "minimum": 0} for name in ("train", "val", "test")},
        "additionalProperties": False,
        "description": "Ratios per split; they must add up to more than zero.",
    },
)


class ExportOptionsSerializer(serializers.Serializer[Any]):
    format = serializers.ChoiceField(choices=list(FORMATS))
    only_approved = serializers.BooleanField(required=False, default=False)
    include_predictions = serializers.BooleanField(required=False, default=False)
    include_images = serializers.BooleanField(required=False, default=True)
    to_storage = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Also copy the zip to the project's target storages (it needs one).",
    )
    split = SplitField(required=False)
    seed = serializers.IntegerField(required=False, default=0)


class UploadResultSerializer(serializers.Serializer[Any]):
    created = serializers.IntegerField()
    tasks = TaskSerializer(many=True)


SKIPPED = "defectlab.skipped_tasks"

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
    OpenApiParameter("has_annotation", bool),
    OpenApiParameter("has_prediction", bool),
    OpenApiParameter("label", int, description="Tasks whose annotation uses this label id."),
    OpenApiParameter("cursor", str, description="`next_cursor` of the previous page."),
    OpenApiParameter(
        "sort",
        str,
        enum=["id", "-id", "file_name", "-file_name", "updated", "-updated"],
        description="Sort key; a leading `-` reverses. Default `id`.",
    ),
    OpenApiParameter("order", str, enum=["asc", "desc"], description="Older form of `sort=-id`."),
    OpenApiParameter("page_size", int, description="1–200, default 50."),
]


class ProjectViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    TenantViewSet,
):
    queryset = Project.objects.order_by("id")
    serializer_class = ProjectSerializer
    capabilities = {
        "update": Can.MANAGE_PROJECTS,
        "partial_update": Can.MANAGE_PROJECTS,
        "destroy": Can.MANAGE_PROJECTS,
        "labels": Can.VIEW,
        "upload": Can.MANAGE_PROJECTS,
        "import_tasks": Can.MANAGE_PROJECTS,
        "import_urls": Can.MANAGE_PROJECTS,
        "export": Can.MANAGE_PROJECTS,
        "import_dataset": Can.MANAGE_PROJECTS,
        "assign": Can.MANAGE_PROJECTS,
        "next_task": Can.ANNOTATE,
        "next_review": Can.REVIEW,
    }

    def get_queryset(self) -> QuerySet[Project]:
        projects = super().get_queryset().prefetch_related("labels")
        organization = query_int(self.request.query_params, "organization")
        return (
            projects.filter(organization_id=organization) if organization is not None else projects
        )

    def create(self, request: Request) -> Response:
        form = ProjectSerializer(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        organization = data.pop("organization")
        require(request.user, organization.pk, Can.MANAGE_PROJECTS)
        project = services.create_project(organization, acting_user(request), **data)
        record(
            request._request, AuditAction.PROJECT_CREATED, organization=organization, target=project
        )
        return Response(ProjectSerializer(project, context={"request": request}).data, status=201)

    @extend_schema(request=ProjectChangeSerializer)
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().update(request, *args, **kwargs)

    @extend_schema(request=ProjectChangeSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
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
        project = serializer.save()
        record(
            self.request._request,
            AuditAction.PROJECT_UPDATED,
            organization=project.organization_id,
            target=project,
        )

    def perform_destroy(self, instance: Project) -> None:
        record(
            self.request._request,
            AuditAction.PROJECT_DELETED,
            organization=instance.organization_id,
            data={"name": instance.name},
        )
        services.delete_tasks(
            instance, list(Task.objects.filter(project=instance).values_list("id", flat=True))
        )
        instance.delete()

    @extend_schema(methods=["get"], responses=LabelSerializer(many=True))
    @extend_schema(methods=["post"], request=LabelSerializer, responses={201: LabelSerializer})
    @action(detail=True, methods=["get", "post"])
    def labels(self, request: Request, pk: str) -> Response:
        project = self.get_object()
        if request.method == "GET":
            return Response(LabelSerializer(project.labels.all(), many=True).data)
        require(request.user, project.organization_id, Can.MANAGE_PROJECTS)
        form = LabelSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        label = services.add_label(project, **form.validated_data)
        record(
            request._request,
            AuditAction.LABEL_CREATED,
            organization=project.organization_id,
            target=label,
        )
        return Response(LabelSerializer(label).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=TASK_FILTERS, responses=TaskPageSerializer)
    @action(detail=True, methods=["get"])
    def tasks(self, request: Request, pk: str) -> Response:
        project = self.get_object()
        page, next_cursor = services.task_page(project, request.query_params, acting_user(request))
        return Response(
            {
                "results": task_rows(page),
                "next_cursor": next_cursor,
            }
        )

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "files": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "minItems": 1,
                    }
                },
                "required": ["files"],
            }
        },
        responses={201: UploadResultSerializer},
    )
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def upload(self, request: Request, pk: str) -> Response:
        """Upload images (JPEG, PNG, BMP, TIFF) and zip archives of them. All land, or none."""
        project = self.get_object()
        files = [(upload.name or "upload", upload) for upload in request.FILES.getlist("files")]
        if not files:
            raise Invalid(_("Attach one or more files in the “files” field."))
        tasks = services.create_uploaded_tasks(project, images_from_uploads(files))
        record(
            request._request,
            AuditAction.TASKS_UPLOADED,
            organization=project.organization_id,
            target=project,
            data={"count": len(tasks)},
        )
        return Response(
            {"created": len(tasks), "tasks": TaskSerializer(tasks[:100], many=True).data},
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(
        request=ImportSerializer,
        responses={201: inline_serializer("ImportResult", {"created": serializers.IntegerField()})},
    )
    @action(detail=True, methods=["post"], url_path="import", parser_classes=[JSONParser])
    def import_tasks(self, request: Request, pk: str) -> Response:
        """Create tasks from a JSON list of image addresses (http(s):// or s3://), checked row by row."""
        project = self.get_object()
        items = request.data.get("tasks") if isinstance(request.data, dict) else request.data
        created = services.import_references(project, items if isinstance(items, list) else [])
        record(
            request._request,
            AuditAction.TASKS_IMPORTED,
            organization=project.organization_id,
            target=project,
            data={"count": created},
        )
        return Response({"created": created}, status=status.HTTP_201_CREATED)

    @extend_schema(
        request={
            "application/json": ImportUrlsSerializer,
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
                "description": "A .txt, .csv or .json list of addresses.",
            },
        },
        responses={202: JobSerializer},
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="import-urls",
        parser_classes=[JSONParser, MultiPartParser, FormParser],
    )
    def import_urls(self, request: Request, pk: str) -> Response:
        """Download images from URLs into the project, as a job: `{"urls": [...]}`, or a
        .txt / .csv / .json list uploaded as `file`. Every URL goes through the guarded fetcher;
        each keeps its own result (`/api/jobs/{id}/items/`)."""
        project = self.get_object()
        upload = request.FILES.get("file")
        if upload is not None:
            urls = urls_from_file(upload.name or "list.txt", upload.read())
        else:
            data = request.data
            urls = urls_from_entries(data.get("urls") if isinstance(data, dict) else data)
        job = start_url_import(project, urls, acting_user(request))
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=ExportOptionsSerializer, responses={202: JobSerializer})
    @action(detail=True, methods=["post"], parser_classes=[JSONParser])
    def export(self, request: Request, pk: str) -> Response:
        """Export the project as a dataset, as a job: `{"format": "yolo", "only_approved": false,
        "include_unlabeled": false, "include_predictions": false, "split": {"train": 0.8,
        "val": 0.2}, "seed": 0}`. By default only submitted and approved tasks are exported;
        `include_unlabeled` adds the rest, `only_approved` keeps approved ones only. The zip is
        at `/api/jobs/{id}/download/` once the job has succeeded."""
        project = self.get_object()
        options = request.data if isinstance(request.data, dict) else {}
        job = start_export(project, options, acting_user(request))
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "format": {"type": "string", "enum": importable_formats()},
                },
                "required": ["file", "format"],
            }
        },
        responses={202: JobSerializer},
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="import-dataset",
        parser_classes=[MultiPartParser, FormParser],
    )
    def import_dataset(self, request: Request, pk: str) -> Response:
        """Import a dataset (a zip with images and annotations in `format`) into the project, as
        a job. Everything is checked before anything lands: if one entry is wrong the job fails
        naming it, and nothing is imported. Missing labels and tags are created."""
        project = self.get_object()
        upload = request.FILES.get("file")
        if upload is None:
            raise Invalid(_("Attach the dataset's zip archive in the “file” field."))
        format_name = request.data.get("format")
        job = start_dataset_import(
            project,
            upload,
            format_name if isinstance(format_name, str) else None,
            acting_user(request),
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=AssignSerializer,
        responses=inline_serializer("AssignResult", {"updated": serializers.IntegerField()}),
    )
    @action(detail=True, methods=["post"])
    def assign(self, request: Request, pk: str) -> Response:
        project = self.get_object()
        form = AssignSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        assignee = form.validated_data["assignee"]
        updated = services.assign_tasks(project, form.validated_data["tasks"], assignee)
        record(
            request._request,
            AuditAction.TASKS_ASSIGNED,
            organization=project.organization_id,
            target=project,
            data={"count": updated, "assignee": assignee},
        )
        return Response({"updated": updated})

    @extend_schema(request=None, responses={200: TaskSerializer, 204: None})
    @action(detail=True, methods=["post"], url_path="next-task")
    def next_task(self, request: Request, pk: str) -> Response:
        """Reserve and return the next task for you; 204 when there is nothing left."""
        project = self.get_object()
        skipped = (
            request.session.get(SKIPPED, {}).get(str(project.pk), [])
            if hasattr(request, "session")
            else []
        )
        task = workflow.next_task(project, acting_user(request), skipped)
        if task is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(TaskSerializer(task).data)

    @extend_schema(request=None, responses={200: TaskSerializer, 204: None})
    @action(detail=True, methods=["post"], url_path="next-review")
    def next_review(self, request: Request, pk: str) -> Response:
        """Reserve and return the next submitted task to review; 204 when none is waiting."""
        task = workflow.next_review(self.get_object(), acting_user(request))
        if task is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(TaskSerializer(task).data)


class LabelViewSet(
    mixins.RetrieveModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin, TenantViewSet
):
    queryset = Label.objects.all()
    serializer_class = LabelSerializer
    capabilities = {
        "update": Can.MANAGE_PROJECTS,
        "partial_update": Can.MANAGE_PROJECTS,
        "destroy": Can.MANAGE_PROJECTS,
    }

    def perform_update(self, serializer: Any) -> None:
        label = services.update_label(serializer.instance, **serializer.validated_data)
        record(
            self.request._request,
            AuditAction.LABEL_UPDATED,
            organization=label.organization_id,
            target=label,
        )

    def perform_destroy(self, instance: Label) -> None:
        services.delete_label(instance)
        record(
            self.request._request,
            AuditAction.LABEL_DELETED,
            organization=instance.organization_id,
            data={"name": instance.name},
        )


# ---------------------------------------------------------------------------- tasks


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

    def perform_destroy(self, instance: Task) -> None:
        services.delete_tasks(instance.project, [instance.pk])
        record(
            self.request._request,
            AuditAction.TASK_DELETED,
            organization=instance.organization_id,
            data={"task": instance.pk, "file_name": instance.file_name},
        )

    @extend_schema(methods=["get"], responses={200: AnnotationSerializer, 204: None})
    @extend_schema(
        methods=["put"], request=SaveAnnotationSerializer, responses=AnnotationSerializer
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
        )
        if data["submit"]:
            record(
                request._request,
                AuditAction.TASK_SUBMITTED,
                organization=task.organization_id,
                target=task,
                data={"version": annotation.version},
            )
        return Response(AnnotationSerializer(annotation).data)

    @extend_schema(responses=AnnotationVersionSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="annotation/versions")
    def annotation_versions(self, request: Request, pk: str) -> Response:
        task = self.get_object()
        versions = AnnotationVersion.objects.filter(annotation__task=task)
        return Response(AnnotationVersionSerializer(versions, many=True).data)

    @extend_schema(methods=["get"], responses=PredictionSerializer(many=True))
    @extend_schema(
        methods=["post"], request=PredictionSerializer, responses={201: PredictionSerializer}
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

    @extend_schema(methods=["get"], responses=ReviewSerializer(many=True))
    @extend_schema(methods=["post"], request=ReviewSerializer, responses={201: ReviewSerializer})
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
        action_name = (
            AuditAction.TASK_APPROVED if verdict.verdict == "approve" else AuditAction.TASK_REJECTED
        )
        record(
            request._request,
            action_name,
            organization=task.organization_id,
            target=task,
            data={"comment": verdict.comment},
        )
        return Response(ReviewSerializer(verdict).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["post"])
    def release(self, request: Request, pk: str) -> Response:
        """Give back a task you reserved, e.g. when skipping it."""
        task = self.get_object()
        workflow.release(task, acting_user(request))
        if hasattr(request, "session"):
            # Remember the skip for this session, so "next" does not hand the same task back.
            skipped = request.session.get(SKIPPED, {})
            recent = [*skipped.get(str(task.project_id), [])[-199:], task.pk]
            request.session[SKIPPED] = skipped | {str(task.project_id): recent}
        return Response(status=status.HTTP_204_NO_CONTENT)
