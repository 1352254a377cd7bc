"""Image bytes to the pixels a detector sees: 8-bit BGR in the upright (EXIF-applied) frame.

Decoding is OpenCV's ``cv2.imdecode(..., cv2.IMREAD_COLOR)``, the call behind the training
side's ``cv2.imread``, so a model sees the same pixels it was trained on:

- gray images are repeated into three channels;
- 16-bit PNG and TIFF keep their high byte (value // 256), as ``cv2.imread`` hands them to
  training; an image using only the low bits of its 16 (a 12-bit sensor) looks dark to the model
  exactly as it did when it was trained. (The browser view stretches contrast; that is display.)
- alpha is dropped.

The EXIF orientation is applied here, from the tag Pillow reads, because annotations live in
the upright frame (what Pillow's ``ImageOps.exif_transpose`` shows); OpenCV's own handling
differs between versions and formats, so it is switched off (``IMREAD_IGNORE_ORIENTATION``),
except that TIFF comes out of libtiff already turned, as it does from Pillow.

Before anything is decoded, the header (read by Pillow, which decodes nothing yet) must name a
format we take and a size within the pixel limit, since ``cv2.imdecode`` allocates whatever
the header asks for; a JPEG must reach its end-of-image marker and a PNG its IEND chunk, since
OpenCV fills a cut-short picture with gray instead of failing.
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from PIL import ExifTags, Image

from defectlab.inference.engine.errors import (
    BAD_ARRAY,
    EMPTY_IMAGE,
    TOO_MANY_PIXELS,
    TOO_MANY_PIXELS_FOR_PILLOW,
    TRUNCATED_IMAGE,
    UNREADABLE_IMAGE,
    ImageInputError,
)

DEFAULT_MAX_PIXELS = 150_000_000  # the app passes settings.MAX_IMAGE_PIXELS
FORMATS = frozenset({"JPEG", "PNG", "BMP", "TIFF", "WEBP", "MPO"})


def read_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """``data`` (an image file's bytes) as an upright H×W×3 uint8 BGR array; raises
    ImageInputError for an empty, unreadable, cut-short or too large image."""
    if not data:
        raise ImageInputError("empty", EMPTY_IMAGE)
    orientation = _check_header(data, max_pixels)
    buffer = np.frombuffer(data, dtype=np.uint8)
    with np.errstate(all="ignore"):
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None or image.size == 0:
        raise ImageInputError("unreadable", UNREADABLE_IMAGE)
    return upright(image, orientation)


def _check_header(data: bytes, max_pixels: int) -> int:
    """The EXIF orientation (1..8) after checking format, size and completeness."""
    try:
        with warnings.catch_warnings():
            # The limit is ours (max_pixels); Pillow's global one must not decide instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as header:
                kind = header.format or ""
                width, height = header.size
                orientation = _orientation(header)
    except Image.DecompressionBombError:
        # Over twice Pillow's own limit (the app raises that to its setting at start-up).
        limit = min(max_pixels, 2 * (Image.MAX_IMAGE_PIXELS or max_pixels))
        raise ImageInputError("too_many_pixels", TOO_MANY_PIXELS_FOR_PILLOW, limit=limit) from None
    except Exception as error:  # hostile headers make Pillow raise anything
        raise ImageInputError("unreadable", UNREADABLE_IMAGE) from error
    if kind not in FORMATS or width < 1 or height < 1:
        raise ImageInputError("unreadable", UNREADABLE_IMAGE)
    if width * height > max_pixels:
        raise ImageInputError(
            "too_many_pixels", TOO_MANY_PIXELS, pixels=width * height, limit=max_pixels
        )
    if (kind in ("JPEG", "MPO") and not jpeg_complete(data)) or (
        kind == "PNG" and not png_complete(data)
    ):
        raise ImageInputError("truncated", TRUNCATED_IMAGE)
    # OpenCV reads TIFF through libtiff, which turns it by its orientation tag whatever the
    # flags say (and Pillow does too): it arrives upright already.
    return 1 if kind == "TIFF" else orientation


def _orientation(image: Image.Image) -> int:
    """EXIF orientation 1..8; 1 when absent, out of range or unreadable (as the app's images)."""
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # damaged EXIF must not sink an otherwise good image
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def jpeg_complete(data: bytes) -> bool:
    """Whether a JPEG holds its end-of-image marker after its first scan.

    The marker segments before the scan are walked by their lengths, so an EXIF thumbnail (a
    whole JPEG inside APP1, with its own end marker) is skipped and cannot vouch for a main
    picture that is cut short. Inside scan data a 0xFF byte is always followed by 0x00 or a
    restart marker, so the first 0xFFD9 after the scan starts is the real end."""
    if not data.startswith(b"\xff\xd8"):
        return False
    at = 2
    end = len(data)
    while at + 4 <= end:
        if data[at] != 0xFF:
            return False
        marker = data[at + 1]
        if marker == 0xFF:  # fill bytes before a marker
            at += 1
            continue
        if marker == 0xDA:  # start of scan: the entropy-coded data follows
            return data.find(b"\xff\xd9", at + 2) >= 0
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            at += 2
            continue
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if length < 2:
            return False
        at += 2 + length
    return False


def png_complete(data: bytes) -> bool:
    """Whether a PNG ends with its IEND chunk (only trailing bytes after it are tolerated)."""
    return data.rfind(b"IEND\xae\x42\x60\x82") >= 8


# EXIF orientation → the operations that turn the stored pixels upright, as Pillow's
# ImageOps.exif_transpose does: flips and transposes in cv2's terms.
def upright(image: np.ndarray, orientation: int) -> np.ndarray:
    """The stored pixels ``image`` turned by EXIF ``orientation`` (1..8) into the upright frame."""
    if orientation == 2:
        return cv2.flip(image, 1)
    if orientation == 3:
        return cv2.rotate(image, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(image, 0)
    if orientation == 5:
        return cv2.transpose(image)
    if orientation == 6:
        return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.rotate(cv2.transpose(image), cv2.ROTATE_180)
    if orientation == 8:
        return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return image


def as_bgr(array: np.ndarray, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An array a caller decoded itself, as the engine's H×W×3 uint8 BGR: gray (H×W or H×W×1)
    is repeated, BGRA loses alpha, 16-bit keeps the high byte (as ``IMREAD_COLOR`` does)."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageInputError("bad_array", BAD_ARRAY)
    height, width = array.shape[:2]
    if height < 1 or width < 1:
        raise ImageInputError("bad_array", BAD_ARRAY)
    if height * width > max_pixels:
        raise ImageInputError(
            "too_many_pixels", TOO_MANY_PIXELS, pixels=height * width, limit=max_pixels
        )
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ImageInputError("bad_array", BAD_ARRAY)
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2BGR)
    if array.shape[2] == 4:
        return cv2.cvtColor(array, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(array)
