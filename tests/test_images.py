"""Tests for defectlab.images: safe decoding and browser rendering of uploads."""

from __future__ import annotations

import io
import pickle
import struct
import time
import warnings
import zlib
from collections.abc import Iterable
from functools import cache
from itertools import repeat

import numpy as np
import pytest
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import ExifTags, Image, ImageCms, ImageFile, PngImagePlugin

if not settings.configured:
    settings.configure(USE_I18N=False)

from defectlab import images
from defectlab.images import (
    ImageError,
    ImageInfo,
    inspect_image,
    render_for_display,
    thumbnail,
)

CODES = {"unreadable", "unsupported_format", "too_many_pixels", "truncated", "empty"}
LIMIT = 50_000_000


# --- fixtures built in code -------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def noise_rgb(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def dark_16bit(width: int = 64, height: int = 48) -> Image.Image:
    """A gradient that only uses 0..4095, like a 12-bit sensor stored in 16 bits."""
    ramp = np.linspace(0, 4095, width * height).reshape(height, width).astype(np.uint16)
    return Image.fromarray(ramp)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def handmade_png(
    width: int, height: int, *, bit_depth: int, color_type: int, scanlines: Iterable[bytes]
) -> bytes:
    """PNG from filter-prefixed scanline blocks, compressed incrementally to stay small."""
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(block) for block in scanlines) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            png_chunk(b"IHDR", header),
            png_chunk(b"IDAT", idat),
            png_chunk(b"IEND", b""),
        )
    )


@cache
def blank_bilevel_png(side: int) -> bytes:
    """A side x side 1-bit black PNG, built 1000 rows at a time (never the whole raster)."""
    row = 1 + (side + 7) // 8  # filter byte + packed bits
    blocks, rest = divmod(side, 1000)
    scanlines = [*repeat(bytes(row * 1000), blocks), bytes(row * rest)]
    return handmade_png(side, side, bit_depth=1, color_type=0, scanlines=scanlines)


def rotated_jpeg(orientation: int, fmt: str = "JPEG") -> bytes:
    """40x20 stored pixels: left half red, right half blue, tagged with an EXIF orientation."""
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (20, 0, 40, 20))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    return encode(image, fmt, exif=exif, **({"quality": 95} if fmt == "JPEG" else {}))


def damaged_exif_png(width: int = 40, height: int = 20) -> bytes:
    """A PNG whose EXIF, kept as a "Raw profile type exif" text chunk (as ImageMagick writes it),
    is not hex: Pillow raises on reading it, the pixels are fine."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type exif", "\nexif\n      8\nnot hex at all\n")
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def refusal(data: bytes, name: str = "scratch_01.jpg", **kwargs: int) -> ImageError:
    with pytest.raises(ImageError) as caught:
        inspect_image(data, name=name, max_pixels=kwargs.get("max_pixels", LIMIT))
    assert caught.value.code in CODES
    assert name in str(caught.value)
    return caught.value


# --- inspect_image: valid input ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mode", "native"),
    [
        ("JPEG", "RGB", True),
        ("JPEG", "L", True),
        ("PNG", "RGB", True),
        ("PNG", "RGBA", True),
        ("PNG", "P", True),
        ("BMP", "RGB", False),
        ("TIFF", "RGB", False),
        ("TIFF", "L", False),
    ],
)
def test_valid_8bit_images_are_described(fmt: str, mode: str, native: bool) -> None:
    data = encode(noise_rgb(30, 20).convert(mode), fmt)
    info = inspect_image(data, name=f"part.{fmt.lower()}", max_pixels=LIMIT)
    assert info == ImageInfo(30, 20, fmt, mode, 8, native)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16bit_grayscale_is_described_as_16_bit_and_not_browser_native(fmt: str) -> None:
    info = inspect_image(encode(dark_16bit(), fmt), name="dark.img", max_pixels=LIMIT)
    assert (info.width, info.height, info.format) == (64, 48, fmt)
    assert info.mode.startswith("I;16")
    assert info.bit_depth == 16
    assert not info.browser_native


def test_16bit_rgb_png_is_described_as_16_bit_although_pillow_opens_it_as_rgb() -> None:
    row = b"\x00" + b"\x0f\xff" * 3 * 8  # filter byte + 8 pixels of (4095, 4095, 4095)
    data = handmade_png(8, 4, bit_depth=16, color_type=2, scanlines=[row] * 4)
    info = inspect_image(data, name="rgb48.png", max_pixels=LIMIT)
    assert (info.mode, info.bit_depth, info.browser_native) == ("RGB", 16, False)
    assert render_for_display(data)[1] == "image/png"


def test_float_tiff_is_described_as_32_bit() -> None:
    data = encode(Image.fromarray(np.zeros((5, 7), np.float32)), "TIFF")
    info = inspect_image(data, name="depth.tif", max_pixels=LIMIT)
    assert (info.width, info.height, info.mode, info.bit_depth) == (7, 5, "F", 32)


def test_multiframe_tiff_is_described_by_its_first_frame_only() -> None:
    first, second = noise_rgb(30, 20), noise_rgb(300, 200, seed=1)
    data = encode(first, "TIFF", save_all=True, append_images=[second])
    info = inspect_image(data, name="stack.tif", max_pixels=30 * 20)
    assert (info.width, info.height) == (30, 20)
    assert decoded(render_for_display(data)[0]).size == (30, 20)


def test_exif_rotated_jpeg_reports_displayed_width_and_height() -> None:
    info = inspect_image(rotated_jpeg(6), name="rotated.jpg", max_pixels=LIMIT)
    assert (info.width, info.height) == (20, 40)
    assert not info.browser_native  # the browser must receive bytes with no rotation pending


@pytest.mark.parametrize(
    ("data", "upright"),
    [
        (damaged_exif_png(), (40, 20)),
        (rotated_jpeg(6), (20, 40)),
        (rotated_jpeg(8), (20, 40)),
        (rotated_jpeg(0), (40, 20)),
        (rotated_jpeg(9), (40, 20)),
        # Pillow opens a TIFF of orientation 5..8 with its sides swapped already.
        (rotated_jpeg(6, "TIFF"), (20, 40)),
        (rotated_jpeg(7, "TIFF"), (20, 40)),
        (rotated_jpeg(3, "TIFF"), (40, 20)),
    ],
    ids=[
        "damaged-exif",
        "orientation-6",
        "orientation-8",
        "orientation-0",
        "orientation-9",
        "tiff-orientation-6",
        "tiff-orientation-7",
        "tiff-orientation-3",
    ],
)
def test_every_reader_of_an_image_agrees_on_its_upright_size(
    data: bytes, upright: tuple[int, int]
) -> None:
    """One rule (``images.upright_size``): 5..8 swap the sides, anything else, damaged
    EXIF included, leaves the stored size and is never a refusal."""
    from defectlab.datasets.common import image_size as dataset_image_size

    # Upload and URL import by copy (``ingest.uploads.checked_image``).
    info = inspect_image(data, name="odd.img", max_pixels=LIMIT)
    assert (info.width, info.height) == upright
    # Storage sync, URL import by reference and the media view learning a size: the header.
    assert images.image_size(data) == upright
    # Dataset import.
    assert dataset_image_size(lambda: io.BytesIO(data), "odd.img", LIMIT) == upright
    # What the browser is shown has that size.
    assert decoded(render_for_display(data)[0]).size == upright
    assert decoded(thumbnail(data)).size == upright


def test_every_image_suffix_is_a_format_we_decode() -> None:
    """Which names are images (uploads, zips, dataset imports, storage syncs): the suffixes of
    the accepted formats, and nothing Pillow reads that we would then refuse (WebP, GIF)."""
    extensions = Image.registered_extensions()
    assert {extensions[suffix] for suffix in images.IMAGE_SUFFIXES} <= images.ACCEPTED_FORMATS
    assert {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"} == images.IMAGE_SUFFIXES
    assert images.is_image_name("line3/CAM1.TIFF") and images.is_image_name("a.b.Jpeg")
    assert not any(map(images.is_image_name, ["a.webp", "a.gif", "a.zip", "tif", "a.tif/"]))
    sixteen = encode(dark_16bit(), "TIFF")
    assert inspect_image(sixteen, name="deep.tif", max_pixels=LIMIT).bit_depth == 16


def test_exif_orientation_1_keeps_jpeg_browser_native() -> None:
    info = inspect_image(rotated_jpeg(1), name="upright.jpg", max_pixels=LIMIT)
    assert (info.width, info.height, info.browser_native) == (40, 20, True)


# --- inspect_image: refusals ------------------------------------------------------------------


def test_empty_bytes_are_refused_as_empty() -> None:
    assert refusal(b"", name="nothing.png").code == "empty"


def test_text_file_named_jpg_is_refused_as_unreadable() -> None:
    assert refusal(b"defect list\nscratch, dent\n", name="x.jpg").code == "unreadable"


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_gif_and_webp_are_refused_as_unsupported_format(fmt: str) -> None:
    error = refusal(encode(noise_rgb(16, 16), fmt), name="anim.img")
    assert error.code == "unsupported_format"
    assert fmt in str(error)


def test_truncated_jpeg_is_refused_as_truncated() -> None:
    data = encode(noise_rgb(256, 256), "JPEG", quality=90)
    error = refusal(data[: len(data) // 2], name="scratch_01.jpg")
    assert error.code == "truncated"
    assert isinstance(error.__cause__, OSError)  # Pillow's detail is kept for the logs


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "BMP"])
def test_truncated_png_tiff_and_bmp_are_refused(fmt: str) -> None:
    data = encode(noise_rgb(128, 128), fmt)
    assert refusal(data[: len(data) // 2], name=f"cut.{fmt}").code in {"truncated", "unreadable"}


def test_30000_square_png_is_refused_as_too_many_pixels_without_decoding() -> None:
    data = blank_bilevel_png(30_000)
    assert len(data) < 1_000_000
    started = time.perf_counter()
    assert refusal(data, name="bomb.png").code == "too_many_pixels"
    assert time.perf_counter() - started < 1.0


def test_pixel_limit_is_checked_from_header_before_any_pixel_is_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def forbidden_load(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", forbidden_load)
    error = refusal(blank_bilevel_png(4000), name="big.png", max_pixels=1_000_000)
    assert error.code == "too_many_pixels"
    assert "4000×4000" in str(error)


def test_pillow_bomb_warning_becomes_too_many_pixels_and_nothing_global_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The app raises Pillow's guard to DEFECTLAB_MAX_IMAGE_PIXELS; pin Pillow's own default here.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 89_478_485)
    filters_before = list(warnings.filters)
    limits_before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    data = blank_bilevel_png(10_000)  # 1e8 pixels: above MAX_IMAGE_PIXELS, below twice it
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        error = refusal(data, name="huge.png", max_pixels=10**10)
    assert error.code == "too_many_pixels"
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]
    assert list(warnings.filters) == filters_before
    assert limits_before == (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)


def test_mode_we_cannot_display_is_refused_as_unsupported_format(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(images, "_DISPLAYABLE_MODES", frozenset({"RGB"}))
    error = refusal(encode(Image.new("CMYK", (8, 8)), "JPEG"), name="cmyk.jpg")
    assert error.code == "unsupported_format"


def test_image_error_survives_pickling_with_its_code() -> None:
    error = refusal(b"", name="nothing.png")
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.code) == (str(error), error.code)


SAMPLES = {
    fmt: encode(noise_rgb(12, 9).convert(mode), fmt)
    for fmt, mode in [("JPEG", "RGB"), ("PNG", "RGBA"), ("BMP", "P"), ("TIFF", "RGB")]
}
SAMPLES["PNG16"] = encode(dark_16bit(12, 9), "PNG")
SAMPLES["JPEG-EXIF"] = rotated_jpeg(8)


@hypothesis_settings(max_examples=300, deadline=None, database=None)
@given(
    base=st.sampled_from(sorted(SAMPLES)),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
    cut=st.none() | st.integers(0, 10**6),
)
def test_damaged_files_raise_only_image_error(
    base: str, edits: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(SAMPLES[base])
    for position, value in edits:
        data[position % len(data)] = value
    if cut is not None:
        del data[cut % (len(data) + 1) :]
    try:
        inspect_image(bytes(data), name="fuzz.bin", max_pixels=4_000_000)
    except ImageError as error:
        assert error.code in CODES and "fuzz.bin" in str(error)
    else:  # whatever is accepted must also render
        render_for_display(bytes(data), max_side=8)
        thumbnail(bytes(data), size=8)


@hypothesis_settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_image_error(data: bytes) -> None:
    try:
        inspect_image(data, name="blob.jpg", max_pixels=4_000_000)
    except ImageError as error:
        assert error.code in CODES


# --- render_for_display -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mode", "content_type"),
    [
        ("JPEG", "RGB", "image/jpeg"),
        ("JPEG", "L", "image/jpeg"),
        ("PNG", "RGB", "image/png"),
        ("PNG", "RGBA", "image/png"),
        ("PNG", "P", "image/png"),
    ],
)
def test_browser_native_jpeg_and_png_are_served_unchanged(
    fmt: str, mode: str, content_type: str
) -> None:
    data = encode(noise_rgb(40, 30).convert(mode), fmt)
    assert render_for_display(data) == (data, content_type)
    assert render_for_display(data, max_side=40) == (data, content_type)


@pytest.mark.parametrize(
    ("fmt", "mode", "shown_mode"),
    [
        ("BMP", "RGB", "RGB"),
        ("BMP", "P", "RGB"),
        ("TIFF", "RGB", "RGB"),
        ("TIFF", "RGBA", "RGBA"),
        ("TIFF", "1", "L"),
        ("TIFF", "CMYK", "RGB"),
        ("JPEG", "CMYK", "RGB"),
    ],
)
def test_other_images_are_rendered_as_8bit_png(fmt: str, mode: str, shown_mode: str) -> None:
    data = encode(noise_rgb(40, 30).convert(mode), fmt)
    body, content_type = render_for_display(data)
    assert content_type == "image/png"
    shown = decoded(body)
    assert (shown.format, shown.mode, shown.size) == ("PNG", shown_mode, (40, 30))


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_dark_16bit_image_is_stretched_to_the_full_8bit_range(fmt: str) -> None:
    body, content_type = render_for_display(encode(dark_16bit(), fmt))
    shown = decoded(body)
    assert content_type == "image/png"
    assert (shown.format, shown.mode, shown.size) == ("PNG", "L", (64, 48))
    pixels = np.asarray(shown)
    assert pixels.min() <= 3 and pixels.max() >= 252
    assert len(np.unique(pixels)) > 200  # a real ramp, not a two-tone threshold


@pytest.mark.parametrize("value", [0, 1000, 65535])
def test_constant_16bit_image_renders_without_dividing_by_zero(value: int) -> None:
    flat = Image.fromarray(np.full((16, 16), value, np.uint16))
    pixels = np.asarray(decoded(render_for_display(encode(flat, "PNG"))[0]))
    assert len(np.unique(pixels)) == 1


def test_float_tiff_with_nan_and_infinity_is_tone_mapped() -> None:
    values = np.linspace(-1.0, 1.0, 100, dtype=np.float32).reshape(10, 10)
    values[0, 0], values[0, 1], values[0, 2] = np.nan, np.inf, -np.inf
    pixels = np.asarray(decoded(render_for_display(encode(Image.fromarray(values), "TIFF"))[0]))
    assert pixels.min() <= 3 and pixels.max() >= 252


def test_large_16bit_frame_is_stretched_from_a_subsample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "_STRETCH_SAMPLE", 1000)
    monkeypatch.setattr(images, "_STRETCH_CHUNK", 5000)  # exercise several row blocks
    pixels = np.asarray(decoded(render_for_display(encode(dark_16bit(300, 200), "TIFF"))[0]))
    assert pixels.shape == (200, 300)
    assert pixels.min() <= 3 and pixels.max() >= 252


def test_exif_rotated_jpeg_is_rendered_in_displayed_orientation() -> None:
    body, content_type = render_for_display(rotated_jpeg(6))
    shown = decoded(body).convert("RGB")
    assert (content_type, shown.size) == ("image/png", (20, 40))
    red, _, blue = shown.getpixel((10, 5))  # type: ignore[misc]
    assert red > 200 and blue < 60  # the stored left (red) half is now on top
    red, _, blue = shown.getpixel((10, 35))  # type: ignore[misc]
    assert blue > 200 and red < 60
    assert ExifTags.Base.Orientation not in shown.getexif()


def test_max_side_downscales_keeping_aspect_ratio() -> None:
    body, content_type = render_for_display(encode(noise_rgb(2000, 1000), "JPEG"), max_side=500)
    assert content_type == "image/png"
    assert decoded(body).size == (500, 250)


def test_reencoded_copy_keeps_the_colour_profile_when_the_colour_space_is_unchanged() -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(noise_rgb(400, 200), "JPEG", icc_profile=profile)
    assert decoded(render_for_display(data, max_side=100)[0]).info.get("icc_profile") == profile
    assert decoded(thumbnail(data, size=50)).info.get("icc_profile") == profile
    cmyk = encode(Image.new("CMYK", (8, 8)), "JPEG", icc_profile=b"not for rgb output")
    assert "icc_profile" not in decoded(render_for_display(cmyk)[0]).info


def test_render_refuses_garbage_with_image_error() -> None:
    with pytest.raises(ImageError) as caught:
        render_for_display(b"GIF89a not really")
    assert caught.value.code == "unreadable"


# --- thumbnail --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected_size"),
    [
        (encode(noise_rgb(1200, 600), "JPEG"), (256, 128)),
        (encode(noise_rgb(300, 900).convert("RGBA"), "PNG"), (85, 256)),
        (encode(dark_16bit(640, 480), "TIFF"), (256, 192)),
        (encode(noise_rgb(100, 50).convert("P"), "BMP"), (100, 50)),
        (rotated_jpeg(6), (20, 40)),
    ],
    ids=["jpeg", "rgba-png", "16bit-tiff", "small-bmp", "rotated-jpeg"],
)
def test_thumbnail_is_an_rgb_jpeg_that_fits_the_box(
    data: bytes, expected_size: tuple[int, int]
) -> None:
    shown = decoded(thumbnail(data))
    assert (shown.format, shown.mode, shown.size) == ("JPEG", "RGB", expected_size)


def test_thumbnail_of_dark_16bit_image_is_visible() -> None:
    pixels = np.asarray(decoded(thumbnail(encode(dark_16bit(), "PNG"), size=32)))
    assert pixels.max() >= 240


def test_thumbnail_flattens_transparency_onto_white() -> None:
    clear = encode(Image.new("RGBA", (10, 10), (0, 0, 0, 0)), "PNG")
    assert decoded(thumbnail(clear)).getpixel((5, 5)) == (255, 255, 255)
