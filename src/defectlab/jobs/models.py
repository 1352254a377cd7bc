"""The Job row: the truth about a piece of background work (DESIGN: a message carries only the
job's id). State, progress, error and result live here, so any process can show them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from defectlab.tenancy.models import Organization


class JobState(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


FINISHED = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class Job(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey(
        # SET_NULL: a job outlives its project (the one that deletes it, to begin with).
        "labeling.Project",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
    )
    kind = models.CharField(max_length=32)
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED)
    params = models.JSONField(default=dict, blank=True)
    # Progress: `done` of `total` steps (total null until the job knows it); `failed` steps are
    # counted in `done` and listed in the job's own records (e.g. per-URL results).
    done = models.IntegerField(default=0)
    failed = models.IntegerField(default=0)
    total = models.IntegerField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    attempts = models.IntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["organization", "-id"], name="job_org_recent"),
            models.Index(fields=["project", "-id"], name="job_project_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.state})"

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


class WorkerHeartbeat(models.Model):
    """One row per running `defectlab worker` process, refreshed every
    DEFECTLAB_WORKER_HEARTBEAT_SECONDS; `/readyz` reads them (jobs/liveness.py). Workers on other
    machines share the database, so this works wherever they run."""

    name = models.CharField(max_length=255, unique=True)  # host:pid:random
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.name
