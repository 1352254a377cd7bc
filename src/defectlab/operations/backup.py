"""`defectlab backup`: the database and every stored file into one archive (`archive` says how
it is laid out).

The rows are read table by table (``.iterator()``, a few thousand at a time) inside one read
snapshot of the database (PostgreSQL: a repeatable-read, read-only transaction; SQLite: one
read transaction, which WAL lets writers go on beside) and written as Django's serialized form,
one JSON object a line, so a SQLite backup restores into PostgreSQL and back. The files are
read afterwards, through the storage layer: every row's file was written before its row, so
each one the rows name is there unless it was deleted meanwhile (a project or a model version
deleted while the backup ran). Such a file is left out; when the snapshot's rows name it (a
task's image, a model version's file, an export job's zip), its key is recorded in the
manifest (``files.missing``), and both `backup` and `restore` say which are missing.
The deployment check's probe files (``.defectlab-check-…``) are not backed up.

Left out on purpose: sessions (everyone signs in again) and worker heartbeats (which workers
are alive is the running installation's). Content types and permissions are kept, with their
ids, because rows point at them by id."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from functools import partial
from pathlib import Path
from typing import IO, Any

from django.apps import apps
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Model
from django.utils.translation import gettext as _

import defectlab
from defectlab.errors import Conflict
from defectlab.jobs import kinds
from defectlab.media.storage import LocalStorage, Storage, default_storage
from defectlab.operations.archive import FORMAT, FORMAT_VERSION, Writer

SKIPPED = {"sessions.session", "jobs.workerheartbeat"}
INCOMING = ".incoming-"  # LocalStorage's files being written
PROBE = ".defectlab-check-"  # `defectlab check --deploy`'s probe file (a killed check's stays)
MISSING_LISTED = 10_000  # keys of missing files kept in the manifest (the count is whole)


def _job_file(fields: dict[str, Any]) -> list[str]:
    result = fields.get("result")
    key = result.get("key") if isinstance(result, dict) else None
    if fields.get("state") == "succeeded" and kinds.has_download(fields.get("kind") or ""):
        return [key] if isinstance(key, str) else []
    return []


# The fields of the rows that name a file in storage, table by table (thumbnails and display
# copies are caches, made again when missing).
NAMED_FILES: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "labeling.task": lambda fields: (
        [fields["image"]] if fields.get("image") and "://" not in fields["image"] else []
    ),
    "inference.modelversion": lambda fields: [fields["file_key"]] if fields.get("file_key") else [],
    "jobs.job": _job_file,
}


class RowEncoder(DjangoJSONEncoder):
    """Django's JSON, but times to the microsecond (Django's own cuts them to milliseconds,
    which could reorder rows sorted by a timestamp), and bytes as base64 (what a binary
    field's ``to_python`` reads)."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime | time):
            text = o.isoformat()
            return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text
        if isinstance(o, bytes | memoryview):
            return base64.b64encode(bytes(o)).decode("ascii")
        return super().default(o)


def dump_rows(model: type[Model], out: IO[str]) -> int:
    """Write ``model``'s rows to ``out`` in Django's serialized form (``{"model", "pk",
    "fields"}``, a foreign key as the id it holds, many-to-many tables as tables of their own),
    one a line, read a few thousand at a time as plain values (no model instances)."""
    fields = list(model._meta.local_concrete_fields)
    names = [field.name for field in fields]
    pk_at = next(index for index, field in enumerate(fields) if field.primary_key)
    label, encoder, count = model._meta.label_lower, RowEncoder(ensure_ascii=False), 0
    rows = model._base_manager.order_by("pk").values_list(*(field.attname for field in fields))
    for values in rows.iterator(chunk_size=2000):
        data = dict(zip(names, values, strict=True))
        pk = data.pop(names[pk_at])
        out.write(encoder.encode({"model": label, "pk": pk, "fields": data}) + "\n")
        count += 1
    return count


def backed_up_models() -> list[type[Model]]:
    """Every table the backup holds, each after the tables it points at (where it can be:
    restores defer foreign-key checks to the commit, so a cycle does no harm)."""
    models = [
        model
        for model in apps.get_models(include_auto_created=True)
        if model._meta.managed
        and not model._meta.proxy
        and not model._meta.swapped
        and model._meta.label_lower not in SKIPPED
    ]
    ordered: list[type[Model]] = []
    waiting = list(models)
    while waiting:
        placed = {model._meta.label_lower for model in ordered}
        ready = [
            model
            for model in waiting
            if all(
                target in placed or target == model._meta.label_lower or target in SKIPPED
                for target in _targets(model)
            )
        ]
        ready = ready or waiting[:1]  # a cycle: break it anywhere
        ordered += ready
        waiting = [model for model in waiting if model not in ready]
    return ordered


def _targets(model: type[Model]) -> set[str]:
    related: list[Any] = [
        field.related_model
        for field in model._meta.local_concrete_fields
        if field.is_relation and field.related_model is not None
    ]
    return {target._meta.label_lower for target in related}


def migration_state() -> dict[str, list[str]]:
    """This code's last migration of each app (what a database it made is migrated to)."""
    state: dict[str, list[str]] = {}
    executor = MigrationExecutor(connection)
    for app, name in executor.loader.graph.leaf_nodes():
        state.setdefault(app, []).append(name)
    return {app: sorted(names) for app, names in sorted(state.items())}


def pending_migrations() -> int:
    executor = MigrationExecutor(connection)
    return len(executor.migration_plan(executor.loader.graph.leaf_nodes()))


def key_check(secret_key: str) -> str:
    """A one-way mark of ``secret_key``: restores compare it, to say when the credentials the
    rows hold encrypted will not decrypt."""
    return hmac.new(secret_key.encode(), b"defectlab backup key check", hashlib.sha256).hexdigest()


@contextmanager
def snapshot() -> Iterator[None]:
    """One consistent view of the database while the tables are read."""
    connection.ensure_connection()
    if connection.in_atomic_block or not connection.get_autocommit():
        yield  # already inside a transaction (a test's): its view is the snapshot
        return
    if connection.vendor == "postgresql":
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield
        return
    with connection.cursor() as cursor:
        cursor.execute("BEGIN DEFERRED")
        try:
            yield
        finally:
            cursor.execute("COMMIT")


def stored_files(
    storage: Storage,
) -> Iterator[tuple[str, int | None, Callable[[], IO[bytes]]]]:
    """Every stored file as (key, size if known, opener), in key order."""
    if isinstance(storage, LocalStorage):
        root = Path(storage.root)
        for folder, directories, names in os.walk(root):
            # A killed check's probe folder (.defectlab-check-<id>/probe) is not a stored file.
            directories[:] = sorted(name for name in directories if not name.startswith(PROBE))
            for name in sorted(names):
                if name.startswith((INCOMING, PROBE)):
                    continue
                key = (Path(folder) / name).relative_to(root).as_posix()
                yield key, None, partial(storage.open, key)
        return
    iter_keys = getattr(storage, "iter_keys", None)
    if iter_keys is None:
        raise TypeError(f"cannot list the files of {type(storage).__name__}")
    for item in iter_keys():
        if not any(part.startswith(PROBE) for part in item.key.split("/")):
            yield item.key, item.size, partial(storage.open, item.key)


@dataclass
class Summary:
    tables: dict[str, int] = field(default_factory=dict)
    files: int = 0
    file_bytes: int = 0
    vanished: int = 0  # deleted between listing and reading
    missing: list[str] = field(default_factory=list)  # named by the rows, not in the archive

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


def backup(path: Path, progress: Callable[[str], None] = lambda _step: None) -> Summary:
    """Write the installation to ``path`` (refused if it exists), through ``path.partial``."""
    if path.exists():
        raise Conflict(_("%(path)s exists already: name a new file.") % {"path": path})
    storage = default_storage()
    if isinstance(storage, LocalStorage) and path.resolve().is_relative_to(
        Path(storage.root).resolve()
    ):
        raise Conflict(
            _(
                "%(path)s is inside the storage folder the backup copies (%(root)s): write the "
                "backup elsewhere."
            )
            % {"path": path, "root": storage.root}
        )
    if pending_migrations():
        raise Conflict(_("The database is not fully migrated: run `defectlab migrate` first."))
    try:
        return _backup(path, storage, progress)
    except OSError as error:
        raise Conflict(
            _("The backup could not be written to %(path)s (%(error)s); nothing was kept.")
            % {"path": path, "error": error.strerror or error}
        ) from None


def _backup(path: Path, storage: Storage, progress: Callable[[str], None]) -> Summary:
    partial = path.with_name(path.name + ".partial")
    summary = Summary()
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".defectlab-backup-") as work:
        writer = Writer(partial, Path(work), compress=path.name.endswith(".gz"))
        try:
            tables = _write_tables(writer, Path(work), summary, progress)
            progress("files")
            with Copied(Path(work) / "copied.sqlite3") as copied:
                _write_files(writer, storage, summary, copied)
                summary.missing = _not_copied(Path(work), copied)
            writer.finish(_manifest(tables, summary), settings.SECRET_KEY)
        except BaseException:
            writer.close()
            partial.unlink(missing_ok=True)
            raise
    os.replace(partial, path)
    return summary


def _write_tables(
    writer: Writer, work: Path, summary: Summary, progress: Callable[[str], None]
) -> list[dict[str, Any]]:
    tables: list[dict[str, Any]] = []
    dumps: list[tuple[str, Path]] = []
    with snapshot():
        for model in backed_up_models():
            label = model._meta.label_lower
            progress(label)
            dump = work / f"{label}.jsonl"
            with open(dump, "w", encoding="utf-8") as out:
                rows = dump_rows(model, out)
            summary.tables[label] = rows
            member = f"db/{label}.jsonl"
            tables.append(
                {
                    "model": label,
                    "table": model._meta.db_table,
                    "rows": rows,
                    "member": member,
                }
            )
            dumps.append((member, dump))
    for member, dump in dumps:
        writer.add_path(member, dump)
        if dump.stem not in NAMED_FILES:  # kept: a file gone meanwhile is looked up there
            dump.unlink()
    return tables


class Copied:
    """The storage keys copied into the archive, on disk (there may be millions)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE copied (key TEXT PRIMARY KEY)")

    def __enter__(self) -> Copied:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.db.close()

    def add(self, key: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO copied VALUES (?)", (key,))

    def __contains__(self, key: str) -> bool:
        return self.db.execute("SELECT 1 FROM copied WHERE key = ?", (key,)).fetchone() is not None


def _not_copied(work: Path, copied: Copied) -> list[str]:
    """The keys the snapshot's rows name that are not in the archive: deleted after the rows
    were read, before their file was copied (a project or model version deleted meanwhile)."""
    missing: set[str] = set()
    for label, keys_of in NAMED_FILES.items():
        with open(work / f"{label}.jsonl", encoding="utf-8") as rows:
            for line in rows:
                missing.update(
                    key for key in keys_of(json.loads(line)["fields"]) if key not in copied
                )
    return sorted(missing)


def _write_files(writer: Writer, storage: Storage, summary: Summary, copied: Copied) -> None:
    for key, listed, opener in stored_files(storage):
        try:
            source = opener()
        except FileNotFoundError:
            summary.vanished += 1  # deleted since it was listed
            continue
        with source:
            size = listed if listed is not None else os.fstat(source.fileno()).st_size
            writer.add(f"files/{key}", source, size)
        copied.add(key)
        summary.files += 1
        summary.file_bytes += size


def _manifest(tables: list[dict[str, Any]], summary: Summary) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "app_version": defectlab.__version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": {"vendor": connection.vendor},
        "migrations": migration_state(),
        "tables": tables,
        "files": {
            "count": summary.files,
            "bytes": summary.file_bytes,
            "missing_count": len(summary.missing),
            "missing": summary.missing[:MISSING_LISTED],
        },
        "secret_key_check": key_check(settings.SECRET_KEY),
    }
