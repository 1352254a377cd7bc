"""A live DefectLab server for the SDK: pytest-django's live server (a real HTTP server in a
thread of this process, on loopback) with a job worker beside it (a thread on our embedded
broker, as `defectlab serve` runs one), and a person with a password to sign in as."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from defectlab.jobs import queue
from defectlab.jobs.worker import run_worker
from defectlab.tenancy.models import User

PASSWORD = "a-long-password-1"


@dataclass
class Server:
    url: str
    email: str
    password: str


@pytest.fixture
def server(
    transactional_db: None, live_server: Any, settings: Any, tmp_path: Path
) -> Iterator[Server]:
    """The live server's data must be committed (it answers from another thread), hence the
    transactional database."""
    settings.BROKER_URL = f"sqlite:///{tmp_path / 'queue.sqlite3'}"
    queue.reset()
    stop = threading.Event()
    worker = threading.Thread(target=run_worker, args=(1,), kwargs={"stop": stop}, daemon=True)
    worker.start()
    User.objects.create_user("scripter@acme.test", PASSWORD, name="Scripter")
    try:
        yield Server(str(live_server.url), "scripter@acme.test", PASSWORD)
    finally:
        stop.set()
        worker.join(30)
        queue.reset()


def defect_image(
    path: Path, spot: tuple[int, int, int, int], size: tuple[int, int] = (64, 48)
) -> Path:
    """A light grey panel with one dark defect at ``spot`` (x1, y1, x2, y2, inclusive)."""
    image = Image.new("RGB", size, (200, 200, 200))
    ImageDraw.Draw(image).rectangle(spot, fill=(20, 20, 20))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
