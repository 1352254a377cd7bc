"""Who is who: users, the organizations they belong to, their roles, invites, API tokens, audit."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **fields: Any) -> User:
        if not email:
            raise ValueError("A user needs an e-mail address.")
        user = self.model(email=normalize_email(email), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields: Any) -> User:
        fields.setdefault("is_staff", True)
        fields.setdefault("is_superuser", True)
        return self.create_user(email, password, **fields)


def normalize_email(email: str) -> str:
    # Addresses are compared case-insensitively everywhere; storing them lower-cased keeps
    # the unique constraint honest on both SQLite and PostgreSQL.
    return email.strip().lower()


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(_("e-mail"), unique=True)
    name = models.CharField(_("name"), max_length=150, blank=True)
    language = models.CharField(_("language"), max_length=10, blank=True)
    is_active = models.BooleanField(default=True, verbose_name=_("active"))
    is_staff = models.BooleanField(default=False, verbose_name=_("staff"))
    date_joined = models.DateTimeField(default=timezone.now, verbose_name=_("joined"))

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    def __str__(self) -> str:
        return self.email


class Organization(models.Model):
    """The tenant: everything a customer owns hangs off one of these."""

    name = models.CharField(_("name"), max_length=150)
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))

    class Meta:
        verbose_name = _("organization")
        verbose_name_plural = _("organizations")

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    OWNER = "owner", _("Owner")
    ADMIN = "admin", _("Admin")
    MANAGER = "manager", _("Manager")
    REVIEWER = "reviewer", _("Reviewer")
    ANNOTATOR = "annotator", _("Annotator")


class Membership(models.Model):
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="memberships",
        verbose_name=_("organization"),
    )
    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("user")
    )
    role = models.CharField(max_length=16, choices=Role.choices, verbose_name=_("role"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="one_membership_per_org")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} as {self.role}"


class Invite(models.Model):
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="invites",
        verbose_name=_("organization"),
    )
    role = models.CharField(max_length=16, choices=Role.choices, verbose_name=_("role"))
    email = models.EmailField(blank=True, verbose_name=_("e-mail"))
    token_hash = models.CharField(max_length=64, unique=True, verbose_name=_("token hash"))
    expires_at = models.DateTimeField(verbose_name=_("expires"))
    created_by = models.ForeignKey(
        User, null=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("created by")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))
    accepted_by = models.ForeignKey(
        User,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("accepted by"),
    )
    accepted_at = models.DateTimeField(null=True, blank=True, verbose_name=_("accepted"))

    class Meta:
        verbose_name = _("invite")
        verbose_name_plural = _("invites")

    @property
    def is_usable(self) -> bool:
        return self.accepted_at is None and self.expires_at > timezone.now()


class ApiToken(models.Model):
    """A personal API token. Only its SHA-256 is stored; the key is shown once at creation."""

    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="api_tokens", verbose_name=_("user")
    )
    name = models.CharField(max_length=100, verbose_name=_("name"))
    prefix = models.CharField(max_length=12, verbose_name=_("prefix"))
    key_hash = models.CharField(max_length=64, unique=True, verbose_name=_("key hash"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))
    last_used_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last used"))
    expires_at = models.DateTimeField(null=True, blank=True, verbose_name=_("expires"))

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")


class AuditEvent(models.Model):
    organization = models.ForeignKey(
        Organization,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="audit_events",
        verbose_name=_("organization"),
    )
    actor = models.ForeignKey(
        User,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("actor"),
    )
    actor_email = models.CharField(max_length=254, blank=True, verbose_name=_("actor e-mail"))
    action = models.CharField(max_length=64, verbose_name=_("action"))
    target_type = models.CharField(max_length=64, blank=True, verbose_name=_("target type"))
    target_id = models.CharField(max_length=64, blank=True, verbose_name=_("target ID"))
    ip = models.GenericIPAddressField(null=True, blank=True, verbose_name=_("IP address"))
    user_agent = models.CharField(max_length=300, blank=True, verbose_name=_("browser"))
    data = models.JSONField(default=dict, blank=True, verbose_name=_("data"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("time"))

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        indexes = [models.Index(fields=["organization", "-id"], name="audit_org_recent")]


class LoginFailure(models.Model):
    email = models.CharField(max_length=254)
    ip = models.GenericIPAddressField(null=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["email", "created_at"], name="loginfail_email"),
            models.Index(fields=["ip", "created_at"], name="loginfail_ip"),
        ]
