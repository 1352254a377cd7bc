"""The detection service in the test process: its app served by uvicorn on a loopback port in
a thread (the lifespan runs: runner threads, the meter, the alias refresher), called over real
HTTP with httpx, against the test database
(transactional: the service's threads have connections of their own). Models are small
constant-output graphs (`box_model`: one box where it is told) or the committed demo detector,
registered as ready versions without the sandbox run (the registry's tests cover that)."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from defectlab.inference import registry
from defectlab.inference.models import DetectionModel, ModelVersion, VersionState
from defectlab.serving.app import Service, create_app
from defectlab.serving.keys import create_key
from defectlab.tenancy.models import Organization, User
from tests.inference.graphs import constant_model, v8_output

NAMES = "{0: 'scratch', 1: 'dent'}"


def box_model(cx: float = 320, cy: float = 320, score: float = 0.9, tag: str = "") -> bytes:
    """A YOLOv8 head that always finds one scratch at (cx, cy) of its 640×640 input; ``tag``
    makes otherwise equal files differ (a version's file is unique within its model)."""
    output = v8_output([[cx, cy, 80, 60]], [[score, 0.01]])
    return constant_model({"output0": output}, metadata={"names": NAMES, "description": tag})


def add_version(model: DetectionModel, user: User | None, data: bytes) -> ModelVersion:
    version = registry.upload_version(model, user, data, file_name="model.onnx")
    ModelVersion.objects.filter(pk=version.pk).update(state=VersionState.READY)
    version.refresh_from_db()
    return version


def put_model(
    organization: Organization, name: str, data: bytes, alias: str | None = "production"
) -> DetectionModel:
    model = registry.create_model(organization, None, name=name)
    version = add_version(model, None, data)
    if alias:
        registry.move_alias(model, None, alias, version.number)
    return model


def key_of(organization: Organization, *scopes: str, signed_only: bool = False) -> str:
    return create_key(organization, None, "line", scopes or ("detect",), signed_only=signed_only)[1]


def jpeg(width: int = 640, height: int = 480, marker: bytes = b"") -> bytes:
    """A gray JPEG; ``marker`` is kept in a comment segment of the file."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 120, 120)).save(buffer, "JPEG", comment=marker or None)
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def service_settings(settings: Any, queued: list[int]) -> Any:
    """Quick refreshes, nothing preloaded, counting in the process; upload checks queued, not run."""
    settings.INFERENCE_REFRESH_SECONDS = 0.1
    settings.INFERENCE_PRELOAD = []
    settings.INFERENCE_RUNNERS = 2
    settings.INFERENCE_BATCH_WINDOW_MS = 1.0
    settings.REDIS_URL = ""
    return settings


class Running(httpx.Client):
    service: Service


@contextmanager
def running(service: Service | None = None) -> Iterator[Running]:
    """The service on a free loopback port, and a client for it; stopped (its meter written)
    when the block ends."""
    service = service or Service()
    config = uvicorn.Config(
        create_app(service),
        host="127.0.0.1",
        port=0,
        log_config=None,
        lifespan="on",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the detection service did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with Running(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            client.service = service
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=60)


@pytest.fixture
def serve() -> Callable[..., Any]:
    return running


def bearer(key: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **headers}
