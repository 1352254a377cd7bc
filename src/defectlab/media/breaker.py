"""Keeping a storage that does not answer from holding the web's threads.

Requests a person waits on (an image shown through DefectLab, a thumbnail, a TIFF rendered) reach
a storage connection through `guarded`, which keeps, per connection and per process:

- a *bulkhead*: at most ``DEFECTLAB_S3_CALLS_PER_STORAGE`` calls to the storage at a time; one
  more is answered at once with 503 (try again) instead of queueing on a thread. A healthy store
  answers in milliseconds, so the limit is rarely met; a store that hangs can hold only that
  many of the web server's threads, however many images a page asks for.
- a *circuit breaker*: ``DEFECTLAB_S3_BREAKER_FAILURES`` failures in a row to reach the store
  (no connection, a timeout, a 5xx) open it for ``DEFECTLAB_S3_BREAKER_SECONDS``: meanwhile every
  request is answered at once with 503 and the last reason, without touching the network. Then
  one request tries (the others are still answered at once); if it works the breaker closes, if
  not it opens again.

An answer that says the store is up but refuses (wrong key, no such object) is no failure here:
it is fast, and it is the request's own answer. Jobs (sync, writes, exports) do not go through
the breaker: they have their own timeouts, retries and cancel.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ParamValidationError,
)
from django.conf import settings
from django.utils.translation import gettext as _

from defectlab.errors import Unavailable


class StorageDown(Unavailable):
    """Answered without asking the storage: it is failing, or busy with this process's calls."""

    code = "storage_unavailable"


@dataclass
class _State:
    failures: int = 0  # in a row
    opened_at: float | None = None  # monotonic; None while closed
    probing: bool = False
    in_flight: int = 0
    reason: str = ""


_states: dict[int, _State] = {}
_lock = threading.Lock()


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` says the store could not be reached or did not answer in time (rather
    than answering "no")."""
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return int(status or 0) >= 500
    if isinstance(error, NoCredentialsError | ParamValidationError):
        return False
    return isinstance(error, BotoCoreError)


@contextmanager
def guarded(
    connection_id: int, name: str, describe: Callable[[BaseException], str]
) -> Iterator[None]:
    """Run the block's calls to storage ``connection_id`` (named ``name`` in messages) under the
    bulkhead and the breaker; ``describe`` turns a failure into the reason shown while the
    breaker is open. Raises `StorageDown` instead of running the block."""
    now = time.monotonic()
    with _lock:
        state = _states.setdefault(connection_id, _State())
        probe = False
        if state.opened_at is not None:
            wait = settings.S3_BREAKER_SECONDS - (now - state.opened_at)
            if wait > 0 or state.probing:
                raise _down(name, state, max(1, round(wait)))
            probe = state.probing = True
        if state.in_flight >= settings.S3_CALLS_PER_STORAGE:
            if probe:
                state.probing = False
            raise StorageDown(
                _("The storage %(name)s is busy with other requests. Try again in a moment.")
                % {"name": name},
                code="storage_busy",
            )
        state.in_flight += 1
    failure: BaseException | None = None
    try:
        yield
    except BaseException as error:
        if is_outage(error):
            failure = error
        raise
    finally:
        reason = describe(failure) if failure is not None else ""
        with _lock:
            state.in_flight -= 1
            if probe:
                state.probing = False
            if failure is None:
                state.failures, state.opened_at, state.reason = 0, None, ""
            else:
                state.failures += 1
                state.reason = reason
                if probe or state.failures >= settings.S3_BREAKER_FAILURES:
                    state.opened_at = time.monotonic()


def _down(name: str, state: _State, seconds: int) -> StorageDown:
    message = _(
        "The storage %(name)s is not answering, so DefectLab stopped asking it for a while "
        "(it tries again in %(seconds)s seconds)."
    ) % {"name": name, "seconds": seconds}
    if state.reason:
        message = f"{message} {state.reason}"
    return StorageDown(message)


def forget(connection_id: int | None = None) -> None:
    """Forget what was learnt about one storage (its settings changed), or about all (tests)."""
    with _lock:
        if connection_id is None:
            _states.clear()
        else:
            _states.pop(connection_id, None)
