"""The bench's YOLOv8n-shaped graph (bench/yolo_graph.py): the engine takes it as an Ultralytics
YOLOv8 export, its size is YOLOv8n's, and its random weights give scores that depend on the
image, with the share of candidates it was calibrated for. Built at 128 to stay fast; the
convs' cost scales with the input's area, so the figure at 640 is 25 times the one at 128."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from bench import yolo_graph

from defectlab.inference.engine import Detector, LayoutKind
from defectlab.inference.engine.letterbox import letterbox, to_tensor
from defectlab.synthetic import defect_image, encode

SIZE = 128
ANCHORS = 16 * 16 + 8 * 8 + 4 * 4  # strides 8, 16, 32 at 128


@pytest.fixture(scope="module")
def model() -> bytes:
    return yolo_graph.build(SIZE)


def test_the_engine_reads_it_as_an_ultralytics_yolov8_export(model: bytes) -> None:
    detector = Detector(model)
    assert detector.layout.kind is LayoutKind.YOLOV8
    assert detector.input_size == (SIZE, SIZE)
    assert detector.layout.classes == 80
    assert detector.names[:3] == ("person", "bicycle", "car")
    assert detector.names[-1] == "toothbrush"
    assert detector.metadata.task == "detect"
    assert detector.metadata.imgsz == (SIZE, SIZE)
    output = detector.session.get_outputs()[0]
    assert output.shape == [1, 84, ANCHORS]


def test_yolov8n_size_parameters_and_flops(model: bytes) -> None:
    assert yolo_graph.parameters(model) == yolo_graph.YOLOV8N_PARAMETERS
    gflops_at_640 = yolo_graph.conv_flops(model) * (640 // SIZE) ** 2 / 1e9
    assert gflops_at_640 == pytest.approx(yolo_graph.YOLOV8N_GFLOPS, abs=0.1)
    ops = {node.op_type for node in onnx.load_from_string(model).graph.node}
    assert {"Conv", "Sigmoid", "Mul", "Split", "Concat", "MaxPool", "Resize", "Softmax"} <= ops


def test_outputs_boxes_in_input_pixels_and_scores_that_depend_on_the_image(model: bytes) -> None:
    session = ort.InferenceSession(model)
    outputs = []
    for seed in (31, 32):
        panel = np.ascontiguousarray(np.asarray(defect_image(seed, 320, 240)[0])[..., ::-1])
        tensor = to_tensor([letterbox(panel, (SIZE, SIZE))[0]])
        outputs.append(session.run(None, {"images": tensor})[0][0])
    for out in outputs:
        assert out.shape == (84, ANCHORS)
        assert np.isfinite(out).all()
        assert (out[2:4] > 0).all()  # widths and heights
        assert out[4:].min() >= 0 and out[4:].max() <= 1  # sigmoid scores
        # distances of at most 15 bins a side: boxes within 30 strides
        assert out[2:4].max() <= 30 * 32
    assert not np.allclose(outputs[0][4:], outputs[1][4:], atol=1e-3)


def test_the_class_bias_gives_the_calibrated_share_of_candidates(model: bytes) -> None:
    panels = yolo_graph.calibration_panels(SIZE)  # what build() calibrated on by default
    session = ort.InferenceSession(model)
    tensor = to_tensor([letterbox(panel, (SIZE, SIZE))[0] for panel in panels])
    above = sorted(
        int((session.run(None, {"images": tensor[k : k + 1]})[0][0, 4:].max(axis=0) > 0.25).sum())
        for k in range(len(panels))
    )
    # the bias is set for the median image: between the two middle ones of four
    expected = yolo_graph.CANDIDATE_SHARE * ANCHORS
    assert above[1] - 1 <= expected <= above[2] + 1, above


def test_detect_runs_end_to_end_on_a_jpeg(model: bytes) -> None:
    found = Detector(model).detect(encode(defect_image(33, 400, 300)[0]))
    assert (found.width, found.height) == (400, 300)
    assert len(found) <= 300
    for shape in found.shapes():
        assert 0 <= shape.label < 80


def test_the_input_size_must_be_a_multiple_of_32() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        yolo_graph.build(100)
