"""ONNX graphs for the upload checks and the sandbox, built with ``onnx.helper``: one small
detector-like model that is fine, and the broken and hostile ones people (or attackers) send.

Every builder returns a ``ModelProto``; ``serialized`` gives its bytes. The image input is
``images``, N×3×H×W with symbolic batch, height and width, as an Ultralytics export with
``dynamic=True`` declares it.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
IMAGE_SHAPE: tuple[Any, ...] = ("batch", 3, "height", "width")
INT64_MAX = np.iinfo(np.int64).max


def serialized(model: onnx.ModelProto) -> bytes:
    return model.SerializeToString()


def image_input(
    name: str = "images", shape: Sequence[Any] = IMAGE_SHAPE, elem_type: int = TensorProto.FLOAT
) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, list(shape))


def model_of(
    nodes: list[onnx.NodeProto],
    outputs: list[onnx.ValueInfoProto],
    *,
    inputs: list[onnx.ValueInfoProto] | None = None,
    initializers: list[onnx.TensorProto] | None = None,
    opset: int = OPSET,
    ir_version: int = IR_VERSION,
    metadata: dict[str, str] | None = None,
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "test", inputs or [image_input()], outputs, initializer=initializers or []
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="defectlab-tests",
        producer_version="1.0",
    )
    model.ir_version = ir_version
    helper.set_model_props(model, metadata or {})
    return model


def small_detector(**options: Any) -> onnx.ModelProto:
    """A stride-8 convolution with six filters, flattened: ``output0`` is N×6×(H/8·W/8), the
    shape of a YOLOv8 head for two classes (1×6×6400 at 640)."""
    weights = numpy_helper.from_array(
        np.random.default_rng(0).normal(0, 0.01, (6, 3, 8, 8)).astype(np.float32), "weights"
    )
    flat = numpy_helper.from_array(np.array([0, 6, -1], dtype=np.int64), "flat")
    nodes = [
        helper.make_node("Conv", ["images", "weights"], ["features"], strides=[8, 8]),
        helper.make_node("Reshape", ["features", "flat"], ["output0"]),
    ]
    output = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 6, "anchors"])
    defaults = {
        "initializers": [weights, flat],
        "metadata": {"names": "{0: 'scratch', 1: 'dent'}", "imgsz": "[640, 640]"},
    }
    return model_of(nodes, [output], **{**defaults, **options})


def identity_with_output(shape: Sequence[Any], rank_name: str = "out") -> onnx.ModelProto:
    """The image passed through, but declaring the output ``shape``."""
    output = helper.make_tensor_value_info(rank_name, TensorProto.FLOAT, list(shape))
    return model_of([helper.make_node("Identity", ["images"], [rank_name])], [output])


def throwing() -> onnx.ModelProto:
    """Gathers channel 5 of a 3-channel image: shape inference cannot tell, the run throws."""
    index = numpy_helper.from_array(np.array([5], dtype=np.int64), "index")
    nodes = [helper.make_node("Gather", ["images", "index"], ["picked"], axis=1)]
    output = helper.make_tensor_value_info("picked", TensorProto.FLOAT, ["batch", 1, "h", "w"])
    return model_of(nodes, [output], initializers=[index])


def hungry(sides: Sequence[int] = (1024, 1024, 1024)) -> onnx.ModelProto:
    """Fills a tensor of shape (batch, *sides) with ones and sums it: 4 GiB of float32 at the
    default sides, a shape computed at run time from the input's, so no checker sees it."""
    tail = numpy_helper.from_array(np.array(sides, dtype=np.int64), "tail")
    nodes = [
        helper.make_node("Shape", ["images"], ["batch_size"], start=0, end=1),
        helper.make_node("Concat", ["batch_size", "tail"], ["huge_shape"], axis=0),
        helper.make_node(
            "ConstantOfShape",
            ["huge_shape"],
            ["huge"],
            value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]),
        ),
        helper.make_node("ReduceSum", ["huge"], ["total"], keepdims=0),
    ]
    output = helper.make_tensor_value_info("total", TensorProto.FLOAT, [])
    return model_of(nodes, [output], initializers=[tail])


def hungry_when_loaded(sides: Sequence[int] = (1024, 1024, 1024)) -> onnx.ModelProto:
    """The same 4 GiB from a constant shape: onnxruntime folds it while it builds the session,
    before any input is fed."""
    shape = numpy_helper.from_array(np.array(sides, dtype=np.int64), "shape")
    nodes = [
        helper.make_node(
            "ConstantOfShape",
            ["shape"],
            ["huge"],
            value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]),
        ),
        helper.make_node("ReduceSum", ["huge"], ["total"], keepdims=0),
        helper.make_node("Add", ["images", "total"], ["out"]),
    ]
    output = helper.make_tensor_value_info("out", TensorProto.FLOAT, IMAGE_SHAPE)
    return model_of(nodes, [output], initializers=[shape])


def endless() -> onnx.ModelProto:
    """A Loop of 2**63 − 1 iterations that adds one to the image's mean each time."""
    counter = helper.make_tensor_value_info("iteration", TensorProto.INT64, [])
    condition_in = helper.make_tensor_value_info("condition_in", TensorProto.BOOL, [])
    value_in = helper.make_tensor_value_info("value_in", TensorProto.FLOAT, [])
    condition_out = helper.make_tensor_value_info("condition_out", TensorProto.BOOL, [])
    value_out = helper.make_tensor_value_info("value_out", TensorProto.FLOAT, [])
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["condition_in"], ["condition_out"]),
            helper.make_node("Add", ["value_in", "one"], ["value_out"]),
        ],
        "body",
        [counter, condition_in, value_in],
        [condition_out, value_out],
        initializer=[numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one")],
    )
    constants = [
        numpy_helper.from_array(np.array(INT64_MAX, dtype=np.int64), "trips"),
        numpy_helper.from_array(np.array(True), "forever"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Loop", ["trips", "forever", "mean"], ["final"], body=body),
    ]
    output = helper.make_tensor_value_info("final", TensorProto.FLOAT, [])
    return model_of(nodes, [output], initializers=constants)


# ---------------------------------------------------------------------------- runs for the sandbox
# Top-level functions the sandbox's child imports by name (``tests.inference.hostile:...``).


def segfault_run(data: bytes, **options: Any) -> dict[str, Any]:
    """Dies the way a native crash does."""
    os.kill(os.getpid(), signal.SIGSEGV)
    return {}


def signalled_run(data: bytes, *, signal_number: int) -> dict[str, Any]:
    """Dies of ``signal_number``, as the kernel would end it (SIGKILL from the OOM killer,
    SIGXCPU at the CPU limit)."""
    os.kill(os.getpid(), signal_number)
    return {}


def surroundings_run(data: bytes, **options: Any) -> dict[str, Any]:
    """What the child can see of the parent: its environment, modules and limits."""
    import resource

    return {
        "environment": sorted(os.environ),
        "django_loaded": "django" in sys.modules,
        "address_space": resource.getrlimit(resource.RLIMIT_AS)[0],
        "bytes": len(data),
        "options": options,
    }


def noisy_run(data: bytes, **options: Any) -> dict[str, Any]:
    """Prints a lot to both streams before answering: the answer must still arrive whole."""
    for _ in range(200):
        print("x" * 10_000)
        print("y" * 10_000, file=sys.stderr)
    return {"printed": True}


def not_plain_data_run(data: bytes, **options: Any) -> dict[str, Any]:
    return {"value": object()}
