"""Model evaluations and the label errors they find.

An `Evaluation` is one run of a model version against a project's approved annotations (the
ground truth): its report (`defectlab.evaluation.Report.to_json()`), the thresholds it used and
which approved tasks it saw. Evaluating the same version again makes a new row: the history is
kept, so a lead compares `staging` with `production` before moving an alias.

A `Finding` is one disagreement of a confident prediction with the approved annotation of a
task (a defect left unlabeled, a wrong class, a loose box, a shape the model does not find),
ranked:
``rank`` 1 is the most likely label error of its evaluation.

The version an evaluation ran may be deleted later (with its model): the evaluation stays, with
``version`` null and the model's name and the version's number kept as they were (a report is
history; a PROTECT would keep a model nobody wants, a cascade would lose the comparison)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from defectlab.inference.models import ModelVersion
from defectlab.jobs.models import Job
from defectlab.tenancy.models import Organization, User


class EvaluationState(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class Evaluation(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey(
        "labeling.Project", on_delete=models.CASCADE, related_name="evaluations"
    )
    version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="evaluations"
    )
    # What the version was when it ran (kept when the version is deleted).
    model_name = models.CharField(max_length=100)
    version_number = models.PositiveIntegerField()
    alias = models.CharField(max_length=50, blank=True)  # the alias it was started by, if any
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    state = models.CharField(
        max_length=16, choices=EvaluationState.choices, default=EvaluationState.QUEUED
    )
    error_code = models.CharField(max_length=32, blank=True)
    error = models.TextField(blank=True)
    # The thresholds: ``conf`` for precision, recall and the confusion matrix (chosen at start,
    # else the model's — `registry.thresholds`); ``iou`` the detector's NMS; ``tile`` tiled runs.
    conf = models.FloatField()
    conf_chosen = models.BooleanField(default=False)
    iou = models.FloatField()
    tile = models.BooleanField(default=False)
    # The approved tasks it saw: how many, and a hash of their (task id, annotation version).
    approved = models.IntegerField(default=0)
    approved_hash = models.CharField(max_length=64, blank=True)
    images = models.IntegerField(default=0)  # evaluated (approved tasks whose image was read)
    broken = models.IntegerField(default=0)  # approved tasks whose image could not be read
    errors = models.JSONField(default=list, blank=True)  # the first few: {"task", "error"}
    report = models.JSONField(default=dict, blank=True)
    # What the run measured with: ``classes`` [[class name, label id or null], …] (the
    # mapping), ``labels`` the evaluated label ids, ``not_evaluated`` {label id: shapes} — the
    # approved shapes of labels no class maps to (left out of the report; see `runs`).
    setup = models.JSONField(default=dict, blank=True)
    # Findings found in the whole run (at most ``runs.KEEP`` of them are stored).
    findings_found = models.IntegerField(default=0)
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["project", "-id"], name="evaluation_project_recent")]

    def __str__(self) -> str:
        return f"evaluation #{self.pk} of {self.model_name} v{self.version_number}"


class FindingKind(models.TextChoices):
    """`defectlab.evaluation.findings`' kinds: ``extra`` a confident prediction where the
    annotation has nothing (a defect left unlabeled), ``missing`` an annotated shape the model
    does not see (a shape that may be wrong), ``duplicate`` a second shape on one defect."""

    EXTRA = "extra", _("Not in the annotation")
    WRONG_CLASS = "wrong_class", _("Wrong class")
    LOOSE_BOX = "loose_box", _("Loose box")
    MISSING = "missing", _("Not found by the model")
    DUPLICATE = "duplicate", _("Labeled twice")


class Finding(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="findings")
    task = models.ForeignKey("labeling.Task", on_delete=models.CASCADE, related_name="+")
    rank = models.PositiveIntegerField()  # 1 = the highest score of its evaluation
    kind = models.CharField(max_length=16, choices=FindingKind.choices)
    score = models.FloatField()
    # Labels are project label ids, kept as numbers: a label deleted later leaves them be.
    truth_label = models.IntegerField(null=True, blank=True)
    predicted_label = models.IntegerField(null=True, blank=True)
    truth_box = models.JSONField(null=True, blank=True)  # [x1, y1, x2, y2] in image pixels
    predicted_box = models.JSONField(null=True, blank=True)
    predicted_score = models.FloatField(null=True, blank=True)
    truth_shape = models.CharField(max_length=64, blank=True)  # the annotation shape's id
    iou = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["evaluation", "rank"], name="finding_rank_unique")
        ]
        indexes = [models.Index(fields=["task", "-score"], name="finding_task_score")]

    def __str__(self) -> str:
        return f"{self.kind} on task {self.task_id} ({self.score:.2f})"
