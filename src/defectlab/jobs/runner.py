"""Running a job: progress reporting, and the actor body that moves a Job row through its states
(the handler comes from the registry, `defectlab.jobs.kinds`).

A handler is ``fn(job, progress) -> result dict``. It must be idempotent: after a crash the same
job is delivered again and runs from the start, so a handler skips what it already finished (by
looking at its own records) and writes its outputs so that a second run replaces, never adds.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from defectlab.errors import DefectLabError
from defectlab.jobs import kinds
from defectlab.jobs.models import FINISHED, Job, JobState
from defectlab.jobs.signals import job_attempted, job_finished, job_started

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """Raised inside a handler (by Progress) when someone asked the job to stop."""


class Progress:
    """What a handler reports as it goes. Writes reach the database at most every
    ``interval`` seconds (and on flush), and each write also notices a cancel request."""

    def __init__(self, job: Job, interval: float = 0.5) -> None:
        self.job = job
        self.interval = interval
        self.done = job.done
        self.failed = job.failed
        self.total_steps = job.total
        self._written = time.monotonic()

    def total(self, steps: int) -> None:
        self.total_steps = steps
        self.flush()

    def step(self, count: int = 1, *, failed: int = 0) -> None:
        self.done += count
        self.failed += failed
        if time.monotonic() - self._written >= self.interval:
            self.flush()

    def at(self, done: int, *, failed: int = 0) -> None:
        """Set absolute numbers (a resumed handler counts what earlier runs finished)."""
        self.done, self.failed = done, failed
        self.flush()

    def flush(self) -> None:
        self._written = time.monotonic()
        Job.objects.filter(pk=self.job.pk).update(
            done=self.done, failed=self.failed, total=self.total_steps, updated_at=timezone.now()
        )
        if Job.objects.filter(pk=self.job.pk, cancel_requested=True).exists():
            raise Cancelled


def run_job(job_id: int) -> None:
    """The actor body: run job ``job_id`` once more, unless it already finished."""
    job = Job.objects.select_related("started_by").filter(pk=job_id).first()
    if job is None or job.finished:
        return  # deleted, or a duplicate delivery of finished work: nothing to do twice
    if job.cancel_requested:
        _finish(job, JobState.CANCELLED)
        job_attempted.send_robust(sender=Job, kind=job.kind, outcome="cancelled", seconds=None)
        return
    # Errors are written for the person who started the job, in their language.
    language = (job.started_by.language if job.started_by else "") or settings.LANGUAGE_CODE
    handle = kinds.handler(job.kind)
    if handle is None:
        _finish(job, JobState.FAILED, error=f"No handler for jobs of kind {job.kind!r}.")
        job_attempted.send_robust(sender=Job, kind=job.kind, outcome="failed", seconds=None)
        return
    if not _take(job):
        job.refresh_from_db()
        if not job.finished:
            # A delivery past the limit means the last attempt never came back: its worker was
            # killed, ran out of memory or lost power while running it (an error it survives is
            # recorded, and the job is requeued or failed with that error).
            log.error(
                "job %s (%s) stopped after %s attempts: the worker stopped while running it",
                job.pk, job.kind, job.attempts,
                extra={"job": job.pk, "attempts": job.attempts},
            )  # fmt: skip
            with translation.override(language):
                _finish(job, JobState.FAILED, error=_worker_stopped(job.attempts))
            job_attempted.send_robust(sender=Job, kind=job.kind, outcome="failed", seconds=None)
        return  # the message is acked: no delivery beyond DEFECTLAB_JOB_MAX_ATTEMPTS
    job.refresh_from_db()
    job_started.send_robust(sender=Job, kind=job.kind)
    began, outcome = time.monotonic(), "retried"  # what an error escaping here leads to
    try:
        outcome = _attempt(job, handle, language)
    finally:
        seconds = time.monotonic() - began
        job_attempted.send_robust(sender=Job, kind=job.kind, outcome=outcome, seconds=seconds)


def _attempt(job: Job, handle: kinds.Handler, language: str) -> str:
    """Run the handler once and record how it ended: the outcome ("succeeded", "failed" or
    "cancelled"), or RetryLater raised for Dramatiq to deliver the job again."""
    progress = Progress(job)
    with translation.override(language):
        try:
            result = handle(job, progress)
        except Cancelled:
            _finish(job, JobState.CANCELLED, progress=progress)
            return "cancelled"
        except DefectLabError as refusal:
            # Bad input or a refusal fails at once (trying again would give the same answer);
            # a retryable one (a remote end failing) is tried again like any passing failure.
            if refusal.retryable and job.attempts < settings.JOB_MAX_ATTEMPTS:
                _requeue(job, refusal.message)
                raise _later(job, refusal.message) from refusal
            _finish(job, JobState.FAILED, error=refusal.message, progress=progress)
            return "failed"
        except Exception as error:
            log.exception("job %s (%s) failed on attempt %s", job.pk, job.kind, job.attempts)
            message = _plain(error)
            if job.attempts < settings.JOB_MAX_ATTEMPTS:
                _requeue(job, message)
                raise _later(job, message) from error
            _finish(job, JobState.FAILED, error=message, progress=progress)
            return "failed"
    _finish(job, JobState.SUCCEEDED, result=result or {}, progress=progress)
    return "succeeded"


def _requeue(job: Job, error: str) -> None:
    """Back to the queue with the last error shown (Dramatiq sends the message again later)."""
    Job.objects.filter(pk=job.pk).update(
        state=JobState.QUEUED, error=error, updated_at=timezone.now()
    )


def _later(job: Job, message: str) -> Exception:
    from defectlab.jobs.queue import RetryLater

    return RetryLater(message, delay=kinds.retry_delay_ms(job.kind, job.attempts))


def _plain(error: Exception) -> str:
    """A failure as the job's error, for people: never a Python class name (the log above has
    the traceback)."""
    reason = str(error).strip()
    if isinstance(error, OSError):
        if not reason:
            return _("A connection or file error stopped the job.")
        return _("A connection or file error stopped the job: %(reason)s") % {"reason": reason}
    if not reason:
        return _("The job stopped on an unexpected error; the worker's log has the details.")
    return _(
        "The job stopped on an unexpected error (%(reason)s); the worker's log has the details."
    ) % {"reason": reason}


def _take(job: Job) -> bool:
    """Count this delivery and mark the job running, in one statement and before any work, so
    that a worker killed mid-job (which leaves no other trace) still used up an attempt. False
    when the job finished meanwhile or has had all its DEFECTLAB_JOB_MAX_ATTEMPTS."""
    taken = (
        Job.objects.filter(pk=job.pk, attempts__lt=settings.JOB_MAX_ATTEMPTS)
        .exclude(state__in=FINISHED)
        .update(
            state=JobState.RUNNING,
            attempts=F("attempts") + 1,
            started_at=Coalesce(F("started_at"), timezone.now()),
            updated_at=timezone.now(),
        )
    )
    return taken == 1


def _worker_stopped(attempts: int) -> str:
    return ngettext(
        "Stopped after %(count)d attempt: the worker stopped while running it.",
        "Stopped after %(count)d attempts: the worker stopped while running it.",
        attempts,
    ) % {"count": attempts}


def _finish(
    job: Job,
    state: JobState,
    *,
    error: str = "",
    result: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> None:
    fields: dict[str, Any] = {
        "state": state,
        "error": error,
        "finished_at": timezone.now(),
        "updated_at": timezone.now(),
    }
    if result is not None:
        fields["result"] = result
    if progress is not None:
        fields |= {"done": progress.done, "failed": progress.failed, "total": progress.total_steps}
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(**fields)
        # In the same transaction: what listeners write (webhook deliveries) commits with it.
        job_finished.send(
            sender=Job,
            job_id=job.pk,
            kind=job.kind,
            state=str(state),
            organization_id=job.organization_id,
            project_id=job.project_id,
        )
