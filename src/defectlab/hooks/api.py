"""REST API for webhooks: `/api/webhooks/`.

Roles that manage the organization (admins, owners) see and change its webhooks; other members
get 403, and another organization's webhook answers 404. The secret is shown once, in the answer
that makes it (create, rotate-secret); deliveries are listed newest first and can be sent again."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from defectlab.hooks import services
from defectlab.hooks.models import SUBSCRIBABLE, Delivery, Webhook
from defectlab.params import keyset_page, query_int
from defectlab.schema import page_serializer
from defectlab.tenancy.models import Membership, Organization, User
from defectlab.tenancy.roles import GRANTS, Can
from defectlab.tenancy.services import get_scoped, require
from defectlab.tenancy.viewsets import TenantViewSet, acting_user

PAGE = 50
MANAGE = Can.MANAGE_ORGANIZATION


class WebhookSerializer(serializers.ModelSerializer[Webhook]):
    organization = serializers.IntegerField(
        source="organization_id",
        help_text="The organization whose events are sent (you must be its admin or owner).",
    )
    project = serializers.IntegerField(
        source="project_id",
        required=False,
        allow_null=True,
        help_text="Only this project's events; null for every project of the organization.",
    )
    url = serializers.CharField(
        max_length=2048,
        help_text="http(s) address that receives the events as signed JSON POSTs. A private "
        "address must be in the organization's allowlist; loopback only if the operator opened "
        "it (DEFECTLAB_FETCH_ALLOWLIST).",
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=[(event, event) for event in SUBSCRIBABLE]),
        min_length=1,
        help_text="The events to receive (at least one).",
    )
    created_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="email", read_only=True
    )

    class Meta:
        model = Webhook
        fields = [
            "id",
            "organization",
            "project",
            "url",
            "events",
            "active",
            "note",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_by", "created_at", "updated_at"]
        extra_kwargs = {
            "active": {"help_text": "false pauses deliveries without removing the webhook."},
            "note": {"help_text": "Free text for people: what the receiver is."},
        }


class NewWebhookSerializer(WebhookSerializer):
    secret = serializers.CharField(
        required=False,
        min_length=services.MIN_SECRET,
        max_length=200,
        trim_whitespace=False,
        help_text="Signs every delivery. Leave out to have one made. Answered once, here.",
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


class DeliverySerializer(serializers.ModelSerializer[Delivery]):
    webhook = serializers.IntegerField(source="webhook_id", read_only=True)
    job = serializers.IntegerField(source="job_id", read_only=True, allow_null=True)
    redelivery_of = serializers.UUIDField(
        source="redelivery_of.uuid", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = Delivery
        fields = [
            "id",
            "uuid",
            "webhook",
            "event",
            "status",
            "attempts",
            "status_code",
            "error",
            "duration_ms",
            "payload",
            "job",
            "redelivery_of",
            "created_at",
            "last_attempt_at",
            "delivered_at",
        ]
        read_only_fields = fields


SecretSerializer = inline_serializer("WebhookSecret", {"secret": serializers.CharField()})


class WebhookViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, TenantViewSet
):
    """An organization's webhooks and their delivery logs."""

    queryset = Webhook.objects.select_related("created_by").order_by("id")
    serializer_class = WebhookSerializer
    capabilities = dict.fromkeys(
        [
            "retrieve",
            "update",
            "partial_update",
            "destroy",
            "deliveries",
            "redeliver",
            "ping",
            "rotate_secret",
        ],
        MANAGE,
    )

    def get_queryset(self) -> QuerySet[Webhook]:
        rows = super().get_queryset()
        if self.action == "list":  # only where the caller may manage webhooks
            roles = [role for role, grants in GRANTS.items() if MANAGE in grants]
            managed = Membership.objects.filter(
                user_id=acting_user(self.request).pk, role__in=roles
            )
            rows = rows.filter(organization_id__in=managed.values("organization_id"))
        organization = query_int(self.request.query_params, "organization")
        return rows.filter(organization_id=organization) if organization is not None else rows

    @extend_schema(
        summary="List webhooks",
        description="The webhooks of the organizations where you are an admin or the owner "
        "(`?organization=` narrows to one). Secrets are never listed.",
        parameters=[
            OpenApiParameter("organization", int, description="Only this organization's webhooks.")
        ],
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="Show a webhook",
        description="One webhook (admins and owners of its organization; the secret is not shown).",
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary="Create a webhook",
        description="Subscribe an address to events of the organization (or of one project). "
        "The answer holds the secret that signs the deliveries: it is shown this once.",
        request=NewWebhookSerializer,
        responses={201: NewWebhookSerializer},
    )
    def create(self, request: Request) -> Response:
        form = NewWebhookSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        organization = get_scoped(
            Organization.objects.all(), request.user, pk=data["organization_id"]
        )
        require(request.user, organization.pk, MANAGE)
        hook, secret = services.create_webhook(
            organization,
            acting_user(request),
            url=data["url"],
            events=data["events"],
            project=data.get("project_id"),
            note=data.get("note", ""),
            secret=data.get("secret", ""),
            active=data.get("active", True),
        )
        answer = WebhookSerializer(hook).data | {"secret": secret}
        return Response(answer, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a webhook",
        description="Change its address, events, project, note, or turn it off and on; fields "
        "left out keep their value. The organization and the secret cannot change here.",
        request=WebhookSerializer(partial=True),
        responses=WebhookSerializer,
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        hook = self.get_object()
        form = WebhookSerializer(hook, data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        data.pop("organization_id", None)
        if "project_id" in data:
            data["project"] = data.pop("project_id")
        hook = services.update_webhook(hook, acting_user(request), **data)
        return Response(WebhookSerializer(hook).data)

    @extend_schema(
        summary="Replace a webhook's settings",
        description="As PATCH: the fields given change, the others keep their value.",
        request=WebhookSerializer(partial=True),
        responses=WebhookSerializer,
    )
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.partial_update(request, *args, **kwargs)

    @extend_schema(
        summary="Delete a webhook",
        description="Removes the webhook and its delivery log; deliveries not yet sent are dropped.",
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().destroy(request, *args, **kwargs)

    def perform_destroy(self, instance: Webhook) -> None:
        services.delete_webhook(instance, acting_user(self.request))

    @extend_schema(
        summary="List a webhook's deliveries",
        description="Newest first, in pages (`cursor`): each delivery's event, status "
        "(pending, succeeded, failed), attempts, last HTTP status code, last error, duration "
        "and the payload sent.",
        parameters=[
            OpenApiParameter("cursor", str, description="`next_cursor` of the previous page.")
        ],
        responses=page_serializer("DeliveryPage", DeliverySerializer),
    )
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, pk: str) -> Response:
        hook = self.get_object()
        rows = Delivery.objects.filter(webhook=hook).select_related("redelivery_of")
        page, next_cursor = keyset_page(
            rows, request.query_params.get("cursor"), PAGE, descending=True
        )
        return Response(
            {"results": DeliverySerializer(page, many=True).data, "next_cursor": next_cursor}
        )

    @extend_schema(
        summary="Send a delivery again",
        description="Queues the same payload to the webhook again as a new delivery (with a "
        "new X-DefectLab-Delivery id); answers 202 with it.",
        request=None,
        responses={202: DeliverySerializer},
        parameters=[
            OpenApiParameter(
                "delivery",
                int,
                OpenApiParameter.PATH,
                description="The id of the delivery to send again (one of this webhook's).",
            )
        ],
    )
    @action(
        detail=True,
        methods=["post"],
        url_path=r"deliveries/(?P<delivery>[0-9]+)/redeliver",
        url_name="redeliver",
    )
    def redeliver(self, request: Request, pk: str, delivery: str) -> Response:
        hook = self.get_object()
        original = get_scoped(Delivery.objects.filter(webhook=hook), request.user, pk=delivery)
        again = services.redeliver(original, acting_user(request))
        return Response(DeliverySerializer(again).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Send a test ping",
        description="Queues a `ping` event to the webhook, signed like every delivery, to "
        "check that the receiver gets and verifies it; answers 202 with the delivery.",
        request=None,
        responses={202: DeliverySerializer},
    )
    @action(detail=True, methods=["post"])
    def ping(self, request: Request, pk: str) -> Response:
        delivery = services.ping(self.get_object(), acting_user(request))
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Make a new secret",
        description="Replaces the webhook's secret at once and answers the new one (shown "
        "this once); deliveries sent from now on are signed with it.",
        request=None,
        responses=SecretSerializer,
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str) -> Response:
        secret = services.rotate_secret(self.get_object(), acting_user(request))
        return Response({"secret": secret})
