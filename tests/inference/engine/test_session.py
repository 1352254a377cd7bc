"""Sessions: providers in order of speed, CPU always; options chosen for the machine."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from defectlab.geometry import ShapeType
from defectlab.inference.engine.detections import Detections, Timings
from defectlab.inference.engine.session import (
    MAX_DEFAULT_THREADS,
    default_threads,
    providers,
    session_options,
    usable_cores,
)


def test_providers_fall_back_to_cpu(monkeypatch) -> None:
    monkeypatch.setattr(
        ort,
        "get_available_providers",
        lambda: ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"],
    )
    assert providers() == [
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert providers(["CUDAExecutionProvider"]) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert providers() == ["CPUExecutionProvider"]
    assert providers(["TensorrtExecutionProvider"]) == ["CPUExecutionProvider"]


def test_options() -> None:
    assert 1 <= default_threads() <= min(usable_cores(), MAX_DEFAULT_THREADS)
    options = session_options(threads=3, memory_arena=False)
    assert options.intra_op_num_threads == 3 and options.inter_op_num_threads == 1
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.enable_cpu_mem_arena is False
    assert session_options().enable_cpu_mem_arena is True
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def detections(polygon: list[list[float]] | None, box: list[float]) -> Detections:
    return Detections(
        boxes=np.array([box], dtype=np.float64),
        scores=np.array([1.0000001]),
        classes=np.array([2]),
        polygons=(None if polygon is None else np.array(polygon, dtype=np.float64),),
        width=100,
        height=80,
        names=("a", "b"),
        timings=Timings(),
    )


def test_shapes_repair_outlines_or_fall_back_to_the_box() -> None:
    # A bow tie (crossing itself) becomes its convex hull; the score is clamped to 1.
    (hull,) = detections([[10, 10], [30, 30], [30, 10], [10, 30]], [10, 10, 30, 30]).shapes()
    assert hull.type is ShapeType.POLYGON and hull.score == 1.0 and len(hull.points) == 4
    hull.validate(100, 80)
    # A line has no area even as a hull: the box stands in.
    (box,) = detections([[10, 10], [20, 20], [30, 30]], [10, 10, 30, 30]).shapes()
    assert box.type is ShapeType.BOX and box.points == ((10.0, 10.0), (30.0, 30.0))
    # Points beyond the image are clipped; a label past the names still has a name.
    (clipped,) = detections(None, [-5, 70, 120, 90]).shapes()
    assert clipped.points == ((0.0, 70.0), (100.0, 80.0))
    assert detections(None, [0, 0, 1, 1]).label_names() == ["class 2"]
