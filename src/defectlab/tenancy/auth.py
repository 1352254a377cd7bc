"""DRF authentication with personal API tokens: ``Authorization: Bearer dl_…`` (or ``Token dl_…``),
and the guard on API calls that sign an anonymous caller in (login CSRF)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from defectlab.errors import Forbidden
from defectlab.tenancy.services import user_for_api_key


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                _("The Authorization header must be “Bearer <token>”.")
            )
        user = user_for_api_key(header[1])
        if user is None:
            raise exceptions.AuthenticationFailed(_("This API token is not valid."))
        return user, None

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = ApiTokenAuthentication
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A personal API token (dl_…)."}


def refuse_cross_site_sign_in(request: Request) -> None:
    """Guard for API calls that sign the caller in (``/api/auth/login/``, accepting an invite).

    DRF checks CSRF for session users only, so without this a page on any site could post a form
    here and sign the visitor's browser into an account of the attacker's choosing (login CSRF).
    A browser cannot send a JSON body cross-site without asking first (CORS preflight), so only
    JSON is accepted (415 otherwise); and when the browser says where the request comes from —
    ``Origin``, or ``Referer`` on https — that must be this installation (its own host or one of
    ``DEFECTLAB_PUBLIC_URLS``), else 403. Scripts and curl send neither header and pass."""
    media_type = (request.content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise exceptions.UnsupportedMediaType(
            media_type or "(none)",
            detail=_("Send the sign-in as JSON (Content-Type: application/json), not as %(type)s.")
            % {"type": media_type or _("a body without a content type")},
        )
    origin = request.headers.get("Origin")
    if origin is None and request.is_secure():
        referer = urlsplit(request.headers.get("Referer", ""))
        if referer.scheme and referer.netloc:
            origin = f"{referer.scheme}://{referer.netloc}"
    if origin is None:
        return
    own = f"{'https' if request.is_secure() else 'http'}://{request.get_host()}"
    if origin.lower().rstrip("/") not in {own.lower(), *trusted_origins()}:
        raise Forbidden(
            _(
                "Signing in from another site is not allowed: %(origin)s is not an address of "
                "this installation (DEFECTLAB_PUBLIC_URLS)."
            )
            % {"origin": origin[:200]},
            code="cross_site",
            details={"origin": origin[:200]},
        )


def trusted_origins() -> set[str]:
    return {origin.lower().rstrip("/") for origin in settings.CSRF_TRUSTED_ORIGINS}
