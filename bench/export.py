"""Export benchmark: a project's images into a dataset zip, beside plain ``zipfile`` on the same files,
and the Label Studio JSON export (no images) beside plain SQL + ``json.dumps`` + ``zipfile``.

    .venv/bin/python bench/export.py                      # 1k and 10k tasks, YOLO (make bench-export)
    .venv/bin/python bench/export.py --aims               # only the aims: 10k, a few minutes
    .venv/bin/python bench/export.py --aims --database-url postgresql://root@127.0.0.1:5432/bench_export
    .venv/bin/python bench/export.py --sizes 1000 --repeat 1      # a smoke run
    .venv/bin/python bench/export.py --format coco --json bench/out/export-coco.json

What is measured (see bench/README.md):

* the product: a Job row of kind ``export`` run by ``jobs.runner.run_job`` (what a worker does with
  the job's id), which calls ``transfer.exports.run_export``: tasks read from the database 500 at a
  time, each image copied into the zip, label files written, the archive put in storage (however
  ``run_export`` does that today; time spent in ``os.fsync`` is counted and shown apart);
* the reference: ``zipfile.ZipFile(path, "w", ZIP_STORED)`` and ``zf.write(file, arcname)`` for the
  same image files under the same member names, to a file on the same disk. What an ``fsync`` of
  that file then takes is shown beside it, for information.

The Label Studio JSON row at each size: the same export job with ``format=labelstudio`` and
``include_images=false`` (Label Studio's own JSON export carries no images; the job's default is
true), beside ``json_reference``: one SQL query through the DB-API cursor for the same rows,
``json.dumps`` of each task, one deflated ``tasks.json`` member. Its aim at 10k tasks is
Label Studio's 14.8 s ÷ 10 (issue 10).

Both read the images from the page cache (the parent reads them all once first), and an untimed
reference run comes first at each size. The timed runs of the two sides take turns and the best
of ``--repeat`` is shown. Rate is image bytes (10^6 a MB) over wall time. Peak memory is measured two ways, each in a fresh
process per run, so that every run starts from the same state: tracemalloc's peak (Python
allocations, in a separate run, since tracing slows the code) and the growth of the resident set's
high-water mark (VmHWM, reset through /proc/self/clear_refs before the timed part, in the timed
run). The parent process builds the data and orchestrates; each child measures one run and prints
one JSON line.

It is a report: nothing here fails on a slow figure. Everything runs in a throwaway data
directory that is removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import hashlib
import json
import math
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import labelstudio_times  # bench/, beside this file
from benchdb import recreate_database, url_problem

perf = time.perf_counter
MB = 1_000_000
POOL = 48  # distinct JPEGs; each task gets its own file holding the bytes of one of them
# Camera-like frames of 1.2 to 1.8 megapixels; JPEG quality 90 makes them about 210 to 430 KB.
FRAME_SIZES = ((1280, 960), (1536, 1152), (1280, 1024), (1440, 1080))
LABELS = (
    {"name": "scratch", "color": "#e53935", "hotkey": "1"},
    {"name": "dent", "color": "#1e88e5", "hotkey": "2"},
    {"name": "stain", "color": "#fdd835", "hotkey": "3"},
)
RATE_AIM = 0.7  # export MB/s ÷ zipfile MB/s
# Label Studio 1.23.2 exported 10k tasks as JSON in 14.8 s (issue 10, bench/labelstudio_times.py);
# the aim is ten times faster, as the export job runs it (without images: Label Studio's JSON has
# none).
LABEL_STUDIO_SECONDS = labelstudio_times.ISSUE["export_json"]
JSON_AIM_SIZE = 10_000
JSON_AIM_SECONDS = LABEL_STUDIO_SECONDS / 10
FLAT_AIM = 1.5  # peak memory at the largest size ÷ at the smallest


# ---------------------------------------------------------------------------- options


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/export.py",
        description="Export rate (MB/s) beside plain zipfile, and the export's peak memory.",
    )
    parser.add_argument(
        "--sizes",
        default="1000,10000",
        help="project sizes (tasks, one image each), comma-separated (default %(default)s)",
    )
    parser.add_argument(
        "--format", default="yolo", help="export format: yolo (default), coco, or any other"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="timed runs of each side per size, taking turns; the best is shown (default 3)",
    )
    parser.add_argument(
        "--database-url",
        default="",
        help="PostgreSQL URL, e.g. postgresql://root@127.0.0.1:5432/bench_export; the database "
        "name must start with 'bench' (it is created, and dropped at the end unless --keep). "
        "Default: SQLite in the throwaway data directory.",
    )
    parser.add_argument(
        "--aims",
        action="store_true",
        help="only what the aims need, in a few minutes: 10k tasks, 2 turns of the YOLO runs, "
        "no tracemalloc runs",
    )
    parser.add_argument(
        "--json-repeat",
        type=int,
        default=3,
        help="timed runs of each side of the Label Studio JSON row per size (default 3)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run the largest export once under cProfile and print where the time goes",
    )
    parser.add_argument("--json", metavar="PATH", help="also write every number to PATH as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--child", metavar="SPEC", help=argparse.SUPPRESS)  # one measured run
    args = parser.parse_args(argv)
    if args.child:
        return args
    args.memory = not args.aims
    if args.aims:
        args.sizes = "10000"
        args.repeat = min(args.repeat, 2)
    try:
        args.sizes = sorted({int(size) for size in args.sizes.split(",") if size.strip()})
    except ValueError:
        parser.error("--sizes takes whole numbers, e.g. 1000,10000")
    if not args.sizes or args.sizes[0] < 10:
        parser.error("every size must be at least 10 tasks")
    if args.repeat < 1 or args.json_repeat < 1:
        parser.error("--repeat and --json-repeat must be at least 1")
    if args.database_url and (problem := url_problem(args.database_url)):
        parser.error(problem)
    return args


def over(large: float, small: float) -> float:
    """large ÷ small for figures printed to 0.1 MB: a smaller denominator counts as 0.1."""
    return large / max(small, 0.1)


def count(size: int) -> str:
    if size % 1000 == 0:
        return f"{size // 1000}k"
    return str(size)


# ---------------------------------------------------------------------------- memory


def status_kb(field: str) -> int:
    """A line of /proc/self/status, in KB (VmRSS: resident now, VmHWM: its high-water mark)."""
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def reset_peak() -> bool:
    """Set VmHWM back to the current VmRSS (Linux ≥ 4.0: `echo 5 > /proc/PID/clear_refs`)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return status_kb("VmHWM") <= status_kb("VmRSS") + 64


def source_state() -> dict[str, Any]:
    """Which code was measured: the commit, and whether the export path differs from it."""
    root = Path(__file__).resolve().parent.parent
    paths = [
        "src/defectlab/transfer/exports.py",
        "src/defectlab/datasets",
        "src/defectlab/geometry.py",
        "src/defectlab/media/storage.py",
        "src/defectlab/jobs/runner.py",
    ]

    def git(*command: str) -> str:
        done = subprocess.run(
            ["git", *command], cwd=root, capture_output=True, text=True, check=False
        )
        return done.stdout.rstrip()

    changed = git("status", "--porcelain", "--", *paths)
    digest = hashlib.sha256()
    for name in ("src/defectlab/transfer/exports.py", "src/defectlab/datasets/archive.py"):
        digest.update((root / name).read_bytes())
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip() or "unknown",
        "export_path_changed": [line[3:] for line in changed.splitlines()],
        # Tells two runs on the same commit apart when the export path had uncommitted changes.
        "exports_and_archive_sha256": digest.hexdigest()[:16],
    }


# ---------------------------------------------------------------------------- one measured run


def json_reference(project_id: int, output: Path) -> None:
    """The Label Studio JSON row's reference: the rows the export reads (the same tasks, the same
    annotation columns), read with one SQL query through the DB-API cursor, each task
    ``json.dumps``-ed as ``{"id", "data": {"image"}, "annotations": [{"result": <stored
    shapes>}]}`` and written as one deflated ``tasks.json`` member with ``zipfile``. No model
    instances, no conversion of the shapes: the least any JSON export of these rows does."""
    from django.db import connection

    from defectlab.labeling.models import Annotation, Task, TaskStatus

    query = (
        "SELECT t.id, t.image, t.width, t.height, a.shapes, a.tags"
        f" FROM {Task._meta.db_table} t"
        f" LEFT JOIN {Annotation._meta.db_table} a ON a.task_id = t.id"
        " WHERE t.project_id = %s AND t.status IN (%s, %s) ORDER BY t.id"
    )
    params = [project_id, TaskStatus.SUBMITTED.value, TaskStatus.APPROVED.value]
    encode = json.JSONEncoder(ensure_ascii=False).encode
    with (
        connection.cursor() as cursor,
        zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("tasks.json", "w") as member,
    ):
        cursor.execute(query, params)
        member.write(b"[")
        separator = b""
        while rows := cursor.fetchmany(2000):
            texts = []
            for task_id, image, width, height, shapes, tags in rows:
                # SQLite gives the JSON columns as text; psycopg may give them parsed.
                shapes = json.loads(shapes) if isinstance(shapes, str) else shapes or []
                tags = json.loads(tags) if isinstance(tags, str) else tags or []
                texts.append(
                    encode(
                        {
                            "id": task_id,
                            "data": {"image": image, "width": width, "height": height},
                            "annotations": [{"result": shapes, "tags": tags}],
                        }
                    )
                )
            member.write(separator + ",\n".join(texts).encode("utf-8"))
            separator = b",\n"
        member.write(b"]\n")


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Measure one run (product or reference) in this fresh process; returns its numbers."""
    import django

    django.setup()
    from django.conf import settings

    from defectlab.labeling.models import Task

    project_id = spec["project"]
    image_bytes = sum(
        size or 0
        for size in Task.objects.filter(project_id=project_id).values_list("size_bytes", flat=True)
    )
    if spec["side"] == "product":
        from defectlab.jobs.models import Job, JobState
        from defectlab.jobs.runner import run_job
        from defectlab.labeling.models import Project
        from defectlab.transfer.exports import KIND, clean_options, export_key

        project = Project.objects.get(pk=project_id)
        job = Job.objects.create(
            organization_id=project.organization_id,
            project=project,
            kind=KIND,
            params=clean_options(
                {"format": spec["format"], "include_images": spec.get("include_images", True)}
            ),
        )

        def work() -> None:
            run_job(job.pk)

    elif spec["side"] == "json-reference":
        output = Path(settings.DATA_DIR) / f"reference-json-{project_id}.zip"

        def work() -> None:
            json_reference(project_id, output)

    else:
        root = Path(settings.STORAGE_DIR)
        files = [
            (str(root / key), f"images/train/{name}")
            for key, name in Task.objects.filter(project_id=project_id)
            .order_by("id")
            .values_list("image", "file_name")
        ]
        output = Path(settings.DATA_DIR) / f"reference-{project_id}.zip"

        def work() -> None:
            with zipfile.ZipFile(output, "w", zipfile.ZIP_STORED) as archive:
                for path, arcname in files:
                    archive.write(path, arcname)

    # The product fsyncs its archive before renaming it into place; count that time apart
    # (a wrapper around os.fsync that only times the call).
    fsync_seconds = [0.0]
    real_fsync = os.fsync

    def timed_fsync(fd: Any) -> None:
        begun = perf()
        try:
            real_fsync(fd)
        finally:
            fsync_seconds[0] += perf() - begun

    os.fsync = timed_fsync
    profiler = None
    if spec.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
    gc.collect()
    peak_reset = reset_peak()
    rss_before = status_kb("VmRSS")
    hwm_before = status_kb("VmHWM")
    if spec.get("trace"):
        import tracemalloc

        tracemalloc.start()
    started, cpu_started = perf(), time.process_time()
    if profiler is not None:
        profiler.runcall(work)
    else:
        work()
    seconds = perf() - started
    cpu_seconds = time.process_time() - cpu_started
    os.fsync = real_fsync
    if spec["side"] != "product":
        # Not part of its time: what flushing the reference's archive to disk would add, for
        # comparison with the product, which does flush (an information column).
        begun = perf()
        handle = os.open(output, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
        fsync_seconds[0] = perf() - begun
    result: dict[str, Any] = {
        "side": spec["side"],
        "size": spec["size"],
        "seconds": seconds,
        # This process's CPU time in it: less moved than wall time by other work on the machine.
        "cpu_seconds": cpu_seconds,
        "fsync_seconds": fsync_seconds[0],  # product: inside `seconds`; reference: after it
        "image_bytes": image_bytes,
        "rss_before_mb": rss_before / 1024,
        "rss_peak_mb": status_kb("VmHWM") / 1024,
        # Without the reset the high-water mark may be older than the run: then growth is
        # counted from it, which can only hide growth, never invent it.
        "rss_growth_mb": (status_kb("VmHWM") - max(rss_before, hwm_before)) / 1024
        if not peak_reset
        else (status_kb("VmHWM") - rss_before) / 1024,
        "peak_reset": peak_reset,
        "trace": bool(spec.get("trace")),
    }
    if spec.get("trace"):
        import tracemalloc

        result["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / (1024 * 1024)
        tracemalloc.stop()
    if profiler is not None:
        import io
        import pstats

        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(18)
        result["profile"] = text.getvalue()

    # Not measured from here on: check the output and remove it.
    if spec["side"] == "product":
        job.refresh_from_db()
        if job.state != JobState.SUCCEEDED:
            raise SystemExit(f"the export job ended {job.state}: {job.error}")
        output = Path(settings.STORAGE_DIR) / export_key(job)
        result["job_result"] = job.result
    with zipfile.ZipFile(output) as archive:
        names = archive.namelist()
    result["archive_bytes"] = output.stat().st_size
    result["members"] = len(names)
    result["image_members"] = sum(name.startswith("images/") for name in names)
    output.unlink()
    return result


# ---------------------------------------------------------------------------- the benchmark


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        return 0
    data_dir = Path(tempfile.mkdtemp(prefix="defectlab-bench-export-"))
    # The product's settings, configured the documented way, before Django starts; the
    # children inherit them.
    os.environ["DJANGO_SETTINGS_MODULE"] = "defectlab.settings"
    os.environ["DEFECTLAB_DATA_DIR"] = str(data_dir)
    os.environ["DEFECTLAB_SECRET_KEY"] = "bench-only-secret-key-not-for-production-0123456789"
    os.environ["DEFECTLAB_LOG_FORMAT"] = "text"
    os.environ["DEFECTLAB_DATABASE_URL"] = args.database_url
    os.environ.setdefault("DEFECTLAB_LOG_LEVEL", "WARNING")
    if args.database_url:
        recreate_database(args.database_url)
    try:
        import django

        django.setup()
        return Bench(args, data_dir).run()
    finally:
        from django.db import connections

        connections.close_all()
        if args.keep:
            where = f"{data_dir}" + (
                f" and database {args.database_url}" if args.database_url else ""
            )
            print(f"\nKept {where}.")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
            if args.database_url:
                recreate_database(args.database_url, drop_only=True)


class Bench:
    def __init__(self, args: argparse.Namespace, data_dir: Path) -> None:
        self.args = args
        self.data_dir = data_dir
        self.projects: dict[int, int] = {}  # size → project id
        self.files: dict[int, list[Path]] = {}  # size → its image files
        self.results: dict[str, Any] = {"runs": [], "rows": [], "json_runs": [], "json_rows": []}

    # ------------------------------------------------------------------------ data

    def pool(self) -> list[tuple[bytes, int, int]]:
        """POOL distinct camera-like JPEGs (synthetic metal panels, nothing downloaded)."""
        from defectlab.synthetic import defect_image, encode

        pool = []
        for index in range(POOL):
            width, height = FRAME_SIZES[index % len(FRAME_SIZES)]
            image, _defects = defect_image(9000 + index, width, height)
            pool.append((encode(image), width, height))
        return pool

    @staticmethod
    def shapes(rng: random.Random, width: int, height: int, labels: list[int]) -> list[Any]:
        """1 to 4 defects: boxes and polygons (5 to 8 vertices), inside the image."""
        from defectlab.geometry import Shape

        shapes = []
        for _index in range(rng.randint(1, 4)):
            w, h = rng.uniform(20, width / 5), rng.uniform(20, height / 5)
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            label = rng.choice(labels)
            if rng.random() < 0.5:
                shapes.append(Shape.box(x, y, x + w, y + h, label=label).to_dict())
                continue
            vertices = rng.randint(5, 8)
            points = []
            for k in range(vertices):
                angle = 2 * math.pi * (k + rng.uniform(0.1, 0.9)) / vertices
                reach = rng.uniform(0.6, 1.0) / 2
                points.append(
                    (
                        x + w / 2 + reach * w * math.cos(angle),
                        y + h / 2 + reach * h * math.sin(angle),
                    )
                )
            shapes.append(Shape.polygon(points, label=label).to_dict())
        return shapes

    def build(self) -> None:
        from django.conf import settings
        from django.core.management import call_command

        from defectlab.labeling import services
        from defectlab.labeling.models import Annotation, Task, TaskStatus
        from defectlab.tenancy.models import User
        from defectlab.tenancy.services import create_organization

        started = perf()
        call_command("migrate", verbosity=0, interactive=False)
        owner = User.objects.create_user("bench-owner@example.com", name="Bench owner")
        organization = create_organization("Bench plant", owner)
        print(f"Rendering {POOL} distinct JPEGs…", flush=True)
        pool = self.pool()
        sizes = [len(data) for data, _w, _h in pool]
        print(
            f"  {min(sizes) // 1024}–{max(sizes) // 1024} KB, mean "
            f"{sum(sizes) / len(sizes) / 1024:.0f} KB, {len(FRAME_SIZES)} frame sizes from "
            f"{min(w * h for w, h in FRAME_SIZES) / 1e6:.1f} to "
            f"{max(w * h for w, h in FRAME_SIZES) / 1e6:.1f} MP ({perf() - started:.0f} s)",
            flush=True,
        )
        storage = Path(settings.STORAGE_DIR)
        rng = random.Random(11)
        for size in self.args.sizes:
            step = perf()
            project = services.create_project(
                organization, owner, name=f"Line 3, {count(size)} frames", labels=list(LABELS)
            )
            labels = list(project.labels.values_list("pk", flat=True))
            folder = f"org/{organization.pk}/projects/{project.pk}"
            (storage / folder).mkdir(parents=True, exist_ok=True)
            tasks, files, shapes = [], [], []
            for index in range(size):
                data, width, height = pool[index % POOL]
                # The key create_uploaded_tasks gives an upload; the file is its own copy.
                key = f"{folder}/{uuid.uuid4().hex}.jpg"
                path = storage / key
                path.write_bytes(data)
                files.append(path)
                tasks.append(
                    Task(
                        organization_id=organization.pk,
                        project=project,
                        image=key,
                        file_name=f"cam{index % 4 + 1}_{index:06d}.jpg",
                        width=width,
                        height=height,
                        size_bytes=len(data),
                        status=TaskStatus.SUBMITTED,
                        has_annotation=True,
                    )
                )
                shapes.append(self.shapes(rng, width, height, labels))
            created = Task.objects.bulk_create(tasks, batch_size=500)
            Annotation.objects.bulk_create(
                [
                    Annotation(
                        organization_id=organization.pk, task=task, shapes=drawn, author=owner
                    )
                    for task, drawn in zip(created, shapes, strict=True)
                ],
                batch_size=500,
            )
            services.recount(project)
            self.projects[size] = project.pk
            self.files[size] = files
            total = sum(len(pool[index % POOL][0]) for index in range(size))
            print(
                f"Project of {count(size)} tasks: {total / MB:,.0f} MB of JPEGs, "
                f"{sum(len(s) for s in shapes):,} shapes ({perf() - step:.0f} s)",
                flush=True,
            )
        from django.db import connections

        connections.close_all()  # the children open their own
        os.sync()
        print(f"Built in {perf() - started:.0f} s, data in {self.data_dir}", flush=True)

    def warm(self, size: int) -> float:
        """Read every image of the project once, so both sides read from the page cache."""
        started = perf()
        for path in self.files[size]:
            with path.open("rb") as file:
                while file.read(1 << 20):
                    pass
        return perf() - started

    # ------------------------------------------------------------------------ runs

    def spawn(self, spec: dict[str, Any]) -> dict[str, Any]:
        """One measured run in a fresh process (`child`); its numbers."""
        os.sync()  # the previous run's output is on disk before this one starts
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"the {spec['side']} run at {count(spec['size'])} failed")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    def run_child(self, size: int, side: str, **extra: Any) -> dict[str, Any]:
        spec = {
            "side": side,
            "size": size,
            "project": self.projects[size],
            "format": self.args.format,
            **extra,
        }
        result = self.spawn(spec)
        result["mb_per_s"] = result["image_bytes"] / MB / result["seconds"]
        self.results["runs"].append(result)
        result["warmup"] = bool(extra.get("warmup"))
        what = "tracemalloc" if result["trace"] else ("cProfile" if "profile" in result else "")
        if result["warmup"]:
            what = "warm-up, not counted"
        fsync = result["fsync_seconds"]
        print(
            f"  {count(size):>4} {side:<9} {result['seconds']:8.2f} s {result['mb_per_s']:8.1f} MB/s"
            + (f" (fsync in it {fsync:.2f} s)" if side == "product" else f" (+fsync {fsync:.2f} s)")
            + f"  RSS +{result['rss_growth_mb']:.1f} MB"
            + (
                f", tracemalloc peak {result['tracemalloc_peak_mb']:.1f} MB"
                if result["trace"]
                else ""
            )
            + (f"  ({what})" if what else ""),
            flush=True,
        )
        return result

    def measure(self, size: int) -> dict[str, Any]:
        warmed = self.warm(size)
        print(f"\n{count(size)} tasks (cache warmed: every image read once, {warmed:.1f} s)")
        # The first run after a pause writes into memory the VM has to fault in afresh (see
        # bench/README.md); one untimed run puts every later run in the same state.
        self.run_child(size, "reference", warmup=True)
        timed: dict[str, list[dict[str, Any]]] = {"product": [], "reference": []}
        for turn in range(self.args.repeat):
            order = ("reference", "product") if turn % 2 == 0 else ("product", "reference")
            for side in order:
                timed[side].append(self.run_child(size, side))
        traced = (
            {side: self.run_child(size, side, trace=True) for side in ("product", "reference")}
            if self.args.memory
            else None
        )
        best = {side: min(runs, key=lambda run: run["seconds"]) for side, runs in timed.items()}
        product, reference = best["product"], best["reference"]
        flushed = min(timed["reference"], key=lambda run: run["seconds"] + run["fsync_seconds"])
        flushed_seconds = flushed["seconds"] + flushed["fsync_seconds"]
        expected = len(self.files[size])
        row = {
            "size": size,
            "images": expected,
            "image_mb": round(product["image_bytes"] / MB, 1),
            "export_seconds": round(product["seconds"], 3),
            "export_mb_per_s": round(product["mb_per_s"], 1),
            "zipfile_seconds": round(reference["seconds"], 3),
            "zipfile_mb_per_s": round(reference["mb_per_s"], 1),
            "ratio": round(product["mb_per_s"] / reference["mb_per_s"], 3),
            "export_fsync_seconds": round(product["fsync_seconds"], 3),
            "zipfile_fsync_seconds": round(flushed_seconds, 3),
            "zipfile_fsync_mb_per_s": round(product["image_bytes"] / MB / flushed_seconds, 1),
            "ratio_to_zipfile_fsync": round(flushed_seconds / product["seconds"], 3),
            "export_seconds_all": [round(run["seconds"], 3) for run in timed["product"]],
            "zipfile_seconds_all": [round(run["seconds"], 3) for run in timed["reference"]],
            # RSS from the timed runs (tracing adds its own memory), the larger of the runs.
            "export_rss_growth_mb": round(max(r["rss_growth_mb"] for r in timed["product"]), 1),
            "zipfile_rss_growth_mb": round(max(r["rss_growth_mb"] for r in timed["reference"]), 1),
            "export_tracemalloc_mb": round(traced["product"]["tracemalloc_peak_mb"], 1)
            if traced
            else None,
            "zipfile_tracemalloc_mb": round(traced["reference"]["tracemalloc_peak_mb"], 1)
            if traced
            else None,
            "export_archive_mb": round(product["archive_bytes"] / MB, 1),
            "zipfile_archive_mb": round(reference["archive_bytes"] / MB, 1),
            "export_members": product["members"],
            "export_image_members": product["image_members"],
            "peak_reset": all(run["peak_reset"] for run in self.results["runs"]),
        }
        if product["image_members"] != expected or reference["image_members"] != expected:
            print(
                f"  (the archives hold {product['image_members']} and "
                f"{reference['image_members']} images, not {expected}!)"
            )
        self.results["rows"].append(row)
        return row

    def json_child(self, size: int, side: str, **extra: Any) -> dict[str, Any]:
        """One run of the Label Studio JSON row: the export job without images, or its
        reference (`json_reference`)."""
        spec = {
            "side": side,
            "size": size,
            "project": self.projects[size],
            "format": "labelstudio",
            "include_images": False,
            **extra,
        }
        result = self.spawn(spec)
        result["warmup"] = bool(extra.get("warmup"))
        self.results["json_runs"].append(result)
        name = "export" if side == "product" else "reference"
        what = "  (warm-up, not counted)" if result["warmup"] else ""
        if "profile" in result:
            what = "  (cProfile)"
        print(
            f"  {count(size):>4} {name:<9} {result['seconds']:8.2f} s (CPU "
            f"{result['cpu_seconds']:.2f} s), archive "
            f"{result['archive_bytes'] / MB:.1f} MB"
            + (f" (fsync in it {result['fsync_seconds']:.2f} s)" if side == "product" else "")
            + what,
            flush=True,
        )
        return result

    def measure_json(self, size: int) -> dict[str, Any]:
        print(f"\n{count(size)} tasks, Label Studio JSON without images")
        # One untimed run of each side: the first run reads the database from disk.
        self.json_child(size, "json-reference", warmup=True)
        self.json_child(size, "product", warmup=True)
        timed: dict[str, list[dict[str, Any]]] = {"product": [], "json-reference": []}
        for turn in range(self.args.json_repeat):
            order = (
                ("json-reference", "product") if turn % 2 == 0 else ("product", "json-reference")
            )
            for side in order:
                timed[side].append(self.json_child(size, side))
        best = {side: min(runs, key=lambda run: run["seconds"]) for side, runs in timed.items()}
        product, reference = best["product"], best["json-reference"]
        row = {
            "size": size,
            "export_seconds": round(product["seconds"], 3),
            "export_fsync_seconds": round(product["fsync_seconds"], 3),
            "reference_seconds": round(reference["seconds"], 3),
            "ratio": round(product["seconds"] / reference["seconds"], 3),
            "export_cpu_seconds": round(min(run["cpu_seconds"] for run in timed["product"]), 3),
            "reference_cpu_seconds": round(
                min(run["cpu_seconds"] for run in timed["json-reference"]), 3
            ),
            "export_seconds_all": [round(run["seconds"], 3) for run in timed["product"]],
            "reference_seconds_all": [round(run["seconds"], 3) for run in timed["json-reference"]],
            "export_archive_mb": round(product["archive_bytes"] / MB, 2),
            "reference_archive_mb": round(reference["archive_bytes"] / MB, 2),
            "items": product["job_result"]["items"],
        }
        if row["items"] != size:
            print(f"  (the export wrote {row['items']} tasks, not {size}!)")
        self.results["json_rows"].append(row)
        return row

    # ------------------------------------------------------------------------ output

    def report(self) -> None:
        rows = self.results["rows"]
        best = f"best of {self.args.repeat}" if self.args.repeat > 1 else "one run"
        print(
            f"\nExport rate: image MB (10^6 bytes) ÷ wall time, {best} per side; "
            f"zipfile = ZipFile(ZIP_STORED).write() of the same images"
        )
        print(
            f"{'size':>5} {'images':>7} {'image MB':>9} {'export s':>9} {'of it fsync':>12}"
            f" {'export MB/s':>12} {'zipfile s':>10} {'zipfile MB/s':>13} {'ratio':>6}"
            f"  {'(info) zipfile+fsync s':>22} {'MB/s':>6} {'ratio':>6}"
        )
        for row in rows:
            print(
                f"{count(row['size']):>5} {row['images']:>7,} {row['image_mb']:>9,.1f}"
                f" {row['export_seconds']:>9.2f} {row['export_fsync_seconds']:>12.2f}"
                f" {row['export_mb_per_s']:>12.1f}"
                f" {row['zipfile_seconds']:>10.2f} {row['zipfile_mb_per_s']:>13.1f}"
                f" {row['ratio']:>5.2f}×"
                f"  {row['zipfile_fsync_seconds']:>22.2f} {row['zipfile_fsync_mb_per_s']:>6.1f}"
                f" {row['ratio_to_zipfile_fsync']:>5.2f}×"
            )
        self.report_json()
        if not self.args.memory:
            print("\n(peak memory not measured: --aims)")
            return
        print("\nPeak memory of the run, MB (each run in a fresh process)")
        print(
            f"{'size':>5} {'export tracemalloc':>19} {'export RSS growth':>18}"
            f" {'zipfile tracemalloc':>20} {'zipfile RSS growth':>19}"
        )
        for row in rows:
            print(
                f"{count(row['size']):>5} {row['export_tracemalloc_mb']:>19.1f}"
                f" {row['export_rss_growth_mb']:>18.1f}"
                f" {row['zipfile_tracemalloc_mb']:>20.1f} {row['zipfile_rss_growth_mb']:>19.1f}"
            )
        if len(rows) > 1:
            small, large = rows[0], rows[-1]
            label = f"{count(large['size'])}÷{count(small['size'])}"
            print(
                f"{label:>5}"
                + "".join(
                    f" {over(large[key], small[key]):>{width - 1}.2f}×"
                    for key, width in (
                        ("export_tracemalloc_mb", 19),
                        ("export_rss_growth_mb", 18),
                        ("zipfile_tracemalloc_mb", 20),
                        ("zipfile_rss_growth_mb", 19),
                    )
                )
            )
        if len(rows) > 1:
            small, large = rows[0], rows[-1]
            tasks = large["size"] - small["size"]
            growth = {
                key: (large[key] - small[key]) * 1024 / tasks
                for key in ("export_tracemalloc_mb", "zipfile_tracemalloc_mb")
            }
            self.results["growth_kb_per_task"] = {k: round(v, 2) for k, v in growth.items()}
            print(
                f"  (info) tracemalloc peak growth per task: export "
                f"{growth['export_tracemalloc_mb']:.2f} KB, zipfile "
                f"{growth['zipfile_tracemalloc_mb']:.2f} KB (one member a task: its central directory)"
            )
        if not all(row["peak_reset"] for row in rows):
            print("  (VmHWM could not be reset here: RSS growth is counted from the older peak)")

    def report_json(self) -> None:
        rows = self.results["json_rows"]
        best = f"best of {self.args.json_repeat}" if self.args.json_repeat > 1 else "one run"
        print(
            f"\nLabel Studio JSON without images (include_images=false), wall time, {best} per "
            "side; reference = one SQL query, json.dumps per task, one deflated zipfile member"
        )
        print(
            f"{'size':>5} {'export s':>9} {'of it fsync':>12} {'reference s':>12} {'ratio':>6}"
            f" {'export archive MB':>18} {'reference archive MB':>21}"
            f"  {'(info) CPU s: export':>20} {'reference':>10}"
        )
        for row in rows:
            print(
                f"{count(row['size']):>5} {row['export_seconds']:>9.2f}"
                f" {row['export_fsync_seconds']:>12.2f} {row['reference_seconds']:>12.2f}"
                f" {row['ratio']:>5.2f}× {row['export_archive_mb']:>18.1f}"
                f" {row['reference_archive_mb']:>21.1f}"
                f"  {row['export_cpu_seconds']:>20.2f} {row['reference_cpu_seconds']:>10.2f}"
            )
        print("  (ratio = export s ÷ reference s: how many times the reference's time it takes)")

    def verdicts(self) -> dict[str, Any]:
        rows = self.results["rows"]
        from django.db import connection

        vendor = connection.vendor
        aims: dict[str, Any] = {"rate": [], "flat_memory": {}, "labelstudio_json": []}
        lines = ["", "Aims"]
        for row in self.results["json_rows"]:
            if row["size"] != JSON_AIM_SIZE:
                continue
            met = row["export_seconds"] <= JSON_AIM_SECONDS
            faster = labelstudio_times.times_faster(vendor, "export_json", row["export_seconds"])
            aims["labelstudio_json"].append(
                {
                    "size": row["size"],
                    "seconds": row["export_seconds"],
                    "met": met,
                    "label_studio_remeasured_s": labelstudio_times.REMEASURED[vendor][
                        "export_json"
                    ],
                    "times_faster_than_label_studio": round(faster, 2),
                }
            )
            lines.append(
                f"  export of {count(row['size'])} tasks as Label Studio JSON ≤ "
                f"{JSON_AIM_SECONDS:.2f} s (Label Studio {LABEL_STUDIO_SECONDS} s ÷ 10): "
                f"{row['export_seconds']:.2f} s ({row['ratio']:.2f}× the reference's "
                f"{row['reference_seconds']:.2f} s) — {'met' if met else 'MISSED'}; "
                f"{faster:.1f}× faster than Label Studio re-measured on {vendor} "
                f"({labelstudio_times.REMEASURED[vendor]['export_json']:.2f} s, "
                f"{labelstudio_times.REMEASURED_ON})"
            )
        if not aims["labelstudio_json"]:
            lines.append(f"  Label Studio JSON ≤ {JSON_AIM_SECONDS:.2f} s: needs a 10k size")
        for row in rows:
            met = row["ratio"] >= RATE_AIM
            aims["rate"].append({"size": row["size"], "ratio": row["ratio"], "met": met})
            lines.append(
                f"  export MB/s ≥ {RATE_AIM} × zipfile MB/s, {count(row['size'])}: "
                f"{row['ratio']:.2f}× ({row['export_mb_per_s']:.0f} vs "
                f"{row['zipfile_mb_per_s']:.0f} MB/s) — {'met' if met else 'MISSED'}"
            )
        if not self.args.memory:
            lines.append("  export peak memory flat: not measured (--aims)")
        elif len(rows) > 1:
            small, large = rows[0], rows[-1]
            parts = []
            for key, name in (
                ("export_tracemalloc_mb", "tracemalloc"),
                ("export_rss_growth_mb", "RSS growth"),
            ):
                ratio = over(large[key], small[key])
                met = ratio <= FLAT_AIM
                aims["flat_memory"][name] = {"ratio": round(ratio, 2), "met": met}
                parts.append(
                    f"{name} {small[key]:.1f} → {large[key]:.1f} MB = {ratio:.2f}× — "
                    f"{'met' if met else 'MISSED'}"
                )
            lines.append(
                f"  export peak memory flat from {count(small['size'])} to "
                f"{count(large['size'])} (≤ {FLAT_AIM}×): " + "; ".join(parts)
            )
        else:
            lines.append("  export peak memory flat: needs two sizes")
        print("\n".join(lines))
        return aims

    def meta(self) -> dict[str, Any]:
        import django
        from django.db import connection

        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SHOW server_version")
                database = f"PostgreSQL {cursor.fetchone()[0].split()[0]}"
            else:
                cursor.execute("SELECT sqlite_version()")
                database = f"SQLite {cursor.fetchone()[0]}"
        return {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "django": django.get_version(),
            "database": database,
            "kernel": platform.release(),
            "format": self.args.format,
            "sizes": self.args.sizes,
            "repeat": self.args.repeat,
            "json_repeat": self.args.json_repeat,
            "aims_only": self.args.aims,
            "pool": POOL,
            "frame_sizes": FRAME_SIZES,
            **source_state(),
        }

    def run(self) -> int:
        from defectlab.datasets import FORMATS

        if self.args.format not in FORMATS:
            raise SystemExit(f"unknown format {self.args.format!r}; one of {', '.join(FORMATS)}")
        started = perf()
        self.results["meta"] = meta = self.meta()
        changed = meta["export_path_changed"]
        print(
            f"DefectLab export benchmark — format {meta['format']}, {meta['cpus']} CPUs, "
            f"Python {meta['python']}, Django {meta['django']}, {meta['database']}, "
            f"Linux {meta['kernel']}; code at {meta['commit']}"
            + (
                f" with uncommitted changes to {', '.join(changed)} (exports.py + archive.py "
                f"sha256 {meta['exports_and_archive_sha256']})"
                if changed
                else ""
            )
        )
        self.build()
        for size in self.args.sizes:
            self.measure(size)
            self.measure_json(size)
        if self.args.profile:
            largest = self.args.sizes[-1]
            print(f"\nWhere the export's time goes at {count(largest)} (cProfile, tottime):")
            profiled = self.run_child(largest, "product", profile=True)
            print(profiled["profile"])
            self.results["profile"] = profiled["profile"]
            print(f"\nThe Label Studio JSON export at {count(largest)} (cProfile, tottime):")
            profiled = self.json_child(largest, "product", profile=True)
            print(profiled["profile"])
            self.results["profile_json"] = profiled["profile"]
        self.report()
        self.results["aims"] = self.verdicts()
        meta["seconds"] = round(perf() - started, 1)
        print(f"\nDone in {meta['seconds']:.0f} s.")
        if self.args.json:
            path = Path(self.args.json)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.results, indent=2, default=str) + "\n")
            print(f"Numbers written to {path}.")
        return 0


if __name__ == "__main__":
    sys.exit(main())
