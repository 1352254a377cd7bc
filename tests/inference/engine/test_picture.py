"""Image bytes become upright 8-bit BGR as the training side reads them; bad files are refused."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from defectlab.inference.engine.errors import ImageInputError
from defectlab.inference.engine.picture import as_bgr, jpeg_complete, read_image


def encoded(image: Image.Image, kind: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


def asymmetric(width: int = 40, height: int = 24) -> Image.Image:
    """An RGB image whose every flip and turn looks different: a gradient and a corner mark."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    pixels[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    pixels[:4, :6, 2] = 255
    return Image.fromarray(pixels)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("kind", ["PNG", "WEBP"])
def test_exif_orientation_gives_the_upright_frame(orientation: int, kind: str) -> None:
    image = asymmetric()
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(image, kind, exif=exif, lossless=True)  # pixels compare exactly
    with Image.open(io.BytesIO(data)) as opened:
        upright = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
    if orientation >= 5:
        assert upright.shape[:2] == (40, 24)  # the sides swap: the test turns something
    np.testing.assert_array_equal(read_image(data)[:, :, ::-1], upright)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("depth", [8, 16])
def test_tiff_orientation_gives_the_upright_frame(orientation: int, depth: int) -> None:
    stored = np.asarray(asymmetric())
    image = (
        Image.fromarray(stored) if depth == 8 else Image.fromarray(stored[..., 0] * np.uint16(257))
    )
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(image, "TIFF", exif=exif)
    with Image.open(io.BytesIO(data)) as opened:
        upright = np.asarray(ImageOps.exif_transpose(opened))
    if depth == 16:
        upright = np.repeat((upright >> 8).astype(np.uint8)[..., None], 3, axis=2)
    np.testing.assert_array_equal(read_image(data)[:, :, ::-1], upright)


def test_exif_rotated_jpeg_decodes_upright() -> None:
    image = asymmetric(60, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90° clockwise
    pixels = read_image(encoded(image, "JPEG", exif=exif, quality=95))
    assert pixels.shape == (60, 20, 3)
    # The blue corner mark (top-left when stored) is top-right once turned clockwise.
    assert pixels[:5, -3:, 0].mean() > 200 and pixels[:5, :3, 0].mean() < 60


def test_gray_becomes_three_equal_channels() -> None:
    gray = Image.fromarray(np.arange(0, 250, 10, dtype=np.uint8).reshape(5, 5))
    pixels = read_image(encoded(gray, "PNG"))
    assert pixels.shape == (5, 5, 3)
    assert (pixels[..., 0] == pixels[..., 2]).all()
    np.testing.assert_array_equal(pixels[..., 1], np.asarray(gray))


def test_sixteen_bit_png_keeps_the_high_byte_as_cv2_imread_does(tmp_path) -> None:
    values = np.array([[0, 255, 256, 4095], [32768, 40000, 65280, 65535]], dtype=np.uint16)
    ok, data = cv2.imencode(".png", values)
    assert ok
    pixels = read_image(data.tobytes())
    np.testing.assert_array_equal(pixels[..., 0], values >> 8)
    path = tmp_path / "sixteen.png"
    path.write_bytes(data.tobytes())
    np.testing.assert_array_equal(pixels, cv2.imread(str(path)))  # what training was fed


def test_sixteen_bit_tiff_is_read() -> None:
    values = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1024).astype(np.uint16)
    ok, data = cv2.imencode(".tiff", values)
    assert ok
    pixels = read_image(data.tobytes())
    assert pixels.shape == (8, 8, 3) and pixels.dtype == np.uint8
    assert pixels[7, 7, 0] > pixels[0, 1, 0]


def test_arrays_from_callers() -> None:
    gray16 = np.full((4, 6), 0x1234, dtype=np.uint16)
    assert (as_bgr(gray16) == 0x12).all() and as_bgr(gray16).shape == (4, 6, 3)
    bgra = np.zeros((3, 3, 4), np.uint8)
    assert as_bgr(bgra).shape == (3, 3, 3)
    for bad in (
        np.zeros((3, 3, 2), np.uint8),
        np.zeros((3,), np.uint8),
        np.zeros((2, 2, 3), float),
    ):
        with pytest.raises(ImageInputError) as refused:
            as_bgr(bad)
        assert refused.value.code == "bad_array"
    with pytest.raises(ImageInputError) as refused:
        as_bgr(np.zeros((100, 100, 3), np.uint8), max_pixels=9_999)
    assert refused.value.code == "too_many_pixels"


def photo() -> bytes:
    rng = np.random.default_rng(3)
    return encoded(Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)), "JPEG")


@pytest.mark.parametrize("keep", [0.3, 0.9, -2])
def test_truncated_jpeg_is_refused(keep: float) -> None:
    data = photo()
    cut = data[: int(len(data) * keep)] if keep > 0 else data[:-2]  # only the end marker gone
    with pytest.raises(ImageInputError) as refused:
        read_image(cut)
    assert refused.value.code in ("truncated", "unreadable")
    assert "cut short" in str(refused.value) or "not an image" in str(refused.value)


def test_exif_thumbnail_cannot_vouch_for_a_cut_jpeg() -> None:
    # A thumbnail is a whole JPEG inside APP1, with its own end marker before the main scan.
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (200, 200, 3), np.uint8))
    thumbnail = encoded(image.resize((16, 16)), "JPEG")
    exif = Image.Exif()
    exif[0x0112] = 1
    full = encoded(image, "JPEG", exif=exif)
    app1 = b"Exif\x00\x00" + b"\x00" * 8 + thumbnail  # not valid EXIF: only the bytes matter
    segment = b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1
    spliced = full[:2] + segment + full[2:]
    assert jpeg_complete(spliced)
    assert not jpeg_complete(spliced[: len(spliced) - 500])


def test_truncated_png_is_refused() -> None:
    data = encoded(asymmetric(), "PNG")
    with pytest.raises(ImageInputError) as refused:
        read_image(data[:-20])
    assert refused.value.code in ("truncated", "unreadable")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty"),
        (b"not an image at all", "unreadable"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, "unreadable"),
        (b"PK\x03\x04" + b"\x00" * 100, "unreadable"),
    ],
)
def test_garbage_is_refused(data: bytes, code: str) -> None:
    with pytest.raises(ImageInputError) as refused:
        read_image(data)
    assert refused.value.code == code
    assert str(refused.value)[0].isupper() and str(refused.value).endswith(".")


def test_pixel_limit_is_checked_from_the_header_before_decoding(monkeypatch) -> None:
    data = encoded(Image.new("L", (5000, 4000)), "PNG")

    def must_not_decode(*args: object) -> None:
        raise AssertionError("decoded an image above the limit")

    monkeypatch.setattr(cv2, "imdecode", must_not_decode)
    with pytest.raises(ImageInputError) as refused:
        read_image(data, max_pixels=19_999_999)
    assert refused.value.code == "too_many_pixels"
    assert refused.value.params == {"pixels": 20_000_000, "limit": 19_999_999}
    assert "20000000" in str(refused.value)


def test_header_claiming_billions_of_pixels_is_refused() -> None:
    # A PNG header for 100000 × 100000 with almost no data: Pillow's own bomb check fires.
    small = encoded(Image.new("L", (1, 1)), "PNG")
    import struct
    import zlib

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + header
    ihdr = struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    forged = small[:8] + ihdr + small[8 + 25 :]
    with pytest.raises(ImageInputError) as refused:
        read_image(forged, max_pixels=150_000_000)
    assert refused.value.code == "too_many_pixels"
