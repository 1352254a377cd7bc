"""Bars: horizontal bars per category (`bars`) and vertical columns over time (`columns`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from defectlab.charts import scale
from defectlab.charts.model import Chart, Series, Table
from defectlab.charts.svg import (
    FONT,
    MUTED,
    WIDTH,
    Drawing,
    describe,
    empty,
    heading,
    legend,
    make_id,
    text_width,
    value_grid,
)

LABEL_WIDTH = 150  # room for category names left of horizontal bars
COLUMN_HEIGHT = 220  # the plot height of `columns`


@dataclass(frozen=True)
class _Data:
    categories: list[str]
    names: list[str]
    colors: list[str]
    values: list[list[float]]  # [series][category], finite

    @property
    def empty(self) -> bool:
        return not self.categories or not self.names

    def totals(self) -> list[float]:
        """Each category's sum of positive values (a sum that overflows is the largest float)."""
        return [
            scale.clamp(sum(max(s[i], 0.0) for s in self.values))
            for i in range(len(self.categories))
        ]

    def flat(self) -> list[float]:
        return [value for row in self.values for value in row]


def _data(categories: Sequence[str], series: Sequence[Series]) -> _Data:
    names = [str(category) for category in categories]
    return _Data(
        categories=names,
        names=[str(one.name) for one in series],
        colors=[scale.color(one.color, index) for index, one in enumerate(series)],
        values=[scale.clean(one.values, len(names)) for one in series],
    )


def _table(title: str, data: _Data, category_label: str, exact: Callable[[float], str]) -> Table:
    rows = [
        [category, *(exact(values[index]) for values in data.values)]
        for index, category in enumerate(data.categories)
        if not data.empty
    ]
    return Table(caption=title, header=[category_label, *data.names], rows=rows)


def _description(data: _Data, label: Callable[[float], str]) -> str:
    if len(data.names) == 1:
        pairs = [(c, label(v)) for c, v in zip(data.categories, data.values[0], strict=True)]
    else:
        pairs = [(c, label(t)) for c, t in zip(data.categories, data.totals(), strict=True)]
    return describe(pairs)


class _Scale:
    """Values to positions along [start, end]: linear from 0, or log10 over powers of ten."""

    def __init__(self, values: Sequence[float], start: float, end: float, log: bool) -> None:
        self.start, self.end, self.log = start, end, log
        if log:
            self.ticks = scale.log_ticks(values)
            self.low, self.high = math.log10(self.ticks[0]), math.log10(self.ticks[-1])
        else:
            top = max((v for v in values), default=0.0)
            self.ticks = scale.nice_ticks(0.0, top, whole=scale.whole(values))
            self.low, self.high = self.ticks[0], self.ticks[-1]  # high > low: nice_ticks

    def __call__(self, value: float) -> float:
        if self.log:
            value = math.log10(value) if value > 0 else self.low
        share = (value - self.low) / (self.high - self.low)
        return self.start + min(max(share, 0.0), 1.0) * (self.end - self.start)


def _segments(data: _Data, index: int, stacked: bool) -> list[tuple[int, float, float]]:
    """(series, from, to) value ranges drawn for one category."""
    if not stacked:
        return [(s, 0.0, max(values[index], 0.0)) for s, values in enumerate(data.values)]
    out, total = [], 0.0
    for s, values in enumerate(data.values):
        value = max(values[index], 0.0)
        out.append((s, total, scale.clamp(total + value)))
        total = scale.clamp(total + value)
    return out


def bars(
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    stacked: bool = False,
    value_label: str = "",
    log: bool = False,
    percent: bool = False,
    category_label: str = "",
    empty_text: str = "",
    chart_id: str | None = None,
) -> Chart:
    """Horizontal bars, one row per category (a group of bars per row when several series are
    not stacked). `percent`: the values are fractions shown as 12.3%. `log`: a log10 value axis
    (zeros draw no bar). Negative values draw as 0 (no bar; the table and tooltip keep them).
    The table holds every value exactly."""
    data = _data(categories, series)
    label = scale.percent if percent else scale.compact

    def exact(value: float) -> str:
        return scale.exact(value, as_percent=percent)

    table = _table(title, data, category_label, exact)
    cid = make_id(
        chart_id,
        "bars",
        title,
        data,
        stacked,
        value_label,
        log,
        percent,
        category_label,
        empty_text,
    )
    top = heading(drawing := Drawing(0), title)
    if data.empty:
        drawing.height = top + 80
        empty(drawing, top, empty_text)
        return Chart(title, drawing.document(cid, title, empty_text), table, True, cid)
    top += legend(drawing, top, list(zip(data.names, data.colors, strict=True)))
    grouped = len(data.names) if not stacked else 1
    row = max(22.0, grouped * 12.0 + 8)
    plot_top, plot_bottom = top + 6, top + 6 + row * len(data.categories)
    drawing.height = plot_bottom + 26 + (18 if value_label else 0)
    x0, x1 = 8 + LABEL_WIDTH + 8, WIDTH - 52.0
    extent = data.totals() if stacked else data.flat()
    place = _Scale(extent if not log else data.flat() + extent, x0, x1, log)
    tick_label = scale.power_of_ten if log and not percent else label
    value_grid(
        drawing, place.ticks, place, tick_label, across=(plot_top, plot_bottom), vertical=True
    )
    for index, category in enumerate(data.categories):
        y = plot_top + index * row
        drawing.text(x0 - 8, y + row / 2 + 4, category, width=LABEL_WIDTH, anchor="end")
        _bar_row(drawing, data, index, (y, row), place, stacked, (label, exact))
    drawing.line(x0, plot_top, x0, plot_bottom, "axis", MUTED)
    if value_label:
        drawing.text(
            (x0 + x1) / 2, plot_bottom + 34, value_label, anchor="middle", css="axis-label"
        )
    return Chart(title, drawing.document(cid, title, _description(data, label)), table, False, cid)


def _bar_row(
    drawing: Drawing,
    data: _Data,
    index: int,
    band: tuple[float, float],
    place: _Scale,
    stacked: bool,
    formats: tuple[Callable[[float], str], Callable[[float], str]],
) -> None:
    y, row = band
    label, exact = formats
    height = (row - 8) if stacked else (row - 8) / len(data.names)
    end = place.start
    for s, low, high in _segments(data, index, stacked):
        start, stop = place(low), place(high)
        top = y + 4 + (0 if stacked else s * height)
        tip = f"{data.categories[index]} — {data.names[s]}: {exact(data.values[s][index])}"
        drawing.rect(
            start, top, stop - start, height - (0 if stacked else 1), data.colors[s], tip=tip
        )
        if not stacked and high > 0:
            drawing.text(stop + 4, top + height / 2 + 4, label(high), css="value", fill=MUTED)
        end = max(end, stop)
    if stacked and data.totals()[index] > 0:
        drawing.text(end + 4, y + row / 2 + 4, label(data.totals()[index]), css="value", fill=MUTED)


def columns(
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    value_label: str = "",
    stacked: bool = False,
    category_label: str = "",
    empty_text: str = "",
    chart_id: str | None = None,
) -> Chart:
    """Vertical columns along a time line (one per day): grouped or stacked series; the x labels
    are thinned to what fits. Negative values draw as 0 (no column; the table and tooltip keep
    them)."""
    data = _data(categories, series)
    table = _table(title, data, category_label, scale.exact)
    cid = make_id(
        chart_id, "columns", title, data, value_label, stacked, category_label, empty_text
    )
    top = heading(drawing := Drawing(0), title)
    if data.empty:
        drawing.height = top + 80
        empty(drawing, top, empty_text)
        return Chart(title, drawing.document(cid, title, empty_text), table, True, cid)
    top += legend(drawing, top, list(zip(data.names, data.colors, strict=True)))
    if value_label:
        drawing.text(8, top + 12, value_label, width=WIDTH - 16, css="axis-label", fill=MUTED)
        top += 16
    plot_top, plot_bottom = top + 10, top + 10 + COLUMN_HEIGHT
    drawing.height = plot_bottom + 30
    x0, x1 = 56.0, WIDTH - 12.0
    place = _Scale(data.totals() if stacked else data.flat(), plot_bottom, plot_top, False)
    value_grid(drawing, place.ticks, place, scale.compact, across=(x0, x1), vertical=False)
    slot = (x1 - x0) / len(data.categories)
    every = _thinning(data.categories, slot)
    for index, category in enumerate(data.categories):
        _column(drawing, data, index, (x0 + index * slot, slot), place, stacked)
        if index % every == 0:
            middle = x0 + (index + 0.5) * slot
            drawing.text(
                middle,
                plot_bottom + 16,
                category,
                width=slot * every - 4,
                anchor="middle",
                css="tick",
                fill=MUTED,
            )
    drawing.line(x0, plot_bottom, x1, plot_bottom, "axis", MUTED)
    return Chart(
        title, drawing.document(cid, title, _description(data, scale.compact)), table, False, cid
    )


def _thinning(categories: Sequence[str], slot: float) -> int:
    """Label every n-th column so labels do not overlap (at most about 80 units each)."""
    widest = min(max((text_width(c, FONT) for c in categories), default=0.0), 80.0) + 8
    return max(1, math.ceil(widest / slot))


def _column(
    drawing: Drawing,
    data: _Data,
    index: int,
    band: tuple[float, float],
    place: _Scale,
    stacked: bool,
) -> None:
    left, slot = band
    inner = slot * 0.8
    width = inner if stacked else inner / len(data.names)
    for s, low, high in _segments(data, index, stacked):
        x = left + slot * 0.1 + (0 if stacked else s * width)
        tip = f"{data.categories[index]} — {data.names[s]}: {scale.exact(data.values[s][index])}"
        drawing.rect(
            x,
            place(high),
            max(width - (0 if stacked else 0.5), 0.5),
            place(low) - place(high),
            data.colors[s],
            tip=tip,
        )
