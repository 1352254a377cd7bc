"""The demo model: a small defect detector of our own (scratch, dent, stain), trained on the
synthetic panels of `defectlab.synthetic` by ``scripts/train_demo_model.py`` and shipped in the
package as ``defect-detector.onnx`` (YOLOv8 raw layout, 320×320 input, Ultralytics-style
metadata), so the demo project can show pre-annotation without a download or torch."""

from __future__ import annotations

from pathlib import Path

MODEL_PATH = Path(__file__).with_name("defect-detector.onnx")


def model_bytes() -> bytes:
    """The demo model's ONNX file, as the engine's `Detector` and the registry take it."""
    return MODEL_PATH.read_bytes()
