"""Issue 9, "the inspector's day": the annotator accepts some of the model's proposals and drops
the others. Those decisions stick: the task reopened offers none of them again, and the reviewer
sees exactly the submitted shapes, with the proposals only as an optional faded layer that
nothing can be accepted from (accept-all used to duplicate every accepted shape)."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from defectlab.labeling import workflow
from defectlab.labeling.models import Annotation, AnnotationVersion, Task, TaskStatus
from defectlab.tenancy.models import Role
from tests.conftest import Tenant, box
from tests.e2e.pages import log_in, open_workspace, shapes, tenant_with_images, to_screen

# Three proposals, far apart: (x1, y1, x2, y2) on the 640 by 480 image.
PROPOSED = [(40, 40, 140, 140), (240, 60, 340, 160), (420, 260, 560, 400)]


def pending(page: Any) -> int:
    return page.evaluate("() => window.__defectlabWorkspace.doc.proposals().length")  # type: ignore[no-any-return]


def predicted_task(tenant: Tenant) -> Task:
    (task,) = tenant.tasks
    workflow.add_prediction(
        task,
        model_name="yolo",
        model_version="1",
        shapes=[box(tenant.label, *corners) | {"score": 0.9} for corners in PROPOSED],
    )
    return task


def start(page: Any, project_id: int, button: str, mode: str) -> None:
    page.goto(f"/projects/{project_id}/")
    page.click(button)
    page.wait_for_url(re.compile(rf"/tasks/\d+/{mode}/$"))
    open_workspace(page)


def decide(page: Any, corners: tuple[int, int, int, int], key: str) -> None:
    """Click a proposal to select it, then Enter (accept) or Delete (drop)."""
    x1, y1, x2, y2 = corners
    page.mouse.click(*to_screen(page, (x1 + x2) / 2, (y1 + y2) / 2))
    page.keyboard.press(key)


def accept_first_and_last_drop_the_middle(page: Any) -> None:
    assert pending(page) == 3
    decide(page, PROPOSED[0], "Enter")
    decide(page, PROPOSED[1], "Delete")
    decide(page, PROPOSED[2], "Enter")
    assert pending(page) == 0 and len(shapes(page)) == 2


def test_the_reviewer_sees_the_submitted_shapes_and_cannot_accept_proposals_again(
    page: Any, new_page: Any
) -> None:
    tenant = tenant_with_images("Acme", tasks=1)
    task = predicted_task(tenant)

    log_in(page, tenant.user(Role.ANNOTATOR).email)
    start(page, tenant.project.pk, "#start-labeling", "annotate")
    accept_first_and_last_drop_the_middle(page)
    page.keyboard.press("Control+Enter")
    expect(page.locator(".dl-done")).to_be_visible()
    submitted = Annotation.objects.get(task=task).shapes
    assert len(submitted) == 2

    reviewer = new_page()
    log_in(reviewer, tenant.user(Role.REVIEWER).email)
    start(reviewer, tenant.project.pk, "#start-review", "review")
    # Exactly the submitted shapes: nothing pending on top, the dropped one not back.
    assert shapes(reviewer) == submitted
    assert pending(reviewer) == 0
    expect(reviewer.locator(".dl-predictions")).not_to_contain_text("Accept all")
    reviewer.keyboard.press("a")
    assert shapes(reviewer) == submitted
    # The proposals are there to compare with, faded, on request.
    toggle = reviewer.locator(".dl-reference-toggle")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    assert shapes(reviewer) == submitted

    reviewer.click(".dl-review .dl-btn-approve")
    expect(reviewer.locator(".dl-done")).to_be_visible()
    assert Task.objects.get(pk=task.pk).status == TaskStatus.APPROVED
    assert Annotation.objects.get(task=task).shapes == submitted
    (version,) = AnnotationVersion.objects.filter(annotation__task=task)
    assert [fate["fate"] for fate in version.proposal_fates] == ["accepted", "dropped", "accepted"]


def test_decided_proposals_are_not_offered_again_when_the_task_is_reopened(page: Any) -> None:
    tenant = tenant_with_images("Acme", tasks=1)
    task = predicted_task(tenant)

    log_in(page, tenant.user(Role.ANNOTATOR).email)
    start(page, tenant.project.pk, "#start-labeling", "annotate")
    accept_first_and_last_drop_the_middle(page)
    page.keyboard.press("Control+s")
    expect(page.locator(".dl-notice-success")).to_be_visible()

    open_workspace(page, f"/tasks/{task.pk}/annotate/")
    assert pending(page) == 0
    assert shapes(page) == Annotation.objects.get(task=task).shapes
