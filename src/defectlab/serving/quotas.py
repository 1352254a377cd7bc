"""An organization's limits on the detection service: read (its `Quota` row, or the
installation's defaults (DEFECTLAB_QUOTA_REQUESTS_PER_MINUTE and the others)) and changed by the platform operator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from defectlab.errors import Forbidden, Invalid
from defectlab.serving.models import Quota
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import Organization, User
from defectlab.tenancy.services import record

FIELDS = ("requests_per_minute", "images_per_day", "concurrent_requests", "max_image_mb", "weight")
MAX_WEIGHT = 100


@dataclass(frozen=True, slots=True)
class Limits:
    """One organization's limits; None means no limit."""

    requests_per_minute: int | None
    images_per_day: int | None
    concurrent_requests: int | None
    max_image_mb: int | None
    weight: int = 1
    custom: bool = False  # set by the operator, not the installation's defaults

    @property
    def max_image_bytes(self) -> int:
        upload = settings.MAX_UPLOAD_MB * 1024 * 1024
        if self.max_image_mb is None:
            return upload
        return min(upload, self.max_image_mb * 1024 * 1024)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in (*FIELDS, "custom")}


def defaults() -> Limits:
    def limit(value: int) -> int | None:
        return value or None

    return Limits(
        requests_per_minute=limit(settings.QUOTA_REQUESTS_PER_MINUTE),
        images_per_day=limit(settings.QUOTA_IMAGES_PER_DAY),
        concurrent_requests=limit(settings.QUOTA_CONCURRENT),
        max_image_mb=limit(settings.QUOTA_MAX_IMAGE_MB),
    )


def _limits(row: Quota) -> Limits:
    return Limits(**{name: getattr(row, name) for name in FIELDS}, custom=True)


def limits_of(organization_id: int) -> Limits:
    row = Quota.objects.filter(organization_id=organization_id).first()
    return defaults() if row is None else _limits(row)


def all_limits(organization_ids: list[int]) -> dict[int, Limits]:
    """Limits of each of ``organization_ids`` in one query."""
    rows = {
        row.organization_id: row
        for row in Quota.objects.filter(organization_id__in=organization_ids)
    }
    fallback = defaults()
    return {pk: _limits(rows[pk]) if pk in rows else fallback for pk in organization_ids}


def clean_values(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` as stored, or Invalid naming the first field that cannot be."""
    cleaned: dict[str, Any] = {}
    for name, value in values.items():
        if name not in FIELDS:
            raise Invalid(_("Unknown quota field: %(name)s.") % {"name": name}, code="invalid")
        if value in (None, "") and name != "weight":
            cleaned[name] = None
            continue
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = -1
        if isinstance(value, bool) or number < 1 or (name == "weight" and number > MAX_WEIGHT):
            raise Invalid(
                _("%(name)s must be a whole number from 1 to %(top)s, or empty for no limit.")
                % {"name": name, "top": MAX_WEIGHT if name == "weight" else "2147483647"},
                code="invalid_quota",
                details={"field": name},
            )
        cleaned[name] = min(number, 2147483647)
    return cleaned


def require_operator(actor: User | None) -> None:
    """Forbidden unless ``actor`` is the platform operator: a staff account, or nobody (the
    `defectlab` command and the jobs act for the operator)."""
    if actor is not None and not actor.is_staff:
        raise Forbidden(_("Only the platform operator may change quotas."))


def set_quota(organization: Organization, actor: User | None, **values: Any) -> Limits:
    """Change ``organization``'s limits (the fields given; the others keep their value, or the
    defaults' when it had none). Only the platform operator (a staff account) may."""
    require_operator(actor)
    changes = clean_values(values)
    with transaction.atomic():
        row = Quota.objects.select_for_update().filter(organization=organization).first()
        if row is None:
            start = defaults()
            row = Quota(organization=organization, **{n: getattr(start, n) for n in FIELDS})
        before = _limits(row).as_dict() if row.pk else defaults().as_dict()
        for name, value in changes.items():
            setattr(row, name, value)
        row.updated_by = actor
        row.save()
        after = _limits(row)
        record(
            None,
            AuditAction.QUOTA_UPDATED,
            organization=organization,
            target=row,
            actor=actor,
            data={"before": before, "after": after.as_dict()},
        )
    return after
