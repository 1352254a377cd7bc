"""`defectlab serve-inference` as operators run it: its own process on uvicorn, ready (/readyz)
once its production models are loaded and warm, answering detections, logging JSON lines to
stdout, and on SIGTERM finishing its requests and writing its meter before it exits."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from defectlab.serving.models import Call
from tests.conftest import Tenant
from tests.jobs.processes import database_url
from tests.serving.conftest import bearer, box_model, jpeg, key_of, put_model

pytestmark = pytest.mark.django_db(transaction=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_inference_serves_logs_json_and_stops_cleanly(tenant: Tenant, tmp_path: Path) -> None:
    put_model(tenant.organization, "panels", box_model())
    key = key_of(tenant.organization)
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "defectlab.settings",
        "DEFECTLAB_DATABASE_URL": database_url(),
        "DEFECTLAB_DATA_DIR": str(tmp_path),
        "DEFECTLAB_LOG_FORMAT": "json",
        "DEFECTLAB_INFERENCE_PRELOAD": "production",
    }
    log = tmp_path / "service.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "defectlab.cli", "serve-inference", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        answer = httpx.post(
            f"{base}/v1/detect",
            params={"model": "panels"},
            files={"image": jpeg(640, 480)},
            headers=bearer(key),
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["results"][0]["detections"]
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
    # uvicorn ends a clean shutdown by raising the signal again (so the exit says SIGTERM).
    assert code in (0, -signal.SIGTERM), log.read_text()
    assert "Application shutdown complete." in log.read_text()
    call = Call.objects.get()
    assert (call.status, call.images, call.detections, call.client_ip) == (200, 1, 1, "127.0.0.1")
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(entries) >= len(lines) - 1, "every log line is JSON (the banner aside)"
    calls = [entry for entry in entries if entry["message"] == "detection call"]
    assert len(calls) == 1
    logged = calls[0]
    assert (logged["model_name"], logged["images"], logged["status"]) == ("panels", 1, 200)
    assert logged["organization_id"] == tenant.organization.pk
