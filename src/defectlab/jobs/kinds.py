"""The kinds of job: one `JobKind` record per kind, registered by the app that owns it (in its
``jobs.py``). The runner finds a kind's handler here, and the API, pages and CLI read its title
and what it offers (a file to download, per-item results) from here, never from its name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.utils.functional import Promise

from defectlab.jobs.models import Job

if TYPE_CHECKING:
    from defectlab.jobs.runner import Progress

# ``fn(job, progress) -> result dict``; see defectlab.jobs.runner for what a handler must do.
Handler = Callable[[Job, "Progress"], dict[str, Any] | None]


@dataclass(frozen=True)
class JobKind:
    name: str  # stored in Job.kind
    title: str | Promise  # what people see, translatable (gettext_lazy)
    handler: Handler
    download: bool = False  # a succeeded job leaves a file (``result["key"]``) to download
    items: bool = False  # the job keeps per-item results (UrlImportItem rows)
    # Seconds to wait before attempt ``n + 1`` after attempt ``n`` failed in a way worth
    # retrying; None: Dramatiq's exponential backoff (from one second up to five minutes).
    retry_delay: Callable[[int], float] | None = None
    # Why a job of this kind that ended cannot be run again (translated: the API's 409 and
    # the pages say it), or None when it can: what it ran on was deleted since, say.
    retry_refusal: Callable[[Job], str | None] | None = None


KINDS: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    """Register ``kind`` (called by an app's ``jobs.py`` on start-up)."""
    KINDS[kind.name] = kind
    return kind


def handler(name: str) -> Handler | None:
    """What runs jobs of kind ``name`` (None for a kind no app registered)."""
    kind = KINDS.get(name)
    return kind.handler if kind else None


def retry_delay_ms(name: str, attempts: int) -> int | None:
    """The pause, in milliseconds, before jobs of kind ``name`` are tried again after
    ``attempts`` attempts (None: the broker's own backoff)."""
    kind = KINDS.get(name)
    if kind is None or kind.retry_delay is None:
        return None
    return max(int(kind.retry_delay(attempts) * 1000), 0)


def retry_refusal(job: Job) -> str | None:
    """Why ``job``'s kind will not run it again (translated), or None when it would."""
    kind = KINDS.get(job.kind)
    if kind is None or kind.retry_refusal is None:
        return None
    return kind.retry_refusal(job)


def title(name: str) -> str:
    """The title of jobs of kind ``name`` in the active language (the name for an unknown kind)."""
    kind = KINDS.get(name)
    return str(kind.title) if kind else name


def has_download(name: str) -> bool:
    kind = KINDS.get(name)
    return kind is not None and kind.download


def has_items(name: str) -> bool:
    kind = KINDS.get(name)
    return kind is not None and kind.items
