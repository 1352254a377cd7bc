"""Tenancy logic: scoping every query to the caller's organizations, roles, invites, tokens,
signing in and out (with login throttling) and the audit trail. Each change here writes its own
audit row with the actor, so the API, the pages and the command write the same one."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth import authenticate, login, logout
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import IntegrityError, models, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from defectlab.errors import Conflict, Forbidden, Invalid, NotFound, Throttled
from defectlab.tenancy.audit import AuditAction, request_origin
from defectlab.tenancy.models import (
    ApiToken,
    AuditEvent,
    Invite,
    LoginFailure,
    Membership,
    Organization,
    Role,
    User,
    normalize_email,
)
from defectlab.tenancy.roles import Can, allows, may_grant

M = TypeVar("M", bound=models.Model)

# ---------------------------------------------------------------------------- scoping


def scoped(queryset: models.QuerySet[M], user: Any) -> models.QuerySet[M]:
    """The one door to tenant-owned rows: only those of organizations ``user`` belongs to.

    Every model it is used with has an ``organization`` (or is the Organization itself)."""
    if not getattr(user, "is_authenticated", False):
        return queryset.none()
    member_of = Membership.objects.filter(user_id=user.pk).values("organization_id")
    if queryset.model is Organization:
        return queryset.filter(id__in=member_of)
    return queryset.filter(organization_id__in=member_of)


def get_scoped(queryset: models.QuerySet[M], user: Any, **lookup: Any) -> M:
    """One row the user may see, or NotFound — the same answer whether it exists elsewhere or not."""
    try:
        return scoped(queryset, user).get(**lookup)
    except (ObjectDoesNotExist, ValueError, TypeError, ValidationError):
        raise NotFound(_("Not found.")) from None


def role_in(user: Any, organization_id: int) -> str | None:
    cache: dict[int, str | None] = user.__dict__.setdefault("_defectlab_roles", {})
    if organization_id not in cache:
        cache[organization_id] = (
            Membership.objects.filter(user_id=user.pk, organization_id=organization_id)
            .values_list("role", flat=True)
            .first()
        )
    return cache[organization_id]


def require(user: Any, organization_id: int, capability: Can) -> str:
    """The caller's role, if it allows ``capability``; Forbidden for members who lack it."""
    role = role_in(user, organization_id)
    if role is None:
        raise NotFound(_("Not found."))
    if not allows(role, capability):
        raise Forbidden(_("Your role does not allow this."))
    return role


# ---------------------------------------------------------------------------- organizations


@transaction.atomic
def create_organization(name: str, owner: User) -> Organization:
    """A new organization with ``owner`` as its first owner (and in the audit trail)."""
    organization = Organization.objects.create(name=name)
    Membership.objects.create(organization=organization, user=owner, role=Role.OWNER)
    record(
        None,
        AuditAction.ORGANIZATION_CREATED,
        organization=organization,
        target=organization,
        actor=owner,
    )
    return organization


def rename_organization(actor: User | None, organization: Organization, name: str) -> Organization:
    """Change an organization's name (the caller checks the actor's role)."""
    organization.name = name
    organization.save(update_fields=["name"])
    record(
        None,
        AuditAction.ORGANIZATION_UPDATED,
        organization=organization,
        target=organization,
        actor=actor,
    )
    return organization


def change_role(actor: User, membership: Membership, role: str) -> Membership:
    actor_role = role_in(actor, membership.organization_id)
    if not (may_grant(actor_role, role) and may_grant(actor_role, membership.role)):
        raise Forbidden(_("Your role does not allow this."))
    if membership.role == Role.OWNER and role != Role.OWNER:
        _keep_an_owner(membership)
    membership.role = role
    membership.save(update_fields=["role"])
    record(
        None,
        AuditAction.MEMBER_ROLE_CHANGED,
        organization=membership.organization_id,
        target=membership,
        actor=actor,
        data={"role": role, "user": membership.user.email},
    )
    return membership


def remove_member(actor: User, membership: Membership) -> None:
    if not may_grant(role_in(actor, membership.organization_id), membership.role):
        raise Forbidden(_("Your role does not allow this."))
    if membership.role == Role.OWNER:
        _keep_an_owner(membership)
    membership.delete()
    record(
        None,
        AuditAction.MEMBER_REMOVED,
        organization=membership.organization_id,
        actor=actor,
        data={"user": membership.user.email},
    )


def _keep_an_owner(membership: Membership) -> None:
    owners = Membership.objects.filter(organization_id=membership.organization_id, role=Role.OWNER)
    if owners.exclude(pk=membership.pk).count() == 0:
        raise Conflict(_("An organization needs at least one owner."))


# ---------------------------------------------------------------------------- invites


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_invite(
    actor: User, organization: Organization, role: str, email: str = ""
) -> tuple[Invite, str]:
    """A new invite from ``actor`` (in the audit trail) and its token. The token is returned
    once; only its hash is kept."""
    if not may_grant(role_in(actor, organization.pk), role):
        raise Forbidden(_("Your role does not allow this."))
    token = secrets.token_urlsafe(32)
    invite = Invite.objects.create(
        organization=organization,
        role=role,
        email=normalize_email(email) if email else "",
        token_hash=_digest(token),
        expires_at=timezone.now() + timedelta(hours=settings.INVITE_TTL_HOURS),
        created_by=actor,
    )
    record(
        None,
        AuditAction.INVITE_CREATED,
        organization=organization,
        target=invite,
        actor=actor,
        data={"role": invite.role, "email": invite.email},
    )
    return invite, token


def revoke_invite(actor: User, invite: Invite) -> None:
    """Delete an unused invite (the caller checks the actor's role)."""
    record(
        None,
        AuditAction.INVITE_REVOKED,
        organization=invite.organization_id,
        target=invite,
        actor=actor,
    )
    invite.delete()


def find_invite(token: str, *, for_update: bool = False) -> Invite:
    """The usable invite behind ``token``, else NotFound. ``for_update`` (inside a transaction)
    locks its row first, so whoever waited behind another acceptance sees it used."""
    invites = Invite.objects.select_related("organization").filter(token_hash=_digest(token))
    if for_update:
        invites = invites.select_for_update(of=("self",))
    invite = invites.first()
    if invite is None or not invite.is_usable:
        raise NotFound(_("This invite link is not valid any more. Ask for a new one."))
    return invite


@transaction.atomic
def accept_invite(
    token: str,
    *,
    user: User | None = None,
    email: str = "",
    password: str = "",
    name: str = "",
) -> Membership:
    """Join an organization through an invite: as the signed-in ``user``, or as a new account
    (the caller signs it in). The audit row names the person who joined.

    The invite's row is locked and checked again under the lock: of many acceptances at once,
    one joins and the others find the invite used."""
    invite = find_invite(token, for_update=True)
    if user is None:
        email = normalize_email(email)
        if not email:
            raise Invalid(_("Enter your e-mail address."))
        if invite.email and invite.email != email:
            raise Invalid(_("This invite is for a different e-mail address."))
        if User.objects.filter(email=email).exists():
            raise Conflict(
                _("An account with this e-mail exists. Log in, then open the invite link again.")
            )
        _check_password_strength(password)
        user = User.objects.create_user(email=email, password=password, name=name)
    elif invite.email and invite.email != user.email:
        raise Invalid(_("This invite is for a different e-mail address."))
    already = Conflict(_("You are already a member of this organization."))
    if Membership.objects.filter(organization_id=invite.organization_id, user=user).exists():
        raise already
    try:
        with transaction.atomic():
            membership = Membership.objects.create(
                organization_id=invite.organization_id, user=user, role=invite.role
            )
    except IntegrityError:
        raise already from None  # joined meanwhile through another invite
    invite.accepted_by = user
    invite.accepted_at = timezone.now()
    invite.save(update_fields=["accepted_by", "accepted_at"])
    record(
        None,
        AuditAction.INVITE_ACCEPTED,
        organization=membership.organization_id,
        target=membership,
        actor=user,
    )
    return membership


def _check_password_strength(password: str, user: User | None = None) -> None:
    try:
        validate_password(password, user)
    except ValidationError as error:
        raise Invalid(" ".join(error.messages)) from None


def change_password(user: User, current: str, new: str) -> None:
    if not user.check_password(current):
        raise Invalid(_("The current password is wrong."))
    _check_password_strength(new, user)
    user.set_password(new)
    user.save(update_fields=["password"])
    record(None, AuditAction.PASSWORD_CHANGED, actor=user)


# ---------------------------------------------------------------------------- API tokens

TOKEN_PREFIX = "dl_"


def create_api_token(user: User, name: str, expires_at: Any = None) -> tuple[ApiToken, str]:
    key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=key[:11], key_hash=_digest(key), expires_at=expires_at
    )
    record(None, AuditAction.API_TOKEN_CREATED, target=token, actor=user)
    return token, key


def user_for_api_key(key: str) -> User | None:
    if not key.startswith(TOKEN_PREFIX):
        return None
    token = ApiToken.objects.select_related("user").filter(key_hash=_digest(key)).first()
    now = timezone.now()
    if token is None or not token.user.is_active or (token.expires_at and token.expires_at <= now):
        return None
    # Touch at most once a minute so a busy script does not turn every read into a write.
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


# ---------------------------------------------------------------------------- login


def client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    if settings.PROXY_HEADERS and request.META.get("HTTP_X_FORWARDED_FOR"):
        return request.META["HTTP_X_FORWARDED_FOR"].split(",")[0].strip() or None
    return request.META.get("REMOTE_ADDR") or None


def check_credentials(request: HttpRequest, email: str, password: str) -> User:
    """The user these credentials belong to; Throttled after too many recent failures."""
    email = normalize_email(email)
    ip = client_ip(request)
    since = timezone.now() - timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)
    recent = LoginFailure.objects.filter(created_at__gte=since)
    if recent.filter(email=email).count() >= settings.LOGIN_MAX_FAILURES or (
        ip and recent.filter(ip=ip).count() >= 4 * settings.LOGIN_MAX_FAILURES
    ):
        record(request, AuditAction.LOGIN_THROTTLED, data={"email": email})
        raise Throttled(
            _("Too many failed attempts. Wait %(minutes)s minutes and try again.")
            % {"minutes": max(1, settings.LOGIN_LOCKOUT_SECONDS // 60)}
        )
    user = authenticate(request, email=email, password=password)
    if user is None:
        LoginFailure.objects.create(email=email, ip=ip)
        record(request, AuditAction.LOGIN_FAILED, data={"email": email})
        raise Invalid(_("E-mail or password is wrong."), code="invalid_credentials")
    LoginFailure.objects.filter(email=email).delete()
    assert isinstance(user, User)
    return user


def sign_in(request: HttpRequest, email: str, password: str) -> User:
    """Sign in with e-mail and password (:func:`check_credentials`): the session starts on
    ``request`` and the login is in the audit trail. The API and the login page both call it."""
    user = check_credentials(request, email, password)
    start_session(request, user)
    record(None, AuditAction.LOGIN, actor=user)
    return user


def start_session(request: HttpRequest, user: User) -> None:
    """Sign ``user`` in on ``request`` without a password: a new account that joined through an
    invite (its ``invite.accepted`` row says so), or after :func:`check_credentials`."""
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")


def sign_out(request: HttpRequest) -> None:
    """End the session on ``request``; a signed-in person's logout is in the audit trail."""
    user = getattr(request, "user", None)
    if isinstance(user, User):
        record(None, AuditAction.LOGOUT, actor=user)
    logout(request)


# ---------------------------------------------------------------------------- languages


def language_codes() -> list[str]:
    """The interface languages a person may choose: those of ``settings.LANGUAGES``."""
    return [code for code, _name in settings.LANGUAGES]


def language_refusal() -> str:
    return _("Choose one of %(languages)s (or leave empty to follow the browser).") % {
        "languages": ", ".join(language_codes())
    }


def check_language(value: str) -> str:
    """``value`` if it is one of :func:`language_codes` or empty (follow the browser)."""
    if value and value not in language_codes():
        raise Invalid(language_refusal(), details={"field": "language"})
    return value


# ---------------------------------------------------------------------------- audit


def record(
    request: HttpRequest | None,
    action: AuditAction,
    *,
    organization: Organization | int | None = None,
    target: models.Model | None = None,
    data: dict[str, Any] | None = None,
    actor: User | None = None,
) -> AuditEvent:
    """Write one audit row. ``action`` must be an :class:`AuditAction`.

    Services call it with ``request=None`` and the ``actor``: the request being served, if any
    (see :mod:`defectlab.tenancy.audit`), gives the address and browser, so the API, the pages
    and the command write the same row. A ``request`` passed in gives them instead, and its user
    is the actor unless ``actor`` is given (the uploads, imports and login refusals still do)."""
    action = AuditAction(action)  # an unknown name is a bug: refuse it rather than store it
    if request is None:
        request = request_origin()
    elif actor is None and getattr(request, "user", None) is not None:
        candidate = request.user
        actor = candidate if isinstance(candidate, User) else None
    organization_id = organization.pk if isinstance(organization, Organization) else organization
    return AuditEvent.objects.create(
        organization_id=organization_id,
        actor=actor,
        actor_email=actor.email if actor else "",
        action=action.value,
        target_type=target._meta.model_name or "" if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        ip=client_ip(request),
        user_agent=(request.META.get("HTTP_USER_AGENT", "") if request else "")[:300],
        data=data or {},
    )
