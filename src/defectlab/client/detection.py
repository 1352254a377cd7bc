"""A client for the detection service (`defectlab serve-inference`, ``POST /v1/detect``), called
with an organization API key (``dlk_…``) as a bearer token or signing each request with it::

    from defectlab.client import DetectionClient

    with DetectionClient("http://127.0.0.1:8090", "dlk_…", sign=True) as detector:
        for result in detector.detect(["a.jpg", "b.jpg"], "panels", conf=0.5):
            print(result.name, [(d.class_name, d.score, d.box) for d in result.detections])

Any number of images: they are sent ``MAX_IMAGES`` to a call, and the results come back in the
caller's order. Retries (429 / 503 after ``Retry-After``, connections that never opened) are the
SDK's transport's (`Transport.send`).

Why the client builds the multipart body itself: a signed request carries the SHA-256 of its body,
so the bytes hashed must be the bytes sent. Built here, the body is one ``bytes`` value, hashed
once and sent unchanged on every attempt (a multipart stream built by httpx from file objects
would be read again per attempt, with a new boundary). Only the signature header is made anew
for each attempt: the service refuses a nonce it has seen, and it has seen that of a request it
answered 429."""

from __future__ import annotations

import mimetypes
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import httpx

from defectlab import signature
from defectlab.client.errors import ApiError
from defectlab.client.transport import Transport
from defectlab.client.types import Answer, ImageResult, ModelInfo

MAX_IMAGES = 16  # images in one call: the service's limit (serving.inputs.MAX_IMAGES)
DEFAULT_URL = "http://127.0.0.1:8090"
PATH = "/v1/detect"

Image = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]


class DetectionClient:
    """A connection to one detection service as one organization.

    ``key`` is an organization API key (``dlk_<id>_<secret>``). With ``sign=False`` it is sent
    as ``Authorization: Bearer``; with ``sign=True`` it never leaves this machine: each request
    is signed with it (`defectlab.signature`), which a key made "signed requests only" needs.
    ``timeout`` is seconds per call, ``retries`` how many times a call answered 429 / 503 (after
    its ``Retry-After``, if at most ``max_retry_wait``) or whose connection never opened is sent
    again. ``language`` (``en``, ``zh-hans``) is the language of the service's messages."""

    def __init__(
        self,
        url: str,
        key: str,
        *,
        sign: bool = False,
        timeout: float = 60.0,
        retries: int = 5,
        max_retry_wait: float = 60.0,
        language: str | None = None,
        verify: bool | str = True,
        transport: httpx.BaseTransport | None = None,
        **options: Any,
    ) -> None:
        if not url:
            raise ValueError("Give the detection service's address, e.g. " + DEFAULT_URL + ".")
        if not key or signature.split_key(key) is None:
            raise ValueError("Give an organization API key (dlk_…).")
        self.key = key.strip()
        self.sign = sign
        self._transport = Transport(
            url,
            token=None if sign else self.key,
            language=language,
            timeout=timeout,
            retries=retries,
            max_retry_wait=max_retry_wait,
            verify=verify,
            transport=transport,
            **options,
        )
        self.url = self._transport.url

    @classmethod
    def from_env(cls, **options: Any) -> DetectionClient:
        """A client for ``DEFECTLAB_INFERENCE_URL`` (default ``http://127.0.0.1:8090``) with the
        key ``DEFECTLAB_KEY``."""
        url = os.environ.get("DEFECTLAB_INFERENCE_URL") or DEFAULT_URL
        return cls(url, os.environ.get("DEFECTLAB_KEY", ""), **options)

    def detect(
        self,
        images: Iterable[Image],
        model: str,
        *,
        version: int | None = None,
        alias: str | None = None,
        conf: float | None = None,
        iou: float | None = None,
        max_det: int | None = None,
        classes: Sequence[str] | str | None = None,
        tile: bool = False,
    ) -> list[ImageResult]:
        """The detections in each of ``images`` (paths, bytes or binary file objects), in their
        order, ``index`` counting from 0 across them all. ``model`` is ``NAME``, ``NAME:ALIAS``
        or ``NAME:VERSION`` (or give ``version`` / ``alias``; the ``production`` alias when none).

        More than ``MAX_IMAGES`` images go in several calls, read from disk one call's worth at a
        time. The first call's answer names the version the alias pointed at, and the later calls
        ask for that version, so every image is seen by one model even if the alias moves
        meanwhile. An image the service cannot read has ``error`` set; a refused call raises
        ApiError, whose ``results`` are the results of the calls before it and ``remaining`` the
        images not answered (the refused call's first)."""
        listed = list(images)
        for image in listed:  # a missing file is said before any image is sent
            if isinstance(image, str | os.PathLike) and not Path(image).is_file():
                raise FileNotFoundError(f"No such image file: {os.fspath(image)}")
        results: list[ImageResult] = []
        pinned: ModelInfo | None = None
        for start in range(0, len(listed), MAX_IMAGES):
            batch = listed[start : start + MAX_IMAGES]
            try:
                if pinned is None:
                    answer = self.detect_batch(
                        batch,
                        model,
                        version=version,
                        alias=alias,
                        conf=conf,
                        iou=iou,
                        max_det=max_det,
                        classes=classes,
                        tile=tile,
                    )
                    pinned = answer.model
                else:
                    answer = self.detect_batch(
                        batch,
                        pinned.name,
                        version=pinned.version,
                        conf=conf,
                        iou=iou,
                        max_det=max_det,
                        classes=classes,
                        tile=tile,
                    )
            except ApiError as error:
                error.results = results
                error.remaining = listed[start:]
                raise
            for result in answer.results:
                results.append(replace(result, index=start + result.index, model=pinned))
        return results

    def detect_batch(
        self,
        images: Sequence[Image],
        model: str,
        *,
        version: int | None = None,
        alias: str | None = None,
        conf: float | None = None,
        iou: float | None = None,
        max_det: int | None = None,
        classes: Sequence[str] | str | None = None,
        tile: bool = False,
    ) -> Answer:
        """One call of at most ``MAX_IMAGES`` images, answered as it came (see `detect`)."""
        if not images:
            raise ValueError("Give at least one image.")
        if len(images) > MAX_IMAGES:
            raise ValueError(f"At most {MAX_IMAGES} images go in one call: use detect().")
        fields = _fields(
            model=model,
            version=version,
            alias=alias,
            conf=conf,
            iou=iou,
            max_det=max_det,
            classes=classes,
            tile=tile,
        )
        names = [_name(image) for image in images]
        parts = [(name, _read(image)) for name, image in zip(names, images, strict=True)]
        body, content_type = multipart(fields, parts)
        answer = self._transport.call(
            "POST",
            PATH,
            content=body,
            headers={"Content-Type": content_type},
            prepare=self._sign if self.sign else None,
        )
        return Answer.from_json(answer, names)

    def _sign(self, request: httpx.Request) -> None:
        """Sign the request as it goes: its method, path with query as sent, and body."""
        target = request.url.raw_path.decode("ascii")
        request.headers.update(signature.sign(self.key, request.method, target, request.content))

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> DetectionClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fields(**values: Any) -> list[tuple[str, str]]:
    """The parameters as form fields, as the service reads them (no Nones; classes comma-joined;
    tile only when asked)."""
    fields = []
    for name, value in values.items():
        if value is None or value is False:
            continue
        if value is True:
            text = "true"
        elif isinstance(value, str):
            text = value
        elif isinstance(value, Iterable):
            text = ",".join(str(item) for item in value)
        else:
            text = str(value)
        if text != "":
            fields.append((name, text))
    return fields


def _name(image: Image) -> str | None:
    if isinstance(image, str | os.PathLike):
        return os.fspath(image)
    name = getattr(image, "name", None)
    return name if isinstance(name, str) else None


def _read(image: Image) -> bytes:
    if isinstance(image, bytes):
        return image
    if isinstance(image, bytearray | memoryview):
        return bytes(image)
    if isinstance(image, str | os.PathLike):
        return Path(image).read_bytes()
    data = image.read()
    if not isinstance(data, bytes):
        raise TypeError("open image files in binary mode ('rb')")
    return data


def multipart(
    fields: list[tuple[str, str]], images: list[tuple[str | None, bytes]]
) -> tuple[bytes, str]:
    """A multipart/form-data body of ``fields`` and one ``image`` part per image, and its
    Content-Type (with the boundary, which appears in none of the parts)."""
    boundary = secrets.token_hex(16)
    while any(boundary.encode() in data for _name, data in images) or any(
        boundary in value for _field, value in fields
    ):
        boundary = secrets.token_hex(16)
    chunks: list[bytes] = []
    for field, value in fields:
        chunks += [
            f"--{boundary}\r\n".encode(),
            f'Content-Disposition: form-data; name="{field}"\r\n\r\n'.encode(),
            value.encode(),
            b"\r\n",
        ]
    for number, (name, data) in enumerate(images):
        file_name = _quoted(Path(name).name if name else f"image-{number}")
        kind = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        chunks += [
            f"--{boundary}\r\n".encode(),
            f'Content-Disposition: form-data; name="image"; filename="{file_name}"\r\n'.encode(),
            f"Content-Type: {kind}\r\n\r\n".encode(),
            data,
            b"\r\n",
        ]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def _quoted(name: str) -> str:
    """A file name as a quoted header value: no quote, backslash or line break inside it."""
    return "".join("_" if c in '"\\\r\n' else c for c in name) or "image"
