"""A manager whose browser asks for Chinese adds a model backend from the models page, checks
it (refused on loopback, with the rule and the way to the network access page; then, once the
operator opened loopback, with a project: /health and /setup answered), and deletes it after
the question."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from defectlab.inference.models import MLBackend
from defectlab.media.secrets import decrypt_secret
from defectlab.tenancy.models import Role
from tests.e2e.pages import log_in, tenant_with_images
from tests.inference.test_backends import Backend


@pytest.fixture
def server() -> Iterator[Backend]:
    running = Backend()
    yield running
    running.close()


def test_a_manager_adds_checks_and_deletes_a_backend_in_chinese(
    browser: Any, browser_context_args: dict[str, Any], server: Backend, settings: Any
) -> None:
    settings.FETCH_ALLOWLIST = []
    settings.PUBLIC_URLS = ["https://labels.example.com"]
    tenant = tenant_with_images("Acme", tasks=1)
    manager = tenant.user(Role.MANAGER)
    context = browser.new_context(**{**browser_context_args, "locale": "zh-CN"})
    page = context.new_page()
    log_in(page, manager.email)

    page.goto(f"/o/{tenant.organization.pk}/models/")
    page.get_by_role("link", name="模型后端").click()
    expect(page.locator("h1")).to_have_text("模型后端")
    form = page.locator("#add-backend")
    form.get_by_label("名称").fill("SAM")
    form.get_by_label("地址", exact=True).fill(server.url())
    form.get_by_label("Authorization 请求头").fill("Token abc123")
    form.get_by_label("备注").fill("三号线")
    form.get_by_role("button", name="添加").click()
    expect(page.locator(".message.success")).to_have_text("模型后端“SAM”已添加。")
    backend = MLBackend.objects.get()
    assert decrypt_secret(backend.auth) == "Token abc123"
    card = page.locator(f"#backend-{backend.pk}")
    expect(card).to_contain_text("已设置")
    expect(card).not_to_contain_text("abc123")
    expect(card.locator(".chip")).to_have_text("未检查")

    # Loopback: refused before any connection, with the rule and who can lift it.
    card.get_by_role("button", name="检查").click()
    result = page.locator("#check-result")
    expect(result).to_contain_text("规则：loopback")
    expect(result.locator("code.rule")).to_have_text("loopback")
    expect(result).to_contain_text("DEFECTLAB_FETCH_ALLOWLIST")
    expect(page.locator(f"#backend-{backend.pk} .chip")).to_have_text("不可用")
    assert server.seen == []
    result.get_by_role("link", name="网络访问页面").click()
    page.wait_for_url(f"**/o/{tenant.organization.pk}/network/")

    # The operator opens loopback: a check with the project asks /health and /setup.
    settings.FETCH_ALLOWLIST = ["127.0.0.1/32"]
    page.goto(f"/o/{tenant.organization.pk}/backends/")
    card = page.locator(f"#backend-{backend.pk}")
    card.locator("select[name=project]").select_option(str(tenant.project.pk))
    card.get_by_role("button", name="检查").click()
    result = page.locator("#check-result")
    expect(result).to_contain_text("后端已响应 /health 和 /setup。")
    expect(result.locator("code")).to_have_text("fake-1.0")
    expect(page.locator(f"#backend-{backend.pk} .chip")).to_have_text("正常")
    assert [path for path, _headers, _body in server.seen] == ["/health", "/setup"]
    assert server.seen[0][1].get("Authorization") == "Token abc123"
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 1366, "the page scrolls sideways at 1366 pixels"

    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    with page.expect_navigation():
        page.locator(f"#backend-{backend.pk} button[value=delete]").click()
    assert questions == ["删除模型后端 SAM？它已生成的预测会保留。"]
    expect(page.locator(".message.success")).to_have_text("模型后端“SAM”已删除。")
    assert not MLBackend.objects.exists()
    context.close()
