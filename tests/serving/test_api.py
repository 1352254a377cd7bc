"""The control plane's API: keys (admins and owners; the text answered once), the quota (read
by admins, changed only by the operator), usage as JSON and as the billing CSV; another
organization's ids answer 404."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from defectlab.serving import keys
from defectlab.serving.models import OrganizationKey, Quota
from defectlab.tenancy.models import AuditEvent, Membership, Role, User
from tests.conftest import ROLES, Tenant, client_for
from tests.serving.calls import at, call, expected_billing

ADMINS = {Role.OWNER, Role.ADMIN}


def _operator(tenant: Tenant, role: str = Role.ANNOTATOR) -> User:
    user = User.objects.create_user("ops@plant.test", "a-long-password-1", is_staff=True)
    Membership.objects.create(organization=tenant.organization, user=user, role=role)
    return user


@pytest.mark.parametrize("role", ROLES)
def test_only_admins_and_owners_list_make_and_revoke_keys(tenant: Tenant, role: str) -> None:
    client = client_for(tenant.user(role))
    org = tenant.organization.pk
    existing, _text = keys.create_key(tenant.organization, None, "line 3")
    listed = client.get(f"/api/organizations/{org}/service-keys/")
    made = client.post(
        f"/api/organizations/{org}/service-keys/",
        {"name": "line 4", "scopes": ["detect", "models"], "signed_only": True},
        format="json",
    )
    one = client.get(f"/api/service-keys/{existing.pk}/")
    revoked = client.post(f"/api/service-keys/{existing.pk}/revoke/")
    if role not in ADMINS:
        assert {r.status_code for r in (listed, made, one, revoked)} == {403}
        assert made.json()["error"]["code"] == "forbidden"
        assert OrganizationKey.objects.count() == 1
        assert OrganizationKey.objects.get().revoked_at is None
        return
    assert listed.status_code == 200 and [k["name"] for k in listed.json()] == ["line 3"]
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["key"].startswith(f"dlk_{body['key_id']}_")
    assert body["prefix"] == f"dlk_{body['key_id']}"
    assert (body["scopes"], body["signed_only"], body["created_by"]) == (
        ["detect", "models"],
        True,
        tenant.user(role).email,
    )
    assert one.status_code == 200 and "key" not in one.json()
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert revoked.json()["active"] is False
    # The text is never answered again: not in the list, not in one key.
    again = client.get(f"/api/organizations/{org}/service-keys/").json()
    assert [k["name"] for k in again] == ["line 4", "line 3"]
    assert body["key"] not in str(again)
    assert body["key"] not in client.get(f"/api/service-keys/{body['id']}/").content.decode()


def test_a_key_is_made_with_the_detect_scope_unless_told(tenant: Tenant) -> None:
    client = client_for(tenant.user(Role.ADMIN))
    answer = client.post(
        f"/api/organizations/{tenant.organization.pk}/service-keys/", {"name": "cam"}, format="json"
    )
    assert answer.status_code == 201
    assert (answer.json()["scopes"], answer.json()["signed_only"]) == (["detect"], False)


@pytest.mark.parametrize(
    "body",
    [{"name": "cam", "scopes": []}, {"name": "cam", "scopes": ["root"]}, {"name": " "},
     {"name": "x" * 101}, {"scopes": ["detect"]}],
)  # fmt: skip
def test_a_bad_key_is_refused_in_the_error_shape(tenant: Tenant, body: dict[str, Any]) -> None:
    client = client_for(tenant.user(Role.OWNER))
    answer = client.post(
        f"/api/organizations/{tenant.organization.pk}/service-keys/", body, format="json"
    )
    assert answer.status_code == 400
    assert set(answer.json()["error"]) >= {"code", "message"}
    assert not OrganizationKey.objects.exists()


def test_revoking_twice_answers_the_same_and_writes_one_audit_row(tenant: Tenant) -> None:
    client = client_for(tenant.user(Role.OWNER))
    made, _text = keys.create_key(tenant.organization, None, "line 3")
    first = client.post(f"/api/service-keys/{made.pk}/revoke/")
    second = client.post(f"/api/service-keys/{made.pk}/revoke/")
    assert first.status_code == second.status_code == 200
    assert first.json()["revoked_at"] == second.json()["revoked_at"]
    assert AuditEvent.objects.filter(action="service_key.revoked").count() == 1


def test_another_organizations_keys_quota_and_usage_answer_404(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs, _text = keys.create_key(other_tenant.organization, None, "theirs")
    foreign = other_tenant.organization.pk
    for user in (tenant.user(Role.OWNER), _operator(tenant, Role.OWNER)):
        client = client_for(user)
        answers = [
            client.get(f"/api/organizations/{foreign}/service-keys/"),
            client.post(
                f"/api/organizations/{foreign}/service-keys/", {"name": "x"}, format="json"
            ),
            client.get(f"/api/service-keys/{theirs.pk}/"),
            client.post(f"/api/service-keys/{theirs.pk}/revoke/"),
            client.get(f"/api/organizations/{foreign}/quota/"),
            client.patch(f"/api/organizations/{foreign}/quota/", {"weight": 9}, format="json"),
            client.get(f"/api/organizations/{foreign}/usage/"),
            client.get(f"/api/organizations/{foreign}/usage/?format=csv"),
        ]
        assert [answer.status_code for answer in answers] == [404] * len(answers)
        assert all(a.json()["error"]["code"] == "not_found" for a in answers)
    assert OrganizationKey.objects.filter(organization=other_tenant.organization).count() == 1
    assert OrganizationKey.objects.get(pk=theirs.pk).revoked_at is None
    assert not Quota.objects.exists()


@pytest.mark.parametrize("role", ROLES)
def test_admins_read_the_quota_and_nobody_but_the_operator_changes_it(
    tenant: Tenant, role: str
) -> None:
    client = client_for(tenant.user(role))
    url = f"/api/organizations/{tenant.organization.pk}/quota/"
    read = client.get(url)
    if role in ADMINS:
        assert read.status_code == 200
        assert read.json()["custom"] is False
    else:
        assert read.status_code == 403
    for method in ("put", "patch"):
        answer = getattr(client, method)(url, {"requests_per_minute": 10**6}, format="json")
        assert answer.status_code == 403, answer.content
        assert answer.json()["error"]["code"] == "forbidden"
    assert not Quota.objects.exists()


def test_the_operator_changes_a_quota_field_by_field(tenant: Tenant) -> None:
    client = client_for(_operator(tenant))
    url = f"/api/organizations/{tenant.organization.pk}/quota/"
    answer = client.patch(url, {"images_per_day": 5000, "weight": 4}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["images_per_day"] == 5000 and answer.json()["custom"] is True
    lifted = client.put(url, {"requests_per_minute": None}, format="json")
    assert lifted.json()["requests_per_minute"] is None
    assert lifted.json()["images_per_day"] == 5000 and lifted.json()["weight"] == 4
    refused = client.patch(url, {"weight": 0}, format="json")
    assert refused.status_code == 400
    owner = client_for(tenant.user(Role.OWNER)).get(url).json()
    assert owner == lifted.json()
    assert AuditEvent.objects.filter(action="quota.updated").count() == 2


def test_usage_as_json_per_day_and_per_key(tenant: Tenant, other_tenant: Tenant) -> None:
    org = tenant.organization
    line3, _text = keys.create_key(org, None, "line 3")
    call(org, line3, at("2026-03-01", 1), images=3, detections=4)
    call(org, line3, at("2026-03-02", 1), images=1, status=500)
    call(other_tenant.organization, None, at("2026-03-01"), images=99)
    client = client_for(tenant.user(Role.ADMIN))
    url = f"/api/organizations/{org.pk}/usage/"
    body = client.get(url, {"start": "2026-03-01", "end": "2026-03-03"}).json()
    assert body["start"] == "2026-03-01" and body["end"] == "2026-03-03" and body["by"] == []
    assert [(r["date"], r["calls"], r["images"], r["errors"]) for r in body["rows"]] == [
        ("2026-03-01", 1, 3, 0),
        ("2026-03-02", 1, 1, 1),
        ("2026-03-03", 0, 0, 0),
    ]
    assert body["totals"] == {"calls": 2, "images": 4, "detections": 4, "errors": 1}
    per_key = client.get(url + "?start=2026-03-01&end=2026-03-03&by=key&by=version").json()
    assert per_key["by"] == ["key", "version"]
    assert {(r["key_id"], r["key_name"], r["model"], r["version"]) for r in per_key["rows"]} == {
        (line3.key_id, "line 3", "panels", 1)
    }
    bad = client.get(url, {"start": "2026-03-05", "end": "2026-03-01"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_range"
    assert client.get(url, {"by": "project"}).status_code == 400
    assert len(client.get(url).json()["rows"]) == 30
    assert client_for(tenant.user(Role.MANAGER)).get(url).status_code == 403


@pytest.mark.parametrize("ask", ["query", "accept"])
def test_the_billing_csv_is_the_call_rows_made(
    tenant: Tenant, other_tenant: Tenant, ask: str
) -> None:
    org = tenant.organization
    line3, _text = keys.create_key(org, None, "line 3")
    line4, _text = keys.create_key(org, None, "line 4")
    made = [
        call(org, line3, at("2026-03-01", 0, 0), images=2, detections=3),
        call(org, line3, at("2026-03-01", 23, 59), images=2, detections=3),
        call(org, line3, at("2026-03-01", 8), images=1, detections=0, version=2),
        call(org, line4, at("2026-03-01", 9), images=5, detections=1, status=413),
        call(org, line4, at("2026-03-03", 9), images=7, detections=2, model="welds"),
        call(org, None, at("2026-03-03", 9), images=0, status=401, model="", version=None),
        call(other_tenant.organization, None, at("2026-03-01"), images=99),
    ]
    call(org, line3, at("2026-03-04", 0, 0), images=50)  # after the range
    client = client_for(tenant.user(Role.OWNER))
    url = f"/api/organizations/{org.pk}/usage/?start=2026-03-01&end=2026-03-03"
    if ask == "query":
        answer = client.get(url + "&format=csv")
    else:
        answer = client.get(url, HTTP_ACCEPT="text/csv")
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/csv")
    assert answer["Content-Disposition"] == (
        f'attachment; filename="usage-{org.pk}-2026-03-01-2026-03-03.csv"'
    )
    lines = list(csv.reader(io.StringIO(answer.content.decode())))
    assert lines[0] == [
        "date", "organization_id", "key_id", "key_name", "model", "version",
        "calls", "images", "detections", "errors",
    ]  # fmt: skip
    got = {tuple(line[:6]): [int(n) for n in line[6:]] for line in lines[1:]}
    assert len(got) == len(lines) - 1
    assert got == expected_billing(made, org.pk)
    assert got[("2026-03-01", str(org.pk), f"dlk_{line3.key_id}", "line 3", "panels", "1")] == [
        2, 4, 6, 0,
    ]  # fmt: skip


def test_a_refused_csv_request_answers_the_error_shape_in_json(tenant: Tenant) -> None:
    client = client_for(tenant.user(Role.OWNER))
    url = f"/api/organizations/{tenant.organization.pk}/usage/?format=csv&days=9999"
    answer = client.get(url)
    assert answer.status_code == 400
    assert answer["Content-Type"].startswith("application/json")
    assert answer.json()["error"]["details"] == {"field": "days"}
    annotator = client_for(tenant.user(Role.ANNOTATOR)).get(url.replace("9999", "3"))
    assert annotator.status_code == 403 and annotator.json()["error"]["code"] == "forbidden"
    assert client_for(None).get(url).status_code in (401, 403)
