"""Synthetic metal-surface inspection images with known defects, for the demo project and tests."""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

DEFECT_KINDS = ("scratch", "dent", "stain")

Box = tuple[float, float, float, float]
Polygon = tuple[tuple[float, float], ...]
FloatArray = np.ndarray
# A sampled defect: its geometry plus a closure that paints it onto a float RGB image.
_Plan = tuple[Polygon, Box, Callable[[FloatArray], None]]

_KIND_WEIGHTS = (0.4, 0.3, 0.3)
_DEFECT_COUNT_WEIGHTS = (0.4, 0.3, 0.2, 0.1)  # for 1..4 defects
_OK_FRACTION = 0.2
# Dents matter more per pixel than scratches or stains of the same extent.
_SEVERITY_WEIGHT = {"scratch": 1.0, "dent": 2.5, "stain": 1.0}
_FORMATS = {
    "JPEG": "JPEG",
    "JPG": "JPEG",
    "PNG": "PNG",
    "BMP": "BMP",
    "TIFF": "TIFF",
    "TIF": "TIFF",
}


@dataclass(frozen=True, slots=True)
class SyntheticDefect:
    kind: str
    box: Box
    polygon: Polygon
    severity: str


def _smooth(rng: np.random.Generator, height: int, width: int, cell: float) -> FloatArray:
    """Value noise with feature size ``cell`` px, normalised to zero mean and unit deviation."""
    cell_px = max(1, round(cell))
    gh, gw = math.ceil(height / cell_px) + 3, math.ceil(width / cell_px) + 3
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    big = Image.fromarray(grid).resize((gw * cell_px, gh * cell_px), Image.Resampling.BICUBIC)
    # Crop away the outer cell, where bicubic interpolation has no neighbours.
    out = np.asarray(big)[cell_px : cell_px + height, cell_px : cell_px + width]
    return (out - out.mean()) / (out.std() + 1e-6)


def _streaks(rng: np.random.Generator, across: FloatArray, along: FloatArray) -> FloatArray:
    """Bilinear noise on a grid stretched along the brush direction: brushed-steel grooves."""
    across = across - across.min()
    along = along - along.min()
    cols = int(along.max()) + 2
    grid = rng.standard_normal((int(across.max()) + 2) * cols, np.float32)
    i0, j0 = across.astype(np.intp), along.astype(np.intp)
    across -= i0
    along -= j0
    idx = i0 * cols + j0
    top = grid.take(idx)
    top += (grid.take(idx + 1) - top) * along
    idx += cols
    bottom = grid.take(idx)
    bottom += (grid.take(idx + 1) - bottom) * along
    top += (bottom - top) * across
    return top


def _background(rng: np.random.Generator, width: int, height: int) -> FloatArray:
    """A brushed-steel or cast-aluminium surface under uneven light, float RGB in [0, 1]."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    diag = math.hypot(width, height)
    brush = rng.uniform(0, math.pi)
    if rng.random() < 0.6:  # most panels are brushed roughly horizontally or vertically
        brush = rng.choice([0.0, math.pi / 2]) + rng.normal(0, 0.03)
    c, s = math.cos(brush), math.sin(brush)
    along, across = xs * c + ys * s, -xs * s + ys * c
    rough = rng.uniform(0.4, 1.4)
    if rng.random() < 0.3:  # cast aluminium: mottled grain and small pits, faint brushing
        lum = rng.uniform(0.55, 0.72) + 0.015 * rough * _smooth(rng, height, width, 40)
        lum += 0.012 * rough * _smooth(rng, height, width, 9)
        lum += 0.025 * rough * _smooth(rng, height, width, 2)
        pits = np.clip(_smooth(rng, height, width, 2) - 2.4, 0, 0.6)
        glints = np.clip(rng.standard_normal((height, width), np.float32) - 2.8, 0, 0.5)
        lum += 0.3 * glints - 0.35 * pits + 0.008 * _streaks(rng, across, along / 200)
    else:
        lum = rng.uniform(0.38, 0.68) + 0.02 * _smooth(rng, height, width, 60)
        lum += 0.03 * rough * _streaks(rng, across / rng.uniform(0.7, 1.2), along / 80)
        lum += 0.02 * rough * _streaks(rng, across / 3, along / rng.uniform(150, 400))
        lum += 0.012 * _streaks(rng, across / 12, along / 600)
    # Lighting: a linear falloff plus the broad highlight band that brushed metal shows
    # perpendicular to its grooves.
    light = rng.uniform(0, 2 * math.pi)
    lum += rng.uniform(0.04, 0.14) * ((xs - width / 2) * math.cos(light)) / diag
    lum += rng.uniform(0.04, 0.14) * ((ys - height / 2) * math.sin(light)) / diag
    band = (xs - rng.uniform(0, width)) * c + (ys - rng.uniform(0, height)) * s
    lum += rng.uniform(0.03, 0.15) * np.exp(-((band / (rng.uniform(0.12, 0.35) * diag)) ** 2))
    lum += 0.03 * _smooth(rng, height, width, max(width, height) / 3)
    tint = np.array(
        [(0.97, 0.99, 1.03), (1.0, 1.0, 1.0), (1.03, 1.0, 0.95)][rng.integers(3)], np.float32
    )
    lum += 0.012 * rng.standard_normal((height, width), np.float32)  # sensor noise
    return np.clip(lum[..., None] * tint, 0, 1)


def _bounds(points: FloatArray) -> Box:
    x1, y1 = points.min(axis=0)
    x2, y2 = points.max(axis=0)
    return float(x1), float(y1), float(x2), float(y2)


def _polygon(points: FloatArray) -> Polygon:
    return tuple((float(x), float(y)) for x, y in points.tolist())


def _crop(box: Box, pad: float, width: int, height: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box
    return (
        max(0, math.floor(x1 - pad)),
        max(0, math.floor(y1 - pad)),
        min(width, math.ceil(x2 + pad)),
        min(height, math.ceil(y2 + pad)),
    )


def _scratch(rng: np.random.Generator, width: int, height: int, light: float) -> _Plan:
    size = min(width, height)
    length = rng.uniform(0.08, 0.5) * size
    angle = rng.uniform(0, 2 * math.pi)
    direction = np.array([math.cos(angle), math.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    p0 = rng.uniform([0, 0], [width, height])
    p2 = p0 + length * direction
    bend = rng.uniform(-0.15, 0.15) * normal + rng.uniform(-0.1, 0.1) * direction
    p1 = (p0 + p2) / 2 + length * bend

    def curve(t: FloatArray) -> tuple[FloatArray, FloatArray]:
        tt = t[:, None]
        point = (1 - tt) ** 2 * p0 + 2 * (1 - tt) * tt * p1 + tt**2 * p2
        tangent = 2 * (1 - tt) * (p1 - p0) + 2 * tt * (p2 - p1)
        return point, tangent / np.linalg.norm(tangent, axis=1, keepdims=True)

    t = np.linspace(0, 1, max(12, int(length / 2)))
    line, _ = curve(t)
    phase = rng.uniform(0, 2 * math.pi, 2)
    widths = rng.uniform(0.8, 3.0) * (0.35 + 0.65 * np.sin(np.pi * t) ** 0.6)
    widths *= 1 + 0.25 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t + phase[0])
    strength = rng.uniform(0.6, 1.0) * (0.65 + 0.35 * np.sin(2 * np.pi * 2 * t + phase[1]))
    bright = rng.random() < 0.6
    # Hug the stroke: both edges offset by the widest half-width, ends pushed out over the caps.
    half = float(widths.max()) / 2 + 0.75
    centre, tangent = curve(np.linspace(0, 1, int(np.clip(length / 15, 6, 18))))
    centre[0] -= half * tangent[0]
    centre[-1] += half * tangent[-1]
    side = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1) * half
    outline = np.concatenate([centre + side, (centre - side)[::-1]]).round(2)
    box = _bounds(outline)

    def draw(img: FloatArray) -> None:
        x1, y1, x2, y2 = _crop(box, 2, width, height)
        scale = 4  # supersample, then box-filter down, for anti-aliased edges
        mask = Image.new("L", ((x2 - x1) * scale, (y2 - y1) * scale))
        pen = ImageDraw.Draw(mask)
        pts = (line - (x1, y1)) * scale
        for k in range(len(pts) - 1):
            fill, w = round(255 * strength[k]), max(1, round(widths[k] * scale))
            pen.line([tuple(pts[k]), tuple(pts[k + 1])], fill=fill, width=w)
            r = w / 2
            pen.ellipse([pts[k][0] - r, pts[k][1] - r, pts[k][0] + r, pts[k][1] + r], fill=fill)
        small = mask.resize((x2 - x1, y2 - y1), Image.Resampling.BOX)
        m = np.asarray(small, np.float32)[..., None] / 255
        region = img[y1:y2, x1:x2]
        # A raised burr catches the light and throws a faint shadow beside it; on an already
        # bright surface that would hardly show, so there the scratch reads as a dark groove.
        if bright and region.mean() < 0.6:
            region *= 1 - 0.35 * np.roll(m, (1, 1), axis=(0, 1)) * (1 - m)
            region += m * (0.97 - region)
        else:
            region *= 1 - 0.7 * m

    return _polygon(outline), box, draw


def _dent(rng: np.random.Generator, width: int, height: int, light: float) -> _Plan:
    a = rng.uniform(0.015, 0.07) * min(width, height)
    b = a * rng.uniform(0.55, 1.0)
    phi = rng.uniform(0, math.pi)
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    cp, sp = math.cos(phi), math.sin(phi)
    ex, ey = math.hypot(a * cp, b * sp), math.hypot(a * sp, b * cp)
    box = _bounds(np.array([[cx - ex, cy - ey], [cx + ex, cy + ey]]).round(2))
    t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    u, v = a * np.cos(t), b * np.sin(t)
    outline = np.stack([cx + u * cp - v * sp, cy + u * sp + v * cp], axis=1).round(2)
    depth = rng.uniform(0.05, 0.11)

    def draw(img: FloatArray) -> None:
        x1, y1, x2, y2 = _crop(box, 1, width, height)
        ys, xs = np.mgrid[y1:y2, x1:x2].astype(np.float32) + 0.5
        dx, dy = xs - cx, ys - cy
        r2 = ((dx * cp + dy * sp) / a) ** 2 + ((-dx * sp + dy * cp) / b) ** 2
        surface = -(np.clip(1 - r2, 0, None) ** 2)  # a smooth dimple, flat outside the ellipse
        gy, gx = np.gradient(surface)
        # Walls facing the light brighten and the opposite ones darken.
        shade = a * depth * (gx * math.cos(light) + gy * math.sin(light))
        shade -= 0.03 * np.clip(1 - r2, 0, None)
        img[y1:y2, x1:x2] = np.clip(img[y1:y2, x1:x2] + shade[..., None], 0, 1)

    return _polygon(outline), box, draw


def _stain(rng: np.random.Generator, width: int, height: int, light: float) -> _Plan:
    radius = rng.uniform(0.03, 0.11) * min(width, height)
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    k = np.arange(1, 8)
    amp, phase = rng.uniform(0, 1, 7) / k**1.2, rng.uniform(0, 2 * np.pi, 7)
    amp *= rng.uniform(0.3, 0.6) / amp.sum()  # keeps the radius at least 0.4 * radius

    def edge(theta: FloatArray) -> FloatArray:
        # Radius as a smooth random function of angle: the blob is star-shaped about its
        # centre, so its outline sampled at increasing angles is always a simple polygon.
        return radius * (1 + (amp * np.cos(k * theta[..., None] + phase)).sum(axis=-1))

    theta = np.linspace(0, 2 * np.pi, 32, endpoint=False) + rng.uniform(0, 0.2)
    rho = edge(theta)
    outline = np.stack([cx + rho * np.cos(theta), cy + rho * np.sin(theta)], axis=1).round(2)
    box = _bounds(outline)
    soft = rng.uniform(1.5, 5.0)
    x1, y1, x2, y2 = _crop(box, 2, width, height)
    texture = np.tanh(_smooth(rng, max(1, y2 - y1), max(1, x2 - x1), max(3, radius / 3)))
    ragged = _smooth(rng, max(1, y2 - y1), max(1, x2 - x1), 3)
    colour = [(0.55, 0.42, 0.28), (0.4, 0.37, 0.33), (0.85, 0.52, 0.3)][rng.integers(3)]
    opacity = rng.uniform(0.35, 0.75)

    def draw(img: FloatArray) -> None:
        ys, xs = np.mgrid[y1:y2, x1:x2].astype(np.float32) + 0.5
        inside = edge(np.arctan2(ys - cy, xs - cx)) - np.hypot(xs - cx, ys - cy) + 0.7 * ragged
        alpha = np.clip((inside + 1) / (soft + 1), 0, 1)
        alpha = alpha * alpha * (3 - 2 * alpha)  # smoothstep: soft edge
        rim = 0.2 * np.exp(-(((inside - soft) / soft) ** 2))  # dried stains darken at the edge
        o = np.clip(opacity * (alpha * (0.75 + 0.25 * texture) + rim), 0, 0.95)[..., None]
        img[y1:y2, x1:x2] *= 1 - o + o * np.array(colour, np.float32)

    return _polygon(outline), box, draw


_SAMPLERS = {"scratch": _scratch, "dent": _dent, "stain": _stain}


def _severity(kind: str, box: Box, width: int, height: int) -> str:
    size = math.hypot(box[2] - box[0], box[3] - box[1]) / math.hypot(width, height)
    size *= _SEVERITY_WEIGHT[kind]
    return "minor" if size < 0.08 else "major" if size < 0.2 else "critical"


def _render(
    seed: int, width: int, height: int, *, draw_defects: bool = True
) -> tuple[FloatArray, list[SyntheticDefect]]:
    """Float RGB image and its defects; the background is identical with ``draw_defects=False``."""
    rng = np.random.default_rng(seed)
    img = _background(rng, width, height)
    light = rng.uniform(0, 2 * math.pi)
    count = 0 if rng.random() < _OK_FRACTION else 1 + rng.choice(4, p=_DEFECT_COUNT_WEIGHTS)
    defects: list[SyntheticDefect] = []
    for _ in range(count):
        kind = DEFECT_KINDS[rng.choice(3, p=_KIND_WEIGHTS)]
        for _attempt in range(20):  # resample until it fits inside and clear of the others
            polygon, box, draw = _SAMPLERS[kind](rng, width, height, light)
            x1, y1, x2, y2 = box
            inside = x1 >= 1 and y1 >= 1 and x2 <= width - 1 and y2 <= height - 1
            if inside and not any(
                x1 < o.box[2] and o.box[0] < x2 and y1 < o.box[3] and o.box[1] < y2 for o in defects
            ):
                if draw_defects:
                    draw(img)
                defects.append(
                    SyntheticDefect(kind, box, polygon, _severity(kind, box, width, height))
                )
                break
    return img, defects


def _to_image(img: FloatArray) -> Image.Image:
    return Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8))


def defect_image(
    seed: int, width: int = 640, height: int = 480
) -> tuple[Image.Image, list[SyntheticDefect]]:
    """An RGB panel image and its defects (none for about a fifth of seeds), fixed by ``seed``."""
    img, defects = _render(seed, width, height)
    return _to_image(img), defects


def encode(image: Image.Image, fmt: str = "JPEG") -> bytes:
    """Serialise ``image`` as JPEG (quality 90), PNG, BMP or TIFF."""
    pil_format = _FORMATS.get(fmt.upper())
    if pil_format is None:
        raise ValueError(f"unsupported image format {fmt!r}")
    buffer = io.BytesIO()
    options = {"quality": 90} if pil_format == "JPEG" else {}
    image.save(buffer, pil_format, **options)
    return buffer.getvalue()


def defect_images(
    count: int, *, seed: int = 0, width: int = 640, height: int = 480
) -> Iterator[tuple[str, bytes, list[SyntheticDefect]]]:
    """Yield ``(name, jpeg_bytes, defects)``; image ``i`` is ``defect_image(seed + i)``."""
    for i in range(count):
        image, defects = defect_image(seed + i, width, height)
        yield f"panel_{i:04d}.jpg", encode(image), defects


def grayscale16(seed: int, width: int = 256, height: int = 256) -> Image.Image:
    """A dark 16-bit ("I;16") inspection image using only values 0..4095, like a 12-bit sensor."""
    img, _ = _render(seed, width, height)
    lum = img @ np.array([0.299, 0.587, 0.114], np.float32)
    # A gamma above 1 darkens the surface but keeps bright scratches near the top of the range.
    return Image.fromarray(np.round(np.clip(lum, 0, 1) ** 2.6 * 4095).astype(np.uint16))
