"""A YOLOv8n-shaped ONNX graph with random weights, built with `onnx.helper`, for the engine bench.

The layout is Ultralytics' ``yolov8.yaml`` at scale ``n`` (depth 0.33, width 0.25, max channels
1024), as its ONNX export writes it after fusing: every Conv + BatchNorm + SiLU is one Conv with
a bias followed by Sigmoid × Mul; C2f blocks split the first 1×1 conv's output in two, run
bottlenecks (3×3, 3×3, with a shortcut in the backbone) on the second half and concatenate
everything; SPPF chains three 5×5 max pools; the neck upsamples (nearest ×2) and concatenates
(FPN), then downsamples with stride-2 convs and concatenates again (PAN); the Detect head has,
per level, a box branch (two 3×3 convs, a 1×1 to 4×16 DFL bins) and a class branch (two 3×3
convs, a 1×1 to 80 logits), then the DFL (softmax over 16 bins, a 1×1 conv of weights 0..15),
the anchor points (cell centres) and strides 8, 16, 32, and sigmoid class scores. At 640 the
output is ``1×84×8400``: cx, cy, w, h in input pixels and 80 class scores, which is what the
engine's YOLOv8 layout reads. The metadata is what an Ultralytics export writes (names of the
80 COCO classes, imgsz, stride, task detect, batch, …).

The weights are random (seeded normal kernels), with each conv's "BatchNorm" folded in from
statistics over a few synthetic panels (letterboxed as the engine does): per channel zero mean
and unit spread over them. Without that a deep stack of random convs forgets its input and
gives every image the same scores (`bench/engine.py` calibrates on panels like the ones it
measures, of other seeds). The class head's last convs are made blind to how the images'
mean features differ, and the class logits get one bias, set at build time so that 300 of
the 8400 anchors of the median calibration panel (3.6 %) have a best class score above 0.25:
NMS then has real work, as on a real image with a trained model, not none (all below) or
8400 candidates. Other panels give tens to hundreds (`bench/engine.py` prints how many reach
NMS and how many it keeps); the DFL bins get a slope that favours short distances, so boxes
are tens to a few hundred pixels wide and overlap their neighbours as real ones do.
Building takes a few seconds at 640 (the calibration runs in numpy).

    .venv/bin/python bench/yolo_graph.py            # build one at 640, print its FLOPs and size
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from numpy.lib.stride_tricks import sliding_window_view
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
REG_MAX = 16
STRIDES = (8, 16, 32)
DEPTH, WIDTH, MAX_CHANNELS = 0.33, 0.25, 1024  # yolov8n
# Ultralytics' model summary of the fused YOLOv8n: 3,151,904 parameters, 8.7 GFLOPs at 640.
YOLOV8N_PARAMETERS = 3_151_904
YOLOV8N_GFLOPS = 8.7
# The head's last convs: the class logits get a spread of CLASS_SPREAD over an image and one
# bias for all, set so that CANDIDATE_SHARE of the median calibration image's anchors (300 of
# 8400) have a best score above CONF; the box logits (DFL bins) get BOX_SPREAD and a slope of
# -BIN_SLOPE per bin, so most distances are a few strides (boxes of tens to a few hundred pixels).
CONF = 0.25
CANDIDATE_SHARE = 300 / 8400
CLASS_SPREAD = 1.0
BOX_SPREAD = 1.5
BIN_SLOPE = 0.3
CALIBRATION_SEED = 7
COCO = (  # noqa: SIM905 (a list literal of 80 names is 80 lines)
    "person, bicycle, car, motorcycle, airplane, bus, train, truck, boat, traffic light, "
    "fire hydrant, stop sign, parking meter, bench, bird, cat, dog, horse, sheep, cow, elephant, "
    "bear, zebra, giraffe, backpack, umbrella, handbag, tie, suitcase, frisbee, skis, snowboard, "
    "sports ball, kite, baseball bat, baseball glove, skateboard, surfboard, tennis racket, "
    "bottle, wine glass, cup, fork, knife, spoon, bowl, banana, apple, sandwich, orange, "
    "broccoli, carrot, hot dog, pizza, donut, cake, chair, couch, potted plant, bed, "
    "dining table, toilet, tv, laptop, mouse, remote, keyboard, cell phone, microwave, oven, "
    "toaster, sink, refrigerator, book, clock, vase, scissors, teddy bear, hair drier, "
    "toothbrush"
).split(", ")


def width(channels: int) -> int:
    """Ultralytics' ``make_divisible(min(c, max_channels) * width, 8)``."""
    return math.ceil(min(channels, MAX_CHANNELS) * WIDTH / 8) * 8


def depth(repeats: int) -> int:
    return max(round(repeats * DEPTH), 1)


@dataclass
class _Graph:
    """Nodes and initializers as they are added; ``rng`` draws the weights. ``values`` holds
    each tensor's value on a few calibration images, computed in numpy as the graph grows: each
    Conv's output is normalised per channel over them (zero mean, unit spread), which is what a
    trained network's folded BatchNorm does, and what keeps a deep stack of random convs from
    forgetting its input."""

    rng: np.random.Generator
    values: dict[str, np.ndarray]
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    count: int = 0
    class_bias: float = 0.0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"/{prefix}_{self.count}"

    def constant(self, array: np.ndarray, prefix: str = "const") -> str:
        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(array, name))
        self.values[name] = array
        return name

    def node(self, op: str, inputs: list[str], **attributes: Any) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out + "_node", **attributes))
        if all(name in self.values for name in inputs if name):
            value = _evaluate(op, [self.values[name] for name in inputs if name], attributes)
            if value is not None:
                self.values[out] = value
        return out

    def conv(
        self,
        x: str,
        c_in: int,
        c_out: int,
        k: int = 1,
        s: int = 1,
        *,
        act: bool = True,
        spread: float | None = None,
        shift: np.ndarray | None = None,
    ) -> str:
        """Conv with BatchNorm folded into its weight and bias, then SiLU (``act``), as the
        fused export has it. The BatchNorm's statistics are the calibration images'; its scale
        and shift are 1 and 0 (random ones made the scores swing far more between images),
        except for the head's last convs (``spread`` and ``shift``)."""
        raw = self.rng.standard_normal((c_out, c_in, k, k)).astype(np.float32)
        if spread is not None:
            raw = _blind_to_image_means(raw, self.values[x])
        y = _conv(self.values[x], raw, s)
        mean, std = y.mean(axis=(0, 2, 3)), y.std(axis=(0, 2, 3)) + 1e-6
        gamma = np.full(c_out, 1.0 if spread is None else spread)
        beta = np.zeros(c_out) if shift is None else shift
        weight = (raw * (gamma / std)[:, None, None, None]).astype(np.float32)
        bias = (beta - mean * gamma / std).astype(np.float32)
        out = self.name("conv")
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, self.constant(weight, "w"), self.constant(bias, "b")],
                [out],
                name=out + "_node",
                kernel_shape=[k, k],
                strides=[s, s],
                pads=[k // 2] * 4,
            )
        )
        self.values[out] = _conv(self.values[x], weight, s) + bias[None, :, None, None]
        if not act:
            return out
        return self.node("Mul", [out, self.node("Sigmoid", [out])])

    def split(self, x: str, sizes: list[int]) -> list[str]:
        outs = [self.name("split") for _ in sizes]
        halves = self.constant(np.array(sizes, dtype=np.int64), "sizes")
        self.nodes.append(helper.make_node("Split", [x, halves], outs, axis=1))
        if x in self.values:
            cuts = np.cumsum(sizes)[:-1]
            for out, part in zip(outs, np.split(self.values[x], cuts, axis=1), strict=True):
                self.values[out] = part
        return outs

    def c2f(self, x: str, c_in: int, c_out: int, n: int, shortcut: bool) -> str:
        hidden = c_out // 2
        parts = self.split(self.conv(x, c_in, 2 * hidden), [hidden, hidden])
        for _ in range(n):
            inner = self.conv(self.conv(parts[-1], hidden, hidden, 3), hidden, hidden, 3)
            parts.append(self.node("Add", [parts[-1], inner]) if shortcut else inner)
        return self.conv(self.node("Concat", parts, axis=1), (2 + n) * hidden, c_out)

    def sppf(self, x: str, c_in: int, c_out: int) -> str:
        hidden = c_in // 2
        parts = [self.conv(x, c_in, hidden)]
        for _ in range(3):
            parts.append(
                self.node("MaxPool", [parts[-1]], kernel_shape=[5, 5], strides=[1, 1], pads=[2] * 4)
            )
        return self.conv(self.node("Concat", parts, axis=1), 4 * hidden, c_out)

    def upsample(self, x: str) -> str:
        scales = self.constant(np.array([1, 1, 2, 2], dtype=np.float32), "scales")
        return self.node(
            "Resize",
            [x, "", scales],
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )


def _conv(x: np.ndarray, weight: np.ndarray, stride: int) -> np.ndarray:
    """An N×C×H×W convolution with "same" padding in numpy (the calibration pass)."""
    k = weight.shape[2]
    padded = np.pad(x, ((0, 0), (0, 0), (k // 2, k // 2), (k // 2, k // 2)))
    windows = sliding_window_view(padded, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nihwkl,oikl->nohw", windows, weight, optimize=True).astype(np.float32)


def _blind_to_image_means(weight: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A 1×1 conv's ``weight`` made blind to how the images' mean features differ (over the
    calibration images ``x``), as a trained head is to an image's overall brightness: with
    random weights each image's scores otherwise move together, and one image has no
    candidate where the next has thousands."""
    means = x.mean(axis=(2, 3))
    spread = means - means.mean(axis=0)
    basis = np.linalg.svd(spread, full_matrices=False)[2]  # rows span the differences
    flat = weight[:, :, 0, 0]
    return (flat - flat @ basis.T @ basis)[:, :, None, None].astype(np.float32)


def _evaluate(op: str, inputs: list[np.ndarray], attributes: dict[str, Any]) -> np.ndarray | None:
    """The calibration value of the backbone's and neck's other ops (None: not needed)."""
    if op == "Sigmoid":
        return 1.0 / (1.0 + np.exp(-inputs[0]))
    if op == "Mul":
        return inputs[0] * inputs[1]
    if op == "Add":
        return inputs[0] + inputs[1]
    if op == "Concat":
        return np.concatenate(inputs, axis=attributes["axis"])
    if op == "MaxPool":
        padded = np.pad(inputs[0], ((0, 0), (0, 0), (2, 2), (2, 2)), constant_values=-np.inf)
        return sliding_window_view(padded, (5, 5), axis=(2, 3)).max(axis=(-2, -1))
    if op == "Resize":
        return inputs[0].repeat(2, axis=2).repeat(2, axis=3)  # nearest, ×2
    return None


def calibration_panels(size: int) -> list[np.ndarray]:
    """The default calibration set: four synthetic metal panels (16:9, 6:5, 4:3, 16:9, twice
    ``size`` wide), as H×W×3 BGR arrays."""
    from defectlab.synthetic import defect_image

    shapes = ((16, 9), (6, 5), (4, 3), (16, 9))
    return [
        np.ascontiguousarray(
            np.asarray(defect_image(seed, size * w // 8, size * h // 8)[0])[..., ::-1]
        )
        for seed, (w, h) in enumerate(shapes, start=CALIBRATION_SEED)
    ]


def _calibration_tensor(images: Sequence[np.ndarray], size: int) -> np.ndarray:
    """``images`` (BGR) letterboxed as the engine does it: N×3×size×size in [0, 1].
    BatchNorm's statistics are a dataset's, not one image's: normalised on one image, the
    others' scores drift far from it."""
    from defectlab.inference.engine.letterbox import letterbox, to_tensor

    return to_tensor([letterbox(image, (size, size))[0] for image in images])


def _backbone_and_neck(g: _Graph, image: str) -> list[tuple[str, int]]:
    """yolov8.yaml's layers 0–21: the three feature maps the head reads, with their channels."""
    c = {k: width(k) for k in (64, 128, 256, 512, 1024)}
    x = g.conv(image, 3, c[64], 3, 2)  # 0 P1/2
    x = g.conv(x, c[64], c[128], 3, 2)  # 1 P2/4
    x = g.c2f(x, c[128], c[128], depth(3), True)  # 2
    x = g.conv(x, c[128], c[256], 3, 2)  # 3 P3/8
    p3 = g.c2f(x, c[256], c[256], depth(6), True)  # 4
    x = g.conv(p3, c[256], c[512], 3, 2)  # 5 P4/16
    p4 = g.c2f(x, c[512], c[512], depth(6), True)  # 6
    x = g.conv(p4, c[512], c[1024], 3, 2)  # 7 P5/32
    x = g.c2f(x, c[1024], c[1024], depth(3), True)  # 8
    p5 = g.sppf(x, c[1024], c[1024])  # 9
    x = g.node("Concat", [g.upsample(p5), p4], axis=1)  # 10, 11
    h4 = g.c2f(x, c[1024] + c[512], c[512], depth(3), False)  # 12
    x = g.node("Concat", [g.upsample(h4), p3], axis=1)  # 13, 14
    out3 = g.c2f(x, c[512] + c[256], c[256], depth(3), False)  # 15 (P3/8-small)
    x = g.node("Concat", [g.conv(out3, c[256], c[256], 3, 2), h4], axis=1)  # 16, 17
    out4 = g.c2f(x, c[256] + c[512], c[512], depth(3), False)  # 18 (P4/16-medium)
    x = g.node("Concat", [g.conv(out4, c[512], c[512], 3, 2), p5], axis=1)  # 19, 20
    out5 = g.c2f(x, c[512] + c[1024], c[1024], depth(3), False)  # 21 (P5/32-large)
    return [(out3, c[256]), (out4, c[512]), (out5, c[1024])]


def _anchors(imgsz: int) -> tuple[np.ndarray, np.ndarray]:
    """Ultralytics' ``make_anchors`` (cell centres, offset 0.5) and the stride of each anchor."""
    points, strides = [], []
    for stride in STRIDES:
        cells = math.ceil(imgsz / stride)
        ys, xs = np.meshgrid(np.arange(cells) + 0.5, np.arange(cells) + 0.5, indexing="ij")
        points.append(np.stack([xs.ravel(), ys.ravel()]))
        strides.append(np.full(cells * cells, stride))
    return (
        np.concatenate(points, axis=1).astype(np.float32)[None],  # 1×2×A
        np.concatenate(strides).astype(np.float32)[None, None],  # 1×1×A
    )


def _class_bias(g: _Graph, logits: list[str]) -> float:
    """The bias put on every class logit so that the median calibration image has
    `CANDIDATE_SHARE` of its anchors with a best class score above `CONF` (the logits are
    heavy-tailed: an edge or a defect scores far above a plain surface, so a share pooled over
    all images would leave the plain ones without any); written into the levels' last convs."""
    best = np.concatenate(
        [g.values[name].max(axis=1).reshape(len(g.values[name]), -1) for name in logits], axis=1
    )
    typical = float(np.median(np.quantile(best, 1 - CANDIDATE_SHARE, axis=1)))
    bias = math.log(CONF / (1 - CONF)) - typical
    conv_bias = {node.output[0]: node.input[2] for node in g.nodes if node.op_type == "Conv"}
    wanted = {conv_bias[name] for name in logits}
    for index, init in enumerate(g.initializers):
        if init.name in wanted:
            shifted = numpy_helper.to_array(init) + np.float32(bias)
            g.initializers[index] = numpy_helper.from_array(shifted, init.name)
    return bias


def _detect(g: _Graph, levels: list[tuple[str, int]], classes: int, imgsz: int) -> str:
    """The Detect head: per level box and class branches, then DFL, anchors, strides, sigmoid."""
    c2 = max(16, levels[0][1] // 4, REG_MAX * 4)
    c3 = max(levels[0][1], min(classes, 100))
    flat, logits = [], []
    bin_shift = np.tile(-BIN_SLOPE * np.arange(REG_MAX), 4)
    for x, channels in levels:
        box = g.conv(g.conv(x, channels, c2, 3), c2, c2, 3)
        box = g.conv(box, c2, 4 * REG_MAX, act=False, spread=BOX_SPREAD, shift=bin_shift)
        cls = g.conv(g.conv(x, channels, c3, 3), c3, c3, 3)
        cls = g.conv(cls, c3, classes, act=False, spread=CLASS_SPREAD, shift=np.zeros(classes))
        logits.append(cls)
        both = g.node("Concat", [box, cls], axis=1)
        shape = g.constant(np.array([1, 4 * REG_MAX + classes, -1], dtype=np.int64), "shape")
        flat.append(g.node("Reshape", [both, shape]))
    g.class_bias = _class_bias(g, logits)
    heads = g.node("Concat", flat, axis=2)  # 1×144×A
    sizes = g.constant(np.array([4 * REG_MAX, classes], dtype=np.int64), "split")
    box, cls = g.name("box"), g.name("cls")
    g.nodes.append(helper.make_node("Split", [heads, sizes], [box, cls], axis=1))
    # DFL: 1×64×A → 1×4×16×A → 1×16×4×A, softmax over the bins, expectation by a 1×1 conv.
    bins = g.node("Reshape", [box, g.constant(np.array([1, 4, REG_MAX, -1], np.int64), "shape")])
    bins = g.node("Softmax", [g.node("Transpose", [bins], perm=[0, 2, 1, 3])], axis=1)
    weights = np.arange(REG_MAX, dtype=np.float32).reshape(1, REG_MAX, 1, 1)
    dist = g.node("Conv", [bins, g.constant(weights, "dfl")], kernel_shape=[1, 1])
    dist = g.node("Reshape", [dist, g.constant(np.array([1, 4, -1], np.int64), "shape")])
    # dist2bbox(xywh=True): lt and rb distances around the anchor point, then × stride.
    two = g.constant(np.array([2, 2], dtype=np.int64), "split")
    lt, rb = g.name("lt"), g.name("rb")
    g.nodes.append(helper.make_node("Split", [dist, two], [lt, rb], axis=1))
    points, strides = _anchors(imgsz)
    anchor = g.constant(points, "anchors")
    x1y1 = g.node("Sub", [anchor, lt])
    x2y2 = g.node("Add", [anchor, rb])
    centre = g.node("Div", [g.node("Add", [x1y1, x2y2]), g.constant(np.float32(2), "two")])
    size = g.node("Sub", [x2y2, x1y1])
    xywh = g.node("Mul", [g.node("Concat", [centre, size], axis=1), g.constant(strides, "strides")])
    out = "output0"
    g.nodes.append(
        helper.make_node("Concat", [xywh, g.node("Sigmoid", [cls])], [out], name="output0", axis=1)
    )
    return out


def metadata(imgsz: int, classes: int, class_bias: float) -> dict[str, str]:
    """What Ultralytics' ONNX export writes into ``metadata_props`` (the description says how
    this graph was made)."""
    names = {k: COCO[k] if k < len(COCO) else f"class{k}" for k in range(classes)}
    return {
        "description": "Random-weight YOLOv8n-shaped graph (DefectLab bench/yolo_graph.py), "
        f"class logit bias {class_bias:.3f}",
        "author": "DefectLab bench",
        "version": "8.3.0",
        "license": "AGPL-3.0 License (https://ultralytics.com/license)",
        "stride": "32",
        "task": "detect",
        "batch": "1",
        "imgsz": f"[{imgsz}, {imgsz}]",
        "names": repr(names),
    }


def build(
    imgsz: int = 640,
    *,
    classes: int = 80,
    seed: int = 0,
    calibration: Sequence[np.ndarray] | None = None,
) -> bytes:
    """The serialized model: input ``images`` 1×3×imgsz×imgsz, output ``output0``
    1×(4+classes)×A (A = 8400 at 640). ``imgsz`` must be a multiple of 32. ``calibration``:
    the images (H×W×3 BGR uint8, any size) whose statistics the folded BatchNorms and the class
    bias are taken from; by default `calibration_panels`."""
    if imgsz % 32 or imgsz < 32:
        raise ValueError(f"imgsz must be a positive multiple of 32, got {imgsz}")
    images = calibration_panels(imgsz) if calibration is None else calibration
    g = _Graph(np.random.default_rng(seed), {"images": _calibration_tensor(images, imgsz)})
    out = _detect(g, _backbone_and_neck(g, "images"), classes, imgsz)
    anchors = sum((imgsz // s) ** 2 for s in STRIDES)
    graph = helper.make_graph(
        g.nodes,
        "yolov8n-random",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, imgsz, imgsz])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 4 + classes, anchors])],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    model.producer_name = "defectlab-bench"
    for key, value in metadata(imgsz, classes, g.class_bias).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model.SerializeToString()


def conv_flops(model: bytes) -> int:
    """Σ over Conv nodes of 2·Cin·Cout·k²·Hout·Wout / groups (multiply and add counted apart,
    as Ultralytics' GFLOPs figure counts them), from the graph's inferred shapes."""
    proto = onnx.shape_inference.infer_shapes(onnx.load_from_string(model))
    shapes = {
        info.name: [d.dim_value for d in info.type.tensor_type.shape.dim]
        for info in (*proto.graph.value_info, *proto.graph.output)
    }
    weights = {init.name: list(init.dims) for init in proto.graph.initializer}
    total = 0
    for node in proto.graph.node:
        if node.op_type != "Conv":
            continue
        c_out, c_in_per_group, kh, kw = weights[node.input[1]]
        out = shapes[node.output[0]]
        total += 2 * c_out * c_in_per_group * kh * kw * math.prod(out[2:])
    return total


def parameters(model: bytes) -> int:
    """Conv weights and biases, the DFL's 16 included: the fused network's parameters as
    Ultralytics' model summary counts them (anchors and shape constants are not parameters)."""
    proto = onnx.load_from_string(model)
    conv_inputs = {
        name for node in proto.graph.node if node.op_type == "Conv" for name in node.input[1:]
    }
    return sum(math.prod(init.dims) for init in proto.graph.initializer if init.name in conv_inputs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/yolo_graph.py", description=__doc__.split("\n")[0])
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--out", metavar="PATH", help="also write the .onnx file to PATH")
    args = parser.parse_args(argv)
    model = build(args.imgsz)
    print(
        f"YOLOv8n-shaped graph at {args.imgsz}: {conv_flops(model) / 1e9:.2f} GFLOPs (Conv), "
        f"{parameters(model):,} parameters, {len(model) / 1e6:.1f} MB "
        f"(Ultralytics' YOLOv8n: {YOLOV8N_GFLOPS} GFLOPs at 640, {YOLOV8N_PARAMETERS:,} parameters)"
    )
    if args.out:
        with open(args.out, "wb") as file:
            file.write(model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
