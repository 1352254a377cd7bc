"""Pre-annotation benchmark: tasks/s of a pre-annotation job with the demo model beside the
engine's own images/s on the same images, in the same run (issue 11: the job's overhead, aim
≤ 15 %).

    .venv/bin/python bench/preannotate.py                 # make bench-preannotate (~2 minutes)
    .venv/bin/python bench/preannotate.py --tasks 200     # a smoke run
    .venv/bin/python bench/preannotate.py --database-url postgresql://root@127.0.0.1:5432/bench_pre

What is measured (see bench/README.md):

* the data: a project of the demo's three classes and ``--tasks`` uploaded tasks, synthetic
  640×480 panels (JPEG, quality 90) drawn from a pool of distinct images, each task its own
  stored file; the committed demo model (`defectlab.inference.demo`) uploaded as a version and
  checked in the sandbox, as `defectlab demo` does;
* the product: the job, started by ``start_preannotation`` and run by the job runner in this
  process (``run_job``, as a worker runs it): the tasks read in parts, each image read from
  storage, detected, its detections mapped to the project's labels, the part's predictions and
  the job's checkpoint committed;
* the reference: the engine alone — the same version's detector (``load_detector``, so the
  same thresholds and threads) on the same images' bytes, already in memory, one after another,
  by the same engine call the job makes;
* rounds alternate reference and product; the first product round inserts the predictions,
  later ones replace them (the same version run again). The overhead is one minus the median
  of each round's job rate ÷ the engine rate measured just before it.

It is a report: nothing here fails on a slow figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

from benchdb import throwaway_installation, url_problem  # bench/, beside this file

perf = time.perf_counter
OVERHEAD_AIM = 0.15
POOL = 60


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/preannotate.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--tasks", type=int, default=1000, help="tasks to pre-annotate (1000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each (5)")
    parser.add_argument("--database-url", default="", help="PostgreSQL URL (default: SQLite)")
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.rounds < 1:
        parser.error("--tasks and --rounds must be at least 1")
    if args.database_url and (problem := url_problem(args.database_url)):
        parser.error(problem)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with throwaway_installation(args.database_url):
        return run(args)


def build(tasks: int) -> tuple[Any, Any, Any, list[bytes]]:
    """The project, its owner, the demo model's ready version, and each task's image bytes."""
    import dataclasses

    from django.core.management import call_command

    from defectlab.inference import registry
    from defectlab.inference.demo import model_bytes
    from defectlab.ingest.uploads import checked_image
    from defectlab.jobs.runner import run_job
    from defectlab.labeling import services
    from defectlab.synthetic import defect_images
    from defectlab.tenancy.models import User
    from defectlab.tenancy.services import create_organization

    call_command("migrate", verbosity=0, interactive=False)
    owner = User.objects.create_user("bench-owner@example.com", name="Bench owner")
    organization = create_organization("Bench plant", owner)
    project = services.create_project(
        organization,
        owner,
        name="Panels",
        shape_types=["box", "polygon"],
        labels=[{"name": "scratch"}, {"name": "dent"}, {"name": "stain"}],
    )
    pool = [checked_image(name, data) for name, data, _ in defect_images(POOL, seed=700_000)]
    images = [
        dataclasses.replace(pool[index % POOL], name=f"panel-{index:05d}.jpg")
        for index in range(tasks)
    ]
    for first in range(0, tasks, 200):
        services.create_uploaded_tasks(project, images[first : first + 200])
    model = registry.create_model(organization, owner, name="Demo detector")
    version = registry.upload_version(model, owner, model_bytes(), file_name="demo.onnx")
    run_job(version.job_id)  # the sandbox check, here
    version.refresh_from_db()
    assert version.state == "ready", version.error
    return project, owner, version, [image.data for image in images]


def engine_round(detector: Any, images: list[bytes]) -> float:
    """Images/s of the engine alone on bytes in memory, by the call the job makes."""
    started = perf()
    for found in detector.detect_stream(images):
        found.shapes()
    return len(images) / (perf() - started)


def job_round(project: Any, owner: Any, version: Any) -> tuple[float, dict[str, Any]]:
    """Tasks/s of a whole pre-annotation job, run here as a worker runs it."""
    from django.db import transaction

    from defectlab.inference import preannotation
    from defectlab.jobs.models import Job
    from defectlab.jobs.runner import run_job

    started = perf()
    with transaction.atomic():
        job = preannotation.start_preannotation(
            project, owner, model=version.model, version=version.number
        )
    run_job(job.pk)
    elapsed = perf() - started
    job = Job.objects.get(pk=job.pk)
    assert job.state == "succeeded", job.error
    return job.result["tasks"] / elapsed, job.result


def run(args: argparse.Namespace) -> int:
    from defectlab.inference.registry import load_detector

    print(f"Building {args.tasks} tasks and the demo model's version…", flush=True)
    started = perf()
    project, owner, version, images = build(args.tasks)
    print(f"  done in {perf() - started:.0f} s; load {os.getloadavg()[0]:.2f}", flush=True)
    detector = load_detector(version)
    engine_round(detector, images[:20])  # warm-up
    engine: list[float] = []
    jobs: list[float] = []
    for index in range(args.rounds):
        engine.append(engine_round(detector, images))
        rate, result = job_round(project, owner, version)
        jobs.append(rate)
        what = "inserts" if index == 0 else "replaces"
        print(
            f"  round {index + 1}: engine {engine[-1]:.1f} images/s, job {rate:.1f} tasks/s "
            f"({what}; {result['shapes']} shapes on {result['predictions']} tasks)",
            flush=True,
        )
    engine_rate, job_rate = statistics.median(engine), statistics.median(jobs)
    # Each round's job beside the engine measured just before it: the machine's drift
    # (other processes, CPU frequency) touches both sides of a ratio alike.
    ratios = sorted(job / ref for job, ref in zip(jobs, engine, strict=True))
    overhead = 1 - statistics.median(ratios)
    verdict = "met" if overhead <= OVERHEAD_AIM else "missed"
    database = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"\nPre-annotating {args.tasks} tasks ({database}): job {job_rate:.1f} tasks/s, engine "
        f"{engine_rate:.1f} images/s (medians of {args.rounds} rounds). Job ÷ engine per round "
        f"{', '.join(f'{ratio:.2f}' for ratio in ratios)}: the job's overhead {overhead:.1%} "
        f"(median); aim ≤ {OVERHEAD_AIM:.0%}: {verdict}. Load {os.getloadavg()[0]:.2f}."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
