"""Keeps the worker that `defectlab serve` runs beside the web server alive.

If the worker process exits while it should be running (killed, out of memory, a crash), the
supervisor logs it and starts a new one after a pause that doubles with each quick failure, up
to a cap, and goes back to the shortest pause once a worker has stayed up for a while. On
shutdown it stops the worker cleanly (SIGTERM, then SIGKILL if it does not go)."""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence

log = logging.getLogger(__name__)


class WorkerSupervisor:
    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        min_backoff: float = 1.0,
        max_backoff: float = 60.0,
        stable_after: float = 60.0,
        poll: float = 0.2,
    ) -> None:
        self.command = list(command)
        self.env = dict(env) if env is not None else None
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.stable_after = stable_after
        self.poll = poll
        self.backoff = min_backoff
        self.restarts = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._started = 0.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("job worker did not stop in %s s: killing it", timeout,
                        extra={"event": "worker_killed", "pid": process.pid})  # fmt: skip
            process.kill()
            process.wait()

    def _spawn(self) -> subprocess.Popen[bytes]:
        # Its own session: a Ctrl+C meant for `defectlab serve` reaches the worker through
        # stop(), not behind the supervisor's back (which would look like a crash).
        self.process = subprocess.Popen(self.command, env=self.env, start_new_session=True)
        self._started = time.monotonic()
        return self.process

    def _exited(self) -> tuple[bool, int | None]:
        """Whether the worker has exited, and its exit code (negative: the signal) if known.
        Under gunicorn the arbiter reaps every child of the process, ours included, before we
        may: then the worker is gone but its exit code is not known (None)."""
        assert self.process is not None
        if self.process.returncode is not None:
            return True, self.process.returncode
        try:
            pid, status = os.waitpid(self.process.pid, os.WNOHANG)
        except ChildProcessError:
            self.process.returncode = -1  # so that Popen never waits for it again
            return True, None
        if pid == 0:
            return False, None
        self.process.returncode = os.waitstatus_to_exitcode(status)
        return True, self.process.returncode

    def _watch(self) -> None:
        while not self._stopping.is_set():
            exited, code = self._exited()
            if not exited:
                self._stopping.wait(self.poll)
                continue
            if self._stopping.is_set():
                return
            uptime = time.monotonic() - self._started
            if uptime >= self.stable_after:
                self.backoff = self.min_backoff  # it had been fine for a while
            delay = self.backoff
            self.backoff = min(self.backoff * 2, self.max_backoff)
            pid = self.process.pid if self.process is not None else None
            log.error(
                "job worker %s exited (code %s) after %.1f s; restarting it in %s s",
                pid, "unknown" if code is None else code, uptime, delay,
                extra={
                    "event": "worker_exited",
                    "pid": pid,
                    "exit_code": code,
                    "uptime_seconds": round(uptime, 1),
                    "restart_in_seconds": delay,
                },
            )  # fmt: skip
            if self._stopping.wait(delay):
                return
            process = self._spawn()
            self.restarts += 1
            log.info(
                "job worker restarted as %s", process.pid,
                extra={"event": "worker_restarted", "pid": process.pid, "restarts": self.restarts},
            )  # fmt: skip
