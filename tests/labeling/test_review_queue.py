"""Reviewers take submitted work from a queue, reserved so two reviewers never get the same task."""

from __future__ import annotations

from defectlab.labeling.models import Task, TaskStatus
from defectlab.tenancy.models import Membership, Role, User
from tests.conftest import Tenant, annotate, client_for


def test_two_reviewers_get_different_submitted_tasks_and_then_none(tenant: Tenant) -> None:
    for task in tenant.tasks[:2]:
        annotate(tenant, task)
    second = User.objects.create_user("reviewer2@acme.test", "a-long-password-1")
    Membership.objects.create(organization=tenant.organization, user=second, role=Role.REVIEWER)
    url = f"/api/projects/{tenant.project.pk}/next-review/"
    first_pick = client_for(tenant.user(Role.REVIEWER)).post(url).json()["id"]
    second_pick = client_for(second).post(url).json()["id"]
    assert {first_pick, second_pick} == {tenant.tasks[0].pk, tenant.tasks[1].pk}
    assert client_for(tenant.user(Role.REVIEWER)).post(url).json()["id"] == first_pick  # held
    assert client_for(tenant.user(Role.MANAGER)).post(url).status_code == 204


def test_a_verdict_frees_the_task_and_the_queue_moves_on(tenant: Tenant) -> None:
    for task in tenant.tasks[:2]:
        annotate(tenant, task)
    reviewer = client_for(tenant.user(Role.REVIEWER))
    url = f"/api/projects/{tenant.project.pk}/next-review/"
    picked = reviewer.post(url).json()["id"]
    reviewer.post(f"/api/tasks/{picked}/review/", {"verdict": "approve"}, format="json")
    task = Task.objects.get(pk=picked)
    assert task.status == TaskStatus.APPROVED and task.lock_owner is None
    assert reviewer.post(url).json()["id"] != picked


def test_reviewers_see_others_work_before_their_own(tenant: Tenant) -> None:
    from defectlab.labeling import workflow
    from tests.conftest import box

    reviewer = tenant.user(Role.REVIEWER)
    workflow.save_annotation(
        tenant.tasks[0], reviewer, base_version=None, shapes=[box(tenant.label)], submit=True
    )
    annotate(tenant, tenant.tasks[1])
    picked = client_for(reviewer).post(f"/api/projects/{tenant.project.pk}/next-review/").json()
    assert picked["id"] == tenant.tasks[1].pk


def test_a_skipped_task_goes_to_the_back_of_the_line(tenant: Tenant) -> None:
    client = client_for(tenant.user(Role.ANNOTATOR))
    url = f"/api/projects/{tenant.project.pk}/next-task/"
    first = client.post(url).json()["id"]
    assert client.post(f"/api/tasks/{first}/release/").status_code == 204
    second = client.post(url).json()["id"]
    assert second != first
    client.post(f"/api/tasks/{second}/release/")
    third = client.post(url).json()["id"]
    assert third not in (first, second)
    client.post(f"/api/tasks/{third}/release/")
    assert client.post(url).json()["id"] == first  # only skipped ones are left: they come back
