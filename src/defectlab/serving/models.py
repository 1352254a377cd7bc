"""What the detection service keeps: an organization's API keys, its quota (set by the platform
operator), and one row per call (metering and audit: who asked which model version for how many
images, and how it ended — never the images)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from defectlab.inference.models import ModelVersion
from defectlab.tenancy.models import Organization, User


class Scope(models.TextChoices):
    DETECT = "detect", _("Detect")
    MODELS = "models", _("Manage models")


class OrganizationKey(models.Model):
    """An organization's API key for the detection service: ``dlk_<key_id>_<secret>``, shown
    once. Stored: the public ``key_id``, the SHA-256 of the whole key, and the key's signing
    key (for HMAC-signed requests) encrypted at rest. Revoked, never deleted (calls name it)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    key_id = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    signing_key = models.TextField()  # a Fernet token (media.secrets)
    scopes = models.JSONField(default=list)
    signed_only = models.BooleanField(default=False)  # a bearer key alone is refused
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["organization_id", "-id"]

    def __str__(self) -> str:
        return f"{self.name} (dlk_{self.key_id})"


class Quota(models.Model):
    """An organization's limits on the detection service; a field left empty means "no limit".
    An organization without a row has the installation's defaults (DEFECTLAB_QUOTA_CONCURRENT and the others).
    ``weight`` is its share when organizations wait for the same model (its plan)."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="+", verbose_name=_("organization")
    )
    requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=_("requests per minute")
    )
    images_per_day = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=_("images per day")
    )
    concurrent_requests = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=_("concurrent requests")
    )
    max_image_mb = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=_("largest image (MB)")
    )
    weight = models.PositiveSmallIntegerField(default=1, verbose_name=_("weight"))
    updated_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("quota")
        verbose_name_plural = _("quotas")

    def __str__(self) -> str:
        return f"quota of {self.organization_id}"


class Call(models.Model):
    """One call to the detection service, as answered."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    key = models.ForeignKey(
        OrganizationKey, null=True, on_delete=models.SET_NULL, related_name="calls"
    )
    version = models.ForeignKey(
        ModelVersion, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    model_name = models.CharField(max_length=100, blank=True)
    version_number = models.PositiveIntegerField(null=True)
    endpoint = models.CharField(max_length=32)
    images = models.PositiveIntegerField(default=0)
    detections = models.PositiveIntegerField(default=0)
    latency_ms = models.FloatField()
    client_ip = models.GenericIPAddressField(null=True)
    status = models.PositiveSmallIntegerField()
    code = models.CharField(max_length=40)  # "ok", or the error's code
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["organization", "created_at"], name="call_org_time")]

    def __str__(self) -> str:
        return f"{self.endpoint} {self.status} ({self.organization_id})"
