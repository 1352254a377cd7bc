"""The Detector end to end on small graphs of every layout, with expectations computed by hand.

Most graphs output constants: the detections are known in letterboxed input pixels, and the
test checks where they land in the original image (1000 × 500 and 500 × 1000 at 640: gain 0.64
and a border of 160 pixels on the long side's ends)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from onnx import TensorProto
from PIL import Image

from defectlab.geometry import ShapeType
from defectlab.inference.engine import Detector, LayoutKind, ModelError
from defectlab.inference.engine.errors import ImageInputError
from tests.inference.graphs import blob_model, constant_model, v8_output

NAMES = "{0: 'scratch', 1: 'dent'}"
ULTRALYTICS = {"names": NAMES, "task": "detect", "imgsz": "[640, 640]", "stride": "32"}


def png(pixels: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", pixels)
    assert ok
    return data.tobytes()


WIDE = png(np.full((500, 1000, 3), 90, np.uint8))  # 1000 wide, 500 high
TALL = png(np.full((1000, 500, 3), 90, np.uint8))


def v8_model(**metadata: str) -> bytes:
    output = v8_output(
        [[96, 208, 64, 32], [400, 320, 40, 40], [402, 320, 40, 40]],
        [[0.9, 0.05], [0.1, 0.8], [0.6, 0.0]],
    )
    return constant_model({"output0": output}, metadata={**ULTRALYTICS, **metadata})


def test_yolov8_raw_on_a_wide_and_a_tall_image() -> None:
    detector = Detector(v8_model())
    assert detector.layout.kind is LayoutKind.YOLOV8
    assert detector.names == ("scratch", "dent")
    assert detector.iou == 0.7
    wide = detector.detect(WIDE)
    # Input boxes: (64, 192, 128, 224) class 0; (380, 300, 420, 340) class 1; the third
    # overlaps no box of its own class (class 0), so per-class NMS keeps it.
    np.testing.assert_allclose(
        wide.boxes,
        [
            [100.0, 50.0, 200.0, 100.0],
            [593.75, 218.75, 656.25, 281.25],
            [596.875, 218.75, 659.375, 281.25],
        ],
    )
    assert wide.classes.tolist() == [0, 1, 0]
    np.testing.assert_allclose(wide.scores, [0.9, 0.8, 0.6], rtol=1e-6)
    assert (wide.width, wide.height) == (1000, 500)
    assert wide.label_names() == ["scratch", "dent", "scratch"]
    tall = detector.detect(TALL)
    # The border is now 160 pixels left and right; the first box starts inside it.
    np.testing.assert_allclose(tall.boxes[0], [0, 300, 0, 350])
    np.testing.assert_allclose(tall.boxes[1], [343.75, 468.75, 406.25, 531.25])


def test_shapes_are_boxes_with_scores_in_original_pixels() -> None:
    detections = Detector(v8_model()).detect(WIDE, conf=0.7)
    (shape, second) = detections.shapes()
    assert shape.type is ShapeType.BOX
    assert shape.points == ((100.0, 50.0), (200.0, 100.0))
    assert shape.label == 0 and shape.score == pytest.approx(0.9)
    assert second.label == 1
    for item in detections.shapes():
        item.validate(1000, 500)


def test_a_box_with_no_area_inside_the_image_is_left_out_of_the_shapes() -> None:
    detections = Detector(v8_model()).detect(TALL, conf=0.85)
    assert len(detections) == 1 and detections.boxes[0][0] == detections.boxes[0][2]
    assert detections.shapes() == []


def test_thresholds_from_the_version_and_the_request() -> None:
    detector = Detector(v8_model(), conf=0.85)
    assert len(detector.detect(WIDE)) == 1
    assert len(detector.detect(WIDE, conf=0.5)) == 3
    assert detector.detect(WIDE, conf=0.5, classes=[1]).classes.tolist() == [1]
    assert len(detector.detect(WIDE, max_det=1)) == 1
    # IoU of the two class-agnostic neighbours is 38/42 ≈ 0.9: iou above it keeps both.
    assert len(Detector(v8_model()).detect(WIDE, iou=0.95)) == 3


def test_names_fall_back_to_the_upload_then_to_numbers() -> None:
    output = v8_output([[320, 320, 20, 20]], [[0.1, 0.1, 0.9]])
    bare = constant_model({"output0": output})
    assert Detector(bare).names == ("class 0", "class 1", "class 2")
    assert Detector(bare, names=["a", "b", "c"]).names == ("a", "b", "c")
    named = constant_model({"output0": output}, metadata={"names": "{0: 'x', 1: 'y', 2: 'z'}"})
    assert Detector(named, names=["a", "b", "c"]).names == ("x", "y", "z")
    hostile = constant_model(
        {"output0": output}, metadata={"names": "__import__('os').system('x')"}
    )
    assert Detector(hostile, names=["a"]).names == ("a", "class 1", "class 2")


def test_yolov5_objectness_and_its_own_iou_default() -> None:
    rows = np.array(
        [
            [
                [96, 208, 64, 32, 0.9, 1.0, 0.2],
                [96, 210, 64, 32, 0.8, 0.9, 0.1],
                [400, 320, 40, 40, 0.5, 0.1, 0.8],
            ]
        ],
        dtype=np.float32,
    )
    model = constant_model({"output0": rows}, metadata={"stride": "32", "names": NAMES})
    detector = Detector(model)
    assert detector.layout.kind is LayoutKind.YOLOV5 and detector.iou == 0.45
    found = detector.detect(WIDE)
    assert found.classes.tolist() == [0, 1]
    np.testing.assert_allclose(found.scores, [0.9, 0.4], rtol=1e-6)
    np.testing.assert_allclose(found.boxes[0], [100, 50, 200, 100])
    # 500 × 1000: (380, 300, 420, 340) less 160 columns, divided by 0.64.
    np.testing.assert_allclose(detector.detect(TALL).boxes[1], [343.75, 468.75, 406.25, 531.25])


def test_end_to_end_output_in_input_pixels() -> None:
    rows = np.zeros((1, 300, 6), dtype=np.float32)
    rows[0, 0] = [64, 192, 128, 224, 0.95, 1]
    rows[0, 1] = [64, 192, 128, 224, 0.9, 1]  # a duplicate: end-to-end models are not NMSed
    rows[0, 2] = [0, 0, 640, 640, 0.2, 0]
    model = constant_model(
        {"output0": rows}, metadata={**ULTRALYTICS, "end2end": "True", "names": NAMES}
    )
    detector = Detector(model)
    assert detector.layout.kind is LayoutKind.END2END
    found = detector.detect(WIDE)
    assert found.classes.tolist() == [1, 1]
    np.testing.assert_allclose(found.boxes, [[100, 50, 200, 100]] * 2)
    everything = detector.detect(WIDE, conf=0.1)
    np.testing.assert_allclose(everything.boxes[2], [0, 0, 1000, 500])  # clipped to the image
    # 500 × 1000: the border is 160 columns left and right.
    tall = detector.detect(TALL, conf=0.1)
    np.testing.assert_allclose(tall.boxes[0], [0, 300, 0, 350])
    np.testing.assert_allclose(tall.boxes[2], [0, 0, 500, 1000])


def segmentation_model(*, end2end: bool = False) -> bytes:
    protos = np.zeros((1, 32, 160, 160), dtype=np.float32)
    protos[0, 0] = 1.0
    protos[0, 1, 50:90, 40:60] = 2.0
    if end2end:
        head = np.zeros((1, 300, 38), dtype=np.float32)
        head[0, 0, :6] = [160, 240, 320, 400, 0.9, 0]
        head[0, 0, 6] = 1.0
        metadata = {"names": "{0: 'blob'}", "task": "segment", "end2end": "True"}
    else:
        head = np.zeros((1, 4 + 1 + 32, 2), dtype=np.float32)
        head[0, :5, 0] = [240, 320, 160, 160, 0.9]  # box 160..320 × 240..400
        head[0, 5, 0] = 1.0  # coefficient 1 on the all-positive prototype
        head[0, :5, 1] = [400, 400, 40, 40, 0.1]  # below conf
        metadata = {"names": "{0: 'blob'}", "task": "segment", "imgsz": "[640, 640]"}
    return constant_model({"output0": head, "output1": protos}, metadata=metadata)


@pytest.mark.parametrize("end2end", [False, True])
def test_segmentation_gives_polygons_in_original_pixels(end2end: bool) -> None:
    detector = Detector(segmentation_model(end2end=end2end))
    expected = LayoutKind.SEGMENT_END2END if end2end else LayoutKind.SEGMENT
    assert detector.layout.kind is expected and detector.layout.mask_channels == 32
    found = detector.detect(WIDE)
    assert len(found) == 1
    np.testing.assert_allclose(found.boxes[0], [250, 125, 500, 375])
    assert found.polygons is not None
    polygon = found.polygons[0]
    assert polygon is not None
    # The mask spans input columns 158..321 and rows 238..401 (see test_decode); less the
    # border (160 rows on top) and divided by the gain 0.64.
    xs, ys = sorted(set(polygon[:, 0])), sorted(set(polygon[:, 1]))
    np.testing.assert_allclose([xs[0], xs[-1]], [158 / 0.64, 321 / 0.64])
    np.testing.assert_allclose([ys[0], ys[-1]], [78 / 0.64, 241 / 0.64])
    (shape,) = found.shapes()
    assert shape.type is ShapeType.POLYGON and len(shape.points) == 4
    shape.validate(1000, 500)
    # 500 × 1000: the border is 160 columns on each side; the outline's left edge at input
    # column 158 lies in it and is clipped to the image.
    (tall,) = detector.detect(TALL).polygons or (None,)
    assert tall is not None
    np.testing.assert_allclose(sorted(set(tall[:, 0])), [0, 161 / 0.64])
    np.testing.assert_allclose(sorted(set(tall[:, 1])), [238 / 0.64, 401 / 0.64])


def test_dynamic_batch_and_size_run_several_images_at_once() -> None:
    output = v8_output([[48, 104, 32, 16]], [[0.9]])  # in a 320 × 320 input
    model = constant_model(
        {"output0": output},
        input_shape=("batch", 3, "height", "width"),
        output_shapes={"output0": ("batch", 5, "anchors")},
        metadata={"names": "{0: 'spot'}", "task": "detect", "imgsz": "[320, 320]"},
    )
    detector = Detector(model)
    assert detector.layout.batch is None and detector.layout.dynamic_size
    assert detector.input_size == (320, 320)
    runs = []
    session = detector.session

    class Counting:
        def __getattr__(self, name: str) -> object:
            return getattr(session, name)

        def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            runs.append(feeds["images"].shape)
            return session.run(names, feeds)

    detector.session = Counting()
    results = detector.detect_many([WIDE, TALL, WIDE])
    assert runs == [(3, 3, 320, 320)]
    # 1000 × 500 at 320: gain 0.32, 80 rows of border on top.
    np.testing.assert_allclose(results[0].boxes, [[100, 50, 200, 100]])
    np.testing.assert_allclose(results[2].boxes, results[0].boxes)
    np.testing.assert_allclose(results[1].boxes, [[0, 300, 0, 350]])  # the 80-pixel side border
    assert Detector(model, input_size=640).input_size == (640, 640)  # a version's own size


def test_half_precision_model() -> None:
    model = constant_model(
        {"output0": v8_output([[96, 208, 64, 32]], [[0.9]])},
        metadata={"names": "{0: 'a'}", "task": "detect"},
        input_type=TensorProto.FLOAT16,
    )
    detector = Detector(model)
    assert detector.layout.half
    np.testing.assert_allclose(detector.detect(WIDE).boxes, [[100.0, 50.0, 200.0, 100.0]])
    uint8 = constant_model(
        {"output0": np.zeros((1, 6, 10), np.float32)}, input_type=TensorProto.UINT8
    )
    with pytest.raises(ModelError) as refused:
        Detector(uint8)
    assert refused.value.code == "bad_input" and "tensor(uint8)" in str(refused.value)


def test_fixed_batch_of_two_is_filled() -> None:
    model = constant_model(
        {"output0": v8_output([[96, 208, 64, 32]], [[0.9]])},
        input_shape=(2, 3, 640, 640),
        metadata={"names": "{0: 'a'}", "task": "detect"},
    )
    results = Detector(model).detect_many([WIDE, WIDE, WIDE])
    assert [len(r) for r in results] == [1, 1, 1]


def blob_png(width: int, height: int, spot: tuple[int, int], **save: object) -> bytes:
    pixels = np.zeros((height, width), dtype=np.uint8)
    x, y = spot
    pixels[y : y + 20, x : x + 20] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", **save)
    return buffer.getvalue()


def test_exif_rotated_image_gives_boxes_in_the_upright_frame() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 1000 × 500, shown turned clockwise: 500 wide, 1000 high
    buffer = io.BytesIO()
    stored = np.zeros((500, 1000), np.uint8)
    stored[100:120, 70:90] = 255  # near the stored top-left corner
    Image.fromarray(stored).convert("RGB").save(buffer, "JPEG", exif=exif, quality=95)
    found = Detector(blob_model()).detect(buffer.getvalue())
    assert (found.width, found.height) == (500, 1000)
    # Turned clockwise, stored (x, y) goes to (499 − y, x): the spot is at x 380..399, y 70..89,
    # inside one 32-pixel cell of the letterboxed input (x 350..400, y 50..100 here).
    assert found.boxes.tolist() == [[350, 50, 400, 100]]


def test_gray_and_sixteen_bit_images() -> None:
    detector = Detector(blob_model())
    gray = detector.detect(blob_png(1000, 500, (600, 300)))
    assert len(gray) >= 1
    x1, y1, x2, y2 = gray.boxes[0]
    assert x1 <= 600 and x2 >= 620 and y1 <= 300 and y2 >= 320
    deep = np.zeros((500, 1000), np.uint16)
    deep[300:320, 600:620] = 65535
    deep[:, :100] = 200  # dark in 16 bits and as read (200 // 256 = 0): no detection there
    sixteen = detector.detect(png(deep))
    np.testing.assert_allclose(sixteen.boxes, gray.boxes)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty"),
        (WIDE[: len(WIDE) // 2], "truncated"),
        (b"\xff\xd8\xff\xe0garbage", "unreadable"),
    ],
)
def test_hostile_images_get_the_engines_error(data: bytes, code: str) -> None:
    with pytest.raises(ImageInputError) as refused:
        Detector(v8_model()).detect(data)
    assert refused.value.code == code


def test_image_above_the_pixel_limit() -> None:
    with pytest.raises(ImageInputError) as refused:
        Detector(v8_model(), max_pixels=400_000).detect(WIDE)
    assert refused.value.code == "too_many_pixels"
    assert str(refused.value) == "The image has 500000 pixels; at most 400000 are accepted."


def test_models_that_are_not_detectors_are_refused() -> None:
    with pytest.raises(ModelError) as refused:
        Detector(b"not a model")
    assert refused.value.code == "unreadable_model"
    odd = constant_model({"output0": np.zeros((1, 3, 4), np.float32)})
    with pytest.raises(ModelError) as refused:
        Detector(odd)
    assert refused.value.code == "bad_outputs" and "1×3×4" in str(refused.value)
    gray_input = constant_model(
        {"output0": np.zeros((1, 6, 10), np.float32)}, input_shape=(1, 1, 64, 64)
    )
    with pytest.raises(ModelError) as refused:
        Detector(gray_input)
    assert refused.value.code == "bad_input"


def test_outputs_that_break_the_declared_layout_are_refused_when_run(monkeypatch) -> None:
    detector = Detector(v8_model())
    real = detector.session

    class Lying:
        def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            return [np.zeros((1, 7, 10), np.float32)]  # 3 classes where the graph said 2

    detector.session = Lying()
    with pytest.raises(ModelError) as refused:
        detector.detect(WIDE)
    assert refused.value.code == "bad_outputs" and "1×7×10" in str(refused.value)

    class Failing:
        def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            return real.run(names, {"images": feeds["images"][:, :, :5]})  # a wrong input shape

    detector.session = Failing()
    with pytest.raises(ModelError) as refused:
        detector.detect(WIDE)
    assert refused.value.code == "run_failed"
    assert str(refused.value).startswith("The model failed while running: ")


def test_nan_and_infinite_outputs_give_no_detections() -> None:
    output = v8_output(
        [[np.nan, 208, 64, 32], [np.inf, 320, 40, 40], [96, 208, 64, 32]],
        [[0.9], [0.9], [np.nan]],
    )
    model = constant_model({"output0": output}, metadata={"names": "{0: 'a'}", "task": "detect"})
    found = Detector(model).detect(WIDE)
    assert len(found) == 0 and found.shapes() == []
    rows = np.zeros((1, 300, 6), dtype=np.float32)
    rows[0, 0] = [64, 192, 128, 224, 0.9, 5e6]  # a class id no model has
    rows[0, 1] = [64, 192, 128, 224, 0.9, 3]
    e2e = constant_model({"output0": rows}, metadata={"task": "detect", "end2end": "True"})
    found = Detector(e2e).detect(WIDE)
    assert found.classes.tolist() == [3]
    assert found.names == ("class 0", "class 1", "class 2", "class 3")
