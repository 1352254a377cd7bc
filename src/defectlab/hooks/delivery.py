"""Sending one delivery: the signed POST, and the job that makes it (with retries).

What a receiver gets (docs/webhooks.md has a verification example):

    POST <the webhook's URL>
    Content-Type: application/json
    X-DefectLab-Event: task.approved
    X-DefectLab-Delivery: 1b6d…-…            (a UUID, the same on every attempt: deduplicate by it)
    X-DefectLab-Timestamp: 1764900000        (Unix seconds when this attempt was sent)
    X-DefectLab-Signature: sha256=<hex>      (HMAC-SHA256 under the secret of "<timestamp>.<body>")

The body is the delivery's payload as compact UTF-8 JSON with sorted keys, the same bytes on
every attempt. A 2xx answer delivers it; anything else, or no answer, is a failed attempt:
the job tries again after ``DEFECTLAB_WEBHOOK_RETRY_SECONDS`` (doubling each time) unless the
failure is final (the guard refused the address; a 4xx other than 408 and 429; a redirect).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from defectlab.errors import DefectLabError, Invalid
from defectlab.hooks.models import Delivery, DeliveryStatus
from defectlab.ingest.fetcher import FetchFailed, post
from defectlab.ingest.services import allowlist_for
from defectlab.jobs.models import Job
from defectlab.jobs.runner import Progress
from defectlab.media.secrets import decrypt_secret

KIND = "webhook"
SIGNATURE_PREFIX = "sha256="
ANSWER_SHOWN = 300  # characters of a failing receiver's answer kept in the log


def body_of(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed) for ``payload``."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 under ``secret`` of ``"<timestamp>.<body>"``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def headers_for(delivery: Delivery, secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "X-DefectLab-Event": delivery.event,
        "X-DefectLab-Delivery": str(delivery.uuid),
        "X-DefectLab-Timestamp": str(timestamp),
        "X-DefectLab-Signature": sign(secret, timestamp, body),
    }


def run_delivery(job: Job, progress: Progress) -> dict[str, Any]:
    """The job's handler: one attempt at sending its delivery. Idempotent: a delivery that
    succeeded is never sent again (a duplicate message, or a job run again, does nothing)."""
    delivery = (
        Delivery.objects.select_related("webhook").filter(pk=job.params.get("delivery")).first()
    )
    if delivery is None:  # its webhook was deleted since
        return {}
    if delivery.status == DeliveryStatus.SUCCEEDED:
        return {"delivery": str(delivery.uuid), "status_code": delivery.status_code}
    hook = delivery.webhook
    Delivery.objects.filter(pk=delivery.pk).update(
        attempts=F("attempts") + 1, last_attempt_at=timezone.now(), status=DeliveryStatus.PENDING
    )
    if not hook.active:
        refusal = Invalid(_("The webhook is turned off."))
        _note(delivery, error=refusal.message)
        raise refusal
    body = body_of(delivery.payload)
    timestamp = int(time.time())
    started = time.monotonic()
    try:
        answer = post(
            hook.url,
            body,
            allowlist=allowlist_for(hook.organization_id),
            headers=headers_for(delivery, decrypt_secret(hook.secret), timestamp, body),
        )
    except DefectLabError as failure:  # refused by the guard, or no answer
        _note(delivery, error=failure.message, started=started)
        raise
    if 200 <= answer.status < 300:
        # Marked once: only a delivery still pending turns into a delivered one.
        Delivery.objects.filter(pk=delivery.pk).exclude(status=DeliveryStatus.SUCCEEDED).update(
            status=DeliveryStatus.SUCCEEDED,
            status_code=answer.status,
            error="",
            duration_ms=_since(started),
            delivered_at=timezone.now(),
        )
        return {"delivery": str(delivery.uuid), "status_code": answer.status}
    said = answer.body.decode("utf-8", "replace").strip()[:ANSWER_SHOWN]
    message = _("The receiver answered HTTP %(status)s.") % {"status": answer.status}
    _note(
        delivery,
        error=f"{message} {said}".strip(),
        status_code=answer.status,
        started=started,
    )
    # Retried when it may pass (5xx, 408, 429); final for other answers (FetchFailed decides).
    raise FetchFailed("http_status", hook.url, answer.address, status=answer.status)


def _note(
    delivery: Delivery,
    *,
    error: str,
    status_code: int | None = None,
    started: float | None = None,
) -> None:
    """A failed attempt, in the log (the delivery stays pending while the job may retry it;
    the job's end marks it failed: ``events.on_job_finished``)."""
    Delivery.objects.filter(pk=delivery.pk).exclude(status=DeliveryStatus.SUCCEEDED).update(
        status_code=status_code,
        error=error,
        duration_ms=_since(started) if started is not None else None,
    )


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
