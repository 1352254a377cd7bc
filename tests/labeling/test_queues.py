"""Smarter queues: each task's top score and disagreement follow its newest prediction and its
annotation through what people and models do, and "next" hands tasks out in the project's
queue order without ever giving one task to two people or forgetting skips."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import transaction

from defectlab.geometry import Shape
from defectlab.labeling import queues, workflow
from defectlab.labeling.models import Prediction, Project, QueueOrder, Task, TaskStatus
from defectlab.labeling.tasks import PredictionRow, insert_predictions
from defectlab.tenancy.models import Membership, Role, User
from tests.conftest import Tenant, box, make_tasks


def scored(label: int, score: float | None, x1: float = 5, y1: float = 5, x2: float = 20,
           y2: float = 20) -> dict[str, Any]:  # fmt: skip
    shape = Shape.box(x1, y1, x2, y2, label=label).to_dict()
    if score is not None:
        shape["score"] = score
    return shape


def predict(task: Task, *shapes: dict[str, Any]) -> Prediction:
    return workflow.add_prediction(task, model_name="m", model_version="1", shapes=list(shapes))


def save(tenant: Tenant, task: Task, shapes: list[dict[str, Any]], *, submit: bool = False,
         user: User | None = None) -> None:  # fmt: skip
    task = Task.objects.get(pk=task.pk)
    current = getattr(task, "annotation", None)
    workflow.save_annotation(
        task,
        user or tenant.user(Role.MANAGER),
        base_version=current.version if current else None,
        shapes=shapes,
        submit=submit,
    )


def stored(task: Task) -> tuple[float | None, float | None]:
    task = Task.objects.get(pk=task.pk)
    return task.top_score, task.disagreement


def order(project: Project, value: str) -> None:
    project.queue_order = value
    project.save(update_fields=["queue_order"])


def person(tenant: Tenant, name: str, role: str = Role.ANNOTATOR) -> User:
    user = User.objects.create_user(f"{name}@acme.test", "a-long-password-1")
    Membership.objects.create(organization=tenant.organization, user=user, role=role)
    return user


# ---------------------------------------------------------------------------- the stored values


def test_top_score_is_the_newest_predictions_highest_score(tenant: Tenant) -> None:
    task, label = tenant.tasks[0], tenant.label.pk
    assert stored(task) == (None, None)
    predict(task, scored(label, 0.4), scored(label, 0.7, 30, 20, 40, 30))
    assert stored(task) == (0.7, None)  # no annotation: no disagreement
    predict(task, scored(label, 0.2))  # a newer prediction wins, even with lower scores
    assert stored(task)[0] == 0.2


def test_scoreless_imported_shapes_and_an_empty_prediction_count_as_certain(
    tenant: Tenant,
) -> None:
    first, second = tenant.tasks[0], tenant.tasks[1]
    predict(first, scored(tenant.label.pk, None))
    predict(second)  # the model is sure there is nothing: certain, not the least certain
    assert stored(first)[0] == 1.0
    assert stored(second)[0] == queues.EMPTY_TOP_SCORE == 1.0


def test_a_prediction_after_the_annotation_and_saves_after_the_prediction(tenant: Tenant) -> None:
    task, label = tenant.tasks[0], tenant.label.pk
    save(tenant, task, [box(label)])
    assert stored(task) == (None, None)  # no prediction yet
    predict(task, scored(label, 0.9))  # the same box: agreement
    assert stored(task) == (0.9, 0.0)
    save(tenant, task, [box(label, 30, 20, 50, 40)])  # moved away: disagreement
    assert stored(task)[1] == pytest.approx(1.0)
    save(tenant, task, [box(label)])  # saved again, back on the prediction
    assert stored(task)[1] == 0.0
    save(tenant, task, [])  # an empty draft is work not done yet: not ranked
    assert stored(task) == (0.9, None)
    save(tenant, task, [], submit=True)  # submitted empty, "no defect": the model saw one
    assert stored(task)[1] == pytest.approx(1.0)


def test_replacing_a_prediction_as_pre_annotation_does_follows_the_new_one(tenant: Tenant) -> None:
    task, label = tenant.tasks[0], tenant.label.pk
    save(tenant, task, [box(label)])
    rows = [PredictionRow(task.pk, task.organization_id, "m", "1", [scored(label, 0.3)], "v:1")]
    insert_predictions(rows)
    assert stored(task) == (0.3, 0.0)
    with transaction.atomic():  # inference.preannotation._store: the old row out, the new in
        Prediction.objects.filter(task=task, source="v:1").delete()
        moved = [scored(label, 0.8, 30, 20, 50, 40)]
        insert_predictions([PredictionRow(task.pk, task.organization_id, "m", "2", moved, "v:1")])
    assert stored(task)[0] == 0.8
    assert stored(task)[1] == pytest.approx(1.0)


def test_a_prediction_removed_leaves_the_values_of_the_one_before(tenant: Tenant) -> None:
    task, label = tenant.tasks[0], tenant.label.pk
    older = predict(task, scored(label, 0.5))
    newer = predict(task, scored(label, 0.9))
    newer.delete()
    queues.refresh([task.pk])
    assert stored(task) == (0.5, None)
    older.delete()
    queues.refresh([task.pk])
    assert stored(task) == (None, None)


def test_saving_a_task_without_a_prediction_asks_nothing_more(tenant: Tenant) -> None:
    task = Task.objects.get(pk=tenant.tasks[0].pk)
    assert not task.has_prediction
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert queues.on_saved(task, [box(tenant.label)]) == []
    assert len(captured) == 0


def test_stored_values_equal_a_recompute_after_random_sequences(tenant: Tenant) -> None:
    tasks = make_tasks(tenant.project, 6)
    labels = [tenant.label.pk, tenant.project.labels.get(name="dent").pk]
    chance = random.Random(14)

    def some_boxes(scores: bool) -> list[dict[str, Any]]:
        shapes = []
        for _ in range(chance.randint(0, 3)):
            x1, y1 = chance.randint(0, 40), chance.randint(0, 30)
            shape = scored(chance.choice(labels), round(chance.random(), 2) if scores else None,
                           x1, y1, x1 + chance.randint(3, 20), y1 + chance.randint(3, 15))  # fmt: skip
            shapes.append(shape)
        return shapes

    for _step in range(60):
        task = chance.choice(tasks)
        action = chance.random()
        if action < 0.4:
            predict(task, *some_boxes(scores=chance.random() < 0.8))
        elif action < 0.8:
            save(tenant, task, some_boxes(scores=False))
        else:
            with transaction.atomic():  # pre-annotation again: its source's row replaced
                source = f"v:{chance.randint(1, 2)}"
                Prediction.objects.filter(task=task, source=source).delete()
                row = PredictionRow(
                    task.pk, task.organization_id, "m", "1", some_boxes(True), source
                )
                insert_predictions([row])
    ids = [task.pk for task in tasks]
    expected = queues.compute(ids)
    for task_id in ids:
        top, spread = stored(Task(pk=task_id))
        want_top, want_spread = expected[task_id]
        assert top == want_top
        assert spread == pytest.approx(want_spread)


# ---------------------------------------------------------------------------- next, in order


def annotators_line(tenant: Tenant, user: User, count: int) -> list[int]:
    """The ids ``user`` gets from "next" ``count`` times, skipping each (so the line moves on)."""
    got = []
    for _ in range(count):
        task = workflow.next_task(tenant.project, user)
        if task is None:
            break
        got.append(task.pk)
        workflow.skip(task, user)
    return got


def test_uncertainty_hands_out_the_lowest_top_score_first_then_tasks_without_one(
    tenant: Tenant,
) -> None:
    more = make_tasks(tenant.project, 2)
    a, b, c, d, e = [*tenant.tasks, *more]
    label = tenant.label.pk
    predict(b, scored(label, 0.9))
    predict(d, scored(label, 0.3))
    predict(e, scored(label, 0.6))
    order(tenant.project, QueueOrder.UNCERTAINTY)
    user = tenant.user(Role.ANNOTATOR)
    # Each skip sends the task to the back: the first round is the queue's order, and the
    # second round hands out the skipped ones, longest skipped first.
    assert annotators_line(tenant, user, 7) == [d.pk, e.pk, b.pk, a.pk, c.pk, d.pk, e.pk]


def test_uncertainty_puts_clean_images_after_the_uncertain_ones_before_the_unpredicted(
    tenant: Tenant,
) -> None:
    # A factory: most images clean (pre-annotation stores an empty prediction for each), a few
    # with doubtful defects, some not predicted yet.
    more = make_tasks(tenant.project, 3)
    clean_one, unpredicted, doubtful, clean_two, sure, low = [*tenant.tasks, *more]
    label = tenant.label.pk
    for task in (clean_one, clean_two):
        predict(task)
    predict(doubtful, scored(label, 0.5))
    predict(sure, scored(label, 0.99))
    predict(low, scored(label, 0.2))
    order(tenant.project, QueueOrder.UNCERTAINTY)
    line = annotators_line(tenant, tenant.user(Role.ANNOTATOR), 6)
    assert line == [low.pk, doubtful.pk, sure.pk, clean_one.pk, clean_two.pk, unpredicted.pk]


def test_an_empty_draft_waits_with_new_work_in_disagreement_order(tenant: Tenant) -> None:
    more = make_tasks(tenant.project, 1)
    abandoned, new, drawn, also_new = [*tenant.tasks, *more]
    label = tenant.label.pk
    for task in (abandoned, new, drawn, also_new):
        predict(task, scored(label, 0.9))
    save(tenant, abandoned, [])  # opened, saved with nothing, left
    save(tenant, drawn, [box(label, 30, 20, 50, 40)])  # a draft away from the prediction
    assert [stored(task)[1] for task in (abandoned, new, drawn)] == [None, None, 1.0]
    order(tenant.project, QueueOrder.DISAGREEMENT)
    line = annotators_line(tenant, tenant.user(Role.ANNOTATOR), 4)
    assert line == [drawn.pk, abandoned.pk, new.pk, also_new.pk]


def test_a_prediction_arriving_moves_a_task_up_the_uncertainty_line(tenant: Tenant) -> None:
    _a, b, c = tenant.tasks
    order(tenant.project, QueueOrder.UNCERTAINTY)
    user = tenant.user(Role.ANNOTATOR)
    predict(c, scored(tenant.label.pk, 0.5))
    first = workflow.next_task(tenant.project, user)
    assert first is not None and first.pk == c.pk
    workflow.release(first, user)
    predict(b, scored(tenant.label.pk, 0.1))
    second = workflow.next_task(tenant.project, user)
    assert second is not None and second.pk == b.pk


def test_switching_the_order_midway_changes_what_comes_next(tenant: Tenant) -> None:
    a, b, c = tenant.tasks
    label = tenant.label.pk
    predict(c, scored(label, 0.2))
    user = tenant.user(Role.ANNOTATOR)
    first = workflow.next_task(tenant.project, user)
    assert first is not None and first.pk == a.pk  # age
    save(tenant, first, [box(label)], submit=True, user=user)
    order(tenant.project, QueueOrder.UNCERTAINTY)
    second = workflow.next_task(Project.objects.get(pk=tenant.project.pk), user)
    assert second is not None and second.pk == c.pk
    workflow.release(second, user)
    order(tenant.project, QueueOrder.AGE)
    third = workflow.next_task(Project.objects.get(pk=tenant.project.pk), user)
    assert third is not None and third.pk == b.pk


def test_a_held_task_stays_yours_whatever_the_order(tenant: Tenant) -> None:
    a, _b, c = tenant.tasks
    predict(c, scored(tenant.label.pk, 0.2))
    user = tenant.user(Role.ANNOTATOR)
    held = workflow.next_task(tenant.project, user)
    assert held is not None and held.pk == a.pk
    order(tenant.project, QueueOrder.UNCERTAINTY)
    again = workflow.next_task(Project.objects.get(pk=tenant.project.pk), user)
    assert again is not None and again.pk == a.pk


def test_two_reviewers_at_once_get_the_most_disagreeing_submissions_never_the_same(
    tenant: Tenant,
) -> None:
    more = make_tasks(tenant.project, 1)
    tasks = [*tenant.tasks, *more]
    label = tenant.label.pk
    annotator = tenant.user(Role.ANNOTATOR)
    same, away = scored(label, 0.9), scored(label, 0.9, 35, 5, 50, 20)
    proposals: list[list[dict[str, Any]] | None] = [[same], [away], [same, away], None]
    for task, shapes in zip(tasks, proposals, strict=True):
        if shapes is not None:
            predict(task, *shapes)
        save(tenant, task, [box(label)], submit=True, user=annotator)
    order(tenant.project, QueueOrder.DISAGREEMENT)
    spreads = [stored(task)[1] for task in tasks]
    assert spreads == [0.0, 1.0, pytest.approx(1 / 3), None]
    one, two = tenant.user(Role.REVIEWER), person(tenant, "second-reviewer", Role.REVIEWER)
    got_one = workflow.next_review(tenant.project, one)
    got_two = workflow.next_review(tenant.project, two)
    assert got_one is not None and got_two is not None
    # Nothing matching (most), then one of two proposals matching, then the same box, then none.
    assert [got_one.pk, got_two.pk] == [tasks[1].pk, tasks[2].pk]
    three = person(tenant, "third-reviewer", Role.REVIEWER)
    four = person(tenant, "fourth-reviewer", Role.REVIEWER)
    got = [workflow.next_review(tenant.project, who) for who in (three, four)]
    assert [task.pk for task in got if task] == [tasks[0].pk, tasks[3].pk]
    assert workflow.next_review(tenant.project, person(tenant, "fifth", Role.REVIEWER)) is None


def test_in_progress_and_new_share_one_line(tenant: Tenant) -> None:
    a, b, c = tenant.tasks
    label = tenant.label.pk
    predict(a, scored(label, 0.8))
    predict(b, scored(label, 0.6))
    predict(c, scored(label, 0.7))
    save(tenant, a, [])  # in progress, unassigned, unlocked
    assert Task.objects.get(pk=a.pk).status == TaskStatus.IN_PROGRESS
    order(tenant.project, QueueOrder.UNCERTAINTY)
    assert annotators_line(tenant, tenant.user(Role.ANNOTATOR), 3) == [b.pk, c.pk, a.pk]


# ---------------------------------------------------------------------------- the setting


def test_the_order_is_set_through_the_api_and_a_wrong_one_refused(tenant: Tenant) -> None:
    from defectlab.tenancy.audit import AuditAction
    from defectlab.tenancy.models import AuditEvent
    from tests.conftest import client_for

    manager = client_for(tenant.user(Role.MANAGER))
    url = f"/api/projects/{tenant.project.pk}/"
    assert manager.get(url).json()["queue_order"] == "age"
    answer = manager.patch(url, {"queue_order": "uncertainty"}, format="json")
    assert answer.status_code == 200, answer.content
    assert Project.objects.get(pk=tenant.project.pk).queue_order == QueueOrder.UNCERTAINTY
    assert AuditEvent.objects.filter(action=AuditAction.PROJECT_UPDATED).exists()
    refused = manager.patch(url, {"queue_order": "random"}, format="json")
    assert refused.status_code == 400
    assert Project.objects.get(pk=tenant.project.pk).queue_order == QueueOrder.UNCERTAINTY
    annotator = client_for(tenant.user(Role.ANNOTATOR))
    assert annotator.patch(url, {"queue_order": "age"}, format="json").status_code == 403


def test_the_settings_page_sets_the_order_in_both_languages(tenant: Tenant) -> None:
    from tests.conftest import signed_in

    for language, shown in (("en", "Model uncertainty"), ("zh-hans", "模型不确定度")):
        page = signed_in(tenant.user(Role.OWNER), language)
        url = f"/projects/{tenant.project.pk}/settings/"
        assert shown in page.get(url).content.decode()
        form = {"action": "settings", "name": tenant.project.name, "shape_types": ["box"],
                "queue_order": "disagreement"}  # fmt: skip
        assert page.post(url, form).status_code in (200, 302)
        assert Project.objects.get(pk=tenant.project.pk).queue_order == QueueOrder.DISAGREEMENT
        project_page = page.get(f"/projects/{tenant.project.pk}/").content.decode()
        assert 'id="queue-order"' in project_page
        form["queue_order"] = "sideways"
        page.post(url, form)
        assert Project.objects.get(pk=tenant.project.pk).queue_order == QueueOrder.DISAGREEMENT
        Project.objects.filter(pk=tenant.project.pk).update(queue_order=QueueOrder.AGE)


# ---------------------------------------------------------------------------- the backfill


def test_the_migration_fills_in_existing_tasks_in_rounds(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    from django.apps import apps
    from django.db import connection

    migration = importlib.import_module("defectlab.labeling.migrations.0016_queue_order_backfill")
    tasks = [*tenant.tasks, *make_tasks(tenant.project, 6)]
    label = tenant.label.pk
    for index, task in enumerate(tasks):
        if index % 2:
            save(tenant, task, [box(label)])
        if index != 3:
            shapes = [scored(label, index / 10, 5 + index * 5, 5, 20 + index * 5, 20)]
            predict(task, *(shapes if index != 4 else []))
    save(tenant, tasks[6], [])  # an empty draft
    save(tenant, tasks[8], [], submit=True)  # submitted empty
    expected = {task.pk: stored(task) for task in tasks}
    Task.objects.update(top_score=None, disagreement=None)  # as before the migration
    monkeypatch.setattr(migration, "BATCH", 2)
    migration.backfill(apps, SimpleNamespace(connection=connection))
    assert {task.pk: stored(task) for task in tasks} == expected
    assert expected[tasks[3].pk] == (None, None)
    assert expected[tasks[1].pk][1] is not None and expected[tasks[2].pk][1] is None
    assert expected[tasks[4].pk] == (1.0, None)  # an empty prediction: certain
    assert expected[tasks[6].pk][1] is None and expected[tasks[8].pk][1] == 1.0


def test_the_shortcut_for_an_empty_side_agrees_with_evaluation() -> None:
    from defectlab.evaluation import disagreement

    one = [scored(1, 0.5)]
    for truths, predictions in (([], []), (one, []), ([], one), ([], one + one)):
        want = disagreement(queues._boxes(truths, scored=False),
                            queues._boxes(predictions, scored=True), conf=0.0)  # fmt: skip
        assert queues.disagreement_of(truths, predictions) == want
    assert queues.disagreement_of([{"type": "points", "points": [[1, 2]], "label": 1}], one) == 1.0


# ---------------------------------------------------------------------------- other writers


def test_fitting_shapes_to_a_size_learned_late_updates_the_disagreement(tenant: Tenant) -> None:
    from defectlab.labeling import sizes

    task, label = tenant.tasks[0], tenant.label.pk
    Task.objects.filter(pk=task.pk).update(width=None, height=None)
    predict(task, scored(label, 0.9))
    save(tenant, task, [box(label), box(label, 500, 500, 600, 600)])  # one box off the image
    assert stored(task)[1] > 0  # the box off the image matches nothing
    sizes.note_size(Task.objects.get(pk=task.pk), (40, 30))  # the one outside is taken out
    assert len(Task.objects.get(pk=task.pk).annotation.shapes) == 1
    assert stored(task) == (0.9, 0.0)


@pytest.mark.parametrize(("with_prediction", "queries"), [(False, 16), (True, 17)])
def test_a_save_asks_one_query_more_on_a_task_with_a_prediction(
    tenant: Tenant, with_prediction: bool, queries: int
) -> None:
    """The canvas's save (PUT of the annotation through the API): the prediction's shapes are
    read once, in the save's transaction; the disagreement rides on the task's own UPDATE."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.conftest import client_for

    task, label = tenant.tasks[0], tenant.label.pk
    if with_prediction:
        predict(task, scored(label, 0.9))
    save(tenant, task, [box(label)])
    version = Task.objects.get(pk=task.pk).annotation.version
    client = client_for(tenant.user(Role.MANAGER))
    body = {"version": version, "shapes": [box(label, 6, 6)]}
    with CaptureQueriesContext(connection) as captured:
        answer = client.put(f"/api/tasks/{task.pk}/annotation/", body, format="json")
    assert answer.status_code == 200, answer.content
    assert len(captured) == queries, "\n".join(query["sql"][:120] for query in captured)
    assert stored(task)[1] == (0.0 if with_prediction else None)


@pytest.mark.parametrize(
    ("order_by", "index"),
    [
        (QueueOrder.UNCERTAINTY, "task_queue_top_score"),
        (QueueOrder.DISAGREEMENT, "task_queue_disagreement"),
    ],
)
def test_next_review_reads_the_partial_index_of_submitted_work(
    tenant: Tenant, order_by: str, index: str
) -> None:
    """The review indexes hold submitted work only: "next review"'s query must still match their
    condition (on SQLite only a literal status does; on PostgreSQL a few rows would be read by a
    scan, so scans are turned off: the index must be usable, bench/queues.py shows it chosen)."""
    from django.db import connection

    others = queues.in_review(Task.objects.filter(project_id=tenant.project.pk))
    first = queues.parts(others.exclude(submitted_by=tenant.user(Role.REVIEWER)), order_by)[0]
    sql, params = first.values_list("id", flat=True)[:10].query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off")
            cursor.execute("EXPLAIN " + sql, params)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        plan = " ".join(str(row[-1]) for row in cursor.fetchall())
    assert index in plan, plan
