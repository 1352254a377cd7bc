"""Histograms (log-x bins of sizes), line charts (precision–recall curves) and heatmaps
(confusion matrices)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

from defectlab.charts import scale
from defectlab.charts.model import Chart, Line, Series, Table
from defectlab.charts.svg import (
    FONT,
    GRID,
    MUTED,
    WIDTH,
    Drawing,
    describe,
    empty,
    escape,
    heading,
    legend,
    make_id,
    text_width,
    value_grid,
)

PLOT_HEIGHT = 240


def _positions(edges: Sequence[float], log_x: bool) -> list[float]:
    """Where each bin edge sits on the x axis (0..1): by log10 or value when the edges rise,
    evenly otherwise. Non-positive edges on a log axis sit a decade below the smallest one."""
    values = list(edges)
    rising = all(b > a for a, b in itertools.pairwise(values))
    positive = [v for v in values if v > 0]
    if rising and log_x and positive:
        floor = min(positive) / 10
        values = [math.log10(v if v > 0 else floor) for v in values]
        rising = all(b > a for a, b in itertools.pairwise(values))
    if not rising:
        return [i / (len(values) - 1) for i in range(len(values))]
    low, high = values[0], values[-1]
    return [(v - low) / (high - low) for v in values]


def histogram(
    title: str,
    edges: Sequence[float],
    series: Sequence[Series],
    *,
    x_label: str = "",
    log_x: bool = True,
    value_label: str = "",
    empty_text: str = "",
    chart_id: str | None = None,
) -> Chart:
    """Counts per bin; bin i runs from edges[i] to edges[i + 1] (len(values) == len(edges) - 1).
    With `log_x` the edges that are powers of ten read 10⁻⁵, 10⁻⁴, …"""
    bounds = [scale.finite(edge) for edge in edges]
    bins = max(len(bounds) - 1, 0)
    names = [str(one.name) for one in series]
    colors = [scale.color(one.color, i) for i, one in enumerate(series)]
    values = [scale.clean(one.values, bins) for one in series]
    ranges = [f"{scale.exact(bounds[i])} – {scale.exact(bounds[i + 1])}" for i in range(bins)]
    rows = [[ranges[i], *(scale.exact(v[i]) for v in values)] for i in range(bins)]
    table = Table(caption=title, header=[x_label, *names], rows=rows)
    labels = (x_label, value_label, empty_text)
    cid = make_id(chart_id, "histogram", title, bounds, names, colors, values, log_x, labels)
    top = heading(drawing := Drawing(0), title)
    if not bins or not names:
        drawing.height = top + 80
        empty(drawing, top, empty_text)
        return Chart(title, drawing.document(cid, title, empty_text), table, True, cid)
    top += legend(drawing, top, list(zip(names, colors, strict=True)))
    if value_label:
        drawing.text(8, top + 12, value_label, width=WIDTH - 16, css="axis-label", fill=MUTED)
        top += 16
    plot_top, plot_bottom = top + 10, top + 10 + PLOT_HEIGHT
    drawing.height = plot_bottom + 30 + (18 if x_label else 0)
    x0, x1 = 56.0, WIDTH - 16.0
    flat = [x for v in values for x in v]
    ticks = scale.nice_ticks(0.0, max(flat, default=0.0), whole=scale.whole(flat))

    def y(value: float) -> float:
        share = min(max(value / ticks[-1], 0.0), 1.0)
        return plot_bottom - share * (plot_bottom - plot_top)

    value_grid(drawing, ticks, y, scale.compact, across=(x0, x1), vertical=False)
    xs = [x0 + p * (x1 - x0) for p in _positions(bounds, log_x)]
    for i in range(bins):
        width = max((xs[i + 1] - xs[i] - 1) / len(names), 0.0)
        for s, name in enumerate(names):
            tip = f"{ranges[i]} — {name}: {scale.exact(values[s][i])}"
            drawing.rect(
                xs[i] + 0.5 + s * width,
                y(values[s][i]),
                width,
                y(0) - y(values[s][i]),
                colors[s],
                tip=tip,
            )
    label = scale.power_of_ten if log_x else scale.compact
    # On a log axis with edges between the decades (half-decade bins), only the decades and
    # the ends are named: 10⁻⁴, 10⁻³ read at a glance, 0.00032 beside them does not.
    decades = [edge for edge in bounds if scale.is_power_of_ten(edge)]
    named = {bounds[0], bounds[-1], *decades} if log_x and len(decades) >= 2 else set(bounds)
    last = -math.inf
    for at, edge in zip(xs, bounds, strict=True):
        if edge not in named:
            continue
        text = label(edge)
        half = text_width(text, FONT) / 2
        if at - half >= last + 6:
            drawing.line(at, plot_bottom, at, plot_bottom + 4, "axis", MUTED)
            drawing.text(at, plot_bottom + 16, text, anchor="middle", css="tick", fill=MUTED)
            last = at + half
    drawing.line(x0, plot_bottom, x1, plot_bottom, "axis", MUTED)
    if x_label:
        drawing.text((x0 + x1) / 2, plot_bottom + 36, x_label, anchor="middle", css="axis-label")
    pairs = [(r, " / ".join(scale.compact(v[i]) for v in values)) for i, r in enumerate(ranges)]
    return Chart(title, drawing.document(cid, title, describe(pairs)), table, False, cid)


def _points(line: Line) -> list[tuple[float, float]]:
    """The finite points of a line; a point with NaN or infinity is skipped."""
    out = []
    for point in line.points:
        try:
            x, y = float(point[0]), float(point[1])
        except (TypeError, ValueError, IndexError):
            continue
        if math.isfinite(x) and math.isfinite(y):
            out.append((x, y))
    return out


def lines(
    title: str,
    lines: Sequence[Line],
    *,
    x_label: str = "",
    y_label: str = "",
    x_range: tuple[float, float] = (0.0, 1.0),
    y_range: tuple[float, float] = (0.0, 1.0),
    name_label: str = "",
    empty_text: str = "",
    chart_id: str | None = None,
) -> Chart:
    """Curves over fixed ranges (0..1 by default, for precision–recall); points outside the
    ranges are drawn on their edge. A range with NaN or infinity, or not rising, is 0..1; its
    ends are taken within ±`scale.LIMIT`."""
    names = [str(line.name) for line in lines]
    colors = [scale.color(line.color, i) for i, line in enumerate(lines)]
    points = [_points(line) for line in lines]
    rows = [
        [n, scale.exact(x), scale.exact(y)]
        for n, p in zip(names, points, strict=True)
        for x, y in p
    ]
    table = Table(caption=title, header=[name_label, x_label, y_label], rows=rows)
    x_range, y_range = _range(x_range), _range(y_range)
    labels = (x_label, y_label, name_label, empty_text)
    cid = make_id(chart_id, "lines", title, names, colors, points, x_range, y_range, labels)
    top = heading(drawing := Drawing(0), title)
    if not any(points):
        drawing.height = top + 80
        empty(drawing, top, empty_text)
        return Chart(title, drawing.document(cid, title, empty_text), table, True, cid)
    top += legend(drawing, top, list(zip(names, colors, strict=True)))
    if y_label:
        drawing.text(8, top + 12, y_label, width=WIDTH - 16, css="axis-label", fill=MUTED)
        top += 16
    plot_top, plot_bottom = top + 10, top + 10 + 300
    drawing.height = plot_bottom + 30 + (18 if x_label else 0)
    x0, x1 = 56.0, WIDTH - 24.0
    place_x = _linear(x_range, (x0, x1))
    place_y = _linear(y_range, (plot_bottom, plot_top))
    x_ticks = _ticks_in(x_range)
    value_grid(drawing, _ticks_in(y_range), place_y, scale.compact, across=(x0, x1), vertical=False)
    value_grid(
        drawing, x_ticks, place_x, scale.compact, across=(plot_top, plot_bottom), vertical=True
    )
    for name, color, drawn in zip(names, colors, points, strict=True):
        _curve(drawing, name, color, [(place_x(x), place_y(y)) for x, y in drawn])
    drawing.rect(
        x0, plot_top, x1 - x0, plot_bottom - plot_top, "none", css_class="frame", stroke=GRID
    )
    if x_label:
        drawing.text((x0 + x1) / 2, plot_bottom + 36, x_label, anchor="middle", css="axis-label")
    pairs = [(n, _ends(p)) for n, p in zip(names, points, strict=True)]
    return Chart(title, drawing.document(cid, title, describe(pairs)), table, False, cid)


def _ends(points: list[tuple[float, float]]) -> str:
    if not points:
        return "–"
    (ax, ay), (bx, by) = points[0], points[-1]
    return (
        f"({scale.compact(ax)}, {scale.compact(ay)}) … ({scale.compact(bx)}, {scale.compact(by)})"
    )


def _range(domain: tuple[float, float]) -> tuple[float, float]:
    """A drawable range: both ends finite and rising, within ±LIMIT; 0..1 otherwise."""
    try:
        low, high = float(domain[0]), float(domain[1])
    except (TypeError, ValueError, IndexError, OverflowError):
        return (0.0, 1.0)
    if not (math.isfinite(low) and math.isfinite(high)):
        return (0.0, 1.0)
    low, high = scale.clamp(low, scale.LIMIT), scale.clamp(high, scale.LIMIT)
    return (low, high) if low < high else (0.0, 1.0)


def _linear(domain: tuple[float, float], span: tuple[float, float]) -> Callable[[float], float]:
    low, high = domain  # from `_range`: finite, rising, within ±LIMIT

    def place(value: float) -> float:
        share = min(max((value - low) / (high - low), 0.0), 1.0)
        return span[0] + share * (span[1] - span[0])

    return place


def _ticks_in(domain: tuple[float, float]) -> list[float]:
    low, high = domain  # from `_range`
    slack = (high - low) * 1e-9
    return [t for t in scale.nice_ticks(low, high) if low - slack <= t <= high + slack]


def _curve(drawing: Drawing, name: str, color: str, xy: list[tuple[float, float]]) -> None:
    if not xy:
        return
    tip = f"<title>{escape(name)}</title>"
    if len(xy) == 1:
        x, y = xy[0]
        drawing.add(
            f'<circle cx="{scale.coordinate(x)}" cy="{scale.coordinate(y)}" r="3" fill="{color}">{tip}</circle>'
        )
        return
    path = " ".join(f"{scale.coordinate(x)},{scale.coordinate(y)}" for x, y in xy)
    drawing.add(
        f'<polyline class="curve" points="{path}" fill="none" stroke="{color}" stroke-width="2" stroke-linejoin="round">{tip}</polyline>'
    )
