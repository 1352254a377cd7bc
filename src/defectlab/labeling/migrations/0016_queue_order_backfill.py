"""The queue fields of the tasks that had predictions before 0014, filled in while the app runs:
not atomic, each batch of `BATCH` tasks in its own transaction (its task rows locked, as
labeling.queues.refresh does, so a save landing meanwhile is not overwritten with an older
value). Tasks not reached yet have no values and sort last in their queue.

The computation is a copy of labeling.queues as of this migration (historical models, no import
of the live code, which may change): the newest prediction's top score (a shape without a score
counts as 1.0, a prediction without shapes as 1.0: certain), and its disagreement with the
annotation (none for an empty draft: an annotation without shapes on a new or in-progress task)."""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db import migrations, transaction

from defectlab.evaluation import Box, disagreement

BATCH = 1000
OPEN_WORK = ("new", "in_progress")
EMPTY_TOP_SCORE = 1.0


def _boxes(shapes: Iterable[Mapping[str, Any]], *, scored: bool) -> list[Box]:
    boxes = []
    for data in shapes:
        try:
            if data.get("type") == "points":
                continue
            xs = [float(point[0]) for point in data["points"]]
            ys = [float(point[1]) for point in data["points"]]
            score = data.get("score") if scored else None
            box = Box(min(xs), min(ys), max(xs), max(ys), int(data["label"]),
                      1.0 if score is None else float(score))  # fmt: skip
        except (AttributeError, IndexError, KeyError, TypeError, ValueError):
            continue
        if box.x2 > box.x1 and box.y2 > box.y1:
            boxes.append(box)
    return boxes


def _top_score(prediction: Sequence[Mapping[str, Any]] | None) -> float | None:
    if prediction is None:
        return None
    scores = [
        1.0 if shape.get("score") is None else float(shape["score"])
        for shape in prediction
        if isinstance(shape, Mapping)
    ]
    return max(scores, default=EMPTY_TOP_SCORE)


def _disagreement(annotation: Any, prediction: Any, status: str | None) -> float | None:
    if annotation is None or prediction is None:
        return None
    if not annotation and status in OPEN_WORK:
        return None
    truths = _boxes(annotation, scored=False)
    predicted = _boxes(prediction, scored=True)
    if not truths or not predicted:
        return 1.0 if truths or predicted else 0.0
    return float(disagreement(truths, predicted, conf=0.0))


def _write(connection: Any, table: str, rows: list[tuple[float | None, float | None, int]]) -> None:
    table = connection.ops.quote_name(table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            ids, tops, spreads = ([row[i] for row in rows] for i in (2, 0, 1))
            cursor.execute(
                f"UPDATE {table} AS t SET top_score = v.top, disagreement = v.spread "
                "FROM unnest(%s::bigint[], %s::float8[], %s::float8[]) AS v(id, top, spread) "
                "WHERE t.id = v.id",
                [ids, tops, spreads],
            )
        else:
            cursor.executemany(
                f"UPDATE {table} SET top_score = %s, disagreement = %s WHERE id = %s", rows
            )


def _batch(apps: Any, connection: Any, ids: list[int]) -> None:
    task_model = apps.get_model("labeling", "Task")
    prediction_model = apps.get_model("labeling", "Prediction")
    annotation_model = apps.get_model("labeling", "Annotation")
    alias = connection.alias
    list(task_model.objects.using(alias).select_for_update().filter(pk__in=ids).values_list("pk"))
    newest: dict[int, Any] = {}
    rows = prediction_model.objects.using(alias).filter(task_id__in=ids).order_by("task_id", "-id")
    for task_id, shapes in rows.values_list("task_id", "shapes"):
        newest.setdefault(task_id, shapes)
    annotations = {
        task_id: (shapes, status)
        for task_id, shapes, status in annotation_model.objects.using(alias)
        .filter(task_id__in=ids)
        .values_list("task_id", "shapes", "task__status")
    }
    values = []
    for task_id in ids:
        shapes, status = annotations.get(task_id, (None, None))
        prediction = newest.get(task_id)
        values.append((_top_score(prediction), _disagreement(shapes, prediction, status), task_id))
    _write(connection, task_model._meta.db_table, values)


def backfill(apps: Any, schema_editor: Any) -> None:
    """The queue fields of every task with a prediction, a batch of `BATCH` tasks at a time."""
    connection = schema_editor.connection
    task_model = apps.get_model("labeling", "Task")
    after = 0
    while True:
        ids = list(
            task_model.objects.using(connection.alias)
            .filter(has_prediction=True, id__gt=after)
            .order_by("id")
            .values_list("id", flat=True)[:BATCH]
        )
        if not ids:
            return
        with transaction.atomic(using=connection.alias):
            _batch(apps, connection, ids)
        after = ids[-1]


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("labeling", "0015_queue_order_indexes"),
    ]

    operations = [
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
    ]
