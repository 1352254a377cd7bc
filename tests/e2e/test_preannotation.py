"""Issue 11 in the browser, in English and in Chinese: the committed demo detector uploaded to
the organization's models, its check passed (the model page shows version 1 ready), the alias
production set with the page's form; then the project's pre-annotation page starts a job that a
real worker runs, its page shows it succeeded with its counts, and a task opened in the canvas
offers the model's proposals (dashed outlines, listed in the proposals panel)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from defectlab.inference import registry
from defectlab.inference.demo import model_bytes
from defectlab.ingest.uploads import checked_image
from defectlab.labeling import services
from defectlab.labeling.models import Prediction
from defectlab.synthetic import defect_images
from defectlab.tenancy.models import Role
from tests.conftest import make_tenant
from tests.e2e.pages import log_in, open_workspace

PANELS = 3
SEED = 700_000  # panels the demo model never saw in training
TEXTS = {
    "en": {"title": "Pre-annotate", "ready": "Ready", "started": "Pre-annotation has started"},
    "zh-CN": {"title": "预标注", "ready": "可用", "started": "预标注已开始"},
}


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_the_demo_detector_pre_annotates_and_the_canvas_offers_its_proposals(
    browser: Any, browser_context_args: dict[str, Any], worker: None, locale: str
) -> None:
    texts = TEXTS[locale]
    tenant = make_tenant("Acme", tasks=1)
    project = tenant.project
    services.delete_tasks(project, [task.pk for task in tenant.tasks])
    images = [checked_image(name, data) for name, data, _ in defect_images(PANELS, seed=SEED)]
    tasks = services.create_uploaded_tasks(project, images)
    owner = tenant.user(Role.OWNER)
    model = registry.create_model(tenant.organization, owner, name="Demo detector")
    registry.upload_version(
        model, owner, model_bytes(), file_name="demo.onnx"
    )  # checked by the worker

    context = browser.new_context(**{**browser_context_args, "locale": locale})
    page = context.new_page()
    log_in(page, owner.email)

    # The models page lists the model; its page shows version 1 ready once its check passed.
    page.goto(f"/o/{tenant.organization.pk}/models/")
    expect(page.locator("main")).to_contain_text("Demo detector")
    page.goto(f"/models/{model.pk}/")
    version = page.locator("#version-1")
    expect(version).to_have_attribute("data-state", "ready", timeout=90_000)
    expect(version.locator(".chip")).to_have_text(texts["ready"])
    expect(version).to_contain_text("scratch, dent, stain")
    # The alias production, with the page's form.
    page.fill("#new-alias input[name=alias]", "production")
    page.select_option("#new-alias select[name=version]", "1")
    page.click("#new-alias button[type=submit]")
    expect(page.locator("#alias-production")).to_be_visible()
    expect(page.locator("#alias-production select[name=version]")).to_have_value("1")

    # The project's pre-annotation page, from the project page's button.
    page.goto(f"/projects/{project.pk}/")
    page.click("#project-preannotate")
    expect(page.locator("h1")).to_have_text(texts["title"])
    expect(page.locator("#run")).to_have_value("alias:production")
    expect(page.locator("#mapping")).to_contain_text("stain")
    page.check("#scope input[value=all]")
    page.click("#start-preannotation")
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    expect(page.locator(".messages")).to_contain_text(texts["started"])
    # The page follows the job until it is done, then shows what it ran and did.
    expect(page.locator("#job-state")).to_have_class(re.compile("job-succeeded"), timeout=90_000)
    expect(page.locator("#preannotation-model")).to_contain_text("Demo detector")
    expect(page.locator("#preannotation-model")).to_contain_text("v1")
    expect(page.locator("#preannotation-model")).to_contain_text("production")
    expect(page.locator("#preannotation-tasks")).to_have_text(str(PANELS))
    expect(page.locator("#preannotation-predictions")).to_have_text(str(PANELS))
    expect(page.locator("#preannotation-failed")).to_have_text("0")
    shapes = sum(len(row.shapes) for row in Prediction.objects.filter(task__project=project))
    assert shapes > 0, "the demo detector finds the panels' defects"
    expect(page.locator("#preannotation-shapes")).to_have_text(str(shapes))

    # The pre-annotation page lists the job.
    page.goto(f"/projects/{project.pk}/preannotate/")
    expect(page.locator("#preannotation-jobs tbody tr")).to_have_count(1)
    expect(page.locator("#preannotation-jobs .chip")).to_have_class(re.compile("job-succeeded"))

    # A task in the canvas: the model's proposals, pending, listed in the proposals panel.
    proposed = next(
        row.task_id
        for row in Prediction.objects.filter(task__project=project).order_by("task_id")
        if row.shapes
    )
    assert proposed in {task.pk for task in tasks}
    open_workspace(page, f"/tasks/{proposed}/annotate/")
    expected = len(Prediction.objects.get(task_id=proposed).shapes)
    pending = page.evaluate("() => window.__defectlabWorkspace.doc.proposals().length")
    assert pending == expected
    expect(page.locator(".dl-predictions-section")).to_be_visible()
    context.close()
