"""Memory of the whole installation, and the rate of concurrent annotation saves.

    .venv/bin/python bench/memory.py                       # SQLite (make bench-memory)
    .venv/bin/python bench/memory.py --database-url postgresql://root@127.0.0.1:5432/bench_memory
    .venv/bin/python bench/memory.py --tasks 10000 --export 1000 --seconds 10   # a smoke run

It starts the real installation the way an operator does (`defectlab migrate`, `createadmin`,
`defectlab serve` on a free loopback port: gunicorn's master, its web workers and the embedded
job worker) in a throwaway data directory, and drives it over HTTP with an API token:

1. import 100k tasks by reference (`POST /api/projects/{id}/import/`, one request);
2. list: walk task pages by cursor, with and without filters;
3. saves: 8 clients (threads, each with its own keep-alive connection) save annotations
   (`PUT /api/tasks/{id}/annotation/`: a draft, then a submit of the next version) for
   ``--seconds``; beside it the reference: the same saves by 8 threads calling
   `labeling.workflow.save_annotation` in one process (no HTTP, no middleware, no DRF);
4. export 10k tasks with their images as YOLO (`POST /api/projects/{id}/export/`, followed with
   `GET /api/jobs/{id}/?wait=30`), then download the zip.

Meanwhile the PSS (/proc/PID/smaps_rollup) of every process of the tree is sampled every 100 ms.
The bench prints, per process, its role, its PSS at rest and its peak in each phase, and the peak
of the sum. It is a report: nothing fails on a slow figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchdb import recreate_database  # bench/, beside this file
from live import Client, Sampler, Server, command, percentile

perf = time.perf_counter
EMAIL = "bench-owner@example.com"
PASSWORD = "bench-password-0123456789"
MEMORY_AIM_MB = 300.0
SAVES_AIM = 150.0
POOL = 32  # distinct small JPEGs for the export project
LABELS = [
    {"name": "scratch", "color": "#e53935", "hotkey": "1"},
    {"name": "dent", "color": "#1e88e5", "hotkey": "2"},
]
PHASES = ("import", "list", "saves", "export")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/memory.py", description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks imported (%(default)s)")
    parser.add_argument("--export", type=int, default=10_000, help="tasks exported (%(default)s)")
    parser.add_argument("--clients", type=int, default=8, help="saving clients (%(default)s)")
    parser.add_argument("--seconds", type=float, default=25.0, help="save window (%(default)s)")
    parser.add_argument("--pages", type=int, default=300, help="task pages listed (%(default)s)")
    parser.add_argument("--database-url", default="", help="PostgreSQL: a database named bench*")
    parser.add_argument("--workers", type=int, default=None, help="web workers (the default)")
    parser.add_argument(
        "--src", help="measure the package in this src/ directory instead (e.g. an older commit)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write every number to PATH")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # seed | reference, JSON spec
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------- children (Django)


def seed(spec: dict[str, Any]) -> dict[str, Any]:
    """The organization, an empty project for the import and saves, and the export project:
    ``spec['export']`` submitted tasks, each with its own small JPEG in storage."""
    import random
    import uuid

    import django

    django.setup()
    from django.conf import settings

    from defectlab.labeling import services
    from defectlab.labeling.models import Annotation, Task, TaskStatus
    from defectlab.synthetic import defect_image, encode
    from defectlab.tenancy.models import User
    from defectlab.tenancy.services import create_organization

    owner = User.objects.get(email=EMAIL)
    organization = create_organization("Bench plant", owner)
    work = services.create_project(organization, owner, name="Line 3 (import)", labels=LABELS)
    export = services.create_project(organization, owner, name="Line 3 (export)", labels=LABELS)
    labels = list(export.labels.values_list("pk", flat=True))
    pool = [encode(defect_image(7000 + index, 320, 240)[0]) for index in range(POOL)]
    folder = f"org/{organization.pk}/projects/{export.pk}"
    root = Path(settings.STORAGE_DIR)
    (root / folder).mkdir(parents=True, exist_ok=True)
    rng = random.Random(5)
    tasks = []
    for index in range(spec["export"]):
        data = pool[index % POOL]
        key = f"{folder}/{uuid.uuid4().hex}.jpg"
        (root / key).write_bytes(data)
        tasks.append(
            Task(
                organization_id=organization.pk,
                project=export,
                image=key,
                file_name=f"cam1_{index:06d}.jpg",
                width=320,
                height=240,
                size_bytes=len(data),
                status=TaskStatus.SUBMITTED,
                has_annotation=True,
            )
        )
    created = Task.objects.bulk_create(tasks, batch_size=500)

    def box() -> dict[str, Any]:
        x, y = rng.uniform(0, 250), rng.uniform(0, 180)
        return {"type": "box", "points": [[x, y], [x + 40, y + 30]], "label": rng.choice(labels)}

    Annotation.objects.bulk_create(
        [
            Annotation(
                organization_id=organization.pk,
                task=task,
                shapes=[box() for _ in range(rng.randint(1, 3))],
                author=owner,
            )
            for task in created
        ],
        batch_size=500,
    )
    services.recount(export)
    return {
        "organization": organization.pk,
        "work": work.pk,
        "export": export.pk,
        "labels": list(work.labels.values_list("pk", flat=True)),
        "image_bytes": sum(len(pool[index % POOL]) for index in range(spec["export"])),
    }


def reference(spec: dict[str, Any]) -> dict[str, Any]:
    """The same saves as the HTTP clients, by ``clients`` threads calling the service directly
    (each thread its own database connection), for ``seconds``."""
    import django

    django.setup()
    from django.db import connections

    from defectlab.labeling.models import Task
    from defectlab.labeling.workflow import save_annotation
    from defectlab.tenancy.models import User

    owner = User.objects.get(email=EMAIL)
    ids = list(
        Task.objects.filter(project_id=spec["project"], has_annotation=False)
        .order_by("-id")
        .values_list("id", flat=True)[: spec["clients"] * 4000]
    )
    stop = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(spec["clients"])]
    errors: list[str] = []

    def client(number: int) -> None:
        mine = ids[number :: spec["clients"]]
        try:
            for task_id in mine:
                if stop.is_set():
                    return
                task = Task.objects.select_related("project").get(pk=task_id)
                for version, submit in ((None, False), (1, True)):
                    begun = perf()
                    save_annotation(
                        task,
                        owner,
                        base_version=version,
                        shapes=shapes_for(task_id, spec["labels"], submit),
                        lead_time=3.0,
                        submit=submit,
                    )
                    latencies[number].append(perf() - begun)
                    if stop.is_set():
                        return
        except Exception as error:  # reported, not hidden
            errors.append(repr(error))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(spec["clients"])]
    started = perf()
    for thread in threads:
        thread.start()
    time.sleep(spec["seconds"])
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = perf() - started
    flat = [value for values in latencies for value in values]
    return {"saves": len(flat), "seconds": elapsed, "latencies": flat, "errors": errors}


def shapes_for(task_id: int, labels: list[int], submit: bool) -> list[dict[str, Any]]:
    x = 100 + task_id % 1000
    shapes = [{"type": "box", "points": [[x, 200], [x + 120, 290]], "label": labels[0]}]
    if submit:
        shapes.append(
            {
                "type": "polygon",
                "points": [[x, 400], [x + 60, 420], [x + 40, 480], [x - 10, 460]],
                "label": labels[1],
            }
        )
    return shapes


def run_child(kind: str, spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps([kind, spec])],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"the {kind} step failed")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------------- the bench


class Bench:
    def __init__(self, args: argparse.Namespace, data_dir: Path, env: dict[str, str]) -> None:
        self.args = args
        self.data_dir = data_dir
        self.env = env
        self.results: dict[str, Any] = {"phases": {}}
        self.server = Server(env, data_dir, workers=args.workers)
        self.sampler: Sampler | None = None
        self.token = ""
        self.ids: dict[str, Any] = {}

    def phase(self, name: str) -> None:
        assert self.sampler is not None
        self.sampler.sample()
        self.sampler.phase = name

    def rest(self, name: str, seconds: float = 3.0) -> None:
        self.phase(name)
        time.sleep(seconds)

    def run(self) -> int:
        started = perf()
        for step in (("migrate",), ("createadmin", "--email", EMAIL)):
            subprocess.run(command(*step), env=self.env, check=True, capture_output=True)
        print(
            f"Seeding the export project: {self.args.export:,} tasks with small JPEGs…", flush=True
        )
        self.ids = run_child("seed", {"export": self.args.export}, self.env)
        print(f"  done ({perf() - started:.0f} s)", flush=True)
        self.server.start()
        self.sampler = Sampler(self.server.pid)
        self.sampler.start()
        try:
            self.rest("rest (started)", 4.0)
            self.sign_in()
            self.phase("import")
            self.import_tasks()
            self.phase("list")
            self.list_tasks()
            self.phase("saves")
            self.saves()
            self.rest("rest (after saves)", 1.0)
            self.saves_reference()
            self.phase("export")
            self.export()
            self.rest("rest (after all)", 4.0)
        finally:
            self.sampler.stop()
            self.server.stop()
        self.report()
        return 0

    # ------------------------------------------------------------------------ steps

    def client(self) -> Client:
        return Client(self.server.port, self.token)

    def sign_in(self) -> None:
        browser = Client(self.server.port)
        status, body = browser.request(
            "POST", "/api/auth/login/", {"email": EMAIL, "password": PASSWORD}
        )
        if status != 200:
            raise SystemExit(f"login: {status} {body!r}")
        status, body = browser.request("POST", "/api/tokens/", {"name": "bench"})
        if status != 201:
            raise SystemExit(f"token: {status} {body!r}")
        self.token = body["key"]
        browser.close()

    def import_tasks(self) -> None:
        items = [
            {
                "image": f"https://cam-3.plant.example/line3/{index:07d}.jpg",
                "width": 2448,
                "height": 2048,
            }
            for index in range(self.args.tasks)
        ]
        raw = json.dumps({"tasks": items}).encode()
        client = self.client()
        begun = perf()
        status, body = client.request("POST", f"/api/projects/{self.ids['work']}/import/", raw=raw)
        if status == 202 and isinstance(body, dict) and "id" in body:
            self.wait_job(client, body["id"])
        elif status not in (200, 201):
            raise SystemExit(f"import: {status} {str(body)[:300]}")
        seconds = perf() - begun
        self.results["import"] = {"tasks": self.args.tasks, "seconds": seconds}
        print(f"Imported {self.args.tasks:,} tasks in {seconds:.2f} s", flush=True)

    def list_tasks(self) -> None:
        client = self.client()
        base = f"/api/projects/{self.ids['work']}/tasks/?page_size=50"
        times: list[float] = []
        for query in ("", "&status=new", "&has_annotation=false&order=desc"):
            cursor = None
            for _page in range(self.args.pages // 3):
                path = base + query + (f"&cursor={cursor}" if cursor else "")
                begun = perf()
                status, body = client.request("GET", path)
                times.append(perf() - begun)
                if status != 200:
                    raise SystemExit(f"list: {status} {str(body)[:300]}")
                cursor = body.get("next_cursor")
                if not cursor:
                    break
        self.results["list"] = {
            "pages": len(times),
            "p50_ms": percentile(times, 0.5) * 1000,
            "p95_ms": percentile(times, 0.95) * 1000,
        }
        print(
            f"Listed {len(times)} pages of 50: p50 {self.results['list']['p50_ms']:.1f} ms, "
            f"p95 {self.results['list']['p95_ms']:.1f} ms",
            flush=True,
        )

    def task_ids(self) -> list[int]:
        client = self.client()
        ids: list[int] = []
        cursor = None
        need = self.args.clients * 3000
        while len(ids) < need:
            path = f"/api/projects/{self.ids['work']}/tasks/?page_size=200" + (
                f"&cursor={cursor}" if cursor else ""
            )
            status, body = client.request("GET", path)
            if status != 200:
                raise SystemExit(f"list: {status} {str(body)[:300]}")
            ids.extend(row["id"] for row in body["results"])
            cursor = body.get("next_cursor")
            if not cursor:
                break
        return ids

    def saves(self) -> None:
        ids = self.task_ids()
        labels = self.ids["labels"]
        clients = self.args.clients
        stop = threading.Event()
        latencies: list[list[float]] = [[] for _ in range(clients)]
        failures: list[str] = []

        def run(number: int) -> None:
            client = self.client()
            for task_id in ids[number::clients]:
                for version, submit in ((None, False), (1, True)):
                    if stop.is_set():
                        client.close()
                        return
                    body = {
                        "version": version,
                        "shapes": shapes_for(task_id, labels, submit),
                        "lead_time": 3.0,
                        "submit": submit,
                    }
                    begun = perf()
                    status, answer = client.request(
                        "PUT", f"/api/tasks/{task_id}/annotation/", body
                    )
                    if status != 200:
                        failures.append(f"{status} {str(answer)[:200]}")
                        continue
                    latencies[number].append(perf() - begun)
            client.close()

        threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
        begun = perf()
        for thread in threads:
            thread.start()
        time.sleep(self.args.seconds)
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = perf() - begun
        flat = [value for values in latencies for value in values]
        self.results["saves"] = summary(len(flat), elapsed, flat, failures)
        print(line("HTTP, 8 clients", self.results["saves"]), flush=True)

    def saves_reference(self) -> None:
        spec = {
            "project": self.ids["work"],
            "clients": self.args.clients,
            "seconds": self.args.seconds,
            "labels": self.ids["labels"],
        }
        result = run_child("reference", spec, self.env)
        self.results["saves_reference"] = summary(
            result["saves"], result["seconds"], result["latencies"], result["errors"]
        )
        print(line("reference: service, 8 threads", self.results["saves_reference"]), flush=True)

    def wait_job(self, client: Client, job: int) -> dict[str, Any]:
        while True:
            status, body = client.request("GET", f"/api/jobs/{job}/?wait=30")
            if status != 200:
                raise SystemExit(f"job {job}: {status} {str(body)[:300]}")
            if body["state"] in ("succeeded", "failed", "cancelled"):
                if body["state"] != "succeeded":
                    raise SystemExit(f"job {job} {body['state']}: {body.get('error')}")
                return dict(body)

    def export(self) -> None:
        client = self.client()
        begun = perf()
        status, body = client.request(
            "POST", f"/api/projects/{self.ids['export']}/export/", {"format": "yolo"}
        )
        if status != 202:
            raise SystemExit(f"export: {status} {str(body)[:300]}")
        job = self.wait_job(client, body["id"])
        made = perf() - begun
        size = 0
        for piece in client.stream(f"/api/jobs/{job['id']}/download/"):
            size += len(piece)
        self.results["export"] = {
            "tasks": self.args.export,
            "job_seconds": made,
            "download_seconds": perf() - begun - made,
            "archive_bytes": size,
            "items": job.get("result", {}).get("items"),
        }
        print(
            f"Exported {self.args.export:,} tasks with images in {made:.1f} s, downloaded "
            f"{size / 1e6:.0f} MB in {perf() - begun - made:.1f} s",
            flush=True,
        )

    # ------------------------------------------------------------------------ the report

    def report(self) -> None:
        assert self.sampler is not None
        sampler = self.sampler
        columns = ["rest (started)", *PHASES, "rest (after all)"]
        started = [taken for _when, tag, taken in sampler.samples if tag == "rest (started)"]
        rest_start = started[-1] if started else {}  # the last sample before the import
        peaks = {name: sampler.peaks(name) for name in columns}
        startup_peak = peaks["rest (started)"][1] / 1024
        pids = sorted(sampler.roles, key=lambda pid: (sampler.first_seen[pid], pid))
        print(
            f"\nPSS of every server process, MiB ({len(sampler.samples)} samples, every "
            f"{sampler.interval * 1000:.0f} ms): at rest after start (the last sample before "
            "the import), then the peak in each phase and at rest at the end"
        )
        header = f"  {'pid':>7}  {'role':<28}" + "".join(
            f"{name.replace('rest ', ''):>16}" for name in columns
        )
        print(header)
        rows = []
        for pid in pids:
            cells = []
            for name in columns:
                value = rest_start.get(pid) if name == "rest (started)" else peaks[name][0].get(pid)
                cells.append(value / 1024 if value else None)
            rows.append({"pid": pid, "role": sampler.roles[pid], "mib": cells})
            print(
                f"  {pid:>7}  {sampler.roles[pid]:<28}"
                + "".join(f"{cell:16.1f}" if cell is not None else f"{'—':>16}" for cell in cells)
            )
        totals = [peaks[name][1] / 1024 for name in columns]
        totals[0] = sum(rest_start.values()) / 1024
        print(f"  {'':>7}  {'sum (peak of the sum)':<28}" + "".join(f"{t:16.1f}" for t in totals))
        print(
            f"  (info) while starting up (gunicorn forking its workers, before the first "
            f"request) the sum peaked at {startup_peak:.1f} MiB"
        )
        overall = max(totals[1:])
        self.results["pss"] = {
            "columns": columns,
            "rows": rows,
            "sum_peaks": totals,
            "startup_peak_mib": startup_peak,
        }
        self.results["pss_peak_mib"] = overall
        saves = self.results["saves"]
        ref = self.results["saves_reference"]
        print("\nSaves, 8 clients")
        print(line("HTTP (product)", saves))
        print(line("service in-process (ref)", ref))
        ratio = saves["rate"] / ref["rate"] if ref["rate"] else 0.0
        print(f"  product ÷ reference: {ratio:.2f}×")
        self.results["saves_ratio"] = ratio
        print("\nAims")
        print(
            f"  peak PSS of all server processes ≤ {MEMORY_AIM_MB:.0f} MB: {overall:.1f} MiB — "
            + ("met" if overall <= MEMORY_AIM_MB else "MISSED")
        )
        errors = saves["errors"]
        print(
            f"  8 clients saving ≥ {SAVES_AIM:.0f} /s: {saves['rate']:.1f} /s"
            f" ({ratio:.2f}× the in-process service) — "
            + ("met" if saves["rate"] >= SAVES_AIM and not errors else "MISSED")
            + (f" ({errors} failed requests)" if errors else "")
        )


def summary(
    count: int, seconds: float, latencies: list[float], errors: list[str]
) -> dict[str, Any]:
    return {
        "saves": count,
        "seconds": seconds,
        "rate": count / seconds if seconds else 0.0,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
    }


def line(name: str, figures: dict[str, Any]) -> str:
    text = (
        f"  {name:<30} {figures['saves']:>6} saves in {figures['seconds']:5.1f} s: "
        f"{figures['rate']:7.1f} /s, p50 {figures['p50_ms']:6.1f} ms, p95 {figures['p95_ms']:6.1f} ms"
    )
    if figures["errors"]:
        text += f", {figures['errors']} errors: {figures['error_samples']}"
    return text


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        kind, spec = json.loads(args.child)
        result = seed(spec) if kind == "seed" else reference(spec)
        print(json.dumps(result), flush=True)
        return 0
    data_dir = Path(tempfile.mkdtemp(prefix="defectlab-bench-memory-"))
    src = args.src or str(Path(__file__).resolve().parent.parent / "src")
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": src + os.pathsep + env.get("PYTHONPATH", ""),
            "DJANGO_SETTINGS_MODULE": "defectlab.settings",
            "DEFECTLAB_DATA_DIR": str(data_dir),
            "DEFECTLAB_SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789",
            "DEFECTLAB_LOG_FORMAT": "text",
            "DEFECTLAB_LOG_LEVEL": env.get("DEFECTLAB_LOG_LEVEL", "WARNING"),
            "DEFECTLAB_DATABASE_URL": args.database_url,
            "DEFECTLAB_ADMIN_PASSWORD": PASSWORD,
        }
    )
    if args.database_url:
        recreate_database(args.database_url)
    bench = Bench(args, data_dir, env)
    try:
        bench.run()
    finally:
        bench.server.stop()
        if args.database_url and not args.keep:
            recreate_database(args.database_url, drop_only=True)
        if args.keep:
            print(f"\nKept {data_dir}.")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    bench.results["run"] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "database": "postgresql" if args.database_url else "sqlite",
        "args": {k: v for k, v in vars(args).items() if k != "child"},
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(bench.results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
