"""REST API of the detection service's control plane, under the organization's own address
(registered on the same prefix as tenancy's ``OrganizationViewSet``, which knows nothing of it):

* ``GET|POST /api/organizations/{id}/service-keys/`` — the organization's API keys; a new one
  answers its secret text once (admins);
* ``GET /api/service-keys/{id}/``, ``POST /api/service-keys/{id}/revoke/`` — one key (admins);
* ``GET|PUT|PATCH /api/organizations/{id}/quota/`` — its limits: read by admins, changed only
  by the platform operator (a staff account; 403 for everyone else);
* ``GET /api/organizations/{id}/usage/`` — its use per UTC day, as JSON, or as the billing CSV
  with ``?format=csv`` or ``Accept: text/csv``.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse, HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from defectlab.api import CsvRenderer
from defectlab.serving import keys, quotas, usage
from defectlab.serving.models import OrganizationKey, Scope
from defectlab.tenancy.models import Organization
from defectlab.tenancy.roles import Can
from defectlab.tenancy.viewsets import TenantViewSet, acting_user

LARGEST = 2147483647


class ServiceKeySerializer(serializers.ModelSerializer[OrganizationKey]):
    organization = serializers.IntegerField(
        source="organization_id", read_only=True, help_text="The organization's id."
    )
    prefix = serializers.SerializerMethodField(
        help_text="How the key's text starts (`dlk_<key_id>`), to tell keys apart."
    )
    created_by = serializers.SlugRelatedField(slug_field="email", read_only=True, allow_null=True)  # type: ignore[var-annotated]
    revoked_by = serializers.SlugRelatedField(slug_field="email", read_only=True, allow_null=True)  # type: ignore[var-annotated]
    active = serializers.SerializerMethodField(help_text="Not revoked.")

    class Meta:
        model = OrganizationKey
        fields = [
            "id",
            "organization",
            "name",
            "key_id",
            "prefix",
            "scopes",
            "signed_only",
            "active",
            "created_at",
            "created_by",
            "last_used_at",
            "revoked_at",
            "revoked_by",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "key_id": {"help_text": "The key's public id (signed requests name it)."},
            "scopes": {"help_text": "What the key may do: `detect`, `models`."},
            "signed_only": {"help_text": "Requests must be signed; the key alone is refused."},
            "last_used_at": {"help_text": "When the detection service last admitted it."},
            "revoked_at": {"help_text": "When it was revoked (null: in use)."},
        }

    def get_prefix(self, key: OrganizationKey) -> str:
        return usage.public_key_id(key.key_id)

    def get_active(self, key: OrganizationKey) -> bool:
        return key.revoked_at is None


class NewServiceKeySerializer(ServiceKeySerializer):
    key = serializers.CharField(
        read_only=True, help_text="The key's text (`dlk_…`): answered this once, never again."
    )

    class Meta(ServiceKeySerializer.Meta):
        fields = [*ServiceKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class ServiceKeyCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100, help_text="What the key is for, e.g. `line 3`.")
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=Scope.choices),
        min_length=1,
        required=False,
        help_text="What the key may do: `detect` (ask for detections), `models` (manage "
        'models). Default `["detect"]`.',
    )
    signed_only = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Refuse requests that send the key itself; only signed requests pass.",
    )


def _limit(help_text: str) -> serializers.IntegerField:
    return serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=LARGEST, help_text=help_text
    )


class QuotaSerializer(serializers.Serializer[Any]):
    requests_per_minute = _limit("Detection requests per minute; null: no limit.")
    images_per_day = _limit("Images sent for detection per UTC day; null: no limit.")
    concurrent_requests = _limit("Requests in progress at once; null: no limit.")
    max_image_mb = _limit("Largest image in MB; null: only the upload limit.")
    weight = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=quotas.MAX_WEIGHT,
        help_text="Share of a busy model when organizations wait for it (the plan): 1 to 100.",
    )
    custom = serializers.BooleanField(
        read_only=True,
        help_text="Set by the operator; false: the installation's defaults apply.",
    )


COUNTS: dict[str, serializers.Field[Any, Any, Any, Any]] = {
    "calls": serializers.IntegerField(help_text="Calls answered."),
    "images": serializers.IntegerField(help_text="Images sent."),
    "detections": serializers.IntegerField(help_text="Detections answered."),
    "errors": serializers.IntegerField(help_text="Calls answered with a status of 400 or more."),
}
UsageAnswer = inline_serializer(
    "Usage",
    {
        "organization": serializers.IntegerField(),
        "start": serializers.DateField(help_text="The first day (UTC), included."),
        "end": serializers.DateField(help_text="The last day (UTC), included."),
        "by": serializers.ListField(child=serializers.CharField(), help_text="The groupings."),
        "rows": inline_serializer(
            "UsageRow",
            {
                "date": serializers.DateField(),
                "key_id": serializers.CharField(required=False, allow_null=True),
                "key_name": serializers.CharField(required=False),
                "model": serializers.CharField(required=False),
                "version": serializers.IntegerField(required=False, allow_null=True),
                **COUNTS,
            },
            many=True,
        ),
        "totals": inline_serializer("UsageTotals", COUNTS),
    },
)
USAGE_PARAMETERS = [
    OpenApiParameter("start", OpenApiTypes.DATE, description="First day (UTC), included."),
    OpenApiParameter(
        "end", OpenApiTypes.DATE, description="Last day (UTC), included [default: today]."
    ),
    OpenApiParameter(
        "days",
        int,
        description=f"Without `start`: this many days up to `end` (1 to {usage.MAX_DAYS}) "
        f"[default: {usage.DEFAULT_DAYS}].",
    ),
    OpenApiParameter(
        "by",
        str,
        many=True,
        enum=list(usage.GROUPINGS),
        description="Also per `key` and/or per model `version` (repeat the parameter).",
    ),
    OpenApiParameter(
        "format",
        str,
        enum=["json", "csv"],
        description="`csv`: the billing CSV (one row per day × key × model version), as "
        "`Accept: text/csv` asks too.",
    ),
]


class OrganizationServingViewSet(TenantViewSet):
    """The detection service's keys, quota and usage of an organization."""

    queryset = Organization.objects.order_by("id")
    serializer_class = QuotaSerializer  # what OPTIONS describes; each action names its own
    capabilities = dict.fromkeys(["service_keys", "quota", "usage"], Can.MANAGE_ORGANIZATION)

    def capability(self) -> Can:
        if self.action == "quota" and self.request.method in ("PUT", "PATCH"):
            return Can.VIEW  # the operator, whatever their role here; quotas.set_quota decides
        return super().capability()

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        # A refusal of a CSV request is answered in the one error shape, as JSON.
        renderer = getattr(request, "accepted_renderer", None)
        if isinstance(response, Response) and isinstance(renderer, CsvRenderer):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = "application/json"
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        methods=["get"],
        responses=ServiceKeySerializer(many=True),
        description="The organization's API keys for the detection service, newest first, "
        "revoked ones too (admins). Never their text.",
    )
    @extend_schema(
        methods=["post"],
        request=ServiceKeyCreateSerializer,
        responses={201: NewServiceKeySerializer},
        description='Make a key (admins): `{"name", "scopes"?, "signed_only"?}`. The answer '
        "carries the key's text in `key` this once; only its SHA-256 is kept.",
    )
    @action(detail=True, methods=["get", "post"], url_path="service-keys")
    def service_keys(self, request: Request, pk: str) -> Response:
        organization = self.get_object()
        if request.method == "GET":
            rows = keys.keys_of(organization).select_related("created_by", "revoked_by")
            return Response(ServiceKeySerializer(rows, many=True).data)
        form = ServiceKeyCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        key, text = keys.create_key(
            organization,
            acting_user(request),
            data["name"],
            data.get("scopes") or [Scope.DETECT],
            signed_only=data["signed_only"],
        )
        key.key = text  # type: ignore[attr-defined]
        return Response(NewServiceKeySerializer(key).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        methods=["get"],
        responses=QuotaSerializer,
        description="The organization's limits on the detection service (admins): its own, "
        "or the installation's defaults (`custom: false`). null means no limit.",
    )
    @extend_schema(
        methods=["put", "patch"],
        request=QuotaSerializer,
        responses=QuotaSerializer,
        description="Change the limits (the platform operator only, a staff account: 403 for "
        "everyone else). Fields left out keep their value; null lifts a limit.",
    )
    @action(detail=True, methods=["get", "put", "patch"])
    def quota(self, request: Request, pk: str) -> Response:
        organization = self.get_object()
        if request.method == "GET":
            return Response(quotas.limits_of(organization.pk).as_dict())
        quotas.require_operator(acting_user(request))  # before the body: 403, not 400
        form = QuotaSerializer(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        limits = quotas.set_quota(organization, acting_user(request), **form.validated_data)
        return Response(limits.as_dict())

    @extend_schema(
        parameters=USAGE_PARAMETERS,
        responses={(200, "application/json"): UsageAnswer, (200, "text/csv"): OpenApiTypes.STR},
        description="The organization's use of the detection service per UTC day (admins): "
        "calls, images, detections, errors (status 400 or more), with `totals`; per day of "
        "the range (quiet days at 0), or with `by`, per day and key / model version. "
        "`?format=csv` (or `Accept: text/csv`) answers the billing CSV: date, organization_id, "
        "key_id, key_name, model, version, calls, images, detections, errors.",
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, CsvRenderer])
    def usage(self, request: Request, pk: str) -> HttpResponseBase:
        organization = self.get_object()
        query = request.query_params
        span = usage.span_of(query.get("start"), query.get("end"), query.get("days"))
        if request.accepted_renderer.format == "csv":
            return HttpResponse(
                usage.billing_csv(organization.pk, span),
                content_type="text/csv; charset=utf-8",
                headers={
                    "Content-Disposition": "attachment; "
                    f'filename="{usage.csv_file_name(organization.pk, span)}"'
                },
            )
        grouping = [part for value in query.getlist("by") for part in value.split(",")]
        found = usage.usage_of(organization.pk, span, grouping)
        return Response(
            {
                "organization": organization.pk,
                "start": span.first.isoformat(),
                "end": span.last.isoformat(),
                "by": list(found.by),
                "rows": [row.as_dict(found.by) for row in found.rows],
                "totals": found.totals.as_dict(),
            }
        )


class ServiceKeyViewSet(mixins.RetrieveModelMixin, TenantViewSet):
    """One API key of the detection service."""

    queryset = OrganizationKey.objects.select_related("created_by", "revoked_by").order_by("id")
    serializer_class = ServiceKeySerializer
    capabilities = dict.fromkeys(["retrieve", "revoke"], Can.MANAGE_ORGANIZATION)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """One key of an organization (admins), never its text."""
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(request=None, responses=ServiceKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str) -> Response:
        """Revoke the key (admins): the detection service refuses it on every replica within
        DEFECTLAB_INFERENCE_REFRESH_SECONDS. Revoking it again changes nothing. The key stays
        listed (its calls name it)."""
        revoked = keys.revoke_key(self.get_object(), acting_user(request))
        return Response(ServiceKeySerializer(self.get_queryset().get(pk=revoked.pk)).data)
