"""Small ONNX graphs built with `onnx.helper` for the engine's tests: models whose outputs are
constants (so the expected detections can be computed by hand) or a simple function of the
image (a bright-blob "detector"), each in one of the YOLO output layouts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
Dim = int | str


def _value(name: str, shape: Sequence[Dim], kind: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, kind, list(shape))


def _finish(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    initializers: list[onnx.TensorProto],
    metadata: Mapping[str, str] | None,
) -> bytes:
    graph = helper.make_graph(nodes, "test", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model.SerializeToString()


def constant_model(
    outputs: Mapping[str, np.ndarray],
    *,
    input_shape: Sequence[Dim] = (1, 3, 640, 640),
    output_shapes: Mapping[str, Sequence[Dim]] | None = None,
    metadata: Mapping[str, str] | None = None,
    input_type: int = TensorProto.FLOAT,
) -> bytes:
    """A model whose outputs are the given arrays (each with a leading batch of 1), repeated
    along the input's batch, whatever the image. ``output_shapes`` overrides the declared
    shapes (symbolic dims, or a lie)."""
    nodes = [
        helper.make_node("Shape", ["images"], ["input_shape"]),
        helper.make_node("Slice", ["input_shape", "zero", "one"], ["batch"]),
    ]
    initializers = [
        numpy_helper.from_array(np.array([0], dtype=np.int64), "zero"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "one"),
    ]
    declared = []
    for name, array in outputs.items():
        array = np.asarray(array, dtype=np.float32)
        initializers.append(numpy_helper.from_array(array, f"{name}_value"))
        initializers.append(
            numpy_helper.from_array(np.array(array.shape[1:], dtype=np.int64), f"{name}_rest")
        )
        nodes.append(
            helper.make_node("Concat", ["batch", f"{name}_rest"], [f"{name}_shape"], axis=0)
        )
        nodes.append(helper.make_node("Expand", [f"{name}_value", f"{name}_shape"], [name]))
        batch = input_shape[0]
        shape = (output_shapes or {}).get(name, (batch, *array.shape[1:]))
        declared.append(_value(name, shape))
    image = _value("images", input_shape, input_type)
    return _finish(nodes, [image], declared, initializers, metadata)


CELL = 32


def blob_model(
    *,
    size: int = 640,
    threshold: float = 0.5,
    metadata: Mapping[str, str] | None = None,
) -> bytes:
    """A YOLOv8-raw "detector" of bright blobs, one class: the mean of the three channels is
    thresholded, max-pooled over 32×32 cells, and each cell becomes a candidate box (the cell)
    scored 1 if any pixel in it was brighter than ``threshold``, else 0. A defect a few
    pixels wide survives in a native-resolution tile and vanishes when a large image is
    shrunk to ``size``."""
    cells = size // CELL
    ys, xs = np.mgrid[0:cells, 0:cells]
    boxes = np.stack(
        [
            (xs.ravel() + 0.5) * CELL,
            (ys.ravel() + 0.5) * CELL,
            np.full(cells * cells, CELL),
            np.full(cells * cells, CELL),
        ]
    ).astype(np.float32)[None]  # 1×4×N, centre and size
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["gray"], axes=[1], keepdims=1),
        helper.make_node("Greater", ["gray", "threshold"], ["bright"]),
        helper.make_node("Cast", ["bright"], ["bright_float"], to=TensorProto.FLOAT),
        helper.make_node(
            "MaxPool", ["bright_float"], ["pooled"], kernel_shape=[CELL, CELL], strides=[CELL, CELL]
        ),
        helper.make_node("Shape", ["images"], ["input_shape"]),
        helper.make_node("Slice", ["input_shape", "zero", "one"], ["batch"]),
        helper.make_node("Concat", ["batch", "score_rest"], ["score_shape"], axis=0),
        helper.make_node("Reshape", ["pooled", "score_shape"], ["scores"]),
        helper.make_node("Concat", ["batch", "box_rest"], ["box_shape"], axis=0),
        helper.make_node("Expand", ["boxes", "box_shape"], ["batch_boxes"]),
        helper.make_node("Concat", ["batch_boxes", "scores"], ["output0"], axis=1),
    ]
    initializers = [
        numpy_helper.from_array(np.array(threshold, dtype=np.float32), "threshold"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "zero"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "one"),
        numpy_helper.from_array(np.array([1, cells * cells], dtype=np.int64), "score_rest"),
        numpy_helper.from_array(np.array([4, cells * cells], dtype=np.int64), "box_rest"),
        numpy_helper.from_array(boxes, "boxes"),
    ]
    return _finish(
        nodes,
        [_value("images", ("batch", 3, size, size))],
        [_value("output0", ("batch", 5, cells * cells))],
        initializers,
        {"names": "{0: 'blob'}", "task": "detect", **(metadata or {})},
    )


def v8_output(
    boxes_xywh: Sequence[Sequence[float]], scores: Sequence[Sequence[float]]
) -> np.ndarray:
    """A 1×(4+nc)×N YOLOv8 raw output from N (cx, cy, w, h) boxes and their N×nc scores."""
    return np.concatenate([np.asarray(boxes_xywh, np.float32).T, np.asarray(scores, np.float32).T])[
        None
    ]
