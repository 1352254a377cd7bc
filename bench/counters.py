"""What keeping the statistics tally costs the paths people use: a first save, a resave, a submit,
a review and a bulk assignment, each timed with the tally kept and, as the reference in the same
run, with the tally's upkeep switched off (``counters.TallyChange.task``, ``add_tally`` and
``moving`` made no-ops; everything else those paths do is the same, the reads of the task's
labels and tags too).

    .venv/bin/python bench/counters.py                          # SQLite
    .venv/bin/python bench/counters.py --database-url postgresql://root@127.0.0.1:5432/bench_counters

One project with 5 classes and 2 tags; each operation runs ``--runs`` times with and without the
tally, interleaved (so load on the machine falls on both alike), each on a task of its own.
Printed: p50 and p95 of both, and kept ÷ off of the p50s. A report: nothing fails on a slow
figure. A throwaway data directory and (PostgreSQL) a throwaway database named ``bench…``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics as stats
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from benchdb import throwaway_installation, url_problem

perf = time.perf_counter


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="runs of each operation")
    parser.add_argument(
        "--database-url", default="", help="postgresql://…/bench_… (default SQLite)"
    )
    args = parser.parse_args(argv)
    if args.database_url and (problem := url_problem(args.database_url)):
        parser.error(problem)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with throwaway_installation(args.database_url):
        return run(args)


@contextlib.contextmanager
def tally_off() -> Iterator[None]:
    """The tally's upkeep as no-ops, wherever the paths hold a reference to it."""
    from defectlab.labeling import counters, services, tasks, workflow

    saved: list[tuple[Any, str, Any]] = []

    def swap(owner: Any, name: str, value: Any) -> None:
        saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    swap(counters.TallyChange, "task", lambda self, *args, **kwargs: None)
    for module in (counters, services, tasks, workflow):
        if hasattr(module, "add_tally"):
            swap(module, "add_tally", lambda *args, **kwargs: None)
    swap(services, "moving", lambda *args, **kwargs: contextlib.nullcontext())
    try:
        yield
    finally:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)


def run(args: argparse.Namespace) -> int:
    from django.core.management import call_command
    from django.db import connection

    from defectlab.labeling import services, workflow
    from defectlab.labeling.models import Annotation, Task
    from defectlab.labeling.tasks import NewTask, add_tasks
    from defectlab.tenancy.models import Membership, User
    from defectlab.tenancy.roles import Role
    from defectlab.tenancy.services import create_organization

    call_command("migrate", verbosity=0, interactive=False)
    manager = User.objects.create_user("manager@example.com", name="Manager")
    organization = create_organization("Bench plant", manager)
    annotator = User.objects.create_user("annotator@example.com", name="Annotator")
    reviewer = User.objects.create_user("reviewer@example.com", name="Reviewer")
    Membership.objects.create(organization=organization, user=annotator, role=Role.ANNOTATOR)
    Membership.objects.create(organization=organization, user=reviewer, role=Role.REVIEWER)
    project = services.create_project(
        organization, manager, name="Line", tags=["OK", "NG"],
        labels=[{"name": name} for name in ("scratch", "dent", "stain", "crack", "burr")],
    )  # fmt: skip
    labels = list(project.labels.order_by("id").values_list("id", flat=True))
    runs = args.runs
    rows = [
        NewTask(f"https://cam.example/{i}.jpg", f"{i}.jpg", 2448, 2048) for i in range(4 * runs)
    ]
    add_tasks(project, rows, returning=False)
    tasks = list(Task.objects.filter(project=project).order_by("id"))

    def shapes(seed: int) -> list[dict[str, Any]]:
        return [
            {"type": "box", "points": [[10 + seed, 10], [60 + seed, 40 + k * 10]],
             "label": labels[(seed + k) % len(labels)], "attributes": {}}
            for k in range(2)
        ]  # fmt: skip

    def version(task: Any) -> int | None:
        return Annotation.objects.filter(task=task).values_list("version", flat=True).first()

    def first_save(task: Any, i: int) -> None:
        workflow.save_annotation(
            task, annotator, base_version=None, shapes=shapes(i), tags=["NG"], lead_time=3.0
        )

    def resave(task: Any, i: int) -> None:
        workflow.save_annotation(
            task, annotator, base_version=version(task), shapes=shapes(i + 1), tags=["OK"]
        )

    def submit(task: Any, i: int) -> None:
        workflow.save_annotation(
            task, annotator, base_version=version(task), shapes=shapes(i + 2), submit=True
        )

    def review(task: Any, i: int) -> None:
        verdict = "approve" if i % 2 else "reject"
        workflow.review(task, reviewer, verdict=verdict, comment="fix the edge")

    operations: list[tuple[str, Callable[[Any, int], None]]] = [
        ("first save", first_save), ("resave", resave), ("submit", submit), ("review", review),
    ]  # fmt: skip
    print(f"{connection.vendor}, {sys.version.split()[0]}; runs: {runs} each way (ms)")
    print(f"{'operation':<22} {'kept p50':>9} {'kept p95':>9} {'off p50':>8} {'off p95':>8} "
          f"{'kept/off':>8}")  # fmt: skip
    # Each task goes through every operation in turn; even tasks with the tally, odd without.
    for name, operation in operations:
        kept, off = [], []
        for i, task in enumerate(tasks[: 2 * runs]):
            with contextlib.nullcontext() if i % 2 == 0 else tally_off():
                started = perf()
                operation(task, i)
                (kept if i % 2 == 0 else off).append(perf() - started)
        report(name, kept, off)
    spare = tasks[2 * runs :]
    kept, off = [], []
    for i in range(runs):
        chosen = [task.pk for task in spare[(i * 25) % len(spare) :][:25]]
        person = (annotator.pk, manager.pk, None)[i % 3]
        with contextlib.nullcontext() if i % 2 == 0 else tally_off():
            started = perf()
            services.assign_tasks(project, chosen, person)
            (kept if i % 2 == 0 else off).append(perf() - started)
    report("assign 25 tasks", kept, off)
    return 0


def report(name: str, kept: list[float], off: list[float]) -> None:
    ratio = stats.median(kept) / stats.median(off)
    print(f"{name:<22} {ms(stats.median(kept)):>9} {ms(p95(kept)):>9} "
          f"{ms(stats.median(off)):>8} {ms(p95(off)):>8} {ratio:>7.2f}×", flush=True)  # fmt: skip


def p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


if __name__ == "__main__":
    sys.exit(main())
