"""Images and datasets into a project, datasets out of it: uploads, imports, exports."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.parsers import BaseParser, FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from defectlab.errors import Invalid, TooLarge
from defectlab.jobs.api import JobSerializer
from defectlab.labeling.api.serializers import ProjectSerializer, TaskSerializer
from defectlab.labeling.models import Project
from defectlab.tenancy.roles import Can
from defectlab.tenancy.viewsets import TenantViewSet, acting_user
from defectlab.transfer.api.serializers import (
    IMPORT_BODY,
    ExportOptionsSerializer,
    ImportResultSerializer,
    ImportUrlsSerializer,
    UploadResultSerializer,
)
from defectlab.transfer.datasetimport import importable_formats, start_dataset_import
from defectlab.transfer.exports import start_export
from defectlab.transfer.services import upload_images
from defectlab.transfer.taskimport import import_tasks, max_bytes
from defectlab.transfer.urlimport import start_url_import, urls_from_entries, urls_from_file

IMPORT_DESCRIPTION = """Create tasks for images kept by their address (http(s)://, or s3:// in one of
the project's storage connections), with their annotations and predictions, in one call. The body
is a JSON list (or the same JSON uploaded as `file`); each entry is an image address, our own task
(`{"image", "file_name", "width", "height", "annotations": [{"shapes", "tags"}], "predictions":
[{"model_name", "model_version", "shapes"}]}`, shapes in image pixels, labels by name or id), a
Label Studio task (`{"data": {"image"}, "annotations", "predictions"}`, regions in percent) or a
record of Label Studio's JSON-MIN export. Everything is checked first: one bad entry answers 400
naming it and nothing is imported. Missing labels, tags and shape types are created. Up to 100,000
tasks and 100,000 shapes the tasks are created in the request (201: `created`, `task_ids` up to
10,000 tasks, `first_id`, `last_id`, `ranges`); above, a job does it (202, the job: its result
says the same). At most DEFECTLAB_MAX_IMPORT_MB (413 above)."""


class RawJSONParser(BaseParser):
    """The JSON body as bytes, for the import to read with one ``json.loads`` (DRF's JSON
    parser would decode it through a text stream first)."""

    media_type = "application/json"

    def parse(  # type: ignore[override]  # the bytes become request.data as they are
        self, stream: Any, media_type: Any = None, parser_context: Any = None
    ) -> bytes:
        return stream.read() if stream is not None else b""


class ProjectTransferViewSet(TenantViewSet):
    # The project's actions that bring images and datasets in and take datasets out, under the
    # project's own address (``/api/projects/{id}/upload/`` …: registered on the same prefix as
    # labeling's ``ProjectViewSet``, which knows nothing of them).
    queryset = Project.objects.order_by("id")
    serializer_class = ProjectSerializer
    capabilities = {
        "upload": Can.MANAGE_PROJECTS,
        "import_tasks": Can.MANAGE_PROJECTS,
        "import_urls": Can.MANAGE_PROJECTS,
        "export": Can.MANAGE_PROJECTS,
        "import_dataset": Can.MANAGE_PROJECTS,
    }

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "files": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "minItems": 1,
                        "description": "Images (JPEG, PNG, BMP, TIFF, 8- or 16-bit) and zip "
                        "archives of them; repeat the field for several files.",
                    }
                },
                "required": ["files"],
            }
        },
        responses={201: UploadResultSerializer},
    )
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def upload(self, request: Request, pk: str) -> Response:
        """Upload images (JPEG, PNG, BMP, TIFF) and zip archives of them. All land, or none."""
        project = self.get_object()
        files = [(upload.name or "upload", upload) for upload in request.FILES.getlist("files")]
        if not files:
            raise Invalid(_("Attach one or more files in the “files” field."))
        tasks = upload_images(project, files, acting_user(request))
        return Response(
            {"created": len(tasks), "tasks": TaskSerializer(tasks[:100], many=True).data},
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(
        summary="Import tasks by reference, with annotations and predictions",
        description=IMPORT_DESCRIPTION,
        request={
            "application/json": IMPORT_BODY,
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "A Label Studio JSON or JSON-MIN export, or our own "
                        "task list, as the .json file it is (not zipped).",
                    }
                },
                "required": ["file"],
                "description": "The same JSON as a file (a Label Studio JSON or JSON-MIN export).",
            },
        },
        responses={201: ImportResultSerializer, 202: JobSerializer},
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="import",
        parser_classes=[RawJSONParser, MultiPartParser],
    )
    def import_tasks(self, request: Request, pk: str) -> Response:
        project = self.get_object()
        limit = max_bytes()
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit + 64 * 1024:  # room for a multipart envelope
            raise TooLarge(
                _("A task import is at most %(limit)s MB; send it in parts.")
                % {"limit": settings.MAX_IMPORT_MB}
            )
        if request.content_type.startswith("multipart/"):
            upload = request.FILES.get("file")
            if upload is None:
                raise Invalid(_("Attach the tasks' JSON file in the “file” field."))
            data, name = upload.read(limit + 1), upload.name
        else:
            body = request.data
            data, name = (body if isinstance(body, bytes) else b""), None
        answer, job = import_tasks(project, data, acting_user(request), file_name=name)
        if job is not None:
            return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
        return Response(answer, status=status.HTTP_201_CREATED)

    @extend_schema(
        request={
            "application/json": ImportUrlsSerializer,
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "A .txt, .csv or .json list of addresses.",
                    }
                },
                "required": ["file"],
                "description": "A .txt, .csv or .json list of addresses.",
            },
        },
        responses={202: JobSerializer},
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="import-urls",
        parser_classes=[JSONParser, MultiPartParser, FormParser],
    )
    def import_urls(self, request: Request, pk: str) -> Response:
        """Download images from URLs into the project, as a job: `{"urls": [...]}`, or a
        .txt / .csv / .json list uploaded as `file`. Every URL goes through the guarded fetcher;
        each keeps its own result (`/api/jobs/{id}/items/`)."""
        project = self.get_object()
        upload = request.FILES.get("file")
        if upload is not None:
            urls = urls_from_file(upload.name or "list.txt", upload.read())
        else:
            data = request.data
            urls = urls_from_entries(data.get("urls") if isinstance(data, dict) else data)
        job = start_url_import(project, urls, acting_user(request))
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=ExportOptionsSerializer, responses={202: JobSerializer})
    @action(detail=True, methods=["post"], parser_classes=[JSONParser])
    def export(self, request: Request, pk: str) -> Response:
        """Export the project as a dataset, as a job (managers): `{"format": "yolo",
        "only_approved": false, "include_unlabeled": false, "include_predictions": false,
        "include_images": true, "split": {"train": 0.8, "val": 0.2}, "seed": 0}`; only
        `format` is required. By default only submitted and approved tasks are exported, with
        their images; `include_unlabeled` adds the rest, `only_approved` keeps approved ones
        only. Answers 202 with the job: wait for it with `GET /api/jobs/{id}/?wait=60`; once it
        has succeeded its `download_url` (`/api/jobs/{id}/download/`) answers the zip."""
        project = self.get_object()
        options = request.data if isinstance(request.data, dict) else {}
        job = start_export(project, options, acting_user(request))
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "The dataset as a zip archive: images and annotations.",
                    },
                    "format": {
                        "type": "string",
                        "enum": importable_formats(),
                        "description": "The dataset's format, by the names exports use.",
                    },
                },
                "required": ["file", "format"],
            }
        },
        responses={202: JobSerializer},
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="import-dataset",
        parser_classes=[MultiPartParser, FormParser],
    )
    def import_dataset(self, request: Request, pk: str) -> Response:
        """Import a dataset (a zip with images and annotations in `format`) into the project, as
        a job. Everything is checked before anything lands: if one entry is wrong the job fails
        naming it, and nothing is imported. Missing labels and tags are created."""
        project = self.get_object()
        upload = request.FILES.get("file")
        if upload is None:
            raise Invalid(_("Attach the dataset's zip archive in the “file” field."))
        format_name = request.data.get("format")
        job = start_dataset_import(
            project,
            upload,
            format_name if isinstance(format_name, str) else None,
            acting_user(request),
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
