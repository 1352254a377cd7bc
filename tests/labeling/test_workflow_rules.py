"""Who may save, submit, approve or reject a task, by role, task state and relation to the work.

Every cell of the table is driven through the REST API (the canvas uses the same endpoints) on
fresh tasks, and the exact set of allowed actions is asserted. The rules themselves, in words,
are in docs/api.md ("Who may change a task")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from defectlab.labeling import services, workflow
from defectlab.labeling.models import Annotation, Review, Task, TaskStatus
from defectlab.tenancy.models import Membership, Role, User
from tests.conftest import Tenant, box, client_for, make_tasks

O, A, M, R, N = Role.OWNER, Role.ADMIN, Role.MANAGER, Role.REVIEWER, Role.ANNOTATOR  # noqa: E741 - one letter a role keeps the table readable
MANAGERS = (O, A, M)
ACTS = ("save", "submit", "approve", "reject")
LABEL = frozenset({"save", "submit"})
NOTHING: frozenset[str] = frozenset()


def member(t: Tenant, name: str, role: str = N) -> User:
    user = User.objects.create_user(f"{name}@org{t.organization.pk}.test", "a-long-password-1")
    Membership.objects.create(organization=t.organization, user=user, role=role)
    return user


@dataclass
class Cast:
    """The people around a task: who wrote and submitted it, who it is assigned to, and the
    reviewer who gave it its verdict. The actor under test plays one part, or none."""

    author: User
    assignee: User
    qc: User
    manager: User


def _save(task: Task, user: User, *, submit: bool) -> None:
    current = Annotation.objects.filter(task=task).first()
    workflow.save_annotation(
        Task.objects.get(pk=task.pk),
        user,
        base_version=current.version if current else None,
        shapes=[box(task.project.labels.get(name="scratch"))],
        submit=submit,
    )


def _verdict(task: Task, cast: Cast, verdict: str) -> None:
    comment = "Redo the box" if verdict == "reject" else ""
    workflow.review(Task.objects.get(pk=task.pk), cast.qc, verdict=verdict, comment=comment)


# Each state is reached the way people reach it: assignments, saves, submits, verdicts.
STATES: dict[str, Callable[[Task, Cast], object]] = {
    "new, unassigned": lambda task, cast: None,
    "new": lambda task, cast: services.assign_tasks(task.project, [task.pk], cast.assignee.pk),
    "in progress": lambda task, cast: (
        services.assign_tasks(task.project, [task.pk], cast.assignee.pk),
        _save(task, cast.assignee, submit=False),
    ),
    "submitted": lambda task, cast: (
        services.assign_tasks(task.project, [task.pk], cast.author.pk),
        _save(task, cast.author, submit=True),
    ),
    "approved": lambda task, cast: (
        _save(task, cast.author, submit=True),
        _verdict(task, cast, "approve"),
    ),
    # A rejection hands the task back to whoever submitted it: its author is its assignee.
    "rejected": lambda task, cast: (
        _save(task, cast.author, submit=True),
        _verdict(task, cast, "reject"),
    ),
    # ...until a manager gives it to someone else.
    "rejected, reassigned": lambda task, cast: (
        _save(task, cast.author, submit=True),
        _verdict(task, cast, "reject"),
        services.assign_tasks(task.project, [task.pk], cast.assignee.pk),
    ),
}

# (state, the actor's part) -> what annotators, reviewers and managers (admins, owners) may do.
ALLOWED: dict[tuple[str, str], tuple[frozenset[str], frozenset[str], frozenset[str]]] = {
    # Open work: its assignee labels it; unassigned work is anyone's; managers may do anything.
    ("new, unassigned", "other"): (LABEL, LABEL, LABEL),
    ("new", "assignee"): (LABEL, LABEL, LABEL),
    ("new", "other"): (NOTHING, NOTHING, LABEL),
    ("in progress", "assignee"): (LABEL, LABEL, LABEL),
    ("in progress", "other"): (NOTHING, NOTHING, LABEL),
    # Submitted work: reviewers correct and judge others' work; the author only withdraws it
    # (a reviewer's reject), never approves it; managers correct anything.
    ("submitted", "author"): (NOTHING, frozenset({"reject"}), frozenset({"save", "reject"})),
    ("submitted", "other"): (
        NOTHING,
        frozenset({"save", "approve", "reject"}),
        frozenset({"save", "approve", "reject"}),
    ),
    # Approved work: corrected by reviewers (not their own) and managers; never submitted again.
    ("approved", "author"): (NOTHING, NOTHING, frozenset({"save"})),
    ("approved", "other"): (NOTHING, frozenset({"save"}), frozenset({"save"})),
    # Rejected work goes back to its author, who fixes and resubmits it.
    ("rejected", "author"): (LABEL, LABEL, LABEL),
    ("rejected", "other"): (NOTHING, NOTHING, LABEL),
    ("rejected, reassigned", "author"): (NOTHING, NOTHING, LABEL),
    ("rejected, reassigned", "assignee"): (LABEL, LABEL, LABEL),
    ("rejected, reassigned", "other"): (NOTHING, NOTHING, LABEL),
}


def expected(state: str, part: str, role: str) -> frozenset[str]:
    annotators, reviewers, managers = ALLOWED[(state, part)]
    return managers if role in MANAGERS else reviewers if role == R else annotators


def cast_for(t: Tenant, actor: User, part: str) -> Cast:
    return Cast(
        author=actor if part == "author" else member(t, "author"),
        assignee=actor if part == "assignee" else member(t, "assignee"),
        qc=member(t, "qc", R),
        manager=t.user(M),
    )


def attempt(user: User, task: Task, act: str) -> Any:
    client = client_for(user)
    if act in ("save", "submit"):
        current = Annotation.objects.filter(task=task).first()
        body = {
            "version": current.version if current else None,
            "shapes": [box(task.project.labels.get(name="dent"), 2, 2, 9, 9)],
            "submit": act == "submit",
        }
        return client.put(f"/api/tasks/{task.pk}/annotation/", body, format="json")
    body = {"verdict": act, "comment": "Looks wrong" if act == "reject" else ""}
    return client.post(f"/api/tasks/{task.pk}/review/", body, format="json")


def snapshot(task: Task) -> tuple[Any, ...]:
    row = Task.objects.get(pk=task.pk)
    current = Annotation.objects.filter(task=task).first()
    return (
        row.status,
        row.assignee_id,
        row.submitted_by_id,
        current and (current.version, current.author_id, current.shapes),
        Review.objects.filter(task=task).count(),
    )


def allowed_actions(t: Tenant, state: str, actor: User, part: str) -> frozenset[str]:
    """Try every action on its own fresh task in ``state``; the set that went through."""
    cast = cast_for(t, actor, part)
    tasks = make_tasks(t.project, len(ACTS))
    done = set()
    for act, task in zip(ACTS, tasks, strict=True):
        STATES[state](task, cast)
        before = snapshot(task)
        response = attempt(actor, task, act)
        if 200 <= response.status_code < 300:
            done.add(act)
            continue
        error = response.json()["error"]
        verdict_on_unsubmitted = act in ("approve", "reject") and before[0] != "submitted"
        assert (response.status_code, error["code"] == "not_submitted") in (
            (403, False),
            (409, verdict_on_unsubmitted),
        ), (act, response.status_code, error)
        assert error["message"], (act, error)
        assert snapshot(task) == before, f"a refused {act} changed the task"
    return frozenset(done)


@pytest.mark.parametrize("role", [O, A, M, R, N])
@pytest.mark.parametrize(
    ("state", "part"), list(ALLOWED), ids=[f"{state}-{part}" for state, part in ALLOWED]
)
def test_every_cell_of_the_workflow_rules(tenant: Tenant, state: str, part: str, role: str) -> None:
    actor = tenant.user(role)

    allowed = allowed_actions(tenant, state, actor, part)

    assert allowed == expected(state, part, role), f"{role}, {part} of a {state} task"


@pytest.mark.parametrize("role", [O, A, M, R, N])
def test_self_approval_is_allowed_only_where_the_project_says_so(tenant: Tenant, role: str) -> None:
    services.update_project(tenant.project, allow_self_approval=True)
    actor = tenant.user(role)

    allowed = allowed_actions(tenant, "submitted", actor, "author")

    by_role = {N: NOTHING, R: frozenset({"approve", "reject"})}
    assert allowed == by_role.get(role, frozenset({"save", "approve", "reject"}))


# ---------------------------------------------------------------------------- the cases


def put(
    user: User, task: Task, version: int | None, *, submit: bool = False, **headers: Any
) -> Any:
    body = {"version": version, "shapes": [box(task.project.labels.get(name="dent"))]}
    return client_for(user).put(
        f"/api/tasks/{task.pk}/annotation/", body | {"submit": submit}, format="json", **headers
    )


def test_another_annotator_cannot_overwrite_submitted_work_and_is_told_why(tenant: Tenant) -> None:
    author, colleague, task = tenant.user(N), member(tenant, "colleague"), tenant.tasks[0]
    assert put(author, task, None, submit=True).status_code == 200

    refused = put(colleague, task, 1, HTTP_ACCEPT_LANGUAGE="zh-hans")

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "submitted"
    assert refused.json()["error"]["message"] == "此任务正在等待审核；被退回后才能再次修改。"
    annotation = Annotation.objects.get(task=task)
    assert (annotation.version, annotation.author) == (1, author)
    assert Task.objects.get(pk=task.pk).status == TaskStatus.SUBMITTED


def test_a_task_assigned_to_someone_else_cannot_be_saved_or_submitted(tenant: Tenant) -> None:
    assignee, intruder, task = member(tenant, "assignee"), tenant.user(N), tenant.tasks[0]
    services.assign_tasks(tenant.project, [task.pk], assignee.pk)

    for submit in (False, True):
        refused = put(intruder, task, None, submit=submit)
        assert refused.status_code == 403
        assert refused.json()["error"]["message"] == "This task is assigned to someone else."
    assert not Annotation.objects.filter(task=task).exists()
    assert put(assignee, task, None, submit=True).status_code == 200


def test_a_reviewer_cannot_approve_their_own_work_but_a_colleague_can(tenant: Tenant) -> None:
    reviewer, colleague, task = tenant.user(R), member(tenant, "colleague", R), tenant.tasks[0]
    assert put(reviewer, task, None, submit=True).status_code == 200

    own = client_for(reviewer).post(
        f"/api/tasks/{task.pk}/review/", {"verdict": "approve"}, format="json"
    )
    theirs = client_for(colleague).post(
        f"/api/tasks/{task.pk}/review/", {"verdict": "approve"}, format="json"
    )

    assert own.status_code == 403
    assert own.json()["error"]["code"] == "own_work"
    assert theirs.status_code == 201
    assert [row.reviewer for row in Review.objects.filter(task=task)] == [colleague]


def test_a_corrected_then_rejected_task_goes_back_to_whoever_submitted_it(tenant: Tenant) -> None:
    annotator, reviewer, task = tenant.user(N), tenant.user(R), tenant.tasks[0]
    assert put(annotator, task, None, submit=True).status_code == 200
    assert put(reviewer, task, 1).status_code == 200  # the reviewer corrects, then sends it back
    workflow.review(task, reviewer, verdict="reject", comment="Tighten the other box too")

    task.refresh_from_db()
    assert (task.status, task.assignee) == (TaskStatus.REJECTED, annotator)
    assert put(reviewer, task, 2).status_code == 403  # now it is the annotator's turn
    assert put(annotator, task, 2, submit=True).status_code == 200
    task.refresh_from_db()
    assert (task.status, task.submitted_by) == (TaskStatus.SUBMITTED, annotator)


def test_the_review_queue_skips_your_own_work_unless_self_approval_is_on(tenant: Tenant) -> None:
    reviewer = tenant.user(R)
    assert put(reviewer, tenant.tasks[0], None, submit=True).status_code == 200
    url = f"/api/projects/{tenant.project.pk}/next-review/"

    assert client_for(reviewer).post(url).status_code == 204

    services.update_project(tenant.project, allow_self_approval=True)
    handed = client_for(reviewer).post(url)
    assert handed.json()["id"] == tenant.tasks[0].pk
    approved = client_for(reviewer).post(
        f"/api/tasks/{tenant.tasks[0].pk}/review/", {"verdict": "approve"}, format="json"
    )
    assert approved.status_code == 201


def test_self_approval_is_off_by_default_and_set_by_managers_through_the_api(
    tenant: Tenant,
) -> None:
    url = f"/api/projects/{tenant.project.pk}/"
    assert client_for(tenant.user(N)).get(url).json()["allow_self_approval"] is False

    refused = client_for(tenant.user(R)).patch(url, {"allow_self_approval": True}, format="json")
    allowed = client_for(tenant.user(M)).patch(url, {"allow_self_approval": True}, format="json")

    assert refused.status_code == 403
    assert allowed.status_code == 200
    assert allowed.json()["allow_self_approval"] is True
    tenant.project.refresh_from_db()
    assert tenant.project.allow_self_approval is True
    created = client_for(tenant.user(M)).post(
        "/api/projects/", {"organization": tenant.organization.pk, "name": "Solo"}, format="json"
    )
    assert created.json()["allow_self_approval"] is False


def test_a_reassignment_landing_during_a_save_is_respected(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interleaving, replayed in order: the annotator's save passed the rule on an
    unassigned task; while its shapes are checked, a manager gives the task to someone else.
    The rule is asked again under the row lock, so the save is refused and writes nothing."""
    annotator, other, task = tenant.user(N), member(tenant, "other"), tenant.tasks[0]
    check_tags = workflow.clean_image_tags

    def tags_after_a_reassignment(project: Any, tags: Any) -> list[str]:
        services.assign_tasks(tenant.project, [task.pk], other.pk)
        return check_tags(project, tags)

    monkeypatch.setattr(workflow, "clean_image_tags", tags_after_a_reassignment)

    refused = put(annotator, task, None, submit=True)

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "assigned_elsewhere"
    assert not Annotation.objects.filter(task=task).exists()
    assert Task.objects.get(pk=task.pk).status == TaskStatus.NEW
