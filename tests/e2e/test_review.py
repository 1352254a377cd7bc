"""A reviewer sends work back with a comment; the annotator sees it, fixes it, and it is approved."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from defectlab.labeling.models import Annotation, Review, Task, TaskStatus, Verdict
from defectlab.tenancy.models import Role
from tests.conftest import annotate
from tests.e2e.pages import draw_box, log_in, open_workspace, shapes, tenant_with_images

COMMENT = "The scratch at the bottom left is missing."


def start(page: Any, project_id: int, button: str, mode: str) -> int:
    page.goto(f"/projects/{project_id}/")
    page.click(button)
    page.wait_for_url(re.compile(rf"/tasks/\d+/{mode}/$"))
    open_workspace(page)
    match = re.search(r"/tasks/(\d+)/", page.url)
    assert match
    return int(match.group(1))


def test_rejected_task_goes_back_with_the_comment_and_is_approved_after_the_fix(
    page: Any, new_page: Any
) -> None:
    tenant = tenant_with_images("Acme", tasks=1)
    (task,) = tenant.tasks
    annotate(tenant, task)
    assert Task.objects.get(pk=task.pk).status == TaskStatus.SUBMITTED

    # The reviewer rejects it from the review workspace, saying what is wrong.
    log_in(page, tenant.user(Role.REVIEWER).email)
    assert start(page, tenant.project.pk, "#start-review", "review") == task.pk
    page.fill("textarea.dl-comment", COMMENT)
    page.click(".dl-review .dl-btn-reject")
    expect(page.locator(".dl-done")).to_be_visible()
    assert Task.objects.get(pk=task.pk).status == TaskStatus.REJECTED
    assert Review.objects.get(task=task).comment == COMMENT

    # The annotator gets it back first, reads the comment and adds the missing box.
    annotator = new_page()
    log_in(annotator, tenant.user(Role.ANNOTATOR).email)
    assert start(annotator, tenant.project.pk, "#start-labeling", "annotate") == task.pk
    expect(annotator.locator(".dl-workspace")).to_contain_text(COMMENT)
    before = len(shapes(annotator))
    draw_box(annotator, 20, 330, 160, 460)
    assert len(shapes(annotator)) == before + 1
    annotator.keyboard.press("Control+Enter")
    expect(annotator.locator(".dl-done")).to_be_visible()
    assert Task.objects.get(pk=task.pk).status == TaskStatus.SUBMITTED
    assert len(Annotation.objects.get(task=task).shapes) == before + 1

    # The reviewer approves the fixed version.
    assert start(page, tenant.project.pk, "#start-review", "review") == task.pk
    assert len(shapes(page)) == before + 1
    page.click(".dl-review .dl-btn-approve")
    expect(page.locator(".dl-done")).to_be_visible()
    assert Task.objects.get(pk=task.pk).status == TaskStatus.APPROVED
    assert list(
        Review.objects.filter(task=task).order_by("id").values_list("verdict", flat=True)
    ) == [Verdict.REJECT, Verdict.APPROVE]
