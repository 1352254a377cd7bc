"""Writing SVG text: escaping user strings, fitting them into a width, and the shared pieces
(the document with its title and description, axes, gridlines, legends)."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Sequence

from defectlab.charts.model import Svg
from defectlab.charts.scale import coordinate

WIDTH = 640  # the viewBox width; the SVG scales to its container
FONT = 12  # user units, ≥ 11 px at the default size
TITLE_FONT = 14
FONT_STACK = "system-ui, -apple-system, 'Segoe UI', 'Noto Sans SC', 'PingFang SC', 'Microsoft YaHei', sans-serif"
INK = "#1c2430"  # fallbacks; the site's CSS maps them to its colours (.chart .grid, …)
MUTED = "#5b6675"
GRID = "#d9dde3"
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ID = re.compile(r"[^A-Za-z0-9_-]")


def escape(text: object) -> str:
    """Text safe inside SVG/XML content and attribute values: markup characters escaped and the
    characters XML cannot carry at all (control characters, lone surrogates) dropped."""
    plain = _NOT_XML.sub("", str(text))
    return (
        plain.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


def _char_width(char: str, size: float) -> float:
    if unicodedata.east_asian_width(char) in ("W", "F"):
        return size
    if unicodedata.combining(char):
        return 0.0
    return size * (0.62 if char.isupper() or char in "mwMW@%" else 0.55)


def text_width(text: str, size: float = FONT) -> float:
    """A generous estimate of the rendered width (wide CJK characters a full em)."""
    return sum(_char_width(char, size) for char in text)


def fit(text: str, width: float, size: float = FONT) -> str:
    """`text` cut to about `width` user units, ending in "…" when it was cut."""
    text = " ".join(str(text).split())
    if text_width(text, size) <= width:
        return text
    room = width - text_width("…", size)
    kept = []
    used = 0.0
    for char in text:
        used += _char_width(char, size)
        if used > room:
            break
        kept.append(char)
    return "".join(kept).rstrip() + "…"


def make_id(given: str | None, *content: object) -> str:
    """The id prefix: the caller's (made id-safe) or one derived from every argument of the
    chart, so the same input gives the same SVG and different charts on a page get different
    ids. The same chart drawn twice on one page gets the same derived id: callers who do that
    pass a distinct `chart_id` to each.

    A given id that is not already safe (characters other than letters, digits, "-" and "_",
    or not starting with a letter) is cleaned and gets a short hash of the raw id, so "pr curve"
    and "pr-curve" stay apart."""
    if given:
        cleaned = _ID.sub("-", given)
        if cleaned[:1].isalpha() and cleaned == given:
            return cleaned
        suffix = hashlib.sha1(given.encode("utf-8", "replace"), usedforsecurity=False)
        cleaned = cleaned if cleaned[:1].isalpha() else f"chart-{cleaned}"
        return f"{cleaned}-{suffix.hexdigest()[:8]}"
    digest = hashlib.sha1(repr(content).encode("utf-8", "replace"), usedforsecurity=False)
    return f"chart-{digest.hexdigest()[:12]}"


def _attribute(name: str) -> str:
    return "class" if name == "css_class" else name.replace("_", "-")


class Drawing:
    """SVG elements in order; `document` wraps them with the accessible title and description."""

    def __init__(self, height: float, width: float = WIDTH) -> None:
        self.height = height
        self.width = width
        self.parts: list[str] = []

    def add(self, element: str) -> None:
        self.parts.append(element)

    def rect(
        self,
        x: float,
        y: float,
        width: float,
        height: float,
        fill: str,
        tip: str = "",
        **extra: str,
    ) -> None:
        if width <= 0 or height <= 0:
            return
        attributes = "".join(f' {_attribute(name)}="{value}"' for name, value in extra.items())
        body = f"<title>{escape(tip)}</title>" if tip else ""
        self.add(
            f'<rect x="{coordinate(x)}" y="{coordinate(y)}" width="{coordinate(width)}" '
            f'height="{coordinate(height)}" fill="{fill}"{attributes}>{body}</rect>'
            if body
            else f'<rect x="{coordinate(x)}" y="{coordinate(y)}" width="{coordinate(width)}" '
            f'height="{coordinate(height)}" fill="{fill}"{attributes}/>'
        )

    def line(self, x1: float, y1: float, x2: float, y2: float, css: str, stroke: str) -> None:
        self.add(
            f'<line class="{css}" x1="{coordinate(x1)}" y1="{coordinate(y1)}" '
            f'x2="{coordinate(x2)}" y2="{coordinate(y2)}" stroke="{stroke}"/>'
        )

    def text(
        self,
        x: float,
        y: float,
        text: str,
        *,
        width: float | None = None,
        anchor: str = "start",
        size: float = FONT,
        css: str = "label",
        fill: str = "currentColor",
        weight: str = "",
        rotate: float = 0,
    ) -> None:
        """A label at (x, y) (baseline); cut to `width` with the full text as its tooltip."""
        shown = fit(text, width, size) if width is not None else " ".join(str(text).split())
        tip = f"<title>{escape(text)}</title>" if shown != " ".join(str(text).split()) else ""
        bold = f' font-weight="{weight}"' if weight else ""
        size_attribute = f' font-size="{coordinate(size)}"' if size != FONT else ""
        if rotate:
            size_attribute += (
                f' transform="rotate({coordinate(rotate)} {coordinate(x)} {coordinate(y)})"'
            )
        self.add(
            f'<text class="{css}" x="{coordinate(x)}" y="{coordinate(y)}" text-anchor="{anchor}" '
            f'fill="{fill}"{size_attribute}{bold}>{tip}{escape(shown)}</text>'
        )

    def document(self, cid: str, title: str, description: str) -> Svg:
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg" role="img" '
            f'viewBox="0 0 {coordinate(self.width)} {coordinate(self.height)}" '
            f'preserveAspectRatio="xMidYMin meet" aria-labelledby="{cid}-title {cid}-desc" '
            f'font-family="{FONT_STACK}" font-size="{FONT}" color="{INK}">'
            f'<title id="{cid}-title">{escape(title)}</title>'
            f'<desc id="{cid}-desc">{escape(description)}</desc>'
        )
        return Svg(head + "".join(self.parts) + "</svg>")


def heading(drawing: Drawing, title: str) -> float:
    """The chart's title across the top; returns the y where the plot may start."""
    drawing.text(
        8, 20, title, width=drawing.width - 16, size=TITLE_FONT, css="chart-title", weight="600"
    )
    return 32.0


def legend(drawing: Drawing, y: float, entries: Sequence[tuple[str, str]]) -> float:
    """Swatches and names in rows across the width, from `y`; returns the height used."""
    if len(entries) < 2:
        return 0.0
    x, row = 8.0, 0
    for name, fill in entries:
        shown = fit(name, 150)
        step = 14 + 6 + min(text_width(shown), 150) + 14
        if x + step > WIDTH - 8 and x > 8:
            x, row = 8.0, row + 1
        top = y + row * 18
        drawing.rect(x, top, 12, 12, fill, tip=name, css_class="swatch")
        drawing.text(x + 18, top + 10.5, name, width=150, css="legend")
        x += step
    return (row + 1) * 18.0 + 4


def value_grid(
    drawing: Drawing,
    ticks: Sequence[float],
    place: Callable[[float], float],
    label: Callable[[float], str],
    *,
    across: tuple[float, float],
    vertical: bool,
) -> None:
    """Gridlines and tick labels on the value axis: vertical lines (horizontal bars) labelled
    below `across[1]`, or horizontal lines labelled left of `across[0]`."""
    for tick in ticks:
        at = place(tick)
        if vertical:
            drawing.line(at, across[0], at, across[1], "grid", GRID)
            drawing.text(at, across[1] + 14, label(tick), anchor="middle", css="tick", fill=MUTED)
        else:
            drawing.line(across[0], at, across[1], at, "grid", GRID)
            drawing.text(across[0] - 6, at + 4, label(tick), anchor="end", css="tick", fill=MUTED)


def empty(drawing: Drawing, top: float, text: str) -> None:
    """The frame of a chart with nothing to draw, and the caller's (translated) words if any."""
    drawing.rect(
        8, top, drawing.width - 16, drawing.height - top - 8, "none", css_class="frame", stroke=GRID
    )
    if text:
        drawing.text(
            drawing.width / 2,
            top + (drawing.height - top) / 2,
            text,
            anchor="middle",
            css="empty",
            fill=MUTED,
        )


def describe(pairs: Sequence[tuple[str, str]], limit: int = 12) -> str:
    """A language-neutral description: "name: value; …" for the first `limit` items."""
    text = "; ".join(f"{name}: {value}" for name, value in pairs[:limit])
    return text + ("; …" if len(pairs) > limit else "")
