"""The allowlist API: admins edit it, everyone in the organization reads it, other
organizations never see it, every change is audited, and what it holds is what fetches obey."""

from __future__ import annotations

from typing import Any

import pytest

from defectlab.ingest.fetcher import Refused, check_url
from defectlab.ingest.models import AllowedNetwork
from defectlab.ingest.services import add_allowed_network, allowlist_for
from defectlab.tenancy.models import AuditEvent, Role
from tests.conftest import Tenant, client_for

URL = "/api/allowlist/"


def _add(tenant: Tenant, role: str, value: str, note: str = "") -> Any:
    return client_for(tenant.user(role)).post(
        URL, {"organization": tenant.organization.pk, "value": value, "note": note}, format="json"
    )


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_admins_add_and_remove_entries_and_each_change_is_audited(
    tenant: Tenant, role: str
) -> None:
    response = _add(tenant, role, " 192.168.1.7 ", "line 3 camera")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["value"] == "192.168.1.7/32"
    assert body["kind"] == "network"
    assert body["note"] == "line 3 camera"
    assert body["organization"] == tenant.organization.pk
    assert body["created_by"] == tenant.user(role).email
    added = AuditEvent.objects.get(organization=tenant.organization, action="allowlist.added")
    assert added.actor == tenant.user(role)
    assert added.data == {"value": "192.168.1.7/32", "note": "line 3 camera"}

    client = client_for(tenant.user(role))
    assert client.delete(f"{URL}{body['id']}/").status_code == 204
    assert not AllowedNetwork.objects.filter(pk=body["id"]).exists()
    removed = AuditEvent.objects.get(organization=tenant.organization, action="allowlist.removed")
    assert removed.data == {"value": "192.168.1.7/32"}


def test_host_name_entries_are_stored_in_lower_case(tenant: Tenant) -> None:
    body = _add(tenant, Role.ADMIN, "MinIO.Plant.Example.").json()
    assert (body["value"], body["kind"]) == ("minio.plant.example", "hostname")


@pytest.mark.parametrize("role", [Role.MANAGER, Role.REVIEWER, Role.ANNOTATOR])
def test_other_roles_may_read_the_allowlist_but_not_change_it(tenant: Tenant, role: str) -> None:
    entry = add_allowed_network(tenant.organization, tenant.user(Role.OWNER), "10.20.0.0/24")
    client = client_for(tenant.user(role))
    listed = client.get(URL)
    assert listed.status_code == 200
    assert [row["value"] for row in listed.json()] == ["10.20.0.0/24"]
    refused = _add(tenant, role, "10.30.0.0/24")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert client.delete(f"{URL}{entry.pk}/").status_code == 403
    assert list(AllowedNetwork.objects.values_list("value", flat=True)) == ["10.20.0.0/24"]
    changes = AuditEvent.objects.filter(action__startswith="allowlist.")
    assert [(row.action, row.actor) for row in changes] == [
        ("allowlist.added", tenant.user(Role.OWNER))  # the owner's entry above, nothing more
    ]


@pytest.mark.parametrize("value", ["0.0.0.0/0", "::/0", "10.0.0.0/7", "2001:db8::/31"])
def test_broad_ranges_are_refused_with_a_clear_400(tenant: Tenant, value: str) -> None:
    response = _add(tenant, Role.OWNER, value)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "allowlist_too_broad"
    assert value in error["message"] and "/8" in error["message"] and "/32" in error["message"]
    assert not AllowedNetwork.objects.exists()


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("10.0.0.5/24", "10.0.0.0/24"),
        ("*.plant.example", "10.20.0.0/24"),
        ("224.0.0.1", "multicast"),
        ("", ""),
    ],
)
def test_unreadable_entries_are_refused_saying_what_to_write(
    tenant: Tenant, value: str, hint: str
) -> None:
    response = _add(tenant, Role.OWNER, value)
    assert response.status_code == 400
    assert hint in response.json()["error"]["message"]


def test_the_same_entry_twice_is_a_conflict_whatever_the_spelling(tenant: Tenant) -> None:
    assert _add(tenant, Role.OWNER, "192.168.1.7").status_code == 201
    again = _add(tenant, Role.ADMIN, "192.168.1.7/32")
    assert again.status_code == 409
    assert AllowedNetwork.objects.count() == 1


def test_other_organizations_entries_are_404_and_invisible(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    foreign = add_allowed_network(
        other_tenant.organization, other_tenant.user(Role.OWNER), "10.9.0.0/16"
    )
    owner = client_for(tenant.user(Role.OWNER))
    assert owner.get(URL).json() == []
    assert owner.get(f"{URL}?organization={other_tenant.organization.pk}").json() == []
    assert owner.delete(f"{URL}{foreign.pk}/").status_code == 404
    into_foreign = owner.post(
        URL, {"organization": other_tenant.organization.pk, "value": "10.1.0.0/16"}, format="json"
    )
    assert into_foreign.status_code == 404
    nowhere = owner.post(URL, {"organization": 999_999, "value": "10.1.0.0/16"}, format="json")
    assert nowhere.status_code == 404
    assert list(AllowedNetwork.objects.values_list("value", flat=True)) == ["10.9.0.0/16"]


def test_anonymous_callers_get_401(tenant: Tenant) -> None:
    assert client_for(None).get(URL).status_code == 401


def test_what_the_admin_allows_is_what_the_organizations_fetches_may_reach(
    tenant: Tenant, other_tenant: Tenant, connections: list[tuple[str, int]]
) -> None:
    url = "http://10.20.0.7/a.png"  # checked only: tests never connect beyond loopback
    with pytest.raises(Refused):
        check_url(url, allowlist=allowlist_for(tenant.organization))
    assert _add(tenant, Role.ADMIN, "10.20.0.0/24").status_code == 201
    check_url(url, allowlist=allowlist_for(tenant.organization))
    check_url(url, allowlist=allowlist_for(tenant.organization.pk))
    with pytest.raises(Refused):  # one organization's allowlist is no one else's
        check_url(url, allowlist=allowlist_for(other_tenant.organization))
    assert connections == []
