"""Detection engine benchmark: images/s end to end (JPEG bytes → shapes) beside a raw
``session.run`` loop on tensors prepared beforehand, with a YOLOv8n-sized graph (issue 11).

    .venv/bin/python bench/engine.py                    # make bench-engine (about a minute)
    .venv/bin/python bench/engine.py --quick            # fewer rounds and images: a smoke run
    .venv/bin/python bench/engine.py --json bench/out/engine.json

What is measured (see bench/README.md):

* the model: `yolo_graph.build(640)`, the YOLOv8n layout with random weights (8.74 GFLOPs by
  its convs, output 1×84×8400, Ultralytics' metadata), built in this run;
* the product: ``Detector(model).detect_stream(jpegs)`` and ``.shapes()`` of each result, for
  synthetic metal panels (`defectlab.synthetic`) of 1920×1080 and 2448×2048, JPEG quality 90:
  on the engine's preparing thread header checks, decode, EXIF turn, letterbox and tensor,
  overlapped with the run of the image before; in the caller run, decode and NMS, boxes back
  to the image, `geometry.Shape`s. Beside it ``detect`` one image at a time (info);
* the reference: ``detector.session.run`` (the same session, so the same options and threads)
  on the same images' tensors, letterboxed and converted once before timing;
* where the time goes: the medians of the engine's own `Timings` (decode, letterbox on the
  thread; run, postprocess in the caller) and of ``.shapes()``, what is left of the wall time
  (the caller waiting for the thread), and ``to_tensor`` alone;
* tiled: one 4000×3000 panel with ``tile=True`` (the whole image and its 640 tiles), twice a
  round through the stream, beside ``session.run`` on as many prepared tensors;
* the same 1920×1080 set with a one-thread session, with a session whose idle threads
  spin-wait between runs (onnxruntime's default, which the engine turns off), and both sets
  with the preparing thread at niceness 0 (the engine lowers it: `prefetch.py`);
* ``--tuning`` (instead of the above): the stream by intra-op threads (the cores, one fewer)
  and niceness (0, 5, 10, 19), beside the raw run of each, to choose the defaults.

Each case: warm-up rounds, then rounds in which every side puts the round's images (the set
over and over, 16 by default) through, in an order that turns each round; images/s per round,
the median (and best) of the rounds. It is a report: nothing here fails on a slow figure.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import yolo_graph  # bench/, beside this file

perf = time.perf_counter
RATIO_AIM = 0.85  # end-to-end images/s ÷ raw session.run images/s
FRAMES = {"1920×1080": (1920, 1080), "2448×2048": (2448, 2048)}
TILED = (4000, 3000)
FIRST_SEED = 500
CALIBRATION_IMAGES = 2  # per frame size


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/engine.py",
        description="Detection engine images/s end to end beside raw session.run (issue 11).",
    )
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per case (default 7)")
    parser.add_argument("--images", type=int, default=4, help="distinct images per frame size")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs before each case")
    parser.add_argument("--quick", action="store_true", help="3 rounds, 2 images, 1 tiled round")
    parser.add_argument(
        "--per-round", type=int, default=16, help="images per round, the set over and over"
    )
    parser.add_argument(
        "--no-threads",
        action="store_true",
        help="skip the one-thread, spinning and niceness 0 cases",
    )
    parser.add_argument(
        "--tuning",
        action="store_true",
        help="instead of the table: the stream by intra-op threads and niceness (~2 minutes)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write every number to PATH as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.images = min(args.rounds, 3), min(args.images, 2)
        args.per_round = min(args.per_round, 6)
    if args.rounds < 1 or args.images < 1 or args.warmup < 0 or args.per_round < 1:
        parser.error("--rounds, --images and --per-round must be at least 1, --warmup at least 0")
    args.tiled_rounds = 1 if args.quick else 3
    args.tiled_per_round = 1 if args.quick else 2
    return args


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def meta() -> dict[str, Any]:
    import cv2
    import onnx
    import onnxruntime as ort

    root = Path(__file__).resolve().parent.parent

    def git(*command: str) -> str:
        done = subprocess.run(
            ["git", *command], cwd=root, capture_output=True, text=True, check=False
        )
        return done.stdout.rstrip()

    changed = git("status", "--porcelain", "--", "src/defectlab/inference/engine", "bench")
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "providers": ort.get_available_providers(),
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "onnx": onnx.__version__,
        "kernel": platform.release(),
        "commit": git("rev-parse", "--short", "HEAD").strip() or "unknown",
        "engine_changed": [line[3:] for line in changed.splitlines()],
        "load_at_start": load(),
    }


def panels(size: tuple[int, int], count: int, seed: int) -> list[bytes]:
    from defectlab.synthetic import defect_image, encode

    return [encode(defect_image(seed + k, *size)[0]) for k in range(count)]


class Rounds:
    """Named ways of putting the same images through, timed round after round: each round runs
    every side once, in an order that turns each round, so a burst of other work on the
    machine lands on every side alike."""

    def __init__(self, sides: dict[str, Any], images: int) -> None:
        self.sides = sides  # name → callable giving the seconds for ``images`` images
        self.images = images
        self.seconds: dict[str, list[float]] = {name: [] for name in sides}

    def measure(self, rounds: int, warmup: int) -> None:
        names = list(self.sides)
        for turn in range(warmup + rounds):
            shift = turn % len(names)
            for name in names[shift:] + names[:shift]:
                seconds = self.sides[name]()
                if turn >= warmup:
                    self.seconds[name].append(seconds)

    def rate(self, name: str) -> float:
        return self.images / median(self.seconds[name])

    def best(self, name: str) -> float:
        return self.images / min(self.seconds[name])

    def ratio(self, name: str, reference: str) -> float:
        """Median over rounds of reference seconds ÷ ``name`` seconds (its images/s ÷ the
        reference's, round by round)."""
        pairs = zip(self.seconds[reference], self.seconds[name], strict=True)
        return median([ref / mine for ref, mine in pairs])


class Case:
    """One set of images through the product (`detect_stream`), `detect` one image at a time
    and the raw reference, round after round."""

    def __init__(
        self,
        detector: Any,
        jpegs: list[bytes],
        *,
        per_round: int,
        tile: bool = False,
        niceness: int | None = None,
    ) -> None:
        from defectlab.inference.engine.letterbox import letterbox, to_tensor
        from defectlab.inference.engine.picture import read_image
        from defectlab.inference.engine.tiling import tiles

        self.detector, self.jpegs, self.tile = detector, jpegs, tile
        self.options = {} if niceness is None else {"niceness": niceness}
        # The images of a round: the set over and over, so the stream's first image (prepared
        # while nothing runs) weighs as little as in a long pre-annotation job.
        self.order = [k % len(jpegs) for k in range(max(per_round, len(jpegs)))]
        size = detector.input_size
        self.tensors: list[list[np.ndarray]] = []  # per image (tiled: the whole, then tiles)
        self.tensor_ms: list[float] = []
        for data in jpegs:
            pixels = read_image(data)
            crops = [pixels]
            if tile:
                pieces = tiles(pixels.shape[:2], size, 0.2)
                crops += [pixels[t.y : t.y + t.height, t.x : t.x + t.width] for t in pieces]
            self.tensors.append([])
            for crop in crops:
                boxed = letterbox(crop, size)[0]
                started = perf()
                self.tensors[-1].append(to_tensor([boxed]))
                self.tensor_ms.append((perf() - started) * 1e3)
        self.layout = detector.layout
        self.rounds = Rounds(
            {"stream": self.stream, "one by one": self.one_by_one, "raw": self.raw},
            len(self.order),
        )
        self.timings: list[Any] = []  # the stream's, per image
        self.shapes_ms: list[float] = []
        self.found: list[int] = []
        self.tiles = 0

    def stream(self) -> float:
        """Seconds for the round's images through ``detect_stream`` and ``.shapes()``."""
        images = (self.jpegs[k] for k in self.order)  # iterated on the engine's thread
        begin = perf()
        for found in self.detector.detect_stream(images, tile=self.tile, **self.options):
            if isinstance(found, Exception):
                raise found
            middle = perf()
            found.shapes()
            self.shapes_ms.append((perf() - middle) * 1e3)
            self.timings.append(found.timings)
            self.found.append(len(found))
            self.tiles = found.tiles
        return perf() - begin

    def one_by_one(self) -> float:
        """Seconds for the round's images through ``detect`` (each prepared, then run) and
        ``.shapes()``: the engine before the stream, and what one request costs."""
        begin = perf()
        for k in self.order:
            self.detector.detect(self.jpegs[k], tile=self.tile).shapes()
        return perf() - begin

    def raw(self) -> float:
        """Seconds for the round's images' prepared tensors through ``session.run``."""
        session, name = self.detector.session, self.layout.input_name
        output = self.layout.output_name
        begin = perf()
        for k in self.order:
            for tensor in self.tensors[k]:
                session.run([output], {name: tensor})
        return perf() - begin

    def measure(self, rounds: int, warmup: int) -> None:
        self.rounds.measure(rounds, warmup)
        warm = warmup * len(self.order)  # the warm-up rounds' images
        self.timings, self.shapes_ms, self.found = (
            self.timings[warm:],
            self.shapes_ms[warm:],
            self.found[warm:],
        )

    def candidates_per_image(self) -> list[int]:
        """Anchors above conf per image of the set (the raw outputs, one untimed pass)."""
        session, name = self.detector.session, self.layout.input_name
        counts = []
        for tensors in self.tensors:
            out = session.run([self.layout.output_name], {name: tensors[0]})[0][0]
            counts.append(int((out[4:].max(axis=0) > self.detector.conf).sum()))
        return counts

    def summary(self) -> dict[str, Any]:
        rounds = self.rounds
        product, raw = rounds.rate("stream"), rounds.rate("raw")
        stages = {
            "decode_ms": median([t.decode_ms for t in self.timings]),
            "letterbox_ms": median([t.letterbox_ms for t in self.timings]),
            "run_ms": median([t.run_ms for t in self.timings]),
            "postprocess_ms": median([t.postprocess_ms for t in self.timings]),
            "shapes_ms": median(self.shapes_ms),
        }
        # On the caller's side: run, postprocess, shapes, and the rest (waiting for the thread).
        caller = stages["run_ms"] + stages["postprocess_ms"] + stages["shapes_ms"]
        stages["other_ms"] = 1e3 / product - caller
        return {
            "images": len(self.jpegs),
            "images_per_round": len(self.order),
            "rounds": len(rounds.seconds["raw"]),
            "product_images_per_s": product,
            "product_best": rounds.best("stream"),
            "one_by_one_images_per_s": rounds.rate("one by one"),
            "raw_images_per_s": raw,
            "raw_best": rounds.best("raw"),
            "ratio": rounds.ratio("stream", "raw"),
            "ratio_of_bests": rounds.best("stream") / rounds.best("raw"),
            "one_by_one_ratio": rounds.ratio("one by one", "raw"),
            "product_ms_per_image": 1e3 / product,
            "raw_ms_per_image": 1e3 / raw,
            "stages": stages,
            "to_tensor_ms": median(self.tensor_ms),
            "found_median": median([float(n) for n in self.found]),
            "tiles": self.tiles,
            "seconds": rounds.seconds,
        }


def spinning(detector: Any, model: bytes) -> Any:
    """The same detector with a session whose idle threads spin-wait (onnxruntime's default,
    which the engine turns off: `session.session_options`)."""
    import onnxruntime as ort

    from defectlab.inference.engine.session import SPINNING, session_options

    ort.set_default_logger_severity(3)  # not the warning that the entry is overwritten
    options = session_options()
    options.add_session_config_entry(SPINNING, "1")
    twin = copy.copy(detector)
    twin.session = ort.InferenceSession(
        model, sess_options=options, providers=detector.session.get_providers()
    )
    return twin


def print_case(name: str, row: dict[str, Any]) -> None:
    s = row["stages"]
    print(
        f"{name:<22} {row['product_images_per_s']:>7.2f} {row['product_best']:>6.2f}"
        f" {row['one_by_one_images_per_s']:>7.2f} {row['raw_images_per_s']:>8.2f}"
        f" {row['raw_best']:>6.2f} {row['ratio']:>6.2f} {row['ratio_of_bests']:>6.2f}"
        f" {row['one_by_one_ratio']:>6.2f}"
        f"   {row['product_ms_per_image']:>6.1f} │ {s['decode_ms']:>5.1f} {s['letterbox_ms']:>4.1f}"
        f" │ {s['run_ms']:>6.1f} + {s['postprocess_ms']:>5.1f} + {s['shapes_ms']:>4.1f}"
        f" + {s['other_ms']:>4.1f}   {row['raw_ms_per_image']:>6.1f}  {row['to_tensor_ms']:>5.2f}"
    )


def header_row() -> None:
    print(
        f"{'':<22} {'stream':>7} {'':>6} {'1 by 1':>7} {'raw run':>8} {'':>6} {'÷ raw':>6}"
        f" {'':>6} {'1 by 1':>6}   {'':>6} │ {'thread':>10} │ {'caller':^32}"
    )
    print(
        f"{'case':<22} {'img/s':>7} {'best':>6} {'img/s':>7} {'img/s':>8} {'best':>6}"
        f" {'median':>6} {'bests':>6} {'÷ raw':>6}"
        f"   {'ms/img':>6} │ {'dec':>5} {'lbox':>4} │ {'run':>6} + {'post':>5} + {'shp':>4}"
        f" + {'wait':>4}   {'raw ms':>6}  {'tensor':>5}"
    )


def tuning(model: bytes, sets: dict[str, list[bytes]], args: argparse.Namespace) -> dict:
    """The stream with the machine's cores as intra-op threads and with one fewer, its thread
    at several nice values, beside the raw run with each thread count: which defaults to keep
    (`prefetch.DEFAULT_NICENESS`, `session.default_threads`)."""
    from defectlab.inference.engine import Detector
    from defectlab.inference.engine.session import default_threads

    counts = sorted({default_threads(), max(1, default_threads() - 1)}, reverse=True)
    detectors = {threads: Detector(model, threads=threads) for threads in counts}
    nices = [0, 5, 10, 19]
    # With one thread fewer than the cores, the preparing has a core to itself: niceness moot.
    nices_for = {threads: nices if threads == counts[0] else [0] for threads in counts}
    print(
        f"\nTuning: images/s of the stream by intra-op threads and the preparing thread's "
        f"niceness; median of {args.rounds} rounds of {args.per_round} images, every side "
        f"each round; (÷ raw with {counts[0]} threads, median over rounds)"
    )
    results: dict[str, Any] = {}
    for name, jpegs in sets.items():
        sides: dict[str, Any] = {}
        for threads, detector in detectors.items():
            sides[f"raw, {threads} threads"] = Case(detector, jpegs, per_round=args.per_round).raw
            for nice in nices_for[threads]:
                case = Case(detector, jpegs, per_round=args.per_round, niceness=nice)
                sides[f"stream, {threads} threads, niceness {nice}"] = case.stream
        rounds = Rounds(sides, max(args.per_round, len(jpegs)))
        rounds.measure(args.rounds, args.warmup)
        reference = f"raw, {counts[0]} threads"
        results[name] = {}
        print(f"  {name} (load average now {load()})")
        for side in sides:
            ratio = rounds.ratio(side, reference)
            results[name][side] = {"images_per_s": rounds.rate(side), "ratio": ratio}
            print(
                f"    {side:<34} {rounds.rate(side):>7.2f} {rounds.best(side):>7.2f}  {ratio:.2f}"
            )
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from defectlab.inference.engine import Detector
    from defectlab.inference.engine.picture import read_image
    from defectlab.inference.engine.session import default_threads

    started = perf()
    info = meta()
    print(
        f"DefectLab engine benchmark — {info['cpus']} CPUs, Python {info['python']}, "
        f"onnxruntime {info['onnxruntime']} ({', '.join(info['providers'])}), OpenCV "
        f"{info['opencv']}, numpy {info['numpy']}, onnx {info['onnx']}, Linux {info['kernel']}; "
        f"code at {info['commit']}"
        + (
            f" with uncommitted changes to {', '.join(info['engine_changed'])}"
            if info["engine_changed"]
            else ""
        )
    )
    print(f"Load average at start: {info['load_at_start']}")
    begin = perf()
    sets = {
        name: panels(size, args.images, FIRST_SEED + 10 * index)
        for index, (name, size) in enumerate(FRAMES.items())
    }
    tiled = panels(TILED, 1, FIRST_SEED + 99)
    # Other panels of the same sizes: the folded BatchNorms' statistics (yolo_graph's docstring).
    calibration = [
        read_image(data)
        for index, size in enumerate(FRAMES.values())
        for data in panels(size, CALIBRATION_IMAGES, FIRST_SEED + 200 + 10 * index)
    ]
    print(
        "Images: synthetic panels, JPEG quality 90: "
        + ", ".join(
            f"{len(jpegs)} × {name} ({sum(map(len, jpegs)) // len(jpegs) // 1024} KB)"
            for name, jpegs in sets.items()
        )
        + f", 1 × 4000×3000 ({len(tiled[0]) // 1024} KB) for tiling, and "
        f"{len(calibration)} others to calibrate the model; rendered in {perf() - begin:.0f} s"
    )
    begin = perf()
    model = yolo_graph.build(640, calibration=calibration)
    flops = yolo_graph.conv_flops(model)
    params = yolo_graph.parameters(model)
    print(
        f"Model: YOLOv8n-shaped, random weights, built in {perf() - begin:.1f} s: "
        f"{flops / 1e9:.2f} GFLOPs (Σ Conv 2·Cin·Cout·k²·Hout·Wout/groups at 640), "
        f"{params:,} parameters (Ultralytics' YOLOv8n: {yolo_graph.YOLOV8N_GFLOPS} GFLOPs, "
        f"{yolo_graph.YOLOV8N_PARAMETERS:,}), {len(model) / 1e6:.1f} MB"
    )
    detector = Detector(model)
    out = detector.session.get_outputs()[0]
    threads = default_threads()
    print(
        f"Detector: layout {detector.layout.kind}, output {'×'.join(map(str, out.shape))}, "
        f"{len(detector.names)} classes, conf {detector.conf}, iou {detector.iou}, max_det "
        f"{detector.max_det}, {threads} intra-op threads; {detector.metadata.description}"
    )
    results: dict[str, Any] = {"meta": info, "model": {"gflops": flops / 1e9, "parameters": params}}
    if args.tuning:
        results["tuning"] = tuning(model, sets, args)
        return finish(results, info, started, args)
    cases: dict[str, Case] = {}
    per_round = args.per_round
    for name, jpegs in sets.items():
        cases[name] = Case(detector, jpegs, per_round=per_round)
    if not args.no_threads:
        one = Detector(model, threads=1)
        cases["1920×1080, 1 thread"] = Case(one, sets["1920×1080"], per_round=per_round)
        twin = spinning(detector, model)
        cases["1920×1080, spinning"] = Case(twin, sets["1920×1080"], per_round=per_round)
        cases["1920×1080, niceness 0"] = Case(
            detector, sets["1920×1080"], per_round=per_round, niceness=0
        )
        cases["2448×2048, niceness 0"] = Case(
            detector, sets["2448×2048"], per_round=per_round, niceness=0
        )
    print(
        f"\nimages/s, median of {args.rounds} rounds of {per_round} images (the set over and "
        "over), and the best round. stream: the product, `detect_stream` + .shapes(); 1 by 1: "
        "`detect` + .shapes() an image at a time; raw: session.run on the same images' tensors "
        "made beforehand. Each round runs the three, in an order that turns. ÷ raw: median over "
        "rounds of raw seconds ÷ stream seconds; bests: best stream ÷ best raw round. ms per "
        "image = 1000 ÷ stream images/s; medians of the engine's own timings: on the preparing "
        "thread decode and letterbox (overlapped with the runs), in the caller run + "
        "postprocess (NMS) + .shapes() + the rest (waiting for the thread). raw ms = 1000 ÷ raw "
        "images/s; tensor: to_tensor alone (made on the thread too)."
    )
    header_row()
    results["cases"] = {}
    for name, case in cases.items():
        case.measure(args.rounds, args.warmup)
        row = case.summary()
        row["candidates_per_image"] = case.candidates_per_image()
        results["cases"][name] = row
        print_case(name, row)
    tiled_case = Case(detector, tiled, per_round=args.tiled_per_round, tile=True)
    tiled_case.measure(args.tiled_rounds, min(args.warmup, 1))
    row = tiled_case.summary()
    results["cases"]["4000×3000 tiled"] = row
    print_case("4000×3000 tiled", row)
    print(
        f"  (tiled: {row['tiles']} tiles of 640 plus the whole image = {row['tiles'] + 1} runs "
        "per image; raw = as many session.run calls on prepared tensors)"
    )
    print("\nDetections (conf 0.25): anchors above conf per image → kept after NMS (median)")
    for name, case_row in results["cases"].items():
        if "candidates_per_image" in case_row:
            print(
                f"  {name:<22} {case_row['candidates_per_image']} → {case_row['found_median']:.0f}"
            )
    print(f"  {'4000×3000 tiled':<22} kept after merging {row['found_median']:.0f}")
    results["aims"] = verdicts(results["cases"], threads)
    return finish(results, info, started, args)


def finish(
    results: dict[str, Any], info: dict[str, Any], started: float, args: argparse.Namespace
) -> int:
    info["load_at_end"] = load()
    info["seconds"] = round(perf() - started, 1)
    print(f"\nLoad average at end: {info['load_at_end']}. Done in {info['seconds']:.0f} s.")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"Numbers written to {path}.")
    return 0


def verdicts(cases: dict[str, dict[str, Any]], threads: int) -> list[dict[str, Any]]:
    from defectlab.inference.engine.prefetch import DEFAULT_NICENESS

    lines = ["", "Aims"]
    aims = []
    for name in FRAMES:
        row = cases[name]
        met = row["ratio"] >= RATIO_AIM
        aims.append({"case": name, "ratio": row["ratio"], "met": met})
        lines.append(
            f"  end to end ÷ raw session.run ≥ {RATIO_AIM}, {name}: {row['ratio']:.2f} "
            f"({row['product_images_per_s']:.1f} vs {row['raw_images_per_s']:.1f} images/s; "
            f"best rounds {row['ratio_of_bests']:.2f}) — {'met' if met else 'MISSED'}"
        )
    for name in FRAMES:
        row = cases[name]
        lines.append(
            f"  (info) one image at a time (`detect`), {name}: {row['one_by_one_ratio']:.2f} "
            f"({row['one_by_one_images_per_s']:.1f} images/s); the stream gains "
            f"{row['product_images_per_s'] / row['one_by_one_images_per_s']:.2f}×"
        )
    tiled = cases["4000×3000 tiled"]
    lines.append(
        f"  (info) tiled 4000×3000: {tiled['product_images_per_s']:.2f} images/s, "
        f"{tiled['tiles']} tiles + the whole image; {tiled['ratio']:.2f} of the same runs raw"
    )
    single = cases.get("1920×1080, 1 thread")
    spin = cases.get("1920×1080, spinning")
    if spin is not None:
        ours = cases["1920×1080"]
        lines.append(
            f"  (info) threads sleeping between runs (the engine) vs spin-waiting (onnxruntime's "
            f"default), 1920×1080: product {ours['product_images_per_s']:.1f} vs "
            f"{spin['product_images_per_s']:.1f} images/s, raw {ours['raw_images_per_s']:.1f} vs "
            f"{spin['raw_images_per_s']:.1f}; ÷ raw {ours['ratio']:.2f} vs {spin['ratio']:.2f}"
        )
    for name in FRAMES:
        plain = cases.get(f"{name}, niceness 0")
        if plain is not None:
            ours = cases[name]
            lines.append(
                f"  (info) preparing thread at niceness {DEFAULT_NICENESS} (the engine's) vs 0, "
                f"{name}: {ours['product_images_per_s']:.1f} vs "
                f"{plain['product_images_per_s']:.1f} images/s; ÷ raw {ours['ratio']:.2f} vs "
                f"{plain['ratio']:.2f}"
            )
    if single is not None:
        both = cases["1920×1080"]
        lines.append(
            f"  (info) {threads} threads vs 1, 1920×1080: product "
            f"{both['product_images_per_s']:.1f} vs {single['product_images_per_s']:.1f} images/s "
            f"({both['product_images_per_s'] / single['product_images_per_s']:.2f}×), raw "
            f"{both['raw_images_per_s']:.1f} vs {single['raw_images_per_s']:.1f} "
            f"({both['raw_images_per_s'] / single['raw_images_per_s']:.2f}×)"
        )
    print("\n".join(lines))
    return aims


if __name__ == "__main__":
    sys.exit(main())
