"""Webhooks end to end: events become signed POSTs to a real receiver on loopback, sent by jobs
with retries; the guard refuses what the policy refuses; the log, "send again", roles, tenancy."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from defectlab.hooks import services
from defectlab.hooks.delivery import run_delivery
from defectlab.hooks.events import emit
from defectlab.hooks.models import Delivery, DeliveryStatus, Webhook
from defectlab.jobs.models import Job, JobState
from defectlab.jobs.runner import Progress
from defectlab.labeling import workflow
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import AuditEvent, Role
from defectlab.transfer import taskimport
from defectlab.transfer.exports import start_export
from defectlab.transfer.urlimport import start_url_import
from tests.conftest import Tenant, annotate, client_for
from tests.hooks.conftest import Receiver

pytestmark = pytest.mark.django_db

ALL = ["task.submitted", "task.approved", "task.rejected", "export.finished", "import.finished"]


def make_hook(tenant: Tenant, url: str, events: list[str] | None = None) -> tuple[Webhook, str]:
    return services.create_webhook(
        tenant.organization, tenant.user(Role.ADMIN), url=url, events=events or ALL
    )


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does (docs/webhooks.md): HMAC-SHA256 of "<timestamp>.<body>"."""
    signed = headers["X-DefectLab-Timestamp"].encode() + b"." + body
    expected = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["X-DefectLab-Signature"])


def test_each_event_arrives_once_with_a_valid_signature(
    tenant: Tenant,
    receiver: Receiver,
    loopback_open: None,
    drain: Callable[..., Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    hook, secret = make_hook(tenant, receiver.url())
    reviewer = tenant.user(Role.REVIEWER)
    first, second = tenant.tasks[0], tenant.tasks[1]
    with django_capture_on_commit_callbacks(execute=True):
        annotate(tenant, first)
        workflow.review(first, reviewer, verdict="approve")
        annotate(tenant, second)
        workflow.review(second, reviewer, verdict="reject", comment="missed a scratch")
        start_export(tenant.project, {"format": "coco"}, tenant.user(Role.MANAGER))
        start_url_import(tenant.project, [receiver.url("/lot42.png")], tenant.user(Role.MANAGER))
    drain()

    assert receiver.events() == [
        "task.submitted",
        "task.approved",
        "task.submitted",
        "task.rejected",
        "export.finished",
        "import.finished",
    ]
    assert all(verify(secret, seen.headers, seen.body) for seen in receiver.received)
    ids = [seen.headers["X-DefectLab-Delivery"] for seen in receiver.received]
    assert len(set(ids)) == len(ids) and all(uuid.UUID(value) for value in ids)
    bodies = [json.loads(seen.body) for seen in receiver.received]
    assert bodies[1]["task"]["id"] == first.pk and bodies[1]["task"]["status"] == "approved"
    assert bodies[1]["project"] == {"id": tenant.project.pk, "name": tenant.project.name}
    assert bodies[1]["organization"]["id"] == tenant.organization.pk
    assert bodies[1]["link"].endswith(f"/tasks/{first.pk}/review/")
    assert bodies[3]["task"]["comment"] == "missed a scratch"
    assert bodies[4]["job"]["kind"] == "export" and bodies[4]["job"]["state"] == "succeeded"
    assert bodies[5]["job"]["kind"] == "url_import" and bodies[5]["job"]["done"] == 1
    rows = Delivery.objects.filter(webhook=hook)
    assert {(row.status, row.attempts, row.status_code) for row in rows} == {
        (DeliveryStatus.SUCCEEDED, 1, 200)
    }
    assert all(row.duration_ms is not None for row in rows)

    # A job run again after its delivery succeeded sends nothing twice.
    delivery = rows.first()
    assert delivery is not None and delivery.job is not None
    run_delivery(delivery.job, Progress(delivery.job))
    assert len(receiver.received) == 6


def test_a_receiver_that_fails_twice_gets_it_on_the_third_try(
    tenant: Tenant,
    receiver: Receiver,
    loopback_open: None,
    drain: Callable[..., Any],
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.WEBHOOK_RETRY_SECONDS = 0.5
    receiver.answers = [500, 500]
    hook, secret = make_hook(tenant, receiver.url())
    with django_capture_on_commit_callbacks(execute=True):
        delivery = services.ping(hook, tenant.user(Role.ADMIN))
    asked = drain()
    # Two retries, each asking the broker for a pause twice as long as the one before.
    assert [later.delay for later in asked] == [500, 1000]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.status_code) == (
        DeliveryStatus.SUCCEEDED,
        3,
        200,
    )
    assert delivery.error == ""
    assert len(receiver.received) == 3
    ids = {seen.headers["X-DefectLab-Delivery"] for seen in receiver.received}
    assert ids == {str(delivery.uuid)}  # the same id on every attempt: receivers deduplicate
    assert all(verify(secret, seen.headers, seen.body) for seen in receiver.received)
    assert len({seen.body for seen in receiver.received}) == 1


def test_a_receiver_that_keeps_failing_is_logged_as_failed_after_the_last_attempt(
    tenant: Tenant,
    receiver: Receiver,
    loopback_open: None,
    drain: Callable[..., Any],
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.JOB_MAX_ATTEMPTS = 3
    receiver.answers = [503, 503, 503]
    hook, _secret = make_hook(tenant, receiver.url())
    with django_capture_on_commit_callbacks(execute=True):
        delivery = services.ping(hook, tenant.user(Role.ADMIN))
    drain()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.status_code) == (
        DeliveryStatus.FAILED,
        3,
        503,
    )
    assert "503" in delivery.error and "nope" in delivery.error
    assert Job.objects.get(pk=delivery.job_id).state == JobState.FAILED


def test_a_client_error_is_final_at_once(
    tenant: Tenant,
    receiver: Receiver,
    loopback_open: None,
    drain: Callable[..., Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    receiver.answers = [404]
    hook, _secret = make_hook(tenant, receiver.url())
    with django_capture_on_commit_callbacks(execute=True):
        delivery = services.ping(hook, tenant.user(Role.ADMIN))
    assert drain() == []
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.status_code) == (
        DeliveryStatus.FAILED,
        1,
        404,
    )


@pytest.mark.parametrize("where", ["loopback", "private"])
def test_an_address_the_guard_refuses_is_logged_as_failed_without_connecting(
    tenant: Tenant,
    receiver: Receiver,
    drain: Callable[..., Any],
    connections: list[tuple[str, int]],
    django_capture_on_commit_callbacks: Any,
    where: str,
) -> None:
    # No operator setting: loopback is closed; a private address is not in the allowlist.
    url = receiver.url() if where == "loopback" else "http://10.20.0.7:8080/hook"
    hook, _secret = make_hook(tenant, url)
    with django_capture_on_commit_callbacks(execute=True):
        delivery = services.ping(hook, tenant.user(Role.ADMIN))
    assert drain() == []  # a refusal is final: no retry
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 1)
    assert f"(rule: {where})" in delivery.error
    assert delivery.status_code is None
    assert connections == [] and receiver.received == []


def test_an_event_costs_one_query_when_nobody_listens(
    tenant: Tenant, django_assert_num_queries: Any
) -> None:
    def details() -> dict[str, Any]:
        raise AssertionError("built although nobody listens")

    with django_assert_num_queries(1):
        assert emit("task.approved", tenant.organization.pk, tenant.project.pk, details) == []


def test_only_matching_active_hooks_of_the_project_get_an_event(
    tenant: Tenant, other_tenant: Tenant, queued: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    url = "http://10.20.0.7/hook"
    every, _ = make_hook(tenant, url, ["task.approved"])
    project_only, _ = services.create_webhook(
        tenant.organization,
        tenant.user(Role.OWNER),
        url=url,
        events=["task.approved"],
        project=tenant.project.pk,
    )
    other_project = workflow_project(tenant)
    elsewhere, _ = services.create_webhook(
        tenant.organization,
        tenant.user(Role.OWNER),
        url=url,
        events=["task.approved"],
        project=other_project.pk,
    )
    off, _ = make_hook(tenant, url, ["task.approved"])
    services.update_webhook(off, tenant.user(Role.ADMIN), active=False)
    submitted_only, _ = make_hook(tenant, url, ["task.submitted"])
    foreign, _ = make_hook(other_tenant, url, ["task.approved"])
    task = tenant.tasks[0]
    annotate(tenant, task)
    with django_capture_on_commit_callbacks(execute=True):
        workflow.review(task, tenant.user(Role.REVIEWER), verdict="approve")
    approved = Delivery.objects.filter(event="task.approved")
    assert {row.webhook_id for row in approved} == {every.pk, project_only.pk}
    silent = [elsewhere, off, foreign]
    assert not Delivery.objects.filter(webhook__in=silent).exists()
    assert [row.event for row in Delivery.objects.filter(webhook=submitted_only)] == [
        "task.submitted"
    ]
    assert len(queued) == 2


def workflow_project(tenant: Tenant) -> Any:
    from defectlab.labeling import services as labeling

    return labeling.create_project(
        tenant.organization, tenant.user(Role.OWNER), name="Other line", labels=[{"name": "dent"}]
    )


# ---------------------------------------------------------------------------- the API


def test_the_api_makes_lists_changes_and_deletes_webhooks_with_the_secret_shown_once(
    tenant: Tenant,
) -> None:
    admin = client_for(tenant.user(Role.ADMIN))
    body = {
        "organization": tenant.organization.pk,
        "url": "https://mes.example.com/defectlab",
        "events": ["task.approved", "export.finished"],
    }
    made = admin.post("/api/webhooks/", body, format="json")
    assert made.status_code == 201, made.content
    hook_id, secret = made.json()["id"], made.json()["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    hook = Webhook.objects.get(pk=hook_id)
    assert secret not in hook.secret  # stored encrypted
    shown = admin.get(f"/api/webhooks/{hook_id}/").json()
    assert "secret" not in shown and shown["events"] == ["task.approved", "export.finished"]
    assert [row["id"] for row in admin.get("/api/webhooks/").json()] == [hook_id]
    changed = admin.patch(f"/api/webhooks/{hook_id}/", {"active": False}, format="json")
    assert changed.status_code == 200 and changed.json()["active"] is False
    assert changed.json()["url"] == body["url"]
    rotated = admin.post(f"/api/webhooks/{hook_id}/rotate-secret/").json()["secret"]
    assert rotated != secret
    assert admin.delete(f"/api/webhooks/{hook_id}/").status_code == 204
    actions = list(
        AuditEvent.objects.filter(organization=tenant.organization, action__startswith="webhook.")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == [
        AuditAction.WEBHOOK_CREATED,
        AuditAction.WEBHOOK_UPDATED,
        AuditAction.WEBHOOK_SECRET_ROTATED,
        AuditAction.WEBHOOK_DELETED,
    ]


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"url": "ftp://mes.example.com/x", "events": ["task.approved"]}, "ftp"),
        ({"url": "https://mes.example.com/x", "events": []}, "event"),
        ({"url": "https://mes.example.com/x", "events": ["task.deleted"]}, "task.deleted"),
        ({"url": "https://mes.example.com/x", "events": ["ping"]}, "ping"),
        ({"url": "https://mes.example.com/x", "events": ["task.approved"], "secret": "s"}, "16"),
    ],
)
def test_bad_webhooks_are_refused_with_a_reason(tenant: Tenant, body: dict, word: str) -> None:  # type: ignore[type-arg]
    answer = client_for(tenant.user(Role.ADMIN)).post(
        "/api/webhooks/", {"organization": tenant.organization.pk, **body}, format="json"
    )
    assert answer.status_code == 400 and word in answer.content.decode()
    assert not Webhook.objects.exists()


@pytest.mark.parametrize("role", [Role.MANAGER, Role.REVIEWER, Role.ANNOTATOR])
def test_roles_below_admin_cannot_see_or_change_webhooks(tenant: Tenant, role: str) -> None:
    hook, _secret = make_hook(tenant, "http://10.20.0.7/hook")
    client = client_for(tenant.user(role))
    body = {"organization": tenant.organization.pk, "url": "http://x.example/", "events": ALL}
    assert client.post("/api/webhooks/", body, format="json").status_code == 403
    assert client.get("/api/webhooks/").json() == []
    assert client.get(f"/api/webhooks/{hook.pk}/").status_code == 403
    assert client.post(f"/api/webhooks/{hook.pk}/ping/").status_code == 403
    assert client.get(f"/api/webhooks/{hook.pk}/deliveries/").status_code == 403
    assert client.delete(f"/api/webhooks/{hook.pk}/").status_code == 403
    assert Webhook.objects.filter(pk=hook.pk).exists()


def test_another_organizations_webhook_answers_404(
    tenant: Tenant, other_tenant: Tenant, queued: list[int]
) -> None:
    hook, _secret = make_hook(other_tenant, "http://10.20.0.7/hook")
    delivery = services.ping(hook, other_tenant.user(Role.ADMIN))
    client = client_for(tenant.user(Role.OWNER))
    for method, url in [
        ("get", f"/api/webhooks/{hook.pk}/"),
        ("patch", f"/api/webhooks/{hook.pk}/"),
        ("delete", f"/api/webhooks/{hook.pk}/"),
        ("get", f"/api/webhooks/{hook.pk}/deliveries/"),
        ("post", f"/api/webhooks/{hook.pk}/ping/"),
        ("post", f"/api/webhooks/{hook.pk}/deliveries/{delivery.pk}/redeliver/"),
        ("post", f"/api/webhooks/{hook.pk}/rotate-secret/"),
    ]:
        assert getattr(client, method)(url, {}, format="json").status_code == 404, url
    assert client.get(f"/api/webhooks/?organization={other_tenant.organization.pk}").json() == []
    body = {"organization": other_tenant.organization.pk, "url": "http://x.example/", "events": ALL}
    assert client.post("/api/webhooks/", body, format="json").status_code == 404
    own, _ = make_hook(tenant, "http://10.20.0.7/hook")
    url = f"/api/webhooks/{own.pk}/deliveries/{delivery.pk}/redeliver/"  # not this hook's
    assert client.post(url).status_code == 404
    assert Delivery.objects.count() == 1


def test_send_again_delivers_the_same_payload_as_a_new_delivery(
    tenant: Tenant,
    receiver: Receiver,
    loopback_open: None,
    drain: Callable[..., Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    hook, secret = make_hook(tenant, receiver.url())
    admin = client_for(tenant.user(Role.ADMIN))
    with django_capture_on_commit_callbacks(execute=True):
        pinged = admin.post(f"/api/webhooks/{hook.pk}/ping/")
    assert pinged.status_code == 202 and pinged.json()["event"] == "ping"
    drain()
    first = Delivery.objects.get(pk=pinged.json()["id"])
    with django_capture_on_commit_callbacks(execute=True):
        again = admin.post(f"/api/webhooks/{hook.pk}/deliveries/{first.pk}/redeliver/")
    assert again.status_code == 202, again.content
    assert again.json()["redelivery_of"] == str(first.uuid)
    drain()
    assert len(receiver.received) == 2 and receiver.received[0].body == receiver.received[1].body
    assert receiver.received[1].headers["X-DefectLab-Delivery"] == again.json()["uuid"]
    assert all(verify(secret, seen.headers, seen.body) for seen in receiver.received)
    log = admin.get(f"/api/webhooks/{hook.pk}/deliveries/").json()
    assert [row["status"] for row in log["results"]] == ["succeeded", "succeeded"]
    assert log["results"][0]["attempts"] == 1 and log["results"][0]["status_code"] == 200
    assert AuditEvent.objects.filter(action=AuditAction.WEBHOOK_REDELIVERED).count() == 1


# ---------------------------------------------------------------------------- the page


def test_the_page_lists_the_log_and_sends_again(
    tenant: Tenant,
    receiver: Receiver,
    loopback_open: None,
    drain: Callable[..., Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    admin = client_for(tenant.user(Role.ADMIN))
    url = f"/o/{tenant.organization.pk}/webhooks/"
    form = {"action": "add", "url": receiver.url(), "events": ["task.approved"], "note": "MES"}
    made = admin.post(url, form)
    assert made.status_code == 200 and "whsec_" in made.content.decode()  # shown this once
    hook = Webhook.objects.get()
    assert hook.events == ["task.approved"] and hook.note == "MES"
    with django_capture_on_commit_callbacks(execute=True):
        assert admin.post(url, {"action": "ping", "hook": hook.pk}).status_code == 302
    drain()
    delivery = Delivery.objects.get()
    page = admin.get(url).content.decode()
    assert f'id="delivery-{delivery.pk}" data-status="succeeded"' in page
    assert "whsec_" not in page
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin.post(url, {"action": "redeliver", "hook": hook.pk, "delivery": delivery.pk})
    assert answer.status_code == 302
    drain()
    assert len(receiver.received) == 2


def test_the_page_is_for_admins(tenant: Tenant) -> None:
    url = f"/o/{tenant.organization.pk}/webhooks/"
    answer = client_for(tenant.user(Role.MANAGER)).get(url)
    assert answer.status_code == 302 and answer.url == f"/o/{tenant.organization.pk}/"
    form = {"action": "add", "url": "http://10.20.0.7/hook", "events": ["task.approved"]}
    client_for(tenant.user(Role.MANAGER)).post(url, form)
    assert not Webhook.objects.exists()
    assert client_for(tenant.user(Role.ADMIN)).get(url).status_code == 200


def test_a_failure_writing_deliveries_never_undoes_the_review(
    tenant: Tenant, queued: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_hook(tenant, "http://10.20.0.7/hook", ["task.approved"])

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the hooks table is gone")

    monkeypatch.setattr("defectlab.hooks.events.enqueue", broken)
    task = tenant.tasks[0]
    annotate(tenant, task)
    workflow.review(task, tenant.user(Role.REVIEWER), verdict="approve")
    task.refresh_from_db()
    assert task.status == "approved" and not Delivery.objects.exists()


def test_a_redirect_is_not_followed_and_fails_at_once(
    tenant: Tenant,
    receiver: Receiver,
    loopback_open: None,
    drain: Callable[..., Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    receiver.answers = [302]
    hook, _secret = make_hook(tenant, receiver.url())
    with django_capture_on_commit_callbacks(execute=True):
        delivery = services.ping(hook, tenant.user(Role.ADMIN))
    assert drain() == []
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.status_code) == (
        DeliveryStatus.FAILED,
        1,
        302,
    )
    assert len(receiver.received) == 1


def test_a_delivery_whose_webhook_was_deleted_is_not_sent(
    tenant: Tenant,
    receiver: Receiver,
    loopback_open: None,
    drain: Callable[..., Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    hook, _secret = make_hook(tenant, receiver.url())
    with django_capture_on_commit_callbacks(execute=True):
        delivery = services.ping(hook, tenant.user(Role.ADMIN))
    services.delete_webhook(hook, tenant.user(Role.ADMIN))
    assert drain() == []
    assert receiver.received == [] and not Delivery.objects.filter(pk=delivery.pk).exists()
    assert Job.objects.get(pk=delivery.job_id).state == JobState.SUCCEEDED


def test_the_page_speaks_chinese(tenant: Tenant, queued: list[int]) -> None:
    admin = tenant.user(Role.ADMIN)
    admin.language = "zh-hans"
    admin.save()
    hook, _secret = make_hook(tenant, "http://10.20.0.7/hook", ["task.approved"])
    services.ping(hook, admin)
    page = client_for(admin).get(f"/o/{tenant.organization.pk}/webhooks/").content.decode()
    assert "添加 Webhook" in page and "重新发送" in page and "任务已通过" in page


def test_a_task_import_run_as_a_job_sends_import_finished(
    tenant: Tenant,
    receiver: Receiver,
    loopback_open: None,
    drain: Callable[..., Any],
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(taskimport, "SYNC_TASKS", 1)  # two tasks are "too many": a job
    _hook, secret = make_hook(tenant, receiver.url(), ["import.finished"])
    body = json.dumps([receiver.url("/a.png"), receiver.url("/b.png")]).encode()
    with django_capture_on_commit_callbacks(execute=True):
        answer, job = taskimport.import_tasks(tenant.project, body, tenant.user(Role.MANAGER))
    assert answer is None and job is not None
    drain()

    assert receiver.events() == ["import.finished"]
    seen = receiver.received[0]
    assert verify(secret, seen.headers, seen.body)
    sent = json.loads(seen.body)["job"]
    assert sent["id"] == job.pk and sent["kind"] == "task_import" and sent["state"] == "succeeded"
