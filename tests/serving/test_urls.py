"""Images by address (a JSON body's ``{"url": …}``) are fetched through the guarded fetcher:
an address on this machine is refused by name of the rule that refused it, and fetched once
the operator opens it; the fetched image answers in its place among the others."""

from __future__ import annotations

import base64
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from defectlab.serving.quotas import set_quota
from tests.conftest import Tenant
from tests.loopback import Loopback, reply
from tests.serving.conftest import bearer, box_model, jpeg, key_of, put_model

pytestmark = pytest.mark.django_db(transaction=True)
WIDE = jpeg(800, 400)


class Camera(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        reply(self, 200, WIDE, "image/jpeg")

    def log_message(self, *args: Any) -> None:
        pass


def test_an_image_by_address_is_refused_on_loopback_until_opened(
    serve: Any, tenant: Tenant, settings: Any
) -> None:
    put_model(tenant.organization, "panels", box_model())
    key = key_of(tenant.organization)
    camera = Loopback(Camera)
    url = f"http://127.0.0.1:{camera.port}/frame.jpg"
    body = {
        "model": "panels",
        "images": [{"data": base64.b64encode(jpeg(320, 240)).decode()}, {"url": url}],
    }
    try:
        with serve() as client:
            refused = client.post("/v1/detect", json=body, headers=bearer(key))
            settings.FETCH_ALLOWLIST = ["127.0.0.1/32"]  # only the operator may open loopback
            fetched = client.post("/v1/detect", json=body, headers=bearer(key))
    finally:
        camera.close()
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "url_refused" and "rule" in error["message"]
    assert fetched.status_code == 200, fetched.text
    results = fetched.json()["results"]
    assert [(r["width"], r["height"]) for r in results] == [(320, 240), (800, 400)]


class HeldCamera(BaseHTTPRequestHandler):
    """A camera server that answers only once the test lets it."""

    release = threading.Event()
    asked = threading.Semaphore(0)

    def do_GET(self) -> None:
        HeldCamera.asked.release()
        HeldCamera.release.wait(30)
        reply(self, 200, WIDE, "image/jpeg")

    def log_message(self, *args: Any) -> None:
        pass


def test_slow_image_servers_hold_only_the_fetching_threads(
    serve: Any, tenant: Tenant, other_tenant: Tenant, settings: Any
) -> None:
    """Sixteen requests waiting on a slow camera server of one organization do not keep
    another organization's first request (its key read from the database) from its answer."""
    put_model(tenant.organization, "panels", box_model())
    put_model(other_tenant.organization, "panels", box_model())
    set_quota(tenant.organization, None, concurrent_requests=None, requests_per_minute=None)
    ours, theirs = key_of(tenant.organization), key_of(other_tenant.organization)
    settings.FETCH_ALLOWLIST = ["127.0.0.1/32"]
    camera = Loopback(HeldCamera)
    body = {"model": "panels", "images": [{"url": f"http://127.0.0.1:{camera.port}/f.jpg"}]}
    try:
        with serve() as client, ThreadPoolExecutor(16) as pool:
            waiting = [
                pool.submit(client.post, "/v1/detect", json=body, headers=bearer(ours))
                for _ in range(16)
            ]
            for _ in range(8):  # the fetching threads are all held by now
                assert HeldCamera.asked.acquire(timeout=30)
            other = client.post(
                "/v1/detect",
                params={"model": "panels"},
                files={"image": jpeg()},
                headers=bearer(theirs),
                timeout=15,
            )
            HeldCamera.release.set()
            answers = [future.result(60) for future in waiting]
    finally:
        HeldCamera.release.set()
        camera.close()
    assert other.status_code == 200
    assert [answer.status_code for answer in answers] == [200] * 16
