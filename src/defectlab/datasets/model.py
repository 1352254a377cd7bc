"""The neutral dataset model that every format adapter writes from and reads into.

An export is a `DatasetHeader` (labels and tag names) plus a stream of `DatasetItem`s, one per
image, whose shapes are `geometry.Shape`s in original-image pixels with `label` set to a
`DatasetLabel.id`. An import gives back the same types inside an `ImportedDataset`: its header's
labels are numbered 0, 1, 2, ... in the order the file declares them, and every imported shape's
`label` is that position, so the caller maps label *names* to its own label ids afterwards.
Normalised, percent and 1-based coordinates never leave the format modules.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from django.utils.translation import gettext as _

from defectlab.errors import Invalid
from defectlab.geometry import Shape

if TYPE_CHECKING:
    from defectlab.datasets.archive import Source

SPLITS = ("train", "val", "test")
DEFAULT_COLOR = "#e53935"
ImageOpener = Callable[[], IO[bytes]]
# Control characters break XML, CSV and YAML alike; no person means one in a label name.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class DatasetError(Invalid):
    """A dataset we cannot write or read. `problem` is the translated sentence, `where` names
    the file and the line or entry at fault (e.g. ``labels/train/a.txt line 3``); `str()` and
    `message` join the two for the person who sent the file."""

    code = "invalid_dataset"

    def __init__(self, problem: str, *, where: str | None = None) -> None:
        self.problem = problem
        self.where = where
        message = problem
        if where:
            message = _("%(where)s: %(problem)s") % {"where": where, "problem": problem}
        super().__init__(message, details={"where": where} if where else None)

    def __reduce__(self) -> tuple[Any, ...]:
        # The default pickling replays only args and would lose the keyword-only `where`.
        return (functools.partial(type(self), where=self.where), (self.problem,))


@dataclass(frozen=True, slots=True)
class DatasetLabel:
    id: int
    name: str
    color: str = DEFAULT_COLOR


@dataclass(frozen=True, slots=True)
class DatasetHeader:
    """What a dataset declares once: its labels (their order is the class order of YOLO,
    COCO and the other formats) and the image-level tag names."""

    labels: Sequence[DatasetLabel]
    tags: Sequence[str] = ()
    name: str = "dataset"

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "tags", tuple(self.tags))
        for kind, names in (("label", [label.name for label in self.labels]), ("tag", self.tags)):
            for name in names:
                if not name.strip() or _CONTROL.search(name) or name != name.strip():
                    raise ValueError(f"invalid {kind} name {name!r}")
            if len(set(names)) != len(names):
                raise ValueError(f"duplicate {kind} names in {names!r}")
        if len({label.id for label in self.labels}) != len(self.labels):
            raise ValueError("duplicate label ids")

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]


@dataclass(slots=True)
class DatasetItem:
    """One image and what is drawn on it.

    `key` is a stable unique id (a task id as text); `file_name` is the image's path inside
    the archive's image folder, unique within its split. `width`/`height` are the upright
    image's size in pixels (0 only on import when neither the file nor an image tells it).
    `image` opens the image bytes lazily; `image_ref` is where the image lives when its bytes
    are not in the archive (a URL written into Label Studio JSON, or read from it).
    """

    key: str
    file_name: str
    width: int
    height: int
    shapes: Sequence[Shape] = ()
    tags: Sequence[str] = ()
    split: str | None = None
    image: ImageOpener | None = None
    predictions: Sequence[Shape] = ()
    image_ref: str | None = None

    def __post_init__(self) -> None:
        if self.split is not None and self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or None, got {self.split!r}")
        if self.width < 0 or self.height < 0:
            raise ValueError(f"image size must not be negative, got {self.width}x{self.height}")


@dataclass(slots=True)
class ExportStats:
    items: int = 0
    images: int = 0
    bytes: int = 0  # size of the written archive
    skipped_shapes: int = 0  # shapes the format cannot hold (points in YOLO, say)


@dataclass
class ImportedDataset:
    """A fully parsed and checked dataset. Image openers read from the source archive or
    folder, so use it as a context manager (or call `close`) once the images are stored."""

    header: DatasetHeader
    items: list[DatasetItem]
    warnings: list[str] = field(default_factory=list)
    source: Source | None = field(default=None, repr=False)

    @property
    def labels(self) -> list[str]:
        """Label names; a shape's `label` is an index into this list."""
        return self.header.label_names

    def close(self) -> None:
        if self.source is not None:
            self.source.close()

    def __enter__(self) -> ImportedDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
