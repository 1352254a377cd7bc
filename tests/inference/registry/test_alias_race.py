"""Alias moves take turns: many moves at once, from threads with their own connections, leave
one alias and an audit trail whose moves chain (each one's "from" is the one before's "to")."""

from __future__ import annotations

import itertools
import threading

import pytest
from django.db import connections

from defectlab.inference import registry
from defectlab.inference.models import DetectionModel, ModelAlias, ModelVersion, VersionState
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import AuditEvent, Role
from tests.conftest import Tenant

pytestmark = pytest.mark.django_db(transaction=True)


def ready_versions(model: DetectionModel, count: int) -> None:
    for number in range(1, count + 1):
        ModelVersion.objects.create(
            organization=model.organization,
            model=model,
            number=number,
            state=VersionState.READY,
            file_key=f"org/{model.organization_id}/models/{model.pk}/v{number}.onnx",
            sha256=f"{number:064x}",
            size=1,
            ir_version=8,
            opset=17,
            input_height=640,
            input_width=640,
            layout="yolov8",
            conf=0.25,
            iou=0.7,
            max_det=300,
        )


def test_concurrent_moves_of_one_alias_chain_in_the_audit_trail(tenant: Tenant) -> None:
    manager = tenant.user(Role.MANAGER)
    model = registry.create_model(tenant.organization, manager, name="Scratches")
    ready_versions(model, 4)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def move(number: int) -> None:
        try:
            start.wait()
            registry.move_alias(model, manager, "production", number)
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=move, args=(1 + k % 4,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert ModelAlias.objects.count() == 1
    moves = list(AuditEvent.objects.filter(action=AuditAction.MODEL_ALIAS_MOVED).order_by("id"))
    assert len(moves) == 8
    assert moves[0].data["from"] is None
    for before, after in itertools.pairwise(moves):
        assert after.data["from"] == before.data["to"]
    assert ModelAlias.objects.get().version.number == moves[-1].data["to"]
