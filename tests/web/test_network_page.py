"""Network access: an admin allows exact company addresses at runtime; everyone else only looks."""

from __future__ import annotations

from defectlab.ingest.models import AllowedNetwork
from defectlab.tenancy.models import AuditEvent, Role
from tests.conftest import Tenant
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
