"""What a URL import remembers of each address it was given."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from defectlab.tenancy.models import Organization


class ImportState(models.TextChoices):
    PENDING = "pending", _("Waiting")
    DONE = "done", _("Imported")
    FAILED = "failed", _("Failed")


class UrlImportItem(models.Model):
    """One address of a URL import job and what became of it (its task, or why it failed)."""

    job = models.ForeignKey("jobs.Job", on_delete=models.CASCADE, related_name="url_items")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    index = models.IntegerField()
    url = models.TextField()
    state = models.CharField(
        max_length=16, choices=ImportState.choices, default=ImportState.PENDING
    )
    error = models.TextField(blank=True)
    rule = models.CharField(max_length=32, blank=True)
    task = models.ForeignKey(
        "labeling.Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        db_table = "ingest_urlimportitem"  # made by the ingest app, which kept it until 0003
        constraints = [
            models.UniqueConstraint(fields=["job", "index"], name="one_url_import_item_per_index")
        ]
