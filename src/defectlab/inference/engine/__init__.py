"""The detection engine: YOLO-family ONNX models run with onnxruntime, with preprocessing made
identical to the training side's, decoding and NMS in numpy, tiling for small defects, and
`geometry.Shape`s out. Plain Python: no Django here, so pre-annotation jobs and the detection
service use the same code and a script can run it without a Django project.

`Detector`, `Detections` and `Timings` are loaded when first named: they bring numpy, OpenCV
and onnxruntime (about 70 MB), which a process that only reads the registry, or starts a
sandboxed check (``sandbox`` is standard library only), has no use for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from defectlab.inference.engine.errors import EngineError, ImageInputError, ModelError
from defectlab.inference.engine.layout import Layout, LayoutKind
from defectlab.inference.engine.metadata import ModelMetadata

if TYPE_CHECKING:
    from defectlab.inference.engine.detector import Detections, Detector, Timings

_LAZY = {
    "Detections": "defectlab.inference.engine.detector",
    "Detector": "defectlab.inference.engine.detector",
    "Timings": "defectlab.inference.engine.detector",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Detections",
    "Detector",
    "EngineError",
    "ImageInputError",
    "Layout",
    "LayoutKind",
    "ModelError",
    "ModelMetadata",
    "Timings",
]
