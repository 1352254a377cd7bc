"""`defectlab backup`: the database and every stored file into one archive (`archive` says how
it is laid out).

The rows are read table by table (``.iterator()``, a few thousand at a time) inside one read
snapshot of the database (PostgreSQL: a repeatable-read, read-only transaction; SQLite: one
read transaction, which WAL lets writers go on beside) and written as Django's serialized form,
one JSON object a line, so a SQLite backup restores into PostgreSQL and back. The files are
read afterwards, through the storage layer: every row's file was written before its row, so
each one the rows name is there (a file deleted meanwhile is left out and counted).

Left out on purpose: sessions (everyone signs in again) and worker heartbeats (which workers
are alive is the running installation's). Content types and permissions are kept, with their
ids, because rows point at them by id."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
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
from defectlab.media.storage import LocalStorage, Storage, default_storage
from defectlab.operations.archive import FORMAT, FORMAT_VERSION, Writer

SKIPPED = {"sessions.session", "jobs.workerheartbeat"}
INCOMING = ".incoming-"  # LocalStorage's files being written


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
            directories.sort()
            for name in sorted(names):
                if name.startswith(INCOMING):
                    continue
                key = (Path(folder) / name).relative_to(root).as_posix()
                yield key, None, partial(storage.open, key)
        return
    iter_keys = getattr(storage, "iter_keys", None)
    if iter_keys is None:
        raise TypeError(f"cannot list the files of {type(storage).__name__}")
    for item in iter_keys():
        yield item.key, item.size, partial(storage.open, item.key)


@dataclass
class Summary:
    tables: dict[str, int] = field(default_factory=dict)
    files: int = 0
    file_bytes: int = 0
    vanished: int = 0

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


def backup(path: Path, progress: Callable[[str], None] = lambda _step: None) -> Summary:
    """Write the installation to ``path`` (refused if it exists), through ``path.partial``."""
    if path.exists():
        raise Conflict(_("%(path)s exists already: name a new file.") % {"path": path})
    if pending_migrations():
        raise Conflict(_("The database is not fully migrated: run `defectlab migrate` first."))
    partial = path.with_name(path.name + ".partial")
    summary = Summary()
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".defectlab-backup-") as work:
        writer = Writer(partial, Path(work), compress=path.name.endswith(".gz"))
        try:
            tables = _write_tables(writer, Path(work), summary, progress)
            progress("files")
            _write_files(writer, default_storage(), summary)
            writer.finish(_manifest(tables, summary))
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
        dump.unlink()
    return tables


def _write_files(writer: Writer, storage: Storage, summary: Summary) -> None:
    for key, listed, opener in stored_files(storage):
        try:
            source = opener()
        except FileNotFoundError:
            summary.vanished += 1  # deleted since it was listed: its row is gone too
            continue
        with source:
            size = listed if listed is not None else os.fstat(source.fileno()).st_size
            writer.add(f"files/{key}", source, size)
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
        "files": {"count": summary.files, "bytes": summary.file_bytes},
        "secret_key_check": key_check(settings.SECRET_KEY),
    }
