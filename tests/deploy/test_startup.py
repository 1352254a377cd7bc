"""What a process does as it starts: migrations under a lock (two web replicas starting
together take turns), the static files, and first words that are log lines when logs are JSON."""

from __future__ import annotations

import io
import logging
import threading
import time

import psycopg
import pytest
from django.db import connection, connections

from defectlab.operations import startup


def _connect() -> psycopg.Connection:
    parameters = connection.get_connection_params()
    return psycopg.connect(
        autocommit=True, **{k: v for k, v in parameters.items() if k != "cursor_factory"}
    )


def _waiting(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set once a process asked for the migration lock and found it taken (it then sleeps)."""
    seen = threading.Event()
    sleep = time.sleep

    def waits(seconds: float) -> None:
        seen.set()
        sleep(seconds)

    monkeypatch.setattr(startup.time, "sleep", waits)
    monkeypatch.setattr(startup, "LOCK_POLL_SECONDS", 0.05)
    return seen


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_second_migrate_waits_for_the_first_on_postgresql(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: SQLite takes no advisory lock")
    first = _connect()
    first.execute("SELECT pg_advisory_lock(%s)", [startup.MIGRATION_LOCK])  # a replica migrating
    waiting = _waiting(monkeypatch)
    report = io.StringIO()
    done = threading.Event()

    def second_replica() -> None:
        try:
            startup.run_migrations(stdout=report)
            done.set()
        finally:
            connections.close_all()

    thread = threading.Thread(target=second_replica, daemon=True)
    thread.start()
    try:
        assert waiting.wait(60), "the second replica never found the lock taken"
        assert not done.is_set()
        first.execute("SELECT pg_advisory_unlock(%s)", [startup.MIGRATION_LOCK])
        thread.join(120)
        assert done.is_set()
        assert "No migrations to apply" in report.getvalue()
    finally:
        first.close()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_index_built_concurrently_under_the_lock_is_not_held_up_by_a_waiting_replica(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first replica's migrations build indexes CONCURRENTLY (labeling 0015), which waits
    for every older snapshot: a second replica waiting for the lock must hold none, or the two
    deadlock and PostgreSQL fails one of them (the image test saw both replicas migrate)."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: SQLite takes no advisory lock")
    first = _connect()
    first.execute("SELECT pg_advisory_lock(%s)", [startup.MIGRATION_LOCK])
    first.execute("CREATE TABLE startup_probe (n integer)")
    waiting = _waiting(monkeypatch)
    locked = threading.Event()

    def second_replica() -> None:
        try:
            with startup.migration_lock():
                locked.set()
        finally:
            connections.close_all()

    thread = threading.Thread(target=second_replica, daemon=True)
    thread.start()
    try:
        assert waiting.wait(60), "the second replica never found the lock taken"
        first.execute("SET lock_timeout = '20s'")
        first.execute("CREATE INDEX CONCURRENTLY startup_probe_n ON startup_probe (n)")
        assert not locked.is_set()
        first.execute("SELECT pg_advisory_unlock(%s)", [startup.MIGRATION_LOCK])
        thread.join(60)
        assert locked.is_set()
    finally:
        first.execute("DROP TABLE IF EXISTS startup_probe")
        first.close()


@pytest.mark.django_db(transaction=True)
def test_serve_migrates_at_start_into_the_log_and_collects_the_static_files(
    settings, caplog: pytest.LogCaptureFixture, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    settings.MIGRATE_AT_START = True
    settings.STATIC_ROOT = tmp_path / "static"
    with caplog.at_level(logging.INFO, logger="defectlab.startup"):
        startup.prepare_web()
    said = [record.getMessage() for record in caplog.records if record.name == "defectlab.startup"]
    assert "Operations to perform:" in said and "No migrations to apply." in said
    assert (tmp_path / "static" / "defectlab" / "canvas.js").exists()


@pytest.mark.django_db
def test_serve_without_the_setting_does_not_migrate(settings, caplog, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings.MIGRATE_AT_START = False
    settings.STATIC_ROOT = tmp_path / "static"
    with caplog.at_level(logging.INFO, logger="defectlab.startup"):
        startup.prepare_web()
    assert not [r for r in caplog.records if r.name == "defectlab.startup"]
    assert (tmp_path / "static" / "defectlab" / "canvas.js").exists()


def test_first_words_are_a_log_line_when_logs_are_json(settings, caplog, capsys) -> None:  # type: ignore[no-untyped-def]
    settings.LOG_FORMAT = "json"
    with caplog.at_level(logging.INFO, logger="defectlab.startup"):
        startup.announce("DefectLab is serving on http://0.0.0.0:8080/")
    assert [r.getMessage() for r in caplog.records] == [
        "DefectLab is serving on http://0.0.0.0:8080/"
    ]
    assert capsys.readouterr().out == ""
    settings.LOG_FORMAT = "text"
    startup.announce("DefectLab is serving on http://127.0.0.1:8080/")
    assert capsys.readouterr().out == "DefectLab is serving on http://127.0.0.1:8080/\n"


@pytest.mark.postgres
@pytest.mark.django_db
def test_migrations_through_a_transaction_pool_are_refused_not_locked_forever(settings) -> None:  # type: ignore[no-untyped-def]
    """Through PgBouncer in transaction mode the session lock would be taken on one server
    connection and let go on another (never): every later start would wait for ever."""
    import click

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: SQLite takes no advisory lock")
    settings.DATABASE_TRANSACTION_POOLING = True
    with pytest.raises(click.ClickException, match="direct connection"), startup.migration_lock():
        pytest.fail("the lock was taken")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
            "AND objid = (%s::bigint & 4294967295)::oid",
            [startup.MIGRATION_LOCK],
        )
        assert cursor.fetchone()[0] == 0
