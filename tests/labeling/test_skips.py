"""Skipping a task sends it to the back of your line, for your account, whichever client asks:
the browser, a second tab or device, or a script with an API token (which has no session)."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from defectlab.labeling.models import Project, SkippedTask, Task
from defectlab.labeling.tasks import NewTask, add_tasks
from defectlab.labeling.workflow import SKIPS_KEPT
from defectlab.tenancy.models import Membership, Role, User
from defectlab.tenancy.services import create_api_token
from tests.conftest import Tenant, annotate, box, client_for


class Script:
    """A script with an API token, like curl: every request stands alone, no cookie is kept."""

    def __init__(self, user: User) -> None:
        _token, self.key = create_api_token(user, "script")

    def post(self, url: str, body: Any = None) -> Any:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.key}")
        return client.post(url, body, format="json")

    def put(self, url: str, body: Any) -> Any:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.key}")
        return client.put(url, body, format="json")


def next_of(client: Any, project: Project) -> Any:
    response = client.post(f"/api/projects/{project.pk}/next-task/")
    return response.json()["id"] if response.status_code == 200 else response.status_code


def skip(client: Any, task_id: int) -> None:
    assert client.post(f"/api/tasks/{task_id}/release/").status_code == 204


def test_a_script_with_a_token_skips_a_task_and_gets_another(tenant: Tenant) -> None:
    script = Script(tenant.user(Role.ANNOTATOR))
    first = next_of(script, tenant.project)

    skip(script, first)

    second = next_of(script, tenant.project)
    assert second != first
    skip(script, second)
    assert next_of(script, tenant.project) not in (first, second)


def test_a_second_tab_or_device_sees_the_same_skips(tenant: Tenant) -> None:
    annotator = tenant.user(Role.ANNOTATOR)
    laptop, tablet = client_for(annotator), client_for(annotator)  # two sessions, one person
    first = next_of(laptop, tenant.project)

    skip(laptop, first)

    assert next_of(tablet, tenant.project) != first


def test_someone_elses_skips_do_not_move_your_line(tenant: Tenant) -> None:
    colleague = User.objects.create_user("colleague@acme.test", "a-long-password-1")
    Membership.objects.create(organization=tenant.organization, user=colleague, role=Role.ANNOTATOR)
    theirs = client_for(colleague)
    skipped = next_of(theirs, tenant.project)
    skip(theirs, skipped)

    assert next_of(client_for(tenant.user(Role.ANNOTATOR)), tenant.project) == skipped


def test_when_only_skipped_tasks_are_left_they_come_back_longest_skipped_first(
    tenant: Tenant,
) -> None:
    script = Script(tenant.user(Role.ANNOTATOR))
    order = []
    for _round in range(3):
        order.append(next_of(script, tenant.project))
        skip(script, order[-1])
    assert sorted(order) == [task.pk for task in tenant.tasks]

    again = next_of(script, tenant.project)
    assert again == order[0]
    skip(script, again)
    # Skipping it once more makes it the newest skip: the line goes round, not back to it.
    assert next_of(script, tenant.project) == order[1]


def test_skipping_the_only_task_left_hands_it_back(tenant: Tenant) -> None:
    for task in tenant.tasks[:2]:
        annotate(tenant, task)
    script = Script(tenant.user(Role.ANNOTATOR))
    last = tenant.tasks[2].pk
    assert next_of(script, tenant.project) == last

    skip(script, last)

    assert next_of(script, tenant.project) == last


def test_only_the_newest_skips_are_kept_per_person_and_project(tenant: Tenant) -> None:
    add_tasks(
        tenant.project,
        [
            NewTask(f"https://images.test/{index}.png", f"{index}.png")
            for index in range(SKIPS_KEPT)
        ],
    )
    annotator = tenant.user(Role.ANNOTATOR)
    client = client_for(annotator)
    skipped = list(Task.objects.order_by("id").values_list("id", flat=True))
    assert len(skipped) == SKIPS_KEPT + 3
    for task_id in skipped:  # skip every task of the project, one after another
        skip(client, task_id)

    mine = SkippedTask.objects.filter(user=annotator, project=tenant.project)
    assert mine.count() == SKIPS_KEPT
    assert set(mine.values_list("task_id", flat=True)) == set(skipped[3:])
    # The three oldest skips are forgotten: those tasks are ordinary work again, first in line.
    assert next_of(client, tenant.project) == skipped[0]


def test_rejected_work_comes_back_ahead_of_new_work_even_if_you_once_skipped_it(
    tenant: Tenant,
) -> None:
    """A skip is about the work as it stood: handing the task in forgets it, so what a reviewer
    sends back is first in line again."""
    script = Script(tenant.user(Role.ANNOTATOR))
    task = tenant.tasks[0]
    assert next_of(script, tenant.project) == task.pk
    skip(script, task.pk)
    body = {"version": None, "shapes": [box(tenant.label)], "submit": True}
    assert script.put(f"/api/tasks/{task.pk}/annotation/", body).status_code == 200
    assert not SkippedTask.objects.filter(task=task).exists()
    reviewer = client_for(tenant.user(Role.REVIEWER))
    verdict = {"verdict": "reject", "comment": "missed a scratch"}
    assert reviewer.post(f"/api/tasks/{task.pk}/review/", verdict, format="json").status_code == 201

    assert next_of(script, tenant.project) == task.pk


def test_a_reviewer_who_skips_gets_the_next_submitted_task(tenant: Tenant) -> None:
    for task in tenant.tasks[:2]:
        annotate(tenant, task)
    reviewer = client_for(tenant.user(Role.REVIEWER))
    url = f"/api/projects/{tenant.project.pk}/next-review/"
    first = reviewer.post(url).json()["id"]

    skip(reviewer, first)

    second = reviewer.post(url).json()["id"]
    assert second != first
    verdict = {"verdict": "approve"}
    assert reviewer.post(f"/api/tasks/{second}/review/", verdict, format="json").status_code == 201
    assert reviewer.post(url).json()["id"] == first  # only the skipped one is left
    assert reviewer.post(f"/api/tasks/{first}/review/", verdict, format="json").status_code == 201
    assert not SkippedTask.objects.exists()  # a verdict forgets the task's skips


def test_deleting_a_skipped_task_deletes_its_skips(tenant: Tenant) -> None:
    script = Script(tenant.user(Role.ANNOTATOR))
    skipped = next_of(script, tenant.project)
    skip(script, skipped)

    manager = client_for(tenant.user(Role.MANAGER))
    assert manager.delete(f"/api/tasks/{skipped}/").status_code == 204

    assert not SkippedTask.objects.exists()
    assert not Task.objects.filter(pk=skipped).exists()
    assert next_of(script, tenant.project) == tenant.tasks[1].pk
