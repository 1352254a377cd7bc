"""REST API of the model registry: `/api/models/`.

Members read their organizations' models, versions and aliases; managers and owners make
models, upload versions, change a version's notes and thresholds, set the organization's
thresholds for a model (its sensitivity) and move aliases (others get 403). Another organization's model answers 404. An upload is checked at once (a refusal is a
400 with the check's ``code`` and changes nothing) and answers 202: its version is
``validating`` until the check job (``job``) makes it ``ready`` or ``failed``."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import FileResponse, HttpResponseBase
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from defectlab.errors import NotFound
from defectlab.inference import acceptance, registry
from defectlab.inference.models import DetectionModel, ModelAlias, ModelVersion
from defectlab.media.storage import default_storage
from defectlab.params import keyset_page, query_int
from defectlab.schema import documented_field, page_serializer
from defectlab.tenancy.models import Organization
from defectlab.tenancy.roles import Can
from defectlab.tenancy.services import get_scoped, require
from defectlab.tenancy.viewsets import TenantViewSet, acting_user
from defectlab.textlists import split_items

PAGE = 50
NUMBER = OpenApiParameter(
    "number", int, OpenApiParameter.PATH, description="The version's number within the model."
)
ALIAS_NAME = OpenApiParameter(
    "name", str, OpenApiParameter.PATH, description="The alias: a slug (production, staging, …)."
)
CURSOR = OpenApiParameter("cursor", str, description="`next_cursor` of the previous page.")


class AliasSerializer(serializers.ModelSerializer[ModelAlias]):
    version = serializers.IntegerField(source="version.number", read_only=True)
    updated_by = serializers.SlugRelatedField(slug_field="email", read_only=True)  # type: ignore[var-annotated]

    class Meta:
        model = ModelAlias
        fields = ["name", "version", "updated_by", "updated_at"]
        read_only_fields = fields


class ModelSerializer(serializers.ModelSerializer[DetectionModel]):
    organization = serializers.IntegerField(
        source="organization_id", help_text="The organization the model belongs to."
    )
    name = serializers.CharField(
        max_length=registry.MAX_NAME, help_text="Unique within the organization."
    )
    description = serializers.CharField(
        required=False, allow_blank=True, help_text="Free text: what the model detects."
    )
    aliases = AliasSerializer(many=True, read_only=True)
    versions = serializers.IntegerField(source="versions.count", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="email", read_only=True)  # type: ignore[var-annotated]
    conf = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text="The organization's confidence threshold for this model (its sensitivity), "
        "used over a version's own `conf` when set; null: each version's own applies.",
    )
    iou = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text="The organization's IoU threshold of non-maximum suppression for this model, "
        "used over a version's own `iou` when set; null: each version's own applies.",
    )

    class Meta:
        model = DetectionModel
        fields = [
            "id",
            "organization",
            "name",
            "description",
            "versions",
            "aliases",
            "conf",
            "iou",
            "created_by",
            "created_at",
        ]
        read_only_fields = ["id", "versions", "aliases", "conf", "iou", "created_by", "created_at"]


class VersionSerializer(serializers.ModelSerializer[ModelVersion]):
    model = serializers.IntegerField(source="model_id", read_only=True)
    job = serializers.IntegerField(source="job_id", read_only=True, allow_null=True)
    input_size = serializers.SerializerMethodField()
    aliases = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)  # type: ignore[var-annotated]
    uploaded_by = serializers.SlugRelatedField(slug_field="email", read_only=True)  # type: ignore[var-annotated]

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "model",
            "number",
            "state",
            "error_code",
            "error",
            "job",
            "file_name",
            "sha256",
            "size",
            "ir_version",
            "opset",
            "producer",
            "author",
            "license",
            "task",
            "layout",
            "input_size",
            "names",
            "names_from_model",
            "metadata",
            "conf",
            "iou",
            "max_det",
            "notes",
            "check_report",
            "aliases",
            "uploaded_by",
            "uploaded_at",
            "checked_at",
        ]
        read_only_fields = fields

    def get_input_size(self, version: ModelVersion) -> list[int]:
        """[height, width] the letterbox fills."""
        return [version.input_height, version.input_width]


class CountsFields(serializers.Serializer[Any]):
    proposals = serializers.IntegerField(help_text="Proposals counted: kept + moved + deleted.")
    kept = serializers.IntegerField(help_text="Accepted as proposed.")
    moved = serializers.IntegerField(
        help_text="Accepted, then changed (geometry, class or attributes)."
    )
    deleted = serializers.IntegerField(
        help_text="Dropped, or left undecided when the task was submitted."
    )
    left_out = serializers.IntegerField(help_text="Of the deleted ones, those never decided.")
    rate = serializers.FloatField(
        allow_null=True, help_text="kept / (kept + moved + deleted); null when nothing was counted."
    )


class ClassAcceptanceSerializer(CountsFields):
    name = serializers.CharField(
        allow_null=True, help_text="The project label's name; null for labels deleted since."
    )


class AcceptanceSerializer(CountsFields):
    tasks = serializers.IntegerField(
        help_text="Submitted tasks whose current annotation decided on this version's proposals."
    )
    classes = ClassAcceptanceSerializer(many=True, help_text="Per class, most proposals first.")


class ThresholdFields(serializers.Serializer[Any]):
    notes = serializers.CharField(
        required=False, allow_blank=True, help_text="Free text: what changed in this version."
    )
    conf = serializers.FloatField(
        required=False,
        min_value=0.0,
        max_value=1.0,
        help_text="Default confidence threshold of detections with this version (0 to 1).",
    )
    iou = serializers.FloatField(
        required=False,
        min_value=0.0,
        max_value=1.0,
        help_text="Default IoU threshold of its non-maximum suppression (0 to 1).",
    )
    max_det = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=registry.MAX_DETECTIONS,
        help_text="Default largest number of detections per image.",
    )


class UploadSerializer(ThresholdFields):
    file = serializers.FileField(
        help_text="The model, an .onnx file with all its weights inside (DEFECTLAB_MAX_MODEL_MB)."
    )
    names = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Class names in index order, comma-separated, for a model whose metadata has "
        "none (the model's own names win).",
    )
    input_size = serializers.IntegerField(
        required=False,
        min_value=32,
        max_value=16384,
        help_text="Letterbox side for a model exported with a dynamic height and width "
        "(default: its metadata's imgsz, else 640).",
    )


ConfField = documented_field(
    "ConfField",
    serializers.FloatField,
    {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1,
     "exclusiveMaximum": True, "nullable": True},
)  # fmt: skip
IouField = documented_field(
    "IouField",
    serializers.FloatField,
    {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1, "nullable": True},
)


class SensitivitySerializer(serializers.Serializer[Any]):
    conf = ConfField(
        required=False,
        allow_null=True,
        help_text="Confidence threshold, above 0 and below 1: a detection keeps the boxes "
        "scored above it. Null or left out: each version's own `conf` applies.",
    )
    iou = IouField(
        required=False,
        allow_null=True,
        help_text="IoU threshold of non-maximum suppression, above 0 and at most 1: a box "
        "whose overlap with a better box of its class is above it goes (1: none goes). Null or "
        "left out: each version's own `iou` applies.",
    )


class AliasMoveSerializer(serializers.Serializer[Any]):
    version = serializers.IntegerField(
        min_value=1, help_text="The number of the ready version the alias names from now on."
    )


def _models() -> QuerySet[DetectionModel]:
    aliases = ModelAlias.objects.select_related("version", "updated_by")
    return (
        DetectionModel.objects.select_related("created_by")
        .prefetch_related(Prefetch("aliases", queryset=aliases))
        .order_by("id")
    )


class ModelViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """An organization's models, their versions and aliases."""

    queryset = _models()
    serializer_class = ModelSerializer

    def get_queryset(self) -> QuerySet[DetectionModel]:
        rows = super().get_queryset()
        organization = query_int(self.request.query_params, "organization")
        return rows.filter(organization_id=organization) if organization is not None else rows

    def _version(self, model: DetectionModel, number: str) -> ModelVersion:
        found = (
            model.versions.select_related("uploaded_by")
            .prefetch_related("aliases")
            .filter(number=int(number))
            .first()
        )
        if found is None:
            raise NotFound(_("Not found."))
        return found

    def _manage(self, model: DetectionModel) -> None:
        require(self.request.user, model.organization_id, Can.MANAGE_PROJECTS)

    @extend_schema(
        summary="List models",
        description="The models of your organizations, with their aliases and version counts "
        "(`?organization=` narrows to one), in pages.",
        parameters=[
            OpenApiParameter("organization", int, description="Only this organization's models."),
            CURSOR,
        ],
        responses=page_serializer("ModelPage", ModelSerializer),
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page, next_cursor = keyset_page(
            self.get_queryset(), request.query_params.get("cursor"), PAGE
        )
        return Response(
            {"results": ModelSerializer(page, many=True).data, "next_cursor": next_cursor}
        )

    @extend_schema(summary="Show a model", description="One model, with its aliases.")
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary="Create a model",
        description="A new model of the organization (managers and owners), without versions "
        "yet: upload them to `/api/models/{id}/versions/`. 409 when the name is taken.",
        request=ModelSerializer,
        responses={201: ModelSerializer},
    )
    def create(self, request: Request) -> Response:
        form = ModelSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        organization = get_scoped(
            Organization.objects.all(), request.user, pk=data["organization_id"]
        )
        model = registry.create_model(
            organization,
            acting_user(request),
            name=data["name"],
            description=data.get("description", ""),
        )
        return Response(
            ModelSerializer(_models().get(pk=model.pk)).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        summary="List a model's versions",
        description="Newest first, in pages: each version's state (validating, ready, failed "
        "with its code and message), file (SHA-256, size, IR / opset), metadata (author, "
        "license, classes, input size, layout), thresholds and notes.",
        parameters=[CURSOR],
        responses=page_serializer("ModelVersionPage", VersionSerializer),
    )
    @action(detail=True, methods=["get"])
    def versions(self, request: Request, pk: str) -> Response:
        model = self.get_object()
        rows = model.versions.select_related("uploaded_by").prefetch_related("aliases")
        page, next_cursor = keyset_page(
            rows, request.query_params.get("cursor"), PAGE, descending=True
        )
        return Response(
            {"results": VersionSerializer(page, many=True).data, "next_cursor": next_cursor}
        )

    @extend_schema(
        summary="Upload a version",
        description="A multipart upload of an .onnx file. It is checked at once without being "
        "run (size, ONNX format, no external data, IR / opset, one image input, a YOLO output "
        "layout): a refusal answers 400 with the check's `code` and leaves the registry as it "
        "was. Otherwise **202** with the new version, `validating`: a job (`job`) runs it once "
        "in a separate process, under memory and time limits, on a synthetic image, then makes "
        "it `ready` or `failed`. 409 (`duplicate`) when the same file is already a version.",
        request={"multipart/form-data": UploadSerializer},
        responses={202: VersionSerializer},
    )
    @versions.mapping.post
    def upload_version(self, request: Request, pk: str) -> Response:
        model = self.get_object()
        self._manage(model)
        form = UploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        upload = data["file"]
        version = registry.upload_version(
            model,
            acting_user(request),
            upload.read(),
            file_name=upload.name or "",
            notes=data.get("notes", ""),
            names=split_items(data.get("names", "")) or None,
            input_size=data.get("input_size"),
            conf=data.get("conf"),
            iou=data.get("iou"),
            max_det=data.get("max_det"),
        )
        version = self._version(model, str(version.number))
        return Response(VersionSerializer(version).data, status=status.HTTP_202_ACCEPTED)

    upload_version.parser_classes = [MultiPartParser, FormParser]  # type: ignore[attr-defined]

    @extend_schema(
        summary="Show a version",
        description="One version of the model.",
        parameters=[NUMBER],
        operation_id="models_version_retrieve",
    )
    @action(detail=True, methods=["get"], url_path=r"versions/(?P<number>[0-9]+)")
    def version(self, request: Request, pk: str, number: str) -> Response:
        return Response(VersionSerializer(self._version(self.get_object(), number)).data)

    @extend_schema(
        summary="Show a version's acceptance",
        description="How annotators took this version's proposals (predictions whose `source` is "
        "`version:{id}`), read from the current annotation of each submitted task that decided "
        "on them: per class and overall, how many were kept, moved (changed) and deleted "
        "(dropped, or left undecided at submit: `left_out`), and the acceptance rate "
        "kept / (kept + moved + deleted).",
        parameters=[NUMBER],
        responses=AcceptanceSerializer,
        operation_id="models_version_acceptance",
    )
    @action(detail=True, methods=["get"], url_path=r"versions/(?P<number>[0-9]+)/acceptance")
    def version_acceptance(self, request: Request, pk: str, number: str) -> Response:
        version = self._version(self.get_object(), number)
        return Response(AcceptanceSerializer(acceptance.acceptance(version).as_dict()).data)

    @extend_schema(
        summary="Change a version",
        description="Its notes and default thresholds (`conf`, `iou`, `max_det`); fields left "
        "out keep their value. The file and what was read from it never change.",
        parameters=[NUMBER],
        request=ThresholdFields,
        responses=VersionSerializer,
    )
    @version.mapping.patch
    def update_version(self, request: Request, pk: str, number: str) -> Response:
        model = self.get_object()
        self._manage(model)
        form = ThresholdFields(data=request.data)
        form.is_valid(raise_exception=True)
        version = self._version(model, number)
        registry.update_version(version, acting_user(request), **form.validated_data)
        return Response(VersionSerializer(self._version(model, number)).data)

    @extend_schema(
        summary="Download a version's file",
        description="The .onnx file as uploaded (its SHA-256 is the version's `sha256`).",
        parameters=[NUMBER],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
    )
    @action(detail=True, methods=["get"], url_path=r"versions/(?P<number>[0-9]+)/file")
    def file(self, request: Request, pk: str, number: str) -> HttpResponseBase:
        model = self.get_object()
        version = self._version(model, number)
        storage = default_storage()
        if not storage.exists(version.file_key):
            raise NotFound(_("The model file is no longer in storage."))
        return FileResponse(
            storage.open(version.file_key),
            as_attachment=True,
            filename=f"{_slug(model.name)}-v{version.number}.onnx",
            content_type="application/octet-stream",
        )

    @extend_schema(
        summary="Move an alias",
        description="Point the alias (made if new) at a version of the model: only a `ready` "
        "one (409 `version_not_ready` otherwise). Moves take turns under the model's lock, and "
        "each is in the audit trail with the versions it moved from and to.",
        parameters=[ALIAS_NAME],
        request=AliasMoveSerializer,
        responses=AliasSerializer,
    )
    @action(
        detail=True,
        methods=["put"],
        url_path=r"aliases/(?P<name>[^/]+)",
        parser_classes=[JSONParser, FormParser],
    )
    def alias(self, request: Request, pk: str, name: str) -> Response:
        model = self.get_object()
        self._manage(model)
        form = AliasMoveSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        alias = registry.move_alias(
            model, acting_user(request), name, form.validated_data["version"]
        )
        return Response(AliasSerializer(alias).data)

    @extend_schema(
        summary="Set a model's sensitivity",
        description="The organization's own thresholds for the model (managers and owners): "
        "`conf` and `iou`, used over each version's defaults by pre-annotation and the "
        "detection service when the caller names none; null (or left out) clears one, and "
        "the version's own applies again. In the audit trail (`model.sensitivity_changed`, "
        "with `from` and `to`). Answers the model.",
        request=SensitivitySerializer,
        responses=ModelSerializer,
    )
    @action(detail=True, methods=["put"], parser_classes=[JSONParser, FormParser])
    def sensitivity(self, request: Request, pk: str) -> Response:
        model = self.get_object()
        self._manage(model)
        form = SensitivitySerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        registry.set_sensitivity(
            model, acting_user(request), conf=data.get("conf"), iou=data.get("iou")
        )
        return Response(ModelSerializer(_models().get(pk=model.pk)).data)

    @extend_schema(
        summary="Remove an alias",
        description="The alias stops naming a version (in the audit trail); 404 if it has none.",
        parameters=[ALIAS_NAME],
        responses={204: None},
    )
    @alias.mapping.delete
    def delete_alias(self, request: Request, pk: str, name: str) -> Response:
        model = self.get_object()
        self._manage(model)
        registry.delete_alias(model, acting_user(request), name)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _slug(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-")
    return cleaned or "model"
