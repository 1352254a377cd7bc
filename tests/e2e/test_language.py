"""The interface language: switched from the header, kept on every page (the canvas included).

The screenshots of the main pages in both languages (docs/screenshots/<page>-<lang>.png) are
taken here too, at the end of a session, and overwritten on every run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from defectlab.labeling import workflow
from defectlab.tenancy.models import Role
from tests.conftest import annotate, box
from tests.e2e.pages import draw_box, log_in, open_workspace, tenant_with_images

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ENGLISH_WORDS = ["Log out", "Submit", "Filter", "Settings", "Members", "Password", "Save"]


def switch_language(page: Any, code: str) -> None:
    page.select_option("#language", code)
    expect(page.locator("html")).to_have_attribute("lang", code)


def assert_chinese(page: Any, *expected: str) -> None:
    text = page.locator("body").inner_text()
    for word in expected:
        assert word in text, f"{word!r} missing on {page.url}"
    for word in ENGLISH_WORDS:
        assert word not in text, f"English {word!r} on {page.url}"


def test_language_switch_shows_chinese_on_every_page(page: Any) -> None:
    tenant = tenant_with_images("Acme", tasks=1)
    log_in(page, tenant.user(Role.OWNER).email)
    expect(page.locator("header")).to_contain_text("Log out")

    switch_language(page, "zh-hans")
    assert_chinese(page, "退出登录")
    organization, project = tenant.organization.pk, tenant.project.pk
    for url in [
        f"/o/{organization}/",
        f"/projects/{project}/",
        f"/projects/{project}/settings/",
        f"/o/{organization}/members/",
        f"/o/{organization}/jobs/",
        f"/o/{organization}/network/",
        f"/o/{organization}/models/",
        f"/o/{organization}/backends/",
        f"/projects/{project}/data/",
        "/account/",
    ]:
        page.goto(url)
        expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
        assert_chinese(page, "退出登录")

    page.goto(f"/tasks/{tenant.tasks[0].pk}/annotate/")
    open_workspace(page)
    expect(page.locator(".dl-btn-submit")).to_contain_text("提交")
    assert_chinese(page, "退出登录", "提交")


def test_screenshots_of_the_main_pages_in_both_languages(page: Any) -> None:
    tenant = tenant_with_images("Acme", tasks=3)
    labeling, reviewing = tenant.tasks[0], tenant.tasks[1]
    workflow.add_prediction(
        labeling,
        model_name="detector",
        model_version="7",
        shapes=[box(tenant.label, 380, 260, 560, 400)],
    )
    annotate(tenant, reviewing)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def shoot(name: str, language: str) -> None:
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{language}.png"))

    for code, language in [("en", "en"), ("zh-hans", "zh")]:
        page.goto("/login/")
        if page.locator("html").get_attribute("lang") != code:
            switch_language(page, code)
        shoot("login", language)
        log_in(page, tenant.user(Role.OWNER).email)
        expect(page.locator("html")).to_have_attribute("lang", code)
        shoot("organization", language)
        page.goto(f"/projects/{tenant.project.pk}/")
        shoot("project", language)
        open_workspace(page, f"/tasks/{labeling.pk}/annotate/")
        draw_box(page, 60, 50, 240, 190)
        shoot("workspace", language)
        open_workspace(page, f"/tasks/{reviewing.pk}/review/")
        shoot("review", language)
        page.goto(f"/projects/{tenant.project.pk}/data/")
        shoot("data", language)
        page.goto(f"/o/{tenant.organization.pk}/jobs/")
        shoot("jobs", language)
        page.goto("/account/")
        shoot("account", language)
        page.click("header form button.link")  # log out
        page.wait_for_url("**/login/")
        page.evaluate("() => localStorage.clear()")  # no restored draft in the next language

    for name in [
        "login",
        "organization",
        "project",
        "workspace",
        "review",
        "data",
        "jobs",
        "account",
    ]:
        for language in ["en", "zh"]:
            assert (SCREENSHOTS / f"{name}-{language}.png").stat().st_size > 5000
