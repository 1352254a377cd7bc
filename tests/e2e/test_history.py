"""The inspector's day (issue 9): a reviewer sees who annotated a task, the time they spent and
the version history, and diffs two versions on the canvas; leaving unsaved work asks first."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from defectlab.labeling import workflow
from defectlab.labeling.models import AnnotationVersion, SkippedTask, Task
from defectlab.tenancy.models import Role
from tests.e2e.pages import draw_box, log_in, open_workspace, shapes, task_id, tenant_with_images

# What was drawn where (image pixels), and what the diff must make of it.
KEPT = (40, 40, 140, 140)
MOVED_FROM, MOVED_TO = (200, 40, 300, 140), (200, 200, 300, 300)
DROPPED = (400, 40, 500, 140)
ADDED = (40, 300, 140, 400)
RED, GREEN, AMBER = (229, 57, 53), (46, 204, 64), (255, 179, 0)

# The colours on the diff layer along a box's top edge (image pixels → canvas pixels).
EDGE_PIXELS = """([x1, x2, y]) => {
  const view = window.__defectlabWorkspace.getView();
  const canvas = document.querySelector('canvas.dl-layer-diff');
  const ctx = canvas.getContext('2d');
  const dpr = canvas.width / canvas.clientWidth;
  const pixels = [];
  for (let x = x1 + 4; x < x2 - 4; x += 2) {
    const sx = Math.round((view.x + view.scale * x) * dpr);
    const sy = Math.round((view.y + view.scale * y) * dpr);
    pixels.push(Array.from(ctx.getImageData(sx, sy, 1, 1).data));
  }
  return pixels;
}"""


def box_shape(label: int, rect: tuple[int, int, int, int], shape_id: str) -> dict[str, Any]:
    x1, y1, x2, y2 = rect
    return {"type": "box", "points": [[x1, y1], [x2, y2]], "label": label, "id": shape_id}


def edge(page: Any, rect: tuple[int, int, int, int]) -> list[list[int]]:
    x1, y1, x2, _ = rect
    return page.evaluate(EDGE_PIXELS, [x1, x2, y1])  # type: ignore[no-any-return]


def near(pixel: list[int], color: tuple[int, int, int]) -> bool:
    # A line can fall between device pixels (the view's offset depends on the layout): its
    # colour holds, its alpha is shared with the next pixel.
    return pixel[3] > 150 and all(abs(a - b) <= 40 for a, b in zip(pixel[:3], color, strict=False))


def test_the_reviewer_sees_who_did_the_work_and_diffs_two_versions(page: Any) -> None:
    tenant = tenant_with_images("Acme", tasks=1)
    (task,) = tenant.tasks
    annotator = tenant.user(Role.ANNOTATOR)
    annotator.name = "Li Wei"
    annotator.save()
    label = tenant.label.pk
    first = workflow.save_annotation(
        task,
        annotator,
        base_version=None,
        shapes=[
            box_shape(label, KEPT, "kept"),
            box_shape(label, MOVED_FROM, "moved"),
            box_shape(label, DROPPED, "dropped"),
        ],
        lead_time=95,
    )
    workflow.save_annotation(
        task,
        annotator,
        base_version=first.version,
        shapes=[
            box_shape(label, KEPT, "kept"),
            box_shape(label, MOVED_TO, "moved"),
            box_shape(label, ADDED, "added"),
        ],
        lead_time=30,
        submit=True,
    )

    log_in(page, tenant.user(Role.REVIEWER).email)
    page.goto(f"/projects/{tenant.project.pk}/")
    page.click("#start-review")
    page.wait_for_url(re.compile(r"/tasks/\d+/review/$"))
    open_workspace(page)

    work = page.locator(".dl-work-section")
    expect(work.locator(".dl-work-annotator")).to_have_text("Annotated by Li Wei")
    expect(work.locator(".dl-work-time")).to_have_text("Time spent: 2 min 5 s")
    work.locator(".dl-history summary").click()
    rows = work.locator(".dl-history-row")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Version 2")
    expect(rows.nth(0)).to_contain_text("Li Wei")
    expect(rows.nth(0)).to_contain_text("3 shapes")
    expect(rows.nth(1)).to_contain_text("Version 1")

    rows.nth(1).locator("input").check()
    rows.nth(0).locator("input").check()
    work.locator(".dl-history-compare").click()
    legend = page.locator(".dl-diff-legend li")
    expect(legend).to_have_text(["Removed: 1", "Added: 1", "Changed: 1", "Unchanged: 1"])
    expect(page.locator("canvas.dl-layer-shapes")).to_be_hidden()
    page.wait_for_function(
        "() => document.querySelector('canvas.dl-layer-diff').getBoundingClientRect().width > 0"
    )

    assert any(near(p, RED) for p in edge(page, DROPPED)), "removed: dashed red"
    assert any(near(p, GREEN) for p in edge(page, ADDED)), "added: green"
    assert any(near(p, AMBER) for p in edge(page, MOVED_TO)), "changed: amber"
    kept = [p for p in edge(page, KEPT) if p[3] > 0]
    assert kept and all(p[3] < 160 for p in kept), "unchanged: dimmed"
    assert not any(near(p, RED) or near(p, GREEN) for p in edge(page, KEPT))

    # Back to the annotation: nothing from the diff was saved.
    page.click(".dl-diff-back")
    expect(page.locator("canvas.dl-layer-diff")).to_be_hidden()
    expect(page.locator("canvas.dl-layer-shapes")).to_be_visible()
    assert page.evaluate("() => window.__defectlabWorkspace.doc.dirty") is False
    assert AnnotationVersion.objects.filter(annotation__task=task).count() == 2


def test_skip_with_unsaved_changes_asks_and_cancel_keeps_the_work(page: Any) -> None:
    tenant = tenant_with_images("Acme", tasks=2)
    annotator = tenant.user(Role.ANNOTATOR)
    log_in(page, annotator.email)
    page.goto(f"/projects/{tenant.project.pk}/")
    page.click("#start-labeling")
    page.wait_for_url(re.compile(r"/tasks/\d+/annotate/$"))
    open_workspace(page)
    first = task_id(page)
    draw_box(page, 100, 80, 260, 200)
    skip = page.locator(".dl-topbar .dl-btn", has_text="Skip")

    skip.click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_contain_text("changes that are not saved")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    assert task_id(page) == first and len(shapes(page)) == 1
    assert Task.objects.get(pk=first).lock_owner_id == annotator.pk
    assert not SkippedTask.objects.filter(task_id=first).exists()

    skip.click()
    page.get_by_role("alertdialog").get_by_role("button", name="Leave without saving").click()
    page.wait_for_function(
        "(first) => window.__defectlabWorkspace.config.task.id !== first", arg=first
    )
    assert SkippedTask.objects.filter(task_id=first).exists()

    # The next task is untouched: skipping it asks nothing. The skipped one comes back last,
    # with the unsaved work offered back from its draft.
    second = page.evaluate("() => window.__defectlabWorkspace.config.task.id")
    skip.click()
    page.wait_for_function(
        "(second) => window.__defectlabWorkspace.config.task.id !== second", arg=second
    )
    expect(page.get_by_role("alertdialog")).to_have_count(0)
    assert task_id(page) == first and len(shapes(page)) == 1


def test_leaving_the_page_with_unsaved_changes_asks_the_browser(page: Any) -> None:
    tenant = tenant_with_images("Acme", tasks=1)
    log_in(page, tenant.user(Role.ANNOTATOR).email)
    page.goto(f"/projects/{tenant.project.pk}/")
    page.click("#start-labeling")
    page.wait_for_url(re.compile(r"/tasks/\d+/annotate/$"))
    open_workspace(page)
    draw_box(page, 100, 80, 260, 200)
    asked: list[str] = []

    def stay(dialog: Any) -> None:
        asked.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", stay)
    page.click("header.topbar a.brand")
    page.wait_for_timeout(300)
    assert asked == ["beforeunload"]
    assert re.search(r"/tasks/\d+/annotate/$", page.url)

    # Saved work leaves without a question.
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !window.__defectlabWorkspace.doc.dirty")
    page.click("header.topbar a.brand")
    page.wait_for_url(re.compile(r"/o/\d+/$"))
    assert asked == ["beforeunload"]
