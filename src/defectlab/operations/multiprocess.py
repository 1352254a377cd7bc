"""One `/metrics` for all of `defectlab serve`'s processes: gunicorn's workers (a scrape reaches
one of them) and the embedded job worker.

prometheus_client's multiprocess mode: each process writes its counters, histograms and gauges
to memory-mapped files named by its pid in PROMETHEUS_MULTIPROC_DIR, and the process that
answers a scrape adds up every file. The directory must be set before prometheus_client is
imported (it decides then), so `serve` calls `share_metrics` first of all, before Django starts
and before anything forks. Nothing here imports prometheus_client or Django at module level.

- Counters and histograms of processes that are gone stay in the sums (a counter never goes
  down), but not in files of their own: gunicorn's `child_exit` hook and, at each scrape, a
  look for processes that are gone (the embedded worker killed, a web worker recycled by
  DEFECTLAB_WEB_MAX_REQUESTS) add a dead process's values into one `counter_aggregate.db` /
  `histogram_aggregate.db` (the collector reads the type from the name's first part) and
  delete its files, so the directory holds the living processes' files and one per type. A
  lock file keeps a scrape from reading while a fold moves values. The directory is emptied
  when `serve` starts, so a restart starts from zero, which Prometheus's `rate()` expects.
- "Jobs running now" counts live processes only: the same hook and look drop the live gauges
  of dead processes.
- A temporary directory of a run that ended without removing it (killed) is removed by the
  next `serve` started on the machine.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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
    owner = os.getpid()
    remove_stale_directories()
    path = Path(tempfile.mkdtemp(prefix=f"defectlab-metrics-{owner}-"))
    os.environ[VARIABLE] = str(path)

    def remove() -> None:
        if os.getpid() == owner:  # not in a forked child that happens to exit through here
            shutil.rmtree(path, ignore_errors=True)

    atexit.register(remove)
    return path


_STALE_DIRECTORY = re.compile(r"defectlab-metrics-(\d+)-\w+$")


def remove_stale_directories() -> None:
    """Remove the temporary metrics directories of `serve` runs whose process is gone."""
    for path in Path(tempfile.gettempdir()).glob("defectlab-metrics-*"):
        match = _STALE_DIRECTORY.match(path.name)
        if match is not None and path.is_dir() and not _alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)


def child_exit(_server: Any, worker: Any) -> None:
    """gunicorn's ``child_exit`` hook: a web worker is gone; drop its live gauges and fold its
    counters and histograms into the totals."""
    directory = os.environ.get(VARIABLE)
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, directory)
        with locked(directory, exclusive=True):
            fold_process(worker.pid, directory)


@contextmanager
def locked(directory: str, *, exclusive: bool) -> Iterator[None]:
    """Folds take the directory's lock alone; scrapes share it (a fold deletes files the
    collector would otherwise find gone, or read twice)."""
    with open(os.path.join(directory, ".lock"), "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield  # closing the file lets go


_FOLDED_TYPES = ("counter", "histogram", "summary")
_PROCESS_FILE = re.compile(r"(counter|histogram|summary|gauge_live\w+?)_(\d+)\.db$")


def fold_process(pid: int, directory: str) -> None:
    """Add the dead process ``pid``'s counter, histogram and summary values into the type's
    aggregate file, then delete its file (under `locked`, exclusive)."""
    from prometheus_client.mmap_dict import MmapedDict

    for kind in _FOLDED_TYPES:
        dead = os.path.join(directory, f"{kind}_{pid}.db")
        if not os.path.exists(dead):
            continue
        values = list(MmapedDict.read_all_values_from_file(dead))
        total = MmapedDict(os.path.join(directory, f"{kind}_aggregate.db"))
        try:
            for key, value, timestamp, _position in values:
                before, _ = total.read_value(key)
                total.write_value(key, before + value, timestamp)
        finally:
            total.close()
        os.unlink(dead)


def forget_dead_processes() -> None:
    """Fold the files of processes that no longer run (killed, recycled, or not reaped by a
    hook) into the totals and drop their live gauges, so that "running now" counts only the
    living and the directory stays small."""
    directory = os.environ.get(VARIABLE)
    if not directory:
        return
    from prometheus_client import multiprocess

    pids = {
        int(match.group(2))
        for name in os.listdir(directory)
        if (match := _PROCESS_FILE.match(name)) is not None
    }
    dead = [pid for pid in pids if pid != os.getpid() and not _alive(pid)]
    if not dead:
        return
    with locked(directory, exclusive=True):
        for pid in dead:
            multiprocess.mark_process_dead(pid, directory)
            fold_process(pid, directory)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process by that number: keep its files
    return True
