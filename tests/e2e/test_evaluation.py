"""Issue 14 (model evaluation) in the browser, in English and in Chinese: the demo detector,
checked by a real worker, is evaluated from the project's evaluations page against approved
panels; the page follows the run and then draws its plots (the precision–recall curves, the
confusion matrix with the background, the best threshold per class) with their tables, and
lists the label errors it found; a click on one opens the canvas on that task with the
disagreement highlighted."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from defectlab.inference import registry
from defectlab.inference.demo import model_bytes
from defectlab.ingest.uploads import checked_image
from defectlab.insight.models import Finding
from defectlab.labeling import services
from defectlab.synthetic import defect_images
from defectlab.tenancy.models import Role
from tests.conftest import make_tenant
from tests.e2e.pages import log_in
from tests.insight.helpers import SEED, approve

PANELS = 3
TEXTS = {
    "en": {
        "title": "Model evaluations",
        "confusion": "Confusion matrix",
        "background": "background",
    },
    "zh-CN": {"title": "模型评估", "confusion": "混淆矩阵", "background": "背景"},
}
# How the canvas's list names each kind of label error.
KINDS = {
    "en": {
        "extra": "Not in the annotation",
        "missing": "Not found by the model",
        "wrong_class": "Wrong class",
        "loose_box": "Loose box",
        "duplicate": "Labeled twice",
    },
    "zh-CN": {
        "extra": "标注中没有",
        "missing": "模型未检出",
        "wrong_class": "类别错误",
        "loose_box": "框不贴合",
        "duplicate": "重复标注",
    },
}


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_an_evaluation_draws_its_plots_and_a_label_error_opens_the_canvas(
    browser: Any, browser_context_args: dict[str, Any], worker: None, locale: str
) -> None:
    texts = TEXTS[locale]
    tenant = make_tenant("Acme", tasks=1)
    project = tenant.project
    services.delete_tasks(project, [task.pk for task in tenant.tasks])
    images = [checked_image(name, data) for name, data, _ in defect_images(PANELS, seed=SEED)]
    services.create_uploaded_tasks(project, images)
    services.add_label(project, name="stain")
    approve(project, skip=0)  # the first panel's first defect left out: a missing defect
    owner = tenant.user(Role.OWNER)
    model = registry.create_model(tenant.organization, owner, name="Demo detector")
    registry.upload_version(model, owner, model_bytes(), file_name="demo.onnx")

    context = browser.new_context(**{**browser_context_args, "locale": locale})
    page = context.new_page()
    log_in(page, owner.email)
    page.goto(f"/models/{model.pk}/")
    expect(page.locator("#version-1")).to_have_attribute("data-state", "ready", timeout=90_000)

    # The project page's button, the form, the run followed until its report shows.
    page.goto(f"/projects/{project.pk}/")
    page.click("#project-evaluations")
    expect(page.locator("h1")).to_have_text(texts["title"])
    page.select_option("#run", f"{model.pk}:version:1")
    page.click("#start-evaluation-button")
    page.wait_for_url(re.compile(r"/evaluations/\d+/$"))
    expect(page.locator("#map50")).to_be_visible(timeout=90_000)

    # The plots: curves, the confusion matrix (with the background) and the best thresholds,
    # each an SVG with its numbers as a table.
    curves = page.locator("#chart-curves svg")
    expect(curves).to_be_visible()
    assert curves.locator("path, polyline").count() > 0
    confusion = page.locator("#chart-confusion")
    expect(confusion.locator("svg")).to_be_visible()
    expect(confusion).to_contain_text(texts["confusion"])
    expect(confusion.locator("table")).to_contain_text(texts["background"])
    expect(page.locator("#chart-best svg")).to_be_visible()
    box = curves.bounding_box()
    assert box is not None and box["width"] <= 1366

    # A listed label error opens the canvas on its task, the disagreement highlighted.
    link = page.locator("#findings a.finding-link").first
    href = link.get_attribute("href") or ""
    finding = Finding.objects.get(pk=int(href.rsplit("=", 1)[1]))
    link.click()
    page.wait_for_url(re.compile(rf"/tasks/{finding.task_id}/annotate/\?finding={finding.pk}$"))
    highlights = page.evaluate(
        "() => JSON.parse(document.getElementById('workspace-config').textContent).highlights"
    )
    assert [item["kind"] for item in highlights] == [finding.kind]
    page.wait_for_function(
        "() => window.__defectlabWorkspace && !document.querySelector('.dl-loading')"
    )
    outline = page.locator(".dl-highlight")
    expect(outline).to_have_count(1)
    expect(outline).to_be_visible()
    panel = page.locator(".dl-highlights-section")
    expect(panel.locator(".dl-highlight-text")).to_have_text([highlights[0]["text"]])
    expect(panel).to_contain_text(KINDS[locale][finding.kind])
    context.close()
