"""The allowlist's rows: reading them into the fetcher's value object, adding entries."""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from defectlab.errors import Conflict
from defectlab.ingest.allowlist import Allowlist, organization_entry
from defectlab.ingest.fetcher import fetch
from defectlab.ingest.models import AllowedNetwork
from defectlab.tenancy.models import Organization, User


def allowlist_for(organization: Organization | int) -> Allowlist:
    """What ``organization``'s fetches may reach beyond the public internet: its own entries
    (private ranges) and what the operator opened for everyone (``DEFECTLAB_FETCH_ALLOWLIST``)."""
    organization_id = organization.pk if isinstance(organization, Organization) else organization
    values = AllowedNetwork.objects.filter(organization_id=organization_id).values_list(
        "value", flat=True
    )
    return Allowlist.from_entries(values, opened=settings.FETCH_ALLOWLIST)


def fetch_referenced(organization_id: int, url: str) -> bytes:
    """An image ``organization_id`` keeps by reference, fetched through the guarded fetcher under
    its allowlist (the upload size limit applies). Refusals and failures raise the fetcher's
    errors, which name the rule."""
    return fetch(url, allowlist=allowlist_for(organization_id)).body


def add_allowed_network(
    organization: Organization, actor: User | None, value: str, note: str = ""
) -> AllowedNetwork:
    """A new entry, in canonical form; Invalid for what cannot be allowed (or what only the
    operator may open), Conflict for a twin.

    The caller checks the actor's role."""
    canonical = organization_entry(value)
    try:
        with transaction.atomic():
            return AllowedNetwork.objects.create(
                organization=organization, value=canonical, note=note.strip(), created_by=actor
            )
    except IntegrityError:
        raise Conflict(
            _("%(value)s is already in this organization's allowlist.") % {"value": canonical},
            details={"value": canonical},
        ) from None
