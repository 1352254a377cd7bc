"""Browser end-to-end tests: Debian's Chromium driven by Playwright against pytest-django's live
server.

Every test here is marked ``e2e`` (``pytest -m "not e2e"`` leaves them out). Without
/usr/bin/chromium the folder is skipped, except when ``CI=true``: there a missing browser fails.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Playwright's sync API keeps an asyncio loop running in the test thread; Django refuses ORM
# calls from such a thread unless told it is fine (the tests only read and set up data).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HERE = Path(__file__).parent
SCREENSHOTS = HERE.parent.parent / "docs" / "screenshots"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: browser end-to-end test (needs /usr/bin/chromium)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if HERE in Path(str(item.path)).parents]
    if not ours:
        return
    missing = not CHROMIUM.exists()
    if missing and os.environ.get("CI") == "true":
        raise pytest.UsageError(
            f"CI=true but {CHROMIUM} is missing: the browser end-to-end tests cannot run "
            "(apt-get install chromium)."
        )
    for item in ours:
        item.add_marker(pytest.mark.e2e)
        if missing:
            item.add_marker(
                pytest.mark.skip(
                    reason=f"{CHROMIUM} is missing: browser end-to-end tests skipped "
                    "(apt-get install chromium; with CI=true this fails instead)."
                )
            )


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def base_url(live_server: Any) -> str:
    """Relative page.goto("/login/") goes to the live server. (This also replaces
    pytest-base-url's fixture, which pytest 9 warns about and the warnings filter turns into an
    error.)"""
    return str(live_server.url)


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any], base_url: str) -> dict[str, Any]:
    return {
        **browser_context_args,
        "viewport": {"width": 1366, "height": 768},
        "base_url": base_url,
        "locale": "en-US",
    }


@pytest.fixture(autouse=True)
def _e2e_database(transactional_db: None, live_server: Any) -> None:
    """The live server runs in another thread: its data must be committed, not in a test's
    transaction."""


@pytest.fixture
def new_page(browser: Any, browser_context_args: dict[str, Any]) -> Iterator[Callable[[], Any]]:
    """Pages in fresh browser contexts (a second person at another computer)."""
    contexts: list[Any] = []

    def make() -> Any:
        context = browser.new_context(**browser_context_args)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def worker(settings: Any, tmp_path: Path) -> Iterator[None]:
    """A real worker in a thread, on our embedded broker (as `defectlab serve` runs one beside
    the web server): jobs started in the browser run."""
    from defectlab.jobs import queue
    from defectlab.jobs.worker import run_worker

    settings.BROKER_URL = f"sqlite:///{tmp_path / 'queue.sqlite3'}"
    queue.reset()
    stop = threading.Event()
    thread = threading.Thread(target=run_worker, args=(1,), kwargs={"stop": stop}, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(30)
    queue.reset()
