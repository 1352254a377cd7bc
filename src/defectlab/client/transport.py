"""HTTP for the client: authentication (token or session with CSRF), the error shape, retries
and streamed downloads. Everything else in the client goes through `Transport.call`."""

from __future__ import annotations

import contextlib
import email.utils
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from defectlab import __version__
from defectlab.client.errors import ApiError

# Methods that may be sent again after a connection broke mid-way: repeating them leaves the same
# result. Any method is sent again when the connection never opened (nothing reached the server),
# and on 429 / 503, which say the request was not done.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({429, 503})
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

# A multipart body is opened anew for every attempt: ``Body`` opens the files into the stack
# (closed after the attempt) and answers httpx's ``files`` and ``data``.
Body = Callable[[contextlib.ExitStack], tuple[list[tuple[str, Any]], dict[str, str]]]
# Called with each attempt's request before it is sent: a signed request is signed anew for every
# attempt (a fresh timestamp and nonce; the service refuses a nonce it has seen).
Prepare = Callable[[httpx.Request], None]


def retry_after(response: httpx.Response) -> float | None:
    """Seconds a ``Retry-After`` header asks for (a number or an HTTP date), if it says."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class Transport:
    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        language: str | None = None,
        timeout: float = 60.0,
        retries: int = 5,
        max_retry_wait: float = 60.0,
        verify: bool | str = True,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        self.sleep = sleep
        headers = {
            "Accept": "application/json",
            "User-Agent": f"defectlab-client/{__version__}",
        }
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if language:
            headers["Accept-Language"] = language
        self.http = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            verify=verify,
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------------ requests

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        body: Body | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        prepare: Prepare | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send a request and answer its JSON (None for 204); ApiError for anything else."""
        response = self.send(
            method,
            path,
            params=params,
            json=json,
            body=body,
            content=content,
            headers=headers,
            prepare=prepare,
            timeout=timeout,
        )
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        body: Body | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        prepare: Prepare | None = None,
        timeout: float | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """The answer to a request, sent again on 429 / 503 (as long as the server asks for a
        wait of at most ``max_retry_wait``) and on broken connections (see ``IDEMPOTENT``), at
        most ``retries`` times; a 4xx / 5xx answer raises ApiError. The body is ``json``,
        ``body`` (multipart, opened anew for each attempt) or ``content`` (the very bytes);
        ``prepare`` is called on each attempt's request before it goes (to sign it)."""
        method = method.upper()
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            with contextlib.ExitStack() as stack:
                files, data = body(stack) if body is not None else (None, None)
                request = self.http.build_request(
                    method,
                    path,
                    params=_query(params),
                    json=json,
                    files=files,
                    data=data,
                    content=content,
                    headers={**self._csrf(method), **(headers or {})},
                    timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
                )
                if prepare is not None:
                    prepare(request)
                try:
                    response = self.http.send(request, stream=stream)
                except httpx.TransportError as error:
                    unsent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)
                    if last or not (unsent or method in IDEMPOTENT):
                        raise ApiError(
                            0,
                            "unreachable",
                            str(error) or type(error).__name__,
                            method=method,
                            url=str(request.url),
                        ) from error
                    self.sleep(self._backoff(attempt))
                    continue
            wait = self._retry_wait(response) if not last else None
            if wait is not None:
                response.close()
                self.sleep(wait)
                continue
            if response.status_code >= 400:
                raise self._error(response)
            return response
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def _retry_wait(self, response: httpx.Response) -> float | None:
        """How long to wait before sending again, or None not to."""
        if response.status_code not in RETRY_STATUSES:
            return None
        asked = retry_after(response)
        if asked is None:
            return self._backoff(0)
        return asked if asked <= self.max_retry_wait else None

    @staticmethod
    def _backoff(attempt: int) -> float:
        """0.5 s, 1 s, 2 s … (up to 30 s), with jitter, when the server says nothing."""
        return min(30.0, 0.5 * 2**attempt) * random.uniform(0.75, 1.0)

    def _error(self, response: httpx.Response) -> ApiError:
        response.read()
        try:
            answer = response.json()
        except (ValueError, UnicodeDecodeError):
            answer = None
        return ApiError.from_answer(
            response.status_code,
            answer,
            response.reason_phrase,
            method=response.request.method,
            url=str(response.request.url),
            retry_after=retry_after(response),
        )

    # ------------------------------------------------------------------------ session

    def _csrf(self, method: str) -> dict[str, str]:
        """A signed-in session's writes carry its CSRF token (and, for https, a Referer of this
        server, which Django's CSRF check asks for)."""
        token = self.http.cookies.get("csrftoken")
        if method in SAFE or not token:
            return {}
        return {"X-CSRFToken": token, "Referer": f"{self.url}/"}

    def login(self, email: str, password: str) -> Any:
        return self.call("POST", "/api/auth/login/", json={"email": email, "password": password})

    # ------------------------------------------------------------------------ downloads

    def download(
        self,
        path: str,
        target: str | os.PathLike[str],
        *,
        progress: Callable[[int, int | None], None] | None = None,
        chunk_size: int = 1 << 20,
    ) -> Path:
        """Stream the answer to GET ``path`` into the file ``target`` (a directory: the file name
        the server gives). It is written beside the target and renamed once whole, so a broken
        download never leaves a truncated file under the target's name."""
        target = Path(target)
        response = self.send("GET", path, stream=True)
        try:
            if target.is_dir():
                target = target / _attachment_name(response, "download.zip")
            size = response.headers.get("Content-Length")
            total = int(size) if size and size.isdigit() else None
            handle, partial = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            try:
                with os.fdopen(handle, "wb") as out:
                    for chunk in response.iter_bytes(chunk_size):
                        out.write(chunk)
                        if progress is not None:
                            progress(response.num_bytes_downloaded, total)
                os.replace(partial, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(partial)
                raise
        finally:
            response.close()
        return target


def _query(params: dict[str, Any] | None) -> dict[str, str] | None:
    """Query parameters as the API reads them: no Nones, booleans as true / false, lists joined
    by commas."""
    if not params:
        return None
    query = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            query[name] = "true" if value else "false"
        elif isinstance(value, list | tuple | set | frozenset):
            query[name] = ",".join(str(item) for item in value)
        else:
            query[name] = str(value)
    return query


def _attachment_name(response: httpx.Response, default: str) -> str:
    disposition = response.headers.get("Content-Disposition", "")
    for part in disposition.split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "filename" and value:
            return Path(value.strip('"')).name or default
    return default


def pages(fetch: Callable[[str | None], dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every page of a cursor-paged list: ``fetch(cursor)`` answers ``{"results",
    "next_cursor"}``; the walk stops where ``next_cursor`` is null."""
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        yield page
        cursor = page.get("next_cursor")
        if not cursor:
            return
