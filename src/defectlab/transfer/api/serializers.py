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


FORMAT_HELP = (
    "The dataset format, by its API name: `yolo` (YOLO detection: boxes), `yolo_seg` (YOLO "
    "segmentation: polygons), `coco` (COCO JSON: boxes, polygons, attributes, tags), `voc` "
    "(Pascal VOC XML: boxes, attributes), `labelstudio` (Label Studio JSON: boxes, polygons, "
    "attributes, tags, predictions), `cvat` (CVAT XML 1.1: boxes, polygons, points, attributes, "
    "tags), `classification` (one folder per tag)."
)


class ExportOptionsSerializer(serializers.Serializer[Any]):
    # The view hands the request's JSON to ``transfer.exports.clean_options``, which checks it
    # with its own messages; this serializer is what the schema says of it.
    format = serializers.ChoiceField(choices=list(FORMATS), help_text=FORMAT_HELP)
    only_approved = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Export approved tasks only. Default false: submitted and approved tasks.",
    )
    include_unlabeled = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Export every task, also those nobody has submitted (written with empty "
        "labels). Default false. Not together with `only_approved`.",
    )
    include_predictions = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Also write the tasks' model predictions, with their scores, in formats that "
        "keep them (`labelstudio`). Default false.",
    )
    include_images = serializers.BooleanField(
        required=False,
        default=True,
        help_text="Put the images in the zip beside the annotations. Default true; false "
        "writes the annotations only.",
    )
    to_storage = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Also copy the zip to the project's target storages (it needs one).",
    )
    split = SplitField(
        required=False,
        help_text='Ratios per split, e.g. `{"train": 0.8, "val": 0.2}`; the tasks are '
        "divided in those shares (every format but `labelstudio` writes them). "
        "Left out: every task is in `train`.",
    )
    seed = serializers.IntegerField(
        required=False,
        default=0,
        help_text="Draws the split: the same tasks and seed give the same split every time. "
        "Default 0.",
    )


class UploadResultSerializer(serializers.Serializer[Any]):
    created = serializers.IntegerField()
    tasks = TaskSerializer(many=True)
