"""Review issues: pinned by reviewers on submitted work, resolved by the annotator or a reviewer,
and no approval while one is open."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import translation

from defectlab.errors import Conflict
from defectlab.labeling import workflow
from defectlab.labeling.models import Issue, Task, TaskStatus
from defectlab.tenancy.models import AuditEvent, Role
from tests.conftest import Tenant, box, client_for


def submitted(tenant: Tenant, *, shape_id: str = "s1") -> Task:
    task = tenant.tasks[0]
    shape = {**box(tenant.label, 5, 6, 20, 30), "id": shape_id}
    workflow.save_annotation(
        task, tenant.user(Role.ANNOTATOR), base_version=None, shapes=[shape], submit=True
    )
    return Task.objects.get(pk=task.pk)


def pin(tenant: Tenant, task: Task, role: str = Role.REVIEWER, **body: Any) -> Any:
    body.setdefault("message", "The scratch is longer.")
    return client_for(tenant.user(role)).post(f"/api/tasks/{task.pk}/issues/", body, format="json")


def verdict(tenant: Tenant, task: Task, which: str, comment: str = "") -> Any:
    return client_for(tenant.user(Role.REVIEWER)).post(
        f"/api/tasks/{task.pk}/review/", {"verdict": which, "comment": comment}, format="json"
    )


def test_an_issue_on_a_shape_keeps_its_box_and_pins_at_its_corner(tenant: Tenant) -> None:
    task = submitted(tenant)
    answer = pin(tenant, task, shape="s1")
    assert answer.status_code == 201, answer.json()
    data = answer.json()
    assert data["shape"] == "s1" and data["box"] == [5, 6, 20, 30] and data["point"] == [5, 6]
    assert data["resolved"] is False and data["author"] == tenant.user(Role.REVIEWER).pk
    at_point = pin(tenant, task, point=[40, 30], message="Dust here?")
    assert at_point.status_code == 201
    assert at_point.json()["shape"] == "" and at_point.json()["box"] is None
    listed = client_for(tenant.user(Role.ANNOTATOR)).get(f"/api/tasks/{task.pk}/issues/").json()
    assert [issue["message"] for issue in listed] == ["The scratch is longer.", "Dust here?"]


def test_issues_are_refused_without_a_place_a_comment_or_a_known_shape(tenant: Tenant) -> None:
    task = submitted(tenant)
    assert pin(tenant, task).status_code == 400
    assert pin(tenant, task, point=[1, 1], message="  ").status_code == 400
    assert pin(tenant, task, shape="nope").json()["error"]["code"] == "unknown_shape"
    assert pin(tenant, task, point=[640, 1]).json()["error"]["code"] == "invalid_position"
    assert not Issue.objects.exists()


def test_only_reviewers_and_managers_pin_issues_and_only_on_submitted_work(
    tenant: Tenant,
) -> None:
    task = submitted(tenant)
    assert pin(tenant, task, Role.ANNOTATOR, point=[1, 1]).status_code == 403
    assert pin(tenant, task, Role.MANAGER, point=[1, 1]).status_code == 201
    fresh = tenant.tasks[1]
    assert pin(tenant, fresh, point=[1, 1]).json()["error"]["code"] == "not_submitted"


def test_approval_waits_for_every_open_issue_and_rejecting_sends_them_back(
    tenant: Tenant,
) -> None:
    task = submitted(tenant)
    issue = pin(tenant, task, shape="s1").json()
    refused = verdict(tenant, task, "approve")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "open_issues"
    assert refused.json()["error"]["details"] == {"open_issues": 1}
    assert Task.objects.get(pk=task.pk).status == TaskStatus.SUBMITTED

    assert verdict(tenant, task, "reject", "See the pins.").status_code == 201
    annotator = client_for(tenant.user(Role.ANNOTATOR))
    resolved = annotator.post(f"/api/issues/{issue['id']}/resolve/")
    assert resolved.status_code == 200 and resolved.json()["resolved"] is True
    assert resolved.json()["resolved_by"] == tenant.user(Role.ANNOTATOR).pk
    workflow.save_annotation(
        task,
        tenant.user(Role.ANNOTATOR),
        base_version=1,
        shapes=[{**box(tenant.label, 5, 6, 30, 30), "id": "s1"}],
        submit=True,
    )
    assert verdict(tenant, task, "approve").status_code == 201
    assert Task.objects.get(pk=task.pk).status == TaskStatus.APPROVED


def test_the_refusal_is_said_in_chinese_too(tenant: Tenant) -> None:
    task = submitted(tenant)
    pin(tenant, task, point=[3, 3])
    pin(tenant, task, point=[4, 4])
    with translation.override("zh-hans"), pytest.raises(Conflict) as refused:
        workflow.review(task, tenant.user(Role.REVIEWER), verdict="approve")
    assert (
        str(refused.value)
        == "该任务有 2 个未解决的问题。请先解决，或驳回任务让标注员修正，然后再通过。"
    )


def test_resolving_is_for_the_annotator_or_a_reviewer_and_is_in_the_audit_trail(
    tenant: Tenant,
) -> None:
    task = submitted(tenant)
    issue = pin(tenant, task, point=[3, 3]).json()
    # An annotator who did not do this task may not touch its issues.
    stranger = tenant.user(Role.ANNOTATOR)
    Task.objects.filter(pk=task.pk).update(submitted_by=tenant.user(Role.OWNER), assignee=None)
    assert client_for(stranger).post(f"/api/issues/{issue['id']}/resolve/").status_code == 403
    reviewer = client_for(tenant.user(Role.REVIEWER))
    assert reviewer.post(f"/api/issues/{issue['id']}/resolve/").json()["resolved"] is True
    assert reviewer.post(f"/api/issues/{issue['id']}/resolve/").status_code == 200  # no change
    reopened = reviewer.post(f"/api/issues/{issue['id']}/reopen/").json()
    assert reopened["resolved"] is False and reopened["resolved_by"] is None
    rows = AuditEvent.objects.filter(action__startswith="issue.").order_by("id")
    assert [(row.action, row.actor_id, row.data["issue"]) for row in rows] == [
        ("issue.opened", tenant.user(Role.REVIEWER).pk, issue["id"]),
        ("issue.resolved", tenant.user(Role.REVIEWER).pk, issue["id"]),
        ("issue.reopened", tenant.user(Role.REVIEWER).pk, issue["id"]),
    ]
    assert rows[0].target_id == str(task.pk)


def test_other_organizations_do_not_see_or_resolve_issues(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    task = submitted(tenant)
    issue = pin(tenant, task, point=[3, 3]).json()
    outsider = client_for(other_tenant.user(Role.OWNER))
    assert outsider.get(f"/api/tasks/{task.pk}/issues/").status_code == 404
    assert outsider.post(f"/api/issues/{issue['id']}/resolve/").status_code == 404
    assert outsider.get(f"/api/issues/{issue['id']}/").status_code == 404


def test_an_approved_tasks_issues_stay_closed(tenant: Tenant) -> None:
    task = submitted(tenant)
    issue = pin(tenant, task, point=[3, 3]).json()
    reviewer = client_for(tenant.user(Role.REVIEWER))
    reviewer.post(f"/api/issues/{issue['id']}/resolve/")
    assert verdict(tenant, task, "approve").status_code == 201
    answer = reviewer.post(f"/api/issues/{issue['id']}/reopen/")
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "approved"
