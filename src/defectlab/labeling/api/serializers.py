"""Serializers of the labeling API, and the schema of the JSON fields they take."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import serializers

from defectlab.geometry import ShapeType
from defectlab.labeling import services
from defectlab.labeling.models import (
    Annotation,
    AnnotationVersion,
    Issue,
    Label,
    Prediction,
    Project,
    Review,
    Task,
)
from defectlab.labeling.tasklist import COUNT_CAP
from defectlab.media.services import signed_url
from defectlab.schema import documented_field
from defectlab.tenancy.models import Membership, Organization, User

# What the services check, stated in the schema too (the services keep their own messages).
NON_BLANK = r"\S"
COLOR = {"type": "string", "pattern": r"^#[0-9a-fA-F]{6}$", "example": "#1e88e5"}
ColorField = documented_field("ColorField", serializers.CharField, COLOR)
HotkeyField = documented_field(
    "HotkeyField",
    serializers.CharField,
    {"type": "string", "pattern": r"^[1-9a-z]$", "description": "One digit 1–9 or a letter."},
)
AttributesField = documented_field(
    "AttributesField",
    serializers.JSONField,
    {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "pattern": NON_BLANK},
                "options": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "minItems": 1,
                },
                "default": {
                    "type": "string",
                    "description": "One of the options; absent or empty: the first.",
                },
            },
            "required": ["name", "options"],
        },
        "description": "Per-shape attributes, e.g. severity with its options (names unique). "
        "Names and options are trimmed and a repeated option kept once; a refusal's details "
        "name the attribute by its index (`attribute`).",
    },
)
ShapeTypesField = documented_field(
    "ShapeTypesField",
    serializers.JSONField,
    {
        "type": "array",
        "items": {"type": "string", "enum": [shape_type.value for shape_type in ShapeType]},
        "minItems": 1,
    },
)
TagsField = documented_field(
    "TagsField",
    serializers.JSONField,
    {
        "type": "array",
        "items": {
            "oneOf": [
                {"type": "string", "pattern": NON_BLANK},
                {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "pattern": NON_BLANK},
                        "color": COLOR,
                    },
                    "required": ["name"],
                },
            ]
        },
        "uniqueItems": True,
        "description": "Image-level tags such as OK / NG (names unique).",
    },
)


SHAPE = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": [shape_type.value for shape_type in ShapeType]},
        "points": {
            "type": "array",
            "items": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
            "description": "[x, y] in image pixels: a box's two corners, a polygon's 3 or more "
            "vertices.",
        },
        "label": {"type": "integer", "description": "A label of the task's project."},
        "attributes": {"type": "object", "additionalProperties": {"type": "string"}},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "id": {"type": "string"},
    },
    "required": ["type", "points", "label"],
    "additionalProperties": False,
}
ShapesField = documented_field(
    "ShapesField", serializers.JSONField, {"type": "array", "items": SHAPE}
)


class LabelSerializer(serializers.ModelSerializer[Label]):
    color = ColorField(
        max_length=7,
        required=False,
        help_text="#rrggbb; left out: a colour the project does not use yet.",
    )
    hotkey = HotkeyField(max_length=1, required=False, allow_blank=True)
    attributes = AttributesField(required=False)

    class Meta:
        model = Label
        fields = ["id", "name", "color", "hotkey", "attributes", "order"]
        read_only_fields = ["id"]
        extra_kwargs = {
            "name": {"help_text": "The class name, unique in the project, e.g. `scratch`."},
            "order": {"help_text": "Place in the project's list of labels (smallest first)."},
        }


class ProjectSerializer(serializers.ModelSerializer[Project]):
    labels = LabelSerializer(
        many=True,
        required=False,
        help_text="The classes to create with the project (later: /api/projects/{id}/labels/).",
    )
    organization = serializers.PrimaryKeyRelatedField(
        queryset=Organization.objects.all(),
        help_text="The organization's id (you need the manager role or above in it).",
    )
    counts = serializers.SerializerMethodField()
    shape_types = ShapeTypesField(
        required=False,
        help_text="The shapes annotators may draw: `box`, `polygon`, `points`. Default: box and polygon.",
    )
    tags = TagsField(required=False)

    class Meta:
        model = Project
        fields = [
            "id",
            "organization",
            "name",
            "description",
            "instructions",
            "shape_types",
            "tags",
            "allow_self_approval",
            "queue_order",
            "labels",
            "counts",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {
            "name": {"help_text": "The project's name."},
            "description": {"help_text": "What the project is about (optional)."},
            "instructions": {"help_text": "Labeling instructions shown to annotators (optional)."},
            "allow_self_approval": {
                "help_text": "Let a reviewer approve their own work (a one-person team). Default "
                "false."
            },
            "queue_order": {
                "help_text": "How next-task and next-review order each queue: `age` (oldest "
                "first, the default), `uncertainty` (lowest top score of the newest prediction "
                "first, an empty prediction counting as certain, 1.0; tasks without a prediction "
                "after) or `disagreement` (largest disagreement between the newest prediction and "
                "the annotation first: submitted work, drafts with shapes and rejected work; new "
                "tasks and empty drafts after, oldest first)."
            },
        }

    def get_counts(self, project: Project) -> dict[str, int]:
        return {
            status: getattr(project, counter) for status, counter in services.COUNTER.items()
        } | {"total": project.task_count}

    def validate_shape_types(self, value: Any) -> list[str]:
        return services.clean_shape_types(value)

    def validate_tags(self, value: Any) -> list[dict[str, str]]:
        return services.clean_tags(value)


class ProjectChangeSerializer(ProjectSerializer):
    """What PUT and PATCH take: labels change through their own endpoints."""

    class Meta(ProjectSerializer.Meta):
        fields = [field for field in ProjectSerializer.Meta.fields if field != "labels"]


class TaskSerializer(serializers.ModelSerializer[Task]):
    image_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()

    class Meta:
        model = Task
        fields = [
            "id",
            "project",
            "file_name",
            "width",
            "height",
            "status",
            "assignee",
            "lock_owner",
            "lock_expires_at",
            "has_annotation",
            "has_prediction",
            "top_score",
            "disagreement",
            "image_url",
            "thumbnail_url",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [field for field in fields if field != "assignee"]
        extra_kwargs = {
            "assignee": {
                "help_text": "The user id the task is assigned to (a member of the "
                "organization), or null for nobody."
            },
            "top_score": {
                "help_text": "The highest score among the shapes of the task's newest prediction "
                "(1.0 for a shape without a score, and for an empty prediction: certain); null "
                "without one."
            },
            "disagreement": {
                "help_text": "How much the newest prediction disagrees with the annotation, 0 to "
                "1; null when either is missing, and for an empty draft (no shapes, not submitted)."
            },
        }

    def get_image_url(self, task: Task) -> str | None:
        return signed_url(task.pk, "image") if services.is_viewable(task) else None

    def get_thumbnail_url(self, task: Task) -> str | None:
        return signed_url(task.pk, "thumb") if services.is_viewable(task) else None

    def validate_assignee(self, user: User | None) -> User | None:
        task = self.instance
        assert isinstance(task, Task)
        if (
            user is not None
            and not Membership.objects.filter(
                organization_id=task.organization_id, user=user
            ).exists()
        ):
            raise serializers.ValidationError(
                _("The assignee must be a member of this organization.")
            )
        return user


def _iso(value: datetime | None) -> str | None:
    """A datetime as DRF's DateTimeField writes it: ISO 8601 in the current zone, UTC as Z."""
    if value is None:
        return None
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def task_rows(tasks: list[Task]) -> list[dict[str, Any]]:
    """Exactly ``TaskSerializer(tasks, many=True).data`` (a test holds them equal), written out:
    DRF builds 15 fields per request and walks them per task, 60 % of a task page's time."""
    rows = []
    for task in tasks:
        viewable = services.is_viewable(task)
        rows.append(
            {
                "id": task.pk,
                "project": task.project_id,
                "file_name": task.file_name,
                "width": task.width,
                "height": task.height,
                "status": task.status,
                "assignee": task.assignee_id,
                "lock_owner": task.lock_owner_id,
                "lock_expires_at": _iso(task.lock_expires_at),
                "has_annotation": task.has_annotation,
                "has_prediction": task.has_prediction,
                "top_score": task.top_score,
                "disagreement": task.disagreement,
                "image_url": signed_url(task.pk, "image") if viewable else None,
                "thumbnail_url": signed_url(task.pk, "thumb") if viewable else None,
                "created_at": _iso(task.created_at),
                "updated_at": _iso(task.updated_at),
            }
        )
    return rows


class TaskPageSerializer(serializers.Serializer[Any]):
    results = TaskSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)
    total = serializers.IntegerField(
        help_text="How many tasks the filters match (from the stored counters when they answer)."
    )
    total_capped = serializers.BooleanField(
        help_text=f"True when more than `total` match: counting stops at {COUNT_CAP:,}."
    )


class AnnotationSerializer(serializers.ModelSerializer[Annotation]):
    class Meta:
        model = Annotation
        fields = ["version", "shapes", "tags", "author", "lead_time", "created_at", "updated_at"]


class ProposalFateSerializer(serializers.Serializer[Any]):
    prediction = serializers.IntegerField(help_text="The prediction's id.")
    index = serializers.IntegerField(
        min_value=0, help_text="The shape's place (from 0) in that prediction's shapes."
    )
    fate = serializers.ChoiceField(
        choices=["accepted", "changed", "dropped"],
        help_text="accepted as is, accepted and then changed, or dropped.",
    )


class SaveAnnotationSerializer(serializers.Serializer[Any]):
    version = serializers.IntegerField(
        allow_null=True,
        required=False,
        help_text="The version you started from; omit or null for the first.",
    )
    shapes = ShapesField(
        help_text="The whole annotation (it replaces the previous version's shapes), in image "
        "pixels."
    )
    tags = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="The image's tags, by name; left out: the previous version's.",
    )
    lead_time = serializers.FloatField(
        required=False,
        default=0.0,
        min_value=0.0,
        help_text="Seconds spent on this version (for the review screen).",
    )
    submit = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Also submit the task for review. Default false: save only.",
    )
    proposals = ProposalFateSerializer(
        many=True,
        required=False,
        help_text="What became of model proposals you decided on; omit to say nothing (earlier "
        "fates are kept).",
    )


class AnnotationVersionSerializer(serializers.ModelSerializer[AnnotationVersion]):
    proposals = ProposalFateSerializer(source="proposal_fates", many=True, read_only=True)
    author_name = serializers.SerializerMethodField(
        help_text="Who saved this version, by name (their email when they gave no name); empty "
        "when the account is gone."
    )

    class Meta:
        model = AnnotationVersion
        fields = [
            "version",
            "shapes",
            "tags",
            "author",
            "author_name",
            "lead_time",
            "proposals",
            "created_at",
        ]

    def get_author_name(self, version: AnnotationVersion) -> str:
        author = version.author
        return (author.name or author.email) if author is not None else ""


class PredictionSerializer(serializers.ModelSerializer[Prediction]):
    shapes = ShapesField(
        required=False, help_text="The model's proposals in image pixels, each with a `score`."
    )

    class Meta:
        model = Prediction
        fields = ["id", "model_name", "model_version", "shapes", "created_at"]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {
            "model_name": {"help_text": "Which model proposed the shapes."},
            "model_version": {"help_text": "That model's version (optional)."},
        }


class ReviewSerializer(serializers.ModelSerializer[Review]):
    class Meta:
        model = Review
        fields = ["id", "verdict", "comment", "annotation_version", "reviewer", "created_at"]
        read_only_fields = ["id", "annotation_version", "reviewer", "created_at"]
        extra_kwargs = {
            "verdict": {"help_text": "`approve` or `reject`."},
            "comment": {"help_text": "Why, for the annotator (a rejected task goes back to them)."},
        }


class IssueSerializer(serializers.ModelSerializer[Issue]):
    point = serializers.SerializerMethodField(help_text="[x, y] in image pixels: where the pin is.")
    resolved = serializers.SerializerMethodField()

    class Meta:
        model = Issue
        fields = [
            "id",
            "task",
            "point",
            "shape",
            "box",
            "message",
            "author",
            "created_at",
            "resolved",
            "resolved_by",
            "resolved_at",
        ]
        read_only_fields = fields

    def get_point(self, issue: Issue) -> list[float]:
        return [issue.x, issue.y]

    def get_resolved(self, issue: Issue) -> bool:
        return issue.resolved_at is not None


class NewIssueSerializer(serializers.Serializer[Any]):
    message = serializers.CharField(max_length=2000, help_text="What is wrong, for the annotator.")
    point = serializers.ListField(
        child=serializers.FloatField(),
        min_length=2,
        max_length=2,
        required=False,
        help_text="[x, y] in image pixels. Optional when `shape` is given: the pin then goes at "
        "the top-left corner of the shape's box.",
    )
    shape = serializers.CharField(
        max_length=64,
        required=False,
        help_text="The `id` of a shape in the current annotation; its box is kept with the issue.",
    )
    box = serializers.ListField(
        child=serializers.FloatField(),
        min_length=4,
        max_length=4,
        required=False,
        help_text="[x1, y1, x2, y2] of the shape meant, for a shape saved without an id "
        "(ignored when `shape` is given).",
    )


class AssignSerializer(serializers.Serializer[Any]):
    tasks = serializers.ListField(
        child=serializers.IntegerField(),
        max_length=10_000,
        help_text="Ids of the project's tasks (at most 10,000 a call).",
    )
    assignee = serializers.IntegerField(
        allow_null=True, help_text="The member's user id, or null to unassign."
    )
