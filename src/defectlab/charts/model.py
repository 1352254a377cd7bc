"""What a chart is: its inputs (`Series`, `Line`) and its result (`Chart`: SVG text and a `Table`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Series:
    """One named run of values, one per category (bars, columns) or per bin (histogram)."""

    name: str
    values: Sequence[float]
    color: str | None = None  # "#rgb" or "#rrggbb"; anything else takes a palette colour


@dataclass(frozen=True)
class Line:
    """One named curve of (x, y) points, drawn in the given order."""

    name: str
    points: Sequence[tuple[float, float]]
    color: str | None = None


@dataclass(frozen=True)
class Table:
    """The same numbers as the picture, for screen readers: text cells, exact numbers."""

    caption: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)


class Svg(str):
    """SVG text whose every user string is already escaped: only for this package's own output
    (`Chart.svg`), never to wrap other text, which it would mark safe unescaped. Not exported
    from `defectlab.charts`.

    `__html__` tells Django's templates (and any Markup-aware engine) not to escape it again,
    without this pure module importing Django."""

    __slots__ = ()

    def __html__(self) -> str:
        return str(self)


@dataclass(frozen=True)
class Chart:
    """A rendered chart: `svg` is safe to insert into a page; `table` holds the same numbers.

    `empty` is true when there was nothing to draw; the template then says so in the reader's
    language. `chart_id` is the prefix of the ids inside the SVG (unique per chart on a page)."""

    title: str
    svg: Svg
    table: Table
    empty: bool
    chart_id: str
