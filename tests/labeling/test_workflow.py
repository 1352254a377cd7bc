"""The labeling workflow through the REST API: handing out tasks under a lock, saving annotations
with optimistic concurrency and a kept history, predictions, reviews and the audit trail.

Every story ends where it matters most: the project's stored counters still equal a recount."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from defectlab.labeling import services, workflow
from defectlab.labeling.models import (
    Annotation,
    AnnotationVersion,
    Prediction,
    Project,
    Task,
    TaskStatus,
)
from defectlab.tenancy.models import AuditEvent, Membership, Role, User
from tests.conftest import Tenant, box, client_for, make_tenant, png_bytes

# ---------------------------------------------------------------------------- helpers


def add_annotator(t: Tenant, name: str) -> User:
    """Another annotator in the tenant's organization (the fixture has one of every role)."""
    user = User.objects.create_user(
        f"{name}@org{t.organization.pk}.test", "a-long-password-1", name=name
    )
    Membership.objects.create(organization=t.organization, user=user, role=Role.ANNOTATOR)
    return user


def next_task_of(user: User, project: Project) -> Any:
    return client_for(user).post(f"/api/projects/{project.pk}/next-task/")


def put_annotation(user: User, task: Task, **body: Any) -> Any:
    body.setdefault("version", None)
    return client_for(user).put(f"/api/tasks/{task.pk}/annotation/", body, format="json")


def error_of(response: Any) -> dict[str, Any]:
    return response.json()["error"]


def stored_counts(project: Project) -> dict[str, int]:
    project.refresh_from_db()
    return {status.value: getattr(project, counter) for status, counter in services.COUNTER.items()}


def true_counts(project: Project) -> dict[str, int]:
    counts = {status.value: 0 for status in TaskStatus}
    rows = Task.objects.filter(project=project).values("status").annotate(n=Count("id"))
    for row in rows:
        counts[row["status"]] = row["n"]
    return counts


def assert_counters_true(project: Project) -> None:
    assert stored_counts(project) == true_counts(project)


def status_of(task: Task) -> str:
    return Task.objects.get(pk=task.pk).status


def polygon(label_id: int) -> dict[str, Any]:
    return {"type": "polygon", "points": [[5, 5], [30, 5], [20, 30]], "label": label_id}


def with_defaults(shape: dict[str, Any], **attributes: str) -> dict[str, Any]:
    return {**shape, "attributes": {**shape.get("attributes", {}), **attributes}}


# ---------------------------------------------------------------------------- next task


def test_two_annotators_asking_in_turn_get_different_tasks(tenant: Tenant) -> None:
    first, second = tenant.user(Role.ANNOTATOR), add_annotator(tenant, "second")

    mine = next_task_of(first, tenant.project)
    theirs = next_task_of(second, tenant.project)

    assert mine.status_code == theirs.status_code == 200
    assert mine.json()["id"] == tenant.tasks[0].pk
    assert theirs.json()["id"] == tenant.tasks[1].pk
    assert mine.json()["lock_owner"] == first.pk
    assert theirs.json()["lock_owner"] == second.pk


def test_asking_again_returns_the_held_task_and_extends_its_lock(tenant: Tenant) -> None:
    annotator = tenant.user(Role.ANNOTATOR)
    held = next_task_of(annotator, tenant.project).json()["id"]
    soon = timezone.now() + timedelta(seconds=30)
    Task.objects.filter(pk=held).update(lock_expires_at=soon)

    again = next_task_of(annotator, tenant.project)

    assert again.status_code == 200
    assert again.json()["id"] == held
    task = Task.objects.get(pk=held)
    assert task.lock_owner == annotator
    assert task.lock_expires_at > soon
    assert Task.objects.filter(project=tenant.project, lock_owner__isnull=False).count() == 1


def test_an_expired_lock_is_handed_to_someone_else(tenant: Tenant) -> None:
    first, second = tenant.user(Role.ANNOTATOR), add_annotator(tenant, "second")
    taken = next_task_of(first, tenant.project).json()["id"]
    Task.objects.filter(pk=taken).update(lock_expires_at=timezone.now() - timedelta(minutes=1))

    response = next_task_of(second, tenant.project)

    assert response.json()["id"] == taken
    assert Task.objects.get(pk=taken).lock_owner == second
    # The one whose lock ran out may no longer save over the new holder's work...
    refused = put_annotation(first, Task.objects.get(pk=taken), shapes=[box(tenant.label)])
    assert refused.status_code == 409
    assert error_of(refused)["code"] == "locked"
    # ...and is handed the next free task instead.
    assert next_task_of(first, tenant.project).json()["id"] == tenant.tasks[1].pk


def test_a_task_assigned_to_one_annotator_is_not_given_to_another(tenant: Tenant) -> None:
    owner_of_work, other = add_annotator(tenant, "assignee"), tenant.user(Role.ANNOTATOR)
    manager = client_for(tenant.user(Role.MANAGER))
    assigned = manager.post(
        f"/api/projects/{tenant.project.pk}/assign/",
        {"tasks": [tenant.tasks[0].pk, tenant.tasks[2].pk], "assignee": owner_of_work.pk},
        format="json",
    )
    assert assigned.json() == {"updated": 2}

    assert next_task_of(other, tenant.project).json()["id"] == tenant.tasks[1].pk
    assert next_task_of(owner_of_work, tenant.project).json()["id"] == tenant.tasks[0].pk
    # Once they submit the one free task, nothing is left for them: task 2 is not theirs.
    put_annotation(other, tenant.tasks[1], shapes=[box(tenant.label)], submit=True)
    assert next_task_of(other, tenant.project).status_code == 204


def test_rejected_tasks_assigned_back_come_first(tenant: Tenant) -> None:
    annotator = tenant.user(Role.ANNOTATOR)
    unassigned, assigned, rejected = tenant.tasks
    Task.objects.filter(pk=assigned.pk).update(assignee=annotator)
    put_annotation(annotator, rejected, shapes=[box(tenant.label)], submit=True)
    workflow.review(rejected, tenant.user(Role.REVIEWER), verdict="reject", comment="Too loose")

    order = []
    for _turn in range(3):
        task = next_task_of(annotator, tenant.project).json()
        order.append(task["id"])
        version = 1 if task["has_annotation"] else None
        submitted = put_annotation(
            annotator,
            Task.objects.get(pk=task["id"]),
            shapes=[box(tenant.label)],
            version=version,
            submit=True,
        )
        assert submitted.status_code == 200

    assert order == [rejected.pk, assigned.pk, unassigned.pk]
    assert next_task_of(annotator, tenant.project).status_code == 204


def test_next_task_answers_204_when_nothing_is_left(tenant: Tenant) -> None:
    first, second = tenant.user(Role.ANNOTATOR), add_annotator(tenant, "second")
    for task in tenant.tasks[:2]:
        put_annotation(first, task, shapes=[box(tenant.label)], submit=True)
    assert next_task_of(first, tenant.project).json()["id"] == tenant.tasks[2].pk

    # The last task is held by someone else; the rest are submitted.
    response = next_task_of(second, tenant.project)

    assert response.status_code == 204
    assert response.content == b""


def test_next_task_moves_a_new_task_to_in_progress_and_counters_follow(tenant: Tenant) -> None:
    assert stored_counts(tenant.project)["new"] == 3

    response = next_task_of(tenant.user(Role.ANNOTATOR), tenant.project)

    assert response.json()["status"] == "in_progress"
    assert status_of(tenant.tasks[0]) == TaskStatus.IN_PROGRESS
    counts = stored_counts(tenant.project)
    assert (counts["new"], counts["in_progress"]) == (2, 1)
    assert_counters_true(tenant.project)
    # Asking again for the held task moves nothing twice.
    next_task_of(tenant.user(Role.ANNOTATOR), tenant.project)
    assert stored_counts(tenant.project) == counts


def test_release_frees_the_task_for_someone_else(tenant: Tenant) -> None:
    first, second = tenant.user(Role.ANNOTATOR), add_annotator(tenant, "second")
    taken = next_task_of(first, tenant.project).json()["id"]

    released = client_for(first).post(f"/api/tasks/{taken}/release/")

    assert released.status_code == 204
    task = Task.objects.get(pk=taken)
    assert (task.lock_owner, task.lock_expires_at) == (None, None)
    assert next_task_of(second, tenant.project).json()["id"] == taken
    assert_counters_true(tenant.project)


def test_releasing_someone_elses_task_leaves_their_lock(tenant: Tenant) -> None:
    first, second = tenant.user(Role.ANNOTATOR), add_annotator(tenant, "second")
    taken = next_task_of(first, tenant.project).json()["id"]

    response = client_for(second).post(f"/api/tasks/{taken}/release/")

    assert response.status_code == 204
    assert Task.objects.get(pk=taken).lock_owner == first


def test_a_start_is_counted_once_when_a_manager_saved_the_task_meanwhile(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interleaving, replayed in order: next-task has won the lock and read the task as
    new; a manager's save (allowed over locks) then commits it to in_progress; next-task goes
    on to start it. The task moved from new to in_progress once, so must the counters."""
    manager, start = tenant.user(Role.MANAGER), workflow._start

    def start_after_a_concurrent_save(task: Task) -> Task:
        workflow.save_annotation(task, manager, base_version=None, shapes=[box(tenant.label)])
        return start(task)

    monkeypatch.setattr(workflow, "_start", start_after_a_concurrent_save)

    response = next_task_of(tenant.user(Role.ANNOTATOR), tenant.project)

    assert response.json()["id"] == tenant.tasks[0].pk
    assert status_of(tenant.tasks[0]) == TaskStatus.IN_PROGRESS
    assert_counters_true(tenant.project)


@pytest.mark.django_db(transaction=True)
def test_concurrent_next_task_never_hands_one_task_to_two_annotators() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite serializes all writers, so a race proves nothing")
    workers = 8
    t = make_tenant("Race", tasks=workers + 4)
    users = [add_annotator(t, f"racer{index}") for index in range(workers)]
    barrier = threading.Barrier(workers, timeout=60)
    results: dict[int, int | None] = {}
    failures: list[BaseException] = []

    def work(index: int) -> None:
        try:
            barrier.wait()
            task = workflow.next_task(t.project, users[index])
            results[index] = task.pk if task is not None else None
        except BaseException as error:  # reported by the main thread
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(index,)) for index in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert len(results) == workers
    handed_out = list(results.values())
    assert None not in handed_out
    assert len(set(handed_out)) == workers
    for index, task_id in results.items():
        assert Task.objects.get(pk=task_id).lock_owner_id == users[index].pk
    assert Task.objects.filter(project=t.project, lock_owner__isnull=False).count() == workers
    assert_counters_true(t.project)
    assert stored_counts(t.project)["in_progress"] == workers


# ---------------------------------------------------------------------------- annotations


def test_first_save_creates_version_1_and_saving_from_it_makes_version_2(tenant: Tenant) -> None:
    annotator, task = tenant.user(Role.ANNOTATOR), tenant.tasks[0]

    first = put_annotation(annotator, task, shapes=[box(tenant.label)], version=None)
    second = put_annotation(annotator, task, shapes=[box(tenant.label, 1, 1, 9, 9)], version=1)

    assert first.status_code == 200
    assert first.json()["version"] == 1
    assert second.status_code == 200
    assert second.json()["version"] == 2
    assert second.json()["author"] == annotator.pk
    stored = Annotation.objects.get(task=task)
    assert stored.version == 2
    assert stored.shapes[0]["points"] == [[1, 1], [9, 9]]
    task.refresh_from_db()
    assert task.has_annotation is True
    assert task.status == TaskStatus.IN_PROGRESS
    assert_counters_true(tenant.project)


@pytest.mark.parametrize("stale_version", [1, None], ids=["stale-1", "none-over-existing"])
def test_saving_from_a_stale_version_answers_409_and_loses_nothing(
    tenant: Tenant, stale_version: int | None
) -> None:
    annotator, task = tenant.user(Role.ANNOTATOR), tenant.tasks[0]
    put_annotation(annotator, task, shapes=[box(tenant.label)])
    latest = [box(tenant.label, 2, 2, 30, 30)]
    put_annotation(tenant.user(Role.MANAGER), task, shapes=latest, version=1)

    response = put_annotation(
        annotator,
        task,
        shapes=[box(tenant.label, 40, 40, 50, 45)],
        version=stale_version,
        submit=True,
    )

    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "stale"
    assert error["details"]["version"] == 2
    assert error["details"]["shapes"] == [with_defaults(latest[0], severity="minor")]
    current = client_for(annotator).get(f"/api/tasks/{task.pk}/annotation/").json()
    assert current["version"] == 2
    assert current["shapes"] == error["details"]["shapes"]
    assert AnnotationVersion.objects.filter(annotation__task=task).count() == 2
    assert status_of(task) == TaskStatus.IN_PROGRESS
    assert_counters_true(tenant.project)


def test_versions_lists_every_version_newest_first_with_its_shapes(tenant: Tenant) -> None:
    annotator, task = tenant.user(Role.ANNOTATOR), tenant.tasks[0]
    saved = [
        [box(tenant.label)],
        [box(tenant.label, 1, 1, 9, 9), box(tenant.label, 20, 20, 30, 30)],
        [polygon(tenant.label.pk)],
    ]
    for version, shapes in enumerate(saved):
        response = put_annotation(annotator, task, shapes=shapes, version=version or None)
        assert response.status_code == 200

    versions = client_for(tenant.user(Role.REVIEWER)).get(
        f"/api/tasks/{task.pk}/annotation/versions/"
    )

    assert versions.status_code == 200
    body = versions.json()
    assert [entry["version"] for entry in body] == [3, 2, 1]
    expected = [[with_defaults(shape, severity="minor") for shape in shapes] for shapes in saved]
    assert [entry["shapes"] for entry in body] == expected[::-1]
    assert {entry["author"] for entry in body} == {annotator.pk}
    # Named for people to read: the name, or the email of someone who gave none.
    assert {entry["author_name"] for entry in body} == {annotator.name or annotator.email}


def test_a_shape_outside_the_image_is_refused_naming_the_shape(tenant: Tenant) -> None:
    response = put_annotation(
        tenant.user(Role.ANNOTATOR), tenant.tasks[0], shapes=[box(tenant.label, 50, 30, 80, 40)]
    )

    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("Shape 1:")
    assert "outside the 64 by 48 image" in response.json()["error"]["message"]


Refusal = Callable[[Tenant, Tenant], tuple[dict[str, Any], str]]


def _outside(t: Tenant, other: Tenant) -> tuple[dict[str, Any], str]:
    return {"shapes": [box(t.label), box(t.label, 60, 40, 70, 47)]}, "outside"


def _foreign_label(t: Tenant, other: Tenant) -> tuple[dict[str, Any], str]:
    return {"shapes": [box(t.label), box(other.label)]}, "not in this project"


def _unused_type(t: Tenant, other: Tenant) -> tuple[dict[str, Any], str]:
    Project.objects.filter(pk=t.project.pk).update(shape_types=["box"])
    return {"shapes": [box(t.label), polygon(t.label.pk)]}, "does not use"


def _bad_option(t: Tenant, other: Tenant) -> tuple[dict[str, Any], str]:
    shape = with_defaults(box(t.label), severity="catastrophic")
    return {"shapes": [box(t.label), shape]}, "catastrophic is not an option of severity"


def _unknown_attribute(t: Tenant, other: Tenant) -> tuple[dict[str, Any], str]:
    dent = t.project.labels.get(name="dent")
    return {"shapes": [box(t.label), with_defaults(box(dent), depth="deep")]}, "no attribute"


def _unknown_tag(t: Tenant, other: Tenant) -> tuple[dict[str, Any], str]:
    return {"shapes": [box(t.label)], "tags": ["OK", "MAYBE"]}, "no tag named MAYBE"


def _not_a_list(t: Tenant, other: Tenant) -> tuple[dict[str, Any], str]:
    return {"shapes": {"type": "box"}}, "list"


REFUSALS: dict[str, Refusal] = {
    "shape outside the image": _outside,
    "label of another project": _foreign_label,
    "shape type the project does not use": _unused_type,
    "attribute value not an option": _bad_option,
    "attribute the label does not have": _unknown_attribute,
    "image tag not in the project": _unknown_tag,
    "shapes not a list": _not_a_list,
}


@pytest.mark.parametrize("refusal", REFUSALS.values(), ids=REFUSALS.keys())
def test_an_invalid_annotation_is_refused_with_400_and_writes_nothing(
    tenant: Tenant, other_tenant: Tenant, refusal: Refusal
) -> None:
    body, fragment = refusal(tenant, other_tenant)
    task = tenant.tasks[0]

    response = put_annotation(tenant.user(Role.ANNOTATOR), task, submit=True, **body)

    assert response.status_code == 400
    assert fragment in error_of(response)["message"]
    assert not Annotation.objects.filter(task=task).exists()
    task.refresh_from_db()
    assert (task.status, task.has_annotation) == (TaskStatus.NEW, False)
    assert_counters_true(tenant.project)


SHAPE_REFUSALS = {name: REFUSALS[name] for name in list(REFUSALS)[:5]}


@pytest.mark.parametrize("refusal", SHAPE_REFUSALS.values(), ids=SHAPE_REFUSALS.keys())
def test_a_refused_shape_is_numbered_alike_in_message_and_details(
    tenant: Tenant, other_tenant: Tenant, refusal: Refusal
) -> None:
    """Clients highlight the shape in `details.shape`; it must be the one the message names."""
    body, _fragment = refusal(tenant, other_tenant)

    response = put_annotation(tenant.user(Role.ANNOTATOR), tenant.tasks[0], **body)

    error = error_of(response)
    assert error["message"].startswith("Shape 2")
    assert error["details"] == {"shape": 2}


def test_missing_attributes_get_their_default(tenant: Tenant) -> None:
    dent = tenant.project.labels.get(name="dent")
    shapes = [box(tenant.label), with_defaults(box(tenant.label), severity="major"), box(dent)]

    response = put_annotation(tenant.user(Role.ANNOTATOR), tenant.tasks[0], shapes=shapes)

    assert response.status_code == 200
    stored = Annotation.objects.get(task=tenant.tasks[0]).shapes
    assert [shape["attributes"] for shape in stored] == [
        {"severity": "minor"},
        {"severity": "major"},
        {},
    ]


def test_known_image_tags_are_saved_once_each(tenant: Tenant) -> None:
    response = put_annotation(
        tenant.user(Role.ANNOTATOR), tenant.tasks[0], shapes=[], tags=["NG", "NG"]
    )

    assert response.status_code == 200
    assert response.json()["tags"] == ["NG"]


def test_annotations_drop_scores_that_only_predictions_carry(tenant: Tenant) -> None:
    scored = {**box(tenant.label), "score": 0.4}

    response = put_annotation(tenant.user(Role.ANNOTATOR), tenant.tasks[0], shapes=[scored])

    assert response.status_code == 200
    assert "score" not in response.json()["shapes"][0]


def test_submit_moves_the_task_to_submitted_and_clears_the_lock(tenant: Tenant) -> None:
    annotator = tenant.user(Role.ANNOTATOR)
    taken = Task.objects.get(pk=next_task_of(annotator, tenant.project).json()["id"])

    response = put_annotation(annotator, taken, shapes=[box(tenant.label)], submit=True)

    assert response.status_code == 200
    taken.refresh_from_db()
    assert taken.status == TaskStatus.SUBMITTED
    assert (taken.lock_owner, taken.lock_expires_at) == (None, None)
    assert stored_counts(tenant.project) == {
        "new": 2,
        "in_progress": 0,
        "submitted": 1,
        "approved": 0,
        "rejected": 0,
    }
    assert_counters_true(tenant.project)


def test_someone_elses_lock_stops_an_annotator_but_not_a_manager(tenant: Tenant) -> None:
    holder, intruder = add_annotator(tenant, "holder"), tenant.user(Role.ANNOTATOR)
    taken = Task.objects.get(pk=next_task_of(holder, tenant.project).json()["id"])

    refused = put_annotation(intruder, taken, shapes=[box(tenant.label)])
    allowed = put_annotation(tenant.user(Role.MANAGER), taken, shapes=[box(tenant.label)])

    assert refused.status_code == 409
    assert error_of(refused)["code"] == "locked"
    assert allowed.status_code == 200
    assert allowed.json()["version"] == 1
    assert allowed.json()["author"] == tenant.user(Role.MANAGER).pk


def test_an_approved_task_is_changed_by_a_reviewer_but_not_an_annotator(tenant: Tenant) -> None:
    annotator, reviewer, task = (
        tenant.user(Role.ANNOTATOR),
        tenant.user(Role.REVIEWER),
        tenant.tasks[0],
    )
    put_annotation(annotator, task, shapes=[box(tenant.label)], submit=True)
    workflow.review(task, reviewer, verdict="approve")

    refused = put_annotation(annotator, task, shapes=[box(tenant.label, 1, 1, 3, 3)], version=1)
    corrected = put_annotation(reviewer, task, shapes=[box(tenant.label, 1, 1, 3, 3)], version=1)

    assert refused.status_code == 403
    assert error_of(refused)["code"] == "approved"
    assert corrected.status_code == 200
    assert corrected.json()["version"] == 2
    assert status_of(task) == TaskStatus.APPROVED
    assert_counters_true(tenant.project)


def test_the_label_filter_follows_the_latest_annotation(tenant: Tenant) -> None:
    annotator, task = tenant.user(Role.ANNOTATOR), tenant.tasks[0]
    dent = tenant.project.labels.get(name="dent")
    url = f"/api/projects/{tenant.project.pk}/tasks/"
    client = client_for(annotator)

    def tasks_with(label_id: int) -> list[int]:
        return [row["id"] for row in client.get(url, {"label": label_id}).json()["results"]]

    put_annotation(annotator, task, shapes=[box(tenant.label), box(tenant.label, 1, 1, 4, 4)])
    assert (tasks_with(tenant.label.pk), tasks_with(dent.pk)) == ([task.pk], [])

    put_annotation(annotator, task, shapes=[box(dent)], version=1)
    assert (tasks_with(tenant.label.pk), tasks_with(dent.pk)) == ([], [task.pk])

    put_annotation(annotator, task, shapes=[box(dent), box(tenant.label)], version=2)
    assert (tasks_with(tenant.label.pk), tasks_with(dent.pk)) == ([task.pk], [task.pk])

    put_annotation(annotator, task, shapes=[], version=3)
    assert (tasks_with(tenant.label.pk), tasks_with(dent.pk)) == ([], [])


# ---------------------------------------------------------------------------- review


def review_as(user: User, task: Task, **body: Any) -> Any:
    return client_for(user).post(f"/api/tasks/{task.pk}/review/", body, format="json")


def test_only_submitted_tasks_can_be_reviewed(tenant: Tenant) -> None:
    annotator, reviewer = tenant.user(Role.ANNOTATOR), tenant.user(Role.REVIEWER)
    new, in_progress, approved = tenant.tasks
    put_annotation(annotator, in_progress, shapes=[box(tenant.label)])
    put_annotation(annotator, approved, shapes=[box(tenant.label)], submit=True)
    assert review_as(reviewer, approved, verdict="approve").status_code == 201

    for task in (new, in_progress, approved):
        for verdict in ("approve", "reject"):
            response = review_as(reviewer, task, verdict=verdict, comment="Why")
            assert response.status_code == 409, (task.pk, verdict)
            assert error_of(response)["code"] == "not_submitted"

    assert [status_of(task) for task in tenant.tasks] == ["new", "in_progress", "approved"]
    assert_counters_true(tenant.project)


@pytest.mark.parametrize("comment", [None, "", "   \n"], ids=["missing", "empty", "blank"])
def test_a_rejection_needs_a_comment(tenant: Tenant, comment: str | None) -> None:
    task = tenant.tasks[0]
    put_annotation(tenant.user(Role.ANNOTATOR), task, shapes=[box(tenant.label)], submit=True)
    body = {"verdict": "reject"} if comment is None else {"verdict": "reject", "comment": comment}

    response = review_as(tenant.user(Role.REVIEWER), task, **body)

    assert response.status_code == 400
    assert status_of(task) == TaskStatus.SUBMITTED
    assert not task.reviews.exists()


def test_reject_fix_resubmit_and_approve(tenant: Tenant) -> None:
    annotator, reviewer = tenant.user(Role.ANNOTATOR), tenant.user(Role.REVIEWER)
    task = tenant.tasks[2]  # the last by id, so coming first below is the queue's doing
    put_annotation(annotator, task, shapes=[box(tenant.label)], submit=True)

    rejected = review_as(reviewer, task, verdict="reject", comment="  Box misses the tip.  ")

    assert rejected.status_code == 201
    assert rejected.json()["annotation_version"] == 1
    task.refresh_from_db()
    assert (task.status, task.assignee) == (TaskStatus.REJECTED, annotator)
    history = client_for(annotator).get(f"/api/tasks/{task.pk}/review/").json()
    assert [(row["verdict"], row["comment"]) for row in history] == [
        ("reject", "Box misses the tip.")
    ]
    assert history[0]["reviewer"] == reviewer.pk

    handed = next_task_of(annotator, tenant.project)
    assert handed.json()["id"] == task.pk
    assert handed.json()["status"] == "rejected"

    fixed = [box(tenant.label, 5, 5, 30, 30)]
    stale = put_annotation(annotator, task, shapes=fixed, version=None, submit=True)
    assert stale.status_code == 409
    resubmitted = put_annotation(annotator, task, shapes=fixed, version=1, submit=True)
    assert resubmitted.status_code == 200
    assert resubmitted.json()["version"] == 2
    task.refresh_from_db()
    assert task.status == TaskStatus.SUBMITTED
    assert task.lock_owner is None

    approved = review_as(reviewer, task, verdict="approve")

    assert approved.status_code == 201
    assert approved.json()["annotation_version"] == 2
    assert status_of(task) == TaskStatus.APPROVED
    history = client_for(annotator).get(f"/api/tasks/{task.pk}/review/").json()
    assert [row["verdict"] for row in history] == ["approve", "reject"]
    assert stored_counts(tenant.project) == {
        "new": 2,
        "in_progress": 0,
        "submitted": 0,
        "approved": 1,
        "rejected": 0,
    }
    assert_counters_true(tenant.project)


def test_an_unknown_verdict_is_refused(tenant: Tenant) -> None:
    task = tenant.tasks[0]
    put_annotation(tenant.user(Role.ANNOTATOR), task, shapes=[box(tenant.label)], submit=True)

    response = review_as(tenant.user(Role.REVIEWER), task, verdict="maybe")

    assert response.status_code == 400
    assert status_of(task) == TaskStatus.SUBMITTED


# ---------------------------------------------------------------------------- predictions


def post_prediction(user: User, task: Task, shapes: list[dict[str, Any]]) -> Any:
    return client_for(user).post(
        f"/api/tasks/{task.pk}/predictions/",
        {"model_name": "detector", "model_version": "7", "shapes": shapes},
        format="json",
    )


def test_predictions_keep_their_scores_and_mark_the_task(tenant: Tenant) -> None:
    task, manager = tenant.tasks[0], tenant.user(Role.MANAGER)
    shapes = [{**box(tenant.label), "score": 0.87}, {**box(tenant.label, 1, 1, 3, 3), "score": 0}]

    response = post_prediction(manager, task, shapes)

    assert response.status_code == 201
    assert [shape["score"] for shape in response.json()["shapes"]] == [0.87, 0.0]
    listed = client_for(tenant.user(Role.ANNOTATOR)).get(f"/api/tasks/{task.pk}/predictions/")
    assert [row["model_name"] for row in listed.json()] == ["detector"]
    assert listed.json()[0]["shapes"][0]["score"] == 0.87
    assert client_for(manager).get(f"/api/tasks/{task.pk}/").json()["has_prediction"] is True
    predicted = client_for(manager).get(
        f"/api/projects/{tenant.project.pk}/tasks/", {"has_prediction": "true"}
    )
    assert [row["id"] for row in predicted.json()["results"]] == [task.pk]


def test_a_prediction_score_above_one_is_refused(tenant: Tenant) -> None:
    task = tenant.tasks[0]

    response = post_prediction(
        tenant.user(Role.MANAGER), task, [{**box(tenant.label), "score": 1.01}]
    )

    assert response.status_code == 400
    assert "score" in error_of(response)["message"]
    assert not Prediction.objects.filter(task=task).exists()
    task.refresh_from_db()
    assert task.has_prediction is False


# ---------------------------------------------------------------------------- audit trail


def test_upload_submit_and_verdicts_are_in_the_audit_trail_newest_first(tenant: Tenant) -> None:
    owner, annotator = tenant.user(Role.OWNER), tenant.user(Role.ANNOTATOR)
    reviewer, manager = tenant.user(Role.REVIEWER), tenant.user(Role.MANAGER)
    task = tenant.tasks[0]
    files = {"files": [SimpleUploadedFile("new.png", png_bytes(), content_type="image/png")]}
    uploaded = client_for(manager).post(
        f"/api/projects/{tenant.project.pk}/upload/", files, format="multipart"
    )
    assert uploaded.status_code == 201
    assert (
        put_annotation(annotator, task, shapes=[box(tenant.label)], submit=True).status_code == 200
    )
    assert review_as(reviewer, task, verdict="reject", comment="Redo").status_code == 201
    resubmitted = put_annotation(
        annotator, task, shapes=[box(tenant.label)], version=1, submit=True
    )
    assert resubmitted.status_code == 200
    assert review_as(reviewer, task, verdict="approve").status_code == 201

    expected = [
        ("task.approved", reviewer),
        ("task.submitted", annotator),
        ("task.rejected", reviewer),
        ("task.submitted", annotator),
        ("tasks.uploaded", manager),
    ]
    relevant = {action for action, _actor in expected}
    rows = AuditEvent.objects.filter(action__in=relevant).order_by("-id")
    assert [(row.action, row.actor) for row in rows] == expected
    assert {row.organization_id for row in rows} == {tenant.organization.pk}
    assert rows[2].data == {"comment": "Redo"}

    response = client_for(owner).get(f"/api/organizations/{tenant.organization.pk}/audit-events/")

    assert response.status_code == 200
    listed = [
        (row["action"], row["actor_email"])
        for row in response.json()["results"]
        if row["action"] in relevant
    ]
    assert listed == [(action, actor.email) for action, actor in expected]
    ids = [row["id"] for row in response.json()["results"]]
    assert ids == sorted(ids, reverse=True)


def test_saving_without_submitting_is_not_audited(tenant: Tenant) -> None:
    put_annotation(tenant.user(Role.ANNOTATOR), tenant.tasks[0], shapes=[box(tenant.label)])

    assert not AuditEvent.objects.filter(action="task.submitted").exists()
