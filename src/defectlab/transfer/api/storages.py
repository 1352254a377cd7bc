"""REST API for storage connections: `/api/storages/`.

Members see an organization's connections (never a secret key: it is write-only); roles that
manage projects create, change, delete, test and sync them, and every change lands in the audit
trail. `POST /api/storages/{id}/test/` tests the saved settings, `POST /api/storages/check/`
tests settings before they are saved (the form's "Test" button); both answer
`{"ok": bool, "problems": [{"code", "message", "rule"?}]}`. `POST /api/storages/{id}/sync/`
queues a sync of a source and answers 202 with its job."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from defectlab.errors import Invalid
from defectlab.jobs.api import JobSerializer
from defectlab.labeling.models import Project
from defectlab.media import connections
from defectlab.media.connections import EDITABLE
from defectlab.media.models import Encryption, MediaMode, StorageConnection, StorageRole
from defectlab.media.secrets import decrypt_secret
from defectlab.params import query_int
from defectlab.tenancy.models import User
from defectlab.tenancy.roles import Can
from defectlab.tenancy.services import get_scoped, require
from defectlab.tenancy.viewsets import TenantViewSet, acting_user
from defectlab.transfer.sync import start_sync


class StorageConnectionSerializer(serializers.ModelSerializer[StorageConnection]):
    organization = serializers.IntegerField(source="organization_id", read_only=True)
    project = serializers.IntegerField(source="project_id", read_only=True)
    public_endpoints = serializers.DictField(child=serializers.CharField(), read_only=True)
    created_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="email", read_only=True
    )
    last_sync_job = serializers.IntegerField(
        source="last_sync_job_id", read_only=True, allow_null=True
    )

    class Meta:
        model = StorageConnection
        fields = [
            "id",
            "organization",
            "project",
            "role",
            *EDITABLE,
            "created_by",
            "created_at",
            "updated_at",
            "last_sync_at",
            "last_sync_job",
            "last_error",
            "last_error_at",
        ]
        read_only_fields = fields


class StorageSettingsSerializer(serializers.Serializer[Any]):
    """What a person sends to create, change or check a connection. Everything is optional
    here; the service says in plain words what is missing."""

    project = serializers.IntegerField(
        required=False, help_text="The project's id (needed to create or check; cannot change)."
    )
    role = serializers.ChoiceField(
        choices=StorageRole.choices,
        required=False,
        help_text="`source`: images come from it (sync); `target`: annotations and exports go "
        "to it. Cannot change.",
    )
    name = serializers.CharField(
        max_length=100, required=False, help_text="A name for people, e.g. `line-3 camera`."
    )
    endpoint_url = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        help_text="http(s)://host[:port] of the S3-compatible store; blank for AWS S3. A "
        "non-public address must be in the organization's allowlist.",
    )
    bucket = serializers.CharField(max_length=255, required=False, help_text="The bucket's name.")
    # 499: the prefix is stored with a trailing "/" in a 500-character column.
    prefix = serializers.CharField(
        max_length=499,
        required=False,
        allow_blank=True,
        help_text="Only keys under this prefix (a folder, e.g. `line3/2026/`); blank: the bucket.",
    )
    region = serializers.CharField(
        max_length=32, required=False, help_text="The store's region, e.g. `us-east-1`."
    )
    path_style = serializers.BooleanField(
        required=False, help_text="Default: on when an endpoint is given (MinIO wants it)."
    )
    public_endpoints = serializers.DictField(
        child=serializers.CharField(),
        required=False,
        help_text="Host people reach DefectLab at → endpoint URL their browsers reach the store "
        "at; presigned image links are signed for it.",
    )
    sse = serializers.ChoiceField(
        choices=Encryption.choices,
        required=False,
        help_text="Server-side encryption asked for on writes: `none` (the default), `AES256` "
        "or `aws:kms`.",
    )
    kms_key_id = serializers.CharField(
        max_length=2048, required=False, allow_blank=True, help_text="The KMS key, for `aws:kms`."
    )
    access_key = serializers.CharField(
        max_length=128, required=False, help_text="The access key id of the store's credentials."
    )
    secret_key = serializers.CharField(
        max_length=500,
        required=False,
        write_only=True,
        trim_whitespace=False,
        help_text="Write-only: stored encrypted, never returned. Leave out to keep it.",
    )
    media_mode = serializers.ChoiceField(
        choices=MediaMode.choices,
        required=False,
        help_text="How browsers get a source's images: `presign` (a presigned link to the "
        "bucket) or `proxy` (streamed through DefectLab, for networks that cannot reach it).",
    )
    connection = serializers.IntegerField(
        required=False,
        help_text="Check only: a saved connection whose secret key to use when none is sent.",
    )


TestResultSerializer = inline_serializer(
    "StorageTestResult",
    {
        "ok": serializers.BooleanField(),
        "problems": serializers.ListField(child=serializers.DictField()),
    },
)


def _settings(request: Request) -> dict[str, Any]:
    form = StorageSettingsSerializer(data=request.data)
    form.is_valid(raise_exception=True)
    return dict(form.validated_data)


def _project(request: Request, data: dict[str, Any]) -> Project:
    if "project" not in data:
        raise Invalid(
            _("Choose the project this storage belongs to."), details={"field": "project"}
        )
    project = get_scoped(Project.objects.all(), request.user, pk=data["project"])
    require(request.user, project.organization_id, Can.MANAGE_PROJECTS)
    return project


def _fields(data: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in data.items() if name in connections.EDITABLE}


def _tested(problems: list[dict[str, str]]) -> Response:
    return Response({"ok": not problems, "problems": problems})


@extend_schema_view(
    retrieve=extend_schema(description="One storage connection (never its secret key)."),
    destroy=extend_schema(
        description="Delete a storage connection (managers); its tasks and their annotations "
        "stay, and so do the objects in the store."
    ),
)
class StorageConnectionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, TenantViewSet
):
    """An organization's S3-compatible storages: sources that feed a project, targets that
    receive its annotations."""

    queryset = StorageConnection.objects.select_related("created_by").order_by("id")
    serializer_class = StorageConnectionSerializer
    capabilities = {
        "update": Can.MANAGE_PROJECTS,
        "partial_update": Can.MANAGE_PROJECTS,
        "destroy": Can.MANAGE_PROJECTS,
        "test": Can.MANAGE_PROJECTS,
        "sync": Can.MANAGE_PROJECTS,
    }

    def get_queryset(self) -> QuerySet[StorageConnection]:
        rows = super().get_queryset()
        for name in ("organization", "project"):
            value = query_int(self.request.query_params, name)
            if value is not None:
                rows = rows.filter(**{f"{name}_id": value})
        return rows

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "organization", int, description="Only this organization's connections."
            ),
            OpenApiParameter("project", int, description="Only this project's connections."),
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The storage connections of your organizations (never a secret key)."""
        return super().list(request, *args, **kwargs)

    @extend_schema(request=StorageSettingsSerializer, responses={201: StorageConnectionSerializer})
    def create(self, request: Request) -> Response:
        """Connect a project to an S3-compatible store (managers), as a `source` of images or
        a `target` for annotations and exports."""
        data = _settings(request)
        project = _project(request, data)
        connection = connections.create_connection(
            project,
            acting_user(request),
            role=data.get("role", ""),
            secret_key=data.get("secret_key", ""),
            **_fields(data),
        )
        return Response(
            StorageConnectionSerializer(connection).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(request=StorageSettingsSerializer, responses=StorageConnectionSerializer)
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Change settings; fields left out keep their value (so does the secret key)."""
        connection = self.get_object()
        data = _settings(request)
        if (
            data.get("project", connection.project_id) != connection.project_id
            or data.get("role", connection.role) != connection.role
        ):
            raise Invalid(
                _(
                    "The project and the role of a storage connection cannot change; create "
                    "another connection instead."
                )
            )
        connections.update_connection(
            connection, _fields(data), data.get("secret_key") or None, actor=acting_user(request)
        )
        return Response(StorageConnectionSerializer(connection).data)

    @extend_schema(request=StorageSettingsSerializer, responses=StorageConnectionSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Change settings (managers); fields left out keep their value (so does the secret
        key)."""
        return self.update(request, *args, **kwargs)

    def perform_destroy(self, instance: StorageConnection) -> None:
        connections.delete_connection(instance, acting_user(self.request))

    @extend_schema(request=None, responses=TestResultSerializer)
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str) -> Response:
        """Test the saved settings: reach the store, list, write and delete a probe object."""
        return _tested(connections.connection_problems(self.get_object()))

    @extend_schema(request=StorageSettingsSerializer, responses=TestResultSerializer)
    @action(detail=False, methods=["post"])
    def check(self, request: Request) -> Response:
        """Test settings before saving them. Send `connection` to use that connection's saved
        secret key when the form leaves it empty."""
        data = _settings(request)
        project = _project(request, data)
        secret = data.get("secret_key", "")
        if not secret and "connection" in data:
            saved = get_scoped(StorageConnection.objects.all(), request.user, pk=data["connection"])
            require(request.user, saved.organization_id, Can.MANAGE_PROJECTS)
            secret = decrypt_secret(saved.secret_key_encrypted)
        draft = connections.draft_connection(
            project, role=data.get("role") or StorageRole.SOURCE, secret_key=secret, **_fields(data)
        )
        return _tested(connections.connection_problems(draft, secret_key=secret))

    @extend_schema(request=None, responses={202: JobSerializer})
    @action(detail=True, methods=["post"])
    def sync(self, request: Request, pk: str) -> Response:
        """Create a task for every new image under the source's prefix, as a job."""
        connection = self.get_object()
        job = start_sync(connection, acting_user(request))
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
