"""The SQLite backend's writers' queue (defectlab/sqlite/base.py): a write transaction holds
an exclusive lock on `<database>.writers` from BEGIN to COMMIT or ROLLBACK, so writers wait
for one another there instead of in SQLite's sleep-and-retry; many writers at once all get
through. Real SQLite files in a temporary directory; no Django test database involved."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db.utils import ConnectionHandler


@pytest.fixture
def unblocked(django_db_blocker: Any) -> Iterator[None]:
    """Database files of these tests' own, not the test database: pytest-django may let go."""
    with django_db_blocker.unblock():
        yield


@pytest.fixture
def handler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unblocked: None
) -> Iterator[ConnectionHandler]:
    """Connections of their own, which ``transaction.atomic`` uses in these tests."""
    from django.db import transaction

    connections = ConnectionHandler(
        {
            "default": {"ENGINE": "django.db.backends.dummy"},
            "gate": {
                "ENGINE": "defectlab.sqlite",
                "NAME": str(tmp_path / "db.sqlite3"),
                "OPTIONS": {
                    "transaction_mode": "IMMEDIATE",
                    "timeout": 20,
                    "init_command": "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=20000;",
                },
            },
        }
    )
    monkeypatch.setattr(transaction, "connections", connections)
    with connections["gate"].cursor() as cursor:
        cursor.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER)")
        cursor.execute("INSERT INTO counter VALUES (1, 0)")
    yield connections
    connections.close_all()


def gate_is_free(path: Path) -> bool:
    """Whether another open file could take the writers' lock right now."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_a_write_transaction_holds_the_writers_lock_until_it_commits(
    handler: ConnectionHandler, tmp_path: Path
) -> None:
    from django.db import transaction

    gate = tmp_path / "db.sqlite3.writers"
    with transaction.atomic(using="gate"):
        handler["gate"].cursor().execute("UPDATE counter SET value = value + 1")
        assert not gate_is_free(gate)
    assert gate_is_free(gate)


def test_a_rollback_lets_go_of_the_lock_too(handler: ConnectionHandler, tmp_path: Path) -> None:
    from django.db import transaction

    gate = tmp_path / "db.sqlite3.writers"
    with pytest.raises(RuntimeError), transaction.atomic(using="gate"):
        handler["gate"].cursor().execute("UPDATE counter SET value = value + 1")
        assert not gate_is_free(gate)
        raise RuntimeError("changed my mind")
    assert gate_is_free(gate)
    with handler["gate"].cursor() as cursor:
        cursor.execute("SELECT value FROM counter")
        assert cursor.fetchone() == (0,)


def test_eight_writers_at_once_all_get_through(handler: ConnectionHandler) -> None:
    """Each thread has its own connection (the handler is per thread), as web threads do;
    none sees "database is locked"."""
    from django.db import transaction

    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def writer() -> None:
        try:
            start.wait()
            for _ in range(25):
                with transaction.atomic(using="gate"):
                    cursor = handler["gate"].cursor()
                    cursor.execute("SELECT value FROM counter WHERE id = 1")
                    (value,) = cursor.fetchone()
                    cursor.execute("UPDATE counter SET value = %s WHERE id = 1", [value + 1])
        except BaseException as error:  # the assertion below shows it
            errors.append(error)
        finally:
            handler["gate"].close()

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with handler["gate"].cursor() as cursor:
        cursor.execute("SELECT value FROM counter")
        assert cursor.fetchone() == (200,)  # no update was lost either


def test_an_in_memory_database_has_no_lock_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unblocked: None
) -> None:
    from django.db import transaction

    monkeypatch.chdir(tmp_path)
    connections = ConnectionHandler(
        {
            "default": {"ENGINE": "django.db.backends.dummy"},
            "mem": {
                "ENGINE": "defectlab.sqlite",
                "NAME": ":memory:",
                "OPTIONS": {"transaction_mode": "IMMEDIATE"},
            },
        }
    )
    monkeypatch.setattr(transaction, "connections", connections)
    with transaction.atomic(using="mem"):
        connections["mem"].cursor().execute("SELECT 1")
    connections.close_all()
    assert not list(tmp_path.iterdir())
