"""The detection engine: YOLO-family ONNX models run with onnxruntime, with preprocessing made
identical to the training side's, decoding and NMS in numpy, tiling for small defects, and
`geometry.Shape`s out. Plain Python: no Django here, so pre-annotation jobs and the detection
service use the same code and a script can run it without a Django project."""

from defectlab.inference.engine.detector import Detections, Detector, Timings
from defectlab.inference.engine.errors import EngineError, ImageInputError, ModelError
from defectlab.inference.engine.layout import Layout, LayoutKind
from defectlab.inference.engine.metadata import ModelMetadata

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
