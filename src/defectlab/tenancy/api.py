"""REST API for sessions, tokens, organizations, members, invites and the audit trail."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import update_session_auth_hash
from django.db.models import QuerySet
from django.utils.functional import lazy
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from defectlab.params import keyset_page
from defectlab.schema import page_serializer
from defectlab.tenancy import services
from defectlab.tenancy.auth import refuse_cross_site_sign_in
from defectlab.tenancy.models import (
    ApiToken,
    AuditEvent,
    Invite,
    Membership,
    Organization,
    Role,
    User,
)
from defectlab.tenancy.roles import Can
from defectlab.tenancy.viewsets import TenantViewSet, acting_user

# ---------------------------------------------------------------------------- serializers


@extend_schema_serializer(many=False)  # GET /api/account/ answers the one account
class UserSerializer(serializers.ModelSerializer[User]):
    language = serializers.ChoiceField(
        choices=["", *services.language_codes()],
        required=False,
        error_messages={"invalid_choice": lazy(services.language_refusal, str)()},
        help_text="The language of pages, messages and errors (`en`, `zh-hans`); empty: the "
        "browser's.",
    )

    class Meta:
        model = User
        fields = ["id", "email", "name", "language"]
        read_only_fields = ["id", "email"]
        extra_kwargs = {"name": {"help_text": "The name others see, e.g. in review."}}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # settings.LANGUAGES as it is now, not as it was when this module was imported
        language = self.fields["language"]
        assert isinstance(language, serializers.ChoiceField)
        language.choices = ["", *services.language_codes()]


class LoginSerializer(serializers.Serializer[Any]):
    email = serializers.EmailField(help_text="The account's e-mail address.")
    password = serializers.CharField(style={"input_type": "password"}, help_text="Its password.")


class PasswordSerializer(serializers.Serializer[Any]):
    current_password = serializers.CharField(help_text="The password in use now.")
    new_password = serializers.CharField(
        help_text="The new password; a weak or common one is refused with the reason."
    )


class ApiTokenSerializer(serializers.ModelSerializer[ApiToken]):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "expires_at"]
        read_only_fields = ["id", "prefix", "created_at", "last_used_at"]
        extra_kwargs = {
            "name": {"help_text": "What the token is for, e.g. the script's name."},
            "expires_at": {"help_text": "When it stops working; null or left out: never."},
            "prefix": {"help_text": "The key's first characters, to tell tokens apart."},
        }


class NewApiTokenSerializer(ApiTokenSerializer):
    key = serializers.CharField(read_only=True, help_text="Shown once; store it now.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "key"]


class OrganizationSerializer(serializers.ModelSerializer[Organization]):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Organization
        fields = ["id", "name", "created_at", "role"]
        read_only_fields = ["id", "created_at", "role"]
        extra_kwargs = {"name": {"help_text": "The organization's name."}}

    def get_role(self, organization: Organization) -> str | None:
        """The caller's role in the organization."""
        return services.role_in(self.context["request"].user, organization.pk)


class MembershipSerializer(serializers.ModelSerializer[Membership]):
    user = UserSerializer(read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user", "role", "created_at"]
        read_only_fields = ["id", "user", "created_at"]
        extra_kwargs = {"role": {"help_text": "The member's role in the organization."}}


class InviteSerializer(serializers.ModelSerializer[Invite]):
    class Meta:
        model = Invite
        fields = ["id", "role", "email", "expires_at", "created_at", "accepted_at"]
        read_only_fields = ["id", "expires_at", "created_at", "accepted_at"]
        extra_kwargs = {
            "role": {"help_text": "The role the person gets on joining (at most your own)."},
            "email": {
                "help_text": "If given, only this e-mail address may accept; empty: anyone "
                "with the link."
            },
        }


class NewInviteSerializer(InviteSerializer):
    token = serializers.CharField(
        read_only=True, help_text="Shown once: the secret part of the invite link."
    )

    class Meta(InviteSerializer.Meta):
        fields = [*InviteSerializer.Meta.fields, "token"]


class InvitePreviewSerializer(serializers.Serializer[Any]):
    organization = serializers.CharField()
    role = serializers.CharField()
    email = serializers.CharField()


class AcceptInviteSerializer(serializers.Serializer[Any]):
    token = serializers.CharField(help_text="The invite's token (the end of its link).")
    email = serializers.EmailField(
        required=False, allow_blank=True, help_text="A new account's e-mail (when not signed in)."
    )
    password = serializers.CharField(
        required=False,
        allow_blank=True,
        style={"input_type": "password"},
        help_text="A new account's password (when not signed in).",
    )
    name = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=150,
        help_text="A new account's display name (optional).",
    )


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "actor_email",
            "action",
            "target_type",
            "target_id",
            "ip",
            "user_agent",
            "data",
            "created_at",
        ]


# ---------------------------------------------------------------------------- session & account


class AuthViewSet(viewsets.ViewSet):
    permission_classes = [AllowAny]

    @extend_schema(request=LoginSerializer, responses=UserSerializer)
    @action(detail=False, methods=["post"])
    def login(self, request: Request) -> Response:
        """Sign in with ``{"email", "password"}`` as JSON; 415 for any other body, 403 when the
        browser's Origin is another site (login CSRF)."""
        refuse_cross_site_sign_in(request)
        form = LoginSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        user = services.sign_in(
            request._request, form.validated_data["email"], form.validated_data["password"]
        )
        return Response(UserSerializer(user).data)

    @extend_schema(request=None, responses={204: None})
    @action(detail=False, methods=["post"])
    def logout(self, request: Request) -> Response:
        """End the session (204). API tokens are not affected: revoke those with
        `DELETE /api/tokens/{id}/`."""
        services.sign_out(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AccountViewSet(viewsets.ViewSet):
    @extend_schema(responses=UserSerializer)
    def list(self, request: Request) -> Response:
        """The signed-in account (one object, not a list): id, e-mail, name and language."""
        return Response(UserSerializer(acting_user(request)).data)

    @extend_schema(request=UserSerializer, responses=UserSerializer)
    @action(detail=False, methods=["patch"], url_path="profile")
    def update_profile(self, request: Request) -> Response:
        """Change your own `name` and `language`; fields left out keep their value."""
        form = UserSerializer(acting_user(request), data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        form.save()
        return Response(form.data)

    @extend_schema(request=PasswordSerializer, responses={204: None})
    @action(detail=False, methods=["post"])
    def password(self, request: Request) -> Response:
        """Change your password (204): the current one is checked, the new one must be strong
        enough. The session that asks stays signed in."""
        form = PasswordSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        user = acting_user(request)
        services.change_password(
            user, form.validated_data["current_password"], form.validated_data["new_password"]
        )
        update_session_auth_hash(request._request, user)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(description="Your personal API tokens, newest first (never their keys)."),
    destroy=extend_schema(description="Revoke one of your tokens: it stops working at once."),
)
class ApiTokenViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[ApiToken],
):
    """Your personal API tokens. A token acts as you, in every organization you belong to."""

    queryset = ApiToken.objects.all()
    serializer_class = ApiTokenSerializer

    def get_queryset(self) -> QuerySet[ApiToken]:
        return ApiToken.objects.filter(user=acting_user(self.request)).order_by("-id")

    @extend_schema(request=ApiTokenSerializer, responses={201: NewApiTokenSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Create a token, `{"name", "expires_at"?}`: the answer carries its `key` (`dl_…`)
        this once; send it as `Authorization: Bearer dl_…`. It acts as you in every
        organization you belong to."""
        form = ApiTokenSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        user = acting_user(request)
        token, key = services.create_api_token(
            user, form.validated_data["name"], form.validated_data.get("expires_at")
        )
        token.key = key  # type: ignore[attr-defined]
        return Response(NewApiTokenSerializer(token).data, status=status.HTTP_201_CREATED)


# ---------------------------------------------------------------------------- organizations


@extend_schema_view(
    list=extend_schema(description="The organizations you belong to, each with your `role`."),
    retrieve=extend_schema(description="One of your organizations, with your `role` in it."),
    update=extend_schema(description="Rename the organization (admins and owners)."),
    partial_update=extend_schema(description="Rename the organization (admins and owners)."),
    destroy=extend_schema(
        description="Delete the organization with everything in it: projects, tasks, jobs, "
        "members (owners only)."
    ),
)
class OrganizationViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    TenantViewSet,
):
    queryset = Organization.objects.order_by("id")
    serializer_class = OrganizationSerializer
    capabilities = {
        "update": Can.MANAGE_ORGANIZATION,
        "partial_update": Can.MANAGE_ORGANIZATION,
        "destroy": Can.DELETE_ORGANIZATION,
        "invites": Can.MANAGE_MEMBERS,
        "audit_events": Can.VIEW_AUDIT,
    }

    def create(self, request: Request) -> Response:
        """Create an organization, `{"name": "Plant 3"}`: any signed-in account may, and
        becomes its owner (201, with `role: "owner"`)."""
        form = OrganizationSerializer(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        user = acting_user(request)
        organization = services.create_organization(form.validated_data["name"], user)
        return Response(
            OrganizationSerializer(organization, context={"request": request}).data, status=201
        )

    def perform_update(self, serializer: Any) -> None:
        organization = serializer.instance
        name = serializer.validated_data.get("name", organization.name)
        services.rename_organization(acting_user(self.request), organization, name)

    @extend_schema(responses=MembershipSerializer(many=True))
    @action(detail=True, methods=["get"])
    def members(self, request: Request, pk: str) -> Response:
        """The organization's members, each with their account and role (change one with
        `PATCH /api/memberships/{id}/`)."""
        organization = self.get_object()
        memberships = (
            Membership.objects.filter(organization=organization)
            .select_related("user")
            .order_by("id")
        )
        return Response(MembershipSerializer(memberships, many=True).data)

    @extend_schema(
        methods=["get"],
        responses=InviteSerializer(many=True),
        description="The invites not yet accepted, newest first (admins).",
    )
    @extend_schema(
        methods=["post"],
        request=InviteSerializer,
        responses={201: NewInviteSerializer},
        description='Invite someone (admins): `{"role", "email"?}`. The answer carries '
        "the invite's `token` once; the link to share is `/invite/{token}/`, and "
        "`POST /api/invites/accept/` uses it.",
    )
    @action(detail=True, methods=["get", "post"])
    def invites(self, request: Request, pk: str) -> Response:
        organization = self.get_object()
        if request.method == "GET":
            pending = Invite.objects.filter(
                organization=organization, accepted_at__isnull=True
            ).order_by("-id")
            return Response(InviteSerializer(pending, many=True).data)
        form = InviteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        user = acting_user(request)
        invite, token = services.create_invite(
            user, organization, form.validated_data["role"], form.validated_data.get("email", "")
        )
        invite.token = token  # type: ignore[attr-defined]
        return Response(NewInviteSerializer(invite).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[
            OpenApiParameter("cursor", str, description="`next_cursor` of the previous page.")
        ],
        responses=page_serializer("AuditEventPageSerializer", AuditEventSerializer),
    )
    @action(detail=True, methods=["get"], url_path="audit-events")
    def audit_events(self, request: Request, pk: str) -> Response:
        """The organization's audit trail (admins), newest first, 100 a page: who did what to
        which target, when and from which address."""
        organization = self.get_object()
        page, next_cursor = keyset_page(
            AuditEvent.objects.filter(organization=organization),
            request.query_params.get("cursor"),
            100,
            descending=True,
        )
        return Response(
            {"results": AuditEventSerializer(page, many=True).data, "next_cursor": next_cursor}
        )


@extend_schema_view(
    update=extend_schema(
        description="Change a member's role (admins; only owners make or unmake owners; the "
        "last owner stays one)."
    ),
    partial_update=extend_schema(
        description="Change a member's role (admins; only owners make or unmake owners; the "
        "last owner stays one)."
    ),
    destroy=extend_schema(
        description="Remove a member from the organization (admins; the last owner stays)."
    ),
)
class MembershipViewSet(mixins.UpdateModelMixin, mixins.DestroyModelMixin, TenantViewSet):
    queryset = Membership.objects.select_related("user")
    serializer_class = MembershipSerializer
    capabilities = {
        "update": Can.MANAGE_MEMBERS,
        "partial_update": Can.MANAGE_MEMBERS,
        "destroy": Can.MANAGE_MEMBERS,
    }

    def perform_update(self, serializer: Any) -> None:
        role = serializer.validated_data.get("role", serializer.instance.role)
        services.change_role(acting_user(self.request), serializer.instance, role)

    def perform_destroy(self, instance: Membership) -> None:
        services.remove_member(acting_user(self.request), instance)


@extend_schema_view(
    destroy=extend_schema(description="Revoke an invite that has not been accepted (admins).")
)
class InviteViewSet(mixins.DestroyModelMixin, TenantViewSet):
    queryset = Invite.objects.all()
    serializer_class = InviteSerializer
    capabilities = {"destroy": Can.MANAGE_MEMBERS}

    def perform_destroy(self, instance: Invite) -> None:
        services.revoke_invite(acting_user(self.request), instance)

    @extend_schema(
        responses=InvitePreviewSerializer,
        parameters=[
            OpenApiParameter("token", str, OpenApiParameter.PATH, description="The invite's token.")
        ],
    )
    @action(
        detail=False,
        methods=["get"],
        permission_classes=[AllowAny],
        url_path=r"preview/(?P<token>[^/]+)",
    )
    def preview(self, request: Request, token: str) -> Response:
        """What an invite link offers, shown before the person signs up."""
        invite = services.find_invite(token)
        return Response(
            {
                "organization": invite.organization.name,
                "role": Role(invite.role).label,
                "email": invite.email,
            }
        )

    @extend_schema(request=AcceptInviteSerializer, responses={201: MembershipSerializer})
    @action(detail=False, methods=["post"], permission_classes=[AllowAny])
    def accept(self, request: Request) -> Response:
        """Join through an invite: signed in, or by creating an account with e-mail and password
        (JSON only, and not from another site: it may sign the caller in)."""
        refuse_cross_site_sign_in(request)
        form = AcceptInviteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        user = request.user if isinstance(request.user, User) else None
        membership = services.accept_invite(
            data["token"],
            user=user,
            email=data.get("email", ""),
            password=data.get("password", ""),
            name=data.get("name", ""),
        )
        if user is None:
            services.start_session(request._request, membership.user)
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)
