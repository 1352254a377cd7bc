"""Images by address (a JSON body's ``{"url": …}``) are fetched through the guarded fetcher:
an address on this machine is refused by name of the rule that refused it, and fetched once
the operator opens it; the fetched image answers in its place among the others."""

from __future__ import annotations

import base64
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

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
