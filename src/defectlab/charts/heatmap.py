"""Heatmaps: a grid of counts shaded by value, such as a confusion matrix (predicted × true)."""

from __future__ import annotations

from collections.abc import Sequence

from defectlab.charts import scale
from defectlab.charts.model import Chart, Table
from defectlab.charts.svg import (
    GRID,
    MUTED,
    WIDTH,
    Drawing,
    describe,
    empty,
    heading,
    make_id,
    text_width,
)

ROW_HEADER = 140.0  # room for row names left of the grid
COLUMN_HEADER = 96.0  # room for slanted column names above it
SHADE = "#1f5fbf"


def _shares(values: list[list[float]], normalise: str | None) -> list[list[float]]:
    """0..1 per cell: against the row's total (`normalise="row"`) or the largest cell."""
    if normalise == "row":
        return [
            [v / s if (s := sum(max(x, 0) for x in row)) > 0 else 0.0 for v in row]
            for row in values
        ]
    top = max((v for row in values for v in row), default=0.0)
    return [[v / top if top > 0 else 0.0 for v in row] for row in values]


def heatmap(
    title: str,
    rows: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Sequence[float]],
    *,
    row_label: str = "",
    column_label: str = "",
    normalise: str | None = None,
    empty_text: str = "",
    chart_id: str | None = None,
) -> Chart:
    """values[r][c] for row r, column c (a confusion matrix: rows predicted, columns true),
    written in each cell and shaded by value — per row when `normalise="row"`, against the
    largest cell when None; ValueError for any other `normalise`."""
    if normalise not in (None, "row"):
        raise ValueError(f'normalise is None or "row", not {normalise!r}')
    row_names = [str(row) for row in rows]
    column_names = [str(column) for column in columns]
    grid = [
        scale.clean(values[r] if r < len(values) else [], len(column_names))
        for r in range(len(row_names))
    ]
    corner = " \\ ".join(label for label in (row_label, column_label) if label)
    table = Table(
        caption=title,
        header=[corner, *column_names],
        rows=[
            [name, *(scale.exact(v) for v in row)]
            for name, row in zip(row_names, grid, strict=True)
        ],
    )
    labels = (row_label, column_label, empty_text)
    cid = make_id(chart_id, "heatmap", title, row_names, column_names, grid, normalise, labels)
    if not row_names or not column_names:
        drawing = Drawing(0)
        top = heading(drawing, title)
        drawing.height = top + 80
        empty(drawing, top, empty_text)
        return Chart(title, drawing.document(cid, title, empty_text), table, True, cid)
    longest = max(text_width(name) for name in column_names) * 0.72 + 14
    header = min(COLUMN_HEADER, max(28.0, longest))
    cell = max(40.0, min(72.0, (WIDTH - ROW_HEADER - 16) / len(column_names)))
    drawing = Drawing(0, max(WIDTH, ROW_HEADER + 16 + cell * len(column_names) + 40))
    top = heading(drawing, title) + (18 if column_label else 0)
    if column_label:
        drawing.text(
            ROW_HEADER + 8,
            top - 4,
            column_label,
            width=drawing.width - ROW_HEADER - 16,
            css="axis-label",
            weight="600",
        )
    x0, y0 = ROW_HEADER + 8, top + header
    drawing.height = y0 + cell * len(row_names) + 12
    for c, name in enumerate(column_names):
        x = x0 + (c + 0.5) * cell
        drawing.text(x + 4, y0 - 6, name, width=COLUMN_HEADER * 1.3, rotate=-45, css="tick")
    if row_label:
        drawing.text(8, y0 - 6, row_label, width=ROW_HEADER - 8, css="axis-label", weight="600")
    shares = _shares(grid, normalise)
    for r, name in enumerate(row_names):
        y = y0 + r * cell
        drawing.text(x0 - 8, y + cell / 2 + 4, name, width=ROW_HEADER - 8, anchor="end")
        for c, value in enumerate(grid[r]):
            _cell(
                drawing,
                (x0 + c * cell, y, cell),
                value,
                shares[r][c],
                f"{name} → {column_names[c]}",
            )
    pairs = [
        (f"{row_names[r]} → {column_names[c]}", scale.exact(v))
        for r, row in enumerate(grid)
        for c, v in enumerate(row)
        if v
    ]
    return Chart(title, drawing.document(cid, title, describe(pairs)), table, False, cid)


def _cell(
    drawing: Drawing, box: tuple[float, float, float], value: float, share: float, name: str
) -> None:
    x, y, size = box
    opacity = f"{min(max(share, 0.0), 1.0) * 0.9:.2f}"
    drawing.rect(x, y, size, size, "none", css_class="cell", stroke=GRID)
    if value > 0:
        drawing.rect(
            x + 0.5,
            y + 0.5,
            size - 1,
            size - 1,
            SHADE,
            tip=f"{name}: {scale.exact(value)}",
            css_class="shade",
            fill_opacity=opacity,
        )
    dark = share > 0.5
    drawing.text(
        x + size / 2,
        y + size / 2 + 4,
        scale.compact(value),
        anchor="middle",
        css="count-dark" if dark else "count",
        fill="#ffffff" if dark else ("currentColor" if value else MUTED),
    )
