"""What a process does as it starts, for one image run many times at once: migrations under a
lock, the static files, and its first words in the log's own format.

``defectlab migrate`` and ``defectlab serve`` with ``DEFECTLAB_MIGRATE_AT_START`` (the container
image sets it) migrate under a PostgreSQL advisory lock: two web replicas that start together
take turns, and the second finds nothing left to do. SQLite needs none (one machine, and
SQLite's own write lock)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from django.conf import settings
from django.core.management import call_command
from django.db import connection

log = logging.getLogger("defectlab.startup")

# The advisory lock's key: any fixed number; this one spells "dlmigrat" in ASCII.
MIGRATION_LOCK = 0x646C6D6967726174
# How often a process waiting for the lock asks again.
LOCK_POLL_SECONDS = 0.5


def refuse_through_a_transaction_pool() -> None:
    """The migration lock is a session lock: through a pooler in transaction mode it would be
    taken on one server connection and let go on another — never let go. Refuse instead."""
    if settings.DATABASE_TRANSACTION_POOLING:
        raise click.ClickException(
            "Migrations and restores need a direct connection to PostgreSQL (or a session-mode "
            "pool): DEFECTLAB_DATABASE_TRANSACTION_POOLING is on. Run them with "
            "DEFECTLAB_DATABASE_URL set to PostgreSQL itself (docs/install.md)."
        )


@contextmanager
def migration_lock() -> Iterator[None]:
    """Hold the installation-wide migration lock (PostgreSQL; nothing on SQLite)."""
    if connection.vendor != "postgresql":
        yield
        return
    refuse_through_a_transaction_pool()
    # Asked again and again with pg_try_advisory_lock, not waited for in pg_advisory_lock: a
    # statement blocked there holds a snapshot, and CREATE INDEX CONCURRENTLY in the holder's
    # migrations waits for every older snapshot to end — a deadlock PostgreSQL breaks by
    # failing one of them. Between two tries the waiter holds nothing.
    waiting = False
    while True:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [MIGRATION_LOCK])
            row = cursor.fetchone()
        if row and row[0]:
            break
        if not waiting:
            log.info("Waiting for another process's migrations to end")
            waiting = True
        time.sleep(LOCK_POLL_SECONDS)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK])


def run_migrations(stdout: Any = None) -> None:
    """Django's migrate under the lock; its report to ``stdout`` (the terminal by default)."""
    with migration_lock():
        call_command("migrate", interactive=False, verbosity=1, stdout=stdout)


class LogLines:
    """A file-like object that logs each line written to it (a command's report as log lines)."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.pending = ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if line.strip():
                self.logger.info(line.strip())
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def prepare_web() -> None:
    """Before `serve` answers: migrate when ``DEFECTLAB_MIGRATE_AT_START`` says so (its report
    in the log), then collect the static files into ``$DEFECTLAB_DATA_DIR/static``, both under
    the lock so replicas sharing a data volume do not copy over one another."""
    with migration_lock():
        if settings.MIGRATE_AT_START:
            lines = LogLines(log)
            run_migrations(stdout=lines)  # the lock is taken again: PostgreSQL counts it
            lines.write("\n")
        call_command("collectstatic", interactive=False, verbosity=0)


def announce(message: str) -> None:
    """A process's first words: a log line when the logs are JSON (every line of the output
    then parses), else plain text for the person at the terminal."""
    if settings.LOG_FORMAT == "json":
        log.info(message)
    else:
        click.echo(message)
