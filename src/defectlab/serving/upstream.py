"""An edge mirror's calls to the center (`serving/catalog.py` answers them): httpx with the
mirror's key (a bearer token, or signed requests: then only the key's id and signing key are
held, never the key), timeouts on every call, and redirects followed only within the upstream's
own origin (scheme, host and port): one to anywhere else is refused, never followed.

Blocking: the mirror's follower thread calls it."""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from defectlab import signature

TIMEOUT = httpx.Timeout(10.0, read=30.0)
MAX_REDIRECTS = 5
_HEX64 = re.compile(r"[0-9a-f]{64}")


class UpstreamError(Exception):
    """The center did not answer as it should (unreachable, an error, an unexpected answer)."""


class _Bearer(httpx.Auth):
    def __init__(self, key: str) -> None:
        self._header = f"Bearer {key.strip()}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


class _Signed(httpx.Auth):
    def __init__(self, key: str) -> None:
        parts = signature.split_key(key)
        assert parts is not None
        self._key_id = parts[0]
        self._signing_key = signature.signing_key(key)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        target = request.url.raw_path.decode("latin-1")
        request.headers.update(
            signature.sign_with(
                self._key_id, self._signing_key, request.method, target, request.content
            )
        )
        yield request


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


class Upstream:
    """The center at ``url`` (``http(s)://host[:port][/prefix]``), called with ``key``."""

    def __init__(self, url: str, key: str, *, sign: bool = False) -> None:
        if signature.split_key(key) is None:
            raise ValueError("not a DefectLab organization API key (dlk_…)")
        base = httpx.URL(url.strip())
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError("the upstream must be an http:// or https:// address")
        self.url = str(base).rstrip("/")
        self.signed = sign
        auth: httpx.Auth = _Signed(key) if sign else _Bearer(key)
        self._origin = _origin(base)
        self._client = httpx.Client(
            base_url=self.url + "/",
            auth=auth,
            timeout=TIMEOUT,
            follow_redirects=False,
            headers={"Accept-Language": "en"},  # errors land in the edge's log
        )

    def close(self) -> None:
        self._client.close()

    @contextmanager
    def _get(self, path: str, headers: dict[str, str] | None = None) -> Iterator[httpx.Response]:
        url = httpx.URL(path.lstrip("/"))
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                request = self._client.build_request("GET", url, headers=headers)
                response = self._client.send(request, stream=True)
            except httpx.HTTPError as error:
                raise UpstreamError(f"{self.url} cannot be reached: {error}") from None
            if not response.is_redirect:
                try:
                    yield response
                except httpx.HTTPError as error:
                    raise UpstreamError(f"the answer from {self.url} was cut: {error}") from None
                finally:
                    response.close()
                return
            location = request.url.join(response.headers.get("location", ""))
            response.close()
            if _origin(location) != self._origin:
                raise UpstreamError(f"refused a redirect to another origin: {location}")
            url = location
        raise UpstreamError(f"{self.url} redirected more than {MAX_REDIRECTS} times")

    @staticmethod
    def _failure(response: httpx.Response) -> UpstreamError:
        try:
            response.read()
            message = response.json()["error"]["message"]
        except Exception:
            message = response.reason_phrase
        return UpstreamError(f"the center answered {response.status_code}: {message}")

    def alias(self, name: str, alias: str) -> dict[str, Any]:
        """The version ``name:alias`` names now at the center (serving/catalog.describe)."""
        path = f"/v1/models/{quote(name, safe='')}/aliases/{quote(alias, safe='')}"
        with self._get(path) as response:
            if response.status_code != 200:
                raise self._failure(response)
            try:
                response.read()
                return _checked(response.json(), name)
            except (ValueError, KeyError, TypeError) as error:
                raise UpstreamError(f"the center's answer cannot be read: {error}") from None

    def download(self, path: str, part: Path, sha256: str, size: int) -> int:
        """Bring the file at ``path`` into ``part``, going on from what ``part`` already holds
        (``Range``, with ``If-Range`` so a changed file comes whole); the bytes received. What
        the file holds is not checked here."""
        have = part.stat().st_size if part.exists() else 0
        if have >= size:
            return 0
        headers = {"If-Range": f'"{sha256}"', "Range": f"bytes={have}-"} if have else {}
        received = 0
        with self._get(path, headers) as response:
            if response.status_code == 206:
                if not response.headers.get("content-range", "").startswith(f"bytes {have}-"):
                    part.unlink(missing_ok=True)  # start over next time
                    raise UpstreamError("the center sent another part of the file than asked")
                mode = "ab"
            elif response.status_code == 200:
                mode, have = "wb", 0
            elif response.status_code == 416:
                part.unlink(missing_ok=True)
                raise UpstreamError("the partial download no longer fits the file; starting over")
            else:
                raise self._failure(response)
            with part.open(mode) as file:
                for chunk in response.iter_bytes():  # as it arrives: a cut keeps it
                    if have + received + len(chunk) > size:
                        raise UpstreamError(f"the center sent more than the file's {size} bytes")
                    file.write(chunk)
                    received += len(chunk)
        return received


def _checked(answer: dict[str, Any], name: str) -> dict[str, Any]:
    """The center's description of a version, checked field by field."""
    height, width = (int(v) for v in answer["input_size"])
    checked: dict[str, Any] = {
        "model": str(answer["model"]),
        "alias": str(answer["alias"]),
        "version": int(answer["version"]),
        "sha256": str(answer["sha256"]).lower(),
        "size": int(answer["size"]),
        "names": [str(n) for n in answer.get("names") or ()],
        "input_size": [height, width],
        "layout": str(answer.get("layout", "")),
        "conf": float(answer["conf"]),
        "iou": float(answer["iou"]),
        "max_det": int(answer["max_det"]),
        "file": str(answer["file"]),
    }
    if checked["model"] != name or not _HEX64.fullmatch(checked["sha256"]):
        raise ValueError("it names another model, or no SHA-256")
    if checked["size"] < 1 or not checked["file"].startswith("/") or "//" in checked["file"]:
        raise ValueError("no file to download")
    return checked
