"""A webhook (an address subscribed to events) and its deliveries (one per event sent, the log
the page shows)."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _

from defectlab.jobs.models import Job
from defectlab.labeling.models import Project
from defectlab.tenancy.models import Organization, User


class Event(models.TextChoices):
    TASK_SUBMITTED = "task.submitted", _("Task submitted")
    TASK_APPROVED = "task.approved", _("Task approved")
    TASK_REJECTED = "task.rejected", _("Task rejected")
    EXPORT_FINISHED = "export.finished", _("Export finished")
    IMPORT_FINISHED = "import.finished", _("Import finished")
    PING = "ping", _("Test ping")


# What a webhook can subscribe to (a ping is sent on request only).
SUBSCRIBABLE = [event for event in Event if event != Event.PING]


class Webhook(models.Model):
    """An address that receives the events it subscribed to, of its whole organization or of
    one project. ``secret`` signs every delivery (HMAC-SHA256); it is stored encrypted
    (``media.secrets``) and shown to people once, when it is made."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    url = models.CharField(max_length=2048)
    events = models.JSONField(default=list)
    secret = models.TextField()  # a Fernet token (media.secrets)
    active = models.BooleanField(default=True)
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # The one query an event costs when nobody listens: this organization's active hooks.
        indexes = [models.Index(fields=["organization", "active"], name="webhook_org_active")]

    def __str__(self) -> str:
        return self.url


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SUCCEEDED = "succeeded", _("Delivered")
    FAILED = "failed", _("Failed")


class Delivery(models.Model):
    """One event for one webhook: the body sent (the same on every attempt), and how its
    attempts went. ``uuid`` is the ``X-DefectLab-Delivery`` header receivers deduplicate by;
    sending again makes a new delivery (``redelivery_of``) with a new one."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=32, choices=Event.choices)
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    payload = models.JSONField(default=dict)
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.IntegerField(default=0)
    status_code = models.IntegerField(null=True, blank=True)  # of the last attempt
    error = models.TextField(blank=True)  # of the last attempt
    duration_ms = models.IntegerField(null=True, blank=True)  # of the last attempt
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    redelivery_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["webhook", "-id"], name="delivery_webhook_recent")]

    def __str__(self) -> str:
        return f"{self.event} → {self.webhook_id} ({self.status})"
