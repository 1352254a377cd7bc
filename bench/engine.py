"""Detection engine benchmark: images/s end to end (JPEG bytes → shapes) beside a raw
``session.run`` loop on tensors prepared beforehand, with a YOLOv8n-sized graph (issue 11).

    .venv/bin/python bench/engine.py                    # make bench-engine (about a minute)
    .venv/bin/python bench/engine.py --quick            # fewer rounds and images: a smoke run
    .venv/bin/python bench/engine.py --json bench/out/engine.json

What is measured (see bench/README.md):

* the model: `yolo_graph.build(640)`, the YOLOv8n layout with random weights (8.74 GFLOPs by
  its convs, output 1×84×8400, Ultralytics' metadata), built in this run;
* the product: ``Detector(model).detect(jpeg_bytes)`` and ``.shapes()`` of the result, for
  synthetic metal panels (`defectlab.synthetic`) of 1920×1080 and 2448×2048, JPEG quality 90:
  header checks, decode, EXIF turn, letterbox, tensor, run, decode and NMS, boxes back to the
  image, `geometry.Shape`s;
* the reference: ``detector.session.run`` (the same session, so the same options and threads)
  on the same images' tensors, letterboxed and converted once before timing;
* where the difference goes: the medians of the engine's own `Timings` (decode, letterbox, run,
  postprocess) and of ``.shapes()``, and of ``to_tensor`` alone (inside the engine's run time);
* tiled: one 4000×3000 panel with ``tile=True`` (the whole image and its 640 tiles), beside
  ``session.run`` on as many prepared tensors;
* the same 1920×1080 loop with a one-thread session (the machine's cores against one), and
  with a session whose idle threads spin-wait between runs (onnxruntime's default, which the
  engine turns off).

Each case: warm-up runs, then rounds in which the product and the reference each go over the
case's images, taking turns to go first; images/s per round, the median (and best) of the
rounds. It is a report: nothing here fails on a slow figure.
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
    parser.add_argument("--no-threads", action="store_true", help="skip the one-thread case")
    parser.add_argument("--json", metavar="PATH", help="also write every number to PATH as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.images = min(args.rounds, 3), min(args.images, 2)
    if args.rounds < 1 or args.images < 1 or args.warmup < 0:
        parser.error("--rounds and --images must be at least 1, --warmup at least 0")
    args.tiled_rounds = 1 if args.quick else 3
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


class Case:
    """One set of images through the product and the reference, round after round."""

    def __init__(self, detector: Any, jpegs: list[bytes], *, tile: bool = False) -> None:
        from defectlab.inference.engine.letterbox import letterbox, to_tensor
        from defectlab.inference.engine.picture import read_image
        from defectlab.inference.engine.tiling import tiles

        self.detector, self.jpegs, self.tile = detector, jpegs, tile
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
        self.product_rounds: list[float] = []  # images/s
        self.raw_rounds: list[float] = []  # images/s (tiled: whole images' worth of runs)
        self.ratios: list[float] = []  # raw seconds ÷ product seconds, per round
        self.timings: list[Any] = []
        self.shapes_ms: list[float] = []
        self.wall_ms: list[float] = []
        self.found: list[int] = []
        self.tiles = 0

    def product(self, index: int) -> float:
        """Seconds for image ``index``: ``detect`` and ``.shapes()``."""
        begin = perf()
        found = self.detector.detect(self.jpegs[index], tile=self.tile)
        middle = perf()
        found.shapes()
        end = perf()
        self.timings.append(found.timings)
        self.shapes_ms.append((end - middle) * 1e3)
        self.wall_ms.append((end - begin) * 1e3)
        self.found.append(len(found))
        self.tiles = found.tiles
        return end - begin

    def raw(self, index: int) -> float:
        """Seconds for image ``index``'s prepared tensors through ``session.run``."""
        session, name = self.detector.session, self.layout.input_name
        output = self.layout.output_name
        begin = perf()
        for tensor in self.tensors[index]:
            session.run([output], {name: tensor})
        return perf() - begin

    def round(self, turn: int) -> None:
        """Every image once each way, product and reference back to back per image (taking
        turns to go first), so a burst of other work lands on both sides alike."""
        product = raw = 0.0
        for index in range(len(self.jpegs)):
            if (turn + index) % 2:
                raw += self.raw(index)
                product += self.product(index)
            else:
                product += self.product(index)
                raw += self.raw(index)
        self.product_rounds.append(len(self.jpegs) / product)
        self.raw_rounds.append(len(self.jpegs) / raw)
        self.ratios.append(raw / product)

    def measure(self, rounds: int, warmup: int) -> None:
        for turn in range(warmup):
            self.round(turn)
        self.product_rounds, self.raw_rounds, self.ratios = [], [], []
        self.timings, self.shapes_ms, self.wall_ms, self.found = [], [], [], []
        for turn in range(rounds):
            self.round(turn)

    def candidates_per_image(self) -> list[int]:
        """Anchors above conf per image of the set (the raw outputs, one untimed pass)."""
        session, name = self.detector.session, self.layout.input_name
        counts = []
        for tensors in self.tensors:
            out = session.run([self.layout.output_name], {name: tensors[0]})[0][0]
            counts.append(int((out[4:].max(axis=0) > self.detector.conf).sum()))
        return counts

    def summary(self) -> dict[str, Any]:
        product, raw = median(self.product_rounds), median(self.raw_rounds)
        stages = {
            "decode_ms": median([t.decode_ms for t in self.timings]),
            "letterbox_ms": median([t.letterbox_ms for t in self.timings]),
            "run_ms": median([t.run_ms for t in self.timings]),
            "postprocess_ms": median([t.postprocess_ms for t in self.timings]),
            "shapes_ms": median(self.shapes_ms),
        }
        wall = median(self.wall_ms)
        stages["other_ms"] = wall - sum(stages.values())
        return {
            "images": len(self.jpegs),
            "rounds": len(self.product_rounds),
            "product_images_per_s": product,
            "product_best": max(self.product_rounds),
            "raw_images_per_s": raw,
            "raw_best": max(self.raw_rounds),
            "ratio": median(self.ratios),
            "ratio_of_bests": max(self.product_rounds) / max(self.raw_rounds),
            "ratios": self.ratios,
            "product_ms_per_image": 1e3 / product,
            "raw_ms_per_image": 1e3 / raw,
            "wall_ms_median": wall,
            "stages": stages,
            "to_tensor_ms": median(self.tensor_ms),
            "found_median": median([float(n) for n in self.found]),
            "tiles": self.tiles,
            "product_rounds": self.product_rounds,
            "raw_rounds": self.raw_rounds,
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
        f"{name:<22} {row['product_images_per_s']:>8.2f} {row['product_best']:>7.2f}"
        f" {row['raw_images_per_s']:>9.2f} {row['raw_best']:>7.2f} {row['ratio']:>6.2f}"
        f" {row['ratio_of_bests']:>6.2f}"
        f"   {row['product_ms_per_image']:>6.1f} = {s['decode_ms']:>5.1f} + {s['letterbox_ms']:>4.1f}"
        f" + {s['run_ms']:>6.1f} + {s['postprocess_ms']:>4.1f} + {s['shapes_ms']:>4.1f}"
        f" + {s['other_ms']:>4.1f}   {row['raw_ms_per_image']:>6.1f}  {row['to_tensor_ms']:>5.2f}"
    )


def header_row() -> None:
    print(
        f"{'case':<22} {'product':>8} {'best':>7} {'raw run':>9} {'best':>7} {'÷ raw':>6}"
        f" {'bests':>6}"
        f"   {'ms/img':>6} = {'dec':>5} + {'lbox':>4} + {'run':>6} + {'post':>4} + {'shp':>4}"
        f" + {'rest':>4}   {'raw ms':>6}  {'tensor':>5}"
    )


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
    cases: dict[str, Case] = {}
    for name, jpegs in sets.items():
        cases[name] = Case(detector, jpegs)
    if not args.no_threads:
        one = Detector(model, threads=1)
        cases["1920×1080, 1 thread"] = Case(one, sets["1920×1080"])
        cases["1920×1080, spinning"] = Case(spinning(detector, model), sets["1920×1080"])
    print(
        f"\nimages/s, median of {args.rounds} rounds (and best); ms per image: the product's "
        "wall time = decode + letterbox + run + postprocess (NMS) + .shapes() + the rest, "
        "medians of the engine's own timings; raw ms = 1000 ÷ raw images/s; tensor = "
        "to_tensor alone (inside run). ÷ raw: the median over rounds of raw seconds ÷ product "
        "seconds (each image through both back to back); bests: best product ÷ best raw round"
    )
    header_row()
    results["cases"] = {}
    for name, case in cases.items():
        case.measure(args.rounds, args.warmup)
        row = case.summary()
        row["candidates_per_image"] = case.candidates_per_image()
        results["cases"][name] = row
        print_case(name, row)
    tiled_case = Case(detector, tiled, tile=True)
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
