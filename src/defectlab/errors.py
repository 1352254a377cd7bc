"""Errors the services raise. Each carries the HTTP status it maps to, a human message (already
translated into the language of the request that caused it), and whether trying again could
help (``retryable``: the job runner retries those with backoff and fails the rest at once)."""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse


class DefectLabError(Exception):
    status = 400
    code = "invalid"
    retryable = False  # a refusal: the same request gets the same answer

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details


class Invalid(DefectLabError):
    status = 400
    code = "invalid"


class Unauthorized(DefectLabError):
    """No credentials, or credentials that do not hold (a wrong, revoked or badly signed key)."""

    status = 401
    code = "unauthorized"


class Forbidden(DefectLabError):
    status = 403
    code = "forbidden"


class NotFound(DefectLabError):
    status = 404
    code = "not_found"


class Conflict(DefectLabError):
    status = 409
    code = "conflict"


class TooLarge(DefectLabError):
    status = 413
    code = "too_large"


class Throttled(DefectLabError):
    status = 429
    code = "throttled"


class ServerError(DefectLabError):
    """Something broke that no input caused (an unexpected exception): the API's 500."""

    status = 500
    code = "server_error"


class Unavailable(DefectLabError):
    """Something this needs (a store, a remote server) is failing right now: try again later."""

    status = 503
    code = "unavailable"
    retryable = True


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The one error shape: ``{"error": {"code", "message", "details"?}}``."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


def error_response(error: DefectLabError) -> JsonResponse:
    """``error`` answered in the API's error shape by a view outside DRF (media links, the S3
    proxy, the canvas's JSON, unknown /api/ addresses), as DRF's exception handler answers it."""
    return JsonResponse(error_body(error.code, error.message, error.details), status=error.status)
