"""One installation, reached over plain http on the LAN and over https (directly or through a TLS
proxy): the session and CSRF cookies are Secure exactly on the https responses, and only those
carry Strict-Transport-Security."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from rest_framework.test import APIClient

from defectlab.tenancy.models import Role
from tests.conftest import Tenant

PASSWORD = "a-long-password-1"


def sign_in(tenant: Tenant, **request: Any) -> tuple[HttpResponse, HttpResponse]:
    """A person opens the login page (which sets the CSRF cookie), then signs in (which sets
    the session cookie); both answers, for their cookies and headers."""
    client = APIClient()
    page = client.get("/login/", **request)
    signed_in = client.post(
        "/api/auth/login/",
        {"email": tenant.user(Role.ANNOTATOR).email, "password": PASSWORD},
        format="json",
        **request,
    )
    assert page.status_code == 200 and signed_in.status_code == 200, signed_in.content
    assert "csrftoken" in page.cookies and "sessionid" in signed_in.cookies
    return page, signed_in


def secure_flags(page: HttpResponse, signed_in: HttpResponse) -> tuple[bool, bool]:
    return bool(page.cookies["csrftoken"]["secure"]), bool(signed_in.cookies["sessionid"]["secure"])


def test_lan_over_http_gets_cookies_it_can_send_back_and_no_hsts(tenant: Tenant) -> None:
    page, signed_in = sign_in(tenant)
    assert secure_flags(page, signed_in) == (False, False)
    assert "Strict-Transport-Security" not in page.headers
    assert "Strict-Transport-Security" not in signed_in.headers


def test_https_gets_secure_cookies_and_hsts(tenant: Tenant, settings) -> None:  # type: ignore[no-untyped-def]
    # The same installation as above: its public URLs list both the LAN and the WAN address.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "defects.example.com"]
    page, signed_in = sign_in(tenant, secure=True, HTTP_HOST="defects.example.com")
    assert secure_flags(page, signed_in) == (True, True)
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert signed_in.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_https_through_a_trusted_proxy_counts_as_https(tenant: Tenant, settings) -> None:  # type: ignore[no-untyped-def]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    page, signed_in = sign_in(tenant, HTTP_X_FORWARDED_PROTO="https")
    assert secure_flags(page, signed_in) == (True, True)
    assert "max-age=" in signed_in.headers["Strict-Transport-Security"]
    # Through the same proxy, a plain http request stays plain.
    page, signed_in = sign_in(tenant, HTTP_X_FORWARDED_PROTO="http")
    assert secure_flags(page, signed_in) == (False, False)
    assert "Strict-Transport-Security" not in signed_in.headers


def test_a_forged_forwarded_proto_is_ignored_unless_the_proxy_is_trusted(
    tenant: Tenant, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.SECURE_PROXY_SSL_HEADER = None  # DEFECTLAB_PROXY_HEADERS=false, the default
    page, signed_in = sign_in(tenant, HTTP_X_FORWARDED_PROTO="https")
    assert secure_flags(page, signed_in) == (False, False)
    assert "Strict-Transport-Security" not in signed_in.headers


def test_hsts_can_be_turned_off(tenant: Tenant, settings) -> None:  # type: ignore[no-untyped-def]
    settings.SECURE_HSTS_SECONDS = 0  # DEFECTLAB_HSTS_SECONDS=0
    page, signed_in = sign_in(tenant, secure=True)
    assert secure_flags(page, signed_in) == (True, True)
    assert "Strict-Transport-Security" not in signed_in.headers
