"""How `defectlab serve` sets up gunicorn to keep memory down: the app loaded once and shared by
the forked workers, and workers replaced after a number of requests. bench/memory.py measures
what that gives; these tests hold the settings."""

from __future__ import annotations

from typing import Any


def test_gunicorn_shares_the_app_and_recycles_its_workers(settings: Any) -> None:
    from defectlab.cli import gunicorn_options
    from defectlab.operations.multiprocess import child_exit

    settings.WEB_MAX_REQUESTS = 2000
    settings.WEB_MAX_MEMORY_MB = 0
    assert gunicorn_options(settings) == {
        "preload_app": True,
        "child_exit": child_exit,  # a web worker gone: its live metrics are dropped
        "max_requests": 2000,
        "max_requests_jitter": 200,
    }
    settings.WEB_MAX_REQUESTS = 0
    assert gunicorn_options(settings) == {"preload_app": True, "child_exit": child_exit}


def test_the_app_is_loaded_whole_and_frozen_before_gunicorn_forks() -> None:
    import gc
    import sys

    from defectlab.cli import load_application

    try:
        application = load_application()
        assert callable(application)
        assert "defectlab.urls" in sys.modules  # every view is loaded before the fork
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


class StubWorker:
    """What the hook uses of gunicorn's worker (a real one needs a running arbiter)."""

    def __init__(self) -> None:
        import logging

        self.alive = True
        self.pid = 1
        self.log = logging.getLogger("test")


def test_a_web_worker_a_request_left_above_its_limit_is_replaced(settings: Any) -> None:
    from defectlab.cli import RetireAbove, gunicorn_options

    worker = StubWorker()
    RetireAbove(1)(worker, None, None, None)  # this process is above 1 MB
    assert worker.alive is False  # gunicorn then finishes its requests and starts another
    worker = StubWorker()
    RetireAbove(1_000_000)(worker, None, None, None)
    assert worker.alive is True
    settings.WEB_MAX_MEMORY_MB = 96
    hook = gunicorn_options(settings)["post_request"]
    assert isinstance(hook, RetireAbove) and hook.limit_mb == 96
