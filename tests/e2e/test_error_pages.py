"""What a person sees in the browser when a page is refused: a log-in tab left open while they
logged in and out in another, and an address that is not there, in Chinese."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.conftest import make_tenant
from tests.e2e.pages import PASSWORD, log_in


def test_a_stale_log_in_tab_shows_the_log_in_page_again_with_a_message(page: Any) -> None:
    tenant = make_tenant("Acme", tasks=1)
    email = tenant.organization.memberships.get(role="owner").user.email
    stale = page.context.new_page()
    stale.goto("/login/")  # opened first, then forgotten

    log_in(page, email)  # another tab of the same browser logs in…
    page.click("header form button.link")  # …and out
    page.wait_for_url("**/login/")

    stale.fill("input[name=email]", email)
    stale.fill("input[name=password]", PASSWORD)
    stale.click("form.stack button[type=submit]")
    expect(stale.locator("h1")).to_have_text("Log in")
    expect(stale.locator("[role=alert]")).to_contain_text("This log-in page had expired")
    expect(stale.locator("input[name=email]")).to_have_value(email)

    stale.fill("input[name=password]", PASSWORD)  # the page shown again works
    stale.click("form.stack button[type=submit]")
    stale.wait_for_url(re.compile(r"/o/\d+/$"))


def test_a_missing_page_in_chinese_is_the_apps_page_with_a_way_back(
    browser: Any, browser_context_args: dict[str, Any]
) -> None:
    context = browser.new_context(**{**browser_context_args, "locale": "zh-CN"})
    try:
        page = context.new_page()
        page.goto("/login/")
        page.goto("/no-such-page/")
        expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
        expect(page.locator("h1")).to_have_text("找不到页面")
        expect(page.locator(".topbar .brand")).to_have_text("DefectLab")
        page.get_by_text("返回上一页").click()
        page.wait_for_url("**/login/")
        page.goto("/no-such-page/")
        page.get_by_text("前往首页").click()
        page.wait_for_url("**/login/?next=/")
        expect(page.locator("h1")).to_have_text("登录")
    finally:
        context.close()
