"""Webhooks: making, changing and removing them (each in the audit trail), sending a delivery
again, and a test ping. Only roles that manage the organization may do any of it: a webhook
sends the organization's data out, and its secret signs what is sent."""

from __future__ import annotations

import secrets
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from defectlab.errors import Conflict, DefectLabError, Invalid
from defectlab.hooks.events import enqueue, ping_payload
from defectlab.hooks.models import SUBSCRIBABLE, Delivery, Event, Webhook
from defectlab.ingest.policy import parse_url
from defectlab.labeling.models import Project
from defectlab.media.secrets import encrypt_secret
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import Organization, User
from defectlab.tenancy.roles import Can
from defectlab.tenancy.services import record, require

MIN_SECRET = 16


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def clean_url(url: str) -> str:
    """An http(s) address the guard can read (whether it may be reached is decided when sending,
    under the allowlists then in force)."""
    url = (url or "").strip()
    if not url:
        raise Invalid(_("Enter the address that receives the events."))
    try:
        parse_url(url)
    except DefectLabError as problem:
        raise Invalid(problem.message) from None
    return url


def clean_events(events: Any) -> list[str]:
    if isinstance(events, str):
        events = [events]
    chosen = [str(event) for event in events or []]
    unknown = [event for event in chosen if event not in SUBSCRIBABLE]
    if unknown:
        raise Invalid(
            _("Unknown event: %(event)s. Choose from %(events)s.")
            % {"event": unknown[0], "events": ", ".join(SUBSCRIBABLE)}
        )
    if not chosen:
        raise Invalid(_("Choose at least one event."))
    return [event for event in SUBSCRIBABLE if event in chosen]  # in a fixed order, once each


def clean_secret(secret: str) -> str:
    secret = (secret or "").strip()
    if secret and len(secret) < MIN_SECRET:
        raise Invalid(
            _("A secret needs at least %(count)s characters; leave it empty to have one made.")
            % {"count": MIN_SECRET}
        )
    return secret or new_secret()


def _project(organization: Organization, project: Project | int | str | None) -> Project | None:
    if project is None or project == "":
        return None
    project_id = project.pk if isinstance(project, Project) else project
    try:
        found = Project.objects.filter(organization=organization, pk=int(project_id)).first()
    except (TypeError, ValueError):
        found = None
    if found is None:
        raise Invalid(_("No such project in this organization."))
    return found


def create_webhook(
    organization: Organization,
    user: User,
    *,
    url: str,
    events: Any,
    project: Project | int | str | None = None,
    note: str = "",
    secret: str = "",
    active: bool = True,
) -> tuple[Webhook, str]:
    """The new webhook and its secret in clear (shown once; stored encrypted)."""
    require(user, organization.pk, Can.MANAGE_ORGANIZATION)
    clear = clean_secret(secret)
    with transaction.atomic():
        hook = Webhook.objects.create(
            organization=organization,
            project=_project(organization, project),
            url=clean_url(url),
            events=clean_events(events),
            secret=encrypt_secret(clear),
            active=active,
            note=(note or "").strip()[:200],
            created_by=user,
        )
        record(
            None,
            AuditAction.WEBHOOK_CREATED,
            organization=organization,
            target=hook,
            actor=user,
            data=_described(hook),
        )
    return hook, clear


def update_webhook(hook: Webhook, user: User, **changes: Any) -> Webhook:
    """Change ``url``, ``events``, ``project``, ``note`` or ``active`` (what is given)."""
    require(user, hook.organization_id, Can.MANAGE_ORGANIZATION)
    with transaction.atomic():
        hook = Webhook.objects.select_for_update().get(pk=hook.pk)
        if "url" in changes:
            hook.url = clean_url(changes["url"])
        if "events" in changes:
            hook.events = clean_events(changes["events"])
        if "project" in changes:
            hook.project = _project(hook.organization, changes["project"])
        if "note" in changes:
            hook.note = (changes["note"] or "").strip()[:200]
        if "active" in changes:
            hook.active = bool(changes["active"])
        hook.save()
        record(
            None,
            AuditAction.WEBHOOK_UPDATED,
            organization=hook.organization_id,
            target=hook,
            actor=user,
            data=_described(hook),
        )
    return hook


def rotate_secret(hook: Webhook, user: User) -> str:
    """A new secret for ``hook`` (in clear, shown once); the old one stops signing at once."""
    require(user, hook.organization_id, Can.MANAGE_ORGANIZATION)
    clear = new_secret()
    with transaction.atomic():
        Webhook.objects.filter(pk=hook.pk).update(secret=encrypt_secret(clear))
        record(
            None,
            AuditAction.WEBHOOK_SECRET_ROTATED,
            organization=hook.organization_id,
            target=hook,
            actor=user,
        )
    return clear


def delete_webhook(hook: Webhook, user: User) -> None:
    """Remove ``hook`` with its delivery log (deliveries not yet sent are dropped)."""
    require(user, hook.organization_id, Can.MANAGE_ORGANIZATION)
    with transaction.atomic():
        record(
            None,
            AuditAction.WEBHOOK_DELETED,
            organization=hook.organization_id,
            target=hook,
            actor=user,
            data=_described(hook),
        )
        hook.delete()


def redeliver(delivery: Delivery, user: User) -> Delivery:
    """Send a delivery's payload again ("send again"): a new delivery, with a new id, so the
    log keeps both; receivers that deduplicate see it as new, as the person asked."""
    require(user, delivery.organization_id, Can.MANAGE_ORGANIZATION)
    hook = Webhook.objects.select_related("organization").get(pk=delivery.webhook_id)
    if not hook.active:
        raise Conflict(_("The webhook is turned off; turn it on to send again."))
    with transaction.atomic():
        again = enqueue(hook, delivery.event, delivery.payload, redelivery_of=delivery)
        record(
            None,
            AuditAction.WEBHOOK_REDELIVERED,
            organization=hook.organization_id,
            target=hook,
            actor=user,
            data={"delivery": str(delivery.uuid), "again": str(again.uuid)},
        )
    return again


def ping(hook: Webhook, user: User) -> Delivery:
    """A test delivery (event ``ping``) to see that the receiver gets and verifies it."""
    require(user, hook.organization_id, Can.MANAGE_ORGANIZATION)
    if not hook.active:
        raise Conflict(_("The webhook is turned off; turn it on to send a test."))
    hook = Webhook.objects.select_related("organization").get(pk=hook.pk)
    return enqueue(hook, Event.PING, ping_payload(hook.organization))


def _described(hook: Webhook) -> dict[str, Any]:
    return {
        "url": hook.url,
        "events": hook.events,
        "project": hook.project_id,
        "active": hook.active,
    }
