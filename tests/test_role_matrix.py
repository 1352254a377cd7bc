"""Who may do what: every role against every guarded action, through the API.

A cell is either allowed (2xx) or refused with 403: members learn that the thing exists but
their role does not reach it (non-members get 404, see test_tenancy_walk.py). Which task a
member may save, submit or review also depends on the task's state and their part in it: that
table is tests/labeling/test_workflow_rules.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from defectlab.inference.models import DetectionModel, ModelVersion, VersionState
from defectlab.insight.models import Evaluation, EvaluationState
from defectlab.labeling.models import Task, TaskStatus
from defectlab.media.connections import create_connection
from defectlab.serving.keys import create_key
from defectlab.tenancy.models import Membership, Role
from tests.conftest import Tenant, annotate, box, client_for, png_bytes

O, A, M, R, N = Role.OWNER, Role.ADMIN, Role.MANAGER, Role.REVIEWER, Role.ANNOTATOR  # noqa: E741 - one letter a role keeps the matrix readable
EVERYONE = {O, A, M, R, N}
MANAGERS = {O, A, M}
REVIEWERS = {O, A, M, R}
ADMINS = {O, A}


@dataclass(frozen=True)
class Cell:
    name: str
    allowed: set[str]
    request: Callable[[Any, Tenant], Any]


def _annotation(client: Any, t: Tenant) -> Any:
    return client.put(
        f"/api/tasks/{t.tasks[1].pk}/annotation/", {"shapes": [box(t.label)]}, format="json"
    )


def _review(client: Any, t: Tenant) -> Any:
    annotate(t, t.tasks[2])
    return client.post(f"/api/tasks/{t.tasks[2].pk}/review/", {"verdict": "approve"}, format="json")


def _next_review(client: Any, t: Tenant) -> Any:
    annotate(t, t.tasks[2])
    return client.post(f"/api/projects/{t.project.pk}/next-review/")


def _upload(client: Any, t: Tenant) -> Any:
    files = {"files": [SimpleUploadedFile("a.png", png_bytes(), content_type="image/png")]}
    return client.post(f"/api/projects/{t.project.pk}/upload/", files, format="multipart")


def _storage(t: Tenant) -> Any:
    """A source storage on a private address nothing is allowed to reach: no request leaves."""
    return create_connection(
        t.project,
        t.user(O),
        role="source",
        name="camera",
        endpoint_url="http://10.9.9.9:9000",
        bucket="frames",
        access_key="access",
        secret_key="secret",
    )


def _create_storage(client: Any, t: Tenant) -> Any:
    body = {
        "project": t.project.pk,
        "role": "target",
        "name": "results",
        "endpoint_url": "http://10.9.9.9:9000",
        "bucket": "results",
        "access_key": "access",
        "secret_key": "secret",
    }
    return client.post("/api/storages/", body, format="json")


def _sensitivity(client: Any, t: Tenant) -> Any:
    model = DetectionModel.objects.create(organization=t.organization, name="Surface")
    return client.put(f"/api/models/{model.pk}/sensitivity/", {"conf": 0.4}, format="json")


def _ready_model(t: Tenant) -> DetectionModel:
    """A model whose ready version finds "scratch" (its file is never read: the evaluation is
    only queued here)."""
    model = DetectionModel.objects.create(organization=t.organization, name="Surface")
    ModelVersion.objects.create(
        organization=t.organization, model=model, number=1, state=VersionState.READY,
        file_key="none.onnx", sha256="0" * 64, size=1, ir_version=8, opset=17, names=["scratch"],
        input_height=640, input_width=640, layout="yolov8", conf=0.25, iou=0.7, max_det=300,
    )  # fmt: skip
    return model


def _evaluate(client: Any, t: Tenant) -> Any:
    model = _ready_model(t)
    annotate(t, t.tasks[0])
    Task.objects.filter(pk=t.tasks[0].pk).update(status=TaskStatus.APPROVED)
    body = {"model": model.pk, "version": 1}
    return client.post(f"/api/projects/{t.project.pk}/evaluations/", body, format="json")


def _evaluation(t: Tenant) -> Evaluation:
    return Evaluation.objects.create(
        organization=t.organization, project=t.project, model_name="Surface", version_number=1,
        conf=0.25, iou=0.7, state=EvaluationState.DONE,
    )  # fmt: skip


def _role_change(client: Any, t: Tenant) -> Any:
    membership = Membership.objects.get(organization=t.organization, user=t.user(N))
    return client.patch(f"/api/memberships/{membership.pk}/", {"role": "reviewer"}, format="json")


MATRIX = [
    Cell("view the project", EVERYONE, lambda c, t: c.get(f"/api/projects/{t.project.pk}/")),
    Cell("list tasks", EVERYONE, lambda c, t: c.get(f"/api/projects/{t.project.pk}/tasks/")),
    Cell(
        "view the project's statistics",
        EVERYONE,
        lambda c, t: c.get(f"/api/projects/{t.project.pk}/statistics/?format=csv"),
    ),
    Cell(
        "list members",
        EVERYONE,
        lambda c, t: c.get(f"/api/organizations/{t.organization.pk}/members/"),
    ),
    Cell(
        "take the next task",
        EVERYONE,
        lambda c, t: c.post(f"/api/projects/{t.project.pk}/next-task/"),
    ),
    Cell("save an annotation", EVERYONE, _annotation),
    Cell("review a task", REVIEWERS, _review),
    Cell("take the next review", REVIEWERS, _next_review),
    Cell(
        "create a project",
        MANAGERS,
        lambda c, t: c.post(
            "/api/projects/", {"organization": t.organization.pk, "name": "New"}, format="json"
        ),
    ),
    Cell(
        "rename the project",
        MANAGERS,
        lambda c, t: c.patch(f"/api/projects/{t.project.pk}/", {"name": "X"}, format="json"),
    ),
    Cell(
        "add a label",
        MANAGERS,
        lambda c, t: c.post(
            f"/api/projects/{t.project.pk}/labels/",
            {"name": "crack", "color": "#00ff00"},
            format="json",
        ),
    ),
    Cell("upload images", MANAGERS, _upload),
    Cell(
        "import image URLs",
        MANAGERS,
        lambda c, t: c.post(
            f"/api/projects/{t.project.pk}/import/",
            {"tasks": ["https://example.com/a.jpg"]},
            format="json",
        ),
    ),
    Cell(
        "assign tasks",
        MANAGERS,
        lambda c, t: c.post(
            f"/api/projects/{t.project.pk}/assign/",
            {"tasks": [t.tasks[0].pk], "assignee": t.user(N).pk},
            format="json",
        ),
    ),
    Cell(
        "add a prediction",
        MANAGERS,
        lambda c, t: c.post(
            f"/api/tasks/{t.tasks[0].pk}/predictions/",
            {"model_name": "yolo", "shapes": [box(t.label) | {"score": 0.7}]},
            format="json",
        ),
    ),
    Cell("set a model's sensitivity", MANAGERS, _sensitivity),
    Cell(
        "list the project's evaluations",
        EVERYONE,
        lambda c, t: c.get(f"/api/projects/{t.project.pk}/evaluations/"),
    ),
    Cell("evaluate a model", MANAGERS, _evaluate),
    Cell(
        "view an evaluation", EVERYONE, lambda c, t: c.get(f"/api/evaluations/{_evaluation(t).pk}/")
    ),
    Cell(
        "delete an evaluation",
        MANAGERS,
        lambda c, t: c.delete(f"/api/evaluations/{_evaluation(t).pk}/"),
    ),
    Cell("delete a task", MANAGERS, lambda c, t: c.delete(f"/api/tasks/{t.tasks[0].pk}/")),
    Cell("list storages", EVERYONE, lambda c, t: c.get(f"/api/storages/?project={t.project.pk}")),
    Cell("view a storage", EVERYONE, lambda c, t: c.get(f"/api/storages/{_storage(t).pk}/")),
    Cell("add a storage", MANAGERS, _create_storage),
    Cell(
        "change a storage",
        MANAGERS,
        lambda c, t: c.patch(f"/api/storages/{_storage(t).pk}/", {"prefix": "a/"}, format="json"),
    ),
    Cell("delete a storage", MANAGERS, lambda c, t: c.delete(f"/api/storages/{_storage(t).pk}/")),
    Cell("test a storage", MANAGERS, lambda c, t: c.post(f"/api/storages/{_storage(t).pk}/test/")),
    Cell("sync a storage", MANAGERS, lambda c, t: c.post(f"/api/storages/{_storage(t).pk}/sync/")),
    Cell(
        "invite someone",
        ADMINS,
        lambda c, t: c.post(
            f"/api/organizations/{t.organization.pk}/invites/", {"role": "annotator"}, format="json"
        ),
    ),
    Cell("change a member's role", ADMINS, _role_change),
    Cell(
        "read the audit trail",
        ADMINS,
        lambda c, t: c.get(f"/api/organizations/{t.organization.pk}/audit-events/"),
    ),
    Cell(
        "rename the organization",
        ADMINS,
        lambda c, t: c.patch(
            f"/api/organizations/{t.organization.pk}/", {"name": "Renamed"}, format="json"
        ),
    ),
    Cell(
        "list the detection service's keys",
        ADMINS,
        lambda c, t: c.get(f"/api/organizations/{t.organization.pk}/service-keys/"),
    ),
    Cell(
        "make a detection service key",
        ADMINS,
        lambda c, t: c.post(
            f"/api/organizations/{t.organization.pk}/service-keys/", {"name": "cam"}, format="json"
        ),
    ),
    Cell(
        "revoke a detection service key",
        ADMINS,
        lambda c, t: c.post(
            f"/api/service-keys/{create_key(t.organization, None, 'cam')[0].pk}/revoke/"
        ),
    ),
    Cell(
        "read the quota",
        ADMINS,
        lambda c, t: c.get(f"/api/organizations/{t.organization.pk}/quota/"),
    ),
    Cell(
        "change the quota (the operator only)",
        set(),
        lambda c, t: c.patch(
            f"/api/organizations/{t.organization.pk}/quota/", {"weight": 2}, format="json"
        ),
    ),
    Cell(
        "read the detection usage",
        ADMINS,
        lambda c, t: c.get(f"/api/organizations/{t.organization.pk}/usage/"),
    ),
    Cell(
        "delete the organization",
        {O},
        lambda c, t: c.delete(f"/api/organizations/{t.organization.pk}/"),
    ),
]


@pytest.mark.parametrize("role", [O, A, M, R, N])
@pytest.mark.parametrize("cell", MATRIX, ids=lambda cell: cell.name.replace(" ", "-"))
def test_role_matrix(tenant: Tenant, cell: Cell, role: str) -> None:
    response = cell.request(client_for(tenant.user(role)), tenant)
    if role in cell.allowed:
        assert 200 <= response.status_code < 300, (
            f"{role} should be able to {cell.name}: {response.content!r}"
        )
    else:
        assert response.status_code == 403, (
            f"{role} must not {cell.name}: got {response.status_code}"
        )
        assert response.json()["error"]["code"] == "forbidden"


def test_admin_cannot_make_or_unmake_owners(tenant: Tenant) -> None:
    admin = client_for(tenant.user(A))
    invite = admin.post(
        f"/api/organizations/{tenant.organization.pk}/invites/", {"role": "owner"}, format="json"
    )
    assert invite.status_code == 403
    owner_membership = Membership.objects.get(organization=tenant.organization, user=tenant.user(O))
    demote = admin.patch(
        f"/api/memberships/{owner_membership.pk}/", {"role": "annotator"}, format="json"
    )
    assert demote.status_code == 403


def test_the_last_owner_cannot_leave(tenant: Tenant) -> None:
    owner = client_for(tenant.user(O))
    membership = Membership.objects.get(organization=tenant.organization, user=tenant.user(O))
    response = owner.delete(f"/api/memberships/{membership.pk}/")
    assert response.status_code == 409
    assert Membership.objects.filter(pk=membership.pk).exists()


def test_anonymous_callers_get_401(tenant: Tenant) -> None:
    response = client_for(None).get(f"/api/projects/{tenant.project.pk}/")
    assert response.status_code == 401
