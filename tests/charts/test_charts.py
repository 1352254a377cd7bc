"""Charts are well-formed, accessible SVG whatever the data and names, and their tables are exact."""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest

from defectlab import charts
from defectlab.charts import Chart, Line, Series
from defectlab.charts.scale import (
    MAX_TICKS,
    compact,
    exact,
    log_ticks,
    nice_ticks,
    power_of_ten,
)

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert(\"x\")</script> & 'quotes' ]]> \x00\x07"
CHINESE = "划痕"
LONG = "a very long defect class name that goes on and on " * 4


def parse(chart: Chart) -> ET.Element:
    root = ET.fromstring(chart.svg)
    assert root.tag == f"{SVG}svg"
    return root


def texts(root: ET.Element) -> list[str]:
    """What each <text> shows (a <title> inside it is its tooltip, not its text)."""
    return [shown(node) for node in root.iter(f"{SVG}text")]


def shown(node: ET.Element) -> str:
    return (node.text or "") + "".join(child.tail or "" for child in node)


NUMERIC = ("x", "y", "x1", "x2", "y1", "y2", "width", "height", "cx", "cy", "r", "font-size")


def numbers_in_coordinates(root: ET.Element) -> list[str]:
    """Every number the drawing is made of: positions, sizes, polyline points, the viewBox."""
    found = (root.get("viewBox") or "").split()
    for node in root.iter():
        found += [node.get(name) or "0" for name in NUMERIC if node.get(name) is not None]
        found += re.split(r"[ ,]", node.get("points") or "0")
    return found


def every_chart(categories: list[str], values: list[float]) -> list[Chart]:
    edges = [0.0, *(10.0**k for k in range(-5, -5 + len(values)))]
    return [
        charts.bars("Bars", categories, [Series("n", values)]),
        charts.bars("Bars", categories, [Series("a", values), Series("b", values)], stacked=True),
        charts.bars("Log", categories, [Series("n", values)], log=True),
        charts.bars("Percent", categories, [Series("n", values)], percent=True),
        charts.columns("Days", categories, [Series("a", values), Series("b", values)]),
        charts.columns("Days", categories, [Series("a", values)], stacked=True),
        charts.histogram("Sizes", edges[: len(values) + 1], [Series("n", values)]),
        charts.histogram("Sizes", edges[: len(values) + 1], [Series("n", values)], log_x=False),
        charts.lines("PR", [Line(c, [(v, v) for v in values]) for c in categories]),
        charts.heatmap("Confusion", categories, categories, [values for _ in categories]),
        charts.heatmap(
            "Rows", categories, categories, [values for _ in categories], normalise="row"
        ),
    ]


@pytest.mark.parametrize(
    ("categories", "values"),
    [
        (["scratch", "dent", "crack"], [3.0, 1200.0, 45.5]),
        ([HOSTILE, CHINESE, LONG], [1.0, 0.0, 2.0]),
        (["only"], [7.0]),
        (["a", "b", "c"], [0.0, 0.0, 0.0]),
        (["nan", "inf", "neg"], [math.nan, math.inf, -5.0]),
        ([f"class {i}" for i in range(50)], [float(i * i) for i in range(50)]),
        (["tiny", "tinier", "zero"], [4e-11, 1e-300, 0.0]),  # ticks that rounded to 0
        (["huge", "huger", "max"], [1e300, 1e308, 1.7976931348623157e308]),  # sums overflow
    ],
)
def test_every_chart_is_well_formed_accessible_and_finite(
    categories: list[str], values: list[float]
) -> None:
    for chart in every_chart(categories, values):
        root = parse(chart)
        cid = chart.chart_id
        assert root.get("role") == "img"
        assert root.get("aria-labelledby") == f"{cid}-title {cid}-desc"
        assert root.find(f"{SVG}title").get("id") == f"{cid}-title"  # type: ignore[union-attr]
        assert root.find(f"{SVG}desc").get("id") == f"{cid}-desc"  # type: ignore[union-attr]
        assert root.get("viewBox", "").startswith("0 0 ")
        assert int(root.get("font-size", "0")) >= 11
        assert "sans-serif" in root.get("font-family", "")
        for size in re.findall(r'font-size="([^"]*)"', chart.svg):
            assert float(size) >= 11
        for number in numbers_in_coordinates(root):
            assert re.fullmatch(r"-?\d+(\.\d)?", number), number
        assert not chart.empty


def test_hostile_names_are_escaped_and_cut_with_the_full_name_as_tooltip() -> None:
    chart = charts.bars(HOSTILE, [HOSTILE, LONG], [Series(HOSTILE, [1, 2]), Series("b", [1, 1])])
    assert "<script>" not in chart.svg
    assert "\x00" not in chart.svg and "\x07" not in chart.svg
    root = parse(chart)
    assert root.find(f"{SVG}title").text == HOSTILE.replace("\x00", "").replace("\x07", "")  # type: ignore[union-attr]
    long_labels = [node for node in root.iter(f"{SVG}text") if shown(node).startswith("a very")]
    assert long_labels
    for node in long_labels:
        assert shown(node).endswith("…")
        assert node.find(f"{SVG}title").text == LONG  # type: ignore[union-attr]
    assert chart.table.rows[1][0] == LONG  # the table keeps the whole name
    assert chart.table.header == ["", HOSTILE, "b"]


def test_chinese_names_are_kept_and_cut_by_their_width() -> None:
    name = CHINESE * 30
    root = parse(charts.bars("分类", [CHINESE, name], [Series("数量", [1, 2])]))
    shown = texts(root)
    assert CHINESE in shown
    cut = next(text for text in shown if text.startswith(CHINESE * 2) and text != CHINESE)
    assert cut.endswith("…") and len(cut) < 20 and cut[:-1] in name + name


@pytest.mark.parametrize(
    "make",
    [
        lambda: charts.bars("T", [], [Series("n", [])], empty_text="No data"),
        lambda: charts.bars("T", ["a"], [], empty_text="No data"),
        lambda: charts.columns("T", [], [], empty_text="No data"),
        lambda: charts.histogram("T", [1.0], [Series("n", [])], empty_text="No data"),
        lambda: charts.histogram("T", [], [], empty_text="No data"),
        lambda: charts.lines("T", [], empty_text="No data"),
        lambda: charts.lines(
            "T", [Line("a", []), Line("b", [(math.nan, 1.0)])], empty_text="No data"
        ),
        lambda: charts.heatmap("T", [], [], [], empty_text="No data"),
    ],
)
def test_an_empty_chart_says_so_in_the_callers_words(make: Callable[[], Chart]) -> None:
    chart = make()
    assert chart.empty
    assert "No data" in texts(parse(chart))
    assert chart.table.rows == []


def test_an_empty_chart_without_words_is_a_plain_frame() -> None:
    chart = charts.bars("T", [], [])
    assert chart.empty and texts(parse(chart)) == ["T"]


def test_a_log_axis_takes_zeros_without_a_bar_and_labels_powers_of_ten() -> None:
    chart = charts.bars("Log", ["z", "one", "big"], [Series("n", [0, 1, 20000])], log=True)
    shown = texts(parse(chart))
    assert {"10⁰", "10¹", "10⁴", "10⁵"} <= set(shown)
    tips = re.findall(r"<rect[^>]*><title>([^<]*)</title>", chart.svg)
    assert not any(tip.startswith("z ") for tip in tips)  # no bar for zero
    assert any(tip.startswith("one ") for tip in tips)  # 1 sits a decade above the axis start
    assert "10⁻¹" in shown
    assert charts.bars("All zero", ["a"], [Series("n", [0])], log=True).svg.count("<rect") == 0
    assert [power_of_ten(v) for v in log_ticks([0.0, 3e-5, 0.2])] == [
        "10⁻⁵",
        "10⁻⁴",
        "10⁻³",
        "10⁻²",
        "10⁻¹",
        "10⁰",
    ]


def test_the_log_histogram_labels_its_edges_as_powers_of_ten() -> None:
    edges = [0.0, 1e-5, 1e-4, 1e-3, 1e-2]
    chart = charts.histogram("Area", edges, [Series("n", [1, 2, 0, 4])], x_label="relative area")
    shown = texts(parse(chart))
    assert {"10⁻⁵", "10⁻⁴", "10⁻³", "10⁻²", "0", "relative area"} <= set(shown)
    assert chart.table.header == ["relative area", "n"]
    assert chart.table.rows[0] == ["0 – 0.00001", "1"]


def test_half_decade_edges_name_only_the_decades_on_the_axis() -> None:
    edges = [10 ** (-6 + 0.5 * i) for i in range(13)]
    chart = charts.histogram("Area", edges, [Series("n", [1] * 12)], x_label="relative area")
    shown = set(texts(parse(chart)))
    assert {"10⁻⁶", "10⁻⁵", "10⁻⁴", "10⁻³", "10⁻²", "10⁻¹", "10⁰"} <= shown
    assert not {"3e-06", "0.00032", "0.32"} & shown
    assert len(chart.table.rows) == 12  # the table keeps every bin's exact range


@pytest.mark.parametrize(
    ("value", "colour"),
    [
        ("#abc", "#abc"),
        ("#A1B2C3", "#a1b2c3"),
        ("red", charts.PALETTE[0]),
        ("#abcd", charts.PALETTE[0]),
        ('#fff" onload="alert(1)', charts.PALETTE[0]),
        ("url(#x)", charts.PALETTE[0]),
        ("", charts.PALETTE[0]),
        (None, charts.PALETTE[0]),
    ],
)
def test_only_hex_colours_are_taken(value: str | None, colour: str) -> None:
    chart = charts.bars("C", ["a"], [Series("n", [1], value)])
    fills = re.findall(r'<rect[^>]*fill="([^"]*)"', chart.svg)
    assert fills == [colour]
    assert "onload" not in chart.svg


def test_the_palette_colours_series_in_order_and_legends_name_them() -> None:
    chart = charts.bars(
        "C", ["a"], [Series("one", [1]), Series("two", [2]), Series("3", [3], "#123")]
    )
    fills = re.findall(r'<rect[^>]*fill="([^"]*)"', chart.svg)
    assert fills[:3] == [charts.PALETTE[0], charts.PALETTE[1], "#123"]  # the legend's swatches
    assert {"one", "two", "3"} <= set(texts(parse(chart)))


def test_table_numbers_are_exact_while_labels_are_compact() -> None:
    chart = charts.bars(
        "Shapes", ["a", "b"], [Series("n", [1234567, 0.1 + 0.2])], category_label="Class"
    )
    assert chart.table.header == ["Class", "n"]
    assert chart.table.rows == [["a", "1234567"], ["b", "0.3"]]
    assert "1.2M" in texts(parse(chart))
    rate = charts.bars("Rate", ["a"], [Series("r", [0.12345])], percent=True)
    assert rate.table.rows == [["a", "12.345%"]]
    assert "12.3%" in texts(parse(rate))
    matrix = charts.heatmap(
        "M", ["p"], ["t", "u"], [[12345, 0]], row_label="Predicted", column_label="True"
    )
    assert matrix.table.header == ["Predicted \\ True", "t", "u"]
    assert matrix.table.rows == [["p", "12345", "0"]]
    pr = charts.lines("PR", [Line("a", [(0.25, 1.0), (math.nan, 0.5)])], x_label="R", y_label="P")
    assert pr.table.rows == [["a", "0.25", "1"]]


def test_compact_formats() -> None:
    assert [compact(v) for v in (0, 7, 950, 1200, 3_400_000, 5e9, 12.5, 0.25, -1500)] == [
        "0",
        "7",
        "950",
        "1.2k",
        "3.4M",
        "5G",
        "12.5",
        "0.25",
        "-1.5k",
    ]


def test_ticks_are_one_two_five_steps() -> None:
    assert nice_ticks(0, 1200) == [0, 500, 1000, 1500]
    assert nice_ticks(0, 0) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0, 37) == [0, 10, 20, 30, 40]
    for high in (3, 17, 999, 0.07):
        steps = {round(b - a, 9) for a, b in itertools.pairwise(nice_ticks(0, high))}
        (step,) = steps
        assert re.fullmatch(r"[125]", f"{step:.0e}"[0])


def test_the_same_input_gives_the_same_svg_and_different_charts_different_ids() -> None:
    first = every_chart(["a", "b"], [1.0, 2.0])
    second = every_chart(["a", "b"], [1.0, 2.0])
    assert [c.svg for c in first] == [c.svg for c in second]
    other = charts.bars("Bars", ["a", "b"], [Series("n", [1.0, 3.0])])
    assert other.chart_id != first[0].chart_id
    given = charts.bars("Bars", ["a"], [Series("n", [1])], chart_id='x" y<')
    assert given.chart_id.startswith("x--y--") and f'id="{given.chart_id}-title"' in given.svg
    assert charts.bars("Bars", ["a"], [Series("n", [1])], chart_id="pr_curve-2").chart_id == (
        "pr_curve-2"
    )


def test_ids_differ_by_every_argument_and_given_ids_stay_apart() -> None:
    one = [Series("n", [1.0, 2.0])]
    made = [
        charts.bars("T", ["a", "b"], one),
        charts.bars("T", ["a", "b"], one, value_label="count"),
        charts.bars("T", ["a", "b"], one, category_label="class"),
        charts.bars("T", ["a", "b"], one, empty_text="none"),
        charts.columns("T", ["a", "b"], one),
        charts.columns("T", ["a", "b"], one, value_label="count"),
        charts.columns("T", ["a", "b"], one, category_label="day"),
        charts.histogram("T", [0, 1, 2], one),
        charts.histogram("T", [0, 1, 2], one, x_label="size"),
        charts.histogram("T", [0, 1, 2], one, value_label="count"),
        charts.lines("T", [Line("a", [(0.5, 0.5)])]),
        charts.lines("T", [Line("a", [(0.5, 0.5)])], x_label="recall"),
        charts.lines("T", [Line("a", [(0.5, 0.5)])], y_label="precision"),
        charts.lines("T", [Line("a", [(0.5, 0.5)])], name_label="class"),
        charts.heatmap("T", ["a"], ["b"], [[1]]),
        charts.heatmap("T", ["a"], ["b"], [[1]], row_label="predicted"),
        charts.heatmap("T", ["a"], ["b"], [[1]], column_label="true"),
    ]
    assert len({chart.chart_id for chart in made}) == len(made)
    given = ["pr curve", "pr-curve", "pr<curve", "1", "chart-1", "x" * 3]
    ids = [charts.bars("T", ["a"], one, chart_id=g).chart_id for g in given]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", cid) for cid in ids)


def test_tiny_and_huge_values_draw_with_rising_ticks() -> None:
    for high in (4e-11, 1e-300, 3e-7, 1e300, 1.7976931348623157e308):
        ticks = nice_ticks(0.0, high)
        assert 2 <= len(ticks) <= MAX_TICKS
        assert all(b > a for a, b in itertools.pairwise(ticks)) and ticks[0] == 0.0
    assert nice_ticks(0, 4e-11) == [0.0, 1e-11, 2e-11, 3e-11, 4e-11]
    assert len(nice_ticks(-1.7e308, 1.7e308)) <= MAX_TICKS
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError):
            nice_ticks(0.0, bad)
    small = [Series("s", [4e-11])]
    for chart in (
        charts.bars("t", ["a"], small),
        charts.bars("t", ["a"], small, percent=True),
        charts.columns("t", ["a"], small),
        charts.histogram("t", [0, 1], small),
    ):
        assert "1e-11" in chart.svg or "0.0%" in chart.svg
    huge = [Series("x", [1e308]), Series("y", [1e308])]
    for chart in (
        charts.bars("t", ["a"], huge, stacked=True),
        charts.columns("t", ["a"], huge, stacked=True),
    ):
        parse(chart)
        assert chart.table.rows == [["a", "1e+308", "1e+308"]]


@pytest.mark.parametrize(
    "x_range",
    [(-1e308, 1e308), (1.0, 0.0), (0.0, 0.0), (math.nan, 1.0), (0.0, math.inf), (-1e400, 0.0)],
)
def test_line_ranges_that_are_huge_inverted_or_not_finite_still_draw(
    x_range: tuple[float, float],
) -> None:
    chart = charts.lines("t", [Line("a", [(0.1, 0.2), (0.5, 0.7)])], x_range=x_range)
    ticks = parse(chart).findall(f"{SVG}line")
    assert 2 <= len(ticks) <= 2 * MAX_TICKS
    for number in numbers_in_coordinates(parse(chart)):
        assert re.fullmatch(r"-?\d+(\.\d)?", number), number


def test_huge_numbers_read_in_scientific_form() -> None:
    assert compact(1e300) == "1e+300" and compact(-1.7e308) == "-1.7e+308"
    assert exact(1e300) == "1e+300" and exact(1e-20) == "1e-20"
    assert exact(1e20) == "100000000000000000000" and exact(1e-5) == "0.00001"


def test_heatmap_refuses_an_unknown_normalisation() -> None:
    with pytest.raises(ValueError):
        charts.heatmap("t", ["a"], ["b"], [[1]], normalise="col")


def test_svg_is_not_part_of_the_public_api() -> None:
    assert "Svg" not in charts.__all__ and not hasattr(charts, "Svg")


def test_fifty_columns_thin_their_labels() -> None:
    days = [f"2026-11-{d:02d}" for d in range(1, 31)] + [f"2026-12-{d:02d}" for d in range(1, 21)]
    chart = charts.columns("Per day", days, [Series("done", list(range(50)))], stacked=True)
    shown = [t for t in texts(parse(chart)) if t.startswith("2026")]
    assert 3 <= len(shown) <= 12 and shown[0] == "2026-11-01"
    assert len(chart.table.rows) == 50


def test_heatmap_writes_counts_and_shades_by_row_when_asked() -> None:
    chart = charts.heatmap("M", ["a", "b"], ["a", "b"], [[9, 1], [100, 900]], normalise="row")
    shown = texts(parse(chart))
    assert {"9", "1", "100", "900"} <= set(shown)
    opacities = re.findall(r'fill-opacity="([^"]*)"', chart.svg)
    assert opacities == ["0.81", "0.09", "0.09", "0.81"]
    whole = charts.heatmap("M", ["a", "b"], ["a", "b"], [[9, 1], [100, 900]])
    assert re.findall(r'fill-opacity="([^"]*)"', whole.svg)[0] == "0.01"


def test_the_svg_is_marked_safe_for_templates() -> None:
    chart = charts.bars("<b>", ["a"], [Series("n", [1])])
    assert chart.svg.__html__() == str(chart.svg)


def test_an_overflowing_stacked_total_reads_as_the_largest_number() -> None:
    huge = [Series("x", [1e308]), Series("y", [1e308])]
    chart = charts.bars("t", ["a"], huge, stacked=True)
    assert ">1.8e+308</text>" in chart.svg and "inf" not in chart.svg


def test_counts_get_whole_ticks_and_fractions_keep_theirs() -> None:
    counts = texts(parse(charts.bars("C", ["a", "b"], [Series("n", [1, 0])])))
    assert "0.2" not in counts and {"0", "1"} <= set(counts)
    heights = texts(parse(charts.columns("C", ["a", "b"], [Series("n", [3, 2])])))
    assert "0.5" not in heights and {"0", "1", "2", "3"} <= set(heights)
    shares = texts(parse(charts.bars("C", ["a"], [Series("n", [0.3])])))
    assert {"0.1", "0.2", "0.3"} <= set(shares)
