"""Events: what labeling and the job runner tell us becomes deliveries for the webhooks that
subscribed, written in the sender's transaction and sent by a job once it commits.

An event costs one indexed query when nobody listens (this organization's active webhooks).

Every payload has ``event``, ``sent_for`` (ISO time of the event), ``organization`` and
``project`` (``{"id", "name"}``, the project null for a ping) and ``link`` (the page to look at);
task events add ``task`` and ``user``, job events add ``job`` (docs/webhooks.md lists them)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from defectlab.hooks.delivery import KIND
from defectlab.hooks.models import Delivery, DeliveryStatus, Event, Webhook
from defectlab.jobs.models import Job, JobState
from defectlab.jobs.services import start_job
from defectlab.labeling.models import Project, Task
from defectlab.tenancy.models import Organization, User
from defectlab.transfer import datasetimport, exports, sync, taskimport, urlimport

log = logging.getLogger(__name__)

# Job kinds whose end is an event, and which.
JOB_EVENTS = {
    exports.KIND: Event.EXPORT_FINISHED,
    urlimport.KIND: Event.IMPORT_FINISHED,
    datasetimport.KIND: Event.IMPORT_FINISHED,
    taskimport.KIND: Event.IMPORT_FINISHED,  # a bulk import too big to answer at once
    sync.SYNC_KIND: Event.IMPORT_FINISHED,  # a storage's new objects become tasks
}


def listening(organization_id: int, project_id: int | None, event: str) -> list[Webhook]:
    """The active webhooks of the organization that take ``event`` from ``project_id``."""
    hooks = Webhook.objects.filter(organization_id=organization_id, active=True).select_related(
        "organization"
    )
    return [
        hook for hook in hooks if event in hook.events and hook.project_id in (None, project_id)
    ]


def emit(
    event: str,
    organization_id: int,
    project_id: int | None,
    details: Callable[[], dict[str, Any]],
) -> list[Delivery]:
    """A delivery for each webhook listening, sent once the current transaction commits.
    ``details()`` (the event's own fields) is only called when someone listens."""
    hooks = listening(organization_id, project_id, event)
    if not hooks:
        return []
    organization = hooks[0].organization
    payload = {
        "event": event,
        "sent_for": timezone.now().isoformat(),
        "organization": {"id": organization.pk, "name": organization.name},
    } | details()
    with transaction.atomic():
        return [enqueue(hook, event, payload) for hook in hooks]


def enqueue(
    hook: Webhook, event: str, payload: dict[str, Any], *, redelivery_of: Delivery | None = None
) -> Delivery:
    """One delivery of ``payload`` to ``hook``, and the job that sends it (after the commit)."""
    with transaction.atomic():
        delivery = Delivery.objects.create(
            organization_id=hook.organization_id,
            webhook=hook,
            event=event,
            payload=payload,
            redelivery_of=redelivery_of,
        )
        delivery.job = start_job(hook.organization, KIND, params={"delivery": delivery.pk})
        delivery.save(update_fields=["job"])
    return delivery


def link(path: str) -> str:
    """An address people can open: the first of DEFECTLAB_PUBLIC_URLS and ``path``."""
    base = settings.PUBLIC_URLS[0].rstrip("/") if settings.PUBLIC_URLS else ""
    return base + path


def project_fields(project: Project | None) -> dict[str, Any]:
    return {"project": {"id": project.pk, "name": project.name} if project else None}


# ---------------------------------------------------------------------------- receivers


def _never_raising(receiver: Callable[..., None]) -> Callable[..., None]:
    """Receivers run inside the sender's transaction (a review, a job's end): a failure here is
    logged and undone alone (a savepoint), and never undoes the change that sent the event."""

    @functools.wraps(receiver)
    def guarded(*args: Any, **kwargs: Any) -> None:
        try:
            with transaction.atomic():
                receiver(*args, **kwargs)
        except Exception:
            log.exception("webhook deliveries for %s were not written", kwargs.get("event"))

    return guarded


@_never_raising
def on_task_event(
    sender: Any, *, event: str, task: Task, user: User, comment: str = "", **kwargs: Any
) -> None:
    """``labeling.signals.task_event``: a task submitted, approved or rejected."""

    def details() -> dict[str, Any]:
        return project_fields(task.project) | {
            "task": {
                "id": task.pk,
                "file_name": task.file_name,
                "status": task.status,
                "comment": comment,
            },
            "user": {"id": user.pk, "name": user.name or user.email},
            "link": link(reverse("review", args=[task.pk])),
        }

    emit(event, task.organization_id, task.project_id, details)


@_never_raising
def on_job_finished(
    sender: Any,
    *,
    job_id: int,
    kind: str,
    state: str,
    organization_id: int,
    project_id: int | None,
    **kwargs: Any,
) -> None:
    """``jobs.signals.job_finished``: an export or an import ended (or a delivery's job did)."""
    if kind == KIND:
        if state != JobState.SUCCEEDED:  # no attempt left, or cancelled
            Delivery.objects.filter(job_id=job_id, status=DeliveryStatus.PENDING).update(
                status=DeliveryStatus.FAILED
            )
        return
    event = JOB_EVENTS.get(kind)
    if event is None:
        return

    def details() -> dict[str, Any]:
        job = Job.objects.select_related("project").get(pk=job_id)
        return project_fields(job.project) | {
            "job": {
                "id": job.pk,
                "kind": job.kind,
                "state": state,
                "done": job.done,
                "failed": job.failed,
                "total": job.total,
                "error": job.error,
                "created_at": job.created_at.isoformat(),
                "finished_at": (job.finished_at or timezone.now()).isoformat(),
            },
            "link": link(reverse("job", args=[job.pk])),
        }

    emit(event, organization_id, project_id, details)


def ping_payload(organization: Organization) -> dict[str, Any]:
    return {
        "event": Event.PING.value,
        "sent_for": timezone.now().isoformat(),
        "organization": {"id": organization.pk, "name": organization.name},
        "project": None,
        "link": link(reverse("webhooks", args=[organization.pk])),
    }
