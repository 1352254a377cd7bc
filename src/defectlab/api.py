"""What every API answer shares: one error shape, for DRF's views and for what Django answers
itself (no route matches, a refusal, a crash). Outside /api/ those are the styled pages in
``web/templates`` (404.html, 403.html, 500.html). (Tenant scoping and role checks for viewsets:
``tenancy.viewsets``.)"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from django.views.defaults import bad_request as page_bad_request
from django.views.defaults import page_not_found, permission_denied
from django.views.defaults import server_error as page_server_error
from rest_framework import exceptions
from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from defectlab.errors import (
    DefectLabError,
    Forbidden,
    Invalid,
    NotFound,
    ServerError,
    error_body,
    error_response,
)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 404 for an address no route matches: under /api/ in the API's error shape (its
    schema promises JSON), elsewhere the ordinary page."""
    if request.path.startswith("/api/"):
        return error_response(NotFound(_("Not found.")))
    return page_not_found(request, exception or Http404())


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 400 for a request it refuses before any view (a Host header that is not a host
    name, say): under /api/ in the API's error shape, elsewhere the ordinary page."""
    if request.path.startswith("/api/"):
        return error_response(Invalid(_("The request is malformed."), code="bad_request"))
    return page_bad_request(request, exception or Exception())


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 403 for a view outside DRF that refuses (PermissionDenied): under /api/ in the
    API's error shape, elsewhere the app's page."""
    if request.path.startswith("/api/"):
        return error_response(Forbidden(_("You do not have permission to do this.")))
    return permission_denied(request, exception or DjangoPermissionDenied())


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's 500: under /api/ in the API's error shape, elsewhere 500.html, which needs no
    database and no request (whatever broke may be either)."""
    if request.path.startswith("/api/"):
        return error_response(ServerError(_("Something went wrong on the server.")))
    return page_server_error(request)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every error answers ``{"error": {"code", "message", "details"?}}`` in the caller's language."""
    if isinstance(exc, DefectLabError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(_("Not found."))
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body("invalid", _first_message(exc.detail), {"fields": response.data})
    else:
        codes = exc.get_codes()
        response.data = error_body(
            codes if isinstance(codes, str) else "error", _first_message(exc.detail)
        )
    return response


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        field, value = next(iter(detail.items()), ("", ""))
        message = _first_message(value)
        return message if field in ("non_field_errors", "detail", "") else f"{field}: {message}"
    if isinstance(detail, list):
        return _first_message(detail[0]) if detail else ""
    return str(detail)


class CsvRenderer(BaseRenderer):
    """Lets `?format=csv` and `Accept: text/csv` choose the CSV; the view writes it."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(
        self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None
    ) -> bytes:
        return data.encode() if isinstance(data, str) else json.dumps(data).encode()


def spreadsheet_safe(value: Any) -> Any:
    """A CSV cell as written: a text a spreadsheet would run as a formula (=, +, -, @, a tab
    or a carriage return first) is quoted by a '."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
