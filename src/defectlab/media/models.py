"""An organization's S3-compatible storage connections, and what a source has already synced.

A connection belongs to one project: a *source* feeds it (every new image object under the prefix
becomes a task), a *target* receives from it (each submitted annotation as JSON, and export
archives on request). The secret key is stored only encrypted (``media.secrets``, Fernet); the
logic lives in ``media.connections``."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from defectlab.tenancy.models import Organization


class StorageRole(models.TextChoices):
    SOURCE = "source", _("Source")
    TARGET = "target", _("Target")


class MediaMode(models.TextChoices):
    # How browsers get a source's images: straight from the bucket, or through the app.
    PRESIGN = "presign", _("Presigned link to the bucket")
    PROXY = "proxy", _("Through DefectLab")


class Encryption(models.TextChoices):
    NONE = "none", _("None")
    AES256 = "AES256", "AES256"
    KMS = "aws:kms", "aws:kms"


class StorageConnection(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="storage_connections"
    )
    project = models.ForeignKey(
        "labeling.Project", on_delete=models.CASCADE, related_name="storage_connections"
    )
    role = models.CharField(max_length=8, choices=StorageRole.choices)
    name = models.CharField(_("name"), max_length=100)
    endpoint_url = models.CharField(max_length=500, blank=True)  # blank: AWS S3 for the region
    bucket = models.CharField(max_length=255)
    prefix = models.CharField(max_length=500, blank=True)  # normalised: "" or "a/b/"
    region = models.CharField(max_length=32, default="us-east-1")
    path_style = models.BooleanField(default=False)
    # Host the browser reached the app at → the endpoint URL browsers on that network can reach
    # (presigned links are signed for it). Empty: the endpoint above.
    public_endpoints = models.JSONField(default=dict, blank=True)
    sse = models.CharField(max_length=8, choices=Encryption.choices, default=Encryption.NONE)
    kms_key_id = models.CharField(max_length=2048, blank=True)
    access_key = models.CharField(max_length=128)
    secret_key_encrypted = models.TextField()
    media_mode = models.CharField(
        max_length=8, choices=MediaMode.choices, default=MediaMode.PRESIGN
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_sync_job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Why the last sync of a source or write to a target failed, in plain words (cleared by the
    # next one that works), so a broken storage shows on the connection and not only in its jobs.
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["organization", "id"], name="storage_org"),
            models.Index(fields=["project", "role"], name="storage_project_role"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "name"], name="storage_name_unique_in_project"
            )
        ]

    def __str__(self) -> str:
        return self.name


class SyncedObject(models.Model):
    """One object a source sync has seen, and the task made for it: what makes a sync
    incremental (a key seen before makes no second task) and resumable (the task and this row
    are written in one transaction)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(
        StorageConnection, on_delete=models.CASCADE, related_name="synced_objects"
    )
    key = models.CharField(max_length=1024)  # relative to the connection's prefix
    etag = models.CharField(max_length=128)
    size = models.BigIntegerField()
    task = models.ForeignKey(
        "labeling.Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "key"], name="one_synced_object_per_key")
        ]
