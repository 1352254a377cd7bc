"""Jobs run here as a worker would run them, and the sandbox's limits kept small."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from defectlab.jobs.runner import run_job


@pytest.fixture(autouse=True)
def limits(settings: Any) -> None:
    settings.MODEL_CHECK_MEMORY_MB = 768  # far above a small graph's needs, far below 4 GiB
    settings.MODEL_CHECK_SECONDS = 60.0


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Job ids sent to the queue (after their commit), in order; no worker runs them."""
    ids: list[int] = []
    monkeypatch.setattr("defectlab.jobs.services.send", ids.append)
    return ids


@pytest.fixture
def drain(queued: list[int], django_capture_on_commit_callbacks: Any) -> Callable[[], None]:
    """Run every queued job here, as a worker would."""

    def run() -> None:
        while queued:
            job_id = queued.pop(0)
            with django_capture_on_commit_callbacks(execute=True):
                run_job(job_id)

    return run
