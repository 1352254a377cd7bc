"""The engine's errors: a sentence a person can read, and a stable `code` for programs.

The engine runs without Django, so it cannot translate. Each message is an English template
marked with `gettext_noop` (the catalog picks it up, `make messages`), kept beside its
parameters: the app shows ``gettext(error.template) % error.params`` in the reader's language,
and ``str(error)`` is the English sentence for logs and scripts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def gettext_noop(message: str) -> str:
    """Mark ``message`` for the translation catalog without translating it here."""
    return message


def localize(template: str, params: Mapping[str, Any], translate: Callable[[str], str]) -> str:
    """``template`` in the reader's language (``translate`` is the app's gettext), filled in."""
    text = translate(template)
    return text % params if params else text


class EngineError(ValueError):
    """Something the engine refuses; ``code`` says what, ``message`` (and ``str()``) says it in
    English, ``localized(gettext)`` in the language of the request."""

    def __init__(self, code: str, template: str, **params: Any) -> None:
        self.code = code
        self.template = template
        self.params = params
        self.message = template % params if params else template
        super().__init__(self.message)

    def localized(self, translate: Callable[[str], str]) -> str:
        return localize(self.template, self.params, translate)

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (the validation sandbox, worker pools): keep them whole.
        return (_rebuild, (type(self), self.code, self.template, self.params))


def _rebuild(kind: type[EngineError], code: str, template: str, params: dict[str, Any]) -> Any:
    return kind(code, template, **params)


class ImageInputError(EngineError):
    """An image the engine cannot take (the request's fault: the app's 400 / 413)."""


class ModelError(EngineError):
    """A model the engine cannot load or run as a detector (the upload's fault)."""


EMPTY_IMAGE = gettext_noop("The image file is empty.")
UNREADABLE_IMAGE = gettext_noop(
    "The file is not an image the detector can read (JPEG, PNG, BMP, TIFF or WebP)."
)
TRUNCATED_IMAGE = gettext_noop("The image file is cut short: part of the picture is missing.")
TOO_MANY_PIXELS = gettext_noop("The image has %(pixels)s pixels; at most %(limit)s are accepted.")
TOO_MANY_PIXELS_FOR_PILLOW = gettext_noop(
    "The image has more pixels than this server accepts (%(limit)s)."
)
BAD_ARRAY = gettext_noop(
    "An image array must be height × width (gray) or height × width × 3 or 4 (BGR, BGRA)."
)
UNREADABLE_MODEL = gettext_noop("The model could not be loaded by onnxruntime: %(reason)s")
BAD_INPUT = gettext_noop(
    "The model must take one float image input of shape batch × 3 × height × width; "
    "it takes %(shape)s."
)
BAD_OUTPUTS = gettext_noop(
    "The model's outputs %(shapes)s are not a YOLO detection or segmentation layout "
    "(YOLOv5, YOLOv8/11, end-to-end YOLOv10/YOLO26, or v8-style segmentation)."
)
RUN_FAILED = gettext_noop("The model failed while running: %(reason)s")
