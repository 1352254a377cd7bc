"""One `/metrics` for all of `defectlab serve`'s processes: gunicorn's workers (a scrape reaches
one of them) and the embedded job worker.

prometheus_client's multiprocess mode: each process writes its counters, histograms and gauges
to memory-mapped files named by its pid in PROMETHEUS_MULTIPROC_DIR, and the process that
answers a scrape adds up every file. The directory must be set before prometheus_client is
imported (it decides then), so `serve` calls `share_metrics` first of all, before Django starts
and before anything forks. Nothing here imports prometheus_client or Django at module level.

- Counters and histograms of processes that are gone stay in the sums (a counter never goes
  down); the directory is emptied when `serve` starts, so a restart starts from zero, which
  Prometheus's `rate()` expects of any restarted process.
- "Jobs running now" counts live processes only: gunicorn's `child_exit` hook and, at each
  scrape, a look for processes that are gone (the embedded worker killed or recycled) drop
  their files.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def share_metrics() -> Path:
    """Set up the directory for this process and those it will fork: PROMETHEUS_MULTIPROC_DIR
    if the operator set it (emptied of an earlier run's files), else a fresh temporary one
    (under TMPDIR), removed when this process exits."""
    given = os.environ.get(VARIABLE)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
        return path
    path = Path(tempfile.mkdtemp(prefix="defectlab-metrics-"))
    os.environ[VARIABLE] = str(path)
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:  # not in a forked child that happens to exit through here
            shutil.rmtree(path, ignore_errors=True)

    atexit.register(remove)
    return path


def child_exit(_server: Any, worker: Any) -> None:
    """gunicorn's ``child_exit`` hook: a web worker is gone; drop its live gauges."""
    if os.environ.get(VARIABLE):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


_LIVE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def forget_dead_processes() -> None:
    """Drop the live gauges of processes that no longer run (killed, recycled, or not reaped by
    a hook), so that "running now" counts only the living."""
    directory = os.environ.get(VARIABLE)
    if not directory:
        return
    from prometheus_client import multiprocess

    pids = {
        int(match.group(1))
        for name in os.listdir(directory)
        if (match := _LIVE_FILE.match(name)) is not None
    }
    for pid in pids:
        if not _alive(pid):
            multiprocess.mark_process_dead(pid, directory)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process by that number: keep its files
    return True
