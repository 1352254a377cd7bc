"""`defectlab model upload / list / alias` on the local installation."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from defectlab.cli import main
from defectlab.inference.models import DetectionModel, ModelAlias, ModelVersion
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import AuditEvent, Role
from tests.conftest import Tenant
from tests.inference.registry import models as files

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), prog_name="defectlab")
    return result.exit_code, result.output


def test_upload_checks_the_file_and_says_it_is_ready_then_alias_and_list(
    tenant: Tenant, tmp_path: Path, queued: list[int]
) -> None:
    path = tmp_path / "scratch.onnx"
    path.write_bytes(files.good())
    owner = tenant.user(Role.OWNER).email
    code, output = run(
        "model", "upload", str(path), "--organization", "Acme", "--name", "Scratches",
        "--notes", "first", "--as", owner,
    )  # fmt: skip
    assert code == 0, output
    assert "Version 1 of Scratches is ready: yolov8, input 640×640, 2 classes" in output
    version = ModelVersion.objects.get()
    assert (version.notes, version.uploaded_by.email) == ("first", owner)

    code, output = run("model", "alias", "Scratches", "production", "1", "--as", owner)
    assert code == 0, output
    assert "production → version 1" in output
    assert ModelAlias.objects.get().version == version
    moved = AuditEvent.objects.get(action=AuditAction.MODEL_ALIAS_MOVED)
    assert moved.actor == tenant.user(Role.OWNER)

    code, output = run("model", "list", "--organization", str(tenant.organization.pk))
    assert code == 0, output
    assert "Scratches  (Acme)  aliases: production→v1" in output
    assert "v1  ready  yolov8" in output


def test_a_refused_file_exits_1_with_its_code_and_keeps_nothing(
    tenant: Tenant, tmp_path: Path
) -> None:
    path = tmp_path / "best.pt"
    path.write_bytes(b"PK\x03\x04 a PyTorch checkpoint")
    code, output = run("model", "upload", str(path), "--organization", "Acme", "--name", "S")
    assert code == 1
    assert "ZIP archive" in output and "(not_onnx)" in output
    assert not ModelVersion.objects.exists() and not DetectionModel.objects.exists()


def test_a_failed_check_exits_1_and_an_alias_to_it_is_refused(
    tenant: Tenant, tmp_path: Path, queued: list[int]
) -> None:
    path = tmp_path / "throws.onnx"
    path.write_bytes(files.throwing())
    code, output = run("model", "upload", str(path), "--organization", "Acme", "--name", "Bad")
    assert code == 1
    assert "Version 1 failed its check (runtime_error)" in output
    code, output = run("model", "alias", "Bad", "production", "1")
    assert code == 1 and "(version_not_ready)" in output
    assert "v1  failed" in run("model", "list")[1]
    assert DetectionModel.objects.count() == 1


def test_a_reading_role_cannot_upload(tenant: Tenant, tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(files.good())
    reviewer = tenant.user(Role.REVIEWER).email
    code, output = run(
        "model", "upload", str(path), "--organization", "Acme", "--name", "S", "--as", reviewer
    )
    assert code == 1 and "(forbidden)" in output
    assert not DetectionModel.objects.exists()


def test_preannotate_runs_the_job_here_and_says_what_it_did(
    tenant: Tenant, tmp_path: Path, queued: list[int]
) -> None:
    from defectlab.labeling.models import Prediction

    path = tmp_path / "scratch.onnx"
    path.write_bytes(files.good())
    owner = tenant.user(Role.OWNER).email
    assert run("model", "upload", str(path), "--organization", "Acme", "--name", "S")[0] == 0
    assert run("model", "alias", "S", "production", "1")[0] == 0
    project = str(tenant.project.pk)
    code, output = run("model", "preannotate", project, "S", "--as", owner)
    assert code == 0, output
    tasks = len(tenant.tasks)
    assert f"Version 1: {tasks} tasks pre-annotated, {tasks} proposals" in output
    assert Prediction.objects.filter(task__project=tenant.project).count() == tasks
    # The same again replaces; a version that does not exist is a clear refusal.
    assert run("model", "preannotate", project, "S", "--version", "1")[0] == 0
    assert Prediction.objects.filter(task__project=tenant.project).count() == tasks
    code, output = run("model", "preannotate", project, "S", "--version", "9")
    assert code == 1 and "no version 9" in output
