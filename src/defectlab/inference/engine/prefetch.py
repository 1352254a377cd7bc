"""Work on the next items of a sequence while the current one is used: one thread of its own,
a bounded queue, results in order.

`Detector.detect_stream` prepares images with it (read from storage, decode, EXIF turn,
letterbox, tensor) while the model runs on the image before. Both sides spend their time in C
that releases the GIL (OpenCV and numpy on the thread, onnxruntime in the caller), so on a
machine with cores to spare the preparing costs no wall time at all.

**Priority.** On a machine whose cores the model's intra-op threads already fill, the thread
preparing images competes with them, and a parallel section of the run waits for whichever of
its threads lost the core. The thread therefore lowers its own scheduling priority (a larger
nice value, per thread on Linux): it then runs in what the model's threads leave idle (between
operators, in the serial parts of the graph, during postprocessing), and the run keeps its
cores. `bench/engine.py` measures it, and bench/README.md holds the figures behind
`DEFAULT_NICENESS`. If the machine is busy with other processes as well, a niced thread gets a
smaller share of the cores against them, so preparing can fall behind; ``niceness=0`` keeps
the caller's priority.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import TypeVar, cast

Item = TypeVar("Item")
Result = TypeVar("Result")

# Results made ahead of the one the consumer holds (one more may be in the making): enough to
# hide the preparing of one image behind the run of the one before, while a stream of
# 5-megapixel images holds about three images' worth of memory however long it is.
DEFAULT_AHEAD = 1
# How much the preparing thread lowers its priority (nice 0 → 10; at most 19 on Linux).
DEFAULT_NICENESS = 10


@dataclass(frozen=True, slots=True)
class _Raised:
    """An exception from the thread, raised again in the consumer's (it ends the stream)."""

    error: BaseException


_END = object()


def prefetched(
    items: Iterable[Item],
    prepare: Callable[[Item], Result],
    *,
    ahead: int = DEFAULT_AHEAD,
    niceness: int = 0,
) -> Generator[Result, None, None]:
    """``prepare(item)`` for each of ``items``, in order, made on a thread of its own at most
    ``ahead`` results ahead of the consumer.

    ``items`` is iterated on that thread too (it may read files or storage as it goes). An
    exception from ``prepare`` or from ``items`` is raised by this generator when the consumer
    reaches it, and ends it: a ``prepare`` that should carry on past a bad item returns its
    error as a result instead. The thread starts with the first ``next()``; closing the
    generator (or dropping it) stops the thread after the item in hand and waits for it.
    ``niceness`` is added to the thread's nice value (`prefetch`'s docstring)."""
    if ahead < 1:
        raise ValueError("ahead must be at least 1")
    return _prefetched(items, prepare, ahead, niceness)


def _prefetched(
    items: Iterable[Item], prepare: Callable[[Item], Result], ahead: int, niceness: int
) -> Generator[Result, None, None]:
    results: queue.Queue[object] = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def offer(value: object) -> bool:
        # Once `stop` is set the consumer empties the queue once and waits for the thread:
        # checking before every put means at most one more put, and it finds room.
        if stop.is_set():
            return False
        results.put(value)
        return True

    def work() -> None:
        lower_priority(niceness)
        try:
            source = iter(items)
            while not stop.is_set():
                try:
                    item = next(source)
                except StopIteration:
                    offer(_END)
                    return
                if stop.is_set() or not offer(prepare(item)):
                    return
        except BaseException as error:  # everything goes to the consumer, who decides
            offer(_Raised(error))

    thread = threading.Thread(target=work, name="defectlab-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            value = results.get()
            if value is _END:
                return
            if isinstance(value, _Raised):
                raise value.error
            yield cast(Result, value)
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                results.get_nowait()
        thread.join()


def lower_priority(niceness: int) -> None:
    """Add ``niceness`` to the calling thread's nice value (on Linux a thread's own; elsewhere
    nothing, since there it would be the whole process's)."""
    if niceness <= 0 or not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + niceness)
