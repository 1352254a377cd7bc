"""Model files for the registry's tests: a small good detector (hand-made YOLOv8 outputs), and
hostile ones whose declared shapes pass every check but whose run throws or asks for
gigabytes: only the sandbox can tell."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.inference import hostile
from tests.inference.graphs import constant_model, v8_output

META = {
    "names": "{0: 'scratch', 1: 'dent'}",
    "imgsz": "[640, 640]",
    "task": "detect",
    "author": "Acme QA",
    "license": "AGPL-3.0",
}


def good(**metadata: str) -> bytes:
    """A YOLOv8 head with one confident scratch in the middle of the 640×640 input."""
    output = v8_output([[320, 320, 80, 60]], [[0.9, 0.05]])
    return constant_model({"output0": output}, metadata={**META, **metadata})


def unnamed() -> bytes:
    """The same head with no class names in its metadata (three classes)."""
    output = v8_output([[320, 320, 80, 60]], [[0.9, 0.05, 0.02]])
    return constant_model({"output0": output}, metadata={"task": "detect"})


def _detector_around(extra: Callable[[], tuple[list[Any], list[Any]]]) -> bytes:
    """A YOLOv8-shaped output (batch × 6 × 100) that adds 0 × ``extra``'s scalar ``side``:
    the declared shapes are a detector's, the run does what ``extra`` does first."""
    nodes, initializers = extra()
    head = numpy_helper.from_array(np.zeros((1, 6, 100), dtype=np.float32), "head")
    zero = numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")
    nodes += [
        helper.make_node("Mul", ["side", "zero"], ["nothing"]),
        helper.make_node("Add", ["head", "nothing"], ["output0"]),
    ]
    output = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, 100])
    model = hostile.model_of(
        nodes,
        [output],
        inputs=[hostile.image_input(shape=(1, 3, 640, 640))],
        initializers=[*initializers, head, zero],
        metadata={"names": "{0: 'scratch', 1: 'dent'}"},
    )
    onnx.checker.check_model(model)
    return model.SerializeToString()


def throwing() -> bytes:
    """Gathers channel 5 of the 3-channel image when it runs."""

    def extra() -> tuple[list[Any], list[Any]]:
        index = numpy_helper.from_array(np.array([5], dtype=np.int64), "index")
        return [
            helper.make_node("Gather", ["images", "index"], ["picked"], axis=1),
            helper.make_node("ReduceSum", ["picked"], ["side"], keepdims=0),
        ], [index]

    return _detector_around(extra)


def hungry() -> bytes:
    """Fills 4 GiB of ones, its shape computed from the input's at run time, and sums it."""

    def extra() -> tuple[list[Any], list[Any]]:
        tail = numpy_helper.from_array(np.array([1024, 1024, 1024], dtype=np.int64), "tail")
        one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
        return [
            helper.make_node("Shape", ["images"], ["batch_size"], start=0, end=1),
            helper.make_node("Concat", ["batch_size", "tail"], ["huge_shape"], axis=0),
            helper.make_node("ConstantOfShape", ["huge_shape"], ["huge"], value=one),
            helper.make_node("ReduceSum", ["huge"], ["side"], keepdims=0),
        ], [tail]

    return _detector_around(extra)
