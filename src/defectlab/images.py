"""Decode uploaded inspection images safely and render them for the browser."""

from __future__ import annotations

import io
import math
import posixpath
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from PIL import ExifTags, Image, ImageFile, ImageOps

# The formats we accept, each with the suffix an image of it is stored under.
STORED_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "TIFF": ".tif"}
ACCEPTED_FORMATS = frozenset(STORED_SUFFIX)
# The file names taken for images wherever files arrive (uploads, zip archives, dataset imports,
# storage syncs): the suffixes of the formats above, 8 or 16 bit, which Pillow decodes and we
# accept. A suffix outside it is not an image; one inside it is still decoded before it is kept.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})

ErrorCode = Literal["unreadable", "unsupported_format", "too_many_pixels", "truncated", "empty"]

# What a browser shows correctly straight from the original bytes.
_NATIVE_MODES = {
    "JPEG": frozenset({"L", "RGB"}),
    "PNG": frozenset({"1", "L", "LA", "P", "RGB", "RGBA"}),
}
_CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}
_HIGH_DEPTH_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
# Decoded modes we know how to turn into 8-bit L/RGB/RGBA; anything else is refused at upload.
_DISPLAYABLE_MODES = _HIGH_DEPTH_MODES | {
    "1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "LAB",
}  # fmt: skip
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_STRETCH_SAMPLE = 1 << 20  # ~1M pixels gives stable percentiles and stays fast on 100 MP frames
_STRETCH_CHUNK = 1 << 21  # rows are mapped in blocks of ~2M pixels to bound float memory


class ImageError(ValueError):
    """An upload we refuse; ``str()`` is a translated sentence, ``code`` is for programs."""

    def __init__(self, message: str, code: ErrorCode) -> None:
        super().__init__(message)
        self.code: ErrorCode = code

    def __reduce__(self) -> tuple[type[ImageError], tuple[str, ErrorCode]]:
        return (type(self), (str(self), self.code))


@dataclass(frozen=True, slots=True)
class ImageInfo:
    # width/height are as displayed, i.e. AFTER EXIF orientation, so annotation coordinates
    # match the pixels render_for_display serves (it bakes any rotation into the bytes).
    width: int
    height: int
    format: str
    mode: str
    bit_depth: int
    browser_native: bool


def inspect_image(data: bytes, *, name: str, max_pixels: int) -> ImageInfo:
    """Fully decode ``data`` (first frame only) and describe it, or raise ImageError."""
    image, info, _rotation = _decode(data, name=name, max_pixels=max_pixels)
    image.close()
    return info


def is_image_name(name: str) -> bool:
    """Whether a file or object name is taken for an image (by its suffix, any case)."""
    return posixpath.splitext(name)[1].lower() in IMAGE_SUFFIXES


def upright_size(image: Image.Image) -> tuple[int, int]:
    """Width and height of an opened image as displayed, i.e. after its EXIF orientation.

    The one rule for every place that learns a size: an orientation of 5..8 swaps the sides;
    a missing, out-of-range or unreadable orientation (damaged EXIF) leaves the stored size,
    and the image is shown as stored (never refused for its EXIF)."""
    width, height = image.size
    if _orientation(image) not in _SWAPPING_ORIENTATIONS or _opened_upright(image):
        return width, height
    return height, width


def _opened_upright(image: Image.Image) -> bool:
    """True for an image whose reported size is upright already: Pillow opens a TIFF of
    orientation 5..8 with its sides swapped (and turns it on load), where every other format
    reports the stored size. Told by the TIFF's own width and length tags, not by Pillow's
    version."""
    tags = getattr(image, "tag_v2", None)
    if image.format != "TIFF" or tags is None:
        return False
    return (tags.get(256), tags.get(257)) != image.size  # ImageWidth, ImageLength


def image_size(head: bytes) -> tuple[int, int] | None:
    """Width and height as displayed (after EXIF rotation) from an image's first bytes, or
    None if they do not tell (the header is longer, or this is no image Pillow knows). Only
    the header is read: nothing is decoded."""
    try:
        with Image.open(io.BytesIO(head)) as image:
            width, height = upright_size(image)
    except Exception:  # truncated headers and hostile input make Pillow raise anything
        return None
    if width < 1 or height < 1:
        return None
    return width, height


def render_for_display(data: bytes, *, max_side: int | None = None) -> tuple[bytes, str]:
    """Return ``(bytes, content_type)`` a browser shows upright, optionally fit in max_side."""
    if max_side is not None and max_side < 1:
        raise ValueError("max_side must be positive")
    # Translators: stands in for the file name at the start of an error sentence.
    name = _("This image")
    image, info, orientation = _decode(data, name=name, max_pixels=None, draft_side=max_side)
    with image:
        fits = max_side is None or max(info.width, info.height) <= max_side
        if info.browser_native and fits:
            return data, _CONTENT_TYPES[info.format]
        shown = _to_display_mode(_upright(image, orientation, name))
        if max_side is not None:
            shown.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        return _encode(shown, image, "PNG"), "image/png"


def thumbnail(data: bytes, *, size: int = 256) -> bytes:
    """Return JPEG bytes (RGB) of the upright, tone-mapped image fit in ``size`` x ``size``."""
    if size < 1:
        raise ValueError("size must be positive")
    # Translators: stands in for the file name at the start of an error sentence.
    name = _("This image")
    image, _info, orientation = _decode(data, name=name, max_pixels=None, draft_side=size)
    with image:
        shown = _to_display_mode(_upright(image, orientation, name))
        shown.thumbnail((size, size), Image.Resampling.LANCZOS)
        if shown.mode == "RGBA":  # JPEG has no alpha: flatten on white rather than on garbage
            flat = Image.new("RGB", shown.size, "white")
            flat.paste(shown, mask=shown.getchannel("A"))
            shown = flat
        return _encode(shown.convert("RGB"), image, "JPEG", quality=85, optimize=True)


def _decode(
    data: bytes, *, name: str, max_pixels: int | None, draft_side: int | None = None
) -> tuple[ImageFile.ImageFile, ImageInfo, int | None]:
    """Open, vet the header, then load pixels; the caller closes the returned image."""
    if not data:
        raise ImageError(_("%(name)s is empty (0 bytes).") % {"name": name}, "empty")
    # Pillow only *warns* between MAX_IMAGE_PIXELS and twice that; refuse those too, for this
    # call only. (catch_warnings swaps process-wide filters: not thread-safe before 3.14.)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _too_big(name, max_pixels) from exc
        except Exception as exc:  # hostile input can make any plugin raise anything
            raise _unreadable(name) from exc
        try:
            return _vet_and_load(image, name, max_pixels, draft_side)
        except BaseException:
            image.close()
            raise


def _vet_and_load(
    image: ImageFile.ImageFile, name: str, max_pixels: int | None, draft_side: int | None
) -> tuple[ImageFile.ImageFile, ImageInfo, int | None]:
    # MPO is how Pillow names camera JPEGs carrying extra preview frames; browsers show frame 0.
    fmt = "JPEG" if image.format == "MPO" else (image.format or "")
    if fmt not in ACCEPTED_FORMATS:
        raise ImageError(
            _("%(name)s is a %(format)s image; only JPEG, PNG, BMP and TIFF images are accepted.")
            % {"name": name, "format": fmt or "?"},
            "unsupported_format",
        )
    width, height = image.size
    if width < 1 or height < 1:
        raise _unreadable(name)
    # Refuse from the header alone, before a single pixel buffer is allocated.
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(
            _("%(name)s is %(width)s×%(height)s pixels; the limit is %(limit)s pixels.")
            % {"name": name, "width": width, "height": height, "limit": _count(max_pixels)},
            "too_many_pixels",
        )
    if image.mode not in _DISPLAYABLE_MODES:
        raise ImageError(
            _("%(name)s uses the %(mode)s color mode, which we cannot display.")
            % {"name": name, "mode": image.mode},
            "unsupported_format",
        )
    mode, bit_depth = image.mode, _bit_depth(image, fmt)  # tile info is gone after load()
    try:
        if draft_side is not None and fmt == "JPEG":
            # Let libjpeg decode at 1/2..1/8 scale; keep 2x headroom for a clean downscale.
            image.draft(None, (2 * draft_side, 2 * draft_side))
        image.load()  # loads only the current (first) frame of a multi-frame TIFF
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_big(name, max_pixels) from exc
    except Exception as exc:  # "image file is truncated", zlib/struct/decoder errors, ...
        raise ImageError(
            _(
                "%(name)s is truncated or damaged: its pixel data could not be decoded. "
                "Please upload the original file again."
            )
            % {"name": name},
            "truncated",
        ) from exc
    orientation = _orientation(image)
    width, height = upright_size(image)
    native = (
        mode in _NATIVE_MODES.get(fmt, ())
        and bit_depth == 8
        and orientation == 1
        and not (fmt == "PNG" and getattr(image, "is_animated", False))  # APNG would animate
    )
    info = ImageInfo(width, height, fmt, mode, bit_depth, native)
    return image, info, orientation


def _bit_depth(image: ImageFile.ImageFile, fmt: str) -> int:
    """Bits per sample; 16-bit RGB(A) PNG/TIFF open as 8-bit modes, so read the raw mode."""
    args = image.tile[0].args if image.tile else None
    rawmode = args[0] if isinstance(args, tuple) and args else args
    if fmt in ("PNG", "TIFF") and isinstance(rawmode, str) and ";16" in rawmode:
        return 16
    if image.mode.startswith("I;16"):
        return 16
    return 32 if image.mode in ("I", "F") else 8


def _orientation(image: Image.Image) -> int | None:
    """EXIF orientation 1..8 (1 if absent or invalid); None if the EXIF block is unparseable."""
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # damaged EXIF must not sink an otherwise good image
        return None
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _upright(image: Image.Image, orientation: int | None, name: str) -> Image.Image:
    if orientation in (None, 1):
        return image
    try:
        return ImageOps.exif_transpose(image)
    except Exception as exc:
        raise _unreadable(name) from exc


def _to_display_mode(image: Image.Image) -> Image.Image:
    """Convert to 8-bit L, RGB or RGBA, tone-mapping 16/32-bit data."""
    if image.mode in _HIGH_DEPTH_MODES:
        return _stretch(image)
    if image.mode in ("L", "RGB", "RGBA"):
        return image
    if image.mode == "1":
        return image.convert("L")
    if image.mode == "La":  # premultiplied grey+alpha TIFF; Pillow converts it only to LA
        image = image.convert("LA")
    if image.mode in ("LA", "PA") or image.has_transparency_data:
        return image.convert("RGBA")
    return image.convert("RGB")


def _stretch(image: Image.Image) -> Image.Image:
    """Map the 0.5th..99.5th percentile of a single-channel image onto 0..255 (mode L)."""
    pixels = np.asarray(image)
    height, width = pixels.shape
    step = max(1, math.isqrt(pixels.size // _STRETCH_SAMPLE))
    sample = pixels[::step, ::step].astype(np.float64).ravel()
    sample = sample[np.isfinite(sample)]  # float TIFFs may hold NaN/inf
    low, high = np.percentile(sample, [0.5, 99.5]).tolist() if sample.size else (0.0, 0.0)
    if high <= low:  # constant image: place it on the nominal range instead of dividing by 0
        low, high = (0.0, 65535.0) if pixels.dtype.kind == "u" else (min(low, 0.0), max(high, 1.0))
    scale = 255.0 / (high - low)
    out = np.empty((height, width), dtype=np.uint8)
    rows = max(1, _STRETCH_CHUNK // max(width, 1))
    for top in range(0, height, rows):
        # float64: float32 extremes would overflow (and warn) once shifted and scaled
        block = np.nan_to_num(
            pixels[top : top + rows].astype(np.float64), nan=low, posinf=high, neginf=low
        )
        block -= low
        block *= scale
        np.clip(block, 0.0, 255.0, out=block)
        out[top : top + rows] = np.rint(block)
    return Image.fromarray(out)


def _encode(shown: Image.Image, source: Image.Image, fmt: str, **params: object) -> bytes:
    # Keep the colour profile only where the colour space is unchanged, so a re-encoded copy
    # looks like the original would; say None explicitly, as Pillow would copy a CMYK profile.
    same_space = shown.mode == source.mode
    params["icc_profile"] = source.info.get("icc_profile") if same_space else None
    out = io.BytesIO()
    shown.save(out, fmt, **params)
    return out.getvalue()


def _too_big(name: str, max_pixels: int | None) -> ImageError:
    # Pillow's own guard fired before we saw the size, so only the effective limit is known.
    limits = [n for n in (max_pixels, Image.MAX_IMAGE_PIXELS) if n is not None]
    return ImageError(
        _("%(name)s has more than %(limit)s pixels, which is over the limit.")
        % {"name": name, "limit": _count(min(limits, default=0))},
        "too_many_pixels",
    )


def _unreadable(name: str) -> ImageError:
    return ImageError(
        _("%(name)s is not an image we can read. Please upload a JPEG, PNG, BMP or TIFF file.")
        % {"name": name},
        "unreadable",
    )


def _count(value: int) -> str:
    return number_format(value, force_grouping=True)
