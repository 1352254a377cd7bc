"""An admin makes a detection service key on the keys page, sees its text once (copied with
the button), reloads (gone: only its public part is listed), and revokes it after the question;
the usage page in Chinese shows the quota and the days with their totals."""

from __future__ import annotations

import re
from typing import Any

from django.utils import timezone
from playwright.sync_api import expect

from defectlab.serving import keys
from defectlab.serving.models import OrganizationKey
from defectlab.tenancy.models import Role
from tests.conftest import make_tenant
from tests.e2e.pages import log_in
from tests.serving.calls import call


def test_an_admin_makes_a_key_sees_it_once_and_revokes_it(
    browser: Any, browser_context_args: dict[str, Any]
) -> None:
    tenant = make_tenant("Acme", tasks=1)
    admin = tenant.user(Role.ADMIN)
    context = browser.new_context(**browser_context_args)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    log_in(page, admin.email)
    page.goto(f"/o/{tenant.organization.pk}/")
    page.get_by_role("link", name="API keys").click()
    expect(page.locator("h1")).to_have_text("API keys")
    expect(page.locator("table.service-keys")).to_contain_text("No keys yet.")

    form = page.locator("#create-key")
    form.get_by_label("Name").fill("line 3 camera")
    form.get_by_label("Manage models").check()
    form.get_by_role("button", name="Make the key").click()
    shown = page.locator("#new-key-text")
    expect(shown).to_have_text(re.compile(r"^dlk_[a-z0-9]{10}_[A-Za-z0-9_-]{20,}$"))
    expect(page.locator("#new-key")).to_contain_text("it will not be shown again")
    text = shown.inner_text()
    key = OrganizationKey.objects.get()
    assert key.scopes == ["detect", "models"] and key.created_by == admin
    assert keys.active_key(key.key_id).matches(text)  # type: ignore[union-attr]
    assert page.url.endswith(f"/o/{tenant.organization.pk}/keys/")  # htmx: no form to resend
    page.locator("#copy-key").click()
    expect(page.locator("#copy-key")).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == text
    row = page.locator(f"#key-{key.pk}")
    expect(row).to_contain_text("line 3 camera")
    expect(row).to_contain_text("Never")

    page.reload()
    expect(page.locator("#new-key")).to_have_count(0)
    assert text not in page.content()
    expect(page.locator(f"#key-{key.pk}")).to_contain_text(f"dlk_{key.key_id}_…")
    assert OrganizationKey.objects.count() == 1  # the reload made nothing

    revoke = page.locator(f"#key-{key.pk} button[value=revoke]")
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    revoke.click()
    expect(page.locator(f"#key-{key.pk}")).to_have_attribute("data-revoked", "false")
    assert questions and questions[0].startswith("Revoke the key line 3 camera?")
    assert OrganizationKey.objects.get().revoked_at is None

    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        revoke.click()
    expect(page.locator(".message.success")).to_have_text("The key “line 3 camera” was revoked.")
    expect(page.locator(f"#key-{key.pk}")).to_have_attribute("data-revoked", "true")
    expect(page.locator(f"#key-{key.pk}")).to_contain_text("Revoked")
    expect(page.locator(f"#key-{key.pk} button[value=revoke]")).to_have_count(0)
    assert keys.active_key(key.key_id) is None
    context.close()


def test_the_usage_page_in_chinese_shows_the_table(
    browser: Any, browser_context_args: dict[str, Any]
) -> None:
    tenant = make_tenant("Acme", tasks=1)
    key, _text = keys.create_key(tenant.organization, None, "line 3")
    now = timezone.now()
    call(tenant.organization, key, now, images=4, detections=6)
    call(tenant.organization, key, now, images=1, status=429)
    context = browser.new_context(**{**browser_context_args, "locale": "zh-CN"})
    page = context.new_page()
    log_in(page, tenant.user(Role.OWNER).email)
    page.goto(f"/o/{tenant.organization.pk}/")
    page.get_by_role("link", name="检测用量").click()
    expect(page.locator("h1")).to_have_text("检测用量")
    expect(page.locator("#quota")).to_contain_text("每分钟请求数")
    expect(page.locator("#quota")).to_contain_text("系统默认值")
    table = page.locator("table.usage")
    expect(table.locator("thead")).to_contain_text("调用次数")
    expect(table.locator("tbody tr")).to_have_count(30)
    today = table.locator(f"tr[data-date='{now.date().isoformat()}'] td")
    expect(today).to_have_text([now.date().isoformat(), "2", "5", "6", "1"])
    expect(table.locator("tfoot tr th")).to_have_text(["合计", "2", "5", "6", "1"])
    with page.expect_navigation():
        page.get_by_label("范围").select_option("7")
    expect(table.locator("tbody tr")).to_have_count(7)
    expect(page.locator("#usage-csv")).to_have_attribute("href", re.compile(r"format=csv&days=7$"))
    with page.expect_download() as download:
        page.locator("#usage-csv").click()
    with open(download.value.path(), encoding="utf-8") as file:
        lines = file.read().splitlines()
    assert lines[0].startswith("date,organization_id,key_id,key_name")
    assert lines[1].endswith(",line 3,panels,1,2,5,6,1")
    context.close()
