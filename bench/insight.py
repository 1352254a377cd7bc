"""Statistics benchmark: the project statistics page's queries at 100k and 1M tasks, each beside
the same SQL run raw.

    .venv/bin/python bench/insight.py                       # SQLite, 100k and 1M tasks
    .venv/bin/python bench/insight.py --sizes 100000         # one size
    .venv/bin/python bench/insight.py --database-url postgresql://root@127.0.0.1:5432/bench_insight

A project of each size is built by bulk SQL (not measured): ~60 % of tasks annotated with 1–3
shapes over 5 classes (label index rows with their shape and size counters), an OK / NG tag on
each annotated task, statuses new 40 %, in progress 10 %, submitted 15 %, approved 30 %,
rejected 5 %, half of them predicted, assigned round the 7 people; and 90 days of activity of 7
people on every class; the tally (every slice) is then counted as ``defectlab recount-statistics``
does, timed. Then, for no filter and a few filters of the task table, each statistics
query (``insight.statistics.queries``) is run through our code (the query built — a
queryset compiled, for the parts that sum per-task counters — and run as the page does) and as
its SQL on the DB-API cursor (``fetchall``),
``--runs`` times each; printed: p50 and p95 of both and the ratio ours / raw (of the p50s).
``page`` is the whole ``statistics()`` call (every part and its dataclasses), informational.
Aims: ours within 1.5× of raw, p95 under 200 ms at 1M tasks on PostgreSQL. A report: nothing
fails on a slow figure. Runs in a throwaway data directory and (PostgreSQL) a throwaway database
whose name must start with ``bench``.
"""

from __future__ import annotations

import argparse
import statistics as stats
import sys
import time
from datetime import timedelta
from typing import Any

from benchdb import throwaway_installation, url_problem

perf = time.perf_counter
PEOPLE = 7
CLASSES = 5
DAYS = 90


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="tasks per project, in order")
    parser.add_argument("--runs", type=int, default=30, help="runs of each query (default 30)")
    parser.add_argument(
        "--database-url", default="", help="postgresql://…/bench_… (default SQLite)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the data and database")
    args = parser.parse_args(argv)
    args.sizes = [int(size) for size in args.sizes.split(",") if size]
    if args.database_url and (problem := url_problem(args.database_url)):
        parser.error(problem)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with throwaway_installation(args.database_url, keep=args.keep):
        return run(args)


def run(args: argparse.Namespace) -> int:
    from django.core.management import call_command
    from django.db import connection

    from defectlab.tenancy.models import User
    from defectlab.tenancy.services import create_organization

    call_command("migrate", verbosity=0, interactive=False)
    owner = User.objects.create_user("bench-owner@example.com", name="Bench owner")
    organization = create_organization("Bench plant", owner)
    people = [
        User.objects.create_user(f"person{index}@example.com", name=f"Person {index}")
        for index in range(PEOPLE)
    ]
    print(f"{connection.vendor}, {sys.version.split()[0]}; runs per query: {args.runs}")
    print(f"{'size':>9} {'filter':<14} {'query':<22} {'raw p50':>8} {'raw p95':>8} "
          f"{'ours p50':>9} {'ours p95':>9} {'ours/raw':>8}")  # fmt: skip
    for size in args.sizes:
        started = perf()
        project = build(organization, owner, people, size)
        print(f"  built {size:,} tasks in {perf() - started:.1f} s", flush=True)
        measure(project, people, size, args.runs)
    return 0


# ---------------------------------------------------------------------------- data


def build(organization: Any, owner: Any, people: list[Any], size: int) -> Any:
    """A project of ``size`` tasks with counters and activity, by bulk SQL."""
    from django.db import connection, transaction
    from django.utils import timezone

    from defectlab.labeling import services
    from defectlab.labeling.counters import SIZE_FIELDS, rebuild_tally
    from defectlab.labeling.models import Activity

    project = services.create_project(
        organization, owner, name=f"Line {size}", tags=["OK", "NG"],
        labels=[{"name": name} for name in ("scratch", "dent", "stain", "crack", "burr")],
    )  # fmt: skip
    labels = list(project.labels.order_by("id").values_list("id", flat=True))
    first_label, first_person = labels[0], people[0].pk
    assert labels == list(range(first_label, first_label + CLASSES))
    assert [p.pk for p in people] == list(range(first_person, first_person + PEOPLE))
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    org, pid = organization.pk, project.pk
    status = (
        "CASE WHEN i %% 20 < 8 THEN 'new' WHEN i %% 20 < 10 THEN 'in_progress' "
        "WHEN i %% 20 < 13 THEN 'submitted' WHEN i %% 20 < 19 THEN 'approved' ELSE 'rejected' END"
    )
    annotated = "(i %% 20 >= 8)"
    sizes = ", ".join(
        f"CASE WHEN (id * 7) %% 12 = {index} THEN s ELSE 0 END" for index in range(len(SIZE_FIELDS))
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM labeling_task")
        base = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO labeling_task (id, organization_id, project_id, image, file_name, width, "
            "height, status, assignee_id, submitted_by_id, has_annotation, has_prediction, "
            "shape_count, created_at, updated_at) "
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %s) "
            f"SELECT %s + i, %s, %s, 'https://cam.example/' || i || '.jpg', i || '.jpg', 2448, "
            f"2048, {status}, %s + i %% {PEOPLE}, CASE WHEN {annotated} THEN %s + (i + 1) %% "
            f"{PEOPLE} END, {annotated}, i %% 2 = 0, CASE WHEN {annotated} THEN 1 + (i / 20) %% 3 "
            "ELSE 0 END, %s, %s FROM s",
            [size, base, org, pid, first_person, first_person, now, now],
        )
        columns = "task_id, label_id, shapes, " + ", ".join(SIZE_FIELDS) + ", size_unknown"
        for second in (False, True):
            shapes = "1" if second else "CASE WHEN shape_count = 3 THEN 2 ELSE 1 END"
            offset = 1 if second else 0
            cursor.execute(
                f"INSERT INTO labeling_tasklabel ({columns}) SELECT id, l, s, {sizes}, 0 FROM "
                f"(SELECT id, %s + (id + {offset}) %% {CLASSES} AS l, {shapes} AS s FROM "
                "labeling_task WHERE project_id = %s AND shape_count >= %s) AS t",
                [first_label, pid, 2 if second else 1],
            )
        cursor.execute(
            "INSERT INTO labeling_tasktag (task_id, project_id, name) SELECT id, project_id, "
            "CASE WHEN id %% 4 = 0 THEN 'NG' ELSE 'OK' END FROM labeling_task "
            "WHERE project_id = %s AND has_annotation",
            [pid],
        )
        services.recount(project)
    started = perf()
    rebuild_tally(project.pk)  # what `defectlab recount-statistics` ends with
    print(f"  tally counted in {perf() - started:.1f} s (every slice)", flush=True)
    today = timezone.now().date()
    Activity.objects.bulk_create(
        Activity(
            organization_id=org, project_id=pid, day=today - timedelta(days=day),
            person_id=person.pk, label_id=label, submitted=(day + n) % 40 + 5,
            approved=(day * n) % 30 + 2, rejected=(day + 2 * n) % 5, reviews=(day + n) % 35,
            lead_time=float((day + n) % 40 * 31),
        )
        for day in range(DAYS)
        for n, person in enumerate(people)
        for label in (None, *labels)
    )  # fmt: skip
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for table in ("task", "tasklabel", "tasktag", "activity"):
                cursor.execute(f"VACUUM ANALYZE labeling_{table}")
    project.refresh_from_db()
    return project


# ---------------------------------------------------------------------------- measure


def measure(project: Any, people: list[Any], size: int, runs: int) -> None:
    from django.db import connection

    from defectlab.insight import statistics
    from defectlab.labeling.tasklist import TaskFilter

    label = project.labels.order_by("id").first().pk
    filters = {
        "none": TaskFilter(),
        "approved": TaskFilter(statuses=["approved"]),
        "class": TaskFilter(label=label),
        "person": TaskFilter(assignee=people[1].pk),
        "class+person": TaskFilter(label=label, assignee=people[1].pk, statuses=["approved"]),
        "person+pred": TaskFilter(assignee=people[1].pk, has_prediction=True),
    }
    for name, task_filter in filters.items():
        chosen = statistics.StatisticsFilter(task_filter, *_span())
        for part, (sql, params) in statistics.queries(project, chosen).items():

            def raw(sql: str = sql, params: Any = params) -> None:
                with connection.cursor() as cursor:
                    cursor.execute(sql, params)
                    cursor.fetchall()

            def ours(part: str = part, chosen: Any = chosen) -> None:
                statistics.fetch(statistics.queries(project, chosen, [part])[part])

            raw_times, our_times = timed(raw, runs), timed(ours, runs)
            row(size, name, part, raw_times, our_times)
        page = timed(lambda chosen=chosen: statistics.statistics(project, chosen), runs)
        print(f"{size:>9,} {name:<14} {'page (all parts)':<22} {'':>8} {'':>8} "
              f"{ms(stats.median(page)):>9} {ms(p95(page)):>9}", flush=True)  # fmt: skip


def _span() -> tuple[Any, Any]:
    from django.utils import timezone

    today = timezone.now().date()
    return today - timedelta(days=DAYS - 1), today


def timed(function: Any, runs: int) -> list[float]:
    function()  # warm
    times = []
    for _ in range(runs):
        started = perf()
        function()
        times.append(perf() - started)
    return times


def p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def row(size: int, name: str, part: str, raw: list[float], ours: list[float]) -> None:
    ratio = stats.median(ours) / stats.median(raw) if stats.median(raw) else float("nan")
    print(f"{size:>9,} {name:<14} {part:<22} {ms(stats.median(raw)):>8} {ms(p95(raw)):>8} "
          f"{ms(stats.median(ours)):>9} {ms(p95(ours)):>9} {ratio:>7.2f}×", flush=True)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
