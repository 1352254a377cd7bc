"""What a model says about itself: the custom metadata Ultralytics writes into its ONNX exports.

Exports carry string values: ``names`` as a Python dict literal (``"{0: 'scratch', 1: 'dent'}"``),
``imgsz`` as a list literal (``"[640, 640]"``), ``task``, ``stride``, ``end2end`` (``"True"``),
``author``, ``license``, ``version``, ``description``. They are parsed with `ast.literal_eval`
(never `eval`: the file comes from a user) and anything malformed is ignored, not trusted: a model
with damaged metadata still runs, with class names from the caller.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# A names literal for thousands of classes is a few tens of kB; more is not metadata.
_MAX_LITERAL = 1 << 20
MAX_CLASSES = 10_000


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    names: tuple[str, ...] | None = None  # index → name, as the model was trained
    imgsz: tuple[int, int] | None = None  # (height, width) of the training input
    task: str | None = None  # "detect", "segment", … (Ultralytics 8 and later)
    stride: int | None = None
    end2end: bool | None = None  # None: the export does not say
    author: str | None = None
    license: str | None = None
    version: str | None = None
    description: str | None = None
    raw: Mapping[str, str] = field(default_factory=dict)

    @property
    def from_ultralytics_8(self) -> bool:
        """Ultralytics 8 and later write ``task``; YOLOv5's own exporter writes only stride and
        names. Used to break ties between layouts that fit the same shape."""
        return self.task is not None


def read_metadata(raw: Mapping[str, str]) -> ModelMetadata:
    """Parse a model's custom metadata map (``session.get_modelmeta().custom_metadata_map``)."""
    text = {str(key): str(value) for key, value in raw.items()}
    return ModelMetadata(
        names=_names(text.get("names")),
        imgsz=_imgsz(text.get("imgsz")),
        task=_word(text.get("task")),
        stride=_positive_int(text.get("stride")),
        end2end=_flag(text.get("end2end")),
        author=_word(text.get("author")),
        license=_word(text.get("license")),
        version=_word(text.get("version")),
        description=_word(text.get("description")),
        raw=text,
    )


def class_names(
    metadata: ModelMetadata, given: Sequence[str] | None, count: int | None
) -> tuple[str, ...]:
    """Names for ``count`` classes (None: as many as are known): the model's own, else those
    given with the upload, else "class 0", "class 1", …; a list too short is completed the
    same way, so every class index the model can emit has a name."""
    known: Sequence[str] = metadata.names or tuple(given or ())
    total = count if count is not None else len(known)
    return tuple(known[k] if k < len(known) else f"class {k}" for k in range(total))


def _literal(value: str | None) -> Any:
    if value is None or len(value) > _MAX_LITERAL:
        return None
    try:
        return ast.literal_eval(value.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _names(value: str | None) -> tuple[str, ...] | None:
    parsed = _literal(value)
    if isinstance(parsed, list | tuple):
        parsed = dict(enumerate(parsed))
    if not isinstance(parsed, dict) or not parsed or len(parsed) > MAX_CLASSES:
        return None
    if not all(type(key) is int and 0 <= key < MAX_CLASSES for key in parsed):
        return None
    # A gap in the indices gets a generated name rather than shifting every later class.
    return tuple(str(parsed.get(k, f"class {k}")) for k in range(max(parsed) + 1))


def _imgsz(value: str | None) -> tuple[int, int] | None:
    parsed = _literal(value)
    if type(parsed) is int:
        parsed = [parsed]
    if not isinstance(parsed, list | tuple) or len(parsed) not in (1, 2):
        return None
    if not all(type(side) is int and 0 < side <= 16384 for side in parsed):
        return None
    return (parsed[0], parsed[-1])


def _positive_int(value: str | None) -> int | None:
    parsed = _literal(value)
    return parsed if type(parsed) is int and parsed > 0 else None


def _flag(value: str | None) -> bool | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    return None


def _word(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip() or None
