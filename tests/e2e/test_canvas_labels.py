"""Class hotkeys and counts in the canvas, as an inspector meets them (issue 9, points 1 and 3).

A class hotkey chooses the class of the next shape; it relabels only a shape the person picked
(clicked, or chose in the list), visibly and undoably. Model proposals waiting for a decision are
counted apart from the annotation's shapes.
"""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from defectlab.labeling import services, workflow
from defectlab.tenancy.models import Role
from tests.conftest import box
from tests.e2e.pages import (
    draw_box,
    draw_polygon,
    log_in,
    open_workspace,
    shapes,
    tenant_with_images,
    to_screen,
)


def open_first_task(page: Any, tenant: Any) -> None:
    log_in(page, tenant.user(Role.ANNOTATOR).email)
    page.goto(f"/projects/{tenant.project.pk}/")
    page.click("#start-labeling")
    page.wait_for_url(re.compile(r"/tasks/\d+/annotate/$"))
    open_workspace(page)


def test_class_keys_pressed_between_drawings_label_the_next_shape(page: Any) -> None:
    tenant = tenant_with_images("Acme", tasks=1)
    services.add_label(tenant.project, name="stain", hotkey="3", color="#43a047")
    labels = {label.name: label.pk for label in tenant.project.labels.all()}
    open_first_task(page, tenant)

    page.keyboard.press("1")
    draw_box(page, 40, 40, 160, 120)
    page.keyboard.press("2")
    draw_box(page, 220, 60, 340, 180)
    page.keyboard.press("3")
    draw_polygon(page, [(400, 250), (560, 260), (580, 420), (420, 430)])

    drawn = shapes(page)
    assert [shape["type"] for shape in drawn] == ["box", "box", "polygon"]
    assert [shape["label"] for shape in drawn] == [
        labels["scratch"],
        labels["dent"],
        labels["stain"],
    ]
    # The class chosen last is the one for the next shape, and the sidebar says so.
    expect(page.locator(".dl-label.is-active")).to_contain_text("stain")


def test_a_clicked_shape_is_relabelled_visibly_and_undo_restores_it(page: Any) -> None:
    tenant = tenant_with_images("Acme", tasks=1)
    labels = {label.name: label.pk for label in tenant.project.labels.all()}
    open_first_task(page, tenant)

    page.keyboard.press("1")
    draw_box(page, 100, 100, 300, 250)
    page.keyboard.press("Escape")
    page.keyboard.press("v")
    page.mouse.click(*to_screen(page, 200, 175))
    page.wait_for_function("() => window.__defectlabWorkspace.doc.selectedUid !== null")

    page.keyboard.press("2")
    assert [shape["label"] for shape in shapes(page)] == [labels["dent"]]
    expect(page.locator(".dl-selection")).to_have_class(re.compile(r"\bis-relabelled\b"))
    expect(page.locator(".dl-notice")).to_contain_text("Class changed to dent")
    expect(page.locator(".dl-selection")).not_to_have_class(re.compile(r"\bis-relabelled\b"))

    page.keyboard.press("Control+z")
    assert [shape["label"] for shape in shapes(page)] == [labels["scratch"]]
    expect(page.locator(".dl-label.is-active")).to_contain_text("scratch")


def test_pending_proposals_are_counted_apart_from_shapes(page: Any) -> None:
    tenant = tenant_with_images("Acme", tasks=1)
    workflow.add_prediction(
        tenant.tasks[0],
        model_name="detector",
        model_version="7",
        shapes=[box(tenant.label, 40 + 120 * i, 60, 140 + 120 * i, 180) for i in range(4)],
    )
    open_first_task(page, tenant)

    heading = page.locator(".dl-shapes-section h2")
    status = page.locator(".dl-statusline")
    expect(heading.locator(".dl-count-shapes")).to_have_text("0")
    expect(heading.locator(".dl-count-proposals")).to_have_text("4 proposals")
    expect(status).to_contain_text("0 shapes")
    expect(status).to_contain_text("4 proposals")
    expect(status).not_to_contain_text("4 shapes")

    page.select_option("#language", "zh-hans")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    open_workspace(page)
    expect(heading.locator(".dl-count-shapes")).to_have_text("0")
    expect(heading.locator(".dl-count-proposals")).to_have_text("4 个建议")
    expect(status).to_contain_text("0 个形状")
    expect(status).to_contain_text("4 个建议")

    page.keyboard.press("a")
    expect(heading.locator(".dl-count-shapes")).to_have_text("4")
    expect(heading.locator(".dl-count-proposals")).to_be_hidden()
    expect(status).to_contain_text("4 个形状")
    expect(status).not_to_contain_text("建议")
