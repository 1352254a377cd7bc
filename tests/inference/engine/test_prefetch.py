"""`prefetch.prefetched`: results in order, made on one thread at most ``ahead`` in front,
errors handed over, and the thread gone once the consumer closes the generator."""

from __future__ import annotations

import itertools
import os
import sys
import threading
from collections.abc import Iterator

import pytest

from defectlab.inference.engine.prefetch import prefetched


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "defectlab-prefetch"]


def test_results_in_order_on_another_thread() -> None:
    seen: list[int] = []

    def square(n: int) -> tuple[int, int]:
        seen.append(threading.get_ident())
        return n, n * n

    assert list(prefetched(range(20), square, ahead=2)) == [(n, n * n) for n in range(20)]
    assert set(seen) != {threading.get_ident()} and len(set(seen)) == 1
    assert prefetch_threads() == []


@pytest.mark.parametrize("ahead", [1, 2, 5])
def test_never_more_than_ahead_in_front(ahead: int) -> None:
    made: list[int] = []

    def record(n: int) -> int:
        made.append(n)
        return n

    for taken, n in enumerate(prefetched(range(40), record, ahead=ahead), start=1):
        assert n == taken - 1
        # `ahead` waiting in the queue, one more in the making at most.
        assert len(made) <= taken + ahead + 1


def test_nothing_starts_before_the_first_next() -> None:
    made: list[int] = []
    results = prefetched(range(3), made.append, ahead=1)
    assert prefetch_threads() == [] and made == []
    results.close()
    assert prefetch_threads() == [] and made == []


def test_closing_early_stops_the_thread_of_an_endless_source() -> None:
    made = itertools.count()
    results = prefetched(itertools.repeat(None), lambda _: next(made), ahead=2)
    assert [next(results) for _ in range(5)] == [0, 1, 2, 3, 4]
    assert len(prefetch_threads()) == 1
    results.close()
    assert prefetch_threads() == []
    assert next(made) <= 5 + 2 + 1  # taken, waiting, one in the making: none after the close


def test_leaving_a_loop_and_dropping_the_generator_stops_the_thread() -> None:
    for n in prefetched(itertools.count(), lambda n: n, ahead=1):
        if n == 3:
            break
    # The loop's generator was the only reference: dropping it closed it.
    assert prefetch_threads() == []


def test_an_error_of_prepare_or_of_the_items_is_raised_where_it_is_reached() -> None:
    def brittle(n: int) -> int:
        if n == 3:
            raise KeyError(n)
        return n

    results = prefetched(range(10), brittle, ahead=2)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(KeyError):
        next(results)
    assert prefetch_threads() == []

    def items() -> Iterator[int]:
        yield 1
        raise OSError("the listing failed")

    results = prefetched(items(), lambda n: n)
    assert next(results) == 1
    with pytest.raises(OSError, match="the listing failed"):
        next(results)
    assert prefetch_threads() == []


def test_ahead_is_at_least_one() -> None:
    with pytest.raises(ValueError):
        prefetched([1], lambda n: n, ahead=0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_the_thread_lowers_its_own_priority_only() -> None:
    def nice(_: object) -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    (theirs,) = prefetched([None], nice, niceness=3)
    assert theirs == min(mine + 3, 19)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine
    (same,) = prefetched([None], nice, niceness=0)
    assert same == mine
