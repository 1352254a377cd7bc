"""Serializers of the data movement API (uploads, imports, exports), and the schema of the JSON
fields they take."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from defectlab.datasets import FORMATS
from defectlab.labeling.api.serializers import TaskSerializer
from defectlab.schema import documented_field

IMAGE_ADDRESS = {"type": "string", "pattern": r"^(https?|s3)://\S+$"}


IMPORT_TASK = {
    "oneOf": [
        IMAGE_ADDRESS,
        {
            "type": "object",
            "description": "Our own task ({image, file_name, width, height, annotations, "
            "predictions}), a Label Studio task ({data: {image}, annotations, predictions}) or a "
            "Label Studio JSON-MIN record.",
            "additionalProperties": True,
        },
    ]
}
IMPORT_BODY = {
    "oneOf": [
        {"type": "array", "minItems": 1, "items": IMPORT_TASK},
        {
            "type": "object",
            "properties": {"tasks": {"type": "array", "minItems": 1, "items": IMPORT_TASK}},
            "required": ["tasks"],
        },
    ]
}


class ImportResultSerializer(serializers.Serializer[Any]):
    created = serializers.IntegerField(help_text="How many tasks were created.")
    annotated = serializers.IntegerField(help_text="How many of them have an annotation.")
    predictions = serializers.IntegerField(help_text="How many predictions were created.")
    first_id = serializers.IntegerField(help_text="The first created task's id.")
    last_id = serializers.IntegerField(help_text="The last created task's id.")
    ranges = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField(), min_length=2, max_length=2),
        help_text="The created tasks' ids as runs [first, last] of consecutive ids, in order.",
    )
    task_ids = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        help_text="Every created task's id in the order of the entries (up to 10,000 tasks).",
    )
    labels_created = serializers.ListField(child=serializers.CharField())
    labels_extended = serializers.ListField(child=serializers.CharField())
    tags_added = serializers.ListField(child=serializers.CharField())
    shape_types_added = serializers.ListField(child=serializers.CharField())
    duplicates_skipped = serializers.IntegerField(
        help_text="JSON-MIN records of a task already read (one per further annotation)."
    )
    warnings = serializers.ListField(child=serializers.CharField())


class ImportUrlsSerializer(serializers.Serializer[Any]):
    urls = serializers.ListField(
        child=documented_field(
            "WebAddressField",
            serializers.CharField,
            {"type": "string", "pattern": r"^https?://[^\s/?#]+", "maxLength": 2048},
        )(),
        min_length=1,
        max_length=100_000,
        help_text="http:// or https:// addresses of images (or objects with `url`).",
    )


SplitField = documented_field(
    "SplitField",
    serializers.JSONField,
    {
        "type": "object",
        "properties": {name: {"type": "number", "minimum": 0} for name in ("train", "val", "test")},
        "additionalProperties": False,
        "description": "Ratios per split; they must add up to more than zero.",
    },
)


class ExportOptionsSerializer(serializers.Serializer[Any]):
    format = serializers.ChoiceField(choices=list(FORMATS))
    only_approved = serializers.BooleanField(required=False, default=False)
    include_predictions = serializers.BooleanField(required=False, default=False)
    include_images = serializers.BooleanField(required=False, default=True)
    to_storage = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Also copy the zip to the project's target storages (it needs one).",
    )
    split = SplitField(required=False)
    seed = serializers.IntegerField(required=False, default=0)


class UploadResultSerializer(serializers.Serializer[Any]):
    created = serializers.IntegerField()
    tasks = TaskSerializer(many=True)
