"""Starting and stopping jobs. Views and other apps' services call these; the work itself
happens in a worker (jobs/runner.py)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from defectlab.errors import Conflict, Invalid
from defectlab.jobs import kinds
from defectlab.jobs.models import FINISHED, Job, JobState
from defectlab.jobs.signals import job_finished
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import Organization, User
from defectlab.tenancy.roles import Can, allows
from defectlab.tenancy.services import record, require, role_in


def start_job(
    organization: Organization,
    kind: str,
    *,
    params: dict[str, Any] | None = None,
    user: User | None = None,
    project: Any = None,
) -> Job:
    """Create the Job row and send its id to the queue once the row is committed (a worker
    must never receive an id it cannot read yet)."""
    if kinds.handler(kind) is None:
        raise Invalid(_("Unknown kind of job: %(kind)s.") % {"kind": kind})
    job = Job.objects.create(
        organization=organization,
        project=project,
        kind=kind,
        params=params or {},
        started_by=user,
    )
    transaction.on_commit(lambda: send(job.pk))
    return job


def send(job_id: int) -> None:
    from defectlab.jobs.queue import run_job_actor

    run_job_actor().send(job_id)


def cancel_job(job: Job, actor: User | None = None) -> Job:
    """Ask a job to stop. A queued job stops at once; a running one at its next progress
    report (what it finished stays finished). ``actor`` is who asked (in the audit trail)."""
    if job.state in FINISHED:
        raise Conflict(_("This job has already finished."))
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(cancel_requested=True, updated_at=timezone.now())
        if Job.objects.filter(pk=job.pk, state=JobState.QUEUED).update(
            state=JobState.CANCELLED, finished_at=timezone.now()
        ):
            job_finished.send(
                sender=Job,
                job_id=job.pk,
                kind=job.kind,
                state=str(JobState.CANCELLED),
                organization_id=job.organization_id,
                project_id=job.project_id,
            )
    job.refresh_from_db()
    record(
        None, AuditAction.JOB_CANCELLED, organization=job.organization_id, target=job, actor=actor
    )
    return job


def retry_job(job: Job, user: User | None) -> Job:
    """Start a failed or cancelled job again with the same parameters. Handlers that keep
    per-item records (URL imports) skip what already succeeded, so this retries only failures.
    The retried job gets its DEFECTLAB_JOB_MAX_ATTEMPTS again: `attempts` counts this run's."""
    if not may_run_again(job):
        raise Conflict(
            _("Only a failed or cancelled job, or one with failed steps, can be retried.")
        )
    refusal = kinds.retry_refusal(job)
    if refusal is not None:
        raise Conflict(refusal, code="not_retryable")
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(
            state=JobState.QUEUED,
            cancel_requested=False,
            attempts=0,
            error="",
            failed=0,
            finished_at=None,
            updated_at=timezone.now(),
        )
        transaction.on_commit(lambda: send(job.pk))
    job.refresh_from_db()
    record(None, AuditAction.JOB_RETRIED, organization=job.organization_id, target=job, actor=user)
    return job


def may_steer(user: Any, job: Job) -> bool:
    """Whoever started a job may stop or retry it; other members need to manage projects."""
    role = role_in(user, job.organization_id)
    return role is not None and (job.started_by_id == user.pk or allows(role, Can.MANAGE_PROJECTS))


def require_steer(user: Any, job: Job) -> None:
    """``may_steer``, or the refusal that says why not (Forbidden; NotFound for a non-member)."""
    if not may_steer(user, job):
        require(user, job.organization_id, Can.MANAGE_PROJECTS)


def may_run_again(job: Job) -> bool:
    """Whether the job ended in a state a retry starts from (failed, cancelled, or succeeded
    with failed steps); its kind may still refuse (``retry_refusal``)."""
    return job.state in (JobState.FAILED, JobState.CANCELLED) or (
        job.state == JobState.SUCCEEDED and job.failed > 0
    )


def retry_refusal(job: Job) -> str | None:
    """Why a job that ``may_run_again`` still cannot, as its kind says (translated; the pages
    show it instead of Retry); None when it can, or when its state rules a retry out anyway."""
    return kinds.retry_refusal(job) if may_run_again(job) else None
