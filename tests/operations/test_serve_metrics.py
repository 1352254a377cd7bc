"""`defectlab serve` for real: gunicorn with two web workers and the embedded job worker, each a
process of its own, and one `/metrics` that adds them all up (prometheus_client's multiprocess
mode; defectlab.operations.multiprocess)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from defectlab.ingest.uploads import checked_image
from defectlab.jobs.models import Job, JobState
from defectlab.labeling import services
from defectlab.operations.multiprocess import share_metrics
from defectlab.tenancy.models import Role
from defectlab.transfer.exports import start_export
from tests.conftest import Tenant, png_bytes
from tests.jobs.processes import crash_worker
from tests.operations.scrape import free_port, parse, value
from tests.operations.test_metrics import get

HEALTHZ = {"route": "healthz", "method": "GET", "status": "2xx"}


def served_healthz(directory: Path, scratch: Path) -> dict[int, float]:
    """/healthz requests counted in each process's own file, by pid."""
    counts: dict[int, float] = {}
    for path in directory.glob("counter_*.db"):
        alone = scratch / path.stem
        alone.mkdir(exist_ok=True)
        shutil.copy(path, alone / path.name)
        samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in MultiProcessCollector(CollectorRegistry(), path=str(alone)).collect()
            for sample in family.samples
        }
        served = value(samples, "defectlab_http_requests_total", **HEALTHZ)
        if served:
            counts[int(path.stem.split("_")[1])] = served
    return counts


class Serving:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "defectlab.cli", "serve"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait(self, condition: Any, what: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"waiting for {what}:\n{self.log.read_text()[-4000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.mark.django_db(transaction=True)
def test_a_scrape_adds_up_both_web_workers_and_the_embedded_job_worker(
    tenant: Tenant, tmp_path: Path, settings: Any
) -> None:
    with crash_worker("sqlite", tmp_path, settings) as worker:  # its env: database, broker, data
        port = free_port()
        env = worker.env | {
            "DEFECTLAB_HOST": "127.0.0.1",
            "DEFECTLAB_PORT": str(port),
            "DEFECTLAB_PUBLIC_URLS": f"http://127.0.0.1:{port}",
            "DEFECTLAB_WEB_WORKERS": "2",
            "DEFECTLAB_WORKER_EMBEDDED": "true",
            "DEFECTLAB_WORKER_HEARTBEAT_SECONDS": "1",
            "DEFECTLAB_METRICS_CACHE_SECONDS": "0",
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # serve makes its own, under TMPDIR
        temporary = Path(env["TMPDIR"])
        base = f"http://127.0.0.1:{port}"
        server = Serving(env, tmp_path / "serve.log")
        try:
            server.wait(lambda: get(f"{base}/readyz")[0] == 200, "serve's /readyz")
            (directory,) = temporary.glob("defectlab-metrics-*")

            # Requests until both web workers have served some (the kernel picks who accepts).
            sent = 0
            while len(served_healthz(directory, tmp_path)) < 2:
                assert sent < 2000, "one web worker served every request"
                for _ in range(20):
                    assert get(f"{base}/healthz")[0] == 200
                    sent += 1
            assert set(served_healthz(directory, tmp_path)) <= {
                child for child in _children(server.process.pid)
            }
            # Every scrape, whichever worker answers it, counts the requests of both.
            for _ in range(6):
                samples = parse(get(f"{base}/metrics")[1].decode())
                assert value(samples, "defectlab_http_requests_total", **HEALTHZ) == sent

            # A job run by the embedded worker shows in the web's /metrics.
            project = services.create_project(
                tenant.organization,
                tenant.user(Role.OWNER),
                name="Line 9",
                labels=[{"name": "dent"}],
            )
            image = checked_image("panel.png", png_bytes(64, 48))
            services.create_uploaded_tasks(project, [dataclasses.replace(image, name="a.png")])
            job = start_export(project, {"format": "yolo", "include_unlabeled": True}, None)
            server.wait(
                lambda: Job.objects.get(pk=job.pk).state == JobState.SUCCEEDED, "the export"
            )
            samples = parse(get(f"{base}/metrics")[1].decode())
            runs = {"kind": "export", "outcome": "succeeded"}
            assert value(samples, "defectlab_job_runs_total", **runs) == 1
            assert value(samples, "defectlab_job_seconds_count", kind="export") == 1
            assert value(samples, "defectlab_jobs_running", kind="export") == 0
            assert value(samples, "defectlab_job_workers") == 1
        finally:
            server.stop()
        assert server.process.returncode == 0, server.log.read_text()[-4000:]
        assert not directory.exists()  # serve's own directory goes with it


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.add(int(entry.name))
    return children


def test_serve_empties_a_metrics_directory_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator's PROMETHEUS_MULTIPROC_DIR (a volume kept across restarts) starts empty: the
    last run's counts would otherwise be added to the new processes' (and its pids reused)."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_4242.db").write_bytes(b"an earlier run's")
    (directory / "gauge_livesum_4242.db").write_bytes(b"an earlier run's")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    assert share_metrics() == directory
    assert list(directory.iterdir()) == []
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(directory)
