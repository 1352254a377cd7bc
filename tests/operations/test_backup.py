"""`defectlab backup` and `defectlab restore` as an operator runs them: a realistic installation
backed up here, restored by a separate `defectlab restore` process into an empty database and
data directory (SQLite, and a PostgreSQL database made for the test), and compared row by row
and byte by byte; damaged archives refused before anything is written."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from django.db import connection

from defectlab.cli import main
from defectlab.errors import DefectLabError
from defectlab.hooks.services import create_webhook
from defectlab.inference import registry
from defectlab.jobs.models import Job
from defectlab.labeling import workflow
from defectlab.labeling.models import Task
from defectlab.labeling.tasks import NewPrediction, add_predictions
from defectlab.operations.backup import backup
from defectlab.serving.keys import create_key
from defectlab.tenancy.models import Role
from defectlab.tenancy.services import create_api_token
from tests.conftest import Tenant, box, make_tenant
from tests.inference.registry import models as model_files
from tests.operations.describe import describe

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
POSTGRES = "postgresql://root@127.0.0.1:5432/"
# The database a restore is tried into (made and dropped by the tests); one per checkout that
# runs these tests at the same time.
TARGET_DB = os.environ.get("TEST_RESTORE_DATABASE", f"defectlab_restore_{os.getpid()}")


def build_installation(queued: list[int]) -> list[Tenant]:
    """Two organizations with members, projects, labels and uploaded images; annotations with
    several versions, submitted and reviewed; predictions; a model version with its file and
    its check job; a webhook, an organization API key and a personal token."""
    tenants = [make_tenant("Acme", tasks=4), make_tenant("Globex", tasks=2)]
    acme = tenants[0]
    annotator, reviewer = acme.user(Role.ANNOTATOR), acme.user(Role.REVIEWER)
    first, second = acme.tasks[0], acme.tasks[1]
    workflow.save_annotation(first, annotator, base_version=None, shapes=[box(acme.label)])
    workflow.save_annotation(
        first, annotator, base_version=1, shapes=[box(acme.label, 1, 1, 30, 30)], submit=True
    )
    workflow.review(Task.objects.get(pk=first.pk), reviewer, verdict="approve", comment="好")
    workflow.save_annotation(
        second, annotator, base_version=None, shapes=[box(acme.label)], submit=True
    )
    workflow.review(Task.objects.get(pk=second.pk), reviewer, verdict="reject", comment="redo")
    add_predictions([NewPrediction(acme.tasks[2], "detector", "1", [box(acme.label)])])
    owner = acme.user(Role.OWNER)
    model = registry.create_model(acme.organization, owner, name="surface")
    registry.upload_version(model, owner, model_files.good(), file_name="surface.onnx")
    create_webhook(
        acme.organization, owner, url="https://hooks.example.com/in", events=["task.submitted"]
    )
    create_key(acme.organization, owner, "line 3")
    create_api_token(owner, "ci")
    assert Job.objects.filter(kind="model_check").exists()  # the model's check is a job
    return tenants


@pytest.fixture
def installation(queued: list[int], tmp_path: Path) -> tuple[dict[str, Any], Path]:
    """The installation, described, and its backup made by `defectlab backup`."""
    build_installation(queued)
    archive = tmp_path / "backup.tar"
    result = CliRunner().invoke(main, ["backup", str(archive)], prog_name="defectlab")
    assert result.exit_code == 0, result.output
    assert re.search(r"Wrote .*backup.tar: \d+ rows in \d+ tables, 7 files", result.output)
    return describe(), archive


def drop_target() -> None:
    with psycopg.connect(POSTGRES + "postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {TARGET_DB} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: Any, tmp_path: Path) -> Iterator[dict[str, str]]:
    """An empty installation's environment: a data directory, and SQLite in it or a new
    PostgreSQL database."""
    data = tmp_path / "target"
    data.mkdir()
    environment = {
        **os.environ,
        "DEFECTLAB_DATA_DIR": str(data),
        "DEFECTLAB_DATABASE_URL": "",
        "DEFECTLAB_LOG_FORMAT": "text",
        "DEFECTLAB_BROKER_URL": "",
        "DJANGO_SETTINGS_MODULE": "defectlab.settings",
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
    }
    environment.pop("DEFECTLAB_LANGUAGE", None)
    if request.param == "postgresql":
        drop_target()
        with psycopg.connect(POSTGRES + "postgres", autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {TARGET_DB}")
        environment["DEFECTLAB_DATABASE_URL"] = POSTGRES + TARGET_DB
    yield environment
    if request.param == "postgresql":
        drop_target()


def defectlab(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "defectlab.cli", *args],
        env=environment, capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip


def described(environment: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.operations.describe", *args],
        env=environment, capture_output=True, text=True, timeout=300, cwd=ROOT, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


def untouched(environment: dict[str, str]) -> bool:
    """No table in the target database and no file in its data directory's storage."""
    data = Path(environment["DEFECTLAB_DATA_DIR"])
    if any(path.is_file() for path in (data / "storage").rglob("*")):
        return False
    url = environment["DEFECTLAB_DATABASE_URL"]
    if url:
        with psycopg.connect(url) as database:
            row = database.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchone()
            return row is not None and row[0] == 0
    import sqlite3

    file = data / "defectlab.sqlite3"
    if not file.exists():
        return True
    with sqlite3.connect(file) as database:
        return not database.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()


def test_a_restore_gives_back_every_row_and_file(
    installation: tuple[dict[str, Any], Path], target: dict[str, str]
) -> None:
    source, archive = installation
    done = defectlab(target, "restore", str(archive))
    assert done.returncode == 0, done.stderr + done.stdout
    assert "Restored" in done.stdout
    restored = described(target, "probe")
    probe = restored.pop("probe")
    assert restored == source
    assert restored["files"] and any(key.endswith(".onnx") for key in restored["files"])
    # New rows take ids after the restored ones (PostgreSQL's sequences were moved on).
    assert probe["organization"] > max(row["pk"] for row in source["tenancy.organization"])
    assert probe["project"] > max(row["pk"] for row in source["labeling.project"])


def test_a_second_restore_into_the_now_full_installation_is_refused(
    installation: tuple[dict[str, Any], Path], target: dict[str, str]
) -> None:
    _source, archive = installation
    assert defectlab(target, "restore", str(archive)).returncode == 0
    before = described(target)
    again = defectlab(target, "restore", str(archive))
    assert again.returncode == 1
    assert "This installation is not empty" in again.stderr
    assert described(target) == before


def test_a_restore_into_an_installation_with_files_only_is_refused(
    installation: tuple[dict[str, Any], Path], target: dict[str, str]
) -> None:
    _source, archive = installation
    stray = Path(target["DEFECTLAB_DATA_DIR"]) / "storage" / "left" / "over.png"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"x")
    done = defectlab(target, "restore", str(archive))
    assert done.returncode == 1 and "its storage holds left/over.png" in done.stderr
    stray.unlink()
    assert untouched(target)


def rewrite(
    archive: Path,
    out: Path,
    change: Callable[[str, bytes], bytes | None],
    extra: dict[str, bytes] | None = None,
) -> None:
    """A copy of ``archive`` with each member's bytes passed through ``change`` (None drops
    it) and ``extra`` members added before the member list."""
    with tarfile.open(archive) as source, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as copy:
        for info in source:
            data = source.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == "members.jsonl":
                for name, body in (extra or {}).items():
                    added = tarfile.TarInfo(name)
                    added.size = len(body)
                    copy.addfile(added, io.BytesIO(body))
            changed = change(info.name, data)
            if changed is None:
                continue
            info.size = len(changed)
            copy.addfile(info, io.BytesIO(changed))


def reseal(
    archive: Path,
    out: Path,
    change: Callable[[str, bytes], bytes],
    manifest_changes: dict[str, Any] | None = None,
    *,
    secret_key: str | None = None,
    extra: dict[str, bytes] | None = None,
) -> None:
    """A forged archive: members changed by ``change`` (and ``extra`` added), then listed and
    hashed again and the manifest's checksum recomputed, as someone who knows the format would;
    its HMAC made again only by one who knows ``secret_key`` (the installation's by default)."""
    from django.conf import settings

    from defectlab.operations.archive import canonical, signature

    with tarfile.open(archive) as source:
        contents = {info.name: source.extractfile(info).read() for info in source}  # type: ignore[union-attr]
    manifest = json.loads(contents.pop("manifest.json"))
    contents.pop("members.jsonl")
    contents.update(extra or {})
    lines = []
    for name in list(contents):
        contents[name] = change(name, contents[name])
        digest = hashlib.sha256(contents[name]).hexdigest()
        entry = {"name": name, "size": len(contents[name]), "sha256": digest}
        lines.append(json.dumps(entry, ensure_ascii=False) + "\n")
    listing = "".join(lines).encode()
    manifest["members"] = {"count": len(lines), "sha256": hashlib.sha256(listing).hexdigest()}
    manifest.update(manifest_changes or {})
    if secret_key != "":
        manifest["hmac"] = signature(manifest, secret_key or settings.SECRET_KEY)
    manifest["checksum"] = canonical(manifest)
    contents["members.jsonl"] = listing
    contents["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as copy:
        for name, data in contents.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            copy.addfile(info, io.BytesIO(data))


def flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


def first_file(name: str) -> bool:
    return name.startswith("files/") and name.endswith(".png")


def corrupt(kind: str, archive: Path, out: Path) -> str:
    """Damage a copy of ``archive`` as ``kind`` says; answer what the refusal must mention."""
    if kind == "flipped byte in an image":
        raw = archive.read_bytes()
        with tarfile.open(archive) as tar:
            info = next(info for info in tar if first_file(info.name))
        at = info.offset_data + info.size // 2
        out.write_bytes(raw[:at] + bytes([raw[at] ^ 0x01]) + raw[at + 1 :])
        return "SHA-256 does not match"
    if kind == "flipped byte in the rows":
        rewrite(
            archive,
            out,
            lambda name, data: flip(data) if name == "db/labeling.task.jsonl" else data,
        )
        return "db/labeling.task.jsonl in the archive is damaged"
    if kind == "truncated":
        raw = archive.read_bytes()
        out.write_bytes(raw[: len(raw) * 2 // 3])
        return "cut short"
    if kind == "missing member":
        dropped: list[str] = []

        def drop(name: str, data: bytes) -> bytes | None:
            if first_file(name) and not dropped:
                dropped.append(name)
                return None
            return data

        rewrite(archive, out, drop)
        return "members; its manifest lists"
    if kind == "extra member":
        rewrite(archive, out, lambda name, data: data, {"files/planted.png": b"not ours"})
        return "members; its manifest lists"
    if kind == "unsafe name":
        rewrite(archive, out, lambda name, data: data, {"../escape.txt": b"x"})
        return "unexpected name: ../escape.txt"
    if kind == "edited manifest":

        def edit(name: str, data: bytes) -> bytes:
            if name != "manifest.json":
                return data
            manifest = json.loads(data)
            manifest["tables"][0]["rows"] += 1
            return json.dumps(manifest).encode()

        rewrite(archive, out, edit)
        return "manifest was changed"
    if kind == "manifest not JSON":
        rewrite(archive, out, lambda name, data: data[:-5] if name == "manifest.json" else data)
        return "manifest is not valid JSON"
    if kind == "future format":
        reseal(archive, out, lambda name, data: data, {"format_version": 2})
        return "backup format 2; this version reads format 1"
    if kind == "manifest without its tables":
        reseal(archive, out, lambda name, data: data, {"tables": None})
        return "not a DefectLab backup manifest"
    assert kind == "no manifest"
    rewrite(archive, out, lambda name, data: None if name == "manifest.json" else data)
    return "has no manifest"


CORRUPTIONS = [
    "flipped byte in an image",
    "flipped byte in the rows",
    "truncated",
    "missing member",
    "extra member",
    "unsafe name",
    "edited manifest",
    "manifest not JSON",
    "no manifest",
    "future format",
    "manifest without its tables",
]


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_a_damaged_archive_is_refused_before_anything_is_written(
    installation: tuple[dict[str, Any], Path], target: dict[str, str], tmp_path: Path, kind: str
) -> None:
    _source, archive = installation
    damaged = tmp_path / "damaged.tar"
    expected = corrupt(kind, archive, damaged)
    done = defectlab(target, "restore", str(damaged))
    assert done.returncode == 1, done.stdout
    assert expected in done.stderr
    assert untouched(target)


def test_an_archive_from_another_schema_says_which_version_to_restore_with(
    installation: tuple[dict[str, Any], Path], target: dict[str, str], tmp_path: Path
) -> None:
    from django.conf import settings

    from defectlab.operations.archive import canonical, signature

    _source, archive = installation
    older = tmp_path / "older.tar"

    def downgrade(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        manifest["app_version"] = "0.0.9"
        manifest["migrations"]["labeling"] = ["0012_task_indexes_only_where_used"]
        manifest["hmac"] = signature(manifest, settings.SECRET_KEY)
        manifest["checksum"] = canonical(manifest)
        return json.dumps(manifest).encode()

    rewrite(archive, older, downgrade)
    done = defectlab(target, "restore", str(older))
    assert done.returncode == 1
    assert "restore it with DefectLab 0.0.9, then upgrade" in done.stderr
    assert untouched(target)


def test_another_secret_key_is_refused_unless_told(
    installation: tuple[dict[str, Any], Path], target: dict[str, str]
) -> None:
    _source, archive = installation
    target["DEFECTLAB_SECRET_KEY"] = "another-key-" + "x1y2z3" * 8
    done = defectlab(target, "restore", str(archive))
    assert done.returncode == 1 and "another DEFECTLAB_SECRET_KEY" in done.stderr
    assert untouched(target)
    # The archive's HMAC cannot be checked with another key: restored only when told so too.
    done = defectlab(target, "restore", "--other-secret-key", str(archive))
    assert done.returncode == 1 and "its HMAC cannot be checked" in done.stderr
    assert "--other-secret-key --trust-archive" in done.stderr
    assert untouched(target)
    done = defectlab(target, "restore", "--other-secret-key", "--trust-archive", str(archive))
    assert done.returncode == 0, done.stderr
    assert "WARNING: The archive was made with another DEFECTLAB_SECRET_KEY" in done.stderr


def test_an_archive_made_with_a_fallback_key_restores_and_its_secrets_are_re_encrypted(
    installation: tuple[dict[str, Any], Path], target: dict[str, str], settings: Any
) -> None:
    """The key rotated after the backup: the old key in DEFECTLAB_SECRET_KEY_FALLBACKS is
    enough, no --other-secret-key; `rotate-secrets` then frees the secrets from it."""
    _source, archive = installation
    target["DEFECTLAB_SECRET_KEY"] = "rotated-key-" + "x1y2z3" * 8
    target["DEFECTLAB_SECRET_KEY_FALLBACKS"] = f"an-older-key-{'q7' * 16}, {settings.SECRET_KEY}"
    done = defectlab(target, "restore", str(archive))
    assert done.returncode == 0, done.stderr
    assert "another DEFECTLAB_SECRET_KEY" not in done.stderr
    done = defectlab(target, "rotate-secrets")
    assert done.returncode == 0, done.stderr
    assert "Encrypted 2 stored secrets again" in done.stdout  # the webhook's and the API key's
    target["DEFECTLAB_SECRET_KEY_FALLBACKS"] = ""
    done = defectlab(target, "rotate-secrets")
    assert done.returncode == 0 and "Encrypted 2 stored secrets again" in done.stdout


def test_refusals_are_in_chinese_for_a_chinese_installation(
    installation: tuple[dict[str, Any], Path], target: dict[str, str], tmp_path: Path
) -> None:
    _source, archive = installation
    damaged = tmp_path / "damaged.tar"
    corrupt("flipped byte in an image", archive, damaged)
    target["DEFECTLAB_LANGUAGE"] = "zh-hans"
    done = defectlab(target, "restore", str(damaged))
    assert done.returncode == 1 and "SHA-256 不符" in done.stderr
    assert untouched(target)


def test_backup_refuses_to_overwrite_a_file(tmp_path: Path) -> None:
    existing = tmp_path / "there.tar"
    existing.write_bytes(b"keep me")
    with pytest.raises(DefectLabError, match="exists already"):
        backup(existing)
    assert existing.read_bytes() == b"keep me"
    assert not list(tmp_path.glob("*.partial"))


def test_a_gzip_backup_verifies_and_lists_every_table_and_file(
    queued: list[int], tmp_path: Path
) -> None:
    from defectlab.operations.archive import verify

    build_installation(queued)
    archive = tmp_path / "backup.tar.gz"
    summary = backup(archive)
    assert archive.stat().st_mode & 0o777 == 0o600  # password hashes, encrypted credentials
    with tarfile.open(archive, "r:gz") as tar:
        names = tar.getnames()
    assert names[-2:] == ["members.jsonl", "manifest.json"]
    manifest = verify(archive, tmp_path).manifest
    assert manifest["database"]["vendor"] == connection.vendor
    from django.db.migrations.loader import MigrationLoader

    leaves = MigrationLoader(connection).graph.leaf_nodes("labeling")
    assert manifest["migrations"]["labeling"] == [name for _app, name in leaves]
    rows = {table["model"]: table["rows"] for table in manifest["tables"]}
    assert rows["labeling.task"] == Task.objects.count() == 6
    assert rows["labeling.annotationversion"] == 3 and "sessions.session" not in rows
    assert (
        manifest["files"]["count"]
        == summary.files
        == len([n for n in names if n.startswith("files/")])
    )


@pytest.mark.django_db(transaction=True)
def test_the_rows_are_read_in_one_snapshot_while_the_app_writes(tmp_path: Path) -> None:
    """Outside any transaction, as `defectlab backup` runs: a row committed by another
    connection after the first table was read is not in the archive, and the archive still
    verifies."""
    import threading

    from defectlab.operations.archive import verify
    from defectlab.operations.backup import backed_up_models
    from defectlab.tenancy.models import Organization, User
    from defectlab.tenancy.services import create_organization

    make_tenant("Acme", tasks=2)
    order = [model._meta.label_lower for model in backed_up_models()]
    assert order.index("tenancy.organization") > 1
    steps: list[str] = []

    def meanwhile(step: str) -> None:
        steps.append(step)
        if len(steps) != 2:
            return

        def write() -> None:
            from django.db import connection as own

            owner = User.objects.create_user("late@acme.test", "a-long-password-1")
            create_organization("Late", owner)
            own.close()

        writer = threading.Thread(target=write)
        writer.start()
        writer.join()

    backup(tmp_path / "backup.tar", progress=meanwhile)
    assert Organization.objects.filter(name="Late").exists()
    rows = {
        t["model"]: t["rows"] for t in verify(tmp_path / "backup.tar", tmp_path).manifest["tables"]
    }
    assert rows["tenancy.organization"] == 1
    assert rows["tenancy.user"] == 5


def test_rows_that_fail_to_load_leave_no_row_and_no_file(
    installation: tuple[dict[str, Any], Path], target: dict[str, str], tmp_path: Path
) -> None:
    """A forged archive (every hash recomputed) whose task points at a project that is not in
    it: the rows fail at the commit, and the files written before them are deleted again."""
    _source, archive = installation
    forged = tmp_path / "forged.tar"

    def orphan(name: str, data: bytes) -> bytes:
        if name != "db/labeling.task.jsonl":
            return data
        rows = [json.loads(line) for line in data.decode().splitlines()]
        rows[0]["fields"]["project"] = 999999
        return "".join(json.dumps(row) + "\n" for row in rows).encode()

    reseal(archive, forged, orphan)
    done = defectlab(target, "restore", str(forged))
    assert done.returncode == 1
    assert "could not be loaded" in done.stderr and "nothing was restored" in done.stderr
    storage = Path(target["DEFECTLAB_DATA_DIR"]) / "storage"
    assert not [path for path in storage.rglob("*") if path.is_file()]
    emptied = described(target)
    assert all(emptied[label] == [] for label in ("tenancy.organization", "labeling.task"))
    assert emptied["files"] == {}


def test_an_archive_cut_short_anywhere_is_refused_with_the_reason(
    installation: tuple[dict[str, Any], Path], target: dict[str, str], tmp_path: Path
) -> None:
    """Cut short inside a member (an image, the rows), not only between two: the reader met
    the end while reading the member's bytes and the restore ended in a traceback."""
    _source, archive = installation
    raw = archive.read_bytes()
    for tenth in (1, 3, 5, 7, 9):
        damaged = tmp_path / f"cut-{tenth}.tar"
        damaged.write_bytes(raw[: len(raw) * tenth // 10 + 7])  # off any 512-byte block
        done = defectlab(target, "restore", str(damaged))
        assert done.returncode == 1, done.stdout
        assert "Traceback" not in done.stderr, (tenth, done.stderr[-400:])
        assert "cut short" in done.stderr, (tenth, done.stderr[-400:])
        assert untouched(target)
