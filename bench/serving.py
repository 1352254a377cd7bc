"""Detection service benchmark: `defectlab serve-inference` in a process of its own, driven over
loopback by load generators in processes of their own (`serving_load.py`), beside the engine
alone in this process, in one run.

    .venv/bin/python bench/serving.py                 # make bench-serving (about 4 minutes)
    .venv/bin/python bench/serving.py --quick         # a smoke run (about 2 minutes)
    .venv/bin/python bench/serving.py --database-url postgresql://root@127.0.0.1:5432/bench_serving

What is measured (see bench/README.md):

* the model: `yolo_graph.build(640)` (YOLOv8n-shaped, random weights) uploaded to each
  organization as a ready version (and a second build of another seed, whose detections
  differ, for the hot swap); the images: synthetic 1920×1080 panels, JPEG quality 90, sent
  as the request body (``Content-Type: image/jpeg``), one image a request;
* 1. throughput: a load generator keeps 16 requests in flight; its images/s beside the
  engine alone on the same model and images in this process — a `Detector` loaded as the
  service loads it (DEFECTLAB_INFERENCE_THREADS intra-op threads, no memory arena), called
  by DEFECTLAB_INFERENCE_RUNNERS threads at once, each `detect` on its own images (and by one
  thread, for reference). Rounds alternate the two; the ratio is the median over rounds of
  the service's rate ÷ the engine's measured just before. p50 / p99 latency as the client
  saw it, and where a request's time goes (the answers' own timings, /metrics, CPU seconds);
* 2. noisy neighbour: tenant B alone, one request every 1/rate s → B's p99; then tenant A
  sends ten times its quota (set by `serving.quotas.set_quota`) while B sends as before →
  B's p99 again, the ratio, and how A's requests were answered;
* 3. hot swap: requests for a model by its alias while this process moves the alias 20 times
  between two versions (`registry.move_alias`, the same database); every answer's detections
  checked against what the version it names gives for that image (computed here before);
* 4. audit: the service stopped (SIGTERM: it writes its meter), its `Call` rows per
  organization and result compared with what the load generators sent and got.

The service's startup and readiness wait is bounded; every subprocess is killed when this
one exits, however it exits. It is a report: nothing here fails on a slow figure (it exits 1
only when an answer is wrong: failed or mixed requests in the swap, or an audit difference).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from benchdb import recreate_database, url_problem  # bench/, beside this file

perf = time.perf_counter
HERE = Path(__file__).resolve().parent
THROUGHPUT_AIM = 0.85
NOISY_AIM = 1.3
LOAD_WARNING = 1.2
READY_SECONDS = 120.0
STOP_SECONDS = 60.0
MODEL = "panels"
SECRET = "bench-only-secret-key-not-for-production-0123456789"

_children: list[subprocess.Popen[bytes]] = []

# `--profile`: the service under cProfile, which follows the thread it is enabled in: the event
# loop's (HTTP, keys, quotas, the answer's JSON, the meter's log line), not the runner threads
# (the engine); timed in that thread's CPU seconds. SIGTERM ends it through SystemExit, so the
# profile is written.
PROFILED = """
import cProfile, signal, sys, time
out = sys.argv[1]
def _stop(number, frame):
    raise SystemExit(0)
signal.signal(signal.SIGTERM, _stop)
profile = cProfile.Profile(time.thread_time)  # CPU time: a busy machine does not inflate it
profile.enable()
try:
    from defectlab.cli import main
    sys.argv = ["defectlab", "serve-inference", *sys.argv[2:]]
    main()
finally:
    profile.disable()
    profile.dump_stats(out)
"""


# ---- processes ------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child, before exec: be killed when the bench dies, even by SIGKILL (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def spawn(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        child = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_die_with_parent,
        )
    _children.append(child)
    return child


def kill_children() -> None:
    for child in _children:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
    _children.clear()


def _on_signal(number: int, _frame: Any) -> None:
    raise SystemExit(128 + number)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


# ---- arguments ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/serving.py", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds (3)")
    parser.add_argument("--requests", type=int, default=240, help="requests per service round")
    parser.add_argument("--raw-images", type=int, default=120, help="images per engine round")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (16)")
    parser.add_argument("--images", type=int, default=8, help="distinct images (8)")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--noisy-seconds", type=float, default=40, help="each noisy phase (40)")
    parser.add_argument("--b-rate", type=float, default=5.0, help="tenant B's requests/s (5)")
    parser.add_argument("--a-per-minute", type=int, default=120, help="tenant A's quota (120)")
    parser.add_argument(
        "--a-concurrent", type=int, default=1, help="tenant A's requests at once (1)"
    )
    parser.add_argument("--moves", type=int, default=20, help="alias moves (20)")
    parser.add_argument("--move-every", type=float, default=1.0, help="seconds between moves")
    parser.add_argument("--swap-concurrency", type=int, default=8, help="in flight during swaps")
    parser.add_argument(
        "--refresh",
        type=float,
        default=0.5,
        help="the service's DEFECTLAB_INFERENCE_REFRESH_SECONDS (0.5: a move is seen quickly)",
    )
    parser.add_argument("--database-url", default="", help="PostgreSQL URL (default: SQLite)")
    parser.add_argument("--quick", action="store_true", help="fewer requests, shorter phases")
    parser.add_argument("--keep", action="store_true", help="keep the data directory (logs)")
    parser.add_argument(
        "--profile",
        metavar="PATH",
        default="",
        help="run the service under cProfile (its event loop's thread) and write the stats to PATH",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.requests = min(args.rounds, 2), min(args.requests, 96)
        args.raw_images = min(args.raw_images, 48)
        args.noisy_seconds, args.moves = min(args.noisy_seconds, 15), min(args.moves, 10)
    if min(args.rounds, args.requests, args.raw_images, args.concurrency, args.images) < 1:
        parser.error("counts must be at least 1")
    if args.database_url and (problem := url_problem(args.database_url)):
        parser.error(problem)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    atexit.register(kill_children)
    one = os.getloadavg()[0]
    print(f"Load average at start: {load()} (1, 5, 15 min); {os.cpu_count()} CPUs", flush=True)
    if one > LOAD_WARNING:
        print(
            f"  WARNING: load {one:.2f} > {LOAD_WARNING}: other work shares the machine; "
            "the figures below are disturbed (the ratios less than the rates).",
            flush=True,
        )
    data_dir = Path(tempfile.mkdtemp(prefix="defectlab-bench-serving-"))
    env = {
        "DJANGO_SETTINGS_MODULE": "defectlab.settings",
        "DEFECTLAB_DATA_DIR": str(data_dir),
        "DEFECTLAB_SECRET_KEY": SECRET,
        "DEFECTLAB_DATABASE_URL": args.database_url,
        "DEFECTLAB_INFERENCE_REFRESH_SECONDS": str(args.refresh),
        "DEFECTLAB_REDIS_URL": "",
    }
    service_level = os.environ.get("DEFECTLAB_LOG_LEVEL", "")
    os.environ.update(env)
    os.environ["DEFECTLAB_LOG_LEVEL"] = "WARNING"  # this process's; the service keeps its own
    if args.database_url:
        recreate_database(args.database_url)
    try:
        import django

        django.setup()
        return run(args, data_dir, service_level)
    finally:
        kill_children()
        from django.db import connections

        connections.close_all()
        if args.keep:
            print(f"(kept {data_dir})")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
        if args.database_url:
            recreate_database(args.database_url, drop_only=True)


# ---- what the service serves ----------------------------------------------------------------


class Tenant:
    def __init__(self, organization: Any, model: Any, key: str) -> None:
        self.organization, self.model, self.key = organization, model, key
        self.versions: dict[int, Any] = {}


def build(args: argparse.Namespace, data_dir: Path) -> tuple[dict[str, Tenant], list[Path]]:
    from django.core.management import call_command

    import yolo_graph
    from defectlab.inference import registry
    from defectlab.inference.models import ModelVersion, VersionState
    from defectlab.serving.keys import create_key
    from defectlab.serving.quotas import set_quota
    from defectlab.synthetic import defect_image, encode
    from defectlab.tenancy.models import User
    from defectlab.tenancy.services import create_organization

    call_command("migrate", verbosity=0, interactive=False)
    first, second = yolo_graph.build(640, seed=1), yolo_graph.build(640, seed=2)
    owner = User.objects.create_user("bench-owner@example.com", name="Bench owner")
    tenants: dict[str, Tenant] = {}
    for name in ("throughput", "A", "B", "swap"):
        organization = create_organization(f"Bench {name}", owner)
        model = registry.create_model(organization, None, name=MODEL)
        tenant = Tenant(organization, model, create_key(organization, None, "bench")[1])
        for data in (first, second) if name == "swap" else (first,):
            version = registry.upload_version(model, None, data, file_name="model.onnx")
            # Ready without the sandbox run (as tests/serving does): no worker runs here.
            ModelVersion.objects.filter(pk=version.pk).update(state=VersionState.READY)
            version.refresh_from_db()
            tenant.versions[version.number] = version
        registry.move_alias(model, None, "production", 1)
        tenants[name] = tenant
    unlimited = {"requests_per_minute": None, "concurrent_requests": None, "images_per_day": None}
    set_quota(tenants["throughput"].organization, None, **unlimited)
    set_quota(tenants["swap"].organization, None, **unlimited)
    set_quota(
        tenants["A"].organization,
        None,
        requests_per_minute=args.a_per_minute,
        concurrent_requests=args.a_concurrent,
    )
    folder = data_dir / "images"
    folder.mkdir()
    paths = []
    for k in range(args.images):
        path = folder / f"panel-{k}.jpg"
        path.write_bytes(encode(defect_image(900 + k, args.width, args.height)[0]))
        paths.append(path)
    return tenants, paths


def detector_of(version: Any) -> Any:
    """The version's detector, loaded as the service loads it (`serving.loaded`)."""
    from django.conf import settings

    from defectlab.serving.loaded import warm_detector

    return warm_detector(version, settings.INFERENCE_THREADS)


def answer_of(found: Any) -> list[list[Any]]:
    """Detections as the service writes them (`serving.app._result`): class, score, box."""
    return [
        [
            int(found.classes[k]),
            round(float(found.scores[k]), 4),
            [round(float(v), 2) for v in found.boxes[k]],
        ]
        for k in range(len(found))
    ]


def same(got: list[list[Any]], want: list[list[Any]]) -> bool:
    if len(got) != len(want):
        return False
    for (g_class, g_score, g_box), (w_class, w_score, w_box) in zip(got, want, strict=True):
        if g_class != w_class or abs(g_score - w_score) > 2e-4:
            return False
        if any(abs(a - b) > 0.02 for a, b in zip(g_box, w_box, strict=True)):
            return False
    return True


# ---- the engine alone -----------------------------------------------------------------------


def raw_round(detector: Any, images: list[bytes], count: int, threads: int) -> tuple[float, float]:
    """Images/s of ``threads`` threads each calling ``detector.detect`` on its own share of
    ``count`` images, and this process's CPU seconds per image meanwhile."""

    def work(first: int) -> None:
        for k in range(first, count, threads):
            detector.detect(images[k % len(images)])

    workers = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(threads)]
    cpu, started = time.process_time(), perf()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = perf() - started
    return count / elapsed, (time.process_time() - cpu) / count


# ---- the service and its load ---------------------------------------------------------------


class Service:
    def __init__(self, data_dir: Path, log_level: str, profile: str = "") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / "service.log"
        command = [sys.executable, "-m", "defectlab.cli", "serve-inference"]
        if profile:
            command = [sys.executable, "-c", PROFILED, str(Path(profile).resolve())]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        started = perf()
        env = dict(os.environ)
        env.pop("DEFECTLAB_LOG_LEVEL")
        if log_level:
            env["DEFECTLAB_LOG_LEVEL"] = log_level
        self.process = spawn(command, self.log, env)
        self.ready_seconds = self._wait_ready(started)

    def _wait_ready(self, started: float) -> float:
        import httpx

        while perf() - started < READY_SECONDS:
            if self.process.poll() is not None:
                raise SystemExit(
                    f"the service exited ({self.process.returncode}) before it was ready; "
                    f"its log:\n{self.log.read_text()[-3000:]}"
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return perf() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"the service was not ready within {READY_SECONDS:.0f} s")

    def metrics(self) -> dict[str, float]:
        """The /metrics samples this bench reads (summed over labels)."""
        import httpx

        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        found: dict[str, float] = defaultdict(float)
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, _, value = line.rpartition(" ")
            found[name.split("{")[0]] += float(value)
        return found

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self) -> tuple[int, float]:
        """SIGTERM, and the wait for it to exit (it writes its meter first)."""
        started = perf()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise SystemExit(f"the service did not stop within {STOP_SECONDS:.0f} s") from None
        return code, perf() - started


class Load:
    """One load generator process (`serving_load.py`) for one stream."""

    count = 0

    def __init__(
        self, service: Service, data_dir: Path, stream: dict[str, Any], start_at: float = 0.0
    ) -> None:
        Load.count += 1
        self.out = data_dir / f"load-{Load.count}.json"
        spec = data_dir / f"load-{Load.count}-spec.json"
        seconds = float(stream.get("seconds", 600))
        spec.write_text(
            json.dumps({"url": service.url, "stream": stream, "start_at": start_at, "timeout": 120})
        )
        self.deadline = perf() + seconds + 180 + max(0.0, start_at - time.time())
        command = [sys.executable, str(HERE / "serving_load.py"), str(spec), str(self.out)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEFECTLAB_")}
        self.process = spawn(command, data_dir / "load.log", env)

    def result(self) -> dict[str, Any]:
        try:
            code = self.process.wait(timeout=max(1.0, self.deadline - perf()))
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise SystemExit("a load generator ran past its bound") from None
        if code != 0:
            log = (self.out.parent / "load.log").read_text()[-3000:]
            raise SystemExit(f"a load generator failed ({code}); its log:\n{log}")
        return dict(json.loads(self.out.read_text()))


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = share * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(value: float) -> str:
    return f"{value * 1000:.0f} ms"


# ---- the run --------------------------------------------------------------------------------


def run(args: argparse.Namespace, data_dir: Path, service_level: str) -> int:
    from django.conf import settings
    from django.db import connections

    from defectlab.inference.engine.session import usable_cores

    started = perf()
    print("Building the models (two seeds), four organizations and the images…", flush=True)
    tenants, paths = build(args, data_dir)
    images = [path.read_bytes() for path in paths]
    runners = settings.INFERENCE_RUNNERS or usable_cores()
    threads = settings.INFERENCE_THREADS
    # What each version answers for each image, computed before the service starts.
    expected: dict[int, list[list[list[Any]]]] = {}
    for number, version in tenants["swap"].versions.items():
        detector = detector_of(version)
        expected[number] = [answer_of(detector.detect(data)) for data in images]
    alike = sum(same(a, b) for a, b in zip(expected[1], expected[2], strict=True))
    raw = detector_of(tenants["throughput"].versions[1])
    size = sum(len(data) for data in images) / len(images) / 1000
    print(
        f"  done in {perf() - started:.0f} s: {len(images)} panels of {args.width}×{args.height} "
        f"({size:.0f} KB average); the two versions give {'different' if not alike else 'SOME EQUAL'} "
        f"detections on every image ({alike} alike); the engine as the service runs it: "
        f"{runners} runners × {threads} intra-op thread(s); load {load()}",
        flush=True,
    )
    connections.close_all()

    service = Service(data_dir, service_level, args.profile)
    print(
        f"Service ready in {service.ready_seconds:.1f} s on {service.url} "
        f"(its log: {service.log.name}); load {load()}",
        flush=True,
    )
    sent: list[tuple[str, dict[str, Any]]] = []  # (tenant, load result), for the audit
    problems = 0

    # 1. Throughput.
    print(
        f"\n1. Throughput, {args.concurrency} in flight, {args.rounds} "
        f"round{'s' if args.rounds > 1 else ''}:",
        flush=True,
    )
    raw_one: list[float] = []
    raw_many: list[float] = []
    raw_cpu: list[float] = []
    rates: list[float] = []
    ratios: list[float] = []
    latencies: list[float] = []
    totals: list[float] = []
    queues: list[float] = []
    engines: list[float] = []
    rests: list[float] = []
    outside: list[float] = []
    runs: list[float] = []
    service_cpu: list[float] = []
    client_cpu: list[float] = []
    run_metric: list[float] = []
    raw_round(raw, images, len(images), runners)  # warm
    for index in range(args.rounds):
        one, _cpu = raw_round(raw, images, max(1, args.raw_images // 2), 1)
        many, per_image = raw_round(raw, images, args.raw_images, runners)
        raw_one.append(one)
        raw_many.append(many)
        raw_cpu.append(per_image)
        before, cpu = service.metrics(), service.cpu()
        stream = {
            "name": "throughput",
            "key": tenants["throughput"].key,
            "model": MODEL,
            "images": [str(p) for p in paths],
            "mode": "closed",
            "concurrency": args.concurrency,
            "warmup": args.concurrency,
            "count": args.requests,
            "seconds": 300,
        }
        result = Load(service, data_dir, stream).result()
        after, cpu = service.metrics(), service.cpu() - cpu
        sent.append(("throughput", result))
        timed = [r for r in result["records"] if not r["warm"]]
        ok = [r for r in timed if r.get("status") == 200]
        rate = len(ok) / (result["timed_to"] - result["timed_from"])
        rates.append(rate)
        ratios.append(rate / many)
        latencies += [r["latency"] for r in ok]
        totals += [r["total_ms"] / 1000 for r in ok]
        queues += [r["queue_ms"] / 1000 for r in ok]
        engines += [sum(r["engine"].values()) / 1000 for r in ok]
        rests += [(r["total_ms"] - r["queue_ms"] - sum(r["engine"].values())) / 1000 for r in ok]
        outside += [r["latency"] - r["total_ms"] / 1000 for r in ok]
        runs += [r["engine"]["run_ms"] / 1000 for r in ok]
        runs_done = (
            after["defectlab_inference_run_seconds_count"]
            - before["defectlab_inference_run_seconds_count"]
        )
        run_metric.append(
            (
                after["defectlab_inference_run_seconds_sum"]
                - before["defectlab_inference_run_seconds_sum"]
            )
            / max(1, runs_done)
        )
        service_cpu.append(cpu / max(1, len(result["records"])))
        client_cpu.append(result["cpu_seconds"] / max(1, len(result["records"])))
        refused = len(timed) - len(ok)
        print(
            f"  round {index + 1}: engine 1 thread {one:.1f}, {runners} threads {many:.1f} "
            f"images/s; service {rate:.1f} images/s ({len(ok)} answered 200"
            f"{f', {refused} NOT' if refused else ''}) ÷ engine {rate / many:.2f}; load {load()}",
            flush=True,
        )
    ratio = statistics.median(ratios)
    verdict = "met" if ratio >= THROUGHPUT_AIM else "MISSED"
    print(
        f"  service {statistics.median(rates):.1f} images/s ÷ engine ({runners} threads × "
        f"{threads}) {statistics.median(raw_many):.1f} images/s = {ratio:.2f} (median of "
        f"{', '.join(f'{r:.2f}' for r in ratios)}); aim ≥ {THROUGHPUT_AIM}: {verdict}\n"
        f"  engine 1 thread {statistics.median(raw_one):.1f} images/s (reference)\n"
        f"  latency (client) p50 {ms(percentile(latencies, 0.5))}, "
        f"p99 {ms(percentile(latencies, 0.99))} ({len(latencies)} requests)",
        flush=True,
    )
    total50, queue50 = percentile(totals, 0.5), percentile(queues, 0.5)
    engine50, run50 = percentile(engines, 0.5), percentile(runs, 0.5)
    raw_per_call = runners / statistics.median(raw_many)
    engine_cpu = statistics.median(raw_cpu)
    ceiling = engine_cpu / (statistics.median(service_cpu) + statistics.median(client_cpu))
    alone = engine_cpu / statistics.median(service_cpu)
    print(
        "  where a request's time goes (medians): client-side and HTTP "
        f"{ms(percentile(outside, 0.5))}; in the service {ms(total50)}: queue {ms(queue50)}, "
        f"engine {ms(engine50)} (run {ms(run50)}), the rest {ms(percentile(rests, 0.5))} "
        f"(p99 {ms(percentile(rests, 0.99))})\n"
        f"  one detect in the engine alone ({runners} threads): {ms(raw_per_call)} wall; "
        f"a run in the service (/metrics run_seconds mean): "
        f"{ms(statistics.median(run_metric))}\n"
        f"  CPU per image: engine alone {ms(statistics.median(raw_cpu))}; service process "
        f"{ms(statistics.median(service_cpu))}, load generator "
        f"{ms(statistics.median(client_cpu))} per request; with every core busy, the ratio "
        f"these allow is {ceiling:.2f} (engine ÷ service + load generator), {alone:.2f} with "
        f"the load generator on another machine",
        flush=True,
    )

    # 2. Noisy neighbour.
    print(
        f"\n2. Noisy neighbour: B at {args.b_rate:g}/s for {args.noisy_seconds:g} s, alone, then "
        f"with A at 10× its quota ({args.a_per_minute}/min, {args.a_concurrent} at once):",
        flush=True,
    )

    def stream_of(name: str, rate: float) -> dict[str, Any]:
        return {
            "name": name,
            "key": tenants[name].key,
            "model": MODEL,
            "images": [str(p) for p in paths],
            "mode": "open",
            "rate": rate,
            "seconds": args.noisy_seconds,
            "count": int(rate * args.noisy_seconds) + 1,
        }

    alone = Load(service, data_dir, stream_of("B", args.b_rate)).result()
    sent.append(("B", alone))
    a_rate = 10 * args.a_per_minute / 60
    start_at = time.time() + 2.0
    noisy_a = Load(service, data_dir, stream_of("A", a_rate), start_at)
    noisy_b = Load(service, data_dir, stream_of("B", args.b_rate), start_at)
    with_a, flood = noisy_b.result(), noisy_a.result()
    sent += [("B", with_a), ("A", flood)]

    def codes_of(result: dict[str, Any]) -> Counter[str]:
        return Counter(f"{r.get('status')} {r.get('code', '')}".strip() for r in result["records"])

    def p99(result: dict[str, Any]) -> tuple[float, float, str]:
        ok = [r["latency"] for r in result["records"] if r.get("status") == 200]
        bad = [f"{n} × {c}" for c, n in codes_of(result).most_common() if c != "200"]
        return percentile(ok, 0.5), percentile(ok, 0.99), ", ".join(bad)

    def parts(result: dict[str, Any]) -> str:
        """Where B's slowest requests' time went: p99 of each part of an answer's time."""
        ok = [r for r in result["records"] if r.get("status") == 200]
        queue = [r["queue_ms"] / 1000 for r in ok]
        engine = [sum(r["engine"].values()) / 1000 for r in ok]
        rest = [(r["total_ms"] - r["queue_ms"] - sum(r["engine"].values())) / 1000 for r in ok]
        out = [r["latency"] - r["total_ms"] / 1000 for r in ok]
        return (
            f"p50 / p99 of queue {ms(percentile(queue, 0.5))} / {ms(percentile(queue, 0.99))}, "
            f"engine {ms(percentile(engine, 0.5))} / {ms(percentile(engine, 0.99))}, rest of "
            f"the service {ms(percentile(rest, 0.5))} / {ms(percentile(rest, 0.99))}, outside "
            f"it {ms(percentile(out, 0.5))} / {ms(percentile(out, 0.99))}"
        )

    b50, b99, b_bad = p99(alone)
    n50, n99, n_bad = p99(with_a)
    codes = codes_of(flood)
    noisy = n99 / b99
    verdict = "met" if noisy <= NOISY_AIM else "MISSED"
    print(
        f"  B alone: p50 {ms(b50)}, p99 {ms(b99)} ({len(alone['records'])} requests"
        f"{f'; not 200: {b_bad}' if b_bad else ''})\n"
        f"  B with A: p50 {ms(n50)}, p99 {ms(n99)} ({len(with_a['records'])} requests"
        f"{f'; not 200: {n_bad}' if n_bad else ''})\n"
        f"  B's p99 with A ÷ alone = {noisy:.2f}; aim ≤ {NOISY_AIM}: {verdict}\n"
        f"  B alone: {parts(alone)}\n"
        f"  B with A: {parts(with_a)}\n"
        f"  A sent {len(flood['records'])} at {a_rate:g}/s: "
        + ", ".join(f"{n} × {code}" for code, n in codes.most_common())
        + f" ({codes.get('429 rate_limited', 0) + codes.get('429 too_many_concurrent', 0)} "
        f"got 429, {sum(n for c, n in codes.items() if c.startswith('503'))} got 503); "
        f"load {load()}",
        flush=True,
    )

    # 3. Hot swap under load.
    from defectlab.inference import registry

    swap = tenants["swap"]
    seconds = args.moves * args.move_every + 3 * args.refresh + 2
    print(
        f"\n3. Hot swap: {args.swap_concurrency} in flight for {seconds:g} s while the alias moves "
        f"{args.moves} times, every {args.move_every:g} s (the service re-reads aliases every "
        f"{args.refresh:g} s):",
        flush=True,
    )
    swaps_before = service.metrics()["defectlab_inference_alias_swaps_total"]
    stream = {
        "name": "swap",
        "key": swap.key,
        "model": MODEL,
        "images": [str(p) for p in paths],
        "mode": "closed",
        "concurrency": args.swap_concurrency,
        "count": 10**6,
        "seconds": seconds,
        "keep": True,
    }
    loading = Load(service, data_dir, stream, time.time() + 1.0)
    time.sleep(1.0 + args.move_every)
    for move in range(args.moves):
        registry.move_alias(swap.model, None, "production", 2 if move % 2 == 0 else 1)
        time.sleep(args.move_every)
    connections.close_all()
    swapped = loading.result()
    sent.append(("swap", swapped))
    swaps = service.metrics()["defectlab_inference_alias_swaps_total"] - swaps_before
    shas = {number: version.sha256 for number, version in swap.versions.items()}
    failed, mixed, exact = 0, 0, 0
    answered: Counter[int] = Counter()
    for record in swapped["records"]:
        if record.get("status") != 200 or "code" in record:
            failed += 1
            continue
        number = record["version"]
        answered[number] += 1
        want = expected.get(number, [[]] * len(images))[record["image"]]
        if shas.get(number) != record["sha256"] or not same(record["detections"], want):
            mixed += 1
        elif record["detections"] == want:
            exact += 1
    total = len(swapped["records"])
    print(
        f"  {total} requests: {answered[1]} answered by v1, {answered[2]} by v2; the service "
        f"switched {swaps:.0f} times; failed {failed} (must be 0), mixing versions {mixed} "
        f"(must be 0); {exact} of {total - failed - mixed} bit-for-bit equal to the engine here; "
        f"load {load()}",
        flush=True,
    )
    problems += failed + mixed

    # 4. Audit.
    code, stop_seconds = service.stop()
    problems += audit(tenants, sent, code, stop_seconds)
    print(
        f"\nDone in {perf() - started:.0f} s; load average at the end {load()}."
        + ("" if not problems else f" {problems} wrong answers or differences above."),
        flush=True,
    )
    return 1 if problems else 0


def audit(
    tenants: dict[str, Tenant], sent: list[tuple[str, dict[str, Any]]], code: int, seconds: float
) -> int:
    """The service's `Call` rows per organization and status beside the load generators'."""
    from django.db import close_old_connections
    from django.db.models import Count, Sum

    from defectlab.serving.models import Call

    close_old_connections()
    ours: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0, 0])
    lost = 0
    for name, result in sent:
        for record in result["records"]:
            status = int(record.get("status", 0))
            if status == 0:
                lost += 1
                continue
            row = ours[(name, status)]
            row[0] += 1
            row[1] += record.get("images", 0) if status == 200 else 0
            row[2] += record.get("found", 0)
    names = {tenant.organization.pk: name for name, tenant in tenants.items()}
    theirs: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0, 0])
    rows = Call.objects.values("organization_id", "status").annotate(
        n=Count("id"), images=Sum("images"), found=Sum("detections")
    )
    for row in rows:
        key = (names.get(row["organization_id"], str(row["organization_id"])), row["status"])
        theirs[key] = [
            row["n"],
            (row["images"] or 0) if row["status"] == 200 else 0,
            row["found"] or 0,
        ]
    differences = [
        f"{key[0]} {key[1]}: sent/got {ours.get(key, [0, 0, 0])}, Call rows "
        f"{theirs.get(key, [0, 0, 0])} (requests, images, detections)"
        for key in sorted(set(ours) | set(theirs))
        if ours.get(key, [0, 0, 0]) != theirs.get(key, [0, 0, 0])
    ]
    per_org = ", ".join(
        f"{name} {sum(v[0] for k, v in theirs.items() if k[0] == name)} calls / "
        f"{sum(v[1] for k, v in theirs.items() if k[0] == name)} images"
        for name in tenants
    )
    print(
        f"\n4. Audit: the service stopped in {seconds:.1f} s after SIGTERM ("
        + (
            "exit 0"
            if code == 0
            else "it re-raised the signal after its shutdown, as uvicorn does"
            if code == -signal.SIGTERM
            else f"exit code {code}"
        )
        + f"); Call rows: {per_org}"
        + (f"; {lost} requests got no answer" if lost else ""),
        flush=True,
    )
    if not differences:
        print("  audit: equal (requests, images and detections per organization and status)")
        return 0
    print("  audit: DIFFERENT\n    " + "\n    ".join(differences))
    return len(differences)


if __name__ == "__main__":
    raise SystemExit(main())
