"""Import and task-list benchmark: projects of 100k and 1M tasks, each figure beside raw SQL.

    .venv/bin/python bench/tasks.py                  # SQLite, 100k and 1M tasks (make bench-tasks)
    .venv/bin/python bench/tasks.py --quick          # 10k and 100k: a smoke run
    .venv/bin/python bench/tasks.py --database-url postgresql://root@127.0.0.1:5432/bench_tasks
    .venv/bin/python bench/tasks.py --projects 1000000,100000,1000 --database-url ...  # see below

What is measured (see bench/README.md):

* bulk import (``ImportSection``, printed first; ``--import-only`` runs only it): one POST of
  100k URLs and one of 10k annotated Label Studio tasks to ``/api/projects/{id}/import/`` through
  ``django.test.Client`` — beside json.loads + all rows at once per table on the DB-API cursor,
  with their aims (Label Studio's times ÷ 10);
* import: ``json.loads`` of a JSON list of image references plus
  ``labeling.services.import_references`` — beside the same rows inserted by ``executemany`` on a
  DB-API cursor (``connection.cursor()``) in one transaction;
* task list: ``labeling.tasklist.list_tasks`` plus ``TaskSerializer(page, many=True).data`` (what
  ``ProjectViewSet.tasks`` does, minus HTTP) for the first page, a deep page (cursor after the id
  at 90 % of the project) and filtered pages — beside the same SELECT written by hand and run with
  ``fetchall()`` on ``connection.cursor()``. The full HTTP request through ``django.test.Client``
  is an extra, informational column.

* several projects (``--projects``): projects of very different sizes, created oldest first,
  every task-list query the API offers (each filter, each sort, first page and 90 % deep, and
  ``task_count``) in each — ``tasklist.task_page`` plus the serializer, beside the same SQL on
  the DB-API cursor, with the plan — on a freshly loaded PostgreSQL without ANALYZE, then after
  it (``ProjectsBench``, at the end of this file).

It is a report: nothing here fails on a slow figure. Everything runs in a throwaway data
directory (and, on PostgreSQL, a throwaway database whose name must start with ``bench``) that
is removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import labelstudio_times  # bench/, beside this file
from benchdb import throwaway_installation, url_problem

PAGE_SIZE = 50
BUDGET = 10.0  # seconds of raw + product runs per query; a slower query runs fewer times, but
MIN_RUNS = 50  # at least this many
FIRST_DELIVERY = 20_000  # first tasks that get predictions and a review (≤ 1/5 of a batch)
BATCH = 100_000  # one import = a JSON list of this many references (less when a size is smaller)

# The columns Django selects for a Task, in model order, written by hand for the raw reference.
TASK_COLUMNS = (
    "id",
    "organization_id",
    "project_id",
    "image",
    "file_name",
    "width",
    "height",
    "size_bytes",
    "status",
    "assignee_id",
    "lock_owner_id",
    "lock_expires_at",
    "submitted_by_id",
    "has_annotation",
    "has_prediction",
    "top_score",
    "disagreement",
    "shape_count",
    "created_at",
    "updated_at",
)
SELECT = "SELECT " + ", ".join(TASK_COLUMNS) + " FROM labeling_task"
INSERT_COLUMNS = TASK_COLUMNS[1:]
RAW_INSERT = (
    f"INSERT INTO labeling_task ({', '.join(INSERT_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(INSERT_COLUMNS))})"
)

perf = time.perf_counter
SIDES = ("raw", "list_tasks", "product", "http")
PAIRS = (  # (first page, deep page) of each query
    ("first", "deep"),
    ("submitted", "submitted_deep"),
    ("label", "label_deep"),
    ("predicted", "predicted_last"),
    ("reviewed", "reviewed_last"),
)


# ---------------------------------------------------------------------------- options


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/tasks.py",
        description="Import rate and task-list latency at 100k and 1M tasks, beside raw SQL.",
    )
    parser.add_argument(
        "--sizes",
        default="100000,1000000",
        help="project sizes (tasks) to measure the list at, comma-separated (default %(default)s)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="sizes 10000,100000 and N=50: a smoke run"
    )
    parser.add_argument(
        "--database-url",
        default="",
        help="PostgreSQL URL, e.g. postgresql://root@127.0.0.1:5432/bench_tasks; the database "
        "name must start with 'bench' (it is created, and dropped at the end unless --keep). "
        "Default: SQLite in a throwaway data directory.",
    )
    parser.add_argument("-n", type=int, default=200, help="timed runs per query (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed runs first (default 20)")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP column")
    parser.add_argument(
        "--explain", action="store_true", help="print the query plan of each product query"
    )
    parser.add_argument(
        "--import-only", action="store_true", help="run only the bulk import section (~1 min)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write every number to PATH as JSON")
    parser.add_argument(
        "--keep", action="store_true", help="keep the data directory (and PostgreSQL database)"
    )
    add_project_args(parser)
    args = parser.parse_args(argv)
    parse_projects(parser, args)
    if args.quick:
        args.sizes = "10000,100000"
        if args.n == 200:
            args.n = 50
    try:
        args.sizes = sorted({int(size) for size in args.sizes.split(",") if size.strip()})
    except ValueError:
        parser.error("--sizes takes whole numbers, e.g. 100000,1000000")
    if not args.sizes or args.sizes[0] < 1000:
        parser.error("every size must be at least 1000 tasks")
    if args.n < 20 or args.warmup < 0:
        parser.error("-n must be at least 20 and --warmup not negative")
    if args.database_url and (problem := url_problem(args.database_url)):
        parser.error(problem)
    return args


# ---------------------------------------------------------------------------- statistics


@dataclass
class Timing:
    samples: list[float] = field(default_factory=list)  # seconds

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.samples)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000.0  # nearest rank, in ms

    @property
    def median(self) -> float:
        return self.quantile(0.5)

    @property
    def p95(self) -> float:
        return self.quantile(0.95)

    def summary(self) -> dict[str, float]:
        return {"median_ms": round(self.median, 4), "p95_ms": round(self.p95, 4)}


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def count(size: int) -> str:
    if size == 0:
        return "0"
    if size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    if size % 1000 == 0:
        return f"{size // 1000}k"
    return str(size)


# ---------------------------------------------------------------------------- the benchmark


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with throwaway_installation(args.database_url, keep=args.keep) as data_dir:
        if args.projects:
            return ProjectsBench(args, data_dir).run()
        return Bench(args, data_dir).run()


@dataclass
class Case:
    key: str
    title: str
    task_filter: Any  # tasklist.TaskFilter
    after: int | None
    sql: str
    params: list[Any]
    query: dict[str, str]  # the same request as API query parameters


class Bench:
    def __init__(self, args: argparse.Namespace, data_dir: Path) -> None:
        from django.db import connection

        self.args = args
        self.data_dir = data_dir
        self.connection = connection
        self.vendor = connection.vendor
        self.results: dict[str, Any] = {"import": [], "list": [], "plans": {}}
        self.batch = min(BATCH, args.sizes[0])

    # ------------------------------------------------------------------------ setup

    def setup(self) -> None:
        from django.core.management import call_command

        from defectlab.labeling import services
        from defectlab.labeling.models import Task
        from defectlab.tenancy.models import User
        from defectlab.tenancy.services import create_organization

        columns = tuple(f.column for f in Task._meta.concrete_fields)
        if columns != TASK_COLUMNS:  # the hand-written SQL must select what the ORM selects
            raise SystemExit(f"labeling_task columns changed; update TASK_COLUMNS: {columns}")
        started = perf()
        call_command("migrate", verbosity=0, interactive=False)
        self.owner = User.objects.create_user("bench-owner@example.com", name="Bench owner")
        organization = create_organization("Bench plant", self.owner)
        self.project = services.create_project(
            organization,
            self.owner,
            name="Line 3 surface inspection",
            labels=[
                {"name": "scratch", "color": "#e53935", "hotkey": "1"},
                {"name": "dent", "color": "#1e88e5", "hotkey": "2"},
            ],
        )
        self.scratch, self.dent = list(self.project.labels.order_by("order"))
        # Where the raw-SQL import reference writes (and is deleted from right after).
        self.reference_project = services.create_project(
            organization, self.owner, name="raw insert reference"
        )
        print(f"Set up in {perf() - started:.1f} s (migrate, owner, organization, project).")

    # ------------------------------------------------------------------------ import

    @staticmethod
    def references(start: int, number: int) -> str:
        return json.dumps(
            [
                {
                    "image": f"https://cam-{index % 4 + 1}.plant.example/line3/{index:07d}.jpg",
                    "width": 2448,
                    "height": 2048,
                }
                for index in range(start, start + number)
            ]
        )

    def product_import(self, text: str) -> float:
        from defectlab.labeling import services

        started = perf()
        services.import_references(self.project, json.loads(text))
        return perf() - started

    def raw_import(self, text: str) -> float:
        """The same rows through executemany on the DB-API cursor, in one transaction."""
        from django.db import transaction
        from django.utils import timezone

        project = self.reference_project
        started = perf()
        items = json.loads(text)
        now = self.connection.ops.adapt_datetimefield_value(timezone.now())
        org, pid = project.organization_id, project.pk
        rows = [
            (
                org,
                pid,
                item["image"],
                item["image"].rsplit("/", 1)[-1],
                item["width"],
                item["height"],
                None,
                "new",
                None,
                None,
                None,
                None,
                False,
                False,
                None,
                None,
                0,
                now,
                now,
            )
            for item in items
        ]
        with transaction.atomic(), self.connection.cursor() as cursor:
            cursor.executemany(RAW_INSERT, rows)
            cursor.execute(
                "UPDATE labeling_project SET count_new = count_new + %s WHERE id = %s",
                [len(rows), pid],
            )
        elapsed = perf() - started
        with transaction.atomic(), self.connection.cursor() as cursor:  # not measured
            cursor.execute("DELETE FROM labeling_task WHERE project_id = %s", [pid])
            cursor.execute("UPDATE labeling_project SET count_new = 0 WHERE id = %s", [pid])
        return elapsed

    def vary(self, after_id: int) -> None:
        """Make filters mean something (bulk SQL, not measured). Spread evenly over the new tasks:
        ~30 % have an annotation, ~10 % are submitted (all annotated), ~5 % use "scratch" and ~2 %
        "dent". Bunched at the start, as work goes in id order (``next_task``): the first
        FIRST_DELIVERY tasks have a model prediction, and their submitted ones are reviewed
        (approved or rejected) — so the last page of those filters is near the project's start."""
        from django.db import transaction

        from defectlab.labeling import services

        pid = self.project.pk
        with transaction.atomic(), self.connection.cursor() as cursor:
            cursor.execute(
                "UPDATE labeling_task SET has_annotation = %s "
                "WHERE project_id = %s AND id > %s AND (id %% 10) IN (3, 5, 8)",
                [True, pid, after_id],
            )
            cursor.execute(
                "UPDATE labeling_task SET status = %s "
                "WHERE project_id = %s AND id > %s AND (id %% 10) = 3",
                ["submitted", pid, after_id],
            )
            if after_id == 0:  # the project's first batch
                cursor.execute(
                    "SELECT MAX(id) FROM (SELECT id FROM labeling_task WHERE project_id = %s "
                    "ORDER BY id LIMIT %s) AS first_delivery",
                    [pid, min(FIRST_DELIVERY, self.batch // 5)],
                )
                last = cursor.fetchone()[0]
                cursor.execute(
                    "UPDATE labeling_task SET has_prediction = %s WHERE project_id = %s AND id <= %s",
                    [True, pid, last],
                )
                for status, where in (
                    ("approved", "(id %% 20) = 3"),
                    ("rejected", "(id %% 20) = 13"),
                ):
                    cursor.execute(
                        "UPDATE labeling_task SET status = %s "
                        f"WHERE project_id = %s AND id <= %s AND {where}",
                        [status, pid, last],
                    )
            for label, where in ((self.scratch, "(id %% 20) = 5"), (self.dent, "(id %% 50) = 8")):
                cursor.execute(
                    "INSERT INTO labeling_tasklabel (task_id, label_id) SELECT id, %s "
                    f"FROM labeling_task WHERE project_id = %s AND id > %s AND {where}",
                    [label.pk, pid, after_id],
                )
        services.recount(self.project)

    def max_id(self) -> int:
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT COALESCE(MAX(id), 0) FROM labeling_task WHERE project_id = %s",
                [self.project.pk],
            )
            return int(cursor.fetchone()[0])

    def grow(self, have: int, size: int) -> int:
        """Import batches until the project holds ``size`` tasks; record both rates."""
        batches: list[dict[str, Any]] = []
        batch = self.batch
        while have < size:
            number = min(batch, size - have)
            text = self.references(have, number)
            before = self.max_id()
            product = self.product_import(text)
            raw = self.raw_import(text)
            self.vary(before)
            have += number
            batches.append(
                {
                    "tasks": number,
                    "project_size_after": have,
                    "product_s": round(product, 4),
                    "raw_s": round(raw, 4),
                    "product_rate": round(number / product),
                    "raw_rate": round(number / raw),
                }
            )
            print(
                f"  imported {count(number)} → {count(have)}: "
                f"product {number / product:,.0f} tasks/s, raw {number / raw:,.0f} tasks/s",
                flush=True,
            )
        tasks = sum(b["tasks"] for b in batches)
        product_s = sum(b["product_s"] for b in batches)
        raw_s = sum(b["raw_s"] for b in batches)
        self.results["import"].append(
            {
                "size": size,
                "from_size": size - tasks,
                "batches": len(batches),
                "batch_tasks": batch,
                "tasks_imported": tasks,
                "product_rate": round(tasks / product_s),
                "raw_rate": round(tasks / raw_s),
                "product_over_raw_time": round(product_s / raw_s, 2),
                "last_batch_product_rate": batches[-1]["product_rate"],
                "last_batch_raw_rate": batches[-1]["raw_rate"],
                "per_batch": batches,
            }
        )
        return have

    def settle(self) -> None:
        """PostgreSQL: VACUUM ANALYZE, the state autovacuum reaches on its own soon after a bulk
        import (done here so it does not start in the middle of a measurement). SQLite: nothing —
        the product never runs ANALYZE, so its planner works without statistics."""
        if self.vendor == "postgresql":
            with self.connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE labeling_task")
                cursor.execute("VACUUM ANALYZE labeling_tasklabel")
        elif self.vendor == "sqlite":
            with self.connection.cursor() as cursor:
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # ------------------------------------------------------------------------ list

    def cases(self, size: int) -> list[Case]:
        """Each query twice: its first page, and a page further on through the cursor."""
        from defectlab.labeling.tasklist import TaskFilter

        try:
            from defectlab.params import encode_cursor
        except ImportError:  # where it lived before defectlab.params
            from defectlab.params import encode_cursor  # type: ignore[attr-defined,no-redef]

        pid = self.project.pk
        by_project = f"{SELECT} WHERE project_id = %s"
        order = f" ORDER BY id LIMIT {PAGE_SIZE + 1}"

        def one_id(where: str, params: list[Any], descending: bool, offset: int) -> int:
            with self.connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT id FROM labeling_task WHERE project_id = %s{where} "
                    f"ORDER BY id {'DESC' if descending else 'ASC'} LIMIT 1 OFFSET %s",
                    [pid, *params, offset],
                )
                return int(cursor.fetchone()[0])

        deep = one_id("", [], False, int(size * 0.9))

        def pair(
            keys: tuple[str, str],
            titles: tuple[str, str],
            task_filter: Any,
            where: str,
            params: list[Any],
            query: dict[str, str],
            after: int = deep,
        ) -> list[Case]:
            return [
                Case(
                    keys[0],
                    titles[0],
                    task_filter,
                    None,
                    by_project + where + order,
                    [pid, *params],
                    query,
                ),
                Case(
                    keys[1],
                    titles[1],
                    task_filter,
                    after,
                    by_project + where + " AND id > %s" + order,
                    [pid, *params, after],
                    query | {"cursor": encode_cursor(after)},
                ),
            ]

        # The raw SQL has the shape of the ORM's (a bare "has_annotation" for "= true"), so both
        # columns run the same plan; EXPLAIN (--explain, and the JSON) shows which plan that is.
        predicted = " AND has_prediction"
        reviewed = " AND status IN (%s, %s)"
        return [
            *pair(
                ("first", "deep"),
                ("first page", "deep page (after 90 %)"),
                TaskFilter(),
                "",
                [],
                {},
            ),
            *pair(
                ("submitted", "submitted_deep"),
                ("submitted & annotated", "  same, after 90 %"),
                TaskFilter(statuses=["submitted"], has_annotation=True),
                " AND status IN (%s) AND has_annotation",
                ["submitted"],
                {"status": "submitted", "has_annotation": "true"},
            ),
            *pair(
                ("label", "label_deep"),
                ("label = scratch", "  same, after 90 %"),
                TaskFilter(label=self.scratch.pk),
                " AND id IN (SELECT task_id FROM labeling_tasklabel WHERE label_id = %s)",
                [self.scratch.pk],
                {"label": str(self.scratch.pk)},
            ),
            # Extras: filters whose tasks bunch at the start of the project (see vary()); their
            # second page is the last one (25 tasks), which must look at the rest of the project
            # unless an index gives the filter's tasks in id order.
            *pair(
                ("predicted", "predicted_last"),
                ("extra: has prediction", "  same, last page"),
                TaskFilter(has_prediction=True),
                predicted,
                [],
                {"has_prediction": "true"},
                after=one_id(predicted, [], True, PAGE_SIZE // 2),
            ),
            *pair(
                ("reviewed", "reviewed_last"),
                ("extra: approved,rejected", "  same, last page"),
                TaskFilter(statuses=["approved", "rejected"]),
                reviewed,
                ["approved", "rejected"],
                {"status": "approved,rejected"},
                after=one_id(reviewed, ["approved", "rejected"], True, PAGE_SIZE // 2),
            ),
        ]

    def measure(self, size: int) -> None:
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        from defectlab.labeling.tasklist import list_tasks

        serialize = self.serializer()
        args = self.args
        project = self.project
        client = None
        if not args.no_http:
            client = Client()
            client.force_login(self.owner)
        url = f"/api/projects/{project.pk}/tasks/"

        cases = self.cases(size)
        timings = {case.key: {side: Timing() for side in SIDES} for case in cases}

        def run_raw(case: Case) -> list[tuple[Any, ...]]:
            with self.connection.cursor() as cursor:
                cursor.execute(case.sql, case.params)
                return cursor.fetchall()

        def run_product(case: Case) -> tuple[list[Any], Any, float]:
            started = perf()
            page, _last = list_tasks(project, case.task_filter, after=case.after, limit=PAGE_SIZE)
            listed = perf()
            data = serialize(page)
            return page, data, listed - started

        checks: dict[str, dict[str, Any]] = {}
        for case in cases:
            # Same rows both ways? (a check of the hand-written SQL, not a timing)
            rows = run_raw(case)
            page, _data, _listed = run_product(case)
            with CaptureQueriesContext(self.connection) as captured:
                run_product(case)
            product_sql = captured.captured_queries[-1]["sql"]
            checks[case.key] = {
                "same_rows": [row[0] for row in rows[:PAGE_SIZE]] == [task.pk for task in page],
                "rows": len(page),
            }
            self.results["plans"][f"{size}/{case.key}"] = {
                "product_sql": product_sql,
                "raw_sql": case.sql,
                "plan": self.plan(product_sql),
            }

        # Round-robin over the queries, and alternate which side goes first, so a burst of
        # noise from elsewhere on the machine lands on every column alike. A query slow enough
        # that N runs would take over BUDGET seconds runs fewer times (never under MIN_RUNS).
        runs = {case.key: args.n for case in cases}
        spent = dict.fromkeys(runs, 0.0)
        gc.collect()
        for index in range(args.warmup + args.n):
            timed = index >= args.warmup
            if index == args.warmup and args.warmup:
                runs = {key: self.runs(spent[key] / args.warmup) for key in runs}
            for case in cases:
                timing = timings[case.key]
                if timed and len(timing["raw"].samples) >= runs[case.key]:
                    continue
                for side in ("raw", "product") if index % 2 else ("product", "raw"):
                    started = perf()
                    if side == "raw":
                        run_raw(case)
                        elapsed = perf() - started
                        if timed:
                            timing["raw"].add(elapsed)
                    else:
                        _page, _data, listed = run_product(case)
                        elapsed = perf() - started
                        if timed:
                            timing["product"].add(elapsed)
                            timing["list_tasks"].add(listed)
                    spent[case.key] += elapsed

        if client is not None:
            # A loop of its own: every request ends with close_old_connections(), which on SQLite
            # (CONN_MAX_AGE 0) closes the connection; that must not leak into the columns above.
            gc.collect()
            for index in range(args.warmup + max(runs.values())):
                for case in cases:
                    if index >= args.warmup + runs[case.key]:
                        continue
                    started = perf()
                    response = client.get(url, case.query, HTTP_ACCEPT="application/json")
                    elapsed = perf() - started
                    if response.status_code != 200:
                        raise SystemExit(f"GET {url} {case.query}: {response.status_code}")
                    if index >= args.warmup:
                        timings[case.key]["http"].add(elapsed)

        for case in cases:
            timing = timings[case.key]
            row = {
                "size": size,
                "query": case.key,
                "title": case.title.strip(),
                "after": case.after,
                "runs": runs[case.key],
                **checks[case.key],
                **{
                    side: timing[side].summary() if timing[side].samples else None for side in SIDES
                },
                "p95_ratio": round(timing["product"].p95 / timing["raw"].p95, 2),
                "median_ratio": round(timing["product"].median / timing["raw"].median, 2),
            }
            self.results["list"].append(row)
            self.print_row(row, case.title)

    @staticmethod
    def serializer() -> Any:
        """How the tasks view turns a page into JSON-ready data: TaskSerializer(page, many=True)
        — or ``task_rows(page)``, the plain function bench/README.md proposes, once it exists."""
        from defectlab.labeling import api

        task_rows = getattr(api, "task_rows", None)
        if task_rows is not None:
            return task_rows

        def task_serializer(page: list[Any]) -> Any:
            return api.TaskSerializer(page, many=True).data

        task_serializer.__name__ = "TaskSerializer(many=True)"
        return task_serializer

    def runs(self, seconds_per_run: float) -> int:
        """How many timed runs a query gets: N, or what fits in BUDGET seconds (≥ MIN_RUNS)."""
        if seconds_per_run * self.args.n <= BUDGET:
            return self.args.n
        return max(min(MIN_RUNS, self.args.n), int(BUDGET / seconds_per_run))

    def plan(self, sql: str) -> list[str]:
        with self.connection.cursor() as cursor:
            if self.vendor == "sqlite":
                cursor.execute("EXPLAIN QUERY PLAN " + sql)
                return [str(line[-1]) for line in cursor.fetchall()]
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql)
            return [str(line[0]) for line in cursor.fetchall()]

    # ------------------------------------------------------------------------ output

    HEADER = (
        f"{'size':>5}  {'query':<24}{'raw SQL':>17}{'list_tasks':>17}"
        f"{'product':>17}{'p95 ×raw':>10}{'HTTP (info)':>17}"
    )
    SUBHEADER = (
        f"{'':>5}  {'':<24}"
        + f"{'median':>9}{'p95':>8}" * 3
        + f"{'':>10}"
        + (f"{'median':>9}{'p95':>8}")
    )

    def print_row(self, row: dict[str, Any], title: str) -> None:
        http = row["http"] or {}
        flag = "" if row["same_rows"] else "  (rows differ!)"
        if row["runs"] != self.args.n:
            flag += f"  (N={row['runs']})"
        print(
            f"{count(row['size']):>5}  {title:<24}"
            f"{ms(row['raw']['median_ms']):>9}{ms(row['raw']['p95_ms']):>8}"
            f"{ms(row['list_tasks']['median_ms']):>9}{ms(row['list_tasks']['p95_ms']):>8}"
            f"{ms(row['product']['median_ms']):>9}{ms(row['product']['p95_ms']):>8}"
            f"{row['p95_ratio']:>9.1f}×"
            f"{ms(http.get('median_ms')):>9}{ms(http.get('p95_ms')):>8}{flag}",
            flush=True,
        )

    def verdicts(self) -> dict[str, Any]:
        aims: dict[str, Any] = {"import": [], "list_vs_raw": [], "depth": []}
        lines = ["", "Aims"]
        for entry in self.results["import"]:
            met = entry["product_rate"] >= 20_000
            aims["import"].append(
                {"size": entry["size"], "rate": entry["product_rate"], "met": met}
            )
            note = "" if self.vendor == "sqlite" else " (the aim is stated for SQLite)"
            lines.append(
                f"  import ≥ 20,000 tasks/s, {count(entry['size'])}: "
                f"{entry['product_rate']:,} tasks/s — {'met' if met else 'MISSED'}{note}"
            )
        by_key = {(row["size"], row["query"]): row for row in self.results["list"]}
        for row in self.results["list"]:
            met = row["p95_ratio"] <= 2.0
            aims["list_vs_raw"].append(
                {"size": row["size"], "query": row["query"], "ratio": row["p95_ratio"], "met": met}
            )
        for size in self.args.sizes:
            missed = [
                f"{row['query']} {row['p95_ratio']:.1f}×"
                for row in self.results["list"]
                if row["size"] == size and row["p95_ratio"] > 2.0
            ]
            lines.append(
                f"  list p95 within 2× of raw SQL, {count(size)}: "
                + ("met" if not missed else "MISSED — " + ", ".join(missed))
            )
            for shallow, deep in PAIRS:
                first, far = by_key[(size, shallow)], by_key[(size, deep)]
                ratio = far["product"]["p95_ms"] / first["product"]["p95_ms"]
                median = far["product"]["median_ms"] / first["product"]["median_ms"]
                raw = far["raw"]["p95_ms"] / first["raw"]["p95_ms"]
                met = ratio <= 1.5
                aims["depth"].append(
                    {
                        "size": size,
                        "pair": f"{deep}/{shallow}",
                        "p95_ratio": round(ratio, 2),
                        "median_ratio": round(median, 2),
                        "raw_p95_ratio": round(raw, 2),
                        "met": met,
                    }
                )
                lines.append(
                    f"  {deep} p95 within 1.5× of {shallow} p95, {count(size)}: "
                    f"{ratio:.2f}× — {'met' if met else 'MISSED'} "
                    f"(medians {median:.2f}×, raw SQL p95 {raw:.2f}×)"
                )
        sizes = self.args.sizes
        if len(sizes) > 1:
            small, large = sizes[0], sizes[-1]
            growth = {
                key: by_key[(large, key)]["product"]["p95_ms"]
                / by_key[(small, key)]["product"]["p95_ms"]
                for key in (key for pair in PAIRS for key in pair)
            }
            aims["growth_with_size"] = {key: round(value, 2) for key, value in growth.items()}
            lines.append(
                f"  (info) product p95 at {count(large)} ÷ at {count(small)}: "
                + ", ".join(f"{key} {value:.2f}×" for key, value in growth.items())
            )
        print("\n".join(lines))
        return aims

    # ------------------------------------------------------------------------ run

    def meta(self) -> dict[str, Any]:
        import django
        import rest_framework

        info: dict[str, Any] = {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "database": self.vendor,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "django": django.get_version(),
            "drf": rest_framework.VERSION,
            "sizes": self.args.sizes,
            "n": self.args.n,
            "warmup": self.args.warmup,
            "page_size": PAGE_SIZE,
            "serializer": self.serializer().__name__,
        }
        with self.connection.cursor() as cursor:
            if self.vendor == "sqlite":
                cursor.execute("SELECT sqlite_version()")
            else:
                cursor.execute("SHOW server_version")
            info["database_version"] = cursor.fetchone()[0]
        return info

    def run(self) -> int:
        started = perf()
        self.setup()
        self.results["meta"] = meta = self.meta()
        print(
            f"DefectLab task benchmark — {meta['database']} {meta['database_version']}, "
            f"{meta['cpus']} CPUs, Python {meta['python']}, Django {meta['django']}, "
            f"DRF {meta['drf']}; N={self.args.n} after {self.args.warmup} warm-up runs, "
            f"page size {PAGE_SIZE}; serializer {meta['serializer']}; data in {self.data_dir}"
        )
        self.results["bulk_import"] = ImportSection(self).run()
        have = 0
        for size in [] if self.args.import_only else self.args.sizes:
            print(f"\nGrowing the project to {count(size)} tasks")
            have = self.grow(have, size)
            self.settle()
            print(f"\nTask list at {count(size)} tasks, times in ms")
            print(self.HEADER)
            print(self.SUBHEADER)
            self.measure(size)
            if self.args.explain:
                for key, value in self.results["plans"].items():
                    if key.startswith(f"{size}/"):
                        print(f"  plan {key}: " + " | ".join(value["plan"]))

        print("\nImport: JSON list of references → tasks (json.loads + import_references)")
        print(
            f"{'project':>10}  {'batches':>9}  {'product tasks/s':>16}  {'raw tasks/s':>12}  "
            f"{'product ÷ raw time':>18}  {'last batch: product / raw':>26}"
        )
        for entry in self.results["import"]:
            last = f"{entry['last_batch_product_rate']:,} / {entry['last_batch_raw_rate']:,}"
            print(
                f"{count(entry['from_size']) + ' → ' + count(entry['size']):>10}  "
                f"{str(entry['batches']) + '×' + count(entry['batch_tasks']):>9}  "
                f"{entry['product_rate']:>16,}  {entry['raw_rate']:>12,}  "
                f"{entry['product_over_raw_time']:>17.1f}×  {last:>26}"
            )
        if not self.args.import_only:
            self.results["aims"] = self.verdicts()
        meta["seconds"] = round(perf() - started, 1)
        print(f"\nDone in {meta['seconds']:.0f} s.")
        if self.args.json:
            path = Path(self.args.json)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.results, indent=2, default=str) + "\n")
            print(f"Numbers written to {path}.")
        return 0


# ---------------------------------------------------------------------------- several projects
#
# The task list on a database holding several projects of very different sizes, the newer ones
# behind the older ones in id order (--projects). On PostgreSQL it is measured twice: fresh,
# right after the bulk load with no statistics (autovacuum off for the two tables, so it cannot
# analyze them in the middle), and after ANALYZE. Kept apart from the import bench above.

PROJECT_AIM_MS = 20.0  # task list p95, any filter, any depth, any project size
FLAT = 1.5  # deepest page ÷ first page, and largest project ÷ smallest, at most this
PROJECT_BUDGET = 2.0  # seconds of runs per query and side: a slower query runs fewer times,
PROJECT_MIN_RUNS = 20  # but at least this many (at least 5 when one run takes over a second)


def add_project_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--projects",
        metavar="SIZES",
        help="instead of the import bench: several projects of these sizes, created in this "
        "order (e.g. 1000000,100000,1000), each task-list query measured in each",
    )
    parser.add_argument(
        "--no-analyze",
        action="store_true",
        help="with --projects on PostgreSQL: measure the fresh database only (no ANALYZE phase)",
    )


def parse_projects(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not args.projects:
        return
    try:
        args.projects = [int(size) for size in args.projects.split(",") if size.strip()]
    except ValueError:
        parser.error("--projects takes whole numbers, e.g. 1000000,100000,1000")
    if len(args.projects) < 2 or min(args.projects) < 100:
        parser.error("--projects takes at least two sizes of at least 100 tasks")


@dataclass
class ProjectCase:
    key: str
    params: dict[str, str]
    count: bool = False  # task_count rather than a page


class ProjectsBench:
    """Projects of the sizes in --projects; each list query measured in each project, as the
    product runs it (``tasklist.task_page`` + the serializer, or ``tasklist.task_count``) and as
    the same SQL run on the DB-API cursor (the raw reference)."""

    def __init__(self, args: argparse.Namespace, data_dir: Path) -> None:
        from django.db import connection

        self.args = args
        self.data_dir = data_dir
        self.connection = connection
        self.vendor = connection.vendor
        self.n = args.n if args.n != 200 else 50
        self.results: dict[str, Any] = {"layout": args.projects, "phases": {}}

    def setup(self) -> None:
        from django.core.management import call_command

        from defectlab.labeling import services
        from defectlab.tenancy.models import User
        from defectlab.tenancy.services import create_organization

        call_command("migrate", verbosity=0, interactive=False)
        self.owner = User.objects.create_user("bench-owner@example.com", name="Bench owner")
        self.organization = create_organization("Bench plant", self.owner)
        self.projects = []
        labels = [{"name": "scratch", "color": "#e53935"}, {"name": "dent", "color": "#1e88e5"}]
        for index, size in enumerate(self.args.projects):
            project = services.create_project(
                self.organization, self.owner, name=f"Line {index + 1}", labels=labels
            )
            self.projects.append((size, project, list(project.labels.order_by("order"))))
        if self.vendor == "postgresql":
            with self.connection.cursor() as cursor:
                for table in ("labeling_task", "labeling_tasklabel"):
                    cursor.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")

    def load(self) -> None:
        """Bulk SQL, one statement per project: ~10 % submitted (annotated), approved and rejected
        bunched in the first fifth with the predictions, 30 % annotated, 10 % in progress and
        assigned to the owner, file names and update times shuffled, 5 % / 2 % labelled."""
        from django.db import transaction

        from defectlab.labeling import services

        if self.vendor == "postgresql":
            source, pad = "generate_series(1, %s) AS s(i)", "lpad(CAST({} AS text), 7, '0')"
            updated = "now() - CAST(i AS BIGINT) * 7919 %% %s * interval '1 second'"
            with_rows = ""
        else:
            source, pad = "s", "printf('%%07d', {})"
            updated = (
                "strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', "
                "'-' || (CAST(i AS BIGINT) * 7919 %% %s) || ' seconds')"
            )
            with_rows = (
                "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %s) "
            )
        for size, project, (scratch, dent) in self.projects:
            started = perf()
            fifth = size // 5
            status = (
                "CASE WHEN i %% 10 = 3 THEN 'submitted' "
                f"WHEN i <= {fifth} AND i %% 20 = 5 THEN 'approved' "
                f"WHEN i <= {fifth} AND i %% 20 = 15 THEN 'rejected' "
                "WHEN i %% 10 = 7 THEN 'in_progress' ELSE 'new' END"
            )
            sql = (
                f"{with_rows}INSERT INTO labeling_task (organization_id, project_id, image, "
                "file_name, width, height, status, assignee_id, has_annotation, has_prediction, "
                "created_at, updated_at) "
                f"SELECT %s, %s, 'https://cam.plant.example/p{project.pk}/' || {pad.format('i')} "
                f"|| '.jpg', {pad.format(f'CAST(i AS BIGINT) * 7919 %% {size}')} || '.jpg', "
                f"2448, 2048, {status}, CASE WHEN i %% 10 = 7 THEN %s END, "
                f"i %% 10 IN (3, 5, 8), i <= {fifth}, {updated.replace('%s', str(size))}, "
                f"{updated.replace('%s', str(size))} FROM {source}"
            )
            params = [self.organization.pk, project.pk, self.owner.pk]
            params = [size, *params] if with_rows else [*params, size]
            with transaction.atomic(), self.connection.cursor() as cursor:
                cursor.execute(sql, params)
                for label, every, rest in ((scratch, 20, 5), (dent, 50, 8)):
                    cursor.execute(
                        "INSERT INTO labeling_tasklabel (task_id, label_id) SELECT id, %s FROM "
                        f"labeling_task WHERE project_id = %s AND id %% {every} = {rest}",
                        [label.pk, project.pk],
                    )
            services.recount(project)
            print(f"  loaded {count(size)} tasks in {perf() - started:.1f} s", flush=True)

    def deep_cursor(self, project: Any, params: dict[str, str], size: int) -> str | None:
        """The cursor of the page that starts 90 % into the project in the query's order."""
        from defectlab.labeling.tasklist import task_sort_from
        from defectlab.params import encode_cursor, encode_key_cursor

        field_name, descending = task_sort_from(params)
        column = field_name
        direction = "DESC" if descending else "ASC"
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {column}, id FROM labeling_task WHERE project_id = %s "
                f"ORDER BY {column} {direction}, id {direction} LIMIT 1 OFFSET %s",
                [project.pk, int(size * 0.9)],
            )
            value, last_id = cursor.fetchone()
        if field_name == "id":
            return encode_cursor(last_id)
        if isinstance(value, dt.datetime):
            value = value.isoformat()
        elif field_name == "updated_at":
            value = dt.datetime.fromisoformat(str(value)).replace(tzinfo=dt.UTC).isoformat()
        return encode_key_cursor(value, last_id)

    def cases(self, project: Any, labels: list[Any], size: int) -> list[ProjectCase]:
        from defectlab.labeling.tasklist import SORT_FIELDS

        queries: list[tuple[str, dict[str, str]]] = [
            ("all", {}),
            ("all newest first", {"sort": "-id"}),
            ("status=submitted", {"status": "submitted"}),
            ("status=approved,rejected", {"status": "approved,rejected"}),
            ("submitted & annotated", {"status": "submitted", "has_annotation": "true"}),
            ("has_annotation=true", {"has_annotation": "true"}),
            ("has_annotation=false", {"has_annotation": "false"}),
            ("has_prediction=true", {"has_prediction": "true"}),
            ("has_prediction=false", {"has_prediction": "false"}),
            ("label=scratch", {"label": str(labels[0].pk)}),
            ("assignee=me", {"assignee": "me"}),
            ("assignee=none", {"assignee": "none"}),
            ("sort=file_name", {"sort": "file_name"}),
            ("sort=-updated", {"sort": "-updated"}),
        ]
        if "status" in SORT_FIELDS:
            queries.append(("sort=status", {"sort": "status"}))
        cases = []
        for key, params in queries:
            cases.append(ProjectCase(key, params))
            cursor = self.deep_cursor(project, params, size)
            cases.append(ProjectCase(key + " @90%", params | {"cursor": cursor or ""}))
        for key, params in queries[5:12]:
            cases.append(ProjectCase("count " + key, params, count=True))
        return cases

    def product(self, project: Any, case: ProjectCase) -> Any:
        from defectlab.labeling.tasklist import task_count, task_page

        if case.count:
            return task_count(project, case.params, self.owner)
        page, _cursor = task_page(project, case.params, self.owner)
        return self.serialize(page)

    @staticmethod
    def planned_as_product() -> Any:
        """The planner settings the product runs its list queries under: tasklist.index_order()
        where it exists (the raw reference and the plans use them too), else none."""
        from contextlib import nullcontext

        from defectlab.labeling import tasklist

        index_order = getattr(tasklist, "index_order", None)
        return index_order() if index_order is not None else nullcontext()

    def raw(self, queries: list[str]) -> None:
        with self.planned_as_product(), self.connection.cursor() as cursor:
            for sql in queries:
                cursor.execute(sql)
                cursor.fetchall()

    def plan(self, queries: list[str]) -> str:
        """The scans and sorts of the product's queries: index names, "SORT", "SEQ"."""
        marks: list[str] = []
        with self.planned_as_product(), self.connection.cursor() as cursor:
            for sql in queries:
                if self.vendor == "postgresql":
                    cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
                    raw = cursor.fetchone()[0]
                    nodes = [(raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]]
                    while nodes:
                        node = nodes.pop()
                        nodes.extend(node.get("Plans", []))
                        kind = node["Node Type"]
                        if "Sort" in kind:
                            marks.append("SORT")
                        elif kind == "Seq Scan":
                            marks.append(f"SEQ {node['Relation Name']}")
                        elif "Index Name" in node:
                            marks.append(node["Index Name"])
                else:
                    cursor.execute("EXPLAIN QUERY PLAN " + sql)
                    for line in cursor.fetchall():
                        detail = str(line[-1])
                        if "TEMP B-TREE" in detail:
                            marks.append("SORT")
                        elif " INDEX " in detail:
                            marks.append(detail.split(" INDEX ")[1].split(" ")[0])
                        elif detail.startswith("SCAN"):
                            marks.append(detail)
        return ",".join(dict.fromkeys(marks))

    def measure(self, phase: str) -> list[dict[str, Any]]:
        from django.test.utils import CaptureQueriesContext

        rows: list[dict[str, Any]] = []
        for size, project, labels in self.projects:
            for case in self.cases(project, labels, size):
                self.product(project, case)  # warm
                with CaptureQueriesContext(self.connection) as captured:
                    self.product(project, case)
                queries = [
                    query["sql"]
                    for query in captured.captured_queries
                    if query["sql"].lstrip().upper().startswith("SELECT")
                ]
                plan = self.plan(queries)
                timings = {"product": Timing(), "raw": Timing()}
                spent = 0.0
                for index in range(self.n):
                    for side in ("product", "raw") if index % 2 else ("raw", "product"):
                        started = perf()
                        if side == "raw":
                            self.raw(queries)
                        else:
                            self.product(project, case)
                        elapsed = perf() - started
                        timings[side].add(elapsed)
                        spent += elapsed
                    enough = PROJECT_MIN_RUNS if spent / (index + 1) < 2.0 else 5
                    if index + 1 >= enough and spent > 2 * PROJECT_BUDGET:
                        break
                row = {
                    "phase": phase,
                    "size": size,
                    "query": case.key,
                    "params": case.params,
                    "runs": len(timings["raw"].samples),
                    "plan": plan,
                    "sql": queries,
                    "product": timings["product"].summary(),
                    "raw": timings["raw"].summary(),
                }
                rows.append(row)
        return rows

    def print_phase(self, phase: str, rows: list[dict[str, Any]]) -> None:
        sizes = [size for size, _project, _labels in self.projects]
        print(f"\nTask list, {phase}: product p95 / raw SQL p95 in ms, and the product's plan")
        print(f"{'query':<34}" + "".join(f"{count(size):>16}" for size in sizes) + "  plans")
        by_key: dict[str, dict[int, dict[str, Any]]] = {}
        for row in rows:
            by_key.setdefault(row["query"], {})[row["size"]] = row
        for key, cells in by_key.items():
            line = f"{key:<34}"
            plans = []
            for size in sizes:
                cell = cells[size]
                line += f"{ms(cell['product']['p95_ms']):>9} /{ms(cell['raw']['p95_ms']):>5}"
                plans.append(cell["plan"])
            distinct = list(dict.fromkeys(plans))
            print(line + "  " + (distinct[0] if len(distinct) == 1 else " | ".join(plans)))

    def verdicts(self, phase: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        sizes = [size for size, _project, _labels in self.projects]
        small, large = min(sizes), max(sizes)
        cell = {(row["size"], row["query"]): row["product"]["p95_ms"] for row in rows}
        worst = max(rows, key=lambda row: row["product"]["p95_ms"])
        slow = [r for r in rows if r["product"]["p95_ms"] > PROJECT_AIM_MS]
        depth = {
            (size, key): cell[(size, key + " @90%")] / cell[(size, key)]
            for size, key in cell
            if (size, key + " @90%") in cell
        }
        deepest = max(depth.items(), key=lambda item: item[1])
        growth = {
            key: cell[(large, key)] / cell[(small, key)] for size, key in cell if size == large
        }
        steepest = max(growth.items(), key=lambda item: item[1])
        aims = {
            "p95_max_ms": worst["product"]["p95_ms"],
            "p95_met": not slow,
            "deep_over_first_max": round(deepest[1], 2),
            "depth_met": deepest[1] <= FLAT,
            "largest_over_smallest_max": round(steepest[1], 2),
            "size_met": steepest[1] <= FLAT,
        }
        print(f"Aims, {phase}")
        print(
            f"  every query p95 ≤ {PROJECT_AIM_MS:.0f} ms: worst {ms(worst['product']['p95_ms'])} "
            f"ms ({worst['query']}, {count(worst['size'])}) — "
            + ("met" if not slow else f"MISSED in {len(slow)} of {len(rows)}")
        )
        print(
            f"  flat in depth, @90% ÷ first page p95 ≤ {FLAT}: worst {deepest[1]:.2f}× "
            f"({deepest[0][1]}, {count(deepest[0][0])}) — "
            + ("met" if aims["depth_met"] else "MISSED")
        )
        print(
            f"  flat in size, {count(large)} ÷ {count(small)} p95 ≤ {FLAT}: worst "
            f"{steepest[1]:.2f}× ({steepest[0]}) — " + ("met" if aims["size_met"] else "MISSED")
        )
        return aims

    def run(self) -> int:
        started = perf()
        self.serialize = Bench.serializer()
        self.setup()
        print(
            f"DefectLab task list, several projects — {self.vendor}; projects of "
            + ", ".join(count(size) for size in self.args.projects)
            + f" tasks, created in that order; N≤{self.n}, page size 50"
        )
        self.load()
        phases = ["fresh, no ANALYZE"]
        if self.vendor == "postgresql" and not self.args.no_analyze:
            phases.append("after ANALYZE")
        for phase in phases:
            if phase == "after ANALYZE":
                with self.connection.cursor() as cursor:
                    cursor.execute("ANALYZE labeling_task")
                    cursor.execute("ANALYZE labeling_tasklabel")
            rows = self.measure(phase)
            self.print_phase(phase, rows)
            self.results["phases"][phase] = {"rows": rows, "aims": self.verdicts(phase, rows)}
        print(f"\nDone in {perf() - started:.0f} s.")
        if self.args.json:
            path = Path(self.args.json)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.results, indent=2, default=str) + "\n")
            print(f"Numbers written to {path}.")
        return 0


# ---------------------------------------------------------------------------- bulk import section
#
# POST /api/projects/{id}/import/ through django.test.Client (the whole HTTP view: middleware,
# session auth, the tenant scope, the view, its JSON answer), beside a raw-SQL reference in the
# same run: the same text through json.loads, the same rows (percent regions turned into pixel
# shapes by a few lines of arithmetic, no checks) and all rows of a table at once on the DB-API
# cursor (executemany on SQLite, INSERT … SELECT FROM unnest on PostgreSQL, as the product) in
# one transaction. Aims: Label Studio 1.23.2 on this machine, as measured by issue 10's
# author, divided by ten.

IMPORT_AIMS = {key: labelstudio_times.ISSUE[key] / 10 for key in ("urls", "label_studio")}
IMPORT_URLS = 100_000
IMPORT_LABEL_STUDIO = 10_000
IMPORT_RUNS = 3  # best of
RAW_TASK_COLUMNS = (
    "organization_id", "project_id", "image", "file_name", "width", "height", "status",
    "has_annotation", "has_prediction", "created_at", "updated_at",
)  # fmt: skip
RAW_TASK_TYPES = (
    "bigint bigint text text integer integer text boolean boolean timestamptz timestamptz"
)


def label_studio_tasks(number: int) -> str:
    """``number`` tasks as Label Studio's JSON export writes them: two boxes (one turned), one
    polygon and an image tag in the annotation, one scored box in a prediction."""
    width, height = 2448, 2048

    def result(kind: str, value: dict[str, Any], rid: str, name: str) -> dict[str, Any]:
        return {
            "id": rid, "type": kind, "from_name": name, "to_name": "image",
            "original_width": width, "original_height": height, "image_rotation": 0,
            "value": value, "origin": "manual",
        }  # fmt: skip

    tasks = []
    for index in range(number):
        x = index % 50
        annotation = [
            result("rectanglelabels", {"x": x, "y": 10, "width": 20, "height": 15,
                                       "rotation": 0, "rectanglelabels": ["scratch"]}, "a", "label"),
            result("rectanglelabels", {"x": 60, "y": 40, "width": 10, "height": 5,
                                       "rotation": 30, "rectanglelabels": ["dent"]}, "b", "label"),
            result("polygonlabels", {"points": [[x, 60], [x + 10, 62], [x + 5, 80]],
                                     "closed": True, "polygonlabels": ["crack"]}, "c", "polygon"),
            result("choices", {"choices": ["NG"]}, "t", "tags"),
        ]  # fmt: skip
        prediction = [
            {**result("rectanglelabels", {"x": x, "y": 10, "width": 20, "height": 15,
                                          "rotation": 0, "rectanglelabels": ["scratch"]},
                      "p", "label"), "score": 0.91},
        ]  # fmt: skip
        tasks.append(
            {
                "id": index + 1,
                "data": {"image": f"https://cam-1.plant.example/line3/{index:07d}.jpg"},
                "annotations": [
                    {"id": index + 1, "completed_by": 1, "result": annotation,
                     "was_cancelled": False, "ground_truth": False, "lead_time": 4.2,
                     "created_at": "2026-11-30T08:00:00Z", "updated_at": "2026-11-30T08:00:00Z"},
                ],
                "predictions": [{"id": index + 1, "model_version": "yolo", "score": 0.9,
                                 "result": prediction}],
                "meta": {}, "inner_id": index + 1, "total_annotations": 1, "project": 1,
            }
        )  # fmt: skip
    return json.dumps(tasks)


def raw_label_studio_rows(
    items: list[dict[str, Any]], labels: dict[str, int]
) -> list[tuple[str, str, int, int, list[dict[str, Any]], list[str], list[dict[str, Any]]]]:
    """The raw reference's reading: percent → pixels by hand, no checks at all."""

    def shapes(results: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
        found, tags = [], []
        for r in results:
            value, kind = r["value"], r["type"]
            w, h = r["original_width"] / 100, r["original_height"] / 100
            if kind == "rectanglelabels":
                x, y = value["x"] * w, value["y"] * h
                bw, bh = value["width"] * w, value["height"] * h
                angle = math.radians(value.get("rotation", 0))
                if angle:
                    c, s = math.cos(angle), math.sin(angle)
                    points = [[x, y], [x + bw * c, y + bw * s],
                              [x + bw * c - bh * s, y + bw * s + bh * c], [x - bh * s, y + bh * c]]  # fmt: skip
                    found.append({"type": "polygon", "points": points,
                                  "label": labels[value["rectanglelabels"][0]], "attributes": {}})  # fmt: skip
                else:
                    found.append({"type": "box", "points": [[x, y], [x + bw, y + bh]],
                                  "label": labels[value["rectanglelabels"][0]], "attributes": {}})  # fmt: skip
            elif kind == "polygonlabels":
                points = [[px * w, py * h] for px, py in value["points"]]
                found.append({"type": "polygon", "points": points,
                              "label": labels[value["polygonlabels"][0]], "attributes": {}})  # fmt: skip
            elif kind == "choices":
                tags.extend(value["choices"])
            if "score" in r and found:
                found[-1]["score"] = r["score"]
        return found, tags

    rows = []
    for item in items:
        image = item["data"]["image"]
        result = item["annotations"][0]["result"]
        annotation, tags = shapes(result)
        predicted, _tags = shapes(item["predictions"][0]["result"])
        width, height = result[0]["original_width"], result[0]["original_height"]
        rows.append((image, image.rsplit("/", 1)[-1], width, height, annotation, tags, predicted))
    return rows


class ImportSection:
    """The bulk import figures (see the comment above)."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.connection = bench.connection
        self.results: list[dict[str, Any]] = []

    def fresh_project(self, name: str) -> Any:
        from defectlab.labeling import services

        return services.create_project(
            self.bench.project.organization,
            self.bench.owner,
            name=name,
            shape_types=["box"],
            labels=[{"name": "scratch"}],
        )

    def product(self, text: str) -> float:
        """One POST of ``text`` to a fresh project's import; seconds."""
        from django.test import Client

        client = Client()
        client.force_login(self.bench.owner)
        project = self.fresh_project("import bench")
        started = perf()
        response = client.post(
            f"/api/projects/{project.pk}/import/", text, content_type="application/json"
        )
        elapsed = perf() - started
        if response.status_code != 201:
            raise SystemExit(f"import answered {response.status_code}: {response.content[:300]!r}")
        return elapsed

    def raw_insert(
        self, cursor: Any, table: str, columns: tuple[str, ...], types: str, rows: list[Any]
    ) -> None:
        """All rows at once, as the product does: one ``executemany`` on SQLite, one
        ``INSERT … SELECT FROM unnest(arrays)`` on PostgreSQL (``types``: one per column)."""
        names = ", ".join(columns)
        if self.connection.vendor == "postgresql":
            arrays = ", ".join(f"%s::{kind}[]" for kind in types.split())
            cursor.execute(
                f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays})",
                [list(column) for column in zip(*rows, strict=True)],
            )
        else:
            values = ", ".join(["%s"] * len(columns))
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({values})", rows)

    def raw_urls(self, text: str) -> float:

        from defectlab.transfer.landing import collector_paused

        project = self.fresh_project("raw import bench")
        started = perf()
        with collector_paused():  # as the product does
            self._raw_urls(project, text)
        return perf() - started

    def _raw_urls(self, project: Any, text: str) -> None:
        from django.db import transaction
        from django.utils import timezone

        items = json.loads(text)
        now = self.connection.ops.adapt_datetimefield_value(timezone.now())
        org, pid = project.organization_id, project.pk
        rows = [
            (org, pid, item["image"], item["image"].rsplit("/", 1)[-1], item["width"],
             item["height"], "new", False, False, now, now)
            for item in items
        ]  # fmt: skip
        with transaction.atomic(), self.connection.cursor() as cursor:
            self.raw_insert(cursor, "labeling_task", RAW_TASK_COLUMNS, RAW_TASK_TYPES, rows)
            cursor.execute(
                "UPDATE labeling_project SET count_new = count_new + %s WHERE id = %s",
                [len(rows), pid],
            )

    def raw_label_studio(self, text: str) -> float:
        from defectlab.labeling.models import Label
        from defectlab.transfer.landing import collector_paused

        project = self.fresh_project("raw import bench")
        for name in ("dent", "crack"):
            Label.objects.create(
                organization_id=project.organization_id, project=project, name=name
            )
        labels = dict(Label.objects.filter(project=project).values_list("name", "id"))
        started = perf()
        with collector_paused():  # as the product does
            self._raw_label_studio(project, labels, text)
        return perf() - started

    def _raw_label_studio(self, project: Any, labels: dict[str, int], text: str) -> None:
        from django.db import transaction
        from django.utils import timezone

        ops = self.connection.ops
        rows = raw_label_studio_rows(json.loads(text), labels)
        now = ops.adapt_datetimefield_value(timezone.now())
        org, pid = project.organization_id, project.pk
        empty = ops.adapt_json_value([], None)
        insert = self.raw_insert
        with transaction.atomic(), self.connection.cursor() as cursor:
            cursor.execute("SELECT COALESCE(MAX(id), 0) FROM labeling_task")
            task = cursor.fetchone()[0] + 1
            cursor.execute("SELECT COALESCE(MAX(id), 0) FROM labeling_annotation")
            annotation = cursor.fetchone()[0] + 1
            insert(
                cursor, "labeling_task", ("id", *RAW_TASK_COLUMNS), "bigint " + RAW_TASK_TYPES,
                [(task + n, org, pid, row[0], row[1], row[2], row[3], "submitted", True, True,
                  now, now) for n, row in enumerate(rows)],
            )  # fmt: skip
            stored = [
                (ops.adapt_json_value(r[4], None), ops.adapt_json_value(r[5], None)) for r in rows
            ]
            insert(
                cursor, "labeling_annotation",
                ("id", "organization_id", "task_id", "version", "shapes", "tags", "lead_time",
                 "created_at", "updated_at"),
                "bigint bigint bigint integer jsonb jsonb float8 timestamptz timestamptz",
                [(annotation + n, org, task + n, 1, shapes, tags, 0.0, now, now)
                 for n, (shapes, tags) in enumerate(stored)],
            )  # fmt: skip
            insert(
                cursor, "labeling_annotationversion",
                ("organization_id", "annotation_id", "version", "shapes", "tags", "lead_time",
                 "proposal_fates", "created_at"),
                "bigint bigint integer jsonb jsonb float8 jsonb timestamptz",
                [(org, annotation + n, 1, shapes, tags, 0.0, empty, now)
                 for n, (shapes, tags) in enumerate(stored)],
            )  # fmt: skip
            insert(
                cursor, "labeling_tasklabel", ("task_id", "label_id"), "bigint bigint",
                [(task + n, label) for n, row in enumerate(rows)
                 for label in sorted({shape["label"] for shape in row[4]})],
            )  # fmt: skip
            insert(
                cursor, "labeling_prediction",
                ("organization_id", "task_id", "model_name", "model_version", "source",
                 "shapes", "created_at"),
                "bigint bigint text text text jsonb timestamptz",
                [(org, task + n, "import", "labelstudio", "", ops.adapt_json_value(row[6], None),
                  now) for n, row in enumerate(rows)],
            )  # fmt: skip
            cursor.execute(
                "UPDATE labeling_project SET count_submitted = count_submitted + %s WHERE id = %s",
                [len(rows), pid],
            )

    def case(self, key: str, title: str, text: str, number: int, raw: Any) -> None:
        product_s = min(self.product(text) for _ in range(IMPORT_RUNS))
        raw_s = min(raw(text) for _ in range(IMPORT_RUNS))
        aim = IMPORT_AIMS[key]
        met = product_s <= aim
        vendor = self.connection.vendor
        faster = labelstudio_times.times_faster(vendor, key, product_s)
        self.results.append(
            {
                "case": key,
                "tasks": number,
                "product_s": round(product_s, 3),
                "raw_s": round(raw_s, 3),
                "product_over_raw": round(product_s / raw_s, 2),
                "aim_s": aim,
                "met": met,
                "label_studio_remeasured_s": labelstudio_times.REMEASURED[vendor][key],
                "times_faster_than_label_studio": round(faster, 2),
                "raw_times_faster_than_label_studio": round(
                    labelstudio_times.times_faster(vendor, key, raw_s), 2
                ),
            }
        )
        print(
            f"  {title:<36}{product_s:>9.2f} s{raw_s:>9.2f} s{product_s / raw_s:>10.1f}×"
            f"{'≤ ' + format(aim, '.2f') + ' s':>12}  {'met' if met else 'MISSED':<8}"
            f"{labelstudio_times.REMEASURED[vendor][key]:>9.2f} s{faster:>8.1f}×",
            flush=True,
        )

    def run(self) -> list[dict[str, Any]]:
        print(
            f"\nBulk import: POST /api/projects/{{id}}/import/ through django.test.Client, best of "
            f"{IMPORT_RUNS}, beside raw SQL (json.loads + all rows at once per table) in the same run"
        )
        print(
            f"  {'case':<36}{'product':>11}{'raw SQL':>11}{'÷ raw':>11}{'aim':>12}  {'':<8}"
            f"{'Label Studio':>11}{'faster':>9}"
        )
        urls = self.bench.references(0, IMPORT_URLS)
        self.case("urls", f"{count(IMPORT_URLS)} tasks by URL", urls, IMPORT_URLS, self.raw_urls)
        del urls
        gc.collect()
        text = label_studio_tasks(IMPORT_LABEL_STUDIO)
        title = f"{count(IMPORT_LABEL_STUDIO)} Label Studio tasks, annotated"
        self.case("label_studio", title, text, IMPORT_LABEL_STUDIO, self.raw_label_studio)
        print(
            "  aims: Label Studio's 14.0 s / 13.8 s (issue 10, SQLite) ÷ 10; the raw SQL "
            "reference checks nothing\n"
            f"  Label Studio: 1.23.2 re-measured on {labelstudio_times.REMEASURED_ON} on this "
            f"database ({self.connection.vendor}), best of 3; faster = its time ÷ the product's "
            "(bench/labelstudio_times.py)"
        )
        return self.results


if __name__ == "__main__":
    sys.exit(main())
