"""The model registry: an organization's detection models, their uploaded versions, and the
aliases (``production``, ``staging``, any slug) that name one ready version each.

A version's file is kept in the organization's storage (``file_key``); its row holds what the
upload checks and the engine read from it (SHA-256, size, IR / opset, the raw metadata, class
names, input size, output layout, author, license), its default thresholds and notes, and its
state: ``validating`` until its run in the sandbox ends, then ``ready`` or ``failed`` (with the
failure's code and message). Only a ready version can be named by an alias."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from defectlab.jobs.models import Job
from defectlab.tenancy.models import Organization, User


class DetectionModel(models.Model):
    """One detector of an organization (its name is unique there), with its versions.

    ``conf`` and ``iou`` are the organization's own thresholds for it (its "sensitivity", set
    on the sensitivity page): when set, a detection with any of its versions uses them instead
    of the version's defaults (``registry.thresholds``); null keeps the version's."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    conf = models.FloatField(null=True, blank=True)
    iou = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="model_name_unique")
        ]

    def __str__(self) -> str:
        return self.name


class VersionState(models.TextChoices):
    VALIDATING = "validating", _("Validating")
    READY = "ready", _("Ready")
    FAILED = "failed", _("Failed")


class ModelVersion(models.Model):
    """One uploaded ``.onnx`` file of a model, numbered 1, 2, … within it."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    model = models.ForeignKey(DetectionModel, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    state = models.CharField(
        max_length=16, choices=VersionState.choices, default=VersionState.VALIDATING
    )
    error_code = models.CharField(max_length=32, blank=True)
    error = models.TextField(blank=True)  # in the uploader's language
    # The file, as the upload checks read it.
    file_key = models.CharField(max_length=512)
    file_name = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    ir_version = models.IntegerField()
    opset = models.IntegerField()
    producer = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)  # metadata_props, as written
    # What the engine reads from the file and the upload form.
    names = models.JSONField(default=list, blank=True)  # class index → name
    names_from_model = models.BooleanField(default=False)
    input_height = models.IntegerField()
    input_width = models.IntegerField()
    layout = models.CharField(max_length=32)  # engine.LayoutKind
    task = models.CharField(max_length=32, blank=True)
    author = models.CharField(max_length=200, blank=True)
    license = models.CharField(max_length=200, blank=True)
    # Defaults of a detection with this version.
    conf = models.FloatField()
    iou = models.FloatField()
    max_det = models.IntegerField()
    notes = models.TextField(blank=True)
    check_report = models.JSONField(default=dict, blank=True)  # what the sandbox run reported
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    uploaded_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    uploaded_at = models.DateTimeField(auto_now_add=True)
    checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "number"], name="model_version_number")
        ]
        ordering = ["model_id", "number"]

    def __str__(self) -> str:
        return f"{self.model_id} v{self.number} ({self.state})"

    @property
    def source(self) -> str:
        """What its predictions name as their source (labeling's ``Prediction.source``)."""
        return f"version:{self.pk}"


class ModelAlias(models.Model):
    """A name (a slug) for one ready version of a model; moved, never edited in place."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    model = models.ForeignKey(DetectionModel, on_delete=models.CASCADE, related_name="aliases")
    name = models.SlugField(max_length=50)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="aliases")
    updated_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="model_alias_name")]
        ordering = ["model_id", "name"]

    def __str__(self) -> str:
        return f"{self.name} → v{self.version_id}"


class ProjectModel(models.Model):
    """A model as one project uses it for pre-annotation: which project label each of the
    model's class names becomes (``classes``: name → label id, or None for "propose nothing"),
    whether its images are tiled, and whether new tasks are pre-annotated on import by the
    version ``on_import`` names (an alias, or empty: not on import). Made when first saved; a
    model without a row maps class names to labels of the same name."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey("labeling.Project", on_delete=models.CASCADE, related_name="+")
    model = models.ForeignKey(DetectionModel, on_delete=models.CASCADE, related_name="projects")
    classes = models.JSONField(default=dict, blank=True)
    tile = models.BooleanField(default=False)
    on_import = models.CharField(max_length=50, blank=True)
    updated_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "model"], name="project_model_unique"),
            # One model pre-annotates a project's new tasks.
            models.UniqueConstraint(
                fields=["project"], condition=~models.Q(on_import=""), name="project_on_import"
            ),
        ]

    def __str__(self) -> str:
        return f"project {self.project_id} ← model {self.model_id}"


class BackendHealth(models.TextChoices):
    UNKNOWN = "unknown", _("Not checked")
    UP = "up", _("Up")
    DOWN = "down", _("Down")


class MLBackend(models.Model):
    """A server of the organization that speaks Label Studio's ML-backend protocol
    (``/health``, ``/setup``, ``/predict``): a model served outside DefectLab, reached only
    through the guarded fetcher (``inference.backends``). ``auth`` is the value of an
    ``Authorization`` header sent with every request, stored encrypted (``media.secrets``)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    url = models.CharField(max_length=2048)
    auth = models.TextField(blank=True)  # a Fernet token (media.secrets), or empty
    # This server's address as the backend reaches it, for the image URLs it is given; empty
    # means the first of DEFECTLAB_PUBLIC_URLS.
    media_base_url = models.CharField(max_length=2048, blank=True)
    note = models.CharField(max_length=200, blank=True)
    health = models.CharField(
        max_length=16, choices=BackendHealth.choices, default=BackendHealth.UNKNOWN
    )
    health_message = models.TextField(blank=True)  # in the language of whoever checked
    checked_at = models.DateTimeField(null=True, blank=True)
    model_version = models.CharField(max_length=200, blank=True)  # as the backend last said
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="ml_backend_name_unique")
        ]
        ordering = ["organization_id", "name"]

    def __str__(self) -> str:
        return self.name
