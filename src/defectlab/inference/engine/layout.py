"""Which YOLO output layout a model has, read from its graph's shapes and its metadata.

Recognised (B is the batch, N the candidates, nc the classes, nm the mask coefficients):

- ``yolov5``: one output ``B×N×(5+nc)``: cx, cy, w, h, objectness, nc class scores; the score
  is objectness × class score.
- ``yolov8`` (also v9, v11, v12 raw exports): one output ``B×(4+nc)×N``: cx, cy, w, h, nc class
  scores, channels first.
- ``end2end`` (YOLOv10, YOLO26; NMS inside the graph): one output ``B×K×6``: x1, y1, x2, y2,
  score, class, in input pixels.
- ``segment`` (v8-style): ``B×(4+nc+nm)×N`` plus prototypes ``B×nm×mh×mw``;
  ``segment_end2end`` (YOLO26-seg): ``B×K×(6+nm)`` plus the same prototypes.

How a shape that fits more than one layout is decided (``1×6×6`` fits v8 with two classes, v5
with one class and end-to-end with six detections), in this order:

1. ``end2end`` in the metadata: true keeps only the end-to-end layouts, false drops them.
2. The number of classes, from the model's ``names`` or else the names given with the upload,
   keeps only the layouts whose class count matches (if none does, it is ignored).
3. The candidate count a stride-8/16/32 head gives at the input size (v8: 8400 at 640, v5:
   three anchors each, 25200): a layout whose candidate dimension equals it wins, and one whose
   fixed candidate dimension differs from it loses to a layout that does not tell (end-to-end
   outputs have max_det rows, any number; a symbolic dimension can be anything).
4. Whoever wrote the file: an Ultralytics 8+ export (it writes ``task``) prefers v8, then
   end-to-end, then v5; an export without ``task`` (YOLOv5's own exporter writes only stride
   and names, and end-to-end models come only from Ultralytics 8+) prefers v5, then v8.

A symbolic (dynamic) input height or width takes the size given by the caller (a version's
configured input size), else the metadata's ``imgsz``, else 640; a symbolic batch means several
images can run at once. A fixed height and width are the graph's and always win.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from defectlab.inference.engine.errors import (
    BAD_INPUT,
    BAD_OUTPUTS,
    ModelError,
)
from defectlab.inference.engine.metadata import MAX_CLASSES, ModelMetadata

DEFAULT_SIZE = 640
MAX_SIDE = 8192  # input pixels a side: a 3×8192×8192 float tensor is already 800 MB
MAX_BATCH = 64
_FLOAT = "tensor(float)"
_STRIDES = (8, 16, 32)
Dim = int | str | None


class LayoutKind(StrEnum):
    YOLOV5 = "yolov5"
    YOLOV8 = "yolov8"
    END2END = "end2end"
    SEGMENT = "segment"
    SEGMENT_END2END = "segment_end2end"


_ULTRALYTICS_8_ORDER = (
    LayoutKind.YOLOV8,
    LayoutKind.SEGMENT,
    LayoutKind.END2END,
    LayoutKind.SEGMENT_END2END,
    LayoutKind.YOLOV5,
)
_YOLOV5_ORDER = (
    LayoutKind.YOLOV5,
    LayoutKind.YOLOV8,
    LayoutKind.SEGMENT,
    LayoutKind.END2END,
    LayoutKind.SEGMENT_END2END,
)
_END2END = frozenset({LayoutKind.END2END, LayoutKind.SEGMENT_END2END})
_SEGMENT = frozenset({LayoutKind.SEGMENT, LayoutKind.SEGMENT_END2END})


@dataclass(frozen=True, slots=True)
class Layout:
    kind: LayoutKind
    input_name: str
    input_size: tuple[int, int]  # (height, width) the letterbox fills
    batch: int | None  # None: dynamic, any number of images per run
    dynamic_size: bool
    output_name: str  # the detections
    proto_name: str | None  # the mask prototypes (segmentation only)
    classes: int | None  # None: end-to-end output without known names (class ids as given)
    mask_channels: int  # nm; 0 without masks
    half: bool = False  # the input is float16 (a model exported with half=True)

    @property
    def end2end(self) -> bool:
        return self.kind in _END2END

    @property
    def segments(self) -> bool:
        return self.kind in _SEGMENT


@dataclass(frozen=True, slots=True)
class _Tensor:
    name: str
    shape: tuple[Dim, ...]


def recognise(
    inputs: Sequence[Any],
    outputs: Sequence[Any],
    metadata: ModelMetadata,
    *,
    classes: int | None = None,
    input_size: tuple[int, int] | None = None,
) -> Layout:
    """The layout of a model from its ``session.get_inputs()`` / ``get_outputs()`` (anything
    with ``name`` and ``shape``) and metadata. ``classes`` is the class count known from names
    given with the upload (the model's own names win); ``input_size`` (height, width) is used
    when the graph's height or width is symbolic, before the metadata's ``imgsz``. Raises
    ModelError if nothing fits, or if the input asks for more than `MAX_SIDE` pixels a side or
    a fixed batch above `MAX_BATCH` (its tensor alone would take gigabytes)."""
    image = _input(inputs)
    height, width = image.shape[2], image.shape[3]
    dynamic_size = not (isinstance(height, int) and isinstance(width, int))
    if dynamic_size:
        size = input_size or metadata.imgsz or (DEFAULT_SIZE, DEFAULT_SIZE)
        size = (
            height if isinstance(height, int) else size[0],
            width if isinstance(width, int) else size[1],
        )
    else:
        size = (int(height), int(width))  # type: ignore[arg-type]
    batch = image.shape[0] if isinstance(image.shape[0], int) else None
    if max(size) > MAX_SIDE or (batch or 1) > MAX_BATCH:
        raise ModelError("bad_input", BAD_INPUT, shape=_show(image.shape))
    nc = len(metadata.names) if metadata.names else classes
    tensors = [_Tensor(str(out.name), tuple(_dim(d) for d in out.shape)) for out in outputs]
    kind, output, proto, found_nc, nm = _outputs(tensors, metadata, nc, size)
    return Layout(
        kind=kind,
        input_name=image.name,
        input_size=size,
        batch=batch,
        dynamic_size=dynamic_size,
        output_name=output,
        proto_name=proto,
        classes=found_nc,
        mask_channels=nm,
        half=getattr(inputs[0], "type", _FLOAT) == "tensor(float16)",
    )


def _dim(value: Any) -> Dim:
    return value if isinstance(value, int) and value > 0 else (str(value) if value else None)


def _input(inputs: Sequence[Any]) -> _Tensor:
    shapes = [tuple(_dim(d) for d in item.shape) for item in inputs]
    kinds = [getattr(item, "type", _FLOAT) for item in inputs]
    if (
        len(inputs) != 1
        or len(shapes[0]) != 4
        or shapes[0][1] != 3
        or kinds[0] not in (_FLOAT, "tensor(float16)")
    ):
        shown = ", ".join(
            _show(shape) + ("" if kind == _FLOAT else f" ({kind})")
            for shape, kind in zip(shapes, kinds, strict=True)
        )
        shown = shown or "nothing"
        raise ModelError("bad_input", BAD_INPUT, shape=shown)
    return _Tensor(str(inputs[0].name), shapes[0])


def _show(shape: Sequence[Dim]) -> str:
    return "×".join(str(d) if d is not None else "?" for d in shape)


def _fail(tensors: Sequence[_Tensor]) -> ModelError:
    shapes = ", ".join(_show(t.shape) for t in tensors) or "(none)"
    return ModelError("bad_outputs", BAD_OUTPUTS, shapes=shapes)


def candidates_v8(size: tuple[int, int]) -> int:
    """Anchor points of a stride-8/16/32 head (8400 at 640×640)."""
    return sum(-(-size[0] // s) * -(-size[1] // s) for s in _STRIDES)


def _outputs(
    tensors: Sequence[_Tensor],
    metadata: ModelMetadata,
    nc: int | None,
    size: tuple[int, int],
) -> tuple[LayoutKind, str, str | None, int | None, int]:
    protos = [t for t in tensors if len(t.shape) == 4]
    heads = [t for t in tensors if len(t.shape) == 3]
    if len(heads) != 1 or len(protos) > 1 or len(tensors) != len(heads) + len(protos):
        raise _fail(tensors)
    head = heads[0]
    nm = 0
    if protos:
        nm_dim = protos[0].shape[1]
        if not isinstance(nm_dim, int):
            raise _fail(tensors)
        nm = nm_dim
    rows, cols = head.shape[1], head.shape[2]
    # (kind, nc it implies or None if it does not tell, size of its candidate dimension)
    options: list[tuple[LayoutKind, int | None, Dim]] = []
    if protos:
        if isinstance(rows, int) and rows > 4 + nm:
            options.append((LayoutKind.SEGMENT, rows - 4 - nm, cols))
        if cols == 6 + nm:
            options.append((LayoutKind.SEGMENT_END2END, None, rows))
    else:
        if isinstance(rows, int) and rows > 4:
            options.append((LayoutKind.YOLOV8, rows - 4, cols))
        if isinstance(cols, int) and cols > 5:
            options.append((LayoutKind.YOLOV5, cols - 5, rows))
        if cols == 6:
            options.append((LayoutKind.END2END, None, rows))
    if metadata.end2end is not None:
        options = [o for o in options if (o[0] in _END2END) == metadata.end2end]
    if nc is not None:
        # A class count that fits no layout (names of another model, or too few given with
        # the upload) is a wrong hint, not a reason to refuse: the graph's shape decides.
        options = [o for o in options if o[1] is None or o[1] == nc] or options
    if len(options) > 1:
        expected = {
            LayoutKind.YOLOV8: candidates_v8(size),
            LayoutKind.SEGMENT: candidates_v8(size),
            LayoutKind.YOLOV5: 3 * candidates_v8(size),
        }

        def fit(option: tuple[LayoutKind, int | None, Dim]) -> int:
            count = expected.get(option[0])
            if count is None or not isinstance(option[2], int):
                return 1  # end-to-end (K is max_det, any number) or a symbolic count
            return 2 if option[2] == count else 0

        best = max(fit(option) for option in options)
        options = [option for option in options if fit(option) == best]
    options = [o for o in options if o[1] is None or o[1] <= MAX_CLASSES]
    if not options:
        raise _fail(tensors)
    order = _ULTRALYTICS_8_ORDER if metadata.from_ultralytics_8 else _YOLOV5_ORDER
    kind, found_nc, _candidates = min(options, key=lambda option: order.index(option[0]))
    if found_nc is None:
        found_nc = nc
    return kind, head.name, protos[0].name if protos else None, found_nc, nm
