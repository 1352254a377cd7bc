"""Twenty people saving, submitting and reviewing at once keep every statistics counter: the
tally and the daily activity rows are added to by upserts, in one order, so nothing is lost and
nothing deadlocks (PostgreSQL: SQLite serializes all writers, so a race proves nothing)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from django.db import connection, transaction
from django.db.models import Sum

from defectlab.labeling import workflow
from defectlab.labeling.counters import tally_of
from defectlab.labeling.models import Activity, Task, TaskStatus
from defectlab.labeling.services import assign_tasks, delete_tasks, set_status
from defectlab.labeling.tasks import COUNTER
from defectlab.tenancy.roles import Role
from tests.conftest import box, make_tenant
from tests.insight.tally import recounted_tally, stored_tally

WORKERS = 20


def at_once(work: Callable[[int], None]) -> list[BaseException]:
    barrier = threading.Barrier(WORKERS, timeout=60)
    failures: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as error:  # reported by the main thread
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


@pytest.mark.django_db(transaction=True)
def test_twenty_at_once_lose_no_count() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite serializes all writers, so a race proves nothing")
    t = make_tenant("Race", tasks=WORKERS)
    annotator, reviewer = t.user(Role.ANNOTATOR), t.user(Role.REVIEWER)
    dent = t.project.labels.get(name="dent")
    tasks = list(Task.objects.filter(project=t.project).order_by("id"))

    def submit(index: int) -> None:
        shapes = [box(t.label), box(dent, 1, 1, 30, 30)] + [box(t.label)] * (index % 3)
        workflow.save_annotation(
            tasks[index], annotator, base_version=None, shapes=shapes, tags=["NG"], submit=True,
            lead_time=2.0,
        )  # fmt: skip

    def review(index: int) -> None:
        verdict = "approve" if index % 2 else "reject"
        workflow.review(tasks[index], reviewer, verdict=verdict, comment="fix")

    assert at_once(submit) == []
    assert at_once(review) == []
    assert stored_tally(t.project.pk) == recounted_tally(t.project.pk)
    assert dict(tally_of(t.project.pk))[("", "approved", "tag", "NG")] == WORKERS // 2
    rows = Activity.objects.filter(project=t.project, label__isnull=True)
    mine = rows.filter(person=annotator).aggregate(
        s=Sum("submitted"), a=Sum("approved"), r=Sum("rejected"), t=Sum("lead_time")
    )
    assert mine == {"s": WORKERS, "a": WORKERS // 2, "r": WORKERS // 2, "t": 2.0 * WORKERS}
    assert rows.filter(person=reviewer).aggregate(n=Sum("reviews"))["n"] == WORKERS
    by_label = Activity.objects.filter(project=t.project, label=t.label, person=annotator)
    assert by_label.aggregate(n=Sum("submitted"))["n"] == WORKERS


@pytest.mark.django_db(transaction=True)
def test_a_delete_racing_a_status_change_keeps_the_status_counters() -> None:
    """A submit holds the task's lock and moves it new → submitted while a delete of that task
    comes in: the delete waits for the lock and takes the task off the status it then has."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite serializes all writers, so a race proves nothing")
    t = make_tenant("DeleteRace", tasks=1)
    task = Task.objects.get(project=t.project)
    locked, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def submit() -> None:
        try:
            with transaction.atomic():
                row = Task.objects.select_for_update().get(pk=task.pk)
                set_status(row, TaskStatus.SUBMITTED)
                row.save(update_fields=["status"])
                locked.set()
                assert release.wait(60)
        except BaseException as error:
            failures.append(error)
        finally:
            locked.set()
            connection.close()

    def delete() -> None:
        try:
            assert locked.wait(60)
            delete_tasks(t.project, [task.pk])
        except BaseException as error:
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit), threading.Thread(target=delete)]
    for thread in threads:
        thread.start()
    assert locked.wait(60)
    waiting = 0
    for _poll in range(600):  # until the delete waits on a lock the submit holds
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            )
            waiting = cursor.fetchone()[0]
        if waiting:
            break
        time.sleep(0.05)
    release.set()
    for thread in threads:
        thread.join()
    assert failures == [] and waiting
    t.project.refresh_from_db()
    assert {name: getattr(t.project, name) for name in COUNTER.values()} == dict.fromkeys(
        COUNTER.values(), 0
    )


@pytest.mark.django_db(transaction=True)
def test_assigning_while_people_save_and_review_keeps_the_slices() -> None:
    """Half the threads hand tasks round (overlapping sets, to a person or to nobody) while the
    others save, submit and review those tasks: the tally's class and assignee slices stay
    equal to a recount, and nothing deadlocks."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite serializes all writers, so a race proves nothing")
    t = make_tenant("AssignRace", tasks=WORKERS)
    annotator, reviewer = t.user(Role.ANNOTATOR), t.user(Role.REVIEWER)
    manager = t.user(Role.MANAGER)
    dent = t.project.labels.get(name="dent")
    tasks = list(Task.objects.filter(project=t.project).order_by("id"))
    for task in tasks[::2]:
        workflow.save_annotation(
            task, annotator, base_version=None, shapes=[box(dent)], tags=["OK"], submit=True
        )

    def work(index: int) -> None:
        if index % 2:  # overlapping runs of tasks, in a shuffled order
            chosen = [tasks[(index + step * 3) % WORKERS].pk for step in range(6)][::-1]
            person = (annotator.pk, manager.pk, None)[index % 3]
            assign_tasks(t.project, chosen, person)
        elif Task.objects.get(pk=tasks[index].pk).status == TaskStatus.SUBMITTED:
            workflow.review(tasks[index], reviewer, verdict="reject", comment="again")
        else:
            shapes = [box(t.label)] * (1 + index % 3)
            workflow.save_annotation(
                tasks[index], annotator, base_version=None, shapes=shapes, submit=True
            )

    assert at_once(work) == []
    assert stored_tally(t.project.pk) == recounted_tally(t.project.pk)
    assert any(key[0].startswith("l") and "a" in key[0] for key in stored_tally(t.project.pk))


@pytest.mark.django_db(transaction=True)
def test_an_image_size_learned_while_someone_saves_does_not_deadlock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reviewer's repro: a save holds its task and the project's row and is about to add to
    the tally; meanwhile another task's image size is replaced (storage sync), which moves that
    task's size bins in the tally. That path took a tally row, then its new row's foreign key
    check waited for the project's row the save held, while the save waited for the tally row:
    deadlock. Every tally write now takes the project's row first."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite serializes all writers, so a race proves nothing")
    from defectlab.labeling.models import Annotation
    from defectlab.labeling.sizes import replace_size
    from defectlab.labeling.tasks import NewTask, add_tasks

    t = make_tenant("SizeRace", tasks=1)
    annotator = t.user(Role.ANNOTATOR)
    x, y = add_tasks(
        t.project,
        [
            NewTask("https://x.test/x.png", "x.png", 100, 100),
            NewTask("https://x.test/y.png", "y.png", 100, 100),
        ],
    )
    for task in (x, y):
        workflow.save_annotation(
            task, annotator, base_version=None, shapes=[box(t.label, 1, 1, 11, 11)]
        )
    holding, go = threading.Event(), threading.Event()
    real = workflow.add_tally

    def slow_add(project_id: int, change: object) -> None:
        if threading.current_thread().name == "saver":  # the project's row held by now
            holding.set()
            go.wait(10)
        real(project_id, change)  # type: ignore[arg-type]

    monkeypatch.setattr(workflow, "add_tally", slow_add)
    failures: list[BaseException] = []

    def saver() -> None:
        try:
            version = Annotation.objects.get(task=y).version
            two = [box(t.label, 1, 1, 11, 11), box(t.label, 2, 2, 12, 12)]
            workflow.save_annotation(y, annotator, base_version=version, shapes=two)
        except BaseException as error:
            failures.append(error)
        finally:
            connection.close()

    def sizer() -> None:
        try:
            replace_size(x.pk, (1000, 1000))
        except BaseException as error:
            failures.append(error)
        finally:
            connection.close()

    saving = threading.Thread(target=saver, name="saver")
    saving.start()
    assert holding.wait(10)
    sizing = threading.Thread(target=sizer)
    sizing.start()
    time.sleep(1.0)  # the sizes path reaches its tally write and waits
    go.set()
    saving.join(30)
    sizing.join(30)
    assert failures == []
    assert stored_tally(t.project.pk) == recounted_tally(t.project.pk)
