"""The control plane's services: keys (shown once, stored hashed, revoked once), quotas (the
installation's defaults until the operator sets a row; nobody else may) and usage (per UTC day,
per key, per model version), each change in the audit trail."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from typing import Any

import pytest

from defectlab import signature
from defectlab.errors import Forbidden, Invalid
from defectlab.media.secrets import decrypt_secret
from defectlab.serving import keys, quotas, usage
from defectlab.serving.models import OrganizationKey, Quota
from defectlab.tenancy.models import AuditEvent, Role, User
from tests.conftest import Tenant
from tests.serving.calls import at, call, expected_billing

# ---------------------------------------------------------------------------- keys


def test_a_key_is_answered_once_and_only_its_hash_is_stored(tenant: Tenant) -> None:
    owner = tenant.user(Role.OWNER)
    made, text = keys.create_key(tenant.organization, owner, "  line 3  ", ["detect"])
    assert text.startswith(f"dlk_{made.key_id}_")
    assert signature.split_key(text) == (made.key_id, text.split("_", 2)[2])
    row = OrganizationKey.objects.get(pk=made.pk)
    assert row.name == "line 3"
    assert row.secret_hash == hashlib.sha256(text.encode()).hexdigest()
    stored = " ".join(
        str(value) for value in OrganizationKey.objects.filter(pk=made.pk).values().get().values()
    )
    secret = text.split("_", 2)[2]
    assert secret not in stored and text not in stored
    # The signing key is kept encrypted (the service needs it to check signed requests).
    assert signature.signing_key(text).hex() not in stored
    assert decrypt_secret(row.signing_key) == signature.signing_key(text).hex()
    found = keys.active_key(made.key_id)
    assert found is not None and found.matches(text) and not found.matches(text + "x")


def test_two_keys_never_share_an_id_or_a_text(tenant: Tenant) -> None:
    made = [keys.create_key(tenant.organization, None, f"k{index}") for index in range(20)]
    assert len({key.key_id for key, _text in made}) == 20
    assert len({text for _key, text in made}) == 20


@pytest.mark.parametrize(
    ("scopes", "unknown"),
    [([], []), (["admin"], ["admin"]), (["detect", "root"], ["root"]), ([" "], [""])],
)
def test_scopes_outside_detect_and_models_are_refused(
    tenant: Tenant, scopes: list[str], unknown: list[str]
) -> None:
    with pytest.raises(Invalid) as refused:
        keys.create_key(tenant.organization, None, "k", scopes)
    assert refused.value.code == "invalid_scopes"
    assert refused.value.details == {"scopes": unknown}
    assert not OrganizationKey.objects.exists()
    assert not AuditEvent.objects.filter(action="service_key.created").exists()


def test_scopes_are_kept_sorted_and_once(tenant: Tenant) -> None:
    made, _text = keys.create_key(tenant.organization, None, "k", ["models", "detect", "models"])
    assert made.scopes == ["detect", "models"]


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_a_key_needs_a_name_of_at_most_100_characters(tenant: Tenant, name: str) -> None:
    with pytest.raises(Invalid):
        keys.create_key(tenant.organization, None, name)
    assert not OrganizationKey.objects.exists()


def test_revoking_twice_revokes_once(tenant: Tenant) -> None:
    owner, admin = tenant.user(Role.OWNER), tenant.user(Role.ADMIN)
    made, _text = keys.create_key(tenant.organization, owner, "line 3")
    first = keys.revoke_key(made, owner)
    again = keys.revoke_key(made, admin)
    assert first.revoked_at is not None and again.revoked_at == first.revoked_at
    assert again.revoked_by == owner
    assert keys.active_key(made.key_id) is None
    events = AuditEvent.objects.filter(action="service_key.revoked")
    assert [(e.actor_id, e.organization_id, e.data) for e in events] == [
        (owner.pk, tenant.organization.pk, {"name": "line 3", "key_id": made.key_id})
    ]


def test_making_a_key_is_in_the_audit_trail_without_its_text(tenant: Tenant) -> None:
    owner = tenant.user(Role.OWNER)
    made, text = keys.create_key(tenant.organization, owner, "line 3", ["detect"], signed_only=True)
    event = AuditEvent.objects.get(action="service_key.created")
    assert (event.actor_id, event.organization_id, event.target_id) == (
        owner.pk,
        tenant.organization.pk,
        str(made.pk),
    )
    assert event.data == {
        "name": "line 3",
        "key_id": made.key_id,
        "scopes": ["detect"],
        "signed_only": True,
    }
    assert text not in str(event.data)


# ---------------------------------------------------------------------------- quotas


def test_without_a_row_the_installation_defaults_apply(tenant: Tenant, settings: Any) -> None:
    settings.QUOTA_REQUESTS_PER_MINUTE = 60
    settings.QUOTA_IMAGES_PER_DAY = 0  # 0: no limit
    settings.QUOTA_CONCURRENT = 4
    settings.QUOTA_MAX_IMAGE_MB = 5
    limits = quotas.limits_of(tenant.organization.pk)
    assert limits.as_dict() == {
        "requests_per_minute": 60,
        "images_per_day": None,
        "concurrent_requests": 4,
        "max_image_mb": 5,
        "weight": 1,
        "custom": False,
    }


def test_the_operators_row_wins_and_the_fields_not_given_start_from_the_defaults(
    tenant: Tenant, settings: Any
) -> None:
    settings.QUOTA_REQUESTS_PER_MINUTE = 60
    settings.QUOTA_CONCURRENT = 4
    operator = User.objects.create_user("ops@plant.test", "a-long-password-1", is_staff=True)
    limits = quotas.set_quota(tenant.organization, operator, images_per_day=500, weight=3)
    assert limits.custom and limits.images_per_day == 500 and limits.weight == 3
    assert limits.requests_per_minute == 60 and limits.concurrent_requests == 4
    settings.QUOTA_REQUESTS_PER_MINUTE = 10  # later defaults do not move a set quota
    again = quotas.set_quota(tenant.organization, None, requests_per_minute=None)
    assert again.requests_per_minute is None and again.images_per_day == 500
    assert quotas.limits_of(tenant.organization.pk) == again
    events = list(AuditEvent.objects.filter(action="quota.updated").order_by("id"))
    assert [event.actor_id for event in events] == [operator.pk, None]
    assert events[0].data["before"]["custom"] is False
    assert events[0].data["after"]["images_per_day"] == 500
    assert events[1].data["before"]["requests_per_minute"] == 60
    assert events[1].data["after"]["requests_per_minute"] is None


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.ANNOTATOR])
def test_nobody_but_the_operator_changes_a_quota(tenant: Tenant, role: str) -> None:
    with pytest.raises(Forbidden):
        quotas.set_quota(tenant.organization, tenant.user(role), requests_per_minute=1_000_000)
    assert not Quota.objects.exists()
    assert not AuditEvent.objects.filter(action="quota.updated").exists()


@pytest.mark.parametrize(
    "values",
    [{"weight": None}, {"weight": 101}, {"images_per_day": 0}, {"max_image_mb": -1},
     {"concurrent_requests": "many"}, {"requests_per_minute": True}, {"colour": 1}],
)  # fmt: skip
def test_a_bad_quota_is_refused_and_changes_nothing(tenant: Tenant, values: dict[str, Any]) -> None:
    with pytest.raises(Invalid):
        quotas.set_quota(tenant.organization, None, **values)
    assert not Quota.objects.exists()


# ---------------------------------------------------------------------------- usage


def _calls(tenant: Tenant, other: Tenant) -> tuple[list[Any], Any, Any]:
    org = tenant.organization
    line3, _text = keys.create_key(org, None, "line 3")
    line4, _text = keys.create_key(org, None, "=cmd|' /C calc'!A0")  # a formula, in a sheet
    made = [
        call(org, line3, at("2026-03-01", 0, 0), images=4, detections=7),
        call(org, line3, at("2026-03-01", 23, 59), images=2, detections=1, version=2),
        call(org, line3, at("2026-03-01", 9), images=1, status=429),
        call(org, line4, at("2026-03-02", 0, 1), images=3, detections=2),
        call(org, None, at("2026-03-02", 5), images=0, status=401, model="", version=None),
        call(org, line4, at("2026-03-04", 5), images=8, detections=8, model="welds"),
        call(org, line3, at("2026-02-28", 23, 59), images=100),  # the day before the range
        call(org, line3, at("2026-03-05", 0, 0), images=100),  # the day after
    ]
    foreign, _text = keys.create_key(other.organization, None, "theirs")
    made.append(call(other.organization, foreign, at("2026-03-01"), images=50))
    return made, line3, line4


def test_usage_per_utc_day_counts_every_day_of_the_range(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    _calls(tenant, other_tenant)
    span = usage.span_of("2026-03-01", "2026-03-04")
    found = usage.usage_of(tenant.organization.pk, span)
    assert [(row.date.isoformat(), row.counts.as_dict()) for row in found.rows] == [
        ("2026-03-01", {"calls": 3, "images": 7, "detections": 8, "errors": 1}),
        ("2026-03-02", {"calls": 2, "images": 3, "detections": 2, "errors": 1}),
        ("2026-03-03", {"calls": 0, "images": 0, "detections": 0, "errors": 0}),
        ("2026-03-04", {"calls": 1, "images": 8, "detections": 8, "errors": 0}),
    ]
    assert found.totals.as_dict() == {"calls": 6, "images": 18, "detections": 18, "errors": 2}


def test_usage_per_key_and_per_model_version(tenant: Tenant, other_tenant: Tenant) -> None:
    _made, line3, line4 = _calls(tenant, other_tenant)
    span = usage.span_of("2026-03-01", "2026-03-04")
    by_key = usage.usage_of(tenant.organization.pk, span, ["key"])
    assert sorted(
        (row.as_dict(by_key.by)["date"], row.key_name, row.counts.calls) for row in by_key.rows
    ) == [
        ("2026-03-01", "line 3", 3),
        ("2026-03-02", "", 1),
        ("2026-03-02", line4.name, 1),
        ("2026-03-04", line4.name, 1),
    ]
    assert {row.key_id for row in by_key.rows} == {line3.key_id, line4.key_id, None}
    by_version = usage.usage_of(tenant.organization.pk, span, ["version"])
    assert sorted(
        (row.date.isoformat(), row.model, row.version or 0, row.counts.images)
        for row in by_version.rows
    ) == [
        ("2026-03-01", "panels", 1, 5),
        ("2026-03-01", "panels", 2, 2),
        ("2026-03-02", "", 0, 0),
        ("2026-03-02", "panels", 1, 3),
        ("2026-03-04", "welds", 1, 8),
    ]
    assert by_version.totals == usage.usage_of(tenant.organization.pk, span).totals
    assert "key_id" not in by_version.rows[0].as_dict(by_version.by)


def test_the_billing_csv_is_the_call_rows_summed(tenant: Tenant, other_tenant: Tenant) -> None:
    import csv
    import io

    made, _line3, _line4 = _calls(tenant, other_tenant)
    span = usage.span_of("2026-03-01", "2026-03-04")
    text = usage.billing_csv(tenant.organization.pk, span)
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == list(usage.CSV_COLUMNS)
    got = {tuple(line[:6]): [int(n) for n in line[6:]] for line in lines[1:]}
    inside = [row for row in made if span.first <= row.created_at.date() <= span.last]
    expected = expected_billing(inside, tenant.organization.pk)
    # A key name a spreadsheet would run as a formula is written as text.
    expected = {
        (g[0], g[1], g[2], "'" + g[3] if g[3].startswith("=") else g[3], *g[4:]): counts
        for g, counts in expected.items()
    }
    assert got == expected
    assert len(lines) - 1 == 5


def test_the_range_defaults_to_the_last_30_days_and_refuses_nonsense() -> None:
    span = usage.span_of()
    assert span.last == usage.today() and span.days == 30
    assert usage.span_of(days="7", end="2026-03-10") == usage.Span(
        date(2026, 3, 4), date(2026, 3, 10)
    )
    for bad in [
        {"start": "2026-03-05", "end": "2026-03-01"},
        {"start": "yesterday"},
        {"days": "0"},
        {"days": "400"},
        {"days": "a week"},
        {"start": "2024-01-01", "end": "2026-01-01"},
    ]:
        with pytest.raises(Invalid):
            usage.span_of(**bad)
    assert usage.span_of("2026-01-01", "2026-01-01").days == 1
    assert usage.span_of(end=date(2026, 1, 31), days=31).first == date(2026, 1, 1)
    assert usage.span_of(end="2026-12-31", days=366).first == date(2026, 12, 31) - timedelta(
        days=365
    )


def test_grouping_by_something_else_is_refused(tenant: Tenant) -> None:
    with pytest.raises(Invalid) as refused:
        usage.usage_of(tenant.organization.pk, usage.span_of(), ["project"])
    assert refused.value.details == {"by": ["project"]}


def test_each_usage_view_is_one_query(
    tenant: Tenant, other_tenant: Tenant, django_assert_num_queries: Any
) -> None:
    _calls(tenant, other_tenant)
    span = usage.span_of("2026-03-01", "2026-03-04")
    for by in ([], ["key"], ["version"], ["key", "version"]):
        with django_assert_num_queries(1):
            usage.usage_of(tenant.organization.pk, span, by)
    with django_assert_num_queries(1):
        usage.billing_csv(tenant.organization.pk, span)
