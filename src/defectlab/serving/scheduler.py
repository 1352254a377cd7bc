"""Fair scheduling of detection work: per-model runs, per-tenant queues served in turn.

Every request's images wait in the queue of its organization for its model version. Runner
threads (DEFECTLAB_INFERENCE_RUNNERS, each running one model at a time) take work model by
model in turn, and within a model organization by organization in turn — an organization of
weight w is served w times in a row — so one organization sending a flood waits behind itself,
not in front of the others. A model whose runs take several images at once gathers work of
the same options from the queues, in the same order, for up to DEFECTLAB_INFERENCE_BATCH_WINDOW_MS.

Queues are bounded: an organization with DEFECTLAB_INFERENCE_QUEUE images already waiting for
a model is refused (`Overloaded`, answered 503 with Retry-After) instead of waiting ever longer.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Options:
    conf: float | None = None
    iou: float | None = None
    max_det: int | None = None
    classes: tuple[int, ...] | None = None
    tile: bool = False


@dataclass(slots=True)
class Work:
    """One request's images for one model version (``runner`` is the loaded version: anything
    with ``detector``, ``version_id`` and ``label``)."""

    runner: Any
    tenant: int
    weight: int
    images: Sequence[bytes]
    options: Options
    future: Future[list[Any]] = field(default_factory=Future)
    queued_at: float = field(default_factory=time.perf_counter)
    started_at: float = 0.0


class Overloaded(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class _Model:
    """The queues of one model version: organization → its waiting work."""

    def __init__(self) -> None:
        self.tenants: OrderedDict[int, deque[Work]] = OrderedDict()
        self.waiting: dict[int, int] = {}  # images per organization
        self.turn: tuple[int, int] | None = None  # (organization, servings left in its turn)

    def empty(self) -> bool:
        return not self.tenants

    def next_tenant(self, weights: dict[int, int]) -> int:
        if self.turn is not None and self.turn[0] in self.tenants and self.turn[1] > 0:
            return self.turn[0]
        if self.turn is not None and self.turn[0] in self.tenants:
            self.tenants.move_to_end(self.turn[0])  # its turn is over: to the back
        tenant = next(iter(self.tenants))
        self.turn = (tenant, weights.get(tenant, 1))
        return tenant

    def take(self, tenant: int) -> Work:
        queue = self.tenants[tenant]
        work = queue.popleft()
        self.waiting[tenant] -= len(work.images)
        if not queue:
            del self.tenants[tenant]
            del self.waiting[tenant]
        if self.turn is not None:
            self.turn = (tenant, self.turn[1] - 1)
        return work


class Scheduler:
    def __init__(
        self,
        runners: int,
        queue_limit: int,
        window_seconds: float,
        observe: Callable[[Any, int, float], None] | None = None,
    ) -> None:
        self.runners = max(1, runners)
        self.queue_limit = queue_limit
        self.window = window_seconds
        self._observe = observe  # (runner, images in the run, seconds)
        self._lock = threading.Condition()
        self._models: OrderedDict[int, _Model] = OrderedDict()
        self._weights: dict[int, int] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._run_seconds = 0.05  # a running mean of one image's run, for Retry-After

    def start(self) -> None:
        for number in range(self.runners):
            thread = threading.Thread(target=self._loop, name=f"runner-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []

    def depth(self) -> dict[str, int]:
        """Images waiting, per model label."""
        with self._lock:
            found: dict[str, int] = {}
            for model in self._models.values():
                for queue in model.tenants.values():
                    if queue:
                        label = queue[0].runner.label
                        found[label] = found.get(label, 0) + sum(len(w.images) for w in queue)
            return found

    def submit(self, work: Work) -> Future[list[Any]]:
        """Queue ``work``; its future gets each image's detections or engine error, in order."""
        with self._lock:
            if self._stopping:
                raise Overloaded(1)
            model = self._models.get(work.runner.version_id)
            if model is None:
                model = self._models[work.runner.version_id] = _Model()
            waiting = model.waiting.get(work.tenant, 0)
            if waiting and waiting + len(work.images) > self.queue_limit:
                seconds = waiting * self._run_seconds / self.runners
                raise Overloaded(max(1, math.ceil(seconds)))
            model.tenants.setdefault(work.tenant, deque()).append(work)
            model.waiting[work.tenant] = waiting + len(work.images)
            self._weights[work.tenant] = max(1, work.weight)
            self._lock.notify()
        return work.future

    def _next(self) -> list[Work] | None:
        """The next run's work (called holding the lock), or None when nothing waits."""
        for version_id in list(self._models):
            model = self._models[version_id]
            if model.empty():
                del self._models[version_id]
                continue
            self._models.move_to_end(version_id)  # the next run starts at another model
            first = model.take(model.next_tenant(self._weights))
            batch = [first]
            capacity = self._capacity(first)
            size = len(first.images)
            while size < capacity and not model.empty():
                tenant = model.next_tenant(self._weights)
                candidate = model.tenants[tenant][0]
                if candidate.options != first.options or size + len(candidate.images) > capacity:
                    break
                batch.append(model.take(tenant))
                size += len(candidate.images)
            if model.empty():
                del self._models[version_id]
            return batch
        return None

    @staticmethod
    def _capacity(work: Work) -> int:
        if work.options.tile:
            return len(work.images)
        return max(len(work.images), int(getattr(work.runner.detector, "batch", 1)))

    def _loop(self) -> None:
        while True:
            with self._lock:
                batch = self._next()
                while batch is None and not self._stopping:
                    self._lock.wait()
                    batch = self._next()
                if batch is None:
                    return
                if (
                    self.window > 0
                    and len(batch) == 1
                    and self._capacity(batch[0]) > len(batch[0].images)
                ):
                    self._lock.wait(self.window)  # let more of the same model arrive
                    batch += self._more(batch[0])
            self._run(batch)

    def _more(self, first: Work) -> list[Work]:
        model = self._models.get(first.runner.version_id)
        found: list[Work] = []
        size, capacity = len(first.images), self._capacity(first)
        while model is not None and not model.empty() and size < capacity:
            tenant = model.next_tenant(self._weights)
            candidate = model.tenants[tenant][0]
            if candidate.options != first.options or size + len(candidate.images) > capacity:
                break
            found.append(model.take(tenant))
            size += len(candidate.images)
        return found

    def _run(self, batch: list[Work]) -> None:
        start = time.perf_counter()
        images: list[bytes] = []
        for work in batch:
            work.started_at = start
            images.extend(work.images)
        options = batch[0].options
        try:
            outcomes = batch[0].runner.detector.detect_each(
                images,
                conf=options.conf,
                iou=options.iou,
                max_det=options.max_det,
                classes=options.classes,
                tile=options.tile,
            )
        except Exception as error:  # a bug, not a bad image: every request of the run fails
            log.exception("a detection run failed")
            for work in batch:
                if not work.future.set_running_or_notify_cancel():
                    continue
                work.future.set_exception(error)
            return
        seconds = time.perf_counter() - start
        self._run_seconds = 0.8 * self._run_seconds + 0.2 * seconds / max(1, len(images))
        if self._observe is not None:
            self._observe(batch[0].runner, len(images), seconds)
        given = 0
        for work in batch:
            mine = outcomes[given : given + len(work.images)]
            given += len(work.images)
            if work.future.set_running_or_notify_cancel():
                work.future.set_result(mine)
