"""The sensitivity page in Chromium: a quality lead opens it from the model's page, previews the
demo detector on a project's panels (a real worker runs the job), moves the confidence slider
up and sees fewer boxes drawn, saves, and the page starts from the saved value when opened
again. And the page's filter (static/defectlab/sensitivity.js) keeps, on the same candidates,
exactly the boxes the engine's NMS keeps, so the browser and the service agree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import expect

import defectlab
from defectlab.inference import registry
from defectlab.inference.demo import model_bytes
from defectlab.inference.engine import decode
from defectlab.inference.models import DetectionModel, VersionState
from defectlab.ingest.uploads import checked_image
from defectlab.jobs.runner import run_job
from defectlab.labeling import services
from defectlab.synthetic import defect_images
from defectlab.tenancy.models import Role
from tests.conftest import make_tenant
from tests.e2e.pages import log_in

SCRIPT = Path(defectlab.__file__).parent / "web" / "static" / "defectlab" / "sensitivity.js"
PANELS = 4
SEED = 700_000  # panels the demo model never saw in training


def ready_demo_model() -> tuple[Any, DetectionModel, Any]:
    tenant = make_tenant("Acme", tasks=1)
    project = tenant.project
    services.delete_tasks(project, [task.pk for task in tenant.tasks])
    images = [checked_image(name, data) for name, data, _ in defect_images(PANELS, seed=SEED)]
    services.create_uploaded_tasks(project, images)
    owner = tenant.user(Role.OWNER)
    model = registry.create_model(tenant.organization, owner, name="Demo detector")
    version = registry.upload_version(model, owner, model_bytes(), file_name="demo.onnx")
    run_job(version.job_id or 0)  # its check, here
    version.refresh_from_db()
    assert version.state == VersionState.READY, version.error
    registry.move_alias(model, owner, "production", 1)
    return tenant, model, owner


def drawn(page: Any) -> int:
    count = int(page.locator("#preview-images").get_attribute("data-drawn"))
    assert page.locator("#preview-images .preview-box").count() == count
    expect(page.locator("#total-count")).to_have_text(str(count))
    return count


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_preview_move_the_slider_save_and_come_back(
    browser: Any, browser_context_args: dict[str, Any], worker: None, locale: str
) -> None:
    tenant, model, owner = ready_demo_model()
    context = browser.new_context(**{**browser_context_args, "locale": locale})
    page = context.new_page()
    log_in(page, owner.email)
    page.goto(f"/models/{model.pk}/")
    page.click("#model-sensitivity")
    expect(page.locator("#conf")).to_have_value("0.25")  # the version's own
    expect(page.locator("#no-preview")).to_be_visible()
    page.select_option("#project", str(tenant.project.pk))
    expect(page.locator("#run")).to_have_value("alias:production")
    page.click("#start-preview")
    page.wait_for_url(re.compile(r"/sensitivity/\?job=\d+$"))
    # The page follows the job, then shows itself again with the images and their boxes.
    expect(page.locator("#preview-images .preview-image")).to_have_count(PANELS, timeout=90_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#preview-images img')]"
        ".every((img) => img.complete && img.naturalWidth > 0)"
    )
    at_default = drawn(page)
    assert at_default > 0, "the demo detector finds the panels' defects"
    expect(page.locator("#class-counts tbody tr").first).to_be_visible()

    page.locator("#conf").fill("0.9")
    expect(page.locator("#conf-value")).to_have_text("0.90")
    at_strict = drawn(page)
    assert at_strict < at_default
    page.locator("#conf").fill("0.05")  # lower than the version's: more boxes
    assert drawn(page) > at_default
    page.locator("#conf").fill("0.9")
    page.locator("#iou").fill("1")  # nothing merged: never fewer boxes
    assert drawn(page) >= at_strict
    page.locator("#iou").fill("0.7")

    with page.expect_navigation():
        page.click("#save-sensitivity")
    expect(page.locator(".message.success")).to_be_visible()
    model.refresh_from_db()
    assert (model.conf, model.iou) == (0.9, 0.7)
    page.reload()
    assert float(page.locator("#conf").input_value()) == 0.9
    assert drawn(page) == at_strict
    page.goto(f"/models/{model.pk}/sensitivity/")  # without ?job=: the latest preview
    assert float(page.locator("#conf").input_value()) == 0.9
    assert drawn(page) == at_strict
    context.close()


def candidates(seed: int, count: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes crowded around a few centres (many overlaps) on a half-pixel grid (exact in
    float32 even after the engine's per-class shift), three classes, float32 scores with ties."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(60, 580, size=(12, 2))
    middle = centres[rng.integers(0, len(centres), count)] + rng.normal(0, 12, (count, 2))
    size = rng.uniform(10, 90, (count, 2))
    boxes = np.round(np.concatenate([middle - size / 2, middle + size / 2], axis=1) * 2) / 2
    scores = rng.uniform(0.01, 1.0, count).astype(np.float32)
    scores[::17] = scores[0]  # equal scores: the earlier candidate goes first
    classes = rng.integers(0, 3, count)
    # Two boxes whose IoU is exactly 0.5: at a threshold of 0.5 both stay.
    boxes[:2] = [[0, 0, 10, 10], [0, 0, 10, 5]]
    scores[:2], classes[:2] = [0.9, 0.8], 0
    return boxes.astype(np.float32), scores, classes.astype(np.int64)


def engine_keeps(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, conf: float, iou: float, most: int
) -> list[int]:
    """What the engine's decode keeps of these candidates: above ``conf``, then its NMS stage
    (per class, at most ``most``); the candidates' indices ride along as mask coefficients."""
    above = np.flatnonzero(scores > np.float32(conf))
    picked = decode.Candidates(
        boxes[above], scores[above], classes[above], above[:, None].astype(np.float32)
    )
    kept = decode._nms_stage(picked, None, iou, most)
    assert kept.coefficients is not None
    return [int(index) for index in kept.coefficients[:, 0]]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_pages_filter_keeps_what_the_engine_keeps(page: Any, seed: int) -> None:
    page.set_content("<!doctype html><html><body></body></html>")
    page.add_script_tag(path=str(SCRIPT))
    boxes, scores, classes = candidates(seed)
    arguments = [boxes.tolist(), [float(s) for s in scores], classes.tolist()]
    for conf, iou, most in [
        (0.01, 1.0, 1000),
        (0.25, 0.7, 300),
        (0.25, 0.5, 300),
        (0.5, 0.45, 300),
        (0.1, 0.05, 1000),
        (0.3, 0.6, 12),
        (float(scores[5]), 0.7, 300),  # a score exactly at the threshold goes
    ]:
        browser = page.evaluate(
            "([boxes, scores, classes, conf, iou, most]) => "
            "window.DefectLabSensitivity.select(boxes, scores, classes, conf, iou, most, true)",
            [*arguments, conf, iou, most],
        )
        engine = engine_keeps(boxes, scores, classes, conf, iou, most)
        assert browser == engine, (conf, iou, most)
        assert len(engine) > 0
    # The exact-0.5 pair: both kept at 0.5, one at 0.49.
    assert {0, 1} <= set(engine_keeps(boxes, scores, classes, 0.01, 0.5, 1000))
    assert 1 not in engine_keeps(boxes, scores, classes, 0.01, 0.49, 1000)
