"""A person's sessions in the annotation workspace, from the invite link to a submitted task."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from defectlab.labeling import workflow
from defectlab.labeling.models import Annotation, Task, TaskStatus
from defectlab.tenancy.models import Role
from defectlab.tenancy.services import create_invite
from tests.conftest import box
from tests.e2e.pages import (
    draw_box,
    draw_polygon,
    inside_image,
    log_in,
    open_workspace,
    shapes,
    submit_and_wait_for_next,
    task_id,
    tenant_with_images,
)


def test_invited_person_signs_up_and_submits_a_first_annotation(page: Any) -> None:
    tenant = tenant_with_images("Acme")
    _, token = create_invite(tenant.user(Role.OWNER), tenant.organization, Role.ANNOTATOR)

    page.goto(f"/invite/{token}/")
    expect(page.locator("h1")).to_contain_text("Join Acme")
    page.fill("input[name=name]", "Nina Newcomer")
    page.fill("input[name=email]", "nina@acme.test")
    page.fill("input[name=password]", "a-long-password-2")
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"**/o/{tenant.organization.pk}/")

    page.get_by_role("link", name="Acme project").click()
    page.wait_for_url(f"**/projects/{tenant.project.pk}/")
    page.click("#start-labeling")
    page.wait_for_url(re.compile(r"/tasks/\d+/annotate/$"))
    first = task_id(page)
    open_workspace(page)

    draw_box(page, 100, 80, 260, 200)
    draw_polygon(page, [(350, 250), (500, 260), (520, 400), (380, 420)])
    drawn = shapes(page)
    assert [shape["type"] for shape in drawn] == ["box", "polygon"]

    submit_and_wait_for_next(page, first)

    annotation = Annotation.objects.get(task_id=first)
    assert Task.objects.get(pk=first).status == TaskStatus.SUBMITTED
    assert sorted(shape["type"] for shape in annotation.shapes) == ["box", "polygon"]
    for shape in annotation.shapes:
        assert inside_image(shape["points"]), shape
    saved_box = next(shape for shape in annotation.shapes if shape["type"] == "box")
    (x1, y1), (x2, y2) = saved_box["points"]
    assert abs(x1 - 100) < 3 and abs(y1 - 80) < 3 and abs(x2 - 260) < 3 and abs(y2 - 200) < 3
    polygon = next(shape for shape in annotation.shapes if shape["type"] == "polygon")
    assert len(polygon["points"]) == 4


def first_task_page(page: Any, tenant: Any, role: str = Role.ANNOTATOR) -> int:
    log_in(page, tenant.user(role).email)
    page.goto(f"/projects/{tenant.project.pk}/")
    page.click("#start-labeling")
    page.wait_for_url(re.compile(r"/tasks/\d+/annotate/$"))
    open_workspace(page)
    return task_id(page)


def test_undo_removes_a_drawn_box_and_redo_brings_it_back(page: Any) -> None:
    tenant = tenant_with_images("Acme", tasks=1)
    first_task_page(page, tenant)

    draw_box(page, 50, 50, 200, 150)
    page.wait_for_function("() => window.__defectlabWorkspace.getShapes().length === 1")
    drawn = shapes(page)

    page.keyboard.press("Control+z")
    page.wait_for_function("() => window.__defectlabWorkspace.getShapes().length === 0")
    assert shapes(page) == []

    page.keyboard.press("Control+Shift+z")
    page.wait_for_function("() => window.__defectlabWorkspace.getShapes().length === 1")
    assert shapes(page) == drawn


def test_reload_mid_annotation_restores_the_draft(page: Any) -> None:
    tenant = tenant_with_images("Acme", tasks=1)
    first = first_task_page(page, tenant)

    draw_box(page, 300, 200, 420, 330)
    drawn = shapes(page)
    assert len(drawn) == 1
    # The draft is written about a second after the last change: wait until it is there.
    page.wait_for_function(
        "() => Object.keys(localStorage).some((key) => localStorage.getItem(key).includes('box'))"
    )

    page.reload()
    open_workspace(page)
    assert task_id(page) == first
    expect(page.locator(".dl-notice")).to_contain_text(
        "Your unsaved work on this image was restored."
    )
    assert shapes(page) == drawn
    assert not Annotation.objects.filter(task_id=first).exists()


def test_accepting_all_predictions_saves_the_predicted_shape(page: Any) -> None:
    tenant = tenant_with_images("Acme", tasks=2)
    predicted = tenant.tasks[0]
    workflow.add_prediction(
        predicted,
        model_name="detector",
        model_version="7",
        shapes=[box(tenant.label, 40, 60, 220, 180)],
    )

    first = first_task_page(page, tenant)
    assert first == predicted.pk
    page.wait_for_function("() => window.__defectlabWorkspace.getShapes().length === 0")
    page.keyboard.press("a")
    page.wait_for_function("() => window.__defectlabWorkspace.getShapes().length === 1")
    submit_and_wait_for_next(page, first)

    annotation = Annotation.objects.get(task_id=first)
    assert Task.objects.get(pk=first).status == TaskStatus.SUBMITTED
    assert len(annotation.shapes) == 1
    (saved,) = annotation.shapes
    assert saved["type"] == "box"
    assert saved["label"] == tenant.label.pk
    assert saved["points"] == [[40, 60], [220, 180]]
