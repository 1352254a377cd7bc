"""How fast "next" is in each queue order: ``workflow.next_task`` and ``next_review`` on a project
of many tasks, most with a prediction (top score and disagreement set), in age, uncertainty and
disagreement order — with the plan of the first candidate query of each (open work, review).

    .venv/bin/python bench/queues.py                                   # SQLite, 100k tasks
    .venv/bin/python bench/queues.py --tasks 1000000 --database-url postgresql://…/bench_queues

Each call is one person asking for the next task (a new person each time, so nobody holds one
yet: the whole line is read), then giving it back. The work is bunched as it is in practice: the
first 60 % of tasks are done (approved or submitted), the rest open, so the open ones by id
start deep in the project. A report: nothing fails on a slow figure. A throwaway data directory
(and, on PostgreSQL, a throwaway database whose name must start with ``bench``).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchdb import throwaway_installation, url_problem

perf = time.perf_counter


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=30, help="calls per order and queue")
    parser.add_argument(
        "--database-url", default="", help="postgresql://…/bench_… (default SQLite)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    args = parser.parse_args(argv)
    if args.database_url and (problem := url_problem(args.database_url)):
        parser.error(problem)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with throwaway_installation(args.database_url, keep=args.keep):
        run(args)
        return 0


def load(size: int) -> Any:
    """A project of ``size`` tasks: the first 60 % done, 80 % of all with a prediction."""
    from django.core.management import call_command
    from django.db import connection

    from defectlab.labeling import queues, services
    from defectlab.labeling.models import Task, TaskStatus
    from defectlab.labeling.tasks import NewTask, insert_tasks
    from defectlab.tenancy.models import User
    from defectlab.tenancy.services import create_organization

    call_command("migrate", verbosity=0, interactive=False)
    owner = User.objects.create_user("bench-owner@example.com", name="Bench owner")
    organization = create_organization("Bench plant", owner)
    project = services.create_project(organization, owner, name="queues", labels=[{"name": "a"}])
    chance = random.Random(14)
    done = int(size * 0.6)
    started = perf()
    for start in range(0, size, 50_000):
        rows = [
            NewTask(
                image=f"https://cam.example/{index}.jpg",
                file_name=f"{index}.jpg",
                status=(TaskStatus.APPROVED if index % 3 else TaskStatus.SUBMITTED)
                if index < done
                else TaskStatus.NEW,
                has_prediction=chance.random() < 0.8,
            )
            for index in range(start, min(size, start + 50_000))
        ]
        ids = insert_tasks(project, rows)
        queues.write(
            {
                task_id: (round(chance.random(), 4), round(chance.random(), 4))
                for task_id, row in zip(ids, rows, strict=True)
                if row.has_prediction
            }
        )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE labeling_task")
    print(f"Loaded {size:,} tasks in {perf() - started:.1f} s ({connection.vendor}).")
    assert Task.objects.filter(project=project).count() == size
    return project


def plan(queryset: Any) -> list[str]:
    from django.db import connection

    sql, params = queryset.values_list("id", flat=True)[:10].query.sql_with_params()
    prefix = "EXPLAIN " if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN "
    with connection.cursor() as cursor:
        cursor.execute(prefix + sql, params)
        return [str(row[-1]) for row in cursor.fetchall()]


def run(args: argparse.Namespace) -> None:
    from defectlab.labeling import queues, workflow
    from defectlab.labeling.models import QueueOrder, Task
    from defectlab.tenancy.models import Membership, Role, User

    project = load(args.tasks)
    people = []
    for index in range(args.calls):
        user = User.objects.create_user(f"p{index}@example.com", name=f"p{index}")
        Membership.objects.create(organization=project.organization, user=user, role=Role.REVIEWER)
        people.append(user)
    print(f"\n{'order':<14}{'queue':<8}{'p50 ms':>9}{'p95 ms':>9}")
    for order in QueueOrder.values:
        project.queue_order = order
        project.save(update_fields=["queue_order"])
        for name, ask in (("task", workflow.next_task), ("review", workflow.next_review)):
            times = []
            for user in people:
                started = perf()
                task = ask(project, user)
                times.append((perf() - started) * 1000)
                assert task is not None
                workflow.release(task, user)
                Task.objects.filter(pk=task.pk).update(status=task.status)
            times.sort()
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            print(f"{order:<14}{name:<8}{statistics.median(times):>9.2f}{p95:>9.2f}")
        open_tasks = queues.open_work(
            Task.objects.filter(project_id=project.pk, assignee__isnull=True)
        )
        first = queues.parts(open_tasks, order)[0]
        print("  plan:", " | ".join(line.strip() for line in plan(first)))
        review = queues.in_review(Task.objects.filter(project_id=project.pk))
        first = queues.parts(review.exclude(submitted_by=people[0]), order)[0]
        print("  review plan:", " | ".join(line.strip() for line in plan(first)))


if __name__ == "__main__":
    raise SystemExit(main())
