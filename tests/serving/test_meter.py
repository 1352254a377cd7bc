"""The meter writes what the service answered: a row the database refuses for itself (its
organization deleted meanwhile) is dropped and logged, never holding back the rows after it;
rows wait while the database cannot be reached."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from defectlab.serving.meter import Meter, Record
from defectlab.serving.models import Call
from tests.conftest import Tenant

pytestmark = pytest.mark.django_db(transaction=True)


def record(organization: int, **changes: Any) -> Record:
    fields: dict[str, Any] = {
        "organization_id": organization,
        "key_id": None,
        "version_id": None,
        "model_name": "panels",
        "version_number": None,
        "endpoint": "detect",
        "images": 1,
        "detections": 0,
        "latency_ms": 1.0,
        "client_ip": None,
        "status": 200,
        "code": "ok",
        "created_at": timezone.now(),
    }
    return Record(**{**fields, **changes})


def test_a_row_the_database_refuses_is_dropped_and_the_others_written(
    tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    meter = Meter()
    meter.add(record(tenant.organization.pk, images=1))
    meter.add(record(999_999, images=2))  # no such organization any more
    meter.add(record(tenant.organization.pk, images=3))
    assert meter.flush() == 2
    assert sorted(Call.objects.values_list("images", flat=True)) == [1, 3]
    assert meter.flush() == 0  # nothing left waiting
    assert "refuses" in caplog.text


def test_rows_wait_while_the_database_cannot_be_reached(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    meter = Meter()
    meter.add(record(tenant.organization.pk))

    def down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the database is down")

    monkeypatch.setattr(Call.objects, "bulk_create", down)
    with pytest.raises(ConnectionError):
        meter.flush()
    monkeypatch.undo()
    assert meter.flush() == 1
    assert Call.objects.count() == 1
