"""`defectlab backup` / `restore` where things go wrong around them: files deleted while a backup
runs, a forged archive resealed by someone without the secret key, a restore into an
installation that is running, the deployment check's probe files, member names that cannot be
written, and writes that fail."""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from defectlab.cli import main
from defectlab.errors import DefectLabError
from defectlab.inference.models import ModelVersion
from defectlab.labeling.models import Task
from defectlab.media.storage import LocalStorage, default_storage
from defectlab.operations import backup as backup_module
from defectlab.operations.archive import verify
from defectlab.operations.backup import backup
from tests.operations import test_backup as backup_tests
from tests.operations.test_backup import (
    ROOT,
    build_installation,
    defectlab,
    described,
    reseal,
    rewrite,
    untouched,
)

# The installation backed up by `defectlab backup`, and an empty one to restore into.
installation = backup_tests.installation
target = backup_tests.target

pytestmark = pytest.mark.django_db


def storage_root() -> Path:
    storage = default_storage()
    assert isinstance(storage, LocalStorage)
    return Path(storage.root)


def test_files_deleted_while_the_backup_runs_are_named_by_backup_and_restore(
    queued: list[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: dict[str, str]
) -> None:
    """A project's image and a model version's file deleted after the rows were read and
    before the files are copied (the deletion is made at that point by wrapping the step
    that copies the files; a thumbnail deleted too is a cache, not missed): the archive
    records them as missing, both commands say so."""
    build_installation(queued)
    image = Task.objects.order_by("pk").first().image  # type: ignore[union-attr]
    model_file = ModelVersion.objects.get().file_key
    copy_files = backup_module._write_files

    def deleted_meanwhile(*args: Any) -> None:
        default_storage().delete(image)
        default_storage().delete(model_file)
        copy_files(*args)

    monkeypatch.setattr(backup_module, "_write_files", deleted_meanwhile)
    archive = tmp_path / "backup.tar"
    result = CliRunner().invoke(main, ["backup", str(archive)], prog_name="defectlab")
    assert result.exit_code == 0, result.output
    assert "Warning: 2 files the rows name were deleted while the backup ran" in result.output
    assert image in result.output and model_file in result.output
    manifest = verify(archive, tmp_path).manifest
    assert manifest["files"]["missing"] == sorted([image, model_file])
    done = defectlab(target, "restore", str(archive))
    assert done.returncode == 0, done.stderr
    assert "2 files the rows name were deleted while the backup ran" in done.stderr
    assert image in done.stderr and model_file in done.stderr


def test_a_forged_superuser_resealed_without_the_secret_key_is_refused(
    installation: tuple[dict[str, Any], Path], target: dict[str, str], tmp_path: Path
) -> None:
    _source, archive = installation
    forged = tmp_path / "forged.tar"

    def add_superuser(name: str, data: bytes) -> bytes:
        if name != "db/tenancy.user.jsonl":
            return data
        row = json.loads(data.decode().splitlines()[0])
        row["pk"] = 999
        row["fields"].update(email="mallory@evil.test", is_superuser=True, is_staff=True)
        return data + (json.dumps(row) + "\n").encode()

    with tarfile.open(archive) as tar:
        tables = json.loads(tar.extractfile("manifest.json").read())["tables"]  # type: ignore[union-attr]
    for table in tables:
        table["rows"] += table["model"] == "tenancy.user"
    # Everything recomputed that a reader of the format can: hashes, member list, checksum; the
    # HMAC with a guessed key.
    reseal(archive, forged, add_superuser, {"tables": tables}, secret_key="guessed")
    done = defectlab(target, "restore", str(forged))
    assert done.returncode == 1, done.stdout
    assert "does not carry this installation's HMAC" in done.stderr
    assert untouched(target)
    # The same forgery sealed with the key goes in: the HMAC is what stopped it.
    reseal(archive, forged, add_superuser, {"tables": tables})
    assert defectlab(target, "restore", str(forged)).returncode == 0


def test_the_archive_is_readable_by_its_owner_only(queued: list[int], tmp_path: Path) -> None:
    archive = tmp_path / "backup.tar"
    backup(archive)
    assert archive.stat().st_mode & 0o777 == 0o600


def heartbeat(environment: dict[str, str]) -> None:
    """A job worker's heartbeat row in the installation ``environment`` names (migrated)."""
    assert defectlab(environment, "migrate").returncode == 0
    code = (
        "import django; django.setup();"
        "from django.utils import timezone;"
        "from defectlab.jobs.models import WorkerHeartbeat as W;"
        "W.objects.create(name='box:42:ab', started_at=timezone.now(), last_seen=timezone.now())"
    )
    subprocess.run(
        [sys.executable, "-c", code], env=environment, check=True, cwd=ROOT, timeout=120
    )  # fmt: skip


def test_a_restore_is_refused_while_a_worker_runs(
    installation: tuple[dict[str, Any], Path], target: dict[str, str]
) -> None:
    _source, archive = installation
    heartbeat(target)
    done = defectlab(target, "restore", str(archive))
    assert done.returncode == 1, done.stdout
    assert "A job worker (box:42:ab) is running on this installation: stop every role" in (
        done.stderr
    )
    assert described(target)["tenancy.organization"] == []


def test_a_restore_is_refused_while_another_restore_or_migrate_holds_the_lock(
    installation: tuple[dict[str, Any], Path], target: dict[str, str]
) -> None:
    from defectlab.operations.restore import LOCK_FILE, MIGRATION_LOCK

    _source, archive = installation
    url = target["DEFECTLAB_DATABASE_URL"]
    if url:
        with psycopg.connect(url, autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK])
            done = defectlab(target, "restore", str(archive))
    else:
        with open(Path(target["DEFECTLAB_DATA_DIR"]) / LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            done = defectlab(target, "restore", str(archive))
    assert done.returncode == 1, done.stdout
    assert "Another `defectlab restore` or `defectlab migrate` is running" in done.stderr
    assert untouched(target)
    assert defectlab(target, "restore", str(archive)).returncode == 0  # once it is released


def test_probe_files_of_the_deployment_check_are_neither_backed_up_nor_in_the_way(
    queued: list[int], tmp_path: Path, target: dict[str, str]
) -> None:
    build_installation(queued)
    # As `check --deploy` writes it (a folder of its own), and as a bare file.
    (storage_root() / ".defectlab-check-0123abcd").mkdir()
    (storage_root() / ".defectlab-check-0123abcd" / "probe").write_bytes(b"probe")
    (storage_root() / ".defectlab-check-4567").write_bytes(b"probe")
    archive = tmp_path / "backup.tar"
    backup(archive)
    with tarfile.open(archive) as tar:
        assert not [name for name in tar.getnames() if "defectlab-check" in name]
    left = Path(target["DEFECTLAB_DATA_DIR"]) / "storage" / ".defectlab-check-feed" / "probe"
    left.parent.mkdir(parents=True)
    left.write_bytes(b"probe")  # a killed check's
    done = defectlab(target, "restore", str(archive))
    assert done.returncode == 0, done.stderr


def test_a_backup_into_the_storage_it_copies_is_refused(queued: list[int]) -> None:
    inside = storage_root() / "backups" / "b.tar"
    inside.parent.mkdir(parents=True)
    with pytest.raises(DefectLabError, match="is inside the storage folder"):
        backup(inside)
    assert not list(inside.parent.iterdir())


def test_a_backup_that_cannot_be_written_says_why(queued: list[int], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["backup", str(tmp_path / "no" / "such" / "b.tar")], prog_name="defectlab"
    )
    assert result.exit_code == 1 and result.exception is not None
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
    assert "could not be written" in result.output and "No such file" in result.output


@pytest.mark.parametrize(
    "clash", [{"files/a": b"x", "files/a/b": b"y"}, {"files/a/b": b"y", "files/a": b"x"}]
)
def test_member_names_that_cannot_both_be_written_are_refused_before_writing(
    installation: tuple[dict[str, Any], Path],
    target: dict[str, str],
    tmp_path: Path,
    clash: dict[str, bytes],
) -> None:
    """An S3 bucket can hold both ``a`` and ``a/b``; a folder cannot. Sealed with the key."""
    _source, archive = installation
    odd = tmp_path / "odd.tar"
    reseal(archive, odd, lambda name, data: data, extra=clash)
    done = defectlab(target, "restore", str(odd))
    assert done.returncode == 1, done.stdout
    assert "both as a file and as a folder" in done.stderr and "Traceback" not in done.stderr
    assert untouched(target)


@pytest.mark.parametrize("kind", ["duplicate", "symlink", "hardlink", "device"])
def test_duplicates_and_links_are_refused_before_writing(
    installation: tuple[dict[str, Any], Path], target: dict[str, str], tmp_path: Path, kind: str
) -> None:
    _source, archive = installation
    odd = tmp_path / "odd.tar"
    with tarfile.open(archive) as tar:
        first = next(name for name in tar.getnames() if name.startswith("files/"))
    if kind == "duplicate":
        rewrite(archive, odd, lambda name, data: data, {first: b"again"})
        expected = f"holds {first} twice"
    else:
        special = tarfile.TarInfo("files/special")
        special.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}.get(
            kind, tarfile.CHRTYPE
        )
        special.linkname = first if kind == "hardlink" else "/etc/passwd"
        with tarfile.open(archive) as source, tarfile.open(odd, "w") as copy:
            for info in source:
                if info.name == "members.jsonl":
                    copy.addfile(special)
                copy.addfile(info, source.extractfile(info))
        expected = "files/special, which is not a plain file"
    done = defectlab(target, "restore", str(odd))
    assert done.returncode == 1, done.stdout
    assert expected in done.stderr
    assert untouched(target)


def test_a_storage_that_cannot_be_written_says_why_and_keeps_nothing(
    installation: tuple[dict[str, Any], Path], target: dict[str, str]
) -> None:
    _source, archive = installation
    (Path(target["DEFECTLAB_DATA_DIR"]) / "storage").write_bytes(b"not a folder")
    done = defectlab(target, "restore", str(archive))
    assert done.returncode == 1, done.stdout
    assert "could not be written to the storage" in done.stderr
    assert "nothing was restored" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("found", ["é" * 64, "0" * 63, 42, None])
def test_a_manifest_whose_hmac_is_not_one_is_simply_not_signed(found: Any) -> None:
    """A tampered `hmac` of any shape is a refusal (unsigned), never a traceback."""
    from defectlab.operations.archive import signed_by

    assert signed_by({"format": "x", "hmac": found}, ["a secret key"]) is False
