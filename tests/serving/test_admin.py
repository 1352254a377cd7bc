"""The operator's admin: quotas edited through the service (audited), keys listed read-only and
revoked by an action that goes through revoke_key, calls read-only."""

from __future__ import annotations

from django.test import Client
from django.utils import timezone

from defectlab.serving import keys
from defectlab.serving.models import Call, OrganizationKey, Quota
from defectlab.tenancy.models import AuditEvent, User
from tests.conftest import Tenant
from tests.serving.calls import call


def operator(language: str = "en") -> tuple[Client, User]:
    user = User.objects.create_superuser("ops@plant.test", "a-long-password-1")
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    client.force_login(user)
    return client, user


def test_the_operator_sets_a_quota_in_the_admin_and_it_is_audited(tenant: Tenant) -> None:
    client, user = operator()
    answer = client.post(
        "/admin/serving/quota/add/",
        {
            "organization": tenant.organization.pk,
            "requests_per_minute": "",
            "images_per_day": "1000",
            "concurrent_requests": "2",
            "max_image_mb": "",
            "weight": "7",
        },
    )
    assert answer.status_code == 302, answer.content.decode()[-2000:]
    row = Quota.objects.get()
    assert (row.requests_per_minute, row.images_per_day, row.weight, row.updated_by) == (
        None,
        1000,
        7,
        user,
    )
    change = client.get(f"/admin/serving/quota/{row.pk}/change/")
    assert change.status_code == 200
    client.post(
        f"/admin/serving/quota/{row.pk}/change/",
        {"requests_per_minute": "60", "images_per_day": "1000", "concurrent_requests": "2",
         "max_image_mb": "", "weight": "7"},
    )  # fmt: skip
    assert Quota.objects.get().requests_per_minute == 60
    refused = client.post(
        f"/admin/serving/quota/{row.pk}/change/",
        {"requests_per_minute": "0", "images_per_day": "1000", "concurrent_requests": "2",
         "max_image_mb": "", "weight": "700"},
    )  # fmt: skip
    assert refused.status_code == 200 and "errornote" in refused.content.decode()
    assert Quota.objects.get().requests_per_minute == 60
    events = AuditEvent.objects.filter(action="quota.updated").order_by("id")
    assert [(e.actor_id, e.organization_id) for e in events] == [
        (user.pk, tenant.organization.pk),
        (user.pk, tenant.organization.pk),
    ]


def test_keys_are_read_only_and_revoked_by_the_action(tenant: Tenant) -> None:
    client, user = operator()
    first, text = keys.create_key(tenant.organization, None, "line 3")
    second, _text = keys.create_key(tenant.organization, None, "line 4")
    listing = client.get("/admin/serving/organizationkey/").content.decode()
    assert "line 3" in listing and first.key_id in listing and text not in listing
    assert client.get("/admin/serving/organizationkey/add/").status_code == 403
    detail = client.get(f"/admin/serving/organizationkey/{first.pk}/change/").content.decode()
    assert first.secret_hash not in detail and first.signing_key not in detail
    for _attempt in range(2):  # again revokes nothing twice
        client.post(
            "/admin/serving/organizationkey/",
            {"action": "revoke", "_selected_action": [first.pk, second.pk]},
        )
    assert OrganizationKey.objects.filter(revoked_at__isnull=True).count() == 0
    revoked = AuditEvent.objects.filter(action="service_key.revoked")
    assert revoked.count() == 2 and {e.actor_id for e in revoked} == {user.pk}


def test_calls_are_listed_read_only_in_chinese_too(tenant: Tenant) -> None:
    client, _user = operator("zh-hans")
    call(tenant.organization, None, timezone.now(), images=3, status=429)
    index = client.get("/admin/").content.decode()
    assert ">检测服务<" in index and ">配额<" in index
    listing = client.get("/admin/serving/call/")
    assert listing.status_code == 200 and "429" in listing.content.decode()
    assert client.get("/admin/serving/call/add/").status_code == 403
    pk = Call.objects.get().pk
    assert client.post(f"/admin/serving/call/{pk}/delete/", {"post": "yes"}).status_code == 403
    assert Call.objects.count() == 1
