"""`defectlab restore`: an archive `backup` wrote, into an empty installation.

In this order, and nothing is written before the third step:

1. nothing else may be running: no job worker seen lately (its heartbeat) and no other restore
   or `migrate` (PostgreSQL: the migration advisory lock, held to the end; SQLite: a lock on a
   file in the data directory); the installation must be empty: no row in any table the backup
   holds (content types and permissions aside, which `migrate` makes) and no stored file (the
   deployment check's probe files aside);
2. the whole archive is verified (`archive.verify`: every member listed, every SHA-256 equal,
   the manifest whole), its HMAC is checked with this installation's secret key (with
   ``--other-secret-key`` it cannot be: then only with ``--trust-archive``, and said loudly),
   and it must come from this code's database schema (the same last migration of every app);
3. the database is migrated if it has no tables yet, the files are written (each checked
   again against its verified SHA-256 as it is copied), and the rows are loaded in one
   transaction, foreign keys checked at its commit, each table's count checked against the
   manifest, PostgreSQL's sequences moved past the loaded ids. Should the rows fail, the files
   written are deleted again."""

from __future__ import annotations

import fcntl
import io
import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from django.apps import apps
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.color import no_style
from django.db import DatabaseError, connection, transaction
from django.db.models import Model
from django.utils import timezone
from django.utils.translation import gettext as _

from defectlab.errors import Conflict
from defectlab.jobs.liveness import seen_window
from defectlab.jobs.models import WorkerHeartbeat
from defectlab.media.storage import check_key, default_storage
from defectlab.operations import archive
from defectlab.operations.archive import ArchiveRefused, HashingReader
from defectlab.operations.backup import backed_up_models, key_check, migration_state, stored_files
from defectlab.operations.startup import (  # a restore never runs beside a migration
    MIGRATION_LOCK,
    refuse_through_a_transaction_pool,
)

REMADE_BY_MIGRATE = {"contenttypes.contenttype", "auth.permission"}
BATCH = 2000
LOCK_FILE = ".defectlab-restore.lock"  # SQLite: in the data directory


class NotEmpty(Conflict):
    code = "not_empty"


class Running(Conflict):
    code = "installation_running"


@dataclass
class Restored:
    tables: dict[str, int]
    files: int
    manifest: dict[str, Any]
    missing: list[str] = field(default_factory=list)  # files the rows name, not in the archive

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


def restore(
    path: Path,
    *,
    other_secret_key: bool = False,
    trust_archive: bool = False,
    progress: Callable[[str], None] = print,
    warn: Callable[[str], None] = print,
) -> Restored:
    # In the data directory, not /tmp: a container's root may be read-only or small, and the
    # list of members of a large installation is a few hundred MB.
    Path(settings.DATA_DIR).mkdir(parents=True, exist_ok=True)
    try:
        with exclusive():
            refuse_while_workers_run()
            refuse_unless_empty()
            with tempfile.TemporaryDirectory(prefix=".restore-", dir=settings.DATA_DIR) as work:
                return _restore(path, Path(work), other_secret_key, trust_archive, progress, warn)
    except OSError as error:
        raise Conflict(
            _("The restore failed (%(error)s); nothing was restored.")
            % {"error": f"{error.strerror or error}: {error.filename}" if error.filename else error}
        ) from None


def _restore(
    path: Path,
    work: Path,
    other_secret_key: bool,
    trust_archive: bool,
    progress: Callable[[str], None],
    warn: Callable[[str], None],
) -> Restored:
    progress("verify")
    verified = archive.verify(path, work)
    _check_signed(verified.manifest, other_secret_key, trust_archive, warn)
    tables = _check_compatible(verified.manifest)
    members = [entry["name"] for entry in _listed(verified.listing, "db/")]
    if members != [table["member"] for table in tables]:
        raise ArchiveRefused(_("The archive's list of tables is malformed."))
    missing = verified.manifest["files"].get("missing") or []
    if not isinstance(missing, list) or not all(isinstance(key, str) for key in missing):
        raise ArchiveRefused(_("The archive's manifest is not a DefectLab backup manifest."))
    progress("migrate")
    call_command("migrate", interactive=False, verbosity=0)
    progress("files")
    files = _write_files(path, verified.listing)
    try:
        progress("rows")
        counts = _load_rows(path, verified.listing, tables)
    except BaseException:
        _delete_files(verified.listing)
        raise
    ContentType.objects.clear_cache()
    return Restored(counts, files, verified.manifest, missing)


@contextmanager
def exclusive() -> Iterator[None]:
    """Hold the lock no other restore or migration may hold meanwhile (refused if one does)."""
    busy = Running(
        _(
            "Another `defectlab restore` or `defectlab migrate` is running on this installation: "
            "wait for it to finish (stop every role before a restore)."
        )
    )
    if connection.vendor == "postgresql":
        refuse_through_a_transaction_pool()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [MIGRATION_LOCK])
            if not cursor.fetchone()[0]:
                raise busy
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK])
        return
    with open(Path(settings.DATA_DIR) / LOCK_FILE, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        yield  # the lock goes with the file's closing


def refuse_while_workers_run() -> None:
    """A job worker writing into the installation being restored would run restored jobs twice
    or fail on tables half loaded: every role is stopped first."""
    if WorkerHeartbeat._meta.db_table not in connection.introspection.table_names():
        return
    since = timezone.now() - timedelta(seconds=seen_window())
    worker = WorkerHeartbeat.objects.filter(last_seen__gte=since).order_by("-last_seen").first()
    if worker is not None:
        raise Running(
            _(
                "A job worker (%(name)s) is running on this installation: stop every role (web, "
                "worker, detection service), restore, then start them again."
            )
            % {"name": worker.name}
        )


def refuse_unless_empty() -> None:
    existing = set(connection.introspection.table_names())
    for model in backed_up_models():
        label = model._meta.label_lower
        if label in REMADE_BY_MIGRATE or model._meta.db_table not in existing:
            continue
        if model._base_manager.exists():
            raise NotEmpty(
                _(
                    "This installation is not empty (its database has %(what)s rows): restore "
                    "only into a new, empty database and data directory."
                )
                % {"what": model._meta.verbose_name_plural}
            )
    for key, _size, _opener in stored_files(default_storage()):  # probe files left out
        raise NotEmpty(
            _(
                "This installation is not empty (its storage holds %(key)s): restore only into "
                "a new, empty database and data directory."
            )
            % {"key": key}
        )


def _check_signed(
    manifest: dict[str, Any], other_secret_key: bool, trust: bool, warn: Callable[[str], None]
) -> None:
    """The manifest's HMAC, with this installation's key or a fallback; or, made with another
    key, restored only when told twice (the HMAC cannot be checked then)."""
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    if archive.signed_by(manifest, keys):
        return
    if manifest.get("secret_key_check") in [key_check(key) for key in keys]:
        raise ArchiveRefused(
            _(
                "The archive's manifest does not carry this installation's HMAC: it was changed "
                "after it was written, by someone without DEFECTLAB_SECRET_KEY. Restore another "
                "backup."
            )
        )
    if not other_secret_key:
        raise ArchiveRefused(
            _(
                "This archive was made with another DEFECTLAB_SECRET_KEY. The storage "
                "credentials, webhook secrets, model-backend passwords and API key signing keys "
                "in it are encrypted with that key: set DEFECTLAB_SECRET_KEY to it and restore "
                "again, or restore with --other-secret-key and enter those secrets again."
            )
        )
    unchecked = _(
        "The archive was made with another DEFECTLAB_SECRET_KEY, so its HMAC cannot be checked: "
        "anyone who could write the archive could have added rows (a superuser, say)."
    )
    if not trust:
        raise ArchiveRefused(
            unchecked
            + " "
            + _(
                "Restore it only if it is your own backup, with --other-secret-key --trust-archive."
            )
        )
    warn(_("WARNING: %(what)s") % {"what": unchecked})


def _check_compatible(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    version = manifest.get("app_version", "?")
    if manifest.get("migrations") != migration_state():
        raise ArchiveRefused(
            _(
                "This archive was made by DefectLab %(version)s, whose database schema differs "
                "from this version's: restore it with DefectLab %(version)s, then upgrade."
            )
            % {"version": version}
        )
    tables = manifest.get("tables")
    ours = [model._meta.label_lower for model in backed_up_models()]
    if not isinstance(tables, list) or sorted(_labels(tables)) != sorted(ours):
        raise ArchiveRefused(_("The archive's list of tables does not match this version's."))
    return tables


def _labels(tables: list[Any]) -> Iterator[str]:
    for table in tables:
        if (
            not isinstance(table, dict)
            or not isinstance(table.get("rows"), int)
            or table.get("member") != f"db/{table.get('model')}.jsonl"
        ):
            raise ArchiveRefused(_("The archive's list of tables is malformed."))
        yield table["model"]


def _listed(listing: Path, prefix: str) -> Iterator[dict[str, Any]]:
    with open(listing, encoding="utf-8") as lines:
        for line in lines:
            entry = json.loads(line)
            if entry["name"].startswith(prefix):
                yield entry


def _checked_members(path: Path, listing: Path, prefix: str) -> Iterator[tuple[str, IO[bytes]]]:
    """The members under ``prefix``, each read through a hash that must come out as verified."""
    expected = _listed(listing, prefix)
    for info, stream in archive.members(path):
        if not info.name.startswith(prefix):
            continue
        entry = next(expected, None)
        if entry is None or entry["name"] != info.name:
            raise ArchiveRefused(_("The archive changed while it was being restored."))
        reader = HashingReader(stream)
        yield info.name, io.BufferedReader(reader, archive.CHUNK)
        if reader.digest.hexdigest() != entry["sha256"] or reader.size != entry["size"]:
            raise ArchiveRefused(_("The archive changed while it was being restored."))
    if next(expected, None) is not None:
        raise ArchiveRefused(_("The archive changed while it was being restored."))


def _write_files(path: Path, listing: Path) -> int:
    storage, count = default_storage(), 0
    try:
        for name, stream in _checked_members(path, listing, "files/"):
            key = name.removeprefix("files/")
            check_key(key)
            try:
                storage.save_stream(key, stream)
            except OSError as error:
                raise Conflict(
                    _(
                        "%(key)s could not be written to the storage (%(error)s); the files "
                        "written were deleted again and nothing was restored."
                    )
                    % {"key": key, "error": error.strerror or error}
                ) from None
            count += 1
    except BaseException:
        _delete_files(listing)
        raise
    return count


def _delete_files(listing: Path) -> None:
    storage = default_storage()
    for entry in _listed(listing, "files/"):
        try:
            storage.delete(entry["name"].removeprefix("files/"))
        except OSError:
            continue  # never written (the storage refused it): nothing to delete


def _load_rows(path: Path, listing: Path, tables: list[dict[str, Any]]) -> dict[str, int]:
    models = {table["member"]: apps.get_model(table["model"]) for table in tables}
    expected = {table["member"]: table["rows"] for table in tables}
    counts: dict[str, int] = {}
    try:
        with transaction.atomic():
            # migrate made these anew, with ids of its own: the archive's ids are the ones the
            # rows point at.
            apps.get_model("auth", "permission")._base_manager.all().delete()
            ContentType.objects.all().delete()
            for name, stream in _checked_members(path, listing, "db/"):
                model = models[name]
                rows = _insert(model, io.TextIOWrapper(stream, encoding="utf-8"))
                if rows != expected[name]:
                    raise ArchiveRefused(
                        _("%(name)s holds %(rows)s rows; the manifest says %(listed)s.")
                        % {"name": name, "rows": rows, "listed": expected[name]}
                    )
                counts[model._meta.label_lower] = rows
            _reset_sequences(list(models.values()))
    except (ValueError, KeyError, TypeError, ValidationError, DatabaseError) as error:
        raise ArchiveRefused(
            _("The archive's rows could not be loaded (%(error)s); nothing was restored.")
            % {"error": error}
        ) from None
    return counts


def _insert(model: type[Model], lines: Iterable[str]) -> int:
    """Insert the rows of ``lines`` (Django's serialized form, one a line) as they are: ids
    and timestamps kept, no ``save()``, no signals, as loaddata does. Each value goes through
    its field as the deserializer and the ORM's insert would (``to_python``, then
    ``get_db_prep_save``), without building model instances: a restore of millions of rows
    spends its time in the database, not in Python."""
    fields = list(model._meta.local_concrete_fields)
    parse = [(field.target_field if field.is_relation else field).to_python for field in fields]  # type: ignore[attr-defined]
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} "
        f"({', '.join(quote(field.column) for field in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    batch: list[list[Any]] = []
    count = 0
    with connection.cursor() as cursor:
        for line in lines:
            if not line.strip():
                continue
            row = json.loads(line)
            values = row["fields"]
            batch.append(
                [
                    field.get_db_prep_save(
                        to_python(row["pk"] if field.primary_key else values[field.name]),
                        connection,
                    )
                    if field.primary_key or field.name in values
                    else field.get_db_prep_save(field.get_default(), connection)
                    for field, to_python in zip(fields, parse, strict=True)
                ]
            )
            if len(batch) >= BATCH:
                cursor.executemany(sql, batch)
                count, batch = count + len(batch), []
        if batch:
            cursor.executemany(sql, batch)
            count += len(batch)
    return count


def _reset_sequences(models: list[type[Model]]) -> None:
    statements = connection.ops.sequence_reset_sql(no_style(), models)
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
