"""Project statistics: the stored counters stay equal to a recount through random sequences of
real operations, and every part of the statistics equals a brute-force count in Python."""

from __future__ import annotations

import contextlib
import csv
import io
import random
from collections import Counter, defaultdict
from typing import Any

import pytest

from defectlab.errors import DefectLabError
from defectlab.insight import statistics as stats
from defectlab.labeling import services, workflow
from defectlab.labeling.activity import MAX_LEAD_TIME
from defectlab.labeling.counters import (
    SHAPES_CAP,
    label_counts,
    recount,
    size_bin,
)
from defectlab.labeling.models import (
    Activity,
    Annotation,
    Review,
    Tally,
    TallySlice,
    Task,
    TaskLabel,
    TaskTag,
)
from defectlab.labeling.tasklist import TaskFilter, task_count, task_filter_from
from defectlab.labeling.tasks import NewAnnotation, NewTask, add_annotations, add_tasks
from defectlab.tenancy.models import Membership, User
from defectlab.tenancy.roles import Role
from tests.conftest import Tenant, box, client_for, signed_in
from tests.insight.tally import recounted_tally, stored_tally

pytestmark = pytest.mark.django_db(transaction=False)


def stored(project_id: int) -> dict[str, Any]:
    """The per-task counters as stored."""
    labels = sorted(
        TaskLabel.objects.filter(task__project_id=project_id).values_list(
            "task_id", "label_id", "shapes", *stats.SIZE_FIELDS, "size_unknown"
        )
    )
    tags = sorted(TaskTag.objects.filter(project_id=project_id).values_list("task_id", "name"))
    counts = sorted(Task.objects.filter(project_id=project_id).values_list("id", "shape_count"))
    return {"labels": labels, "tags": tags, "counts": counts}


def brute(project_id: int) -> dict[str, Any]:
    """The per-task counters counted from the annotations, in Python."""
    labels, tags, counts = [], [], []
    annotations = {a.task_id: a for a in Annotation.objects.filter(task__project_id=project_id)}
    for task in Task.objects.filter(project_id=project_id):
        annotation = annotations.get(task.pk)
        shapes = annotation.shapes if annotation else []
        counts.append((task.pk, len(shapes)))
        for label, counted in label_counts(shapes, task.width, task.height).items():
            labels.append((task.pk, label, counted.shapes, *counted.sizes, counted.unknown))
        tags += [(task.pk, name) for name in dict.fromkeys(annotation.tags if annotation else [])]
    return {"labels": sorted(labels), "tags": sorted(tags), "counts": sorted(counts)}


def random_shapes(rng: random.Random, tenant: Tenant) -> list[dict[str, Any]]:
    labels = list(tenant.project.labels.values_list("pk", flat=True))
    shapes = []
    for _ in range(rng.choice([0, 1, 1, 2, 3, 12])):
        x, y = rng.uniform(0, 40), rng.uniform(0, 30)
        shapes.append(
            box(rng.choice(labels), x, y, x + rng.uniform(0.5, 20), y + rng.uniform(0.5, 15))
        )
    return shapes


MOVES = ("save", "save", "submit", "review", "review", "delete", "import", "tab", "assign")


def operate(rng: random.Random, tenant: Tenant, steps: int, moves: tuple[str, ...] = MOVES) -> None:
    annotator, reviewer = tenant.user(Role.ANNOTATOR), tenant.user(Role.REVIEWER)
    manager = tenant.user(Role.MANAGER)
    for _ in range(steps):
        tasks = list(Task.objects.filter(project=tenant.project))
        move = rng.choice(moves)
        try:
            if move == "import":
                created = add_tasks(
                    tenant.project,
                    [
                        NewTask(
                            f"https://x.test/{rng.random()}.png",
                            "i.png",
                            64,
                            48,
                            status="submitted",
                            has_annotation=True,
                            shape_count=0,
                        )
                    ],
                )
                add_annotations(
                    [NewAnnotation(created[0], random_shapes(rng, tenant), ["NG"])],
                    author_id=annotator.pk,
                )
                continue
            if not tasks:
                continue
            task = rng.choice(tasks)
            if move == "delete":
                services.delete_task(task, actor=manager)
            elif move == "assign":  # some tasks, to a person or to nobody, some already theirs
                chosen = rng.sample(tasks, min(len(tasks), rng.choice([1, 3])))
                person = rng.choice([annotator.pk, manager.pk, None])
                services.assign_tasks(tenant.project, [t.pk for t in chosen], person)
            elif move == "review":
                verdict = rng.choice(["approve", "reject"])
                workflow.review(task, reviewer, verdict=verdict, comment="fix it")
            elif move == "tab":  # a second tab saving from the same version: one of them loses
                current = Annotation.objects.filter(task=task).first()
                version = current.version if current else None
                for _tab in range(2):
                    workflow.save_annotation(
                        task,
                        annotator,
                        base_version=version,
                        shapes=random_shapes(rng, tenant),
                        tags=["OK"],
                    )
            else:
                current = Annotation.objects.filter(task=task).first()
                user = manager if task.status in ("submitted", "approved") else annotator
                workflow.save_annotation(
                    task, user, base_version=current.version if current else None,
                    shapes=random_shapes(rng, tenant), tags=rng.choice([[], ["OK"], ["NG"], ["OK", "NG"]]),
                    submit=move == "submit", lead_time=rng.uniform(0, 30),
                )  # fmt: skip
        except DefectLabError:
            pass  # refused (not submitted, stale, …): nothing written


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_operations_keep_the_counters_equal_to_a_recount(tenant: Tenant, seed: int) -> None:
    rng = random.Random(seed)
    operate(rng, tenant, 60)
    project_id = tenant.project.pk
    assert stored(project_id) == brute(project_id)
    assert stored_tally(project_id) == recounted_tally(project_id)
    before = stored(project_id)
    TaskLabel.objects.filter(task__project_id=project_id).update(shapes=0, size_0=7)
    TaskTag.objects.filter(project_id=project_id).delete()
    Task.objects.filter(project_id=project_id).update(shape_count=99)
    Tally.objects.filter(project_id=project_id).update(count=5)
    recount(project_id, batch=3)
    assert stored(project_id) == before
    assert stored_tally(project_id) == recounted_tally(project_id)


def test_size_bins() -> None:
    assert size_bin([[0, 0], [100, 100]], 100, 100) == 11  # the whole image
    assert size_bin([[0, 0], [1, 1]], 1000, 1000) == 0  # 1e-6
    assert size_bin([[0, 0], [0, 0]], 10, 10) == 0  # no area
    assert size_bin([[0, 0], [10, 10]], 100, 100) == 8  # 1e-2: [-2, -1.5)


def test_note_size_counts_sizes_once_known(tenant: Tenant) -> None:
    from defectlab.labeling.sizes import note_size

    (task,) = add_tasks(tenant.project, [NewTask("https://x.test/a.png", "a.png")])
    workflow.save_annotation(
        task,
        tenant.user(Role.ANNOTATOR),
        base_version=None,
        shapes=[box(tenant.label, 1, 1, 11, 11)],
    )
    row = TaskLabel.objects.get(task=task)
    assert (row.size_unknown, row.shapes) == (1, 1)
    note_size(task, (100, 100))
    row = TaskLabel.objects.get(task=task)
    assert (row.size_unknown, row.size_8, row.shapes) == (0, 1, 1)


def python_statistics(tenant: Tenant, task_filter: TaskFilter) -> dict[str, Any]:
    """The statistics by loops over every task, for comparison."""
    project = tenant.project
    tasks = [
        t
        for t in Task.objects.filter(project=project)
        if t in task_filter.apply(Task.objects.filter(pk=t.pk))
    ]
    annotations = {a.task_id: a for a in Annotation.objects.filter(task__project=project)}
    statuses = Counter(t.status for t in tasks)
    images, shapes, sizes = Counter(), Counter(), defaultdict(lambda: [0] * len(stats.SIZE_FIELDS))
    tags, per_image = Counter(), [0] * (SHAPES_CAP + 1)
    for task in tasks:
        annotation = annotations.get(task.pk)
        drawn = annotation.shapes if annotation else []
        per_image[min(len(drawn), SHAPES_CAP)] += 1
        for label in {s["label"] for s in drawn}:
            images[label] += 1
        for shape in drawn:
            shapes[shape["label"]] += 1
            sizes[shape["label"]][size_bin(shape["points"], task.width, task.height)] += 1
        tags.update(list(dict.fromkeys(annotation.tags if annotation else [])))
    return {
        "statuses": {
            s: statuses.get(s, 0)
            for s in ("new", "in_progress", "submitted", "approved", "rejected")
        },
        "images": {label.pk: images.get(label.pk, 0) for label in project.labels.all()},
        "shapes": {label.pk: shapes.get(label.pk, 0) for label in project.labels.all()},
        "sizes": {label.pk: sizes[label.pk] for label in project.labels.all()},
        "tags": {name: tags.get(name, 0) for name in ("OK", "NG")},
        "per_image": per_image,
    }


@pytest.mark.parametrize(
    "task_filter",
    [
        TaskFilter(),
        TaskFilter(statuses=["submitted"]),
        TaskFilter(statuses=["approved", "rejected", "in_progress"]),
        TaskFilter(has_annotation=True),
        TaskFilter(statuses=["approved", "rejected"], has_prediction=False),
    ],
)
def test_statistics_equal_a_brute_force_count(tenant: Tenant, task_filter: TaskFilter) -> None:
    operate(random.Random(7), tenant, 80)
    tenant.project.refresh_from_db()
    found = stats.statistics(tenant.project, stats.StatisticsFilter(task_filter))
    expected = python_statistics(tenant, task_filter)
    assert found.statuses == expected["statuses"]
    assert {row.label: row.images for row in found.classes} == expected["images"]
    assert {row.label: row.shapes for row in found.classes} == expected["shapes"]
    assert {row.label: row.sizes for row in found.classes} == expected["sizes"]
    assert found.tags == expected["tags"]
    assert found.shapes_per_image == expected["per_image"]


def test_class_and_assignee_filters_read_the_tally_and_equal_a_brute_force_count(
    tenant: Tenant,
) -> None:
    operate(random.Random(5), tenant, 120, (*MOVES, "import", "import", "import", "assign"))
    project = tenant.project
    project.refresh_from_db()
    labels = list(project.labels.values_list("pk", flat=True))
    annotator, manager = tenant.user(Role.ANNOTATOR).pk, tenant.user(Role.MANAGER).pk
    assert Task.objects.filter(project=project, assignee__isnull=False).exists()
    filters = [
        TaskFilter(label=labels[0]),
        TaskFilter(label=labels[-1], statuses=["submitted", "approved"]),
        TaskFilter(assignee=annotator),
        TaskFilter(assignee=manager, statuses=["rejected", "new"]),
        TaskFilter(unassigned=True),
        TaskFilter(label=labels[0], assignee=annotator),
        TaskFilter(label=labels[-1], unassigned=True, statuses=["approved"]),
        TaskFilter(assignee=999_999),  # nobody: every count 0
    ]
    manager_user = tenant.user(Role.MANAGER)
    for task_filter in filters:
        assert task_filter.tally_slice(project), task_filter  # read from the tally
        # The task table's total under the same filter: exact, from the same slice.
        params = {"status": ",".join(task_filter.statuses)}
        if task_filter.label is not None:
            params["label"] = str(task_filter.label)
        if task_filter.unassigned or task_filter.assignee is not None:
            params["assignee"] = "none" if task_filter.unassigned else str(task_filter.assignee)
        matching = task_filter.apply(Task.objects.filter(project=project)).count()
        assert task_count(project, params, manager_user) == (matching, False), task_filter
        found = stats.statistics(project, stats.StatisticsFilter(task_filter))
        expected = python_statistics(tenant, task_filter)
        assert found.statuses == expected["statuses"], task_filter
        assert {row.label: row.images for row in found.classes} == expected["images"]
        assert {row.label: row.shapes for row in found.classes} == expected["shapes"]
        assert {row.label: row.sizes for row in found.classes} == expected["sizes"]
        assert found.tags == expected["tags"], task_filter
        assert found.shapes_per_image == expected["per_image"], task_filter


def test_a_project_before_the_slices_sums_the_task_counters_until_recounted(
    tenant: Tenant,
) -> None:
    operate(random.Random(9), tenant, 40, ("save", "submit", "review", "import", "assign"))
    project = tenant.project
    chosen = stats.StatisticsFilter(TaskFilter(label=tenant.label.pk))
    sliced = stats.as_json(stats.statistics(project, chosen))
    # As after the upgrade that added the slices: only the slice of all tasks was counted.
    TallySlice.objects.filter(project=project).delete()
    project.__class__.objects.filter(pk=project.pk).update(tally_sliced=False)
    project.refresh_from_db()
    assert chosen.tasks.tally_slice(project) is None
    assert TaskFilter(statuses=["new"]).tally_slice(project) == ""
    assert stats.as_json(stats.statistics(project, chosen)) == sliced
    recount(project.pk)
    project.refresh_from_db()
    assert project.tally_sliced
    assert chosen.tasks.tally_slice(project) == f"l{tenant.label.pk}"
    assert stats.as_json(stats.statistics(project, chosen)) == sliced


def test_a_deleted_person_s_tasks_count_as_unassigned(tenant: Tenant) -> None:
    operate(random.Random(3), tenant, 30, ("save", "submit", "import"))
    project = tenant.project
    leaving = tenant.user(Role.ANNOTATOR)
    ids = list(Task.objects.filter(project=project).values_list("pk", flat=True))
    services.assign_tasks(project, ids[: len(ids) // 2 + 1], leaving.pk)
    leaving.delete()
    assert not Task.objects.filter(project=project, assignee__isnull=False).exists()
    assert stored_tally(project.pk) == recounted_tally(project.pk)
    nobody = stats.statistics(project, stats.StatisticsFilter(TaskFilter(unassigned=True)))
    assert sum(nobody.statuses.values()) == len(ids)


def test_label_filter_and_activity(tenant: Tenant) -> None:
    # Activity is history: it outlives deleted tasks (and their reviews), so none are deleted.
    operate(random.Random(11), tenant, 80, tuple(m for m in MOVES if m != "delete"))
    label = tenant.label.pk
    found = stats.statistics(tenant.project, stats.StatisticsFilter(TaskFilter(label=label)))
    with_label = set(TaskLabel.objects.filter(label_id=label).values_list("task_id", flat=True))
    assert sum(found.statuses.values()) == len(with_label)
    assert next(r for r in found.classes if r.label == label).images == len(with_label)
    # Activity: one review given and one verdict on someone's work per review.
    everything = stats.statistics(tenant.project)
    reviews = Review.objects.filter(task__project=tenant.project).count()
    assert reviews > 0
    assert sum(day.reviews for day in everything.throughput) == reviews
    assert sum(r.approved + r.rejected for r in everything.rejections_by_person) == reviews
    rejected = Review.objects.filter(task__project=tenant.project, verdict="reject").count()
    assert sum(r.rejected for r in everything.rejections_by_person) == rejected


def test_api_json_csv_and_roles(tenant: Tenant, other_tenant: Tenant) -> None:
    operate(random.Random(5), tenant, 40)
    url = f"/api/projects/{tenant.project.pk}/statistics/"
    for role in (Role.OWNER, Role.ADMIN, Role.MANAGER, Role.REVIEWER, Role.ANNOTATOR):
        answer = client_for(tenant.user(role)).get(url)
        assert answer.status_code == 200, role
    body = answer.json()
    assert body["tasks"] == Task.objects.filter(project=tenant.project).count()
    assert client_for(other_tenant.user(Role.OWNER)).get(url).status_code == 404
    assert client_for(tenant.user(Role.OWNER)).get(url + "?start=nonsense").status_code == 400
    # CSV: filters applied, and a name a spreadsheet would run is quoted.
    tenant.label.name = "=HYPERLINK(1)"
    tenant.label.save()
    answer = client_for(tenant.user(Role.ANNOTATOR)).get(url + "?format=csv&status=submitted")
    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(answer.content.decode())))
    assert rows[0] == ["section", "key", "detail", "value"]
    statuses = {row[1]: int(row[3]) for row in rows if row[0] == "statuses"}
    assert (
        statuses["submitted"]
        == Task.objects.filter(project=tenant.project, status="submitted").count()
    )
    assert sum(statuses.values()) == statuses["submitted"]
    assert all(not cell.startswith("=") for row in rows for cell in row)
    assert any(row[1] == "'=HYPERLINK(1)" for row in rows)


def test_class_filter_keeps_reviews_and_lead_time(tenant: Tenant) -> None:
    """The reviewer's repro: a class filter keeps the reviews of that class's work, and the
    labeling seconds of the saves whose shapes use the class (each save in full)."""
    annotator, reviewer = tenant.user(Role.ANNOTATOR), tenant.user(Role.REVIEWER)
    scratch = tenant.project.labels.get(name="scratch").pk
    dent = tenant.project.labels.get(name="dent").pk
    task = tenant.tasks[0]

    def save(user: Any, labels: list[int], lead: float, *, submit: bool = False) -> None:
        current = Annotation.objects.filter(task=task).first()
        workflow.save_annotation(
            task, user, base_version=current.version if current else None,
            shapes=[box(label, 2 + i, 2, 9 + i, 9) for i, label in enumerate(labels)],
            submit=submit, lead_time=lead,
        )  # fmt: skip

    save(annotator, [scratch], 10)
    save(annotator, [dent, dent], 20)
    save(annotator, [dent], 30, submit=True)
    workflow.review(task, reviewer, verdict="reject", comment="fix it")
    save(annotator, [dent, scratch], 40, submit=True)
    save(tenant.user(Role.MANAGER), [scratch], 5)  # the correction
    workflow.review(task, reviewer, verdict="approve")

    def totals(label: int | None) -> dict[tuple[int, str], float]:
        found = stats.statistics(tenant.project, stats.StatisticsFilter(TaskFilter(label=label)))
        out: Counter[tuple[int, str]] = Counter()
        for day in found.throughput:
            for name in ("submitted", "reviews", "approved", "rejected", "lead_time"):
                out[(day.person, name)] += getattr(day, name)
        return {key: value for key, value in out.items() if value}

    a, r, m = annotator.pk, reviewer.pk, tenant.user(Role.MANAGER).pk
    assert totals(None) == {
        (a, "submitted"): 2, (a, "lead_time"): 100, (a, "approved"): 1, (a, "rejected"): 1,
        (r, "reviews"): 2, (m, "lead_time"): 5,
    }  # fmt: skip
    # dent: the first submission (rejected: it was all dent) and the resubmission used dent;
    # the approval was of the corrected work, which has no dent.
    assert totals(dent) == {
        (a, "submitted"): 2, (a, "lead_time"): 90, (a, "rejected"): 1, (r, "reviews"): 1,
    }  # fmt: skip
    assert totals(scratch) == {
        (a, "submitted"): 1, (a, "lead_time"): 50, (a, "approved"): 1, (r, "reviews"): 1,
        (m, "lead_time"): 5,
    }  # fmt: skip


def test_a_huge_lead_time_is_capped_and_a_non_number_refused(tenant: Tenant) -> None:
    """A wrong clock's 1.7e308 seconds counts as a day; the statistics stay JSON; a save after
    it still works (on PostgreSQL the day's sum once overflowed); infinity is a 400."""
    annotator = tenant.user(Role.ANNOTATOR)
    client = client_for(annotator)
    task = tenant.tasks[0]
    url = f"/api/tasks/{task.pk}/annotation/"
    body = {"shapes": [box(tenant.label)], "lead_time": 1.7e308}
    first = client.put(url, body, format="json")
    assert first.status_code == 200, first.content
    again = client.put(url, {**body, "version": first.json()["version"]}, format="json")
    assert again.status_code == 200, again.content
    assert Annotation.objects.get(task=task).lead_time == 2 * MAX_LEAD_TIME
    refused = client.generic(
        "PUT", url, '{"shapes": [], "lead_time": 1e999, "version": 2}', "application/json"
    )
    assert refused.status_code == 400 and "lead_time" in str(refused.json()), refused.json()
    with pytest.raises(DefectLabError):
        workflow.save_annotation(task, annotator, base_version=2, shapes=[], lead_time=float("nan"))
    answer = client.get(f"/api/projects/{tenant.project.pk}/statistics/")
    assert answer.status_code == 200
    days = [row for row in answer.json()["throughput"] if row["person"] == annotator.pk]
    assert sum(row["lead_time"] for row in days) == 2 * MAX_LEAD_TIME
    # A sum stored before the cap that is no finite number is left out, not a broken answer.
    found = stats.statistics(tenant.project)
    broken = [
        stats.PersonDay(day.day, day.person, day.name, 0, 0, 0, 0, float("inf"))
        for day in found.throughput
    ]
    shown = stats.as_json(stats.Statistics(**{**found.__dict__, "throughput": broken}))
    assert [row["lead_time"] for row in shown["throughput"]] == [None] * len(broken)
    assert "inf" not in stats.as_csv(stats.Statistics(**{**found.__dict__, "throughput": broken}))


def test_verdicts_on_work_with_no_author_count_per_class(tenant: Tenant) -> None:
    """Work whose author is gone: its verdicts still count in the per-class rejection rate, on
    one row per class and day (merged by the upsert, though the person is NULL)."""
    annotator, reviewer = tenant.user(Role.ANNOTATOR), tenant.user(Role.REVIEWER)
    tasks = tenant.tasks[:3]
    for task in tasks:
        workflow.save_annotation(
            task, annotator, base_version=None, shapes=[box(tenant.label)], submit=True
        )
    Task.objects.filter(pk__in=[t.pk for t in tasks]).update(submitted_by=None)
    Annotation.objects.filter(task__in=tasks).update(author=None)
    for task, verdict in zip(tasks, ["reject", "approve", "reject"], strict=True):
        workflow.review(task, reviewer, verdict=verdict, comment="fix it")
    found = stats.statistics(tenant.project)
    (scratch,) = [row for row in found.rejections_by_class if row.key == tenant.label.pk]
    assert (scratch.approved, scratch.rejected) == (1, 2)
    assert Activity.objects.filter(person__isnull=True).count() == 1
    assert [r for r in found.rejections_by_person if r.rate is not None] == []  # nobody to name
    assert {day.person for day in found.throughput} == {annotator.pk, reviewer.pk}
    assert sum(day.reviews for day in found.throughput) == 3


def test_assigning_one_task_through_its_api_moves_it_and_is_audited(tenant: Tenant) -> None:
    from defectlab.tenancy.audit import AuditAction
    from defectlab.tenancy.models import AuditEvent

    operate(random.Random(4), tenant, 20, ("save", "submit", "import"))
    task = Task.objects.filter(project=tenant.project).order_by("id").first()
    annotator = tenant.user(Role.ANNOTATOR)
    manager = client_for(tenant.user(Role.MANAGER))
    answer = manager.patch(f"/api/tasks/{task.pk}/", {"assignee": annotator.pk}, format="json")
    assert answer.status_code == 200 and answer.json()["assignee"] == annotator.pk
    assert stored_tally(tenant.project.pk) == recounted_tally(tenant.project.pk)
    theirs = stats.statistics(
        tenant.project, stats.StatisticsFilter(TaskFilter(assignee=annotator.pk))
    )
    assert sum(theirs.statuses.values()) == 1
    event = AuditEvent.objects.order_by("-id").first()
    assert event.action == AuditAction.TASKS_ASSIGNED
    assert event.data == {"count": 1, "assignee": annotator.pk}
    answer = manager.patch(f"/api/tasks/{task.pk}/", {"assignee": None}, format="json")
    assert answer.status_code == 200 and answer.json()["assignee"] is None
    assert stored_tally(tenant.project.pk) == recounted_tally(tenant.project.pk)
    outsider = manager.patch(f"/api/tasks/{task.pk}/", {"assignee": 999_999}, format="json")
    assert outsider.status_code == 400


def test_per_person_numbers_are_for_reviewers_and_managers_others_see_their_own(
    tenant: Tenant,
) -> None:
    operate(random.Random(12), tenant, 60, tuple(m for m in MOVES if m != "delete"))
    annotator = tenant.user(Role.ANNOTATOR)
    url = f"/api/projects/{tenant.project.pk}/statistics/"
    everyone = client_for(tenant.user(Role.REVIEWER)).get(url).json()
    people = {row["person"] for row in everyone["throughput"]}
    assert annotator.pk in people and len(people) > 1  # the reviewer's reviews count too
    for role in (Role.MANAGER, Role.OWNER):
        assert client_for(tenant.user(role)).get(url).json()["throughput"] == everyone["throughput"]
    own = client_for(annotator).get(url).json()
    assert {row["person"] for row in own["throughput"]} == {annotator.pk}
    assert [row for row in everyone["throughput"] if row["person"] == annotator.pk] == own[
        "throughput"
    ]
    assert {row["person"] for row in own["rejections_by_person"]} <= {annotator.pk}
    assert own["rejections_by_class"] == everyone["rejections_by_class"]  # the team's rates
    assert own["statuses"] == everyone["statuses"]
    # Asking for a colleague's work as an annotator gives nothing of it.
    reviewer = tenant.user(Role.REVIEWER).pk
    theirs = client_for(annotator).get(f"{url}?assignee={reviewer}").json()
    assert theirs["throughput"] == [] and theirs["rejections_by_person"] == []
    csv_rows = client_for(annotator).get(url + "?format=csv").content.decode()
    assert tenant.user(Role.REVIEWER).name not in csv_rows
    page = signed_in(annotator).get(f"/projects/{tenant.project.pk}/statistics/")
    assert b'id="statistics-own-work"' in page.content
    page = signed_in(tenant.user(Role.REVIEWER)).get(f"/projects/{tenant.project.pk}/statistics/")
    assert b'id="statistics-own-work"' not in page.content


def test_assignee_zero_is_nobody_s_id_not_the_unassigned(tenant: Tenant) -> None:
    """A reviewer's repro: ``assignee=0`` named the unassigned slice ("a0"); the task table
    reads it as the person with id 0 (none), so the two must agree: no task."""
    operate(random.Random(5), tenant, 30, ("save", "submit", "import"))
    project = tenant.project
    project.refresh_from_db()
    chosen = task_filter_from({"assignee": "0"}, tenant.user(Role.MANAGER))
    assert chosen.apply(Task.objects.filter(project=project)).count() == 0
    assert stats.statistics(project, stats.StatisticsFilter(chosen)).tasks == 0
    nobody = TaskFilter(unassigned=True)
    unassigned = nobody.apply(Task.objects.filter(project=project)).count()
    assert (
        unassigned and stats.statistics(project, stats.StatisticsFilter(nobody)).tasks == unassigned
    )


def test_sizes_learned_later_and_next_task_keep_the_slices(tenant: Tenant) -> None:
    from defectlab.labeling.sizes import note_size, replace_size

    project = tenant.project
    annotator = tenant.user(Role.ANNOTATOR)
    (task,) = add_tasks(project, [NewTask("https://x.test/a.png", "a.png")])
    (task2,) = add_tasks(project, [NewTask("https://x.test/b.png", "b.png", 100, 100)])
    services.assign_tasks(project, [task.pk, task2.pk], annotator.pk)
    for one in (task, task2):
        workflow.save_annotation(
            one, annotator, base_version=None, shapes=[box(tenant.label, 1, 1, 11, 11)], tags=["OK"]
        )
    note_size(Task.objects.get(pk=task.pk), (100, 100))
    replace_size(task2.pk, (1000, 1000))
    assert stored_tally(project.pk) == recounted_tally(project.pk)
    (task3,) = add_tasks(project, [NewTask("https://x.test/c.png", "c.png", 100, 100)])
    services.assign_tasks(project, [task3.pk], annotator.pk)
    workflow.next_task(project, annotator)  # new → in progress
    assert stored_tally(project.pk) == recounted_tally(project.pk)


@pytest.mark.parametrize("seed", [21, 22])
def test_every_mix_of_class_person_and_status_equals_a_brute_force_count(
    tenant: Tenant, seed: int
) -> None:
    """A reviewer's walk: rounds of random operations with assignments to a third person and
    "next task" for two, the tally checked after each; that person deleted; then every mix of
    class, person (or nobody) and statuses against a count in Python."""
    rng = random.Random(seed)
    extra = User.objects.create_user(f"x{seed}@acme.test", name="X")
    Membership.objects.create(organization=tenant.organization, user=extra, role=Role.ANNOTATOR)
    project = tenant.project
    for round_ in range(5):
        operate(rng, tenant, 15)
        ids = list(Task.objects.filter(project=project).values_list("pk", flat=True))
        if ids:
            services.assign_tasks(project, rng.sample(ids, min(3, len(ids))), extra.pk)
        for person in (extra, tenant.user(Role.ANNOTATOR)):
            with contextlib.suppress(DefectLabError):
                workflow.next_task(project, person)
        assert stored_tally(project.pk) == recounted_tally(project.pk), round_
    extra.delete()
    assert stored_tally(project.pk) == recounted_tally(project.pk)
    project.refresh_from_db()
    labels = list(project.labels.values_list("pk", flat=True))
    people: list[int | str | None] = [None, tenant.user(Role.ANNOTATOR).pk, "nobody"]
    for label in [None, *labels]:
        for person in people:
            for statuses in ([], ["submitted"], ["approved", "rejected"]):
                task_filter = TaskFilter(
                    statuses=statuses,
                    label=label,
                    assignee=person if isinstance(person, int) else None,
                    unassigned=person == "nobody",
                )
                found = stats.statistics(project, stats.StatisticsFilter(task_filter))
                expected = python_statistics(tenant, task_filter)
                assert found.statuses == expected["statuses"], task_filter
                assert {row.label: row.shapes for row in found.classes} == expected["shapes"]
                assert found.tags == expected["tags"], task_filter
                assert found.shapes_per_image == expected["per_image"], task_filter
