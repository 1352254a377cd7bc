"""REST API of external model backends: `/api/backends/`.

Members read their organizations' backends; managers and owners add, change, remove and check
them (others get 403). Another organization's backend answers 404. The ``Authorization`` header
a backend wants is write-only: stored encrypted, never answered (``has_auth`` says whether one is
set). ``POST /api/backends/{id}/check/`` asks the backend for ``/health`` (and ``/setup`` with a
project's labels when ``project`` is given) through the guarded fetcher and answers what it
found; a refusal names the rule that refused."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from defectlab.inference import backends
from defectlab.inference.models import MLBackend
from defectlab.labeling.models import Project
from defectlab.params import keyset_page, query_int
from defectlab.schema import page_serializer
from defectlab.tenancy.models import Organization
from defectlab.tenancy.services import get_scoped
from defectlab.tenancy.viewsets import TenantViewSet, acting_user

PAGE = 50


class BackendSerializer(serializers.ModelSerializer[MLBackend]):
    organization = serializers.IntegerField(
        source="organization_id", help_text="The organization the backend belongs to."
    )
    name = serializers.CharField(
        max_length=backends.MAX_NAME, help_text="Unique within the organization."
    )
    url = serializers.CharField(
        max_length=2048,
        help_text="Base address of a server speaking Label Studio's ML-backend protocol "
        "(`/health`, `/setup`, `/predict`). A private address must be in the organization's "
        "allowlist; loopback only if the operator opened it (DEFECTLAB_FETCH_ALLOWLIST).",
    )
    auth = serializers.CharField(
        required=False,
        allow_blank=True,
        write_only=True,
        max_length=2000,
        help_text="Value of the Authorization header sent with every request (`Basic …`, "
        "`Bearer …`, `Token …`); stored encrypted, never answered. Empty removes it.",
    )
    has_auth = serializers.SerializerMethodField(
        help_text="Whether an Authorization header is set."
    )
    media_base_url = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=2048,
        help_text="This server's address as the backend reaches it, for the image URLs it is "
        "given; empty means the first of DEFECTLAB_PUBLIC_URLS.",
    )
    note = serializers.CharField(
        required=False, allow_blank=True, max_length=200, help_text="Free text for people."
    )
    created_by = serializers.SlugRelatedField(slug_field="email", read_only=True)  # type: ignore[var-annotated]

    class Meta:
        model = MLBackend
        fields = [
            "id",
            "organization",
            "name",
            "url",
            "auth",
            "has_auth",
            "media_base_url",
            "note",
            "health",
            "health_message",
            "checked_at",
            "model_version",
            "created_by",
            "created_at",
        ]
        read_only_fields = [
            "id",
            "has_auth",
            "health",
            "health_message",
            "checked_at",
            "model_version",
            "created_by",
            "created_at",
        ]
        extra_kwargs = {
            "health": {"help_text": "`unknown` until checked, then `up` or `down`."},
            "health_message": {
                "help_text": "Why the last check failed, in the checker's language."
            },
            "checked_at": {"help_text": "When it was last checked."},
            "model_version": {"help_text": "The model version the backend last named."},
        }

    def get_has_auth(self, backend: MLBackend) -> bool:
        return bool(backend.auth)


class CheckSerializer(serializers.Serializer[Any]):
    project = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="A project of the backend's organization: its labels are sent in `/setup`. "
        "Left out, only `/health` is asked.",
    )


CheckAnswer = inline_serializer(
    "BackendCheck",
    {
        "ok": serializers.BooleanField(help_text="The backend is up (and accepted the setup)."),
        "model_version": serializers.CharField(help_text="The model version it named."),
        "problem": inline_serializer(
            "BackendProblem",
            {
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "rule": serializers.CharField(required=False),
            },
            allow_null=True,
        ),
        "backend": BackendSerializer(),
    },
)


class BackendViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, TenantViewSet
):
    """An organization's external model backends."""

    queryset = MLBackend.objects.select_related("created_by").order_by("id")
    serializer_class = BackendSerializer
    capabilities = dict.fromkeys(["update", "partial_update", "destroy", "check"], backends.MANAGE)

    def get_queryset(self) -> QuerySet[MLBackend]:
        rows = super().get_queryset()
        organization = query_int(self.request.query_params, "organization")
        return rows.filter(organization_id=organization) if organization is not None else rows

    @extend_schema(
        summary="List model backends",
        description="The external model backends of your organizations (`?organization=` "
        "narrows to one), in pages, with their last check.",
        parameters=[
            OpenApiParameter("organization", int, description="Only this organization's backends."),
            OpenApiParameter("cursor", str, description="`next_cursor` of the previous page."),
        ],
        responses=page_serializer("BackendPage", BackendSerializer),
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page, next_cursor = keyset_page(
            self.get_queryset(), request.query_params.get("cursor"), PAGE
        )
        return Response(
            {"results": BackendSerializer(page, many=True).data, "next_cursor": next_cursor}
        )

    @extend_schema(
        summary="Show a model backend",
        description="One backend and its last check (never its Authorization header).",
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary="Add a model backend",
        description="A server speaking Label Studio's ML-backend protocol, for pre-labeling "
        "(managers and owners). Nothing is sent to it until it is checked or used. 409 when "
        "the name is taken.",
        request=BackendSerializer,
        responses={201: BackendSerializer},
    )
    def create(self, request: Request) -> Response:
        form = BackendSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        organization = get_scoped(
            Organization.objects.all(), request.user, pk=data["organization_id"]
        )
        backend = backends.create_backend(
            organization,
            acting_user(request),
            name=data["name"],
            url=data["url"],
            auth=data.get("auth", ""),
            media_base_url=data.get("media_base_url", ""),
            note=data.get("note", ""),
        )
        return Response(BackendSerializer(backend).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a model backend",
        description="Change its name, address, Authorization header, media address or note; "
        "fields left out keep their value. A new address or header forgets the last check.",
        request=BackendSerializer(partial=True),
        responses=BackendSerializer,
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        backend = self.get_object()
        form = BackendSerializer(backend, data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        data.pop("organization_id", None)
        backend = backends.update_backend(backend, acting_user(request), **data)
        return Response(BackendSerializer(backend).data)

    @extend_schema(
        summary="Replace a model backend's settings",
        description="As PATCH: the fields given change, the others keep their value.",
        request=BackendSerializer(partial=True),
        responses=BackendSerializer,
    )
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.partial_update(request, *args, **kwargs)

    @extend_schema(
        summary="Remove a model backend",
        description="Removes the backend (predictions it made stay).",
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().destroy(request, *args, **kwargs)

    def perform_destroy(self, instance: MLBackend) -> None:
        backends.delete_backend(instance, acting_user(self.request))

    @extend_schema(
        summary="Check a model backend",
        description="Asks the backend for `/health`, then, given a `project`, `/setup` with "
        "the project's labels as a Label Studio labeling config. Answers 200 with `ok`, the "
        "model version it named and the `problem` (`code`, `message`, `rule` when the guarded "
        "fetcher refused the address); the outcome is kept on the backend.",
        request=CheckSerializer,
        responses=CheckAnswer,
    )
    @action(detail=True, methods=["post"])
    def check(self, request: Request, pk: str) -> Response:
        backend = self.get_object()
        form = CheckSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        project = None
        if form.validated_data.get("project") is not None:
            project = get_scoped(
                Project.objects.filter(organization_id=backend.organization_id),
                request.user,
                pk=form.validated_data["project"],
            )
        health = backends.check(backend, acting_user(request), project=project)
        problem = None
        if health.problem is not None:
            problem = {"code": health.problem.code, "message": health.problem.message}
            rule = (health.problem.details or {}).get("rule")
            if rule:
                problem["rule"] = rule
        return Response(
            {
                "ok": health.ok,
                "model_version": health.model_version,
                "problem": problem,
                "backend": BackendSerializer(backend).data,
            }
        )
