"""The one error the client raises: the server's ``{"error": {"code", "message", "details"}}``
answer (or a transport failure) with its HTTP status."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A request that did not succeed.

    ``status`` is the HTTP status (0 when the server could not be reached at all), ``code`` the
    server's stable error code (``not_found``, ``stale``, ``own_work``, ``throttled`` …),
    ``message`` its human message (in the client's ``language``), ``details`` whatever the server
    added (``{"fields": …}`` for bad input, the current ``version`` of a stale save …), and
    ``retry_after`` the seconds a 429 / 503 asked to wait, when it said."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        *,
        method: str = "",
        url: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.method = method
        self.url = url
        self.retry_after = retry_after
        # Set by ``client.tasks.upload`` when a batch fails: what landed before it, and the
        # files not uploaded (the failing batch first).
        self.uploaded: Any = None
        self.remaining: list[Any] = []
        # Set by ``DetectionClient.detect`` when a call fails: the results of the calls before it
        # (``remaining`` then holds the images not answered, the failing call's first).
        self.results: list[Any] = []

    def __str__(self) -> str:
        where = f" ({self.method} {self.url})" if self.method else ""
        status = f"{self.status} " if self.status else ""
        return f"{status}{self.code}: {self.message}{where}"

    @classmethod
    def from_answer(
        cls,
        status: int,
        body: Any,
        reason: str,
        *,
        method: str,
        url: str,
        retry_after: float | None = None,
    ) -> ApiError:
        """The error a non-2xx answer stands for: the server's error shape when the body has it,
        else (a proxy's HTML page, an empty body) ``http_<status>`` and the reason phrase."""
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return cls(
                status,
                str(error.get("code") or f"http_{status}"),
                error["message"],
                error.get("details"),
                method=method,
                url=url,
                retry_after=retry_after,
            )
        return cls(
            status,
            f"http_{status}",
            reason or "The server answered with an error.",
            method=method,
            url=url,
            retry_after=retry_after,
        )
