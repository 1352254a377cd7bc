"""Serializers of the data movement API (uploads, imports, exports), and the schema of the JSON
fields they take."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from defectlab.datasets import FORMATS
from defectlab.labeling.api.serializers import TaskSerializer
from defectlab.schema import documented_field

IMAGE_ADDRESS = {"type": "string", "pattern": r"^(https?|s3)://\S+$"}


class ImportSerializer(serializers.Serializer[Any]):
    tasks = documented_field(
        "ImportTasksField",
        serializers.JSONField,
        {
            "type": "array",
            "minItems": 1,
            "items": {
                "oneOf": [
                    IMAGE_ADDRESS,
                    {
                        "type": "object",
                        "properties": {
                            "image": IMAGE_ADDRESS,
                            "width": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
                            "height": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
                            "file_name": {"type": "string"},
                        },
                        "required": ["image"],
                    },
                ]
            },
            "description": (
                "Image addresses (http(s)://, or s3:// in one of the project's storage "
                "connections), or objects with one."
            ),
        },
    )()


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
