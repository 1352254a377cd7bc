"""Issue 9, "the inspector's day", point 11: the canvas speed-ups inspectors asked for. Stepping
to the previous / next image in the project's list (saving first), copying the previous image's
shapes onto this one (one key, one undo), and, on a 1366 by 768 screen, a side panel whose every
section (the model's proposals too) is reachable without scrolling the page."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from defectlab.labeling import services, workflow
from defectlab.labeling.models import Annotation
from defectlab.tenancy.models import Role
from tests.conftest import box
from tests.e2e.pages import draw_box, log_in, open_workspace, shapes, tenant_with_images


def current_task(page: Any) -> int:
    return page.evaluate("() => window.__defectlabWorkspace.config.task.id")  # type: ignore[no-any-return]


def wait_for_task(page: Any, task_id: int) -> None:
    page.wait_for_function(
        "(id) => window.__defectlabWorkspace?.config.task.id === id"
        " && !document.querySelector('.dl-loading')",
        arg=task_id,
    )


def test_previous_and_next_image_keys_save_first_and_step_through_the_list(page: Any) -> None:
    tenant = tenant_with_images("Acme")
    first, second, third = tenant.tasks
    log_in(page, tenant.user(Role.ANNOTATOR).email)
    open_workspace(page, f"/tasks/{second.pk}/annotate/")

    draw_box(page, 100, 80, 260, 200)
    page.keyboard.press(".")
    wait_for_task(page, third.pk)
    # The box drawn on the second image was saved before the third opened.
    assert [s["type"] for s in Annotation.objects.get(task=second).shapes] == ["box"]

    page.keyboard.press(",")
    wait_for_task(page, second.pk)
    assert [s["type"] for s in shapes(page)] == ["box"]
    page.keyboard.press("PageUp")
    wait_for_task(page, first.pk)
    page.keyboard.press(",")  # the first image: nothing before it, and the canvas says so
    expect(page.locator(".dl-notice")).to_contain_text("first image")
    assert current_task(page) == first.pk


def test_shapes_are_copied_from_the_previous_image_in_one_undoable_step(page: Any) -> None:
    tenant = tenant_with_images("Acme")
    first, second, _ = tenant.tasks
    workflow.save_annotation(
        first,
        tenant.user(Role.ANNOTATOR),
        base_version=None,
        shapes=[box(tenant.label, 10, 10, 100, 90), box(tenant.label, 600, 400, 640, 480)],
        submit=True,
    )
    log_in(page, tenant.user(Role.ANNOTATOR).email)
    open_workspace(page, f"/tasks/{second.pk}/annotate/")
    draw_box(page, 300, 200, 400, 300)

    page.keyboard.press("Control+Shift+V")
    page.wait_for_function("() => window.__defectlabWorkspace.getShapes().length === 3")
    assert [s["points"] for s in shapes(page)[1:]] == [
        [[10, 10], [100, 90]],
        [[600, 400], [640, 480]],
    ]
    expect(page.locator(".dl-notice")).to_contain_text("2 shapes copied")

    page.keyboard.press("Control+z")  # one step takes both copies away, the drawn box stays
    assert [s["points"] for s in shapes(page)] == [[[300, 200], [400, 300]]]


def test_the_side_panel_fits_a_1366_by_768_screen_with_the_proposals_in_reach(page: Any) -> None:
    tenant = tenant_with_images("Acme", tasks=1)
    (task,) = tenant.tasks
    project = tenant.project
    project.instructions = "Mark every scratch and dent. " * 20
    project.save()
    for name in ["crack", "stain", "chip", "bubble", "burn", "pit", "warp", "smear"]:
        services.add_label(project, name=name)
    workflow.add_prediction(
        task,
        model_name="yolo",
        model_version="1",
        shapes=[box(tenant.label, 20 * i, 20, 20 * i + 15, 35) | {"score": 0.9} for i in range(12)],
    )
    log_in(page, tenant.user(Role.ANNOTATOR).email)
    open_workspace(page, f"/tasks/{task.pk}/annotate/")
    assert page.viewport_size == {"width": 1366, "height": 768}

    # The page itself does not scroll: everything is on the screen as it is.
    assert page.evaluate("() => document.documentElement.scrollHeight") <= 768
    proposals = page.locator(".dl-predictions-section")
    expect(proposals).to_be_visible()
    bottom = proposals.evaluate("(el) => el.getBoundingClientRect().bottom")
    top = proposals.evaluate("(el) => el.getBoundingClientRect().top")
    panel = page.locator(".dl-sidebar").evaluate("(el) => el.getBoundingClientRect().bottom")
    assert top >= 0 and bottom <= min(768, panel), (top, bottom, panel)
    # Its accept-all button is there to press, without scrolling anything first.
    accept = proposals.get_by_role("button").first
    accept.click(trial=True, no_wait_after=True)
    assert accept.evaluate("(el) => el.getBoundingClientRect().bottom") <= 768
