"""The task list's query plans on PostgreSQL: every page walks a (project, …) index in order —
no Sort node, no sequential scan, no primary-key walk through other projects' tasks — whether the
table has statistics or not, and whatever project sizes they show (issue 10).

Plans, not timings: EXPLAIN (FORMAT JSON) of the SQL the product runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from defectlab.labeling import services, tasklist
from defectlab.labeling.models import Project
from defectlab.params import encode_cursor, encode_key_cursor
from tests.conftest import Tenant

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="query plans are checked on PostgreSQL; SQLite has no statistics-driven choice here "
    "(bench/tasks.py --projects prints its EXPLAIN QUERY PLAN)",
)

BIG = 20_000  # the older project: most of the table, ahead of the newer one in id order
SMALL = 300

QUERIES: list[dict[str, str]] = [
    {},
    {"sort": "-id"},
    {"status": "submitted"},
    {"status": "approved,rejected"},
    {"status": "submitted", "has_annotation": "true"},
    {"has_annotation": "true"},
    {"has_annotation": "false"},
    {"has_prediction": "true"},
    {"has_prediction": "false"},
    {"assignee": "me"},
    {"assignee": "none"},
    {"sort": "file_name"},
    {"sort": "-updated"},
    {"sort": "status"},
]


def fill(project: Project, size: int, assignee: int) -> None:
    """``size`` tasks in one statement, varied like bench/tasks.py's: predictions and reviews in
    the first fifth, 30 % annotated, 10 % in progress and assigned."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO labeling_task (organization_id, project_id, image, file_name, width, "
            "height, status, assignee_id, has_annotation, has_prediction, created_at, "
            "updated_at) SELECT %s, %s, 'https://cdn.test/' || i || '.jpg', "
            "lpad(CAST(i * 7919 %% %s AS text), 7, '0') || '.jpg', 64, 48, "
            "CASE WHEN i %% 10 = 3 THEN 'submitted' WHEN i <= %s AND i %% 20 = 5 THEN 'approved' "
            "WHEN i <= %s AND i %% 20 = 15 THEN 'rejected' WHEN i %% 10 = 7 THEN 'in_progress' "
            "ELSE 'new' END, CASE WHEN i %% 10 = 7 THEN %s END, i %% 10 IN (3, 5, 8), i <= %s, "
            "now(), now() - (i * 7919 %% %s) * interval '1 second' "
            "FROM generate_series(1, %s) AS s(i)",
            [
                project.organization_id,
                project.pk,
                size,
                size // 5,
                size // 5,
                assignee,
                size // 5,
                size,
                size,
            ],
        )
        for label in project.labels.all():
            cursor.execute(
                "INSERT INTO labeling_tasklabel (task_id, label_id) SELECT id, %s "
                "FROM labeling_task WHERE project_id = %s AND id %% 20 = 5",
                [label.pk, project.pk],
            )
    services.recount(project)


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def plans_of(project: Project, params: dict[str, str], tenant: Tenant) -> list[dict[str, Any]]:
    """The plan of every SELECT the page and its count run."""
    owner = tenant.user("owner")
    with CaptureQueriesContext(connection) as captured:
        tasklist.task_page(project, params, owner)
        tasklist.task_count(project, params, owner)
    plans = []
    sorting = "on"
    for query in captured.captured_queries:
        sql = query["sql"]
        if sql == "; ".join(f"SET LOCAL {name} = off" for name in tasklist.INDEX_WALK_ONLY):
            sorting = "off"
        elif sql == "; ".join(f"RESET {name}" for name in tasklist.INDEX_WALK_ONLY):
            sorting = "on"
        elif "labeling_task" in sql and sql.startswith("SELECT"):
            # Planned the way the product plans it (tasklist.index_order)...
            assert sorting == "off", f"{sql} ran with sorting on"
            with tasklist.index_order(), connection.cursor() as cursor:
                cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
                raw = cursor.fetchone()[0]
            plans.append((raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"])
    # ...and every switch is back on afterwards.
    with connection.cursor() as cursor:
        for name in tasklist.INDEX_WALK_ONLY:
            cursor.execute(f"SHOW {name}")
            assert cursor.fetchone()[0] == "on", name
    assert plans, params
    return plans


def faults(plan: dict[str, Any]) -> list[str]:
    """What in a plan could cost more than the page: a sort, a sequential or bitmap scan, a
    primary-key walk that is not a lookup of one id."""
    found = []
    for node in nodes(plan):
        kind = node["Node Type"]
        if "Sort" in kind or kind in ("Seq Scan", "Bitmap Heap Scan", "Hash Join"):
            found.append(kind)
        index = node.get("Index Name", "")
        if index == "labeling_task_pkey" and "= " not in node.get("Index Cond", ""):
            found.append(f"{kind} on {index} ({node.get('Index Cond', 'whole index')})")
        # Any other index of the task table (a single-column one, say) gives no page order.
        foreign = index not in ("", "labeling_task_pkey") and not index.startswith("task_project")
        if node.get("Relation Name") == "labeling_task" and foreign:
            found.append(f"{kind} on {index}")
    return found


def every_page(big: Project, small: Project, tenant: Tenant) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    for project in (big, small):
        label = project.labels.order_by("order").first()
        assert label is not None
        queries = [*QUERIES, {"label": str(label.pk)}]
        last_id = project.tasks.order_by("-id").values_list("id", flat=True)[SMALL // 10]
        for params in queries:
            variants = [params]
            sort = params.get("sort", "id")
            if sort.lstrip("-") == "id":
                variants.append(params | {"cursor": encode_cursor(last_id)})
            elif sort == "file_name":
                variants.append(params | {"cursor": encode_key_cursor("0000500.jpg", last_id)})
            elif sort == "status":
                variants.append(params | {"cursor": encode_key_cursor("new", last_id)})
            for variant in variants:
                for plan in plans_of(project, variant, tenant):
                    found = faults(plan)
                    if found:
                        problems[f"{project.name} {variant}"] = found
    return problems


@pytest.mark.django_db
def test_every_task_list_page_walks_a_project_index_in_order_with_or_without_statistics(
    tenant: Tenant,
) -> None:
    owner = tenant.user("owner")
    labels = [{"name": "scratch"}, {"name": "dent"}]
    big = services.create_project(tenant.organization, owner, name="big", labels=labels)
    fill(big, BIG, owner.pk)
    small = services.create_project(tenant.organization, owner, name="small", labels=labels)
    fill(small, SMALL, owner.pk)

    # As loaded: whatever statistics the test database had before these rows (none of them).
    assert every_page(big, small, tenant) == {}

    # With statistics that say the older project is nearly the whole table (rolled back with
    # the test's transaction).
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE labeling_task")
        cursor.execute("ANALYZE labeling_tasklabel")
    assert every_page(big, small, tenant) == {}


def blocks_read(project: Project, params: dict[str, str], tenant: Tenant) -> int:
    """Buffers (hit or read) the task page's SELECT touches, by EXPLAIN (ANALYZE, BUFFERS)."""
    with CaptureQueriesContext(connection) as captured:
        tasklist.task_page(project, params, tenant.user("owner"))
    selects = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("SELECT")]
    total = 0
    for sql in selects:
        with tasklist.index_order(), connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql)
            raw = cursor.fetchone()[0]
        plan = (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]
        total += plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)
    return total


@pytest.mark.django_db
def test_a_status_page_past_its_last_task_reads_a_few_blocks_not_the_rest_of_the_project(
    tenant: Tenant,
) -> None:
    # Approved and rejected tasks are all in the first fifth of the project; a page after 90 %
    # has none. The (project, status, id) walk must end at once, not read the project's later
    # entries of every other status (it did with only "project BETWEEN X AND X AND status = s").
    owner = tenant.user("owner")
    big = services.create_project(tenant.organization, owner, name="big", labels=[])
    fill(big, BIG, owner.pk)
    after = big.tasks.order_by("id").values_list("id", flat=True)[BIG * 9 // 10]
    page = {"status": "approved,rejected", "cursor": encode_cursor(after)}
    assert tasklist.task_page(big, page, owner) == ([], None)
    first = tasklist.task_page(big, {"status": "approved,rejected"}, owner)[0]
    assert [task.status for task in first] == ["approved", "rejected"] * 25

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE labeling_task")
    # Two statuses, each a descent of the index to its first leaf and nothing after it; the
    # rest of the project's entries in that index are over 50 leaf pages.
    assert blocks_read(big, page, tenant) <= 12
