"""The allowlist's rows: reading them into the fetcher's value object, adding and removing
entries (each change in the audit trail)."""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from defectlab.errors import Conflict
from defectlab.ingest.allowlist import Allowlist, organization_entry
from defectlab.ingest.fetcher import FetchFailed, fetch, stream
from defectlab.ingest.models import AllowedNetwork
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import Organization, User
from defectlab.tenancy.services import record

# Enough for the header of every image format we know, EXIF included (JPEG caps a segment at
# 64 KiB); a header longer than this makes us read the whole image.
HEAD_BYTES = 64 * 1024


def allowlist_for(organization: Organization | int) -> Allowlist:
    """What ``organization``'s fetches may reach beyond the public internet: its own entries
    (private ranges) and what the operator opened for everyone (``DEFECTLAB_FETCH_ALLOWLIST``)."""
    organization_id = organization.pk if isinstance(organization, Organization) else organization
    values = AllowedNetwork.objects.filter(organization_id=organization_id).values_list(
        "value", flat=True
    )
    return Allowlist.from_entries(values, opened=settings.FETCH_ALLOWLIST)


def fetch_referenced(organization_id: int, url: str, *, timeout: float | None = None) -> bytes:
    """An image ``organization_id`` keeps by reference, fetched through the guarded fetcher under
    its allowlist (the upload size limit applies). Refusals and failures raise the fetcher's
    errors, which name the rule. ``timeout`` defaults to ``DEFECTLAB_FETCH_TIMEOUT``."""
    return fetch(url, allowlist=allowlist_for(organization_id), timeout=timeout).body


def fetch_referenced_head(
    organization_id: int, url: str, size: int = HEAD_BYTES, *, timeout: float | None = None
) -> bytes:
    """The first ``size`` bytes of an image kept by reference: asked for with an HTTP Range
    request, and read no further when a server ignores it and sends the whole image."""
    head = bytearray()
    allowlist = allowlist_for(organization_id)
    with stream(url, allowlist=allowlist, first_bytes=size, timeout=timeout) as response:
        for chunk in response:
            head += chunk
            if len(head) >= size:
                break
    return bytes(head[:size])


def may_pass(error: BaseException) -> bool:
    """True for a fetch failure that may pass if tried again: DNS, the connection, TLS, time,
    or a server error (5xx, 408, 429). A refusal by the policy, or a 404, will not."""
    return isinstance(error, FetchFailed) and error.retryable


def add_allowed_network(
    organization: Organization, actor: User | None, value: str, note: str = ""
) -> AllowedNetwork:
    """A new entry, in canonical form, in the audit trail as ``actor``'s; Invalid for what cannot
    be allowed (or what only the operator may open), Conflict for a twin.

    The caller checks the actor's role."""
    canonical = organization_entry(value)
    try:
        with transaction.atomic():
            entry = AllowedNetwork.objects.create(
                organization=organization, value=canonical, note=note.strip(), created_by=actor
            )
    except IntegrityError:
        raise Conflict(
            _("%(value)s is already in this organization's allowlist.") % {"value": canonical},
            details={"value": canonical},
        ) from None
    record(
        None,
        AuditAction.ALLOWLIST_ADDED,
        organization=organization,
        target=entry,
        actor=actor,
        data={"value": entry.value, "note": entry.note},
    )
    return entry


def remove_allowed_network(entry: AllowedNetwork, actor: User | None) -> None:
    """Remove an entry (the audit trail says who did). The caller checks the actor's role."""
    record(
        None,
        AuditAction.ALLOWLIST_REMOVED,
        organization=entry.organization_id,
        target=entry,
        actor=actor,
        data={"value": entry.value},
    )
    entry.delete()
