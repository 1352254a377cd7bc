"""What an edge mirror asks the center for (`serving/mirror.py` is the mirror): the version an
alias names now, and that version's ``.onnx`` file.

- ``GET /v1/models/{name}/aliases/{alias}``: the version (number, SHA-256, size, classes, input
  size, layout, thresholds) and the path of its file;
- ``GET /v1/models/{name}/versions/{number}/file``: the file, streamed from the organization's
  storage, with ``ETag`` (its SHA-256), ``Content-Length`` and ``Range: bytes=N-`` (206 and
  ``Content-Range``), so a download cut in the middle resumes where it stopped.

Both want a key with the ``models`` scope (a ``detect`` key is refused with 403), authenticated
and answered as `/v1/detect` is (bearer or signed, errors in the caller's language); another
organization's model, or one without a ready version there, answers 404."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from django.utils import translation
from django.utils.translation import gettext as _
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from defectlab.errors import DefectLabError, NotFound
from defectlab.inference.models import ModelVersion
from defectlab.inference.registry import thresholds
from defectlab.media.storage import default_storage
from defectlab.serving.access import Caller, check_body
from defectlab.serving.app import Service, caller_of, failure, language
from defectlab.serving.loaded import aliased_version, ready_version
from defectlab.serving.models import Scope

CHUNK = 64 * 1024
_RANGE = re.compile(r"bytes=(\d{1,18})-(\d{0,18})")


def file_path(name: str, number: int) -> str:
    return f"/v1/models/{quote(name, safe='')}/versions/{number}/file"


def describe(version: ModelVersion, alias: str) -> dict[str, Any]:
    """What a mirror needs to load ``version`` and answer with it as the center does (the
    thresholds the center uses: the organization's saved sensitivity over the version's)."""
    conf, iou, max_det = thresholds(version)
    return {
        "model": version.model.name,
        "alias": alias,
        "version": version.number,
        "sha256": version.sha256,
        "size": version.size,
        "names": list(version.names or ()),
        "input_size": [version.input_height, version.input_width],
        "layout": version.layout,
        "conf": conf,
        "iou": iou,
        "max_det": max_det,
        "file": file_path(version.model.name, version.number),
    }


def aliased(organization: int, name: str, alias: str) -> dict[str, Any]:
    return describe(aliased_version(organization, name, alias), alias)


def version_of(organization: int, name: str, number: int) -> ModelVersion:
    version = ready_version(organization, name, number)
    if not default_storage().exists(version.file_key):
        raise NotFound(_("The model's file is no longer in storage; upload it again."))
    return version


def requested_range(header: str, size: int) -> tuple[int, int] | None:
    """``(first, last)`` byte of a ``Range: bytes=N-`` or ``bytes=N-M`` header, None for the
    whole file; DefectLabError (416) when it cannot be served."""
    header = header.strip()
    if not header:
        return None
    match = _RANGE.fullmatch(header.replace(" ", ""))
    first = int(match.group(1)) if match else -1
    last = int(match.group(2)) if match and match.group(2) else size - 1
    if match is None or first >= size or last < first:
        error = DefectLabError(
            _("This range of the file cannot be served: the file has %(size)s bytes.")
            % {"size": size},
            code="range_not_satisfiable",
            details={"size": size},
        )
        error.status = 416
        raise error
    return first, min(last, size - 1)


def _chunks(key: str, first: int, length: int) -> Iterator[bytes]:
    with default_storage().open(key) as file:
        if first:
            file.seek(first)
        left = length
        while left > 0:
            chunk = file.read(min(CHUNK, left))
            if not chunk:
                return  # the stored file is shorter than its record: the client sees it cut
            left -= len(chunk)
            yield chunk


async def _caller(request: Request, service: Service) -> Caller:
    caller = await caller_of(request, service, Scope.MODELS)
    check_body(caller, b"")
    return caller


async def alias(request: Request) -> Response:
    service: Service = request.app.state.service
    lang = language(request)
    with translation.override(lang):
        try:
            caller = await _caller(request, service)
            answer = await service.blocking(
                lang,
                aliased,
                caller.organization_id,
                request.path_params["name"],
                request.path_params["alias"],
            )
            return JSONResponse(answer)
        except DefectLabError as error:
            return failure(error)


async def version_file(request: Request) -> Response:
    service: Service = request.app.state.service
    lang = language(request)
    with translation.override(lang):
        try:
            caller = await _caller(request, service)
            version = await service.blocking(
                lang,
                version_of,
                caller.organization_id,
                request.path_params["name"],
                request.path_params["number"],
            )
            etag = f'"{version.sha256}"'
            headers = {"ETag": etag, "Accept-Ranges": "bytes"}
            wanted = request.headers.get("range", "")
            if_range = request.headers.get("if-range", "").strip()
            if if_range and if_range != etag:
                wanted = ""  # the client holds part of another file: send this one whole
            span = requested_range(wanted, version.size)
        except DefectLabError as error:
            if error.status == 416:
                size = (error.details or {}).get("size")
                return failure(error, {"Content-Range": f"bytes */{size}"})
            return failure(error)
    first, last = span if span is not None else (0, version.size - 1)
    length = last - first + 1
    headers["Content-Length"] = str(length)
    if span is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{version.size}"
    return StreamingResponse(
        _chunks(version.file_key, first, length) if length > 0 else iter(()),
        status_code=206 if span is not None else 200,
        media_type="application/octet-stream",
        headers=headers,
    )
