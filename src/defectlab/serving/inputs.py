"""What a detection request asks: its images and its parameters, read from any of the three
bodies `/v1/detect` takes — multipart (``image`` parts), one image as the body, or JSON with
base64 images or URLs. Images stay in memory: nothing a caller sends is written anywhere (a
multipart part is read into memory, never spooled to a temporary file)."""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _
from python_multipart.multipart import MultipartParser, parse_options_header

from defectlab.errors import DefectLabError, Invalid, TooLarge

MAX_IMAGES = 16
PARAMETERS = ("model", "version", "alias", "conf", "iou", "max_det", "classes", "tile")
IMAGE_TYPES = ("image/", "application/octet-stream")


class UnsupportedMediaType(DefectLabError):
    status = 415
    code = "unsupported_media_type"


@dataclass(slots=True)
class Asked:
    model: str
    version: int | None = None
    alias: str | None = None
    conf: float | None = None
    iou: float | None = None
    max_det: int | None = None
    classes: tuple[str, ...] | None = None
    tile: bool = False
    images: list[bytes] = field(default_factory=list)
    urls: list[tuple[int, str]] = field(default_factory=list)  # (position, address)

    @property
    def count(self) -> int:
        return len(self.images) + len(self.urls)


def _bad(name: str, message: str) -> Invalid:
    return Invalid(message, code="invalid_parameter", details={"field": name})


def _number(name: str, value: Any, low: float, high: float, whole: bool = False) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value) if not whole else int(str(value).strip())
    except (TypeError, ValueError):
        raise _bad(name, _("%(name)s must be a number.") % {"name": name}) from None
    if not math.isfinite(number) or not low <= number <= high:
        raise _bad(
            name,
            _("%(name)s must be between %(low)s and %(high)s.")
            % {"name": name, "low": low, "high": high},
        )
    return number


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise _bad(name, _("%(name)s must be true or false.") % {"name": name})


def parameters(values: dict[str, Any]) -> Asked:
    """The parameters of a request, checked; ``model`` may say ``name:alias`` or ``name:3``."""
    unknown = sorted(set(values) - set(PARAMETERS) - {"images"})
    if unknown:
        raise _bad(unknown[0], _("Unknown parameter: %(name)s.") % {"name": unknown[0]})
    model = str(values.get("model") or "").strip()
    if not model:
        raise _bad("model", _("Name the model: model=NAME, NAME:ALIAS or NAME:VERSION."))
    for name in ("model", "alias"):
        if any(ord(c) < 32 or ord(c) == 127 for c in str(values.get(name) or "")):
            raise _bad(name, _("%(name)s may not hold control characters.") % {"name": name})
    asked = Asked(model=model)
    name, colon, after = model.rpartition(":")
    # NAME:ALIAS or NAME:VERSION, unless the version or alias is given on its own (then the
    # whole text is the name: a model may be called "cam:2").
    if colon and name and values.get("version") in (None, "") and values.get("alias") in (None, ""):
        asked.model = name
        if after.isascii() and after.isdigit():
            values = {**values, "version": values.get("version", after)}
        else:
            values = {**values, "alias": values.get("alias", after)}
    if values.get("version") not in (None, ""):
        asked.version = int(_number("version", values["version"], 1, 2**31 - 1, whole=True))
    if values.get("alias") not in (None, ""):
        asked.alias = str(values["alias"]).strip()[:50]
    if asked.version is not None and asked.alias is not None:
        raise _bad("version", _("Name a version or an alias, not both."))
    if values.get("conf") not in (None, ""):
        asked.conf = _number("conf", values["conf"], 0.0, 1.0)
    if values.get("iou") not in (None, ""):
        asked.iou = _number("iou", values["iou"], 0.0, 1.0)
    if values.get("max_det") not in (None, ""):
        asked.max_det = int(_number("max_det", values["max_det"], 1, 10000, whole=True))
    classes = values.get("classes")
    if classes not in (None, "", []):
        items = classes if isinstance(classes, list) else str(classes).split(",")
        names = tuple(str(item).strip() for item in items if str(item).strip())
        if not names or len(names) > 1000:
            raise _bad("classes", _("classes must name the model's classes, comma-separated."))
        asked.classes = names
    asked.tile = _flag("tile", values.get("tile", False))
    return asked


def read(content_type: str, body: bytes, query: dict[str, str], max_image: int) -> Asked:
    """The request's images and parameters (query parameters, and the body's own)."""
    media_type, options = parse_options_header(content_type or "")
    kind = media_type.decode("latin-1").lower()
    if kind == "multipart/form-data":
        fields, images = _multipart(body, options.get(b"boundary", b""))
        clash = sorted(set(fields) & set(query))
        if clash:
            raise _bad(clash[0], _("%(name)s is given twice.") % {"name": clash[0]})
        asked = parameters({**query, **fields})
        asked.images = images
    elif kind == "application/json":
        asked = _json(body, query)
    elif kind.startswith(IMAGE_TYPES):
        asked = parameters(dict(query))
        asked.images = [body] if body else []
    else:
        raise UnsupportedMediaType(
            _(
                "Send the image as multipart/form-data (“image” parts), as the body "
                "(image/jpeg, image/png, …) or as JSON, not as %(type)s."
            )
            % {"type": kind or _("a body without a content type")}
        )
    if asked.count == 0:
        raise Invalid(_("Send at least one image."), code="no_images")
    if asked.count > MAX_IMAGES:
        raise too_many_images()
    for image in asked.images:
        if len(image) > max_image:
            raise image_too_large(max_image)
    return asked


def too_many_images() -> Invalid:
    return Invalid(
        _("Send at most %(count)s images in one request.") % {"count": MAX_IMAGES},
        code="too_many_images",
    )


def image_too_large(max_image: int) -> TooLarge:
    return TooLarge(
        _("An image is larger than this organization may send (%(mb)s MB).")
        % {"mb": round(max_image / 1024 / 1024, 1)},
        code="image_too_large",
    )


def _json(body: bytes, query: dict[str, str]) -> Asked:
    # A body of thousands of tiny objects or items costs far more memory parsed than read: the
    # document asked for has at most MAX_IMAGES image objects and a short list of classes.
    if body.count(b"{") > 4 * MAX_IMAGES + 16 or body.count(b",") > 4000:
        raise Invalid(_("The body holds more than a detection request can."), code="invalid_json")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Invalid(_("The body is not valid JSON."), code="invalid_json") from None
    if not isinstance(document, dict):
        raise Invalid(_("The body must be a JSON object."), code="invalid_json")
    clash = sorted(set(document) & set(query))
    if clash:
        raise _bad(clash[0], _("%(name)s is given twice.") % {"name": clash[0]})
    asked = parameters({**query, **document})
    images = document.get("images")
    if not isinstance(images, list):
        raise _bad("images", _('images must be a list of {"data": base64} or {"url": …}.'))
    for position, item in enumerate(images):
        if isinstance(item, dict) and set(item) == {"data"} and isinstance(item["data"], str):
            try:
                asked.images.append(base64.b64decode(item["data"], validate=True))
            except (binascii.Error, ValueError):
                raise _bad(
                    "images", _("Image %(n)s is not valid base64.") % {"n": position}
                ) from None
        elif isinstance(item, dict) and set(item) == {"url"} and isinstance(item["url"], str):
            asked.urls.append((position, item["url"]))
        else:
            raise _bad("images", _('images must be a list of {"data": base64} or {"url": …}.'))
    return asked


def _multipart(body: bytes, boundary: bytes) -> tuple[dict[str, str], list[bytes]]:
    """The form fields and the ``image`` parts of a multipart body, read in memory."""
    if not boundary:
        raise Invalid(_("The multipart body has no boundary."), code="invalid_multipart")
    fields: dict[str, str] = {}
    images: list[bytes] = []
    part: dict[str, Any] = {}

    def on_part_begin() -> None:
        part.clear()
        part.update(headers={}, data=bytearray(), header=b"", value=b"")

    def on_header_field(data: bytes, start: int, end: int) -> None:
        part["header"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        part["value"] += data[start:end]

    def on_header_end() -> None:
        part["headers"][part["header"].lower()] = part["value"]
        part["header"], part["value"] = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part["data"] += data[start:end]

    def on_part_end() -> None:
        _disposition, options = parse_options_header(
            part["headers"].get(b"content-disposition", b"")
        )
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name == "image":
            if len(images) == MAX_IMAGES:  # stop reading at once: the answer is known
                raise too_many_images()
            images.append(bytes(part["data"]))
        elif b"filename" in options:
            raise _bad(name, _("Send images in parts named “image”."))
        elif name in fields:
            raise _bad(name, _("%(name)s is given twice.") % {"name": name})
        elif len(fields) < 20:
            fields[name] = bytes(part["data"]).decode("utf-8", "replace")

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except DefectLabError:
        raise
    except Exception:
        raise Invalid(_("The multipart body cannot be read."), code="invalid_multipart") from None
    return fields, images
