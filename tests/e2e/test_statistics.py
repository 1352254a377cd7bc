"""The statistics page in Chromium: a lead opens it from the project page and sees its plots —
SVG charts drawn from the project's numbers, each with its table — in English and in Chinese,
and the CSV link carries the page's filters."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from defectlab.labeling import workflow
from defectlab.tenancy.models import Role
from tests.conftest import box
from tests.e2e.pages import log_in, tenant_with_images


def labeled_project() -> Any:
    tenant = tenant_with_images("Acme", tasks=3)
    annotator, reviewer = tenant.user(Role.ANNOTATOR), tenant.user(Role.REVIEWER)
    dent = tenant.project.labels.get(name="dent")
    for index, task in enumerate(tenant.tasks):
        shapes = [box(tenant.label, 2, 2, 4 + 10 * index, 4 + 8 * index)] + [box(dent)] * index
        workflow.save_annotation(
            task, annotator, base_version=None, shapes=shapes, tags=["NG"], submit=True
        )
    workflow.review(tenant.tasks[0], reviewer, verdict="approve")
    workflow.review(tenant.tasks[1], reviewer, verdict="reject", comment="loose box")
    return tenant


def test_the_statistics_page_draws_its_plots_in_both_languages(page: Any) -> None:
    tenant = labeled_project()
    log_in(page, tenant.user(Role.OWNER).email)
    page.goto(f"/projects/{tenant.project.pk}/")
    page.click("#project-statistics")
    expect(page.locator("h1")).to_have_text("Statistics")
    for chart in ("classes", "status", "tags", "sizes", "shapes-per-image", "submitted"):
        figure = page.locator(f"#chart-{chart}")
        expect(figure.locator("svg")).to_be_visible()
        assert figure.locator("svg rect, svg path").count() > 0, chart  # drawn, not "no data"
    expect(page.locator("#chart-classes svg")).to_contain_text("scratch")
    expect(page.locator("#chart-rejections-class svg")).to_contain_text("50")
    # The same numbers as a table, for screen readers.
    page.locator("#chart-classes summary").click()
    expect(page.locator("#chart-classes table")).to_contain_text("scratch")

    page.select_option("#language", "zh-hans")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.locator("h1")).to_have_text("统计")
    expect(page.locator("#chart-classes svg")).to_contain_text("各类别的图像数和形状数")
    assert page.locator("#chart-sizes svg rect").count() > 2

    page.select_option("#statistics-filters select[name=status]", "approved")
    page.click("#statistics-filters button[type=submit]")
    expect(page.locator("#statistics-tasks-title")).to_contain_text("1")
    href = page.locator("#statistics-csv").get_attribute("href") or ""
    assert "format=csv" in href and "status=approved" in href
