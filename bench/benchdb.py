"""The benchmarks' own PostgreSQL database: made fresh for a run through the ``postgres``
maintenance database and dropped after it. Only a database whose name starts with ``bench`` is
ever touched, so a benchmark can never drop a real one."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a benchmark's database (None when it can)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        return "--database-url must be a postgresql:// URL (the default is SQLite)"
    if not parts.path.lstrip("/").startswith("bench"):
        return (
            "the benchmark creates and drops its database: its name must start with 'bench' "
            "(e.g. .../bench_tasks), so it can never touch a real one"
        )
    return None


def recreate_database(url: str, *, drop_only: bool = False) -> None:
    """Drop the database named in ``url`` (a leftover of an interrupted run is the bench's own)
    and, unless ``drop_only``, create it again. Refuses any name not starting with ``bench``."""
    import psycopg
    from psycopg import sql

    problem = url_problem(url)
    if problem is not None:
        raise SystemExit(problem)
    parts = urllib.parse.urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        if not drop_only:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


@contextlib.contextmanager
def throwaway_installation(database_url: str, *, keep: bool = False) -> Iterator[Path]:
    """Django set up on a throwaway installation, configured the documented way before it
    starts: a fresh data directory (yielded) and, given ``database_url``, a fresh PostgreSQL
    database (``recreate_database``); both removed afterwards, or kept and named with
    ``keep``."""
    data_dir = Path(tempfile.mkdtemp(prefix="defectlab-bench-"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "defectlab.settings"
    os.environ["DEFECTLAB_DATA_DIR"] = str(data_dir)
    os.environ["DEFECTLAB_SECRET_KEY"] = "bench-only-secret-key-not-for-production-0123456789"
    os.environ["DEFECTLAB_LOG_FORMAT"] = "text"
    os.environ["DEFECTLAB_DATABASE_URL"] = database_url
    os.environ.setdefault("DEFECTLAB_LOG_LEVEL", "WARNING")
    (data_dir / "static").mkdir()  # whitenoise warns on every request when STATIC_ROOT is missing
    if database_url:
        recreate_database(database_url)
    try:
        import django

        django.setup()
        yield data_dir
    finally:
        from django.db import connections

        connections.close_all()
        if keep:
            print(
                f"\nKept {data_dir}" + (f" and database {database_url}." if database_url else ".")
            )
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
            if database_url:
                recreate_database(database_url, drop_only=True)
