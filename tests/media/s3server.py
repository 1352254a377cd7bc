"""A real S3 HTTP endpoint on loopback for the storage tests: moto's ThreadedMotoServer, plus two
behaviours of real stores that moto (5.2) lacks, added as a WSGI layer in front of it.

1. Presigned-URL signatures are verified. moto accepts any presigned URL, even one with a forged
   signature (its query-string branch only compares Content-Type and similar parameters), and with
   IAM checks turned on (``INITIAL_NO_AUTH_ACTION_COUNT=0``) it fails on presigned URLs with a
   500, because its checker reads only the ``Authorization`` header. So `QuerySignatureCheck`
   recomputes SigV4 query signatures the way AWS and MinIO do, from the Host header the client
   actually sent, written from the AWS specification rather than with botocore's signer, so
   it does not merely agree with the code under test. Header-signed requests pass through to
   moto, which verifies them itself once IAM checks are on (see `iam_checks`).
2. MinIO without a KMS answers ``501 NotImplemented`` to any PUT carrying an SSE header; buckets
   named in ``refuse_sse`` answer the same way. Buckets in ``ignore_sse`` drop the header instead
   and store the object unencrypted, as some S3-compatible stores do silently.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import socket
import threading
import time
from calendar import timegm
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, unquote

from moto.core.authorization import enable_iam_authentication
from moto.server import ThreadedMotoServer

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def _error(start_response: StartResponse, status: str, code: str, message: str) -> list[bytes]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()
    start_response(
        status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
    )
    return [body]


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


class QuerySignatureCheck:
    def __init__(self, app: WsgiApp, secrets: dict[str, str]) -> None:
        self.app = app
        self.secrets = secrets  # access key → secret key
        self.refuse_sse: set[str] = set()
        self.ignore_sse: set[str] = set()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        raw = environ.get("REQUEST_URI") or environ.get("RAW_URI") or environ["PATH_INFO"]
        path, _sep, query = raw.partition("?")
        params = [tuple(part.partition("=")[::2]) for part in query.split("&") if part]
        decoded = {unquote(name): unquote(value) for name, value in params}
        if "X-Amz-Signature" in decoded:
            return self._check_query(environ, start_response, path, decoded)
        bucket = path.lstrip("/").partition("/")[0]
        sse = environ["REQUEST_METHOD"] == "PUT" and "HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION" in environ
        if sse and bucket in self.ignore_sse:
            del environ["HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION"]  # moto checks no signature by default
        if sse and bucket in self.refuse_sse:
            # What MinIO answers when no KMS is configured.
            return _error(
                start_response,
                "501 Not Implemented",
                "NotImplemented",
                "A header you provided implies functionality that is not implemented",
            )
        return self.app(environ, start_response)

    def _check_query(
        self, environ: Environ, start: StartResponse, path: str, params: dict[str, str]
    ) -> Iterable[bytes]:
        access_key, _slash, scope = params["X-Amz-Credential"].partition("/")
        secret = self.secrets.get(access_key)
        if secret is None:
            return _error(start, "403 Forbidden", "InvalidAccessKeyId", "Unknown access key.")
        signed_headers = params["X-Amz-SignedHeaders"]
        header_lines = "".join(
            f"{name}:{environ.get('HTTP_' + name.upper().replace('-', '_'), '').strip()}\n"
            for name in signed_headers.split(";")
        )
        query = "&".join(
            f"{_encode(name)}={_encode(value)}"
            for name, value in sorted(params.items())
            if name != "X-Amz-Signature"
        )
        canonical = "\n".join(
            [
                environ["REQUEST_METHOD"],
                path,
                query,
                header_lines,
                signed_headers,
                "UNSIGNED-PAYLOAD",
            ]
        )
        amz_date = params["X-Amz-Date"]
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256",
                amz_date,
                scope,
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )
        key = ("AWS4" + secret).encode()
        for part in scope.split("/"):
            key = _hmac(key, part)
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, params["X-Amz-Signature"]):
            return _error(
                start,
                "403 Forbidden",
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        signed_at = timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
        if time.time() > signed_at + int(params["X-Amz-Expires"]):
            return _error(start, "403 Forbidden", "AccessDenied", "Request has expired")
        return self.app(environ, start)


class LoopbackS3:
    """moto's server on 127.0.0.1 at a free port, behind `QuerySignatureCheck`."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        self.host, self.port = self._server.get_host_and_port()
        # ThreadedMotoServer has no hook for middleware; werkzeug's server looks up `app` on
        # every request, so wrapping it after start (before any request) is enough.
        wsgi = self._server._server
        assert wsgi is not None
        self.check = QuerySignatureCheck(wsgi.app, secrets)
        wsgi.app = self.check

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        self._server.stop()

    @staticmethod
    @contextmanager
    def iam_checks() -> Iterator[None]:
        """moto verifies header signatures and IAM policies only while this is on (it runs in
        this process, so its switch is a module global): unknown keys get InvalidAccessKeyId,
        wrong secrets SignatureDoesNotMatch, keys without a policy AccessDenied."""
        with enable_iam_authentication():
            yield


class BlackHole:
    """A storage that hangs: a TCP server on loopback that accepts every connection and never
    answers, counting the connections it was offered. ``close`` lets go of them all (their
    clients see the connection closed) and stops listening."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self._listener.getsockname()[1]
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._accept, name="black-hole", daemon=True).start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                connection, _address = self._listener.accept()
            except OSError:
                return  # closed
            with self._changed:
                self.accepted += 1
                self._held.append(connection)
                self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 30) -> bool:
        """Whether ``count`` connections arrived (waiting at most ``timeout`` seconds)."""
        with self._changed:
            return self._changed.wait_for(lambda: self.accepted >= count, timeout)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._listener.close()
        with self._changed:
            for connection in self._held:
                connection.close()
