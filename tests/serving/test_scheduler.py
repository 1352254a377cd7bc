"""The scheduler's order, with a stand-in model whose runs wait for the test: one organization's
flood waits behind itself, a heavier plan is served more often, a full queue refuses at once,
runs of a batch-taking model gather waiting work of the same options, a run's failure reaches
every request in it, and stopping runs what was queued."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from defectlab.serving.scheduler import Options, Overloaded, Scheduler, Work


@dataclass
class Detector:
    batch: int = 1
    runs: list[list[bytes]] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)
    fail: bool = False

    def detect_each(self, images: list[bytes], **options: Any) -> list[str]:
        self.gate.wait(10)
        self.runs.append(list(images))
        if self.fail:
            raise RuntimeError("the model broke")
        return [f"found on {image.decode()}" for image in images]


@dataclass(eq=False)
class Runner:
    detector: Detector
    version_id: int = 1
    label: str = "panels"


def work(runner: Runner, tenant: int, name: str, weight: int = 1, **options: Any) -> Work:
    return Work(runner, tenant, weight, [name.encode()], Options(**options))


def order(detector: Detector) -> list[str]:
    return [b.decode() for run in detector.runs for b in run]


def test_a_flood_from_one_organization_waits_behind_itself() -> None:
    detector = Detector()
    runner = Runner(detector)
    scheduler = Scheduler(runners=1, queue_limit=100, window_seconds=0)
    futures = [scheduler.submit(work(runner, 1, f"a{k}")) for k in range(6)]
    futures += [scheduler.submit(work(runner, 2, f"b{k}")) for k in range(2)]
    scheduler.start()
    detector.gate.set()
    for future in futures:
        future.result(10)
    scheduler.stop()
    assert order(detector) == ["a0", "b0", "a1", "b1", "a2", "a3", "a4", "a5"]
    assert futures[6].result() == ["found on b0"]


def test_a_heavier_plan_is_served_more_often() -> None:
    detector = Detector()
    runner = Runner(detector)
    scheduler = Scheduler(runners=1, queue_limit=100, window_seconds=0)
    futures = [scheduler.submit(work(runner, 1, f"a{k}", weight=3)) for k in range(6)]
    futures += [scheduler.submit(work(runner, 2, f"b{k}")) for k in range(3)]
    scheduler.start()
    detector.gate.set()
    for future in futures:
        future.result(10)
    scheduler.stop()
    assert order(detector) == ["a0", "a1", "a2", "b0", "a3", "a4", "a5", "b1", "b2"]


def test_models_take_turns() -> None:
    one, two = Detector(), Detector()
    first, second = Runner(one, version_id=1), Runner(two, version_id=2)
    scheduler = Scheduler(runners=1, queue_limit=100, window_seconds=0)
    shared: list[str] = []
    for detector, name in ((one, "one"), (two, "two")):
        detector.gate.set()
        original = detector.detect_each

        def tracked(
            images: list[bytes], original: Any = original, name: str = name, **o: Any
        ) -> Any:
            shared.append(name)
            return original(images, **o)

        detector.detect_each = tracked  # type: ignore[method-assign]
    futures = [scheduler.submit(work(first, 1, f"x{k}")) for k in range(3)]
    futures += [scheduler.submit(work(second, 1, f"y{k}")) for k in range(3)]
    scheduler.start()
    for future in futures:
        future.result(10)
    scheduler.stop()
    assert shared == ["one", "two", "one", "two", "one", "two"]


def test_a_full_queue_refuses_at_once_and_others_still_queue() -> None:
    detector = Detector()
    runner = Runner(detector)
    scheduler = Scheduler(runners=1, queue_limit=3, window_seconds=0)
    for k in range(3):
        scheduler.submit(work(runner, 1, f"a{k}"))
    with pytest.raises(Overloaded) as refused:
        scheduler.submit(work(runner, 1, "a3"))
    assert refused.value.retry_after >= 1
    other = scheduler.submit(work(runner, 2, "b0"))  # another organization's queue has room
    assert scheduler.depth() == {"panels": 4}
    scheduler.start()
    detector.gate.set()
    assert other.result(10) == ["found on b0"]
    scheduler.stop()


def test_a_batch_taking_model_gathers_work_of_the_same_options() -> None:
    detector = Detector(batch=4)
    runner = Runner(detector)
    scheduler = Scheduler(runners=1, queue_limit=100, window_seconds=0.001)
    futures = [
        scheduler.submit(work(runner, 1, "a0")),
        scheduler.submit(work(runner, 2, "b0")),
        scheduler.submit(work(runner, 1, "a1")),
        scheduler.submit(work(runner, 2, "b1", conf=0.5)),  # other options: a run of its own
        scheduler.submit(work(runner, 1, "a2")),
    ]
    scheduler.start()
    detector.gate.set()
    results = [future.result(10) for future in futures]
    scheduler.stop()
    assert detector.runs[0] == [b"a0", b"b0", b"a1"]
    assert [b"b1"] in detector.runs
    assert results[2] == ["found on a1"] and results[3] == ["found on b1"]


def test_a_failed_run_fails_every_request_in_it() -> None:
    detector = Detector(batch=2, fail=True)
    runner = Runner(detector)
    scheduler = Scheduler(runners=1, queue_limit=100, window_seconds=0)
    futures = [scheduler.submit(work(runner, 1, "a0")), scheduler.submit(work(runner, 2, "b0"))]
    scheduler.start()
    detector.gate.set()
    for future in futures:
        with pytest.raises(RuntimeError):
            future.result(10)
    scheduler.stop()


def test_stopping_runs_what_was_queued_then_refuses() -> None:
    detector = Detector()
    runner = Runner(detector)
    scheduler = Scheduler(runners=2, queue_limit=100, window_seconds=0)
    scheduler.start()
    futures = [scheduler.submit(work(runner, 1, f"a{k}")) for k in range(4)]
    detector.gate.set()
    scheduler.stop()
    assert all(future.done() for future in futures)
    with pytest.raises(Overloaded):
        scheduler.submit(work(runner, 1, "late"))
