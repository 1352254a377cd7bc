"""A project's statistics: tasks per status; images and shapes per class; images per tag; shape
sizes per class (log10 of the box's share of the image); shapes per image; labeling and review
throughput per person and day; review rejection rates per class and per annotator.

Every number is one SQL aggregate (GROUP BY in the database) over the stored counters that
labeling keeps (``labeling.counters``): the project's tally, in the slice that matches a filter
of statuses, a class and an assignee (in any mix, or none); otherwise the label index rows with
their shape and size counts, the tag rows and the tasks' shape counts of the matching tasks;
and the daily activity rows. The task parts are filtered like the task table
(``labeling.tasklist.TaskFilter``: status, assignee, class, annotated, predicted); the activity
parts by a range of UTC days, the class and the assignee (as the person credited). ``queries``
gives each part's SQL, which ``fetch`` runs as it is (and the bench runs raw beside it). The
caller has found the project through the organization's scoping (another organization's
project is a 404 before this runs).
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, F, QuerySet, Sum
from django.db.models.functions import Least
from django.utils import timezone
from django.utils.translation import gettext as _

from defectlab.api import spreadsheet_safe
from defectlab.errors import Invalid
from defectlab.labeling.counters import SHAPES_CAP, SIZE_EDGES, SIZE_FIELDS, tally_model
from defectlab.labeling.models import (
    Activity,
    Label,
    Project,
    Task,
    TaskLabel,
    TaskStatus,
    TaskTag,
)
from defectlab.labeling.tasklist import TaskFilter, task_filter_from
from defectlab.labeling.tasks import COUNTER
from defectlab.tenancy.models import User
from defectlab.tenancy.roles import Can, allows
from defectlab.tenancy.services import role_in

DEFAULT_DAYS = 30
MAX_DAYS = 366


@dataclass(frozen=True)
class StatisticsFilter:
    """The task table's filter, and the UTC days (both included) of the activity parts."""

    tasks: TaskFilter = field(default_factory=TaskFilter)
    start: date = field(default_factory=lambda: timezone.now().date() - timedelta(DEFAULT_DAYS - 1))
    end: date = field(default_factory=lambda: timezone.now().date())
    # Whose work the per-person parts show: everyone's (None), or one person's — what someone
    # who may not review sees (``own_work``): their own, not their colleagues' numbers.
    only: int | None = None


def _day(params: Mapping[str, str], name: str) -> date | None:
    value = params.get(name, "")
    if not value:
        return None
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise Invalid(
            _("%(name)s must be a date such as 2026-03-01.") % {"name": name},
            code="invalid_date",
            details={"field": name},
        ) from None


def own_work(project: Project, user: User) -> int | None:
    """Whose work ``user`` sees per person in ``project``'s statistics: None (everyone's) for
    reviewers and managers, who judge the work; their own for anyone else."""
    return None if allows(role_in(user, project.organization_id), Can.REVIEW) else user.pk


def statistics_filter_from(
    params: Mapping[str, str], user: User, project: Project
) -> StatisticsFilter:
    """The filter a query string asks for: the task list's (``status``, ``assignee``, ``label``,
    ``has_annotation``, ``has_prediction``) and ``start`` / ``end`` (ISO dates; the last 30 days
    by default); the per-person parts as ``user`` may see them (``own_work``)."""
    end = _day(params, "end") or timezone.now().date()
    start = _day(params, "start") or end - timedelta(DEFAULT_DAYS - 1)
    if start > end:
        raise Invalid(
            _("The range starts after it ends."), code="invalid_range", details={"field": "start"}
        )
    if (end - start).days + 1 > MAX_DAYS:
        raise Invalid(
            _("A range of at most %(top)s days, please.") % {"top": MAX_DAYS},
            code="invalid_range",
            details={"field": "start"},
        )
    return StatisticsFilter(task_filter_from(params, user), start, end, own_work(project, user))


# ---------------------------------------------------------------------------- answers


@dataclass(frozen=True)
class ClassRow:
    label: int
    name: str
    color: str
    images: int
    shapes: int
    sizes: list[int]  # per bin of SIZE_EDGES
    unknown_size: int  # shapes on images of unknown size


@dataclass(frozen=True)
class PersonDay:
    day: date
    person: int
    name: str
    submitted: int
    reviews: int
    approved: int
    rejected: int
    lead_time: float


@dataclass(frozen=True)
class Rejections:
    key: int
    name: str
    approved: int
    rejected: int

    @property
    def rate(self) -> float | None:
        """Rejected verdicts over all verdicts; None without any."""
        total = self.approved + self.rejected
        return self.rejected / total if total else None


@dataclass(frozen=True)
class Statistics:
    filter: StatisticsFilter
    statuses: dict[str, int]  # every status, in TaskStatus order
    classes: list[ClassRow]  # every class of the project, in its order
    tags: dict[str, int]  # every tag of the project, then any other tag found
    shapes_per_image: list[int]  # images with 0, 1, …, SHAPES_CAP or more shapes
    throughput: list[PersonDay]  # by day, then person
    rejections_by_class: list[Rejections]
    rejections_by_person: list[Rejections]
    size_edges: tuple[float, ...] = SIZE_EDGES

    @property
    def tasks(self) -> int:
        return sum(self.statuses.values())


# ---------------------------------------------------------------------------- queries

# A part's query: its SQL and parameters, run as it is (``fetch``) — the page's cost is the
# database's. Each part's rows have one shape, whichever counters answer it:
#   statuses (status, tasks); classes (label, images, shapes, *SIZE_FIELDS, size_unknown);
#   tags (name, images); shapes_per_image (bin, images); tally (part, key, count);
#   throughput (day, person, submitted, reviews, approved, rejected, lead_time);
#   rejections_by_class (label, approved, rejected); rejections_by_person (person, …).
Query = tuple[str, Sequence[Any]]


def fetch(query: Query) -> list[tuple[Any, ...]]:
    """A part's rows."""
    sql, params = query
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _compiled(queryset: QuerySet[Any]) -> Query:
    return queryset.query.sql_with_params()


def _tasks(project: Project, task_filter: TaskFilter) -> QuerySet[Task]:
    return task_filter.apply(Task.objects.filter(project_id=project.pk))


def _rows_of_tasks(queryset: QuerySet[Any], project: Project, task_filter: TaskFilter) -> Any:
    """Rows pointing at a task (label index, tags), kept to the filter's tasks."""
    conditions = task_filter.conditions("task__")
    if conditions:
        queryset = queryset.filter(conditions, task__project_id=project.pk)
    if task_filter.label is not None:
        queryset = queryset.filter(
            task_id__in=TaskLabel.objects.filter(label_id=task_filter.label).values("task_id")
        )
    return queryset


def _classes(project: Project, chosen: StatisticsFilter) -> Query:
    sums = {name: Sum(name) for name in ("shapes", *SIZE_FIELDS, "size_unknown")}
    # The project's label ids as a list, not a join to labels: the (label, task) index is
    # then walked for each, with no join to plan.
    ids = list(Label.objects.filter(project_id=project.pk).values_list("id", flat=True))
    labels = TaskLabel.objects.filter(label_id__in=ids)
    rows = _rows_of_tasks(labels, project, chosen.tasks).values_list("label_id")
    return _compiled(rows.annotate(images=Count("id"), **sums).order_by())


def _tags(project: Project, chosen: StatisticsFilter) -> Query:
    tags = TaskTag.objects.filter(project_id=project.pk)
    rows = _rows_of_tasks(tags, project, chosen.tasks).values_list("name")
    return _compiled(rows.annotate(images=Count("id")).order_by())


def _shapes_per_image(project: Project, chosen: StatisticsFilter) -> Query:
    rows = _tasks(project, chosen.tasks).annotate(bucket=Least(F("shape_count"), SHAPES_CAP))
    return _compiled(rows.values_list("bucket").annotate(images=Count("id")).order_by())


def _statuses(project: Project, chosen: StatisticsFilter) -> Query:
    rows = _tasks(project, chosen.tasks).values_list("status")
    return _compiled(rows.annotate(n=Count("id")).order_by())


def _activity(
    project: Project, chosen: StatisticsFilter, columns: str, group: str, *, people: bool
) -> Query:
    """``columns`` summed over the activity rows in the chosen days, grouped by ``group``: the
    rows of people (``people``: the tasks' rows, or the filter's class's), or of the classes
    (every class's rows, or the filter's class's, with or without a person). The assignee
    filter keeps the person's rows; ``chosen.only`` keeps one person's rows of people."""
    label, person = chosen.tasks.label, chosen.tasks.assignee
    where = ["project_id = %s", "day >= %s", "day <= %s"]
    days = (connection.ops.adapt_datefield_value(day) for day in (chosen.start, chosen.end))
    params: list[Any] = [project.pk, *days]
    if person is not None:
        where.append("person_id = %s")
        params.append(person)
    if people:
        where.append("person_id IS NOT NULL")
        if chosen.only is not None:
            where.append("person_id = %s")
            params.append(chosen.only)
    if label is not None:
        where.append("label_id = %s")
        params.append(label)
    else:
        where.append("label_id IS NULL" if people else "label_id IS NOT NULL")
    table = connection.ops.quote_name(Activity._meta.db_table)
    sql = f"SELECT {group}, {columns} FROM {table} WHERE {' AND '.join(where)} GROUP BY {group}"
    return sql, params


VERDICTS = "SUM(approved), SUM(rejected)"


def _throughput(project: Project, chosen: StatisticsFilter) -> Query:
    columns = f"SUM(submitted), SUM(reviews), {VERDICTS}, SUM(lead_time)"
    sql, params = _activity(project, chosen, columns, "day, person_id", people=True)
    return f"{sql} ORDER BY day, person_id", params


def _rejections_by_class(project: Project, chosen: StatisticsFilter) -> Query:
    return _activity(project, chosen, VERDICTS, "label_id", people=False)


def _rejections_by_person(project: Project, chosen: StatisticsFilter) -> Query:
    sql, params = _activity(project, chosen, VERDICTS, "person_id", people=True)
    return f"{sql} ORDER BY person_id", params


PARTS = {
    "statuses": _statuses,
    "classes": _classes,
    "tags": _tags,
    "shapes_per_image": _shapes_per_image,
    "throughput": _throughput,
    "rejections_by_class": _rejections_by_class,
    "rejections_by_person": _rejections_by_person,
}


def queries(
    project: Project, chosen: StatisticsFilter, parts: Sequence[str] = tuple(PARTS)
) -> dict[str, Query]:
    """Each part's aggregate query, by part name. Under a filter of statuses, a class and an
    assignee (in any mix, or none) the project's tally answers the task parts: the rows of the
    filter's slice (``TaskFilter.tally_slice``), summed over the statuses chosen (``TALLIED``,
    one query for them all); the statuses too, from the shapes-per-image rows (without a class
    or assignee: from the project's status counters). Other filters sum the per-task counters."""
    slice_ = chosen.tasks.tally_slice(project)
    if slice_ is None:
        return {part: PARTS[part](project, chosen) for part in parts}
    found = {part: PARTS[part](project, chosen) for part in parts if part in ACTIVITY_PARTS}
    where, params = "project_id = %s", [project.pk, *([slice_] if slice_ else [])]
    if slice_:
        where += " AND slice = %s"
    if chosen.tasks.statuses:
        where += f" AND status IN ({', '.join(['%s'] * len(chosen.tasks.statuses))})"
        params += chosen.tasks.statuses
    table = connection.ops.quote_name(tally_model(slice_)._meta.db_table)
    if any(part in (*TALLIED, "tally") for part in parts):
        found["tally"] = (
            f"SELECT part, key, SUM(count) FROM {table} WHERE {where} GROUP BY part, key",
            params,
        )
    if slice_ and "statuses" in parts:
        found["statuses"] = (
            f"SELECT status, SUM(count) FROM {table} WHERE {where} AND part = 'per_image' "
            "GROUP BY status",
            params,
        )
    return found


TALLIED = ("classes", "tags", "shapes_per_image")
ACTIVITY_PARTS = ("throughput", "rejections_by_class", "rejections_by_person")


def _from_tally(rows: Iterable[tuple[str, str, int]]) -> dict[str, list[tuple[Any, ...]]]:
    """The tally's rows as the task parts' rows."""
    classes: dict[int, list[int]] = {}  # label → images, shapes, *sizes, unknown
    tags, per_image = [], []
    for part, key, count in rows:
        if part in ("images", "shapes"):
            label, column = int(key), 0 if part == "images" else 1
        elif part == "size":
            found, _sep, where = key.partition(":")
            label = int(found)
            column = len(SIZE_FIELDS) + 2 if where == "u" else int(where) + 2
        else:
            if part == "tag" and count:
                tags.append((key, count))
            elif part == "per_image":
                per_image.append((int(key), count))
            continue
        classes.setdefault(label, [0] * (len(SIZE_FIELDS) + 3))[column] = count
    return {
        "classes": [(label, *counts) for label, counts in classes.items()],
        "tags": tags,
        "shapes_per_image": per_image,
    }


def statistics(project: Project, chosen: StatisticsFilter | None = None) -> Statistics:
    """The project's statistics under ``chosen`` (everything, the last 30 days, by default)."""
    chosen = chosen or StatisticsFilter()
    parts = {part: fetch(query) for part, query in queries(project, chosen).items()}
    if "tally" in parts:
        parts.update(_from_tally(parts.pop("tally")))
    if "statuses" in parts:
        found = {status: int(n) for status, n in parts["statuses"]}
    else:
        chosen_statuses = chosen.tasks.statuses or TaskStatus.values
        found = {
            status: getattr(project, COUNTER[TaskStatus(status)]) for status in chosen_statuses
        }
    statuses = {status: found.get(status, 0) for status in TaskStatus.values}
    labels = list(Label.objects.filter(project_id=project.pk).order_by("order", "id"))
    label_names = {label.pk: label.name for label in labels}
    counted = {row[0]: row[1:] for row in parts["classes"]}
    classes = [_class_row(label, counted.get(label.pk)) for label in labels]
    found_tags = {name: int(images) for name, images in parts["tags"]}
    tags = {tag["name"]: found_tags.pop(tag["name"], 0) for tag in project.tags}
    tags.update(sorted(found_tags.items()))
    shapes = [0] * (SHAPES_CAP + 1)
    for bucket, images in parts["shapes_per_image"]:
        shapes[bucket] = int(images)
    rows = parts["throughput"]
    by_person = parts["rejections_by_person"]  # in person order (the query's ORDER BY)
    names = _names({row[1] for row in rows} | {row[0] for row in by_person})
    return Statistics(
        filter=chosen,
        statuses=statuses,
        classes=classes,
        tags=tags,
        shapes_per_image=shapes,
        throughput=[
            PersonDay(
                day=_date(day),
                person=person,
                name=names.get(person, ""),
                submitted=int(submitted or 0),
                reviews=int(reviews or 0),
                approved=int(approved or 0),
                rejected=int(rejected or 0),
                lead_time=float(lead or 0.0),
            )
            for day, person, submitted, reviews, approved, rejected, lead in rows
        ],
        rejections_by_class=[
            Rejections(label, label_names[label], int(approved or 0), int(rejected or 0))
            for label, approved, rejected in parts["rejections_by_class"]
            if label in label_names
        ],
        rejections_by_person=[
            Rejections(person, names.get(person, ""), int(approved or 0), int(rejected or 0))
            for person, approved, rejected in by_person
        ],
    )


def _date(value: date | str) -> date:
    """A day as the cursor gives it (SQLite: ISO text)."""
    return value if isinstance(value, date) else date.fromisoformat(value)


def _class_row(label: Label, row: Sequence[Any] | None) -> ClassRow:
    images, shapes, *sizes, unknown = row or [0] * (len(SIZE_FIELDS) + 3)
    return ClassRow(
        label=label.pk,
        name=label.name,
        color=label.color,
        images=int(images or 0),
        shapes=int(shapes or 0),
        sizes=[int(n or 0) for n in sizes],
        unknown_size=int(unknown or 0),
    )


def _names(ids: set[int]) -> dict[int, str]:
    return {
        pk: name or email
        for pk, name, email in User.objects.filter(pk__in=ids).values_list("pk", "name", "email")
    }


# ---------------------------------------------------------------------------- forms out


def size_bin_names() -> list[str]:
    """Each size bin as the range of relative areas it holds, e.g. ``1e-06–3.2e-06``."""
    return [f"{10**low:.2g}–{10**high:.2g}" for low, high in itertools.pairwise(SIZE_EDGES)]


def shapes_bin_names() -> list[str]:
    return [str(count) for count in range(SHAPES_CAP)] + [f"{SHAPES_CAP}+"]


def as_json(found: Statistics) -> dict[str, Any]:
    """The statistics as JSON-safe data (the API's answer)."""
    chosen = found.filter
    return {
        "start": chosen.start.isoformat(),
        "end": chosen.end.isoformat(),
        "tasks": found.tasks,
        "statuses": found.statuses,
        "classes": [
            {
                "label": row.label,
                "name": row.name,
                "color": row.color,
                "images": row.images,
                "shapes": row.shapes,
                "sizes": row.sizes,
                "unknown_size": row.unknown_size,
            }
            for row in found.classes
        ],
        "size_edges": list(found.size_edges),
        "tags": found.tags,
        "shapes_per_image": found.shapes_per_image,
        "throughput": [
            {
                "day": row.day.isoformat(),
                "person": row.person,
                "name": row.name,
                "submitted": row.submitted,
                "reviews": row.reviews,
                "approved": row.approved,
                "rejected": row.rejected,
                "lead_time": _finite(row.lead_time),
            }
            for row in found.throughput
        ],
        "rejections_by_class": [_rejections(row, "label") for row in found.rejections_by_class],
        "rejections_by_person": [_rejections(row, "person") for row in found.rejections_by_person],
    }


def _finite(seconds: float) -> float | None:
    """Seconds rounded to the millisecond; None for a sum that is not a finite number (stored
    before saves were capped): JSON has no such number."""
    return round(seconds, 3) if math.isfinite(seconds) else None


def _rejections(row: Rejections, key: str) -> dict[str, Any]:
    rate = row.rate
    return {
        key: row.key,
        "name": row.name,
        "approved": row.approved,
        "rejected": row.rejected,
        "rate": None if rate is None else round(rate, 4),
    }


CSV_COLUMNS = ("section", "key", "detail", "value")


def csv_rows(found: Statistics) -> list[tuple[str, str, str, Any]]:
    """The statistics as one tidy table: (section, key, detail, value) rows."""
    rows: list[tuple[str, str, str, Any]] = [
        ("statuses", status, "", count) for status, count in found.statuses.items()
    ]
    for row in found.classes:
        rows += [
            ("class_images", row.name, "", row.images),
            ("class_shapes", row.name, "", row.shapes),
        ]
    rows += [("tags", name, "", count) for name, count in found.tags.items()]
    bins = size_bin_names()
    for row in found.classes:
        rows += [("sizes", row.name, bins[index], count) for index, count in enumerate(row.sizes)]
        rows.append(("sizes", row.name, "unknown", row.unknown_size))
    rows += [
        ("shapes_per_image", name, "", count)
        for name, count in zip(shapes_bin_names(), found.shapes_per_image, strict=True)
    ]
    for day in found.throughput:
        when = day.day.isoformat()
        rows += [
            (f"throughput_{name}", when, day.name, getattr(day, name))
            for name in ("submitted", "reviews", "approved", "rejected")
        ]
        lead_time = _finite(day.lead_time)
        rows.append(
            ("throughput_lead_time", when, day.name, "" if lead_time is None else lead_time)
        )
    for section, values in (
        ("rejections_by_class", found.rejections_by_class),
        ("rejections_by_person", found.rejections_by_person),
    ):
        for item in values:
            rate = item.rate
            rows += [
                (section, item.name, "approved", item.approved),
                (section, item.name, "rejected", item.rejected),
                (section, item.name, "rate", "" if rate is None else round(rate, 4)),
            ]
    return rows


def as_csv(found: Statistics) -> str:
    """`csv_rows` as CSV text with a header line; a text cell a spreadsheet would run as a
    formula (=, +, -, @ first) is quoted by a '."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in csv_rows(found):
        writer.writerow([spreadsheet_safe(value) for value in row])
    return out.getvalue()


def csv_file_name(project: Project, chosen: StatisticsFilter) -> str:
    return f"statistics-{project.pk}-{chosen.start.isoformat()}-{chosen.end.isoformat()}.csv"
