"""`web/chart.html` shows a chart's SVG unescaped (it is escaped already) and its table, in the
reader's language, and says so when there is nothing to draw."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from django.template.loader import render_to_string
from django.utils import translation

from defectlab import charts
from defectlab.charts import Series

HOSTILE = "<script>alert(1)</script>"


def render(chart: charts.Chart, language: str = "en") -> str:
    with translation.override(language):
        return render_to_string("web/chart.html", {"chart": chart})


def test_the_include_renders_the_svg_once_and_the_table_escaped() -> None:
    chart = charts.bars(
        "Shapes per class", [HOSTILE, "划痕"], [Series("n", [1234567, 2])], category_label="Class"
    )
    html = render(chart)
    assert html.count("<svg ") == 1 and chart.svg in html  # not escaped a second time
    assert "<script>" not in html
    assert f'<figure class="chart" id="{chart.chart_id}">' in html
    assert '<th scope="row">&lt;script&gt;alert(1)&lt;/script&gt;</th>' in html
    assert "<td>1234567</td>" in html and '<th scope="col">Class</th>' in html
    assert "<caption>Shapes per class</caption>" in html
    assert "The numbers as a table" in html
    figure = html[html.index("<figure") : html.index("</figure>") + len("</figure>")]
    ET.fromstring(figure)  # the whole figure is well-formed markup


def test_the_include_speaks_chinese_and_says_when_there_is_no_data() -> None:
    assert "以表格显示数字" in render(charts.bars("T", ["a"], [Series("n", [1])]), "zh-hans")
    empty = charts.bars("Shapes per class", [], [])
    html = render(empty, "zh-hans")
    assert "暂无可显示的数据。" in html and "<svg" not in html and "Shapes per class" in html
    assert "No data to show yet." in render(empty)


def test_two_charts_on_one_page_have_different_ids() -> None:
    a = charts.bars("A", ["a"], [Series("n", [1])])
    b = charts.bars("B", ["a"], [Series("n", [1])])
    page = render(a) + render(b)
    assert page.count(f'id="{a.chart_id}-title"') == 1
    assert page.count(f'id="{b.chart_id}-title"') == 1
