"""Call rows as the detection service writes them, for the usage tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from defectlab.serving.models import Call, OrganizationKey
from defectlab.tenancy.models import Organization


def call(
    organization: Organization,
    key: OrganizationKey | None,
    when: datetime,
    *,
    model: str = "panels",
    version: int | None = 1,
    images: int = 1,
    detections: int = 0,
    status: int = 200,
) -> Call:
    return Call.objects.create(
        organization=organization,
        key=key,
        model_name=model,
        version_number=version,
        endpoint="detect",
        images=images,
        detections=detections,
        latency_ms=12.5,
        status=status,
        code="ok" if status < 400 else "refused",
        created_at=when,
    )


def at(day: str, hour: int = 12, minute: int = 0) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=UTC)


def expected_billing(calls: list[Call], organization_id: int) -> dict[tuple[Any, ...], list[int]]:
    """What the billing CSV must say, summed here in Python from the rows themselves."""
    rows: dict[tuple[Any, ...], list[int]] = {}
    for row in calls:
        if row.organization_id != organization_id:
            continue
        day = row.created_at.astimezone(UTC).date().isoformat()
        key_id = f"dlk_{row.key.key_id}" if row.key else ""
        name = row.key.name if row.key else ""
        version = "" if row.version_number is None else str(row.version_number)
        group = (day, str(organization_id), key_id, name, row.model_name, version)
        counts = rows.setdefault(group, [0, 0, 0, 0])
        counts[0] += 1
        counts[1] += row.images
        counts[2] += row.detections
        counts[3] += row.status >= 400
    return rows
