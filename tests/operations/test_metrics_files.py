"""`defectlab serve`'s metrics directory stays small: each recycled or killed process leaves
counter_<pid>.db and histogram_<pid>.db behind, which every scrape would read for ever; they
are folded into one aggregate file per type (the totals unchanged) and deleted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from defectlab.operations import multiprocess
from tests.operations.scrape import parse, value

# A process of `serve` as prometheus_client's multiprocess mode has it write: a request counted
# and timed, a live gauge moved, then gone.
PROCESS = """
from prometheus_client import Counter, Gauge, Histogram
Counter("defectlab_requests", "requests", ["route"]).labels("tasks").inc(3)
Histogram("defectlab_seconds", "seconds", buckets=(0.1, 1.0)).observe(0.5)
Gauge("defectlab_running", "running", multiprocess_mode="livesum").inc()
"""


def dead_process(directory: Path) -> int:
    """Run one process that writes its metrics files into ``directory``; its pid, now dead."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    process = subprocess.run([sys.executable, "-c", PROCESS], env=env, check=True)
    assert process.returncode == 0
    return int(next(directory.glob("counter_[0-9]*.db")).name[8:-3])


def totals(directory: Path) -> dict[str, float]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    samples = parse(generate_latest(registry).decode())
    return {
        "requests": value(samples, "defectlab_requests_total", route="tasks"),
        "observed": value(samples, "defectlab_seconds_count"),
        "sum": value(samples, "defectlab_seconds_sum"),
        "below_1s": value(samples, "defectlab_seconds_bucket", le="1.0"),
        "running": value(samples, "defectlab_running"),
    }


def test_recycled_processes_are_folded_into_one_file_per_type_with_the_totals_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for recycled in range(1, 13):
        pid = dead_process(tmp_path)
        if recycled % 2:
            multiprocess.child_exit(None, SimpleNamespace(pid=pid))  # gunicorn's hook
        else:
            multiprocess.forget_dead_processes()  # the sweep at a scrape (a killed process)
        assert totals(tmp_path) == {
            "requests": 3 * recycled,
            "observed": recycled,
            "sum": 0.5 * recycled,
            "below_1s": recycled,
            "running": 0,  # none of them runs any more
        }
        assert sorted(path.name for path in tmp_path.glob("*.db")) == [
            "counter_aggregate.db",
            "histogram_aggregate.db",
        ]


def test_a_living_processs_files_stay_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    pid = dead_process(tmp_path)
    alive = tmp_path / f"counter_{os.getpid()}.db"
    (tmp_path / f"counter_{pid}.db").rename(alive)  # as if this process had written it
    multiprocess.forget_dead_processes()
    assert alive.exists() and totals(tmp_path)["requests"] == 3


def test_serve_removes_the_metrics_directories_of_runs_that_are_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(multiprocess.tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / f"defectlab-metrics-{int(gone.stdout)}-x1y2"
    running = tmp_path / f"defectlab-metrics-{os.getppid()}-a1b2"  # a serve still running
    for directory in (stale, running):
        directory.mkdir()
        (directory / "counter_1.db").write_bytes(b"")
    path = multiprocess.share_metrics()
    assert not stale.exists() and running.exists()
    assert path.parent == tmp_path and path.name.startswith(f"defectlab-metrics-{os.getpid()}-")
