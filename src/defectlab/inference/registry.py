"""The model registry's services: making a model, uploading a version (checked at once, then
run once in the sandbox by a job), changing a version's notes and thresholds, and moving or
removing aliases. Views and the command call these; each checks the person's role (reading
needs membership, changing needs a manager's role), does its work in one transaction and writes
the audit row.

An upload is read by ``engine.checks`` before anything is kept: a refusal leaves the registry
exactly as it was (no row, no file). What passes is stored in the organization's storage and
its version starts ``validating``; the check job (``run_version_check``) makes it ``ready`` or
``failed``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from defectlab.errors import Conflict, DefectLabError, Invalid, NotFound, TooLarge
from defectlab.inference.engine.errors import EngineError, gettext_noop
from defectlab.inference.engine.layout import Layout, LayoutKind, recognise
from defectlab.inference.engine.metadata import (
    MAX_CLASSES,
    ModelMetadata,
    class_names,
    read_metadata,
)
from defectlab.inference.engine.sandbox import SandboxResult, validate_in_sandbox
from defectlab.inference.models import DetectionModel, ModelAlias, ModelVersion, VersionState
from defectlab.inference.validation import RUN
from defectlab.jobs.models import Job
from defectlab.jobs.services import start_job
from defectlab.media.storage import default_storage
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import Organization, User
from defectlab.tenancy.roles import Can
from defectlab.tenancy.services import record, require

if TYPE_CHECKING:  # `checks` loads onnx, the detector onnxruntime: only when a file is read
    from defectlab.inference.engine import Detector
    from defectlab.inference.engine.checks import ModelFile

CHECK_KIND = "model_check"
MANAGE = Can.MANAGE_PROJECTS
MAX_NAME = 100
MAX_DETECTIONS = 10_000
ALIAS = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,48}[a-z0-9])?$")
MB = 1 << 20
MISSING_FILE = gettext_noop("The model's file is no longer in storage; upload it again.")


# ---------------------------------------------------------------------------- models


def create_model(
    organization: Organization, user: User | None, *, name: str, description: str = ""
) -> DetectionModel:
    if user is not None:
        require(user, organization.pk, MANAGE)
    name = (name or "").strip()
    if not name:
        raise Invalid(_("Give the model a name."))
    if len(name) > MAX_NAME:
        raise Invalid(_("A model's name has at most %(count)s characters.") % {"count": MAX_NAME})
    try:
        with transaction.atomic():
            model = DetectionModel.objects.create(
                organization=organization,
                name=name,
                description=(description or "").strip(),
                created_by=user,
            )
            record(
                None,
                AuditAction.MODEL_CREATED,
                organization=organization,
                target=model,
                actor=user,
                data={"name": name},
            )
    except IntegrityError:
        raise Conflict(
            _("This organization already has a model named “%(name)s”.") % {"name": name}
        ) from None
    return model


# ---------------------------------------------------------------------------- uploads


@dataclass(frozen=True)
class Checked:
    """An upload that passed the checks, with what the engine reads from it."""

    file: ModelFile
    metadata: ModelMetadata
    layout: Layout
    names: tuple[str, ...]


def refusal(error: EngineError) -> DefectLabError:
    """A checks or engine refusal as the API's error, in the language of the request."""
    message = error.localized(_)
    kind: type[DefectLabError] = TooLarge if error.code == "too_large" else Invalid
    return kind(message, code=error.code)


def check_upload(
    data: bytes, *, names: Sequence[str] | None = None, input_size: int | None = None
) -> Checked:
    """``data`` read as a detector (never run): ``engine.checks``, then the engine's layout
    from the declared shapes, or Invalid / TooLarge with the refusal's code."""
    from defectlab.inference.engine.checks import inspect_model

    if names is not None and len(names) > MAX_CLASSES:
        raise Invalid(_("At most %(count)s class names.") % {"count": MAX_CLASSES})
    try:
        file = inspect_model(data, max_bytes=settings.MAX_MODEL_MB * MB)
        metadata = read_metadata(file.metadata)
        layout = recognise(
            [file.input],
            list(file.outputs),
            metadata,
            classes=len(names) if names else None,
            input_size=(input_size, input_size) if input_size else None,
        )
    except EngineError as error:  # checks' ModelRefused is one too
        raise refusal(error) from None
    return Checked(file, metadata, layout, class_names(metadata, names, layout.classes))


def _thresholds(layout: Layout, given: dict[str, Any]) -> dict[str, Any]:
    from defectlab.inference.engine.detector import (
        DEFAULT_CONF,
        DEFAULT_IOU,
        DEFAULT_IOU_V5,
        DEFAULT_MAX_DET,
    )

    iou = DEFAULT_IOU_V5 if layout.kind is LayoutKind.YOLOV5 else DEFAULT_IOU
    chosen = {"conf": DEFAULT_CONF, "iou": iou, "max_det": DEFAULT_MAX_DET}
    chosen |= {key: value for key, value in given.items() if value is not None}
    return clean_thresholds(chosen)


def clean_thresholds(values: dict[str, Any]) -> dict[str, Any]:
    """``conf`` and ``iou`` in [0, 1], ``max_det`` from 1 to 10,000 (those given)."""
    cleaned: dict[str, Any] = {}
    for key in ("conf", "iou"):
        if values.get(key) is not None:
            value = float(values[key])
            if not 0.0 <= value <= 1.0:
                raise Invalid(_("%(name)s must be between 0 and 1.") % {"name": key})
            cleaned[key] = value
    if values.get("max_det") is not None:
        count = int(values["max_det"])
        if not 1 <= count <= MAX_DETECTIONS:
            raise Invalid(_("max_det must be between 1 and %(count)s.") % {"count": MAX_DETECTIONS})
        cleaned["max_det"] = count
    return cleaned


def file_key(version: ModelVersion) -> str:
    return f"org/{version.organization_id}/models/{version.model_id}/v{version.number}.onnx"


def upload_version(
    model: DetectionModel,
    user: User | None,
    data: bytes,
    *,
    file_name: str = "",
    notes: str = "",
    names: Sequence[str] | None = None,
    input_size: int | None = None,
    conf: float | None = None,
    iou: float | None = None,
    max_det: int | None = None,
) -> ModelVersion:
    """A new version of ``model`` from ``data``, ``validating``, with its check job started;
    or a refusal that changed nothing."""
    if user is not None:
        require(user, model.organization_id, MANAGE)
    names = [name.strip() for name in names or () if name.strip()] or None
    checked = check_upload(data, names=names, input_size=input_size)
    thresholds = _thresholds(checked.layout, {"conf": conf, "iou": iou, "max_det": max_det})
    storage = default_storage()
    key: str | None = None
    try:
        with transaction.atomic():
            model = DetectionModel.objects.select_for_update().get(pk=model.pk)
            _refuse_duplicate(model, checked.file.sha256)
            version = _new_version(model, user, checked, file_name, notes, thresholds)
            key = version.file_key
            storage.save(key, data)
            version.job = start_job(
                model.organization,
                CHECK_KIND,
                params={"version": version.pk, "model": model.pk, "number": version.number},
                user=user,
            )
            version.save(update_fields=["job"])
            record(
                None,
                AuditAction.MODEL_VERSION_UPLOADED,
                organization=model.organization_id,
                target=version,
                actor=user,
                data={
                    "model": model.pk,
                    "version": version.number,
                    "sha256": version.sha256,
                    "size": version.size,
                },
            )
    except BaseException:
        if key is not None:
            storage.delete(key)
        raise
    return version


def _refuse_duplicate(model: DetectionModel, sha256: str) -> None:
    same = model.versions.filter(sha256=sha256).values_list("number", flat=True).first()
    if same is not None:
        raise Conflict(
            _("This file is already version %(number)s of this model.") % {"number": same},
            code="duplicate",
        )


def _new_version(
    model: DetectionModel,
    user: User | None,
    checked: Checked,
    file_name: str,
    notes: str,
    thresholds: dict[str, Any],
) -> ModelVersion:
    number = (model.versions.aggregate(top=Max("number"))["top"] or 0) + 1
    file, metadata, layout = checked.file, checked.metadata, checked.layout
    version = ModelVersion(
        organization_id=model.organization_id,
        model=model,
        number=number,
        sha256=file.sha256,
        size=file.size,
        file_name=(file_name or "")[-255:],
        ir_version=file.ir_version,
        opset=file.opset,
        producer=f"{file.producer_name} {file.producer_version}".strip()[:200],
        metadata=dict(file.metadata),
        names=list(checked.names),
        names_from_model=bool(metadata.names),
        input_height=layout.input_size[0],
        input_width=layout.input_size[1],
        layout=str(layout.kind),
        task=(metadata.task or "")[:32],
        author=(metadata.author or "")[:200],
        license=(metadata.license or "")[:200],
        notes=(notes or "").strip(),
        uploaded_by=user,
        **thresholds,
    )
    version.file_key = file_key(version)
    version.save()
    return version


# ---------------------------------------------------------------------------- the check


def run_version_check(job: Job, progress: Any) -> dict[str, Any]:
    """The job: run the version's file once in the sandbox, then mark it ready or failed.
    Idempotent: a version already checked is left as it is."""
    version = ModelVersion.objects.filter(pk=job.params.get("version")).first()
    if version is None:
        raise NotFound(_("The model version to check no longer exists."))
    if version.state != VersionState.VALIDATING:
        return _outcome(version)
    storage = default_storage()
    if not storage.exists(version.file_key):
        return _finish_check(version, SandboxResult("missing_file", MISSING_FILE))
    data = storage.read(version.file_key)
    options = {
        "names": version.names,
        "input_size": [version.input_height, version.input_width],
        "conf": version.conf,
        "iou": version.iou,
        "max_det": version.max_det,
    }
    result = validate_in_sandbox(
        data,
        RUN,
        memory_mb=settings.MODEL_CHECK_MEMORY_MB,
        seconds=settings.MODEL_CHECK_SECONDS,
        options=options,
    )
    return _finish_check(version, result)


def _finish_check(version: ModelVersion, result: SandboxResult) -> dict[str, Any]:
    """Mark the version ready or failed by ``result`` (once), with the audit row; a failure
    fails the job too, with the same message."""
    report = dict(result.report)
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if version.state == VersionState.VALIDATING:
            version.state = VersionState.READY if result.ok else VersionState.FAILED
            version.error_code = "" if result.ok else result.code
            version.error = "" if result.ok else result.localized(_)
            version.check_report = {
                **report,
                "seconds": round(result.seconds, 3),
                "peak_rss_bytes": result.peak_rss_bytes,
            }
            version.checked_at = timezone.now()
            version.save()
            record(
                None,
                AuditAction.MODEL_VERSION_CHECKED,
                organization=version.organization_id,
                target=version,
                data={"version": version.number, "state": version.state, "code": result.code},
            )
    if version.state == VersionState.FAILED:
        raise Invalid(version.error, code=version.error_code)
    return _outcome(version)


def _outcome(version: ModelVersion) -> dict[str, Any]:
    return {"model": version.model_id, "version": version.number, "state": version.state}


# ---------------------------------------------------------------------------- changes


def update_version(version: ModelVersion, user: User | None, **changes: Any) -> ModelVersion:
    """Change ``notes``, ``conf``, ``iou`` or ``max_det`` (those given)."""
    if user is not None:
        require(user, version.organization_id, MANAGE)
    thresholds = clean_thresholds(changes)
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        before = {key: getattr(version, key) for key in ("notes", *thresholds)}
        for key, value in thresholds.items():
            setattr(version, key, value)
        if changes.get("notes") is not None:
            version.notes = str(changes["notes"]).strip()
        version.save()
        after = {key: getattr(version, key) for key in before}
        record(
            None,
            AuditAction.MODEL_VERSION_UPDATED,
            organization=version.organization_id,
            target=version,
            actor=user,
            data={
                "model": version.model_id,
                "version": version.number,
                "from": before,
                "to": after,
            },
        )
    return version


# ---------------------------------------------------------------------------- sensitivity


def thresholds(version: ModelVersion) -> tuple[float, float, int]:
    """``(conf, iou, max_det)`` a detection with ``version`` uses when its caller gives none:
    the organization's saved sensitivity of the version's model (``DetectionModel.conf`` /
    ``iou``, each when set) over the version's own defaults; ``max_det`` is the version's.
    Reads ``version.model`` (select it with the version to spare a query)."""
    model = version.model
    conf = model.conf if model.conf is not None else version.conf
    iou = model.iou if model.iou is not None else version.iou
    return conf, iou, version.max_det


def clean_sensitivity(conf: Any, iou: Any) -> dict[str, float | None]:
    """``conf`` in (0, 1) and ``iou`` in (0, 1], each a number or None (not set)."""
    cleaned: dict[str, float | None] = {"conf": None, "iou": None}
    for key, value in (("conf", conf), ("iou", iou)):
        if value is None or value == "":
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise Invalid(_("%(name)s must be a number.") % {"name": key}) from None
        if key == "conf" and not 0.0 < number < 1.0:
            raise Invalid(_("The confidence must be above 0 and below 1."), code="invalid_conf")
        if key == "iou" and not 0.0 < number <= 1.0:
            raise Invalid(_("The IoU must be above 0 and at most 1."), code="invalid_iou")
        cleaned[key] = number
    return cleaned


def set_sensitivity(
    model: DetectionModel, user: User | None, *, conf: Any = None, iou: Any = None
) -> DetectionModel:
    """Save ``conf`` and ``iou`` as the organization's thresholds of ``model`` (managers; None
    clears one: the version's own applies again), in the audit trail with before and after."""
    if user is not None:
        require(user, model.organization_id, MANAGE)
    chosen = clean_sensitivity(conf, iou)
    with transaction.atomic():
        model = DetectionModel.objects.select_for_update().get(pk=model.pk)
        before = {"conf": model.conf, "iou": model.iou}
        model.conf, model.iou = chosen["conf"], chosen["iou"]
        model.save(update_fields=["conf", "iou"])
        record(
            None,
            AuditAction.MODEL_SENSITIVITY_CHANGED,
            organization=model.organization_id,
            target=model,
            actor=user,
            data={"from": before, "to": chosen},
        )
    return model


def clean_alias(name: str) -> str:
    name = (name or "").strip().lower()
    if not ALIAS.match(name):
        raise Invalid(
            _(
                "An alias is 1 to 50 lower-case letters, digits, “-” or “_”, starting and "
                "ending with a letter or digit (production, staging, line-3)."
            )
        )
    return name


def move_alias(model: DetectionModel, user: User | None, name: str, number: int) -> ModelAlias:
    """Point alias ``name`` of ``model`` at its version ``number`` (made if new). Only a ready
    version can be named; the move holds the model's row lock, so moves take turns."""
    if user is not None:
        require(user, model.organization_id, MANAGE)
    name = clean_alias(name)
    with transaction.atomic():
        model = DetectionModel.objects.select_for_update().get(pk=model.pk)
        version = model.versions.filter(number=number).first()
        if version is None:
            raise NotFound(_("This model has no version %(number)s.") % {"number": number})
        if version.state != VersionState.READY:
            raise Conflict(
                _("Version %(number)s is %(state)s; only a ready version can have an alias.")
                % {"number": number, "state": version.get_state_display()},
                code="version_not_ready",
            )
        alias = model.aliases.select_related("version").filter(name=name).first()
        before = alias.version.number if alias is not None else None
        if alias is None:
            alias = ModelAlias(organization_id=model.organization_id, model=model, name=name)
        alias.version, alias.updated_by = version, user
        alias.save()
        record(
            None,
            AuditAction.MODEL_ALIAS_MOVED,
            organization=model.organization_id,
            target=model,
            actor=user,
            data={"alias": name, "from": before, "to": version.number},
        )
    return alias


def delete_alias(model: DetectionModel, user: User | None, name: str) -> None:
    if user is not None:
        require(user, model.organization_id, MANAGE)
    with transaction.atomic():
        model = DetectionModel.objects.select_for_update().get(pk=model.pk)
        alias = model.aliases.select_related("version").filter(name=name).first()
        if alias is None:
            raise NotFound(_("This model has no alias “%(name)s”.") % {"name": name})
        record(
            None,
            AuditAction.MODEL_ALIAS_DELETED,
            organization=model.organization_id,
            target=model,
            actor=user,
            data={"alias": name, "from": alias.version.number, "to": None},
        )
        alias.delete()


def read_file(version: ModelVersion) -> bytes:
    """The version's ``.onnx`` file from the organization's storage."""
    return default_storage().read(version.file_key)


def load_detector(version: ModelVersion, **options: Any) -> Detector:
    """The engine's detector for ``version``, with its input size and the thresholds a
    detection with it uses (`thresholds`: the organization's saved sensitivity of the model
    over the version's defaults); ``options`` go to the engine (threads, memory_arena, batch,
    max_pixels)."""
    from defectlab.inference.engine import Detector

    conf, iou, max_det = thresholds(version)
    try:
        return Detector(
            read_file(version),
            names=version.names or None,
            conf=conf,
            iou=iou,
            max_det=max_det,
            input_size=(version.input_height, version.input_width),
            **options,
        )
    except EngineError as error:
        raise refusal(error) from None
    except FileNotFoundError:
        raise NotFound(_("The model's file is no longer in storage; upload it again.")) from None
