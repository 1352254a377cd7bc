"""The registry's services: an upload is checked before anything is kept, becomes a
``validating`` version, and its check job (the sandbox run of the engine's detector on a
synthetic panel) makes it ready or failed; aliases move only to ready versions, atomically and
in the audit trail."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
import pytest

from defectlab.errors import Conflict, Forbidden, Invalid, NotFound
from defectlab.inference import registry
from defectlab.inference.models import DetectionModel, ModelAlias, ModelVersion, VersionState
from defectlab.jobs.models import Job, JobState
from defectlab.media.storage import default_storage
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import AuditEvent, Role
from tests.conftest import Tenant
from tests.inference import hostile
from tests.inference.engine.test_checks import external_copy
from tests.inference.registry import models as files

pytestmark = pytest.mark.django_db


@pytest.fixture
def model(tenant: Tenant) -> DetectionModel:
    return registry.create_model(
        tenant.organization, tenant.user(Role.MANAGER), name="Scratches", description="line 3"
    )


@pytest.fixture
def upload(
    model: DetectionModel,
    tenant: Tenant,
    queued: list[int],
    django_capture_on_commit_callbacks: Any,
) -> Callable[..., ModelVersion]:
    def send(data: bytes, **options: Any) -> ModelVersion:
        with django_capture_on_commit_callbacks(execute=True):
            return registry.upload_version(model, tenant.user(Role.MANAGER), data, **options)

    return send


def stored_models(storage_dir: Path) -> list[str]:
    """The model files kept in storage (the tenant's task images are there too)."""
    return sorted(
        str(Path(root, name).relative_to(storage_dir))
        for root, _, names in os.walk(storage_dir)
        for name in names
        if "/models/" in str(Path(root, name))
    )


def test_an_upload_is_validating_then_ready_with_what_the_engine_read(
    upload: Callable[..., ModelVersion], drain: Callable[[], None], queued: list[int], model: Any
) -> None:
    data = files.good()
    version = upload(data, notes="first try", file_name="scratch.onnx")
    assert (version.number, version.state) == (1, VersionState.VALIDATING)
    assert queued == [version.job_id]
    assert default_storage().read(version.file_key) == data
    assert version.names == ["scratch", "dent"] and version.names_from_model
    assert (version.input_height, version.input_width, version.layout) == (640, 640, "yolov8")
    assert (version.author, version.license, version.task) == ("Acme QA", "AGPL-3.0", "detect")
    assert (version.conf, version.iou, version.max_det) == (0.25, 0.7, 300)
    assert version.ir_version == 8 and version.opset == 17 and len(version.sha256) == 64
    assert version.metadata["author"] == "Acme QA"

    drain()
    version.refresh_from_db()
    assert version.state == VersionState.READY, version.error
    assert version.check_report["layout"] == "yolov8"
    assert version.check_report["detections"] == 1  # the constant scratch, on the panel
    assert Job.objects.get(pk=version.job_id).state == JobState.SUCCEEDED
    assert upload(files.good(author="Acme QA 2")).number == 2


def test_names_from_the_form_for_a_model_without_them_and_thresholds_given(
    upload: Callable[..., ModelVersion],
) -> None:
    version = upload(files.unnamed(), names=["crack", "pit"], conf=0.4, max_det=50)
    # The model has three classes: the third is named for its index.
    assert version.names == ["crack", "pit", "class 2"] and not version.names_from_model
    assert (version.conf, version.iou, version.max_det) == (0.4, 0.7, 50)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty"),
        (b"PK\x03\x04 a torch checkpoint", "not_onnx"),
        (b"this is not a model at all", "not_onnx"),
        (hostile.serialized(hostile.identity_with_output(["batch", 3, 7, 9, 11])), "bad_output"),
        # Passes the file checks; no YOLO layout fits its output (the engine's refusal).
        (hostile.serialized(hostile.identity_with_output(["batch", 3, "h", "w"])), "bad_outputs"),
    ],
)
def test_a_refused_file_leaves_the_registry_as_it_was(
    upload: Callable[..., ModelVersion],
    queued: list[int],
    storage_dir: Path,
    data: bytes,
    code: str,
) -> None:
    before = AuditEvent.objects.count()
    with pytest.raises(Invalid) as refused:
        upload(data)
    assert refused.value.code == code
    assert refused.value.message and "%(" not in refused.value.message
    assert not ModelVersion.objects.exists() and queued == []
    assert stored_models(storage_dir) == [] and AuditEvent.objects.count() == before


def test_external_data_is_refused(
    upload: Callable[..., ModelVersion], tmp_path: Path, storage_dir: Path
) -> None:
    with pytest.raises(Invalid) as refused:
        upload(external_copy(hostile.small_detector(), tmp_path))
    assert refused.value.code == "external_data"
    assert not ModelVersion.objects.exists() and stored_models(storage_dir) == []


def test_a_model_over_the_size_limit_is_refused(
    upload: Callable[..., ModelVersion], settings: Any
) -> None:
    settings.MAX_MODEL_MB = 1
    with pytest.raises(Exception) as refused:
        upload(files.good(description="x" * (2 << 20)))
    assert getattr(refused.value, "code", None) == "too_large"
    assert not ModelVersion.objects.exists()


def test_the_same_file_twice_is_a_conflict(upload: Callable[..., ModelVersion]) -> None:
    upload(files.good())
    with pytest.raises(Conflict) as twice:
        upload(files.good())
    assert twice.value.code == "duplicate" and ModelVersion.objects.count() == 1


@pytest.mark.parametrize(
    ("build", "code"), [(files.throwing, "runtime_error"), (files.hungry, "out_of_memory")]
)
def test_a_graph_that_throws_or_asks_for_gigabytes_fails_its_check(
    upload: Callable[..., ModelVersion],
    drain: Callable[[], None],
    build: Callable[[], bytes],
    code: str,
) -> None:
    version = upload(build())
    assert version.state == VersionState.VALIDATING  # the checks could not tell
    drain()  # the sandbox ran it; this process is unharmed and goes on
    version.refresh_from_db()
    assert (version.state, version.error_code) == (VersionState.FAILED, code)
    assert version.error and "%(" not in version.error
    job = Job.objects.get(pk=version.job_id)
    assert (job.state, job.error) == (JobState.FAILED, version.error)
    with pytest.raises(Conflict) as refused:
        registry.move_alias(version.model, None, "production", version.number)
    assert refused.value.code == "version_not_ready"


def test_the_check_job_is_idempotent(
    upload: Callable[..., ModelVersion], drain: Callable[[], None]
) -> None:
    version = upload(files.good())
    drain()
    job = Job.objects.get(pk=version.job_id)
    assert registry.run_version_check(job, None) == {
        "model": version.model_id,
        "version": 1,
        "state": "ready",
    }
    assert AuditEvent.objects.filter(action=AuditAction.MODEL_VERSION_CHECKED).count() == 1


def test_aliases_move_to_ready_versions_only_and_every_move_is_audited(
    upload: Callable[..., ModelVersion], drain: Callable[[], None], tenant: Tenant
) -> None:
    first = upload(files.good())
    drain()
    manager = tenant.user(Role.MANAGER)
    with pytest.raises(Conflict):  # still validating
        second = upload(files.good(author="B"))
        registry.move_alias(first.model, manager, "production", second.number)
    drain()
    registry.move_alias(first.model, manager, "production", 1)
    registry.move_alias(first.model, manager, "production", 2)
    registry.move_alias(first.model, manager, "staging", 2)
    assert {a.name: a.version.number for a in ModelAlias.objects.all()} == {
        "production": 2,
        "staging": 2,
    }
    moves = AuditEvent.objects.filter(action=AuditAction.MODEL_ALIAS_MOVED).order_by("id")
    assert [(e.data["alias"], e.data["from"], e.data["to"]) for e in moves] == [
        ("production", None, 1),
        ("production", 1, 2),
        ("staging", None, 2),
    ]
    assert {e.actor_id for e in moves} == {manager.pk}
    registry.delete_alias(first.model, manager, "staging")
    deleted = AuditEvent.objects.get(action=AuditAction.MODEL_ALIAS_DELETED)
    assert (deleted.data["from"], deleted.data["to"]) == (2, None)
    with pytest.raises(NotFound):
        registry.move_alias(first.model, manager, "production", 9)
    with pytest.raises(Invalid):
        registry.move_alias(first.model, manager, "Not A Slug!", 1)


def test_reading_roles_cannot_change_the_registry(tenant: Tenant, model: DetectionModel) -> None:
    reviewer = tenant.user(Role.REVIEWER)
    with pytest.raises(Forbidden):
        registry.create_model(tenant.organization, reviewer, name="Mine")
    with pytest.raises(Forbidden):
        registry.upload_version(model, reviewer, files.good())
    with pytest.raises(Forbidden):
        registry.move_alias(model, reviewer, "production", 1)
    assert not ModelVersion.objects.exists()


def test_names_are_unique_in_an_organization_only(
    tenant: Tenant, other_tenant: Tenant, model: DetectionModel
) -> None:
    with pytest.raises(Conflict):
        registry.create_model(tenant.organization, tenant.user(Role.OWNER), name="Scratches")
    elsewhere = registry.create_model(
        other_tenant.organization, other_tenant.user(Role.OWNER), name="Scratches"
    )
    assert elsewhere.pk != model.pk
    assert AuditEvent.objects.filter(action=AuditAction.MODEL_CREATED).count() == 2


def test_an_onnx_file_is_read_as_the_checks_read_it() -> None:
    # the fixtures themselves are valid ONNX (a broken builder would make every test above lie)
    for data in (files.good(), files.unnamed(), files.throwing(), files.hungry()):
        onnx.checker.check_model(onnx.load_model_from_string(data))


def test_a_version_whose_file_went_missing_fails_its_check_with_a_message(
    upload: Callable[..., ModelVersion], drain: Callable[[], None]
) -> None:
    version = upload(files.good())
    default_storage().delete(version.file_key)
    drain()
    version.refresh_from_db()
    assert (version.state, version.error_code) == (VersionState.FAILED, "missing_file")
    assert "upload it again" in version.error
