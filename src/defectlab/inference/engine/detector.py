"""`Detector`: one ONNX model, ready to turn images into detections.

Built once from the model's bytes (seconds: onnxruntime optimizes the graph), then used for
many images; thread-safe, as onnxruntime sessions are (`session.run` may be called from
several threads at once).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import cast

import numpy as np

from defectlab.inference.engine import decode, prefetch, tiling
from defectlab.inference.engine.detections import Detections, Timings
from defectlab.inference.engine.errors import BAD_OUTPUTS, RUN_FAILED, EngineError, ModelError
from defectlab.inference.engine.layout import Layout, LayoutKind, recognise
from defectlab.inference.engine.letterbox import (
    Placement,
    letterbox,
    scale_boxes,
    scale_points,
    to_tensor,
)
from defectlab.inference.engine.metadata import ModelMetadata, class_names, read_metadata
from defectlab.inference.engine.picture import DEFAULT_MAX_PIXELS, as_bgr, read_image
from defectlab.inference.engine.session import create_session, reason

DEFAULT_CONF = 0.25
DEFAULT_IOU = 0.7  # Ultralytics' predictor
DEFAULT_IOU_V5 = 0.45  # YOLOv5's own detect.py: its models were tuned with it
DEFAULT_MAX_DET = 300
# Images per session.run when the batch is dynamic: enough to fill the cores, while a batch's
# tensors (12 MB per 3×640×640 image) stay small.
DEFAULT_BATCH = 8

Image = bytes | np.ndarray


@dataclass(frozen=True, slots=True)
class _Prepared:
    boxed: np.ndarray  # letterboxed H×W×3 BGR
    placement: Placement
    decode_ms: float
    letterbox_ms: float
    tensor: np.ndarray | None = None  # boxed as the model's input, made ahead (`detect_stream`)


@dataclass(frozen=True, slots=True)
class _Tiled:
    """One image for a tiled run: the whole image letterboxed, then each tile's crop."""

    image_size: tuple[int, int]
    pieces: tuple[tiling.Tile, ...]  # empty when the image fits in one tile
    prepared: list[_Prepared]
    decode_ms: float


@dataclass(frozen=True, slots=True)
class _Found:
    """One input's detections after postprocessing, in that input's own pixels."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    polygons: tuple[np.ndarray | None, ...] | None


class Detector:
    """A YOLO-family ONNX model (v5, v8/v11, v10/YOLO26 end-to-end, v8-style segmentation).

    ``names`` are the class names given with the upload (the model's own metadata wins);
    ``conf``, ``iou``, ``max_det`` the defaults of `detect` (a version's configured ones);
    ``input_size`` the letterbox size for a model with a dynamic height and width (an int for a
    square, or (height, width)); ``max_pixels`` the largest image accepted; ``threads``,
    ``memory_arena`` and ``execution_providers`` go to the onnxruntime session (`session.py`);
    ``batch`` is how many images go into one run when the model's batch is dynamic (a model
    exported for a fixed batch takes that many, the rest of a short batch filled with zeros).
    """

    def __init__(
        self,
        model: bytes,
        *,
        names: Sequence[str] | None = None,
        conf: float | None = None,
        iou: float | None = None,
        max_det: int | None = None,
        input_size: int | tuple[int, int] | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        threads: int | None = None,
        memory_arena: bool = True,
        execution_providers: Sequence[str] | None = None,
        batch: int = DEFAULT_BATCH,
    ) -> None:
        self.session = create_session(
            model,
            threads=threads,
            memory_arena=memory_arena,
            execution_providers=execution_providers,
        )
        self.metadata: ModelMetadata = read_metadata(
            self.session.get_modelmeta().custom_metadata_map
        )
        size = (input_size, input_size) if isinstance(input_size, int) else input_size
        self.layout: Layout = recognise(
            self.session.get_inputs(),
            self.session.get_outputs(),
            self.metadata,
            classes=len(names) if names else None,
            input_size=size,
        )
        self.names: tuple[str, ...] = class_names(self.metadata, names, self.layout.classes)
        self.conf = DEFAULT_CONF if conf is None else conf
        self.iou = (
            iou
            if iou is not None
            else DEFAULT_IOU_V5
            if self.layout.kind is LayoutKind.YOLOV5
            else DEFAULT_IOU
        )
        self.max_det = DEFAULT_MAX_DET if max_det is None else max_det
        self.max_pixels = max_pixels
        self.batch = self.layout.batch or max(1, batch)

    @property
    def input_size(self) -> tuple[int, int]:
        return self.layout.input_size

    def detect(
        self,
        image: Image,
        *,
        conf: float | None = None,
        iou: float | None = None,
        max_det: int | None = None,
        classes: Sequence[int] | None = None,
        tile: bool = False,
        overlap: float = tiling.DEFAULT_OVERLAP,
    ) -> Detections:
        """Detections on one image: file bytes (JPEG, PNG, BMP, TIFF, WebP) or an array
        (H×W gray, H×W×3 BGR, H×W×4 BGRA; uint8 or uint16). ``tile`` adds overlapping
        native-resolution tiles to the whole-image pass (`tiling.py`). Raises
        ImageInputError for an image it cannot take and ModelError if the model fails."""
        if tile:
            tiled = self._prepare_tiled(image, overlap)
            return self._detect_tiled(tiled, conf, iou, max_det, classes)
        return self.detect_many([image], conf=conf, iou=iou, max_det=max_det, classes=classes)[0]

    def detect_many(
        self,
        images: Sequence[Image],
        *,
        conf: float | None = None,
        iou: float | None = None,
        max_det: int | None = None,
        classes: Sequence[int] | None = None,
    ) -> list[Detections]:
        """`detect` for several images, run together in batches where the model's batch
        dimension allows it (the same input size for all, after the letterbox). Images are
        decoded a batch at a time, so a long list holds one batch of pixels at once."""
        results: list[Detections] = []
        for first in range(0, len(images), self.batch):
            prepared = [self._prepare(image) for image in images[first : first + self.batch]]
            results += self._run_prepared(prepared, conf, iou, max_det, classes)
        return results

    def detect_each(
        self,
        images: Sequence[Image],
        *,
        conf: float | None = None,
        iou: float | None = None,
        max_det: int | None = None,
        classes: Sequence[int] | None = None,
        tile: bool = False,
        overlap: float = tiling.DEFAULT_OVERLAP,
    ) -> list[Detections | EngineError]:
        """`detect` for each of ``images`` on the caller's thread, each image's outcome its
        detections or the EngineError it raised: a broken image fails itself, not the others
        (a failed run fails the images run together). Runs are batched as in `detect_many`."""
        if tile:
            tiled: list[Detections | EngineError] = []
            for image in images:
                try:
                    prepared = self._prepare_tiled(image, overlap)
                    tiled.append(self._detect_tiled(prepared, conf, iou, max_det, classes))
                except EngineError as error:
                    tiled.append(error)
            return tiled
        outcomes: list[Detections | EngineError | None] = [None] * len(images)
        ready: list[_Prepared] = []
        where: list[int] = []
        for index, image in enumerate(images):
            try:
                ready.append(self._prepare(image))
                where.append(index)
            except EngineError as error:
                outcomes[index] = error
        for index, outcome in zip(
            where, self._outcomes(ready, conf, iou, max_det, classes), strict=True
        ):
            outcomes[index] = cast(Detections | EngineError, outcome)
        return [outcome for outcome in outcomes if outcome is not None]

    def detect_stream(
        self,
        images: Iterable[Image | Callable[[], Image]],
        *,
        conf: float | None = None,
        iou: float | None = None,
        max_det: int | None = None,
        classes: Sequence[int] | None = None,
        tile: bool = False,
        overlap: float = tiling.DEFAULT_OVERLAP,
        ahead: int = prefetch.DEFAULT_AHEAD,
        niceness: int = prefetch.DEFAULT_NICENESS,
    ) -> Generator[Detections | Exception, None, None]:
        """`detect` for each of ``images``, in their order, as a generator that prepares the
        next images on a thread of its own while the model runs on the current one.

        An item is an image as `detect` takes it, or a callable returning one (called once,
        on that thread, just before the image is decoded: a read from storage overlaps the
        runs too). The iterable itself is iterated on that thread as well, so it may do I/O
        (but not through Django's database connection, which belongs to the thread that
        opened it: read the rows first, and let the items read the files).

        For each item the generator yields its `Detections`, or the exception it raised
        instead: the engine's `EngineError` (an image it cannot take, a failed run), or
        whatever the callable raised. One broken image does not end the stream. Anything else
        (an error of the iterable itself, or one `detect` would not raise as an EngineError)
        is raised by the generator and ends it.

        At most ``ahead`` prepared images wait beside the one running and the one in the
        making, however many ``images`` there are. The thread starts with the first
        ``next()``; closing the generator (``close()``, leaving a ``for`` loop over it and
        dropping it) stops the thread and waits for it. ``niceness`` lowers that thread's
        priority so that preparing fills the time the model's threads leave idle rather than
        taking their cores (`prefetch.py`; 0 keeps the caller's priority).

        Each run takes one image (a model exported for a fixed batch of N takes N); preparing
        is the same as `detect`'s and so are the detections, to the bit."""
        if ahead < 1:
            raise ValueError("ahead must be at least 1")
        per_run = self.layout.batch or 1

        def prepare(item: Image | Callable[[], Image]) -> _Prepared | _Tiled | Exception:
            try:
                image = item() if callable(item) else item
            except Exception as error:  # the caller's read: that image's error
                return error
            try:
                if tile:
                    return self._prepare_tiled(image, overlap)
                return self._prepare(image, tensor=per_run == 1)
            except EngineError as error:
                return error

        outcomes = prefetch.prefetched(
            images, prepare, ahead=max(ahead, per_run), niceness=niceness
        )
        return self._stream(outcomes, per_run, conf, iou, max_det, classes)

    def _stream(
        self,
        outcomes: Generator[_Prepared | _Tiled | Exception, None, None],
        per_run: int,
        conf: float | None,
        iou: float | None,
        max_det: int | None,
        classes: Sequence[int] | None,
    ) -> Generator[Detections | Exception, None, None]:
        with closing(outcomes):  # close() stops the thread
            waiting: list[_Prepared] = []
            for outcome in outcomes:
                if isinstance(outcome, _Prepared):
                    waiting.append(outcome)
                    if len(waiting) < per_run:
                        continue
                yield from self._outcomes(waiting, conf, iou, max_det, classes)
                waiting = []
                if isinstance(outcome, _Tiled):
                    try:
                        yield self._detect_tiled(outcome, conf, iou, max_det, classes)
                    except EngineError as error:
                        yield error
                elif isinstance(outcome, Exception):
                    yield outcome
            yield from self._outcomes(waiting, conf, iou, max_det, classes)

    def _outcomes(
        self,
        prepared: Sequence[_Prepared],
        conf: float | None,
        iou: float | None,
        max_det: int | None,
        classes: Sequence[int] | None,
    ) -> list[Detections | Exception]:
        """`_run_prepared`, with a failed run as each image's error."""
        if not prepared:
            return []
        try:
            return list(self._run_prepared(prepared, conf, iou, max_det, classes))
        except EngineError as error:
            return [error] * len(prepared)

    def _run_prepared(
        self,
        prepared: Sequence[_Prepared],
        conf: float | None,
        iou: float | None,
        max_det: int | None,
        classes: Sequence[int] | None,
    ) -> list[Detections]:
        found, run_ms, post_ms = self._infer(prepared, conf, iou, max_det, classes)
        return [
            self._detections(
                result,
                item.placement.image_size,
                Timings(item.decode_ms, item.letterbox_ms, run, post),
            )
            for item, result, run, post in zip(prepared, found, run_ms, post_ms, strict=True)
        ]

    def _detections(
        self, found: _Found, image_size: tuple[int, int], timings: Timings, tiles: int = 0
    ) -> Detections:
        return Detections(
            boxes=found.boxes,
            scores=found.scores,
            classes=found.classes,
            polygons=found.polygons,
            width=image_size[1],
            height=image_size[0],
            names=self._names_for(found.classes),
            timings=timings,
            tiles=tiles,
        )

    def _names_for(self, classes: np.ndarray) -> tuple[str, ...]:
        if not len(classes) or int(classes.max()) < len(self.names):
            return self.names
        extra = range(len(self.names), int(classes.max()) + 1)
        return self.names + tuple(f"class {k}" for k in extra)

    def _decode(self, image: Image) -> np.ndarray:
        if isinstance(image, np.ndarray):
            return as_bgr(image, max_pixels=self.max_pixels)
        return read_image(bytes(image), max_pixels=self.max_pixels)

    def _prepare(self, image: Image, *, tensor: bool = False) -> _Prepared:
        """``image`` decoded and letterboxed; ``tensor``: and made into the model's input for a
        run of this image alone (only where a run takes one image)."""
        start = time.perf_counter()
        pixels = self._decode(image)
        prepared = self._letterboxed(pixels, (time.perf_counter() - start) * 1e3)
        if not tensor:
            return prepared
        return _Prepared(
            prepared.boxed,
            prepared.placement,
            prepared.decode_ms,
            prepared.letterbox_ms,
            self._tensor([prepared.boxed]),
        )

    def _letterboxed(self, pixels: np.ndarray, decode_ms: float = 0.0) -> _Prepared:
        start = time.perf_counter()
        boxed, where = letterbox(pixels, self.layout.input_size)
        return _Prepared(boxed, where, decode_ms, (time.perf_counter() - start) * 1e3)

    def _infer(
        self,
        prepared: Sequence[_Prepared],
        conf: float | None,
        iou: float | None,
        max_det: int | None,
        classes: Sequence[int] | None,
    ) -> tuple[list[_Found], list[float], list[float]]:
        """Run the model over ``prepared`` in batches and postprocess each result."""
        found: list[_Found] = []
        run_ms: list[float] = []
        post_ms: list[float] = []
        for first in range(0, len(prepared), self.batch):
            chunk = prepared[first : first + self.batch]
            start = time.perf_counter()
            made = chunk[0].tensor if len(chunk) == 1 else None
            tensor = made if made is not None else self._tensor([item.boxed for item in chunk])
            outputs, protos = self._run(tensor)
            share = (time.perf_counter() - start) * 1e3 / len(chunk)
            for index, item in enumerate(chunk):
                begin = time.perf_counter()
                found.append(
                    self._postprocess(
                        outputs[index],
                        None if protos is None else protos[index],
                        item.placement,
                        self.conf if conf is None else conf,
                        self.iou if iou is None else iou,
                        self.max_det if max_det is None else max_det,
                        classes,
                    )
                )
                post_ms.append((time.perf_counter() - begin) * 1e3)
                run_ms.append(share)
        return found, run_ms, post_ms

    def _tensor(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Letterboxed images as the model's input (a fixed batch filled, half where it is)."""
        tensor = to_tensor(images, batch=self.layout.batch)
        return tensor.astype(np.float16) if self.layout.half else tensor

    def _run(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        layout = self.layout
        names = [layout.output_name] + ([layout.proto_name] if layout.proto_name else [])
        try:
            results = self.session.run(names, {layout.input_name: tensor})
        except Exception as error:  # onnxruntime's own exception types
            raise ModelError("run_failed", RUN_FAILED, reason=reason(error)) from error
        output = np.asarray(results[0])
        protos = np.asarray(results[1]) if layout.proto_name else None
        if layout.half:  # decoded in float32, as the predictor does (it calls .float())
            output = output.astype(np.float32)
            protos = None if protos is None else protos.astype(np.float32)
        self._check_outputs(output, protos, len(tensor))
        return output, protos

    def _check_outputs(self, output: np.ndarray, protos: np.ndarray | None, count: int) -> None:
        """The arrays a run gave fit the layout read from the graph's declared shapes (a graph
        can declare one shape and produce another)."""
        layout = self.layout
        nc, nm = layout.classes, layout.mask_channels
        width = {
            LayoutKind.YOLOV8: (1, 4 + (nc or 0)),
            LayoutKind.SEGMENT: (1, 4 + (nc or 0) + nm),
            LayoutKind.YOLOV5: (2, 5 + (nc or 0)),
            LayoutKind.END2END: (2, 6),
            LayoutKind.SEGMENT_END2END: (2, 6 + nm),
        }[layout.kind]
        fits = output.ndim == 3 and output.shape[0] == count and output.shape[width[0]] == width[1]
        if protos is not None:
            fits = fits and protos.ndim == 4 and protos.shape[:2] == (count, nm)
            fits = fits and min(protos.shape[2:]) > 0
        if not fits or not np.issubdtype(output.dtype, np.floating):
            shapes = ", ".join(
                "×".join(map(str, array.shape)) for array in (output, protos) if array is not None
            )
            raise ModelError("bad_outputs", BAD_OUTPUTS, shapes=shapes)

    def _postprocess(
        self,
        output: np.ndarray,
        protos: np.ndarray | None,
        where: Placement,
        conf: float,
        iou: float,
        max_det: int,
        classes: Sequence[int] | None,
    ) -> _Found:
        layout = self.layout
        kind = layout.kind
        if kind in (LayoutKind.YOLOV8, LayoutKind.SEGMENT):
            found = decode.decode_v8(
                output,
                classes_count=layout.classes or 0,
                conf=conf,
                iou=iou,
                max_det=max_det,
                classes=classes,
            )
        elif kind is LayoutKind.YOLOV5:
            found = decode.decode_v5(
                output,
                classes_count=layout.classes or 0,
                conf=conf,
                iou=iou,
                max_det=max_det,
                classes=classes,
            )
        else:
            found = decode.decode_end2end(output, conf=conf, max_det=max_det, classes=classes)
        polygons: tuple[np.ndarray | None, ...] | None = None
        if layout.segments and protos is not None:
            outlines = []
            if len(found) and found.coefficients is not None:
                for outline in decode.outlines(
                    found.coefficients, protos, found.boxes, layout.input_size
                ):
                    outlines.append(
                        None
                        if outline is None
                        else scale_points(outline, layout.input_size, where.image_size)
                    )
            polygons = tuple(outlines)
        boxes = scale_boxes(
            found.boxes,
            layout.input_size,
            where.image_size,
            rounded_pad=kind is not LayoutKind.YOLOV5,
        )
        return _Found(boxes, found.scores.astype(np.float64), found.classes, polygons)

    def _prepare_tiled(self, image: Image, overlap: float) -> _Tiled:
        start = time.perf_counter()
        pixels = self._decode(image)
        decode_ms = (time.perf_counter() - start) * 1e3
        image_size = (pixels.shape[0], pixels.shape[1])
        pieces = tiling.tiles(image_size, self.layout.input_size, overlap)
        prepared = [self._letterboxed(pixels, decode_ms)]
        if len(pieces) == 1:  # the image fits in one tile: the whole-image pass is all there is
            return _Tiled(image_size, (), prepared, decode_ms)
        prepared += [
            self._letterboxed(pixels[t.y : t.y + t.height, t.x : t.x + t.width]) for t in pieces
        ]
        return _Tiled(image_size, tuple(pieces), prepared, decode_ms)

    def _detect_tiled(
        self,
        tiled: _Tiled,
        conf: float | None,
        iou: float | None,
        max_det: int | None,
        classes: Sequence[int] | None,
    ) -> Detections:
        image_size, pieces, prepared = tiled.image_size, tiled.pieces, tiled.prepared
        found, run_ms, post_ms = self._infer(prepared, conf, iou, max_det, classes)
        if not pieces:
            item = prepared[0]
            timings = Timings(item.decode_ms, item.letterbox_ms, run_ms[0], post_ms[0])
            return self._detections(found[0], image_size, timings)
        begin = time.perf_counter()
        boxes = [found[0].boxes]
        cut = [np.zeros(len(found[0].boxes), dtype=bool)]
        for piece, result in zip(pieces, found[1:], strict=True):
            shifted = result.boxes + np.array(
                [piece.x, piece.y, piece.x, piece.y], dtype=np.float64
            )
            boxes.append(shifted)
            cut.append(tiling.cut_at_edge(shifted, piece, image_size))
        all_boxes = np.concatenate(boxes)
        scores = np.concatenate([result.scores for result in found])
        labels = np.concatenate([result.classes for result in found])
        keep = tiling.merge(
            all_boxes,
            scores,
            labels,
            np.concatenate(cut),
            iou=self.iou if iou is None else iou,
            max_det=self.max_det if max_det is None else max_det,
        )
        polygons = None
        if self.layout.segments:
            offsets = [(0, 0)] + [(piece.x, piece.y) for piece in pieces]
            every = [
                None if outline is None else outline + np.array(offset, dtype=np.float64)
                for result, offset in zip(found, offsets, strict=True)
                for outline in (result.polygons or ())
            ]
            polygons = tuple(every[k] for k in keep)
        merged = _Found(all_boxes[keep], scores[keep], labels[keep], polygons)
        merge_ms = (time.perf_counter() - begin) * 1e3
        timings = Timings(
            tiled.decode_ms,
            sum(item.letterbox_ms for item in prepared),
            sum(run_ms),
            sum(post_ms) + merge_ms,
        )
        return self._detections(merged, image_size, timings, tiles=len(pieces))
