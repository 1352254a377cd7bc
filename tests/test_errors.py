"""One error shape for every view: those outside DRF (media links, the S3 proxy, the canvas's
JSON, unknown /api/ addresses, the body limit) answer a refusal as DRF's handler does."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from defectlab.api import exception_handler
from defectlab.errors import Conflict, Unavailable, error_response

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "error",
    [
        Conflict("The task was changed by someone else.", details={"version": 3}),
        Unavailable("This file changed while it was being sent. Try again.", code="busy"),
    ],
)
def test_a_view_outside_drf_answers_a_refusal_as_the_api_does(error: Exception) -> None:
    assert isinstance(error, Conflict | Unavailable)
    api = exception_handler(error, {})
    plain = error_response(error)
    assert api is not None
    assert plain.status_code == api.status_code
    assert json.loads(plain.content) == api.data


def test_an_expired_media_link_and_an_unknown_api_address_say_so_in_the_callers_language() -> None:
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    link = client.get("/media/not-a-valid-token")
    assert link.status_code == 404
    assert link.json()["error"]["code"] == "not_found"
    assert link.json()["error"]["message"] != "This image link has expired or is not valid."
    unknown = client.get("/api/no-such-thing/")
    assert unknown.status_code == 404
    assert unknown.json() == {"error": {"code": "not_found", "message": "未找到。"}}


def test_a_request_django_refuses_before_any_view_answers_the_api_error_shape() -> None:
    """A Host header that is no host name is refused by Django itself (400): under /api/ in the
    API's error shape and the caller's language (schemathesis sent one), elsewhere as a page."""
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans", HTTP_HOST="2'HJ*b(")
    api = client.get("/api/account/")
    assert api.status_code == 400
    assert api.json()["error"]["code"] == "bad_request"
    assert api.json()["error"]["message"] != "The request is malformed."
    page = client.get("/")
    assert page.status_code == 400 and page["Content-Type"].startswith("text/html")
