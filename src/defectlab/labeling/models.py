"""The labeling workflow: projects and their label schema, tasks (one image each), versioned
annotations, model predictions and reviews."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from defectlab.tenancy.models import Organization


def default_shape_types() -> list[str]:
    return ["box", "polygon"]


class LiveProjects(models.Manager["Project"]):
    """Projects not being deleted: a project whose deletion has started answers 404 everywhere
    at once, while a job removes its tasks (``labeling.jobs``)."""

    def get_queryset(self) -> models.QuerySet[Project]:
        return super().get_queryset().filter(deleting_since__isnull=True)


class QueueOrder(models.TextChoices):
    """How "next task" and "next review" order a project's queues (labeling.queues)."""

    AGE = "age", _("Oldest first")
    UNCERTAINTY = "uncertainty", _("Model uncertainty (lowest top score first)")
    DISAGREEMENT = "disagreement", _("Disagreement with the model (largest first)")


class Project(models.Model):
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="projects",
        verbose_name=_("organization"),
    )
    name = models.CharField(_("name"), max_length=150)
    description = models.TextField(_("description"), blank=True)
    instructions = models.TextField(_("instructions"), blank=True)
    shape_types = models.JSONField(default=default_shape_types, verbose_name=_("shape types"))
    # Image-level tags, e.g. [{"name": "OK", "color": "#2e7d32"}, {"name": "NG", ...}].
    tags = models.JSONField(default=list, blank=True, verbose_name=_("image tags"))
    # Off: nobody approves work they submitted. On for one-person teams (labeling.workflow.check).
    allow_self_approval = models.BooleanField(_("allow self-approval"), default=False)
    queue_order = models.CharField(
        _("queue order"), max_length=16, choices=QueueOrder.choices, default=QueueOrder.AGE
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))
    # Stored counters so progress bars never count a million rows; kept by labeling.services.
    count_new = models.IntegerField(default=0, verbose_name=_("new tasks"))
    count_in_progress = models.IntegerField(default=0, verbose_name=_("tasks in progress"))
    count_submitted = models.IntegerField(default=0, verbose_name=_("submitted tasks"))
    count_approved = models.IntegerField(default=0, verbose_name=_("approved tasks"))
    count_rejected = models.IntegerField(default=0, verbose_name=_("rejected tasks"))
    # Set when someone deletes the project; the project deletion job finishes the work.
    deleting_since = models.DateTimeField(null=True, blank=True, editable=False)
    # Whether its tally holds the class and assignee slices (labeling.counters.rebuild_tally):
    # a project from before them has it off until ``defectlab recount-statistics``, and so does
    # one the release before made during a rolling upgrade (the database's default).
    tally_sliced = models.BooleanField(default=True, db_default=False, editable=False)

    all_objects = models.Manager()
    objects = LiveProjects()

    class Meta:
        default_manager_name = "objects"
        verbose_name = _("project")
        verbose_name_plural = _("projects")

    def __str__(self) -> str:
        return self.name

    @property
    def task_count(self) -> int:
        return (
            self.count_new
            + self.count_in_progress
            + self.count_submitted
            + self.count_approved
            + self.count_rejected
        )


class Label(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", verbose_name=_("organization")
    )
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="labels", verbose_name=_("project")
    )
    name = models.CharField(_("name"), max_length=100)
    color = models.CharField(_("color"), max_length=7, default="#e53935")
    hotkey = models.CharField(_("hotkey"), max_length=1, blank=True)
    # [{"name": "severity", "options": ["minor", "major", "critical"], "default": "minor"}]
    attributes = models.JSONField(default=list, blank=True, verbose_name=_("attributes"))
    order = models.IntegerField(default=0, verbose_name=_("order"))

    class Meta:
        verbose_name = _("class")
        verbose_name_plural = _("classes")
        ordering = ["order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="label_name_unique_in_project")
        ]

    def __str__(self) -> str:
        return self.name


class TaskStatus(models.TextChoices):
    NEW = "new", _("New")
    IN_PROGRESS = "in_progress", _("In progress")
    SUBMITTED = "submitted", _("Submitted")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")


class Task(models.Model):
    # The indexes below are what a bulk import pays for, row by row (bench/tasks.py), so a task
    # has only those its lookups use. None on organization: every query of tasks names its
    # project or its ids (the organization only scopes them), and deleting an organization, a
    # rare operator's act, may scan. The people's keys are indexed only where they name someone
    # (all of them are empty on an imported task): a user's deletion finds their tasks there.
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("organization"),
        db_index=False,
    )
    # No index of its own: task_project (project, id) serves every lookup by project, and a
    # second one only gave the planner a path that reads a whole project and sorts it.
    project = models.ForeignKey(
        Project,
        on_delete=models.CASCADE,
        related_name="tasks",
        verbose_name=_("project"),
        db_index=False,
    )
    # A key in the organization's storage for uploads, or a URL / bucket reference for imports.
    image = models.CharField(max_length=1024, verbose_name=_("image"))
    file_name = models.CharField(max_length=255, verbose_name=_("file name"))
    width = models.IntegerField(null=True, verbose_name=_("width"))
    height = models.IntegerField(null=True, verbose_name=_("height"))
    size_bytes = models.BigIntegerField(null=True, verbose_name=_("size (bytes)"))
    status = models.CharField(
        max_length=16, choices=TaskStatus.choices, default=TaskStatus.NEW, verbose_name=_("status")
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("assignee"),
        db_index=False,
    )
    lock_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("reserved for"),
        db_index=False,
    )
    lock_expires_at = models.DateTimeField(null=True, blank=True, verbose_name=_("reserved until"))
    # Who submitted the work under review: its author for the review rules (labeling.workflow).
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("submitted by"),
        db_index=False,
    )
    has_annotation = models.BooleanField(default=False, verbose_name=_("annotated"))
    has_prediction = models.BooleanField(default=False, verbose_name=_("has predictions"))
    # Kept by labeling.queues from the task's newest prediction (and its current annotation):
    # the highest score among its shapes, and how much it disagrees with the annotation (0..1).
    # Null without a prediction (and, for disagreement, without an annotation).
    top_score = models.FloatField(null=True, blank=True, verbose_name=_("top score"))
    disagreement = models.FloatField(null=True, blank=True, verbose_name=_("disagreement"))
    # Shapes in the current annotation: a stored counter for statistics (labeling.counters).
    shape_count = models.IntegerField(default=0, db_default=0, verbose_name=_("shapes"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated"))

    class Meta:
        verbose_name = _("task")
        verbose_name_plural = _("tasks")
        indexes = [
            models.Index(fields=["project", "id"], name="task_project"),
            models.Index(fields=["project", "status", "id"], name="task_project_status"),
            models.Index(fields=["project", "assignee", "id"], name="task_project_assignee"),
            models.Index(fields=["project", "file_name", "id"], name="task_project_file_name"),
            models.Index(fields=["project", "updated_at", "id"], name="task_project_updated"),
            # Partial, one per value: Django writes has_annotation=True as a bare column ("WHERE
            # has_annotation"), which SQLite can match to an index only through the index's WHERE.
            models.Index(
                fields=["project", "id"],
                condition=models.Q(has_annotation=True),
                name="task_project_annotated",
            ),
            models.Index(
                fields=["project", "id"],
                condition=models.Q(has_annotation=False),
                name="task_project_not_annotated",
            ),
            models.Index(
                fields=["project", "id"],
                condition=models.Q(has_prediction=True),
                name="task_project_predicted",
            ),
            models.Index(
                fields=["project", "id"],
                condition=models.Q(has_prediction=False),
                name="task_project_not_predicted",
            ),
            # The queues of "next" in uncertainty and disagreement order (labeling.queues): one
            # pair for "next review" (submitted work: the only status read in score order alone;
            # rejected work is one person's queue, found by its assignee), one for open work.
            # Partial, so tasks without a prediction (every task of a plain import) and work in
            # no queue cost nothing here. Built concurrently on PostgreSQL (migration 0015).
            models.Index(
                fields=["project", "top_score", "id"],
                condition=models.Q(status="submitted", top_score__isnull=False),
                name="task_queue_top_score",
            ),
            models.Index(
                fields=["project", "top_score", "id"],
                condition=models.Q(top_score__isnull=False, status__in=["new", "in_progress"]),
                name="task_queue_open_top_score",
            ),
            models.Index(
                fields=["project", "-disagreement", "id"],
                condition=models.Q(disagreement__isnull=False, status="submitted"),
                name="task_queue_disagreement",
            ),
            models.Index(
                fields=["project", "-disagreement", "id"],
                condition=models.Q(disagreement__isnull=False, status__in=["new", "in_progress"]),
                name="task_queue_open_disagreement",
            ),
            *(
                models.Index(
                    fields=[person], condition=models.Q(**{f"{person}__isnull": False}), name=name
                )
                for person, name in (
                    ("assignee", "task_assignee"),
                    ("lock_owner", "task_lock_owner"),
                    ("submitted_by", "task_submitted_by"),
                )
            ),
        ]

    def __str__(self) -> str:
        return self.file_name


class TaskLabel(models.Model):
    """Which labels a task's current annotation uses: the index behind the "class" filter, and
    the stored counters of statistics (labeling.counters): how many shapes of the label, and
    how many of them fall in each size bin (log10 of the box's share of the image, ``SIZE_EDGES``)
    or have no known size (the image's size is not known yet)."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="+")
    # Indexed by task_label_unique (label, task), which also gives a label's tasks in order.
    label = models.ForeignKey(Label, on_delete=models.CASCADE, related_name="+", db_index=False)
    shapes = models.IntegerField(default=0, db_default=0)
    size_0 = models.IntegerField(default=0, db_default=0)
    size_1 = models.IntegerField(default=0, db_default=0)
    size_2 = models.IntegerField(default=0, db_default=0)
    size_3 = models.IntegerField(default=0, db_default=0)
    size_4 = models.IntegerField(default=0, db_default=0)
    size_5 = models.IntegerField(default=0, db_default=0)
    size_6 = models.IntegerField(default=0, db_default=0)
    size_7 = models.IntegerField(default=0, db_default=0)
    size_8 = models.IntegerField(default=0, db_default=0)
    size_9 = models.IntegerField(default=0, db_default=0)
    size_10 = models.IntegerField(default=0, db_default=0)
    size_11 = models.IntegerField(default=0, db_default=0)
    size_unknown = models.IntegerField(default=0, db_default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["label", "task"], name="task_label_unique")]


class TaskTag(models.Model):
    """The image tags (OK / NG) of a task's current annotation, one row each: what statistics
    count and filter by. Kept with the annotation (labeling.counters)."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="+", db_index=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    name = models.CharField(max_length=50)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "name"], name="task_tag_unique")]
        indexes = [models.Index(fields=["project", "name", "task"], name="task_tag_project")]


class TallyRow(models.Model):
    """A count of a project's statistics: of its tasks of one ``status``, ``part`` and ``key`` —
    ``images`` and ``shapes`` per label id, ``size`` per "label:bin" (bin ``u``: size unknown),
    ``tag`` per tag name, ``per_image`` per shape count (0 … 10, 10 meaning 10 or more)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    status = models.CharField(max_length=16)  # of the tasks counted: a status filter reads it
    part = models.CharField(max_length=12)
    key = models.CharField(max_length=64)
    count = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class Tally(TallyRow):
    """A project's statistics counted per task status (``TallyRow``), so that its statistics
    without a filter, or filtered by status alone, read a few dozen rows, not every task
    (labeling.counters.add_tally)."""

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "status", "part", "key"], name="tally_unique"
            )
        ]


class TallySlice(TallyRow):
    """The tally (``Tally``) of a slice of a project's tasks, so that a filter of a class, an
    assignee and statuses reads a few dozen rows too: ``slice`` "l3" the tasks using label 3,
    "a7" those assigned to user 7 ("an": to nobody), "l3a7" both (labeling.counters.slice_key).
    A table of its own, so that a release before the slices keeps its saves working on
    ``Tally`` while a rolling upgrade runs."""

    slice = models.CharField(max_length=40)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "slice", "status", "part", "key"], name="tally_slice_unique"
            )
        ]


class Activity(models.Model):
    """What one person did in one project on one UTC day, counted as it happens (labeling.
    activity.credit): tasks submitted, approved and rejected (credited to the work's author),
    verdicts given (credited to the reviewer) and seconds of labeling. One row per label the
    work used, and one with no label for the tasks themselves."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    # No person: verdicts on work with no author (its author deleted), on the label rows only —
    # they still count in the per-class rejection rate.
    person = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
    )
    label = models.ForeignKey(
        Label, null=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    submitted = models.IntegerField(default=0)
    approved = models.IntegerField(default=0)
    rejected = models.IntegerField(default=0)
    reviews = models.IntegerField(default=0)
    lead_time = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "day", "person", "label"],
                condition=models.Q(label__isnull=False),
                name="activity_label_unique",
            ),
            models.UniqueConstraint(
                fields=["project", "day", "person"],
                condition=models.Q(label__isnull=True),
                name="activity_task_unique",
            ),
            # NULLs are distinct in a unique index (PostgreSQL and SQLite alike): the rows with
            # no person have their own, without the person, so that an upsert still merges them.
            models.UniqueConstraint(
                fields=["project", "day", "label"],
                condition=models.Q(person__isnull=True, label__isnull=False),
                name="activity_nobody_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["person"], name="activity_person"),
            models.Index(
                fields=["label"], name="activity_label", condition=models.Q(label__isnull=False)
            ),
        ]


class Annotation(models.Model):
    """The current annotation of a task. Every saved version is also kept in AnnotationVersion."""

    # No index on organization here, in the versions nor in predictions (rows written in bulk by
    # imports; every lookup goes by task or annotation): see Task.
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    task = models.OneToOneField(Task, on_delete=models.CASCADE, related_name="annotation")
    version = models.IntegerField(default=1)
    shapes = models.JSONField(default=list)
    tags = models.JSONField(default=list)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    lead_time = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)


class AnnotationVersion(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    # Its lookups lead with the annotation: annotation_version_unique (annotation, version).
    annotation = models.ForeignKey(
        Annotation, on_delete=models.CASCADE, related_name="versions", db_index=False
    )
    version = models.IntegerField()
    shapes = models.JSONField(default=list)
    tags = models.JSONField(default=list)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    lead_time = models.FloatField(default=0.0)
    # What became of each model proposal by this version, so a decided one is not offered again
    # and review shows what was submitted: [{"prediction": 7, "index": 0, "fate": "accepted"}]
    # (fate: accepted, changed or dropped; index: the shape's place in that prediction). Every
    # version carries all fates decided so far (labeling.proposals).
    proposal_fates = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["annotation", "version"], name="annotation_version_unique"
            )
        ]


class Prediction(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="predictions")
    model_name = models.CharField(max_length=100)
    model_version = models.CharField(max_length=100, blank=True)
    # What made it, for predictions DefectLab made itself: "version:<id>" (a registry version)
    # or "backend:<id>" (an external model backend); empty for imported and API predictions. A
    # task has at most one prediction per source: pre-annotating again replaces it.
    source = models.CharField(max_length=40, blank=True)
    shapes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["task", "source"],
                condition=~models.Q(source=""),
                name="prediction_one_per_source",
            )
        ]
        indexes = [
            models.Index(
                fields=["source"], condition=~models.Q(source=""), name="prediction_source"
            )
        ]


class Verdict(models.TextChoices):
    APPROVE = "approve", _("Approve")
    REJECT = "reject", _("Reject")


class Review(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="reviews")
    annotation_version = models.IntegerField()
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    comment = models.TextField(blank=True)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]


class SkippedTask(models.Model):
    """A task someone skipped: "next" hands it to them only after everything else, whichever
    client asks (browser, second tab, API token). Kept by labeling.workflow.skip, which bounds
    the rows per person and project; the id orders the skips (a repeated skip is a new row)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="skips")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["user", "project", "id"], name="skipped_task_recent")]
        constraints = [models.UniqueConstraint(fields=["task", "user"], name="skipped_task_unique")]


class Issue(models.Model):
    """A reviewer's remark pinned to a place on a task's image (CVAT calls them issues): a point
    in image pixels, and the shape it is about when there is one (its ``id`` in the annotation,
    and its box when the issue was opened, so the pin stays put if the shape moves or goes).
    Open until the annotator or a reviewer resolves it; a task with an open issue cannot be
    approved (labeling.workflow.review). Kept by labeling.issues."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="issues")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    x = models.FloatField()
    y = models.FloatField()
    shape = models.CharField(max_length=64, blank=True)
    # [x1, y1, x2, y2] of the shape pinned, in image pixels; null for an issue on a bare point.
    box = models.JSONField(null=True, blank=True)
    message = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["task"],
                condition=models.Q(resolved_at__isnull=True),
                name="issue_open_by_task",
            )
        ]
