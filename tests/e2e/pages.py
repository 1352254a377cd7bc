"""What a person does in the browser, as small functions the end-to-end tests share."""

from __future__ import annotations

import re
from typing import Any

from defectlab.labeling import services
from tests.conftest import Tenant, make_tasks, make_tenant

PASSWORD = "a-long-password-1"


def log_in(page: Any, email: str, password: str = PASSWORD) -> None:
    page.goto("/login/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("form.stack button[type=submit]")
    page.wait_for_url(re.compile(r"/o/\d+/$"))


def open_workspace(page: Any, url: str | None = None) -> None:
    """Open (or wait for) a workspace page until its image is on the canvas."""
    if url is not None:
        page.goto(url)
    page.wait_for_function(
        "() => window.__defectlabWorkspace && !document.querySelector('.dl-loading')"
    )
    page.locator("canvas.dl-layer-overlay").click(position={"x": 5, "y": 5})
    page.keyboard.press("Escape")


def to_screen(page: Any, x: float, y: float) -> tuple[float, float]:
    """Image pixels → page coordinates (the view is not rotated in these tests)."""
    view = page.evaluate("() => window.__defectlabWorkspace.getView()")
    assert view["rotation"] == 0
    box = page.locator("canvas.dl-layer-overlay").bounding_box()
    return box["x"] + view["x"] + view["scale"] * x, box["y"] + view["y"] + view["scale"] * y


def draw_box(page: Any, x1: float, y1: float, x2: float, y2: float) -> None:
    page.keyboard.press("b")
    start = to_screen(page, x1, y1)
    end = to_screen(page, x2, y2)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, steps=4)
    page.mouse.move(*end, steps=4)
    page.mouse.up()


def draw_polygon(page: Any, points: list[tuple[float, float]]) -> None:
    page.keyboard.press("p")
    for x, y in points:
        page.mouse.click(*to_screen(page, x, y))
    page.keyboard.press("Enter")


def shapes(page: Any) -> list[dict[str, Any]]:
    return page.evaluate("() => window.__defectlabWorkspace.getShapes()")  # type: ignore[no-any-return]


WIDTH, HEIGHT = 640, 480


def tenant_with_images(name: str, tasks: int = 3) -> Tenant:
    """make_tenant's images are 64 by 48 pixels; a person draws on something larger."""
    tenant = make_tenant(name, tasks=1)
    services.delete_tasks(tenant.project, [task.pk for task in tenant.tasks])
    tenant.tasks = make_tasks(tenant.project, tasks, WIDTH, HEIGHT)
    return tenant


def inside_image(points: list[list[float]]) -> bool:
    return all(0 <= x <= WIDTH and 0 <= y <= HEIGHT for x, y in points)


def task_id(page: Any) -> int:
    match = re.search(r"/tasks/(\d+)/annotate/$", page.url)
    assert match, page.url
    return int(match.group(1))


def submit_and_wait_for_next(page: Any, current: int) -> None:
    """Submit and wait for the next task's image; it must open in place, without a page load."""
    page.evaluate("() => { window.__samePage = true; }")
    page.keyboard.press("Control+Enter")
    page.wait_for_function(
        "(current) => window.__defectlabWorkspace.config.task.id !== current"
        " && !document.querySelector('.dl-loading')",
        arg=current,
    )
    assert re.search(r"/tasks/\d+/annotate/$", page.url) and f"/tasks/{current}/" not in page.url
    assert page.evaluate("() => window.__samePage === true"), "the next task reloaded the page"
    assert page.title().startswith(
        page.evaluate("window.__defectlabWorkspace.config.task.fileName")
    )
