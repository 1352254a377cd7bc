"""`Detector.detect_stream`: what `detect` gives, image by image and in order, with the next
images prepared on a thread of their own; a broken image is that image's error, not the end."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from defectlab.inference.engine import Detections, Detector, ImageInputError, ModelError
from tests.inference.engine.test_detector import WIDE, blob_png, png, v8_model
from tests.inference.graphs import blob_model, constant_model, v8_output

SPOTS = [(100, 80), (600, 300), (900, 20), (40, 440), (500, 250), (960, 460)]
IMAGES = [blob_png(1000, 500, spot) for spot in SPOTS]
BROKEN = IMAGES[0][: len(IMAGES[0]) // 2]  # a PNG cut short


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(blob_model())


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "defectlab-prefetch"]


def same(found: Detections | Exception, expected: Detections) -> None:
    assert isinstance(found, Detections)
    assert np.array_equal(found.boxes, expected.boxes)
    assert np.array_equal(found.scores, expected.scores)
    assert np.array_equal(found.classes, expected.classes)
    assert (found.width, found.height, found.names) == (
        expected.width,
        expected.height,
        expected.names,
    )


class Recording:
    """The detector's session, keeping every input tensor it is given."""

    def __init__(self, session: object) -> None:
        self.session = session
        self.tensors: list[np.ndarray] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.session, name)

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.tensors.append(feeds["images"].copy())
        return self.session.run(names, feeds)  # type: ignore[attr-defined, no-any-return]


def test_the_stream_gives_what_detect_gives_in_order(detector: Detector) -> None:
    expected = [detector.detect(image) for image in IMAGES]
    assert len({tuple(map(tuple, e.boxes.tolist())) for e in expected}) == len(IMAGES)
    found = list(detector.detect_stream(iter(IMAGES)))
    assert len(found) == len(IMAGES)
    for one, wanted in zip(found, expected, strict=True):
        same(one, wanted)
        assert isinstance(one, Detections) and one.timings.decode_ms > 0
    assert prefetch_threads() == []


def test_the_model_sees_the_same_tensors(detector: Detector) -> None:
    """Preparing ahead changes nothing the model sees, to the bit (a JPEG with EXIF and a
    16-bit PNG included)."""
    deep = np.zeros((500, 1000), np.uint16)
    deep[300:320, 600:620] = 65535
    images = [*IMAGES[:3], png(deep), WIDE]
    recording = Recording(detector.session)
    twin = copy.copy(detector)
    twin.session = recording
    for image in images:
        twin.detect(image)
    one_by_one, recording.tensors = recording.tensors, []
    assert all(isinstance(found, Detections) for found in twin.detect_stream(images))
    assert len(recording.tensors) == len(one_by_one) == len(images)
    for streamed, single in zip(recording.tensors, one_by_one, strict=True):
        assert streamed.dtype == single.dtype and np.array_equal(streamed, single)


def test_a_broken_image_is_its_own_error_and_the_rest_still_come(detector: Detector) -> None:
    images = [IMAGES[0], BROKEN, b"", IMAGES[1], b"\xff\xd8\xff\xe0garbage", IMAGES[2]]
    found = list(detector.detect_stream(images))
    assert [type(f).__name__ for f in found] == [
        "Detections",
        "ImageInputError",
        "ImageInputError",
        "Detections",
        "ImageInputError",
        "Detections",
    ]
    assert [f.code for f in found if isinstance(f, ImageInputError)] == [
        "truncated",
        "empty",
        "unreadable",
    ]
    same(found[3], detector.detect(IMAGES[1]))
    same(found[5], detector.detect(IMAGES[2]))


def test_lazy_items_are_called_once_each_on_the_thread(detector: Detector) -> None:
    calls: list[tuple[int, int]] = []

    def reader(index: int) -> Callable[[], bytes]:
        def read() -> bytes:
            calls.append((index, threading.get_ident()))
            if index == 2:
                raise FileNotFoundError(f"task {index}: no such object")
            return IMAGES[index]

        return read

    found = list(detector.detect_stream(reader(k) for k in range(len(IMAGES))))
    assert sorted(index for index, _ in calls) == list(range(len(IMAGES)))
    assert {ident for _, ident in calls} != {threading.get_ident()}
    assert isinstance(found[2], FileNotFoundError) and "task 2" in str(found[2])
    for index in (0, 1, 3, 4, 5):
        same(found[index], detector.detect(IMAGES[index]))


def test_closing_early_stops_the_thread_and_reads_no_further(detector: Detector) -> None:
    calls: list[int] = []

    def endless() -> Iterator[Callable[[], bytes]]:
        index = 0
        while True:
            yield lambda index=index: calls.append(index) or IMAGES[index % len(IMAGES)]
            index += 1

    stream = detector.detect_stream(endless(), ahead=2)
    taken = [next(stream) for _ in range(3)]
    assert all(isinstance(found, Detections) for found in taken)
    assert len(prefetch_threads()) == 1
    stream.close()
    assert prefetch_threads() == []
    read = len(calls)
    assert calls == list(range(read)) and read <= 3 + 2 + 1
    for found in detector.detect_stream(IMAGES):  # leaving a loop early
        assert isinstance(found, Detections)
        break
    assert prefetch_threads() == []


def test_a_failed_run_is_that_images_error(detector: Detector) -> None:
    real = detector.session
    runs = []

    class Flaky:
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            runs.append(1)
            if len(runs) == 2:
                raise RuntimeError("out of memory")
            return real.run(names, feeds)

    twin = Detector(blob_model())
    twin.session = Flaky()
    found = list(twin.detect_stream(IMAGES[:3]))
    assert isinstance(found[1], ModelError) and found[1].code == "run_failed"
    assert "out of memory" in str(found[1])
    same(found[0], detector.detect(IMAGES[0]))
    same(found[2], detector.detect(IMAGES[2]))


def test_an_error_of_the_iterable_ends_the_stream(detector: Detector) -> None:
    def listing() -> Iterator[bytes]:
        yield IMAGES[0]
        raise ConnectionError("storage went away")

    stream = detector.detect_stream(listing())
    assert isinstance(next(stream), Detections)
    with pytest.raises(ConnectionError):
        next(stream)
    assert prefetch_threads() == []


def test_tiled_stream(detector: Detector) -> None:
    panel = np.full((1500, 2000, 3), 20, dtype=np.uint8)
    panel[300:303, 604:607] = 255
    images = [panel, BROKEN, np.zeros((400, 600, 3), np.uint8)]
    found = list(detector.detect_stream(images, tile=True))
    expected = detector.detect(panel, tile=True)
    same(found[0], expected)
    assert isinstance(found[0], Detections) and found[0].tiles == expected.tiles > 0
    assert [576, 288, 608, 320] in found[0].boxes.tolist()  # a tile's cell
    assert isinstance(found[1], ImageInputError)
    assert isinstance(found[2], Detections) and found[2].tiles == 0


def test_a_fixed_batch_of_two_takes_two_images_a_run() -> None:
    model = constant_model(
        {"output0": v8_output([[96, 208, 64, 32]], [[0.9]])},
        input_shape=(2, 3, 640, 640),
        metadata={"names": "{0: 'a'}", "task": "detect"},
    )
    detector = Detector(model)
    recording = Recording(detector.session)
    detector.session = recording
    found = list(detector.detect_stream([WIDE, WIDE, b"", WIDE, WIDE, WIDE]))
    assert [len(f) if isinstance(f, Detections) else f.code for f in found] == [  # type: ignore[attr-defined]
        1,
        1,
        "empty",
        1,
        1,
        1,
    ]
    # Two, then two after the error, then the last one with a second of zeros.
    assert [t.shape[0] for t in recording.tensors] == [2, 2, 2]
    assert [float(t[1].sum()) > 0 for t in recording.tensors] == [True, True, False]


def test_ahead_must_be_at_least_one() -> None:
    with pytest.raises(ValueError):
        Detector(v8_model()).detect_stream([WIDE], ahead=0)
