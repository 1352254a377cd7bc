"""Keeps the worker that `defectlab serve` runs beside the web server alive.

If the worker process exits while it should be running (killed, out of memory, a crash), the
supervisor logs it and starts a new one after a pause that doubles with each quick failure, up
to a cap, and goes back to the shortest pause once a worker has stayed up for a while. On
shutdown it stops the worker cleanly (SIGTERM, then SIGKILL if it does not go).

The worker is either a command (a new interpreter) or, given ``target``, this process forked:
the child runs ``target()`` and exits with what it returns. `defectlab serve` forks, so the
worker shares the pages of the Django it already loaded with the web server instead of loading
a copy of its own (about 60 MB less; bench/memory.py). A worker that exits with ``RECYCLE`` has
stopped on purpose (it had grown past ``DEFECTLAB_WORKER_MAX_MEMORY_MB`` after a job) and is
started again at once, without a pause and without counting as a failure."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence

log = logging.getLogger(__name__)

RECYCLE = 75  # the exit code of a worker that stopped to hand its memory back (EX_TEMPFAIL)
NAME = b"defectlab-jobs"  # a forked worker's process name (ps -o comm, /proc/PID/comm)


class ForkedProcess:
    """What the supervisor needs of ``subprocess.Popen``, for a child made with ``os.fork``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            time.sleep(0.05)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _name_process(name: bytes) -> None:
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, name, 0, 0, 0)  # PR_SET_NAME (Linux); elsewhere nothing
    except (OSError, AttributeError):
        pass


def _run_forked(target: Callable[[], int], note: int) -> None:
    """In the forked child: a session of its own, the parent's signal handlers undone (the
    gunicorn master's), then ``target``; never returns. A recycling exit is also written to
    the ``note`` pipe, since gunicorn's master may reap the child before the supervisor can
    read its exit code."""
    code = 1
    try:
        os.setsid()
        for signum in (signal.SIGHUP, signal.SIGQUIT, signal.SIGINT, signal.SIGTERM,
                       signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1, signal.SIGUSR2,
                       signal.SIGWINCH, signal.SIGCHLD):  # fmt: skip
            signal.signal(signum, signal.SIG_DFL)
        _name_process(NAME)
        code = target()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        if code == RECYCLE:
            os.write(note, b"r")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class WorkerSupervisor:
    def __init__(
        self,
        command: Sequence[str] = (),
        *,
        target: Callable[[], int] | None = None,
        env: Mapping[str, str] | None = None,
        min_backoff: float = 1.0,
        max_backoff: float = 60.0,
        stable_after: float = 60.0,
        poll: float = 0.2,
    ) -> None:
        if not command and target is None:
            raise ValueError("a worker needs a command or a target")
        self.command = list(command)
        self.target = target
        self.env = dict(env) if env is not None else None
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.stable_after = stable_after
        self.poll = poll
        self.backoff = min_backoff
        self.restarts = 0
        self.recycled = 0
        self._notes: tuple[int, int] | None = None  # a forked worker's "I recycled" pipe
        self.process: subprocess.Popen[bytes] | ForkedProcess | None = None
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
        if self._notes is not None:
            for fd in self._notes:
                os.close(fd)
            self._notes = None
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

    def _spawn(self) -> subprocess.Popen[bytes] | ForkedProcess:
        # Its own session: a Ctrl+C meant for `defectlab serve` reaches the worker through
        # stop(), not behind the supervisor's back (which would look like a crash).
        if self.target is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            if self._notes is None:
                self._notes = os.pipe()
                os.set_blocking(self._notes[0], False)
            pid = os.fork()
            if pid == 0:
                os.close(self._notes[0])
                _run_forked(self.target, self._notes[1])
            self.process = ForkedProcess(pid)
        else:
            self.process = subprocess.Popen(self.command, env=self.env, start_new_session=True)
        self._started = time.monotonic()
        return self.process

    def _noted_recycle(self) -> bool:
        if self._notes is None:
            return False
        try:
            return bool(os.read(self._notes[0], 64))
        except BlockingIOError:
            return False

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
            pid = self.process.pid if self.process is not None else None
            if code == RECYCLE or self._noted_recycle():
                self.recycled += 1
                process = self._spawn()
                log.info(
                    "job worker %s stopped to hand back its memory; started again as %s",
                    pid, process.pid,
                    extra={"event": "worker_recycled", "pid": process.pid,
                           "previous_pid": pid, "recycled": self.recycled},
                )  # fmt: skip
                continue
            if uptime >= self.stable_after:
                self.backoff = self.min_backoff  # it had been fine for a while
            delay = self.backoff
            self.backoff = min(self.backoff * 2, self.max_backoff)
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
