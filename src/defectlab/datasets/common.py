"""What the format modules share: the export writer (archive, label order, progress, stats)
and the import checks (labels by name, numbers, shapes against their image, image sizes,
JSON and XML parsing that names the file and line at fault)."""

from __future__ import annotations

import json
import math
import posixpath
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, Any

import defusedxml
import defusedxml.ElementTree as SafeET
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from PIL import Image

from defectlab.datasets.archive import ZipSink, unsafe_name
from defectlab.datasets.model import (
    DEFAULT_COLOR,
    DatasetError,
    DatasetHeader,
    DatasetItem,
    DatasetLabel,
    ExportStats,
)
from defectlab.geometry import Shape, ShapeError, ShapeType
from defectlab.images import upright_size

# Another tool's rounding can put a vertex slightly past the border; up to this many pixels
# out it is moved onto the border, further out the file is refused as wrong.
CLIP_TOLERANCE = 1.0
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
Progress = Callable[[int], None]
_AREAS = frozenset((ShapeType.BOX, ShapeType.POLYGON))


def at_line(name: str, line: int) -> str:
    return _("%(file)s line %(line)s") % {"file": name, "line": line}


def at(name: str, entry: str) -> str:
    return f"{name}: {entry}"


def number_text(value: float, decimals: int = 6) -> str:
    """A fixed-point number without trailing zeros ("12.5", "3")."""
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


class Writer:
    """One export in progress: the zip, the class order, the counters."""

    def __init__(
        self,
        header: DatasetHeader,
        out: IO[bytes],
        *,
        include_images: bool,
        on_item: Progress | None,
    ) -> None:
        self.header = header
        self.sink = ZipSink(out)
        self.include_images = include_images
        self.on_item = on_item
        self.stats = ExportStats()
        self._index = {label.id: position for position, label in enumerate(header.labels)}

    def each(self, items: Iterable[DatasetItem]) -> Iterator[DatasetItem]:
        """The items one at a time; progress is reported once an item is fully written."""
        for item in items:
            yield item
            self.stats.items += 1
            if self.on_item is not None:
                self.on_item(self.stats.items)

    def image(self, name: str, item: DatasetItem) -> bool:
        if not self.include_images or item.image is None:
            return False
        self.sink.copy_image(name, item.image)
        self.stats.images += 1
        return True

    def label_index(self, item: DatasetItem, shape: Shape) -> int:
        try:
            return self._index[shape.label]
        except KeyError:
            raise DatasetError(
                _("A shape uses label %(label)s, which is not in the dataset's label list.")
                % {"label": shape.label},
                where=item.file_name,
            ) from None

    def shapes(
        self,
        item: DatasetItem,
        kinds: Iterable[ShapeType] = _AREAS,
        *,
        predictions: bool = False,
    ) -> list[tuple[int, Shape]]:
        """(class index, shape clipped to the image) for each shape of a kind the format
        holds; the rest, and shapes that clipping leaves without area, are counted skipped."""
        source = item.predictions if predictions else item.shapes
        width, height = item.width, item.height
        if source and (width <= 0 or height <= 0):
            raise DatasetError(_("The image's size is unknown."), where=item.file_name)
        wanted = kinds if isinstance(kinds, frozenset) else frozenset(kinds)
        result = []
        for shape in source:
            index = self._index.get(shape.label)
            if index is None:
                index = self.label_index(item, shape)  # raises: the label is not in the header
            if shape.type not in wanted:
                self.stats.skipped_shapes += 1
                continue
            x1, y1, x2, y2 = _bbox(shape)
            if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
                try:
                    shape = shape.clipped(width, height)
                except ShapeError:
                    self.stats.skipped_shapes += 1
                    continue
                x1, y1, x2, y2 = _bbox(shape)
            if shape.type is not ShapeType.POINTS and (x2 - x1 <= 0 or y2 - y1 <= 0):
                self.stats.skipped_shapes += 1
                continue
            result.append((index, shape))
        return result

    def finish(self) -> ExportStats:
        self.stats.bytes = self.sink.close()
        return self.stats


def _bbox(shape: Shape) -> tuple[float, float, float, float]:
    """`Shape.bbox`, without the work for a box: its corners are in order already."""
    if shape.type is ShapeType.BOX:
        (x1, y1), (x2, y2) = shape.points
        return x1, y1, x2, y2
    return shape.bbox()


class Names:
    """Label or tag names in first-declared order, checked once."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.colors: list[str] = []
        self._index: dict[str, int] = {}

    def add(self, raw: object, where: str, color: object = None) -> int:
        if not isinstance(raw, str) or not raw.strip() or _CONTROL.search(raw):
            raise DatasetError(
                _("A label or tag name must be non-empty text without control characters."),
                where=where,
            )
        name = raw.strip()
        if name not in self._index:
            self._index[name] = len(self.names)
            self.names.append(name)
            valid = isinstance(color, str) and re.fullmatch(r"#[0-9a-fA-F]{6}", color)
            self.colors.append(color.lower() if valid and isinstance(color, str) else DEFAULT_COLOR)
        return self._index[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.strip() in self._index


def make_header(labels: Names, tags: Names | Sequence[str] = ()) -> DatasetHeader:
    tag_names = tags.names if isinstance(tags, Names) else list(tags)
    return DatasetHeader(
        labels=[
            DatasetLabel(index, name, color)
            for index, (name, color) in enumerate(zip(labels.names, labels.colors, strict=True))
        ],
        tags=tag_names,
    )


def file_name(raw: str, where: str) -> str:
    """An image name from an annotation file, made safe to store and to write again: an
    absolute, Windows or escaping path from the machine that wrote the file keeps its last part."""
    name = raw.strip()
    if unsafe_name(name):
        name = posixpath.basename(name.replace("\\", "/"))
    if not name or name in (".", ".."):
        raise DatasetError(_("The image's file name is missing."), where=where)
    return name


def skipped_warning(skipped: Counter[str]) -> list[str]:
    """The import warning for regions of kinds we cannot hold, counted by kind."""
    if not skipped:
        return []
    count = sum(skipped.values())
    message = ngettext(
        "%(count)s region of a kind DefectLab does not support (%(kinds)s) was skipped.",
        "%(count)s regions of kinds DefectLab does not support (%(kinds)s) were skipped.",
        count,
    )
    return [message % {"count": count, "kinds": ", ".join(sorted(skipped))}]


def number(token: object, where: str) -> float:
    """A finite number from text or JSON; anything else names the entry at fault."""
    kind = type(token)
    if kind is float or kind is int:  # the common case (bool is neither)
        try:
            value = float(token)  # type: ignore[arg-type]
        except OverflowError:  # an integer beyond any float
            value = math.inf
        if value - value == 0.0:  # finite: inf - inf and nan - nan are nan
            return value
        raise DatasetError(_("Every coordinate must be a finite number."), where=where)
    if isinstance(token, str):
        if not _NUMBER.fullmatch(token.strip()):
            raise DatasetError(
                _("“%(value)s” is not a number.") % {"value": token[:40]}, where=where
            )
        value = float(token)
    elif isinstance(token, int | float) and not isinstance(token, bool):
        value = float(token)
    else:
        raise DatasetError(_("A number was expected here."), where=where)
    if not math.isfinite(value):
        raise DatasetError(_("Every coordinate must be a finite number."), where=where)
    return value


def whole(token: object, where: str) -> int:
    value = number(token, where)
    if value != int(value):
        raise DatasetError(_("A whole number was expected here."), where=where)
    return int(value)


def make_shape(
    kind: ShapeType,
    points: Sequence[tuple[float, float]],
    label: int,
    *,
    width: int,
    height: int,
    where: str,
    attributes: Mapping[str, str] | None = None,
    score: float | None = None,
) -> Shape:
    """A checked shape on a `width` x `height` image, with points rounded to 1e-6 px and
    points up to CLIP_TOLERANCE outside moved onto the border."""
    if width <= 0 or height <= 0:
        raise DatasetError(_("The image's size is unknown."), where=where)
    # Micro-pixel rounding: percent and normalised values come back as 29.999999999999996.
    points = [(round(x, 6), round(y, 6)) for x, y in points]
    try:
        shape = Shape(kind, tuple(points), label, attributes or {}, score)
        on_image = True
        for x, y in shape.points:
            if 0.0 <= x <= width and 0.0 <= y <= height:
                continue  # the common case
            on_image = False
            if not (
                -CLIP_TOLERANCE <= x <= width + CLIP_TOLERANCE
                and -CLIP_TOLERANCE <= y <= height + CLIP_TOLERANCE
            ):
                raise DatasetError(
                    _("The point (%(x)s, %(y)s) is outside the %(width)s by %(height)s image.")
                    % {
                        "x": number_text(x, 3),
                        "y": number_text(y, 3),
                        "width": width,
                        "height": height,
                    },
                    where=where,
                )
        if not on_image:
            shape = shape.clipped(width, height)
        shape.validate(width, height)
    except ShapeError as error:
        raise DatasetError(str(error), where=where) from None
    return shape


def check_pixels(width: int, height: int, where: str, max_pixels: int | None) -> None:
    """Refuse an image size, read from an image or declared by an annotation file, that is
    above the pixel limit (an image kept by reference is never read, so its size is checked
    as declared)."""
    if max_pixels is not None and width * height > max_pixels:
        raise DatasetError(_("This image has too many pixels."), where=where)


def image_size(
    open_image: Callable[[], IO[bytes]], where: str, max_pixels: int | None
) -> tuple[int, int]:
    """The upright size of an image (``images.upright_size``: a damaged EXIF orientation
    is ignored), read from its header without decoding the pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open_image() as file, Image.open(file) as image:
                width, height = upright_size(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DatasetError(_("This image has too many pixels."), where=where) from None
    except DatasetError:
        raise
    except Exception:  # hostile input can make any Pillow plugin raise anything
        raise DatasetError(_("This image cannot be read."), where=where) from None
    check_pixels(width, height, where, max_pixels)
    return width, height


def _no_constants(token: str) -> Any:
    raise ValueError(token)


def parse_json(data: bytes, name: str) -> Any:
    try:
        # NaN and Infinity are not JSON, although Python's parser accepts them by default.
        return json.loads(data, parse_constant=_no_constants)
    except json.JSONDecodeError as error:
        raise DatasetError(
            _("This is not valid JSON."), where=at_line(name, error.lineno)
        ) from None
    except (ValueError, RecursionError):
        raise DatasetError(_("This is not valid JSON."), where=name) from None


def xml_error(name: str, error: Exception) -> DatasetError:
    if isinstance(error, defusedxml.DefusedXmlException):
        return DatasetError(
            _("XML files with a document type or entity declarations are not accepted."),
            where=name,
        )
    position = getattr(error, "position", None)
    where = at_line(name, position[0]) if position else name
    return DatasetError(_("This is not well-formed XML."), where=where)


def parse_xml(data: bytes, name: str) -> Any:
    """The root element of a small XML file (one VOC annotation, say)."""
    try:
        return SafeET.fromstring(data, forbid_dtd=True)
    except (SafeET.ParseError, defusedxml.DefusedXmlException) as error:
        raise xml_error(name, error) from None


_XML_INVALID = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """Text with the characters XML 1.0 cannot carry removed."""
    return _XML_INVALID.sub("", text)


def attribute_text(value: object, where: str) -> str:
    """An attribute value from JSON: text as is, booleans and numbers as their JSON text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float) and not (
        isinstance(value, float) and not math.isfinite(value)
    ):
        return json.dumps(value)
    raise DatasetError(_("An attribute value must be text, a number or true/false."), where=where)
