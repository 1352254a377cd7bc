"""REST API for the organization's allowlist of non-global addresses its URL fetches may reach.

Everyone in an organization may read its allowlist (so an annotator whose import was refused can
see why); only roles that manage the organization may add or remove entries, and every change
lands in the audit trail."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from defectlab.ingest.models import AllowedNetwork
from defectlab.ingest.services import add_allowed_network, remove_allowed_network
from defectlab.params import query_int
from defectlab.tenancy.models import Organization, User
from defectlab.tenancy.roles import Can
from defectlab.tenancy.services import get_scoped, require
from defectlab.tenancy.viewsets import TenantViewSet, acting_user


class AllowedNetworkSerializer(serializers.ModelSerializer[AllowedNetwork]):
    organization = serializers.IntegerField(
        source="organization_id", help_text="The organization's id."
    )
    value = serializers.CharField(
        max_length=255,
        help_text="An address or a network inside a private range such as 10.20.0.0/24 (at most "
        "/8 for IPv4, /32 for IPv6), or an exact intranet host name. Stored in canonical form. "
        "Loopback, link-local, cloud metadata and the server's own addresses can only be opened "
        "by the operator (DEFECTLAB_FETCH_ALLOWLIST).",
    )
    kind = serializers.SerializerMethodField()
    in_effect = serializers.SerializerMethodField()
    problem = serializers.SerializerMethodField()
    created_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="email", read_only=True
    )

    class Meta:
        model = AllowedNetwork
        fields = [
            "id",
            "organization",
            "value",
            "kind",
            "in_effect",
            "problem",
            "note",
            "created_by",
            "created_at",
        ]
        read_only_fields = ["id", "kind", "in_effect", "problem", "created_by", "created_at"]
        extra_kwargs = {"note": {"help_text": "Why it is allowed, for the next admin (optional)."}}

    def get_kind(self, entry: AllowedNetwork) -> str:
        """``network`` or ``hostname``."""
        return entry.kind

    def get_in_effect(self, entry: AllowedNetwork) -> bool:
        """False for an entry stored before the rules forbade it: it lets nothing in."""
        return entry.problem is None

    def get_problem(self, entry: AllowedNetwork) -> str | None:
        """Why the entry is not in effect (it names the rule), or null."""
        return entry.problem


class AllowedNetworkViewSet(mixins.ListModelMixin, mixins.DestroyModelMixin, TenantViewSet):
    """The allowlist: addresses outside the public internet that URL imports may fetch from."""

    queryset = AllowedNetwork.objects.select_related("created_by").order_by("id")
    serializer_class = AllowedNetworkSerializer
    capabilities = {"destroy": Can.MANAGE_ORGANIZATION}

    def get_queryset(self) -> QuerySet[AllowedNetwork]:
        entries = super().get_queryset()
        organization = query_int(self.request.query_params, "organization")
        return entries.filter(organization_id=organization) if organization is not None else entries

    @extend_schema(
        parameters=[
            OpenApiParameter("organization", int, description="Only this organization's entries.")
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The allowlist entries of your organizations (every member may read them), each
        with `in_effect` and, when it lets nothing in, the `problem`."""
        return super().list(request, *args, **kwargs)

    def create(self, request: Request) -> Response:
        """Allow an address, network or intranet host name (admins): `{"organization",
        "value", "note"?}`. Loopback, link-local, metadata and the server's own addresses
        answer 400 `allowlist_operator_only`, naming the rule."""
        form = AllowedNetworkSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        organization = get_scoped(
            Organization.objects.all(), request.user, pk=data["organization_id"]
        )
        require(request.user, organization.pk, Can.MANAGE_ORGANIZATION)
        entry = add_allowed_network(
            organization, acting_user(request), data["value"], data.get("note", "")
        )
        return Response(AllowedNetworkSerializer(entry).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Remove an allowlist entry (admins): what only it let through is refused from now on."""
        return super().destroy(request, *args, **kwargs)

    def perform_destroy(self, instance: AllowedNetwork) -> None:
        remove_allowed_network(instance, acting_user(self.request))
