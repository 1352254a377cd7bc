"""The task list: which tasks a query string asks for (``TaskFilter``), in which order, one
keyset page at a time (``task_page``) — for the API, the project page and scripts alike. Every
sort has a (project, field, id) index, so page 10,000 costs what page 1 does."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils.translation import gettext as _

from defectlab.errors import Invalid
from defectlab.labeling.counters import slice_key, tally_tasks
from defectlab.labeling.models import Project, Task, TaskLabel, TaskStatus
from defectlab.labeling.tasks import COUNTER
from defectlab.params import (
    decode_cursor,
    decode_key_cursor,
    encode_cursor,
    encode_key_cursor,
    query_bool,
    query_int,
)
from defectlab.tenancy.models import User
from defectlab.tenancy.roles import Can, allows
from defectlab.tenancy.services import role_in


@dataclass(frozen=True)
class TaskFilter:
    statuses: list[str] = field(default_factory=list)
    assignee: int | None = None
    unassigned: bool = False
    has_annotation: bool | None = None
    has_prediction: bool | None = None
    label: int | None = None

    def conditions(self, prefix: str = "") -> Q:
        """Every condition but the label, on a task (``prefix=""``) or on a row pointing at one
        (``prefix="task__"``)."""
        fields: dict[str, Any] = {}
        if self.statuses:
            fields["status__in"] = self.statuses
        if self.unassigned:
            fields["assignee__isnull"] = True
        elif self.assignee is not None:
            fields["assignee_id"] = self.assignee
        if self.has_annotation is not None:
            fields["has_annotation"] = self.has_annotation
        if self.has_prediction is not None:
            fields["has_prediction"] = self.has_prediction
        return Q(**{prefix + name: value for name, value in fields.items()})

    def tally_slice(self, project: Project) -> str | None:
        """The slice of the project's statistics tally that counts exactly the tasks this filter
        matches, per status (``labeling.counters``): any mix of statuses, a class and an
        assignee (or nobody). None for the annotated and predicted filters, and for a class or
        an assignee while the project's slices are not counted (``Project.tally_sliced``)."""
        if self.has_annotation is not None or self.has_prediction is not None:
            return None
        if self.unassigned:
            key = slice_key(self.label, nobody=True)
        else:
            key = slice_key(self.label, self.assignee)
        return key if not key or project.tally_sliced else None

    def apply(self, queryset: QuerySet[Task]) -> QuerySet[Task]:
        queryset = queryset.filter(self.conditions())
        if self.label is not None:
            queryset = queryset.filter(
                id__in=TaskLabel.objects.filter(label_id=self.label).values("task_id")
            )
        return queryset


def in_project(project_id: int) -> Q:
    """The tasks of one project, written so that only a (project, …) index can list them in
    order, whatever the statistics say. Every task query here orders by ``project_id`` first.

    On PostgreSQL, ``project_id = X`` makes the planner treat ``project_id`` as a constant and drop
    it from ``ORDER BY project_id, id``: the primary key then gives the same order, and with
    statistics saying a project holds most rows (or none, on a fresh database) the planner may
    walk the primary key and skip every other project's tasks on the way — 150 ms for a first
    page behind 200k rows. ``project_id BETWEEN X AND X`` selects the same rows but keeps
    ``project_id`` in the order, which only the (project, …) indexes give.

    The price: after a range on an index's first column, an equality on its second (status,
    assignee) no longer ends the scan, so a page past a filter's last task reads the rest of the
    project's entries in that index (index only, no table rows); pages of one status avoid it
    (``_project_array``). SQLite's planner never walks the primary key here, so it keeps
    ``project_id = X``."""
    return only("project_id", project_id)


# What a keyset page must be on PostgreSQL: one index walked in order, joined row by row. These
# planner switches make everything else a last resort while a task-list query is planned.
INDEX_WALK_ONLY = (
    "enable_sort",
    "enable_incremental_sort",
    "enable_bitmapscan",
    "enable_seqscan",
    "enable_hashjoin",
    "enable_mergejoin",
    "enable_material",
)


@contextmanager
def index_order() -> Iterator[None]:
    """Around a task-list query on PostgreSQL: plan it as index walks only (``INDEX_WALK_ONLY``
    off), so the (project, …) index that gives the order is always the one taken.

    Without statistics (a fresh database, or statistics taken before a big import) PostgreSQL
    guesses a project holds a few dozen tasks, and for a few dozen rows "bitmap scan, then sort"
    or "hash the project's tasks, join the label's" look cheaper than an index walk — for 100k
    real rows they read them all, on every page. Switched off, such plans remain a last resort:
    a filter no index orders (say "unassigned" with a status) still sorts. The switches are
    ``SET LOCAL`` (the transaction's) and reset as soon as the query is done."""
    if connection.vendor != "postgresql":
        yield
        return
    with (
        nullcontext() if connection.in_atomic_block else transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("; ".join(f"SET LOCAL {name} = off" for name in INDEX_WALK_ONLY))
        try:
            yield
        finally:
            cursor.execute("; ".join(f"RESET {name}" for name in INDEX_WALK_ONLY))


def only(field_name: str, value: int) -> Q:
    """``field = value``, written as ``field BETWEEN value AND value`` on PostgreSQL so that the
    field stays in ``ORDER BY`` (see ``in_project``)."""
    if connection.vendor == "postgresql":
        return Q(**{f"{field_name}__gte": value, f"{field_name}__lte": value})
    return Q(**{field_name: value})


def task_filter_from(params: Mapping[str, str], user: User) -> TaskFilter:
    """The filter a query string asks for (`status=new,rejected&assignee=me&label=3`)."""
    statuses = [value for value in params.get("status", "").split(",") if value]
    unknown = [value for value in statuses if value not in TaskStatus.values]
    if unknown:
        raise Invalid(_("Unknown status %(status)s.") % {"status": unknown[0]})
    assignee_raw = params.get("assignee", "")
    assignee: int | None = None
    if assignee_raw == "me":
        assignee = user.pk
    elif assignee_raw not in ("", "none"):
        assignee = query_int(params, "assignee")
    return TaskFilter(
        statuses=statuses,
        assignee=assignee,
        unassigned=assignee_raw == "none",
        has_annotation=query_bool(params, "has_annotation"),
        has_prediction=query_bool(params, "has_prediction"),
        label=query_int(params, "label"),
    )


# Sort keys a task list accepts: the query value and the task field behind it. A leading "-"
# reverses. Each has a (project, field, id) index, so a page is found by keyset at any depth.
SORT_FIELDS = {"id": "id", "file_name": "file_name", "updated": "updated_at", "status": "status"}


def task_sort_from(params: Mapping[str, str]) -> tuple[str, bool]:
    """(field, descending) from `sort=file_name` / `sort=-updated` (or the older `order=desc`)."""
    raw = params.get("sort") or ("-id" if params.get("order") == "desc" else "id")
    descending = raw.startswith("-")
    key = raw.removeprefix("-")
    if key not in SORT_FIELDS:
        raise Invalid(_("Tasks can be sorted by %(keys)s.") % {"keys": ", ".join(SORT_FIELDS)})
    return SORT_FIELDS[key], descending


def task_page(
    project: Project, params: Mapping[str, str], user: User
) -> tuple[list[Task], str | None]:
    """One page of the project's tasks as a query string asks for it, and the next page's cursor."""
    page_size = min(max(query_int(params, "page_size", 50) or 0, 1), 200)
    field_name, descending = task_sort_from(params)
    task_filter = task_filter_from(params, user)
    if field_name == "id":
        page, last = list_tasks(
            project,
            task_filter,
            after=decode_cursor(params.get("cursor")),
            limit=page_size,
            descending=descending,
        )
        return page, encode_cursor(last) if last is not None else None
    after = decode_key_cursor(params.get("cursor"))
    page = _tasks_sorted(project, task_filter, field_name, descending, after, page_size + 1)
    if len(page) <= page_size:
        return page, None
    last_task = page[page_size - 1]
    value = getattr(last_task, field_name)
    return page[:page_size], encode_key_cursor(
        value.isoformat() if field_name == "updated_at" else value, last_task.pk
    )


def _tasks_sorted(
    project: Project,
    task_filter: TaskFilter,
    field_name: str,
    descending: bool,
    after: tuple[Any, int] | None,
    count: int,
) -> list[Task]:
    """Tasks in (field, id) order after the keyset ``after``; the (project, field, id) index
    gives the order, filters are checked along the way."""
    # The ORDER BY names the sorted field, which the primary key cannot give: a plain equality.
    queryset = task_filter.apply(Task.objects.filter(project_id=project.pk))
    if after is not None:
        value, last_id = after
        if field_name == "updated_at":
            try:
                value = datetime.fromisoformat(str(value))
            except ValueError:
                raise Invalid(_("The cursor is not valid; start from the first page.")) from None
        beyond = "lt" if descending else "gt"
        # The leading "field >= value" (or <=) lets the index scan start at the cursor; the OR
        # alone would be a filter checked from the project's first task on.
        queryset = queryset.filter(
            Q(**{f"{field_name}__{beyond}e": value}),
            Q(**{f"{field_name}__{beyond}": value})
            | Q(**{field_name: value, f"id__{beyond}": last_id}),
        )
    order = ["project_id", field_name, "id"]
    with index_order():
        return list(
            queryset.order_by(*(f"-{name}" if descending else name for name in order))[:count]
        )


def list_tasks(
    project: Project,
    task_filter: TaskFilter,
    *,
    after: int | None,
    limit: int,
    descending: bool = False,
) -> tuple[list[Task], int | None]:
    """One page of tasks in id order, found by keyset (``id > after``): as fast deep as shallow."""
    with index_order():
        page = _tasks_in_order(project, task_filter, after, limit + 1, descending)
    if len(page) > limit:
        return page[:limit], page[limit - 1].pk
    return page, None


def _tasks_in_order(
    project: Project, task_filter: TaskFilter, after: int | None, count: int, descending: bool
) -> list[Task]:
    """Up to ``count`` tasks after ``after``, each query walking one index in id order."""
    if len(set(task_filter.statuses)) > 1:
        # No index gives "status IN (a, b)" in id order: the database would walk the project in
        # id order testing each task, to its end on the last page. One (project, status, id)
        # range per status instead, merged.
        parts = [
            _tasks_in_order(
                project, replace(task_filter, statuses=[status]), after, count, descending
            )
            for status in dict.fromkeys(task_filter.statuses)
        ]
        merged = heapq.merge(*parts, key=lambda task: task.pk, reverse=descending)
        return list(itertools.islice(merged, count))
    if task_filter.label is not None:
        # Walk the label's (label, task) index in task order and join each task. "id IN (tasks
        # with the label)" made SQLite collect all the label's tasks for every page and
        # PostgreSQL read them from the first up to the cursor.
        links = _label_links(project, task_filter)
        if after is not None:
            links = (
                links.filter(task_id__lt=after) if descending else links.filter(task_id__gt=after)
            )
        ordered = links.select_related("task").order_by(
            *(("-label_id", "-task_id") if descending else ("label_id", "task_id"))
        )
        return [link.task for link in ordered[:count]]
    order = _id_order(task_filter)
    project_condition = _project_array(project.pk) if _walks_one_status(task_filter) else None
    queryset = Task.objects.filter(
        task_filter.conditions(), project_condition or in_project(project.pk)
    )
    if after is not None:
        queryset = queryset.filter(id__lt=after) if descending else queryset.filter(id__gt=after)
    return list(queryset.order_by(*(f"-{name}" if descending else name for name in order))[:count])


def _walks_one_status(task_filter: TaskFilter) -> bool:
    """On PostgreSQL, a page of one status (and no assignee, whose index walks instead) names its
    project by ``_project_array``, so that the status's end in the (project, status, id) index
    ends the walk. Several statuses are one such walk each, merged."""
    return (
        connection.vendor == "postgresql"
        and len(task_filter.statuses) == 1
        and not task_filter.unassigned
        and task_filter.assignee is None
    )


def _project_array(project_id: int) -> RawSQL:
    """``project_id = ANY('{X}')``: to the btree an equality, so an equality on status after it
    ends the scan at the status's last task; to the planner no constant, so ``project_id`` stays
    in ``ORDER BY project_id, id`` and the primary key cannot give that order (see
    ``in_project``, whose range lets a page past a status's last task read the rest of the
    project's entries: 35 ms at 1M tasks)."""
    return RawSQL(
        f"{Task._meta.db_table}.project_id = ANY(%s)", [[project_id]], output_field=BooleanField()
    )


def _id_order(task_filter: TaskFilter) -> list[str]:
    """The ORDER BY of a list in id order: "project_id, id", the order of every (project, …, id)
    index once its middle columns are fixed by the filter. "Unassigned" is assignee IS NULL,
    which a planner does not take as fixing the column: ordering by the (project, assignee, id)
    index's own columns lets it walk that index in order."""
    return ["project_id", "assignee_id", "id"] if task_filter.unassigned else ["project_id", "id"]


def _label_links(project: Project, task_filter: TaskFilter) -> QuerySet[TaskLabel]:
    """The (label, task) rows of the filter's label whose task passes the other conditions.

    A label belongs to one project; the project condition is a safeguard. The label is a range
    like the project (see ``in_project``): only the (label, task) index gives "label_id, task_id"
    order, so no plan joins all the project's tasks and sorts them."""
    assert task_filter.label is not None
    links = TaskLabel.objects.filter(only("label_id", task_filter.label))
    conditions = task_filter.conditions("task__")
    if not conditions:
        # The label's rows alone (an index-only walk; counting 10,000 of them joined to their
        # tasks took 170 ms), once the label is known to be the project's.
        return links.filter(label__project_id=project.pk)
    return links.filter(conditions, task__project_id=project.pk)


def neighbours(task: Task, user: User) -> tuple[int | None, int | None]:
    """The ids of the tasks just before and after ``task`` in its project's list (id order, as
    the project page lists them), for stepping from image to image; (None, None) for someone
    whose role may not see the project's tasks. Each is one step along the (project, id) index."""
    if not allows(role_in(user, task.organization_id), Can.VIEW):
        return None, None
    siblings = Task.objects.filter(in_project(task.project_id)).values_list("id", flat=True)
    with index_order():
        previous = siblings.filter(id__lt=task.pk).order_by("-project_id", "-id").first()
        following = siblings.filter(id__gt=task.pk).order_by("project_id", "id").first()
    return previous, following


COUNT_CAP = 10_000  # beyond this a count would scan too much to answer at once: "10,000+"


def task_count(project: Project, params: Mapping[str, str], user: User) -> tuple[int, bool]:
    """How many of the project's tasks the query string's filters match, and whether there are
    more than that (past ``COUNT_CAP``). Without filters, by status, class and assignee, the
    stored counters answer exactly and at once (the annotated and predicted filters count)."""
    task_filter = task_filter_from(params, user)
    if task_filter == TaskFilter(statuses=task_filter.statuses):
        statuses = set(task_filter.statuses) or set(TaskStatus.values)
        return sum(getattr(project, COUNTER[TaskStatus(status)]) for status in statuses), False
    slice_ = task_filter.tally_slice(project)
    if slice_ is not None:  # a class and / or an assignee: the tally's slice counts them
        return tally_tasks(project.pk, slice_, task_filter.statuses), False
    # In a list's index order, so the count walks the filter's index to the cap rather than a
    # plan made for "all of the project" (a sequential scan of every project's tasks).
    matching: QuerySet[Any]
    if task_filter.label is not None:
        matching = _label_links(project, task_filter).order_by("label_id", "task_id")
    else:
        matching = Task.objects.filter(task_filter.conditions(), in_project(project.pk))
        matching = matching.order_by(*_id_order(task_filter))
    with index_order():
        found = matching[: COUNT_CAP + 1].count()
    return min(found, COUNT_CAP), found > COUNT_CAP
