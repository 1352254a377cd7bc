"""What a new model version's check runs in the sandbox (``engine.sandbox``): the engine's
`Detector` built from the file's bytes, as pre-annotation and serving will build it, then one
detection on a synthetic inspection panel. Plain Python, no Django: it runs in the sandbox's
fresh interpreter, named ``RUN``.

The panel is 640×480, not square, so the letterbox pads it as it pads real images; what the
run reports (the layout, input size and names the engine settled on, how many boxes it found,
its times) is plain data, kept with the version."""

from __future__ import annotations

import time
from typing import Any

RUN = "defectlab.inference.validation:detect_on_panel"
PANEL_SEED = 7  # a panel with defects on it
PANEL_SIZE = (640, 480)  # width, height


def detect_on_panel(
    data: bytes,
    *,
    names: list[str] | None = None,
    input_size: list[int] | None = None,
    conf: float | None = None,
    iou: float | None = None,
    max_det: int | None = None,
) -> dict[str, Any]:
    """Build the detector from ``data`` (one thread, no memory arena: the sandbox's memory
    limit then measures what the graph allocates) and detect once on a synthetic panel."""
    from defectlab.inference.engine import Detector
    from defectlab.synthetic import defect_image, encode

    started = time.perf_counter()
    detector = Detector(
        data,
        names=names or None,
        conf=conf,
        iou=iou,
        max_det=max_det,
        input_size=(input_size[0], input_size[1]) if input_size else None,
        threads=1,
        memory_arena=False,
        batch=1,
    )
    loaded = time.perf_counter()
    image, _ = defect_image(PANEL_SEED, *PANEL_SIZE)
    found = detector.detect(encode(image))
    finished = time.perf_counter()
    layout = detector.layout
    return {
        "layout": str(layout.kind),
        "input_size": list(layout.input_size),
        "classes": len(detector.names),
        "names": list(detector.names),
        "detections": len(found.boxes),
        "load_seconds": round(loaded - started, 4),
        "detect_seconds": round(finished - loaded, 4),
    }
