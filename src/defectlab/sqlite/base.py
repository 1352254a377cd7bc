"""Django's SQLite backend, with writers taking turns through a lock file instead of polling.

Every write transaction starts with ``BEGIN IMMEDIATE`` (settings: ``transaction_mode``). When
another connection holds SQLite's write lock, SQLite's busy handler makes the newcomer sleep and
retry, each sleep longer than the last (1, 2, 5, 10 … up to 100 ms). With several writers at
once — eight people saving, each in a web thread of its own — most of the waiting is then spent
asleep after the lock is already free: measured in bench/memory.py, saves from 8 clients ran at a
fraction of what one writer alone reaches, with a p95 above a second.

Here a connection first takes its process's lock for that database (a ``threading.Lock``:
threads of one process queue there, and the next is woken the moment it is free, without
holding the GIL while it waits), then an exclusive ``flock`` on ``<database>.writers`` shared
by the processes (web workers, the job worker), which only the one thread at the head of each
process tries again every fraction of a millisecond; it begins its transaction once it holds
both, and lets go of both when the transaction commits or rolls back. Writers then follow one
another within a millisecond or so.
Readers are never stopped (WAL). Writes outside a transaction (autocommit) do not take the
lock: SQLite's busy timeout still orders them. A connection that waits longer than the busy
timeout stops waiting and begins anyway, leaving the verdict to SQLite ("database is locked"),
exactly as without the lock file. An in-memory database has no lock file.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from typing import Any

from django.db.backends.sqlite3 import base

# django-stubs leaves out the private methods overridden here.
_SQLite: Any = base.DatabaseWrapper

POLL_FIRST = 0.0002  # seconds between tries, doubling up to POLL_MAX
POLL_MAX = 0.002

_process_locks: dict[str, threading.Lock] = {}
_process_locks_guard = threading.Lock()


def _forget_process_locks() -> None:
    """A forked child starts with locks of its own: one its parent's thread held at the fork
    would otherwise stay held in the child for good."""
    global _process_locks_guard
    _process_locks.clear()
    _process_locks_guard = threading.Lock()


os.register_at_fork(after_in_child=_forget_process_locks)


def _process_lock(path: str) -> threading.Lock:
    with _process_locks_guard:
        return _process_locks.setdefault(path, threading.Lock())


class DatabaseWrapper(_SQLite):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gate_fd: int | None = None
        self._gate_held = False
        self._local: threading.Lock | None = None  # the process's lock, while held

    def _gate_path(self) -> str | None:
        if self.transaction_mode != "IMMEDIATE" or self.is_in_memory_db():
            return None
        return f"{self.settings_dict['NAME']}.writers"

    def _take_gate(self) -> None:
        path = self._gate_path()
        if path is None:
            return
        if self._gate_fd is None:
            self._gate_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        patience = float(self.settings_dict.get("OPTIONS", {}).get("timeout", 5))
        deadline = time.monotonic() + patience
        local = _process_lock(path)
        if not local.acquire(timeout=patience):
            return  # SQLite's busy timeout decides from here
        self._local = local
        pause = POLL_FIRST
        while True:
            try:
                fcntl.flock(self._gate_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return  # SQLite's busy timeout decides from here
                time.sleep(pause)
                pause = min(pause * 2, POLL_MAX)
                continue
            self._gate_held = True
            return

    def _drop_gate(self) -> None:
        if self._gate_held and self._gate_fd is not None:
            self._gate_held = False
            fcntl.flock(self._gate_fd, fcntl.LOCK_UN)
        if self._local is not None:
            local, self._local = self._local, None
            local.release()

    def _start_transaction_under_autocommit(self) -> None:
        self._take_gate()
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._drop_gate()
            raise

    def _commit(self) -> None:
        try:
            super()._commit()
        finally:
            self._drop_gate()

    def _rollback(self) -> None:
        try:
            super()._rollback()
        finally:
            self._drop_gate()

    def _close(self) -> None:
        try:
            super()._close()
        finally:
            self._drop_gate()
            if self._gate_fd is not None:
                os.close(self._gate_fd)
                self._gate_fd = None
