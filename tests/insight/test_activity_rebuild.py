"""Daily activity rebuilt from history (``labeling.activity.rebuild_activity``, ``defectlab
recount-statistics --activity``) equals, row for row, what live counting stored through the
same real operations: saves, submissions, a stale second tab, verdicts, an import, and people
deleted before and after their work was judged, over two days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from django.utils import timezone

from defectlab.cli import main
from defectlab.errors import Conflict
from defectlab.labeling import workflow
from defectlab.labeling.activity import MAX_LEAD_TIME, rebuild_activity
from defectlab.labeling.models import Activity, Annotation, AnnotationVersion, Task
from defectlab.labeling.tasks import NewAnnotation, NewTask, add_annotations, add_tasks
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import AuditEvent, Membership, Role, User
from tests.conftest import Tenant, box

pytestmark = pytest.mark.django_db(transaction=False)

COLUMNS = (
    "organization_id", "project_id", "day", "person_id", "label_id",
    "submitted", "approved", "rejected", "reviews", "lead_time",
)  # fmt: skip


def rows(project_id: int) -> list[tuple[Any, ...]]:
    """The project's activity rows, every column but the id."""
    found = Activity.objects.filter(project_id=project_id).values_list(*COLUMNS)
    return sorted(found, key=repr)


class Clock:
    """``timezone.now`` on a chosen UTC day, a millisecond further at each call."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.at = datetime(2026, 3, 1, 23, 0, tzinfo=UTC)
        monkeypatch.setattr(timezone, "now", self.now)

    def now(self) -> datetime:
        self.at += timedelta(milliseconds=1)
        return self.at

    def next_day(self) -> None:
        self.at += timedelta(hours=2)  # past midnight UTC


def member(tenant: Tenant, role: str, name: str) -> User:
    user = User.objects.create_user(f"{name}@acme.test", "a-long-password-1", name=name)
    Membership.objects.create(organization=tenant.organization, user=user, role=role)
    return user


def save(task: Task, user: User, labels: list[int], lead: float, *, submit: bool = False) -> None:
    current = Annotation.objects.filter(task=task).first()
    workflow.save_annotation(
        task, user, base_version=current.version if current else None,
        shapes=[box(label, 2 + i, 2, 9 + i, 9) for i, label in enumerate(labels)],
        submit=submit, lead_time=lead,
    )  # fmt: skip


def work(tenant: Tenant, clock: Clock) -> None:
    """Two days of real operations through ``labeling.workflow``."""
    annotator, reviewer = tenant.user(Role.ANNOTATOR), tenant.user(Role.REVIEWER)
    manager = tenant.user(Role.MANAGER)
    leaving, judge = (
        member(tenant, Role.ANNOTATOR, "leaving"),
        member(tenant, Role.REVIEWER, "judge"),
    )
    scratch = tenant.project.labels.get(name="scratch").pk
    dent = tenant.project.labels.get(name="dent").pk
    first, second, third = tenant.tasks
    # Day one.
    save(first, annotator, [scratch], 10)
    save(first, annotator, [dent, scratch], 20.5)
    with pytest.raises(Conflict):  # a second tab, saving from version 1: nothing written
        workflow.save_annotation(
            first, annotator, base_version=1, shapes=[box(dent)], lead_time=99, submit=True
        )
    save(first, annotator, [dent, scratch], 2, submit=True)
    save(second, annotator, [dent], 1e9, submit=True)  # a wrong clock: one day counted
    save(third, leaving, [scratch, scratch], 4, submit=True)
    imported = add_tasks(
        tenant.project,
        [NewTask("https://x.test/i.png", "i.png", 64, 48, status="submitted", has_annotation=True)],
    )
    add_annotations([NewAnnotation(imported[0], [box(dent)], ["NG"])], author_id=annotator.pk)
    workflow.review(first, reviewer, verdict="reject", comment="fix it")
    workflow.review(second, judge, verdict="approve")
    judge.delete()  # after the verdict: their review went with them, the approval stays
    # Day two.
    clock.next_day()
    save(first, annotator, [dent], 5, submit=True)
    save(first, manager, [scratch], 3)  # the manager's correction, not submitted
    workflow.review(first, reviewer, verdict="approve")  # the annotator's work: they submitted
    leaving.delete()  # before the verdict: nobody to credit, the classes still count it
    workflow.review(third, reviewer, verdict="reject", comment="redo")
    workflow.review(imported[0], reviewer, verdict="approve")  # imported: its author's
    save(first, reviewer, [], 0)  # counts nothing: no seconds, no submission


def test_the_rebuild_equals_what_live_counting_stored(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    work(tenant, Clock(monkeypatch))
    project = tenant.project.pk
    live = rows(project)
    days = {row[2] for row in live}
    assert len(days) == 2
    assert any(row[3] is None and row[6] + row[7] for row in live)  # nobody's verdicts, by class
    assert max(row[-1] for row in live) >= MAX_LEAD_TIME
    annotator = tenant.user(Role.ANNOTATOR).pk
    assert sum(r[5] for r in live if r[3] == annotator and r[4] is None) == 3  # 3 submissions
    Activity.objects.filter(project_id=project).delete()
    assert rebuild_activity(project) == len(live)
    assert rows(project) == live
    rebuild_activity(project)  # over its own rows: the same
    assert rows(project) == live


def test_submissions_the_audit_trail_no_longer_holds_are_not_recounted(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    work(tenant, Clock(monkeypatch))
    project = tenant.project.pk
    live = rows(project)
    AuditEvent.objects.filter(action=AuditAction.TASK_SUBMITTED).delete()  # retention
    rebuild_activity(project)
    rebuilt = rows(project)
    assert sum(row[5] for row in rebuilt) == 0 < sum(row[5] for row in live)
    # The rest is the same, but for the verdicts: they go to the judged version's author
    # instead of its submitter — on the first task, the manager who corrected it.
    manager = tenant.user(Role.MANAGER).pk
    assert [row[6] for row in live if row[3] == manager and row[4] is None] == [0]
    assert [row[6] for row in rebuilt if row[3] == manager and row[4] is None] == [1]
    assert sum(row[-1] for row in rebuilt) == sum(row[-1] for row in live)
    assert sum(row[6] + row[7] for row in rebuilt) == sum(row[6] + row[7] for row in live)


def test_seconds_stored_before_the_cap_count_as_live_counting_takes_them(tenant: Tenant) -> None:
    save(tenant.tasks[0], tenant.user(Role.ANNOTATOR), [tenant.label.pk], 5)
    AnnotationVersion.objects.update(lead_time=1e12)  # a wrong clock, saved before the cap
    rebuild_activity(tenant.project.pk)
    assert {row[-1] for row in rows(tenant.project.pk)} == {MAX_LEAD_TIME}


def test_the_command_rebuilds_the_chosen_project_s_activity(
    tenant: Tenant, other_tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    work(tenant, Clock(monkeypatch))
    save(other_tenant.tasks[0], other_tenant.user(Role.ANNOTATOR), [other_tenant.label.pk], 8)
    live, other = rows(tenant.project.pk), rows(other_tenant.project.pk)
    Activity.objects.update(lead_time=0.0, submitted=0)
    Activity.objects.filter(project=tenant.project, person__isnull=False).delete()

    def run(*args: str) -> str:
        result = CliRunner().invoke(main, ["recount-statistics", *args], prog_name="defectlab")
        assert result.exit_code == 0, result.output
        return result.output

    without = run("--project", str(tenant.project.pk))
    assert "activity" not in without and rows(tenant.project.pk) != live  # not asked for
    output = run("--project", str(tenant.project.pk), "--activity")
    assert f"{len(live):,} activity rows from history" in output, output
    assert rows(tenant.project.pk) == live
    assert rows(other_tenant.project.pk) != other  # another project's rows are left alone
    run("--activity")
    assert rows(other_tenant.project.pk) == other
    assert "--activity" in run("--help") and "retention" in run("--help")
