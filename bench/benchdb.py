"""The benchmarks' own PostgreSQL database: made fresh for a run through the ``postgres``
maintenance database and dropped after it. Only a database whose name starts with ``bench`` is
ever touched, so a benchmark can never drop a real one."""

from __future__ import annotations

import urllib.parse


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
