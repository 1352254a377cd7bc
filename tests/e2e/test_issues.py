"""Review issues, the whole loop in the browser: the reviewer pins a remark on a shape and cannot
approve while it is open, so rejects; the annotator sees the numbered pin and the comment, jumps
to it, resolves it and submits; the reviewer then approves."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from defectlab.geometry import Shape
from defectlab.labeling import workflow
from defectlab.labeling.models import Task, TaskStatus
from defectlab.tenancy.models import Role
from tests.e2e.pages import log_in, tenant_with_images, to_screen
from tests.e2e.test_review import start

REMARK = "The scratch goes on past the right edge of this box."


def test_an_issue_pinned_on_a_shape_blocks_approval_until_the_annotator_resolves_it(
    page: Any, new_page: Any
) -> None:
    tenant = tenant_with_images("Acme", tasks=1)
    (task,) = tenant.tasks
    shape = Shape.box(100, 100, 300, 250, label=tenant.label.pk, id="scratch-1").to_dict()
    workflow.save_annotation(
        task, tenant.user(Role.ANNOTATOR), base_version=None, shapes=[shape], submit=True
    )

    # The reviewer selects the shape, presses I and writes what is wrong: a numbered pin.
    log_in(page, tenant.user(Role.REVIEWER).email)
    assert start(page, tenant.project.pk, "#start-review", "review") == task.pk
    page.mouse.click(*to_screen(page, 200, 175))
    page.keyboard.press("i")
    page.fill(".dl-issue-text", REMARK)
    page.click(".dl-issue-add")
    expect(page.locator(".dl-pin")).to_have_text(["1"])
    expect(page.locator(".dl-issues-section")).to_contain_text(REMARK)
    # (Read through the task, so on code without issues this test fails in the browser first.)
    issue = Task.objects.get(pk=task.pk).issues.get()
    assert (issue.shape, issue.box, issue.resolved_at) == ("scratch-1", [100, 100, 300, 250], None)

    # Approving with the issue open is refused, and says why.
    page.click(".dl-review .dl-btn-approve")
    expect(page.locator(".dl-notice-error")).to_contain_text("1 open issue")
    assert Task.objects.get(pk=task.pk).status == TaskStatus.SUBMITTED
    page.fill("textarea.dl-comment", "See the pin.")
    page.click(".dl-review .dl-btn-reject")
    expect(page.locator(".dl-done")).to_be_visible()
    assert Task.objects.get(pk=task.pk).status == TaskStatus.REJECTED

    # The annotator sees the pin and the comment, jumps to it, resolves it and submits.
    annotator = new_page()
    log_in(annotator, tenant.user(Role.ANNOTATOR).email)
    assert start(annotator, tenant.project.pk, "#start-labeling", "annotate") == task.pk
    pin = annotator.locator(".dl-pin")
    expect(pin).to_have_text(["1"])
    expect(annotator.locator(".dl-issues-section")).to_contain_text(REMARK)
    scale = annotator.evaluate("() => window.__defectlabWorkspace.getView().scale")
    pin.click()
    workspace = "window.__defectlabWorkspace"
    assert annotator.evaluate(f"() => {workspace}.getView().scale") > scale
    assert annotator.evaluate(f"() => {workspace}.doc.selected.id") == "scratch-1"
    annotator.click(".dl-issue .dl-issue-settle")
    expect(annotator.locator(".dl-pin.is-resolved")).to_have_count(1)
    expect(annotator.locator(".dl-issue.is-resolved")).to_have_count(1)
    resolved = Task.objects.get(pk=task.pk).issues.get()
    assert resolved.resolved_at is not None
    assert resolved.resolved_by == tenant.user(Role.ANNOTATOR)
    annotator.keyboard.press("Control+Enter")
    expect(annotator.locator(".dl-done")).to_be_visible()
    assert Task.objects.get(pk=task.pk).status == TaskStatus.SUBMITTED

    # The reviewer sees the issue resolved (dimmed) and approves.
    assert start(page, tenant.project.pk, "#start-review", "review") == task.pk
    expect(page.locator(".dl-pin.is-resolved")).to_have_count(1)
    page.click(".dl-review .dl-btn-approve")
    expect(page.locator(".dl-done")).to_be_visible()
    assert Task.objects.get(pk=task.pk).status == TaskStatus.APPROVED
