"""Server-rendered charts: SVG text (no JavaScript, no dependency) and the same numbers as a
table, for the statistics and evaluation pages (`web/chart.html` shows both).

Pure Python: callers pass text already translated (titles, axis words, `empty_text`); every
string is XML-escaped here; colours are "#rgb"/"#rrggbb" or a palette colour; NaN and infinity
count as 0 (a line's point with one is skipped); the same input gives the same SVG."""

from defectlab.charts.bars import bars, columns
from defectlab.charts.heatmap import heatmap
from defectlab.charts.model import Chart, Line, Series, Table
from defectlab.charts.plots import histogram, lines
from defectlab.charts.scale import PALETTE

__all__ = [
    "PALETTE",
    "Chart",
    "Line",
    "Series",
    "Table",
    "bars",
    "columns",
    "heatmap",
    "histogram",
    "lines",
]
