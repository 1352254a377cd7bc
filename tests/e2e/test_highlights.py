"""Label-error highlights in the browser: a canvas opened on a finding (``?finding=<id>``) outlines
the places it names over the image, lists them with their explanations, opens zoomed on the
first, selects the shape a highlight names, and hides and shows them with Shift+E (a plain E stays a class hotkey). The highlights come
through the page's slot for label-error finding (web.workspace.finding_highlights), supplied here."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from defectlab.geometry import Shape
from defectlab.labeling import workflow
from defectlab.labeling.models import Task
from defectlab.tenancy.models import Role, User
from tests.e2e.pages import log_in, open_workspace, tenant_with_images, to_screen

MISSING = "A scratch the model is sure of (0.93) is not labelled."
LOOSE = "This box is much larger than the dent the model finds."


def test_a_canvas_opened_on_a_finding_shows_its_highlights(
    page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = tenant_with_images("Acme", tasks=1)
    (task,) = tenant.tasks
    shape = Shape.box(300, 200, 520, 400, label=tenant.label.pk, id="dent-1").to_dict()
    workflow.save_annotation(
        task, tenant.user(Role.ANNOTATOR), base_version=None, shapes=[shape], submit=True
    )
    highlights = [
        {"box": [60, 50, 110, 90], "kind": "missing", "text": MISSING, "shape": ""},
        {"box": [360, 250, 420, 300], "kind": "loose_box", "text": LOOSE, "shape": "dent-1"},
        {"box": [9, 9, 1, 1], "kind": "extra", "text": "not drawable", "shape": ""},
    ]

    def finding_highlights(task: Task, finding_id: int, user: User) -> list[dict[str, Any]]:
        return highlights if finding_id == 5 else []

    monkeypatch.setattr("defectlab.web.workspace.finding_highlights", finding_highlights)

    log_in(page, tenant.user(Role.REVIEWER).email)
    page.goto(f"/tasks/{task.pk}/review/?finding=5")
    page.wait_for_function(
        "() => window.__defectlabWorkspace && !document.querySelector('.dl-loading')"
    )
    outlines = page.locator(".dl-highlight")
    expect(outlines).to_have_count(2)  # the bad box is left out
    expect(outlines.first).to_be_visible()
    panel = page.locator(".dl-highlights-section")
    expect(panel).to_contain_text("Label errors")
    expect(panel.locator(".dl-highlight-text")).to_have_text([MISSING, LOOSE])

    # Opened zoomed in on the first: its outline is in the middle of the stage, well enlarged.
    page.wait_for_function("() => document.querySelector('.dl-highlight.is-focused')")
    stage = page.locator(".dl-stage").bounding_box()
    first = outlines.first.bounding_box()
    middle = (first["x"] + first["width"] / 2, first["y"] + first["height"] / 2)
    assert abs(middle[0] - (stage["x"] + stage["width"] / 2)) < 40
    assert abs(middle[1] - (stage["y"] + stage["height"] / 2)) < 40
    assert first["width"] > 50 * 2  # 50 image pixels across, shown larger than twice that

    # The outlines never take the pointer: a click through one reaches the canvas below.
    assert outlines.first.evaluate("(el) => getComputedStyle(el).pointerEvents") == "none"

    # The second names the annotation's shape: choosing it in the list selects that shape.
    panel.locator(".dl-highlight-row").nth(1).click()
    workspace = "window.__defectlabWorkspace"
    assert page.evaluate(f"() => {workspace}.doc.selected.id") == "dent-1"
    # ... and brings both into view: the loose box is judged against the box drawn.
    for corner in ((300, 200), (520, 400)):
        x, y = to_screen(page, *corner)
        assert stage["x"] <= x <= stage["x"] + stage["width"], corner
        assert stage["y"] <= y <= stage["y"] + stage["height"], corner

    # Shift+E hides them, Shift+E again shows them; nothing of them is in the annotation.
    toggle = panel.locator(".dl-highlight-toggle")
    label = toggle.text_content()
    page.locator("canvas.dl-layer-overlay").focus()
    page.keyboard.press("Shift+E")
    expect(outlines.first).to_be_hidden()
    expect(toggle).to_have_attribute("aria-pressed", "false")
    assert toggle.text_content() == label
    page.keyboard.press("Shift+E")
    expect(outlines.first).to_be_visible()
    # From the keyboard: a row is a button, Enter brings its place into view.
    panel.locator(".dl-highlight-row").nth(0).focus()
    page.keyboard.press("Enter")
    expect(panel.locator(".dl-highlight-row").nth(0)).to_have_class(re.compile("is-focused"))
    assert page.evaluate(f"() => {workspace}.getShapes().length") == 1


def test_without_a_finding_the_canvas_has_no_highlights(page: Any) -> None:
    tenant = tenant_with_images("Acme", tasks=1)
    log_in(page, tenant.user(Role.ANNOTATOR).email)
    open_workspace(page, f"/tasks/{tenant.tasks[0].pk}/annotate/")
    expect(page.locator(".dl-highlight")).to_have_count(0)
    expect(page.locator(".dl-highlights-section")).to_be_hidden()
