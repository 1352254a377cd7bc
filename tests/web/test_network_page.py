"""Network access: an admin allows exact company addresses at runtime; everyone else only looks."""

from __future__ import annotations

import ipaddress

import pytest

from defectlab.ingest import hostaddrs
from defectlab.ingest.models import AllowedNetwork
from defectlab.tenancy.models import AuditEvent, Role
from tests.conftest import Tenant
from tests.ingest.test_allowlist import OPERATOR_ONLY, SERVER_ADDRESS
from tests.web.test_pages import signed_in


def url(tenant: Tenant) -> str:
    return f"/o/{tenant.organization.pk}/network/"


def test_an_admin_allows_and_removes_an_address(tenant: Tenant) -> None:
    admin = signed_in(tenant.user(Role.ADMIN))
    page = admin.post(url(tenant), {"value": "10.20.0.7", "note": "line 3 camera"}, follow=True)
    assert "10.20.0.7/32 is allowed now." in page.content.decode()
    entry = AllowedNetwork.objects.get(organization=tenant.organization)
    assert (entry.value, entry.note) == ("10.20.0.7/32", "line 3 camera")
    assert AuditEvent.objects.filter(action="allowlist.added").exists()
    admin.post(url(tenant), {"action": "delete", "entry": entry.pk})
    assert not AllowedNetwork.objects.exists()
    assert AuditEvent.objects.filter(action="allowlist.removed").exists()


def test_a_whole_network_is_refused_with_the_reason(tenant: Tenant) -> None:
    page = signed_in(tenant.user(Role.ADMIN)).post(url(tenant), {"value": "0.0.0.0/0"}, follow=True)
    assert "can never be allowed" in page.content.decode() or "too broad" in page.content.decode()
    assert not AllowedNetwork.objects.exists()


def test_a_manager_sees_the_list_but_cannot_change_it(tenant: Tenant) -> None:
    manager = signed_in(tenant.user(Role.MANAGER))
    html = manager.get(url(tenant)).content.decode()
    assert "Nothing is allowed beyond the public internet." in html and 'name="value"' not in html
    page = manager.post(url(tenant), {"value": "10.20.0.7"}, follow=True)
    assert "Your role does not allow this." in page.content.decode()
    assert not AllowedNetwork.objects.exists()


def test_another_organizations_entry_cannot_be_removed(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = AllowedNetwork.objects.create(
        organization=other_tenant.organization, value="10.9.9.9/32"
    )
    signed_in(tenant.user(Role.ADMIN)).post(url(tenant), {"action": "delete", "entry": theirs.pk})
    assert AllowedNetwork.objects.filter(pk=theirs.pk).exists()


@pytest.mark.parametrize(("value", "rule"), OPERATOR_ONLY, ids=[row[0] for row in OPERATOR_ONLY])
def test_the_page_refuses_what_only_the_operator_may_open(
    tenant: Tenant, value: str, rule: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hostaddrs, "own_addresses", lambda: {ipaddress.ip_address(SERVER_ADDRESS)})
    page = signed_in(tenant.user(Role.ADMIN)).post(url(tenant), {"value": value}, follow=True)
    html = page.content.decode()
    assert "cannot be opened by an organization" in html
    assert f"(rule: {rule})" in html and "DEFECTLAB_FETCH_ALLOWLIST" in html
    assert not AllowedNetwork.objects.exists()
    assert not AuditEvent.objects.filter(action="allowlist.added").exists()


def test_the_page_refuses_in_chinese_too(tenant: Tenant) -> None:
    admin = signed_in(tenant.user(Role.ADMIN), "zh-hans")
    html = admin.post(url(tenant), {"value": "127.0.0.1"}, follow=True).content.decode()
    assert "组织无法开放 127.0.0.1/32" in html and "规则：loopback" in html
    assert not AllowedNetwork.objects.exists()


def test_entries_stored_before_the_rule_are_flagged_as_not_in_effect(tenant: Tenant) -> None:
    for value in ("127.0.0.1/32", "10.20.0.0/24"):
        AllowedNetwork.objects.create(organization=tenant.organization, value=value)
    html = signed_in(tenant.user(Role.MANAGER)).get(url(tenant)).content.decode()
    assert html.count("Not in effect:") == 1
    assert "127.0.0.1 is a loopback address" in html and "(rule: loopback)" in html
    zh = signed_in(tenant.user(Role.MANAGER), "zh-hans").get(url(tenant)).content.decode()
    assert "未生效：" in zh
