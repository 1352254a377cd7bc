"""Train the demo defect detector on synthetic panels, export it to ONNX, and score it.

The demo project's pre-annotation proposals come from this model: a small anchor-free detector
in plain torch, trained on `defectlab.synthetic` panels (scratch, dent, stain), exported in the
YOLOv8 raw layout (one output ``1×(4+nc)×N``: cx, cy, w, h in input pixels, then the class
scores after a sigmoid) with the metadata Ultralytics writes, so our engine reads it like any
YOLOv8 export. Torch is a training-only dependency (the ``train`` extra); nothing at run time
imports it.

How to run (from the repository root; a separate environment keeps torch out of the app's)::

    python3 -m venv /tmp/trainvenv
    /tmp/trainvenv/bin/pip install -e '.[train]'     # torch + the engine's deps
    # (CPU is enough: add --extra-index-url https://download.pytorch.org/whl/cpu for the small
    # CPU-only torch wheel instead of the CUDA one)
    PYTHONPATH=src /tmp/trainvenv/bin/python scripts/train_demo_model.py

Options: ``--out`` (default src/defectlab/inference/demo/defect-detector.onnx), ``--train``
panels (3000), ``--held-out`` panels (300), ``--epochs`` (12), ``--size`` (320), ``--threads``
(1: on a shared machine one torch thread beat two, which wait on each other), ``--eval-only``
(score the existing ``--out`` file; no torch needed).

What it prints: the panel generation time, one line per epoch (loss parts, seconds), then the
evaluation: mAP50 over the held-out panels and AP50 per class, computed here (all-point
interpolated AP, COCO-style greedy matching at IoU 0.5) on the detections of OUR engine
(`defectlab.inference.engine.Detector` on the exported bytes, conf 0.001, IoU 0.7), not torch's.

How long: about 20 minutes on a 2-core machine (panels ~2 min, training ~15 min, evaluation
~1 min). The ONNX file is rewritten after every epoch.

Reproducibility: training panels are ``defect_image(seed)`` for seeds 100000..100000+train-1,
held-out panels seeds 900000..900000+held-out-1 (disjoint from each other, from the demo
project's seeds 2026.. and from the tests'); torch, numpy and the shuffling are seeded (0), and
torch runs deterministic CPU kernels, so a rerun with the same versions and thread count gives
the same weights (other versions or thread counts give a model of the same quality, not the same
bytes).

Preprocessing is the engine's own: JPEG bytes decoded by `picture.read_image`, letterboxed by
`letterbox.letterbox` (INTER_LINEAR, gray 114), RGB, /255 — the model trains on exactly the
tensors it later sees.
"""

from __future__ import annotations

import argparse
import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from defectlab.inference.engine.letterbox import letterbox
from defectlab.inference.engine.picture import read_image
from defectlab.synthetic import DEFECT_KINDS, defect_image, defect_images, encode

TRAIN_SEED = 100_000
HELD_OUT_SEED = 900_000
STRIDES = (8, 16, 32)
# A box goes to the level whose stride suits its longest side (input pixels): up to 64 px on
# stride 8, up to 128 on 16, the rest on 32.
LEVEL_LIMITS = (64.0, 128.0, math.inf)
CENTRE_RADIUS = 1.5  # positives: anchor points within this many strides of the box centre
DEFAULT_OUT = (
    Path(__file__).resolve().parents[1] / "src/defectlab/inference/demo/defect-detector.onnx"
)


# --- data -------------------------------------------------------------------------------------


def _panel(seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One training panel as the engine sees it: letterboxed RGB uint8 (size×size×3) and its
    boxes (K×5: class, x1, y1, x2, y2 in input pixels)."""
    image, defects = defect_image(seed)
    boxed, where = letterbox(read_image(encode(image)), (size, size))
    height, width = where.image_size
    gain = min(size / height, size / width)
    rows = [
        (
            DEFECT_KINDS.index(d.kind),
            d.box[0] * gain + where.left,
            d.box[1] * gain + where.top,
            d.box[2] * gain + where.left,
            d.box[3] * gain + where.top,
        )
        for d in defects
    ]
    return np.ascontiguousarray(boxed[:, :, ::-1]), np.array(rows, np.float32).reshape(-1, 5)


def _panels(first: int, count: int, size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    seeds = range(first, first + count)
    with ProcessPoolExecutor(max_workers=2) as pool:
        done = list(pool.map(_panel, seeds, [size] * count, chunksize=32))
    return np.stack([image for image, _ in done]), [boxes for _, boxes in done]


# --- model ------------------------------------------------------------------------------------


def build(nc: int):  # type: ignore[no-untyped-def]  (torch is optional: imported here)
    import torch
    from torch import nn

    def conv(cin: int, cout: int, k: int = 3, s: int = 1) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout), nn.SiLU()
        )

    class Residual(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.body = nn.Sequential(conv(c, c // 2, 1), conv(c // 2, c))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.body(x)

    class Head(nn.Module):
        """Box (dx, dy, log w, log h relative to the anchor point, in strides) and class logits
        from one shared 3×3 layer."""

        def __init__(self, c: int) -> None:
            super().__init__()
            self.shared = conv(c, c)
            self.box = nn.Conv2d(c, 4, 1)
            self.cls = nn.Conv2d(c, nc, 1)
            nn.init.constant_(self.cls.bias, -4.6)  # a prior of 1%: few anchors are defects
            nn.init.zeros_(self.box.weight)
            nn.init.zeros_(self.box.bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.shared(x)
            return torch.cat([self.box(x), self.cls(x)], 1)

    class Detector(nn.Module):
        """Stride-2 stages down to /32, a small top-down path back to /8, a head per level
        (64 channels each).
        In training it returns raw maps; exported (``export=True``) the YOLOv8 raw layout."""

        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(conv(3, 16, 3, 2), conv(16, 32, 3, 2), Residual(32))
            self.p3 = nn.Sequential(conv(32, 64, 3, 2), Residual(64), Residual(64))
            self.p4 = nn.Sequential(conv(64, 96, 3, 2), Residual(96), Residual(96))
            self.p5 = nn.Sequential(conv(96, 128, 3, 2), Residual(128))
            self.lat5 = conv(128, 64, 1)
            self.top4 = conv(96 + 64, 64, 1)
            self.top3 = conv(64 + 64, 64)
            self.down4 = conv(64, 64, 3, 2)
            self.mid4 = conv(64 + 64, 64)
            self.out5 = conv(128, 64, 1)
            self.heads = nn.ModuleList([Head(64), Head(64), Head(64)])
            self.export = False
            self.size = 0  # the square input size, fixed when exported

        def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
            up = nn.functional.interpolate
            c3 = self.p3(self.stem(x))
            c4 = self.p4(c3)
            c5 = self.p5(c4)
            t4 = self.top4(torch.cat([up(self.lat5(c5), scale_factor=2.0), c4], 1))
            f3 = self.top3(torch.cat([up(t4, scale_factor=2.0), c3], 1))
            f4 = self.mid4(torch.cat([self.down4(f3), t4], 1))
            maps = [head(f) for head, f in zip(self.heads, (f3, f4, self.out5(c5)), strict=True)]
            if not self.export:
                return maps
            return decode_maps(maps, self.size, sigmoid=True)

    return Detector()


def anchors(size: int, device: str = "cpu"):  # type: ignore[no-untyped-def]
    """Anchor points (N×2, cell centres in input pixels) and their strides (N), level by level."""
    import torch

    points, strides = [], []
    for s in STRIDES:
        n = size // s
        ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        points.append((torch.stack([xs, ys], -1).reshape(-1, 2).float() + 0.5) * s)
        strides.append(torch.full((n * n,), float(s)))
    return torch.cat(points).to(device), torch.cat(strides).to(device)


def decode_maps(maps, size: int, *, sigmoid: bool):  # type: ignore[no-untyped-def]
    """Raw head maps → B×(4+nc)×N: cx, cy, w, h in input pixels, then class logits or scores."""
    import torch

    flat = torch.cat([m.flatten(2) for m in maps], 2)  # B×(4+nc)×N
    points, strides = anchors(size, str(flat.device))
    xy = points.T[None] + flat[:, :2] * strides
    wh = torch.exp(flat[:, 2:4].clamp(-6, 6)) * strides * 2
    cls = flat[:, 4:].sigmoid() if sigmoid else flat[:, 4:]
    return torch.cat([xy, wh, cls], 1)


# --- loss -------------------------------------------------------------------------------------


def _xyxy(box):  # type: ignore[no-untyped-def]
    import torch

    xy, wh = box[..., :2], box[..., 2:4]
    return torch.cat([xy - wh / 2, xy + wh / 2], -1)


def _giou(a, b):  # type: ignore[no-untyped-def]
    """IoU and GIoU of matching rows of two N×4 xyxy tensors."""
    import torch

    lt, rb = torch.max(a[:, :2], b[:, :2]), torch.min(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area = (a[:, 2:] - a[:, :2]).prod(1) + (b[:, 2:] - b[:, :2]).prod(1)
    union = area - inter + 1e-7
    iou = inter / union
    hull = (torch.max(a[:, 2:], b[:, 2:]) - torch.min(a[:, :2], b[:, :2])).prod(1) + 1e-7
    return iou, iou - (hull - union) / hull


def assign(targets: list[np.ndarray], size: int):  # type: ignore[no-untyped-def]
    """Positive anchors per box, fixed by geometry (the synthetic defects never overlap, so an
    anchor point serves at most one box): on the box's level, the anchor points inside the box
    and within `CENTRE_RADIUS` strides of its centre, and always the one nearest the centre (a
    dent a few pixels wide may contain no anchor point). Returns (image index, anchor index,
    class, box xyxy) for every positive."""
    import torch

    points, strides = anchors(size)
    rows: list[tuple[int, int, int, list[float]]] = []
    level_of = torch.bucketize(strides, torch.tensor([8.5, 16.5]))
    for b, boxes in enumerate(targets):
        for k, x1, y1, x2, y2 in boxes.tolist():
            level = next(
                i for i, limit in enumerate(LEVEL_LIMITS) if max(x2 - x1, y2 - y1) <= limit
            )
            s = STRIDES[level]
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            on_level = level_of == level
            px, py = points[:, 0], points[:, 1]
            inside = (px > x1) & (px < x2) & (py > y1) & (py < y2)
            near = ((px - cx).abs() < CENTRE_RADIUS * s) & ((py - cy).abs() < CENTRE_RADIUS * s)
            chosen = set((on_level & inside & near).nonzero().flatten().tolist())
            distance = (px - cx) ** 2 + (py - cy) ** 2 + (~on_level) * 1e12
            chosen.add(int(distance.argmin()))
            rows += [(b, n, int(k), [x1, y1, x2, y2]) for n in chosen]
    return rows


def loss(maps, targets: list[np.ndarray], size: int):  # type: ignore[no-untyped-def]
    """GIoU on the positives' boxes plus BCE on every anchor's class scores, the positives'
    target being the IoU their box reaches (so a score ranks boxes by quality, which NMS and
    mAP reward)."""
    import torch

    out = decode_maps(maps, size, sigmoid=False).transpose(1, 2)  # B×N×(4+nc)
    logits = out[..., 4:]
    target = torch.zeros_like(logits)
    rows = assign(targets, size)
    if not rows:
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="sum")
        return bce / len(targets), torch.zeros(()), bce / len(targets)
    b = torch.tensor([r[0] for r in rows])
    n = torch.tensor([r[1] for r in rows])
    k = torch.tensor([r[2] for r in rows])
    truth = torch.tensor([r[3] for r in rows])
    iou, giou = _giou(_xyxy(out[b, n, :4]), truth)
    target[b, n, k] = iou.detach().clamp(min=0.05)
    box_loss = (1 - giou).mean()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="sum")
    cls_loss = bce / len(rows)
    return 5.0 * box_loss + cls_loss, box_loss.detach(), cls_loss.detach()


# --- training and export ----------------------------------------------------------------------


def train(args: argparse.Namespace) -> bytes:
    import copy

    import torch

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(0)

    start = time.perf_counter()
    images, boxes = _panels(TRAIN_SEED, args.train, args.size)
    print(f"{args.train} training panels in {time.perf_counter() - start:.0f} s", flush=True)

    model = build(len(DEFECT_KINDS))
    ema = copy.deepcopy(model).eval()
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params / 1e6:.2f} M parameters", flush=True)
    steps = args.epochs * math.ceil(args.train / args.batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    warmup = min(300, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda i: (
            min(1.0, (i + 1) / warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * i / steps)))
        ),
    )
    step = 0
    for epoch in range(args.epochs):
        model.train()
        began = time.perf_counter()
        order = rng.permutation(args.train)
        totals = np.zeros(3)
        for first in range(0, args.train, args.batch):
            batch = order[first : first + args.batch]
            pixels, targets = _augmented(images[batch], [boxes[i] for i in batch], rng, args.size)
            x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
            total, box_part, cls_part = loss(model(x), targets, args.size)
            optimizer.zero_grad()
            total.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            schedule.step()
            step += 1
            _update_ema(ema, model, step)
            totals += (float(total.detach()), float(box_part), float(cls_part))
        batches = math.ceil(args.train / args.batch)
        loss_, box_, cls_ = totals / batches
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {loss_:.3f} (box {box_:.3f}, cls {cls_:.3f})"
            f" {time.perf_counter() - began:.0f} s",
            flush=True,
        )
        # Written after every epoch: a run stopped early leaves its latest model behind.
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(export(copy.deepcopy(ema), args.size))
    return args.out.read_bytes()


def _augmented(
    images: np.ndarray, boxes: list[np.ndarray], rng: np.random.Generator, size: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Random left-right and up-down flips (a panel's defects look the same mirrored; the
    letterbox border is symmetric, so it stays where the engine puts it)."""
    images = images.copy()
    out = []
    for i, rows in enumerate(boxes):
        rows = rows.copy()
        if rng.random() < 0.5:
            images[i] = images[i][:, ::-1]
            rows[:, [1, 3]] = size - rows[:, [3, 1]]
        if rng.random() < 0.5:
            images[i] = images[i][::-1]
            rows[:, [2, 4]] = size - rows[:, [4, 2]]
        out.append(rows)
    return images, out


def _update_ema(ema, model, step: int) -> None:  # type: ignore[no-untyped-def]
    import torch

    decay = 0.999 * (1 - math.exp(-step / 500))
    with torch.no_grad():
        for e, m in zip(ema.state_dict().values(), model.state_dict().values(), strict=True):
            if e.dtype.is_floating_point:
                e.mul_(decay).add_(m.detach(), alpha=1 - decay)
            else:
                e.copy_(m)


def export(model, size: int) -> bytes:  # type: ignore[no-untyped-def]
    """The model as ONNX bytes in the YOLOv8 raw layout, with Ultralytics' metadata keys."""
    import io

    import onnx
    import torch

    model = model.eval()
    model.export = True
    model.size = size
    buffer = io.BytesIO()
    torch.onnx.export(
        model,
        (torch.zeros(1, 3, size, size),),
        buffer,
        input_names=["images"],
        output_names=["output0"],
        opset_version=17,
        dynamo=False,  # the TorchScript exporter: plain ops, no onnxscript needed
    )
    graph = onnx.load_from_string(buffer.getvalue())
    names = {i: kind for i, kind in enumerate(DEFECT_KINDS)}
    metadata = {
        "description": "DefectLab demo defect detector (scratch, dent, stain), trained on "
        "synthetic panels by scripts/train_demo_model.py",
        "author": "DefectLab",
        "license": "Apache-2.0",
        "version": "1.0",
        "stride": str(max(STRIDES)),
        "task": "detect",
        "batch": "1",
        "imgsz": str([size, size]),
        "names": str(names),
    }
    for key, value in metadata.items():
        graph.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(graph)
    return graph.SerializeToString()


# --- evaluation -------------------------------------------------------------------------------


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(2)
    area_a = (a[:, 2:] - a[:, :2]).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).prod(1)
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def average_precision(scores: np.ndarray, hits: np.ndarray, positives: int) -> float:
    """All-point interpolated AP: the area under the precision envelope over recall."""
    if positives == 0:
        return math.nan
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(hits[order])
    fp = np.cumsum(~hits[order])
    recall = np.concatenate([[0.0], tp / positives, [1.0]])
    precision = np.concatenate([[1.0], tp / np.maximum(tp + fp, 1e-9), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.nonzero(recall[1:] != recall[:-1])[0]
    return float(((recall[steps + 1] - recall[steps]) * precision[steps + 1]).sum())


def evaluate(model: bytes, count: int) -> dict[str, float]:
    """AP50 per class and their mean over ``count`` held-out panels, on the engine's output.

    Matching is COCO's: per image and class, detections by falling score each take the
    unmatched truth box they overlap most at IoU ≥ 0.5; the rest are false positives."""
    from defectlab.inference.engine import Detector

    detector = Detector(model, conf=0.001, iou=0.7)
    scores: list[list[float]] = [[] for _ in DEFECT_KINDS]
    hits: list[list[bool]] = [[] for _ in DEFECT_KINDS]
    positives = [0] * len(DEFECT_KINDS)
    for _name, data, defects in defect_images(count, seed=HELD_OUT_SEED):
        found = detector.detect(data)
        for k, kind in enumerate(DEFECT_KINDS):
            truth = np.array([d.box for d in defects if d.kind == kind], np.float64).reshape(-1, 4)
            positives[k] += len(truth)
            mine = found.classes == k
            boxes, conf = found.boxes[mine], found.scores[mine]
            order = np.argsort(-conf, kind="stable")
            taken = np.zeros(len(truth), dtype=bool)
            overlap = _iou_matrix(boxes[order], truth) if len(truth) else None
            for rank, index in enumerate(order):
                hit = False
                if overlap is not None:
                    ious = np.where(taken, -1.0, overlap[rank])
                    best = int(ious.argmax())
                    if ious[best] >= 0.5:
                        taken[best] = hit = True
                scores[k].append(float(conf[index]))
                hits[k].append(hit)
    result = {
        kind: average_precision(np.array(scores[k]), np.array(hits[k], bool), positives[k])
        for k, kind in enumerate(DEFECT_KINDS)
    }
    result["mAP50"] = float(np.nanmean(list(result.values())))
    result["truth boxes"] = float(sum(positives))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--train", type=int, default=3000, help="training panels")
    parser.add_argument("--held-out", type=int, default=300, help="evaluation panels")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--size", type=int, default=320, help="square input size")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-only", action="store_true", help="score --out, do not train")
    args = parser.parse_args()
    started = time.perf_counter()
    if not args.eval_only:
        model = train(args)
        print(f"wrote {args.out} ({len(model) / 1e6:.2f} MB)", flush=True)
    result = evaluate(args.out.read_bytes(), args.held_out)
    print(
        f"held-out panels: {args.held_out} (seeds {HELD_OUT_SEED}..), truth boxes: "
        f"{int(result.pop('truth boxes'))}"
    )
    for kind in DEFECT_KINDS:
        print(f"AP50 {kind}: {result[kind]:.3f}")
    print(f"mAP50: {result['mAP50']:.3f}  ({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
