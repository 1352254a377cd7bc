"""The keys and usage pages, in English and in Chinese: admins make a key (its text shown once,
on the answer to the form), revoke one after a question, read the usage table with totals and
download the CSV; the operator changes the quota there; nobody else does either."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from defectlab.serving import keys
from defectlab.serving.models import OrganizationKey, Quota
from defectlab.tenancy.models import AuditEvent, Membership, Role, User
from tests.conftest import Tenant, signed_in
from tests.serving.calls import call

TEXT = re.compile(r"dlk_[a-z0-9]{10}_[A-Za-z0-9_-]{20,}")


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("en", ["API keys", "Make a key", "Last used", "Never", "Revoke"]),
        ("zh-hans", ["API 密钥", "创建密钥", "从未", "撤销", "权限范围"]),
    ],
)
def test_the_keys_page_in_both_languages(tenant: Tenant, language: str, words: list[str]) -> None:
    keys.create_key(tenant.organization, tenant.user(Role.OWNER), "line 3")
    page = signed_in(tenant.user(Role.ADMIN), language).get(f"/o/{tenant.organization.pk}/keys/")
    assert page.status_code == 200
    html = page.content.decode()
    for word in words:
        assert word in html, word
    assert "line 3" in html and not TEXT.search(html)


def test_a_new_key_is_shown_once_on_the_answer_that_made_it(tenant: Tenant) -> None:
    client = signed_in(tenant.user(Role.OWNER))
    url = f"/o/{tenant.organization.pk}/keys/"
    made = client.post(
        url,
        {"action": "create", "name": "line 3", "scopes": ["detect", "models"], "signed_only": "1"},
        HTTP_HX_REQUEST="true",
    )
    assert made.status_code == 200
    html = made.content.decode()
    text = TEXT.search(html)
    assert text is not None
    key = OrganizationKey.objects.get()
    assert keys.active_key(key.key_id).matches(text.group(0))  # type: ignore[union-attr]
    assert (key.scopes, key.signed_only, key.created_by) == (
        ["detect", "models"],
        True,
        tenant.user(Role.OWNER),
    )
    assert 'id="new-key"' in html and "will not be shown again" in html
    again = client.get(url).content.decode()
    assert text.group(0) not in again and 'id="new-key"' not in again
    assert f"dlk_{key.key_id}_…" in again


def test_a_bad_key_name_is_said_on_the_page_and_makes_nothing(tenant: Tenant) -> None:
    client = signed_in(tenant.user(Role.OWNER), "zh-hans")
    answer = client.post(f"/o/{tenant.organization.pk}/keys/", {"action": "create", "name": " "})
    assert answer.status_code == 200
    assert "请为密钥起一个不超过 100 个字符的名称。" in answer.content.decode()
    answer = client.post(f"/o/{tenant.organization.pk}/keys/", {"action": "create", "name": "x"})
    assert "请从以下范围中选择" in answer.content.decode()  # no scope ticked
    assert not OrganizationKey.objects.exists()


def test_revoking_from_the_page_asks_first_and_twice_is_once(tenant: Tenant) -> None:
    made, _text = keys.create_key(tenant.organization, None, "line 3")
    client = signed_in(tenant.user(Role.ADMIN))
    url = f"/o/{tenant.organization.pk}/keys/"
    assert 'data-confirm="Revoke the key line 3?' in client.get(url).content.decode()
    for _attempt in range(2):  # a second tab, or a double click
        answer = client.post(url, {"action": "revoke", "key": made.pk}, follow=True)
        assert answer.status_code == 200
    assert OrganizationKey.objects.get().revoked_at is not None
    assert AuditEvent.objects.filter(action="service_key.revoked").count() == 1
    html = client.get(url).content.decode()
    assert "Revoked" in html and 'value="revoke"' not in html


def test_another_organizations_key_cannot_be_revoked_from_this_page(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs, _text = keys.create_key(other_tenant.organization, None, "theirs")
    client = signed_in(tenant.user(Role.OWNER))
    answer = client.post(
        f"/o/{tenant.organization.pk}/keys/", {"action": "revoke", "key": theirs.pk}
    )
    assert answer.status_code == 200 and "Not found." in answer.content.decode()
    assert client.get(f"/o/{other_tenant.organization.pk}/keys/").status_code == 404
    assert client.get(f"/o/{other_tenant.organization.pk}/usage/").status_code == 404
    assert OrganizationKey.objects.get().revoked_at is None


@pytest.mark.parametrize("role", [Role.MANAGER, Role.REVIEWER, Role.ANNOTATOR])
def test_other_roles_are_sent_back_to_the_organization(tenant: Tenant, role: str) -> None:
    client = signed_in(tenant.user(role))
    org = tenant.organization.pk
    for url in (f"/o/{org}/keys/", f"/o/{org}/usage/"):
        answer = client.get(url)
        assert answer.status_code == 302 and answer["Location"] == f"/o/{org}/"
    client.post(f"/o/{org}/keys/", {"action": "create", "name": "mine", "scopes": ["detect"]})
    assert not OrganizationKey.objects.exists()
    home = client.get(f"/o/{org}/").content.decode()
    assert f"/o/{org}/keys/" not in home and f"/o/{org}/usage/" not in home


def test_the_organization_page_links_to_keys_and_usage_for_admins(tenant: Tenant) -> None:
    org = tenant.organization.pk
    html = signed_in(tenant.user(Role.ADMIN), "zh-hans").get(f"/o/{org}/").content.decode()
    assert f'href="/o/{org}/keys/">API 密钥' in html
    assert f'href="/o/{org}/usage/">检测用量' in html


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("en", ["Detection usage", "Quota", "Requests per minute", "Total", "Download CSV"]),
        ("zh-hans", ["检测用量", "配额", "每分钟请求数", "合计", "下载计费 CSV", "最近 30 天"]),
    ],
)
def test_the_usage_page_shows_the_quota_and_the_days_with_totals(
    tenant: Tenant, language: str, words: list[str], settings: object
) -> None:
    from django.utils import timezone

    key, _text = keys.create_key(tenant.organization, None, "line 3")
    call(tenant.organization, key, timezone.now(), images=3, detections=4)
    call(tenant.organization, key, timezone.now(), images=2, detections=1, status=429)
    client = signed_in(tenant.user(Role.OWNER), language)
    html = client.get(f"/o/{tenant.organization.pk}/usage/").content.decode()
    for word in words:
        assert word in html, word
    totals = re.search(r'<tr class="totals">(.*?)</tr>', html, re.S)
    assert totals is not None
    assert re.findall(r"<th>(\d+)</th>", totals.group(1)) == ["2", "5", "5", "1"]
    assert html.count("<tr data-date=") == 30
    assert f"/api/organizations/{tenant.organization.pk}/usage/?format=csv&amp;days=30" in html
    assert 'id="change-quota"' not in html  # the owner is not the operator
    week = client.get(f"/o/{tenant.organization.pk}/usage/?days=7").content.decode()
    assert week.count("<tr data-date=") == 7
    nonsense = client.get(f"/o/{tenant.organization.pk}/usage/?days=lots")
    assert nonsense.content.decode().count("<tr data-date=") == 30


def test_only_the_operator_changes_the_quota_from_the_usage_page(tenant: Tenant) -> None:
    url = f"/o/{tenant.organization.pk}/usage/"
    owner = signed_in(tenant.user(Role.OWNER))
    refused = owner.post(url, {"requests_per_minute": "999999", "weight": "100"}, follow=True)
    assert "Only the platform operator may change quotas." in refused.content.decode()
    assert not Quota.objects.exists()
    operator = User.objects.create_user("ops@plant.test", "a-long-password-1", is_staff=True)
    Membership.objects.create(organization=tenant.organization, user=operator, role=Role.ADMIN)
    client = signed_in(operator, "zh-hans")
    assert 'id="change-quota"' in client.get(url).content.decode()
    saved = client.post(
        url,
        {"requests_per_minute": "", "images_per_day": "5000", "concurrent_requests": "2",
         "max_image_mb": "10", "weight": "3"},
        follow=True,
    )  # fmt: skip
    assert "配额已保存。" in saved.content.decode()
    row = Quota.objects.get()
    assert (row.requests_per_minute, row.images_per_day, row.weight) == (None, 5000, 3)
    assert row.updated_by == operator
    bad = client.post(url, {"weight": "0"}, follow=True)
    assert bad.status_code == 200 and Quota.objects.get().weight == 3


def test_signed_out_visitors_are_asked_to_log_in(tenant: Tenant) -> None:
    for url in (f"/o/{tenant.organization.pk}/keys/", f"/o/{tenant.organization.pk}/usage/"):
        answer = Client().get(url)
        assert answer.status_code == 302 and "/login/" in answer["Location"]


def test_the_page_and_the_api_write_the_same_audit_rows(tenant: Tenant) -> None:
    from tests.conftest import client_for

    owner = tenant.user(Role.OWNER)
    org = tenant.organization.pk
    signed_in(owner).post(
        f"/o/{org}/keys/", {"action": "create", "name": "cam", "scopes": ["detect"]}
    )
    client_for(owner).post(
        f"/api/organizations/{org}/service-keys/",
        {"name": "cam", "scopes": ["detect"]},
        format="json",
    )
    page_key, api_key = OrganizationKey.objects.order_by("id")
    signed_in(owner).post(f"/o/{org}/keys/", {"action": "revoke", "key": page_key.pk})
    client_for(owner).post(f"/api/service-keys/{api_key.pk}/revoke/")

    def row(event: AuditEvent) -> dict[str, object]:
        data = {name: value for name, value in event.data.items() if name != "key_id"}
        return {
            "action": event.action,
            "organization": event.organization_id,
            "actor": event.actor_id,
            "target_type": event.target_type,
            "data": data,
        }

    for action in ("service_key.created", "service_key.revoked"):
        by_page, by_api = AuditEvent.objects.filter(action=action).order_by("id")
        assert row(by_page) == row(by_api)
        assert by_page.target_id == str(page_key.pk) and by_api.target_id == str(api_key.pk)
