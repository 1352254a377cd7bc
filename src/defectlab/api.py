"""What every API view shares: tenant scoping, role checks, one error shape, keyset cursors."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from django.views.defaults import page_not_found
from rest_framework import exceptions, viewsets
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from defectlab.errors import DefectLabError, NotFound, error_body, error_response
from defectlab.tenancy.models import Organization, User
from defectlab.tenancy.roles import Can
from defectlab.tenancy.services import require, scoped


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 404 for an address no route matches: under /api/ in the API's error shape (its
    schema promises JSON), elsewhere the ordinary page."""
    if request.path.startswith("/api/"):
        return error_response(NotFound(_("Not found.")))
    return page_not_found(request, exception or Http404())


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


def organization_id_of(obj: models.Model) -> int:
    return obj.pk if isinstance(obj, Organization) else getattr(obj, "organization_id")  # noqa: B009


class TenantViewSet(viewsets.GenericViewSet):
    """A viewset over tenant-owned rows.

    Rows come only through ``scoped()`` (other organizations' IDs answer 404), and each action
    needs the capability named in ``capabilities`` (default: VIEW) in the row's organization."""

    capabilities: dict[str, Can] = {}

    def get_queryset(self) -> models.QuerySet[Any]:
        return scoped(super().get_queryset(), self.request.user)

    def capability(self) -> Can:
        return self.capabilities.get(self.action or "", Can.VIEW)

    def get_object(self) -> Any:
        obj = super().get_object()
        require(self.request.user, organization_id_of(obj), self.capability())
        return obj


def acting_user(request: Any) -> User:
    """The signed-in user behind a request (views behind IsAuthenticated always have one)."""
    user = request.user
    if not isinstance(user, User):
        raise exceptions.NotAuthenticated()
    return user
