"""Cookies marked Secure exactly when the request came over HTTPS.

One installation is often reached both ways: `http://10.1.2.3:8080` on the factory LAN and
`https://defects.example.com` through a TLS proxy. A fixed SESSION_COOKIE_SECURE breaks one of
them (a Secure cookie is never sent back over http, so nobody could sign in on the LAN), so the
cookies are marked per response instead: Secure when ``request.is_secure()``, which reads
`X-Forwarded-Proto` only when DEFECTLAB_PROXY_HEADERS trusts the proxy. HSTS is Django's
SecurityMiddleware, which sends it on HTTPS responses only (DEFECTLAB_HSTS_SECONDS)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class SecureCookiesMiddleware:
    """Sits above the session and CSRF middleware, so it sees the cookies they set."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.is_secure():
            for morsel in response.cookies.values():
                morsel["secure"] = True
        return response
