"""Layouts are recognised from shapes and metadata; metadata is parsed, never evaluated."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import defectlab
from defectlab.inference.engine.errors import ModelError
from defectlab.inference.engine.layout import LayoutKind, candidates_v8, recognise
from defectlab.inference.engine.metadata import ModelMetadata, class_names, read_metadata


@dataclass
class Arg:
    name: str
    shape: list[int | str | None]


IMAGE = [Arg("images", [1, 3, 640, 640])]


def kind(*shapes: list[int | str | None], classes: int | None = None, **raw: str) -> LayoutKind:
    outputs = [Arg(f"output{k}", list(shape)) for k, shape in enumerate(shapes)]
    return recognise(IMAGE, outputs, read_metadata(raw), classes=classes).kind


def test_the_common_exports() -> None:
    assert kind([1, 84, 8400], task="detect") is LayoutKind.YOLOV8
    assert kind([1, 25200, 85], stride="32") is LayoutKind.YOLOV5
    assert kind([1, 300, 6], task="detect", end2end="True") is LayoutKind.END2END
    assert kind([1, 116, 8400], [1, 32, 160, 160], task="segment") is LayoutKind.SEGMENT
    assert kind([1, 300, 38], [1, 32, 160, 160], end2end="True") is LayoutKind.SEGMENT_END2END
    assert kind(["batch", 84, "anchors"], task="detect") is LayoutKind.YOLOV8
    assert kind(["batch", "anchors", 85]) is LayoutKind.YOLOV5


def test_ambiguous_shapes_are_decided_by_metadata_then_classes_then_candidates() -> None:
    # 1×6×6: v8 with 2 classes, v5 with 1, or end-to-end with 6 detections.
    assert kind([1, 6, 6], end2end="True") is LayoutKind.END2END
    assert kind([1, 6, 6], end2end="False", names="{0: 'a', 1: 'b'}") is LayoutKind.YOLOV8
    assert kind([1, 6, 6], end2end="False", names="{0: 'a'}") is LayoutKind.YOLOV5
    assert kind([1, 6, 6], end2end="False", classes=1) is LayoutKind.YOLOV5  # upload's names
    # Neither 8400 nor 25200 candidates: v8 and v5 are contradicted, end-to-end is not.
    assert kind([1, 6, 6], task="detect") is LayoutKind.END2END
    assert kind([1, 300, 6], task="detect") is LayoutKind.END2END
    # One class, v5 (25200 candidates at 640) or end-to-end: the count decides.
    assert kind([1, 25200, 6], task="detect") is LayoutKind.YOLOV5
    assert kind([1, 300, 6], task="detect", end2end="False", names="{0: 'a'}") is LayoutKind.YOLOV5
    # Nothing else tells: who wrote the file (YOLOv5's exporter writes no task).
    assert kind([1, "n", 6], task="detect") is LayoutKind.END2END
    assert kind([1, "n", 6], stride="32") is LayoutKind.YOLOV5
    assert candidates_v8((640, 640)) == 8400 and candidates_v8((480, 640)) == 6300


@pytest.mark.parametrize(
    "shapes",
    [
        [[1, 3, 4]],
        [[1, 84]],
        [[1, 84, 8400], [1, 84, 8400]],
        [[1, 116, 8400], [1, 32, 160, 160], [1, 32, 160, 160]],
        [[1, 20004, 30000]],  # over ten thousand classes either way: not a detector we run
        [],
    ],
)
def test_other_outputs_are_refused_with_a_sentence(shapes: list[list[int | str | None]]) -> None:
    with pytest.raises(ModelError) as refused:
        kind(*shapes)
    assert refused.value.code == "bad_outputs"
    assert str(refused.value).startswith("The model's outputs ")


@pytest.mark.parametrize(
    "inputs",
    [
        [],
        [Arg("a", [1, 3, 640, 640]), Arg("b", [1, 3, 640, 640])],
        [Arg("x", [1, 640, 640, 3])],
        [Arg("x", [1, 3, 100_000, 100_000])],
        [Arg("x", [1000, 3, 640, 640])],
    ],
)
def test_inputs_must_be_one_image(inputs: list[Arg]) -> None:
    with pytest.raises(ModelError) as refused:
        recognise(inputs, [Arg("o", [1, 84, 8400])], ModelMetadata())
    assert refused.value.code == "bad_input"


def test_dynamic_sizes_take_the_callers_then_the_metadatas_then_640() -> None:
    dynamic = [Arg("images", ["b", 3, "h", "w"])]
    out = [Arg("o", ["b", 84, "n"])]
    assert recognise(dynamic, out, ModelMetadata()).input_size == (640, 640)
    meta = read_metadata({"imgsz": "[480, 800]"})
    assert recognise(dynamic, out, meta).input_size == (480, 800)
    assert recognise(dynamic, out, meta, input_size=(320, 320)).input_size == (320, 320)
    fixed = recognise(IMAGE, out, meta, input_size=(320, 320))
    assert fixed.input_size == (640, 640) and fixed.batch == 1 and not fixed.dynamic_size


def test_ultralytics_metadata() -> None:
    meta = read_metadata(
        {
            "names": "{0: 'scratch', 1: 'dent', 3: 'pit'}",
            "imgsz": "[640, 480]",
            "task": "detect",
            "stride": "32",
            "end2end": "False",
            "author": "Ultralytics",
            "license": "AGPL-3.0 License (https://ultralytics.com/license)",
            "version": "8.3.40",
            "description": "Ultralytics YOLO11n model",
        }
    )
    assert meta.names == ("scratch", "dent", "class 2", "pit")
    assert meta.imgsz == (640, 480) and meta.stride == 32 and meta.end2end is False
    assert meta.author == "Ultralytics" and meta.version == "8.3.40"
    assert read_metadata({"imgsz": "320"}).imgsz == (320, 320)
    assert read_metadata({"names": "['a', 'b']"}).names == ("a", "b")


@pytest.mark.parametrize(
    "names",
    [
        "__import__('os').system('touch /tmp/owned')",
        "{0: 'a', 'x': 'b'}",
        "{-1: 'a'}",
        "{0: " * 10_000,
        "[" * 100_000 + "]" * 100_000,
        "{}",
        "x" * 2_000_000,
    ],
)
def test_malformed_or_hostile_names_are_ignored(names: str) -> None:
    meta = read_metadata({"names": names, "imgsz": "[1e9]", "stride": "'32'"})
    assert meta.names is None and meta.imgsz is None and meta.stride is None
    assert class_names(meta, ["given"], 2) == ("given", "class 1")
    assert class_names(meta, None, 2) == ("class 0", "class 1")


def test_the_engine_runs_without_django() -> None:
    """The engine is plain Python: importable and usable where no Django project is set up,
    and no module of it imports Django itself."""
    engine = Path(defectlab.__file__).parent / "inference" / "engine"
    for path in engine.glob("*.py"):
        text = path.read_text()
        assert "import django" not in text and "from django" not in text, path.name
    script = (
        "import os, sys\n"
        "os.environ.pop('DJANGO_SETTINGS_MODULE', None)\n"
        "from defectlab.inference.engine import Detector\n"
        "from defectlab.inference.engine.errors import ImageInputError\n"
        "try:\n"
        "    from defectlab.inference.engine.picture import read_image\n"
        "    read_image(b'')\n"
        "except ImageInputError as error:\n"
        "    print(error)\n"
    )
    source = str(Path(defectlab.__file__).parents[1])
    env = {"PYTHONPATH": source, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "The image file is empty."
