"""The detection engine: YOLO-family ONNX models run with onnxruntime, with preprocessing made
identical to the training side's, decoding and NMS in numpy, tiling for small defects, and
`geometry.Shape`s out. Plain Python: no Django here, so pre-annotation jobs and the detection
service use the same code and a script can run it without a Django project."""

# Names are loaded on first use (PEP 562): `engine.checks` and `engine.sandbox` are imported by
# the server, which must load neither onnxruntime nor OpenCV (a model runs only in the sandbox's
# child there), and the sandbox's child itself must start without Django.
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from defectlab.inference.engine.detector import Detections, Detector, Timings
    from defectlab.inference.engine.errors import EngineError, ImageInputError, ModelError
    from defectlab.inference.engine.layout import Layout, LayoutKind
    from defectlab.inference.engine.metadata import ModelMetadata

_HOMES = {
    "Detections": "detector",
    "Detector": "detector",
    "Timings": "detector",
    "EngineError": "errors",
    "ImageInputError": "errors",
    "ModelError": "errors",
    "Layout": "layout",
    "LayoutKind": "layout",
    "ModelMetadata": "metadata",
}

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


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
