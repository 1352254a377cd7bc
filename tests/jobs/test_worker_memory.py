"""A job worker hands back what a big job left behind: after a job that left it above
DEFECTLAB_WORKER_MAX_MEMORY_MB it stops taking jobs and says it should be started again
(`defectlab worker` exits with code 75; `serve` restarts it at once, see test_supervisor)."""

from __future__ import annotations

import threading

from defectlab.jobs.worker import RecycleAbove, memory_mb, resident_mb


def test_this_process_memory_is_read_from_proc() -> None:
    pss, rss = memory_mb(), resident_mb()
    assert 1 < pss <= rss  # the PSS counts shared pages in part, the resident size whole


def test_a_worker_above_its_limit_after_a_job_stops_to_be_recycled() -> None:
    stop, recycle = threading.Event(), threading.Event()
    RecycleAbove(1, stop, recycle).after_process_message(None, None)  # type: ignore[arg-type]
    assert stop.is_set() and recycle.is_set()


def test_a_worker_under_its_limit_goes_on() -> None:
    stop, recycle = threading.Event(), threading.Event()
    middleware = RecycleAbove(1_000_000, stop, recycle)
    middleware.after_process_message(None, None)  # type: ignore[arg-type]
    assert not stop.is_set() and not recycle.is_set()
    RecycleAbove(0, stop, recycle).after_process_message(None, None)  # type: ignore[arg-type]
    assert not stop.is_set()  # 0: never
