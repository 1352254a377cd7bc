"""Walk every API route with another organization's IDs: each must answer 404 and change nothing.

The walk finds routes by itself. A new route whose URL carries an ID of a model this file does
not know fails `test_every_id_route_is_walked` until its model is added to `objects_of()` — so
no route can slip past the walk, and a route that forgets scoping fails the walk."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import models
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from defectlab.hooks.models import Delivery, Webhook
from defectlab.hooks.services import create_webhook
from defectlab.inference.models import (
    DetectionModel,
    MLBackend,
    ModelAlias,
    ModelVersion,
    VersionState,
)
from defectlab.ingest.models import AllowedNetwork
from defectlab.insight.models import Evaluation, EvaluationState, Finding
from defectlab.jobs.models import Job, JobState
from defectlab.labeling.issues import open_issue
from defectlab.labeling.models import Issue, Label, Project, Task
from defectlab.labeling.workflow import add_prediction
from defectlab.media.connections import create_connection
from defectlab.media.models import StorageConnection
from defectlab.serving.keys import create_key
from defectlab.serving.models import OrganizationKey, Quota
from defectlab.tenancy.models import ApiToken, AuditEvent, Invite, Membership, Organization, Role
from defectlab.tenancy.services import create_api_token, create_invite
from tests.conftest import Tenant, annotate, box, client_for

# Routes whose URL holds no tenant ID, each with the reason it is safe.
NOT_TENANT_ROUTES = {
    "media": "the token is an HMAC-signed, expiring grant minted only for members",
    "invite-preview": "the token is a secret invite link; only its hash is stored",
    "schema": "no data",
    "docs": "no data",
    "invite": "the token is a secret invite link; only its hash is stored",
}

# Pages (plain Django views) say here which model the ID in their URL addresses.
PAGE_MODELS: dict[str, type[models.Model]] = {
    "organization": Organization,
    "project": Project,
    "assign": Project,
    "members": Organization,
    "project_new": Organization,
    "project_settings": Project,
    "start_labeling": Project,
    "start_review": Project,
    "annotate": Task,
    "review": Task,
    "annotate_config": Task,
    "review_config": Task,
    "jobs": Organization,
    "job": Job,
    "project_data": Project,
    "project_statistics": Project,
    "project_storages": Project,
    "network_access": Organization,
    "webhooks": Organization,
    "job_cancel": Job,
    "job_retry": Job,
    "project_delete": Project,
    "tasks_delete": Project,
    "models": Organization,
    "backends": Organization,
    "model": DetectionModel,
    "model_versions": DetectionModel,
    "model_sensitivity": DetectionModel,
    "project_preannotate": Project,
    "service_keys": Organization,
    "usage": Organization,
    "project_evaluations": Project,
    "evaluation_compare": Project,
    "evaluation": Evaluation,
    "evaluation_delete": Evaluation,
}


@dataclass(frozen=True)
class Route:
    name: str
    kwargs: tuple[str, ...]
    methods: tuple[str, ...]
    model: type[models.Model] | None


def _routes(patterns: list[Any], namespace: str = "") -> Iterator[tuple[str, URLPattern]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace == "admin":
                continue  # Django admin: site operators (superusers) only, outside tenancy
            yield from _routes(entry.url_patterns, namespace)
        elif isinstance(entry, URLPattern) and entry.name:
            yield entry.name, entry


def api_routes() -> list[Route]:
    found = []
    for name, pattern in _routes(get_resolver().url_patterns):
        kwargs = tuple(pattern.pattern.regex.groupindex)
        callback = pattern.callback
        actions: dict[str, str] = getattr(callback, "actions", {}) or {}
        cls = getattr(callback, "cls", None)
        queryset = getattr(cls, "queryset", None)
        model = queryset.model if queryset is not None else None
        if (
            cls is not None
            and getattr(cls, "get_queryset", None)
            and model is None
            and "pk" in kwargs
        ):
            model = _model_from_get_queryset(cls)
        methods = tuple(sorted(method.upper() for method in actions))
        if cls is None:  # a page: try both verbs; a 405 is decided before any lookup
            model, methods = PAGE_MODELS.get(name), ("GET", "POST")
        found.append(Route(name, kwargs, methods, model))
    return found


def _model_from_get_queryset(cls: Any) -> type[models.Model] | None:
    serializer = getattr(cls, "serializer_class", None)
    meta = getattr(serializer, "Meta", None)
    return getattr(meta, "model", None)


@dataclass
class Victim:
    tenant: Tenant
    objects: dict[type[models.Model], models.Model]


@pytest.fixture
def victim(other_tenant: Tenant) -> Victim:
    owner = other_tenant.user(Role.OWNER)
    task = other_tenant.tasks[0]
    annotate(other_tenant, task)
    add_prediction(
        task, model_name="m", model_version="1", shapes=[box(other_tenant.label) | {"score": 0.5}]
    )
    issue = open_issue(task, owner, message="Too short", point=[3, 3])
    invite, _token = create_invite(owner, other_tenant.organization, Role.ANNOTATOR)
    token, _key = create_api_token(owner, "ci")
    membership = Membership.objects.get(
        organization=other_tenant.organization, user=other_tenant.user(Role.ANNOTATOR)
    )
    job = Job.objects.create(
        organization=other_tenant.organization,
        kind="export",
        state=JobState.FAILED,
        started_by=owner,
    )
    allowed = AllowedNetwork.objects.create(
        organization=other_tenant.organization, value="10.20.0.0/24", created_by=owner
    )
    webhook, _secret = create_webhook(
        other_tenant.organization, owner, url="http://10.20.0.7/hook", events=["task.approved"]
    )
    delivery = Delivery.objects.create(
        organization=other_tenant.organization, webhook=webhook, event="ping"
    )
    storage = create_connection(
        other_tenant.project,
        owner,
        role="source",
        name="line 3 camera",
        endpoint_url="http://10.20.0.5:9000",
        bucket="frames",
        access_key="victim-access-key",
        secret_key="victim-secret-key",
    )
    detector = DetectionModel.objects.create(organization=other_tenant.organization, name="m")
    version = ModelVersion.objects.create(
        organization=other_tenant.organization,
        model=detector,
        number=1,
        state=VersionState.READY,
        file_key=f"org/{other_tenant.organization.pk}/models/{detector.pk}/v1.onnx",
        sha256="0" * 64,
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
    alias = ModelAlias.objects.create(
        organization=other_tenant.organization, model=detector, name="production", version=version
    )
    backend = MLBackend.objects.create(
        organization=other_tenant.organization, name="sam", url="http://10.20.0.9:9090"
    )
    service_key, _text = create_key(other_tenant.organization, owner, "line 3")
    evaluation = Evaluation.objects.create(
        organization=other_tenant.organization, project=other_tenant.project, version=version,
        model_name="m", version_number=1, conf=0.25, iou=0.7, state=EvaluationState.DONE,
        report={"images": 1, "map50": 0.5, "map50_95": 0.3, "classes": {},
                "confusion": {"labels": [], "counts": [[0]]}},
    )  # fmt: skip
    Finding.objects.create(
        organization=other_tenant.organization, evaluation=evaluation, task=task, rank=1,
        kind="missing", score=0.9, predicted_label=other_tenant.label.pk,
        predicted_box=[1, 1, 9, 9], predicted_score=0.9,
    )  # fmt: skip
    return Victim(
        other_tenant,
        {
            DetectionModel: detector,
            MLBackend: backend,
            ModelVersion: version,
            ModelAlias: alias,
            Organization: other_tenant.organization,
            Project: other_tenant.project,
            Task: task,
            Label: other_tenant.label,
            Membership: membership,
            Invite: invite,
            ApiToken: token,
            Job: job,
            AllowedNetwork: allowed,
            StorageConnection: storage,
            Issue: issue,
            Webhook: webhook,
            Delivery: delivery,
            OrganizationKey: service_key,
            Evaluation: evaluation,
        },
    )


def snapshot(tenant: Tenant) -> dict[str, Any]:
    """Everything an attacker might try to change in the victim's organization."""
    organization = tenant.organization
    return {
        "organization": list(Organization.objects.filter(pk=organization.pk).values()),
        "members": list(
            Membership.objects.filter(organization=organization).values().order_by("id")
        ),
        "invites": list(Invite.objects.filter(organization=organization).values().order_by("id")),
        "projects": list(Project.objects.filter(organization=organization).values().order_by("id")),
        "labels": list(Label.objects.filter(organization=organization).values().order_by("id")),
        "tasks": list(Task.objects.filter(organization=organization).values().order_by("id")),
        "issues": list(Issue.objects.filter(organization=organization).values().order_by("id")),
        "jobs": list(Job.objects.filter(organization=organization).values().order_by("id")),
        "allowlist": list(
            AllowedNetwork.objects.filter(organization=organization).values().order_by("id")
        ),
        "storages": list(
            StorageConnection.objects.filter(organization=organization).values().order_by("id")
        ),
        "webhooks": list(Webhook.objects.filter(organization=organization).values().order_by("id")),
        "deliveries": list(
            Delivery.objects.filter(organization=organization).values().order_by("id")
        ),
        "models": list(
            DetectionModel.objects.filter(organization=organization).values().order_by("id")
        ),
        "versions": list(
            ModelVersion.objects.filter(organization=organization).values().order_by("id")
        ),
        "aliases": list(
            ModelAlias.objects.filter(organization=organization).values().order_by("id")
        ),
        "backends": list(
            MLBackend.objects.filter(organization=organization).values().order_by("id")
        ),
        "service_keys": list(
            OrganizationKey.objects.filter(organization=organization).values().order_by("id")
        ),
        "quota": list(Quota.objects.filter(organization=organization).values()),
        "evaluations": list(
            Evaluation.objects.filter(organization=organization).values().order_by("id")
        ),
        "findings": list(Finding.objects.filter(organization=organization).values().order_by("id")),
        "tokens": list(
            ApiToken.objects.filter(user__memberships__organization=organization)
            .values()
            .order_by("id")
        ),
    }


def test_every_id_route_is_walked(db: Any) -> None:
    for route in api_routes():
        if route.name in NOT_TENANT_ROUTES or not route.kwargs:
            continue
        assert route.kwargs in (("pk",), *(("pk", name) for name in EXTRA_KWARGS)), (
            f"route {route.name} takes {route.kwargs}; teach the walk about it"
        )
        assert route.model in WALKED_MODELS, (
            f"route {route.name} addresses {route.model}; declare it in PAGE_MODELS or add the "
            "model to the victim fixture"
        )


WALKED_MODELS = {
    Organization,
    Project,
    Task,
    Label,
    Membership,
    Invite,
    ApiToken,
    Job,
    AllowedNetwork,
    StorageConnection,
    Issue,
    Webhook,
    DetectionModel,
    MLBackend,
    OrganizationKey,
    Evaluation,
}

# Second IDs in a route: the model each addresses and the field of the victim's row it takes.
EXTRA_KWARGS: dict[str, tuple[type[models.Model], str]] = {
    "delivery": (Delivery, "pk"),
    "number": (ModelVersion, "number"),
    "name": (ModelAlias, "name"),
    "model_id": (DetectionModel, "pk"),
}


@pytest.mark.parametrize("role", [Role.OWNER, Role.ANNOTATOR])
def test_other_organizations_ids_answer_404_on_every_route(
    tenant: Tenant, victim: Victim, role: str
) -> None:
    before = snapshot(victim.tenant)
    client = client_for(tenant.user(role))
    walked = 0
    for route in api_routes():
        if route.name in NOT_TENANT_ROUTES or not route.kwargs:
            continue
        target = victim.objects[route.model]  # type: ignore[index]
        extra = {
            name: getattr(victim.objects[EXTRA_KWARGS[name][0]], EXTRA_KWARGS[name][1])
            for name in route.kwargs[1:]
        }
        url = reverse(route.name, kwargs={"pk": target.pk, **extra})
        for method in route.methods:
            response = client.generic(method, url, data="{}", content_type="application/json")
            allowed = {404, 405} if route.name in PAGE_MODELS else {404}
            assert response.status_code in allowed, (
                f"{method} {url} ({route.name}) answered {response.status_code}"
            )
            assert str(target.pk) not in _visible_ids(response), f"{method} {url} leaked data"
            walked += 1
    assert walked >= 25
    assert snapshot(victim.tenant) == before


def _visible_ids(response: Any) -> str:
    if not response.content:
        return ""
    body = (
        response.json() if response.get("Content-Type", "").startswith("application/json") else {}
    )
    return str(body.get("error", {}).get("details", ""))


def test_lists_never_show_another_organizations_rows(tenant: Tenant, victim: Victim) -> None:
    client = client_for(tenant.user(Role.OWNER))
    foreign = victim.tenant.organization.pk
    assert [o["id"] for o in client.get("/api/organizations/").json()] == [tenant.organization.pk]
    assert client.get(f"/api/projects/?organization={foreign}").json() == []
    assert {p["id"] for p in client.get("/api/projects/").json()} == {tenant.project.pk}
    assert client.get("/api/tokens/").json() == []


def test_ids_in_request_bodies_are_scoped_too(tenant: Tenant, victim: Victim) -> None:
    client = client_for(tenant.user(Role.OWNER))
    foreign_project = client.post(
        "/api/projects/",
        {"organization": victim.tenant.organization.pk, "name": "x"},
        format="json",
    )
    assert foreign_project.status_code == 404
    stranger = victim.tenant.user(Role.ANNOTATOR).pk
    assign = client.post(
        f"/api/projects/{tenant.project.pk}/assign/",
        {"tasks": [tenant.tasks[0].pk], "assignee": stranger},
        format="json",
    )
    assert assign.status_code == 400
    foreign_label = client.put(
        f"/api/tasks/{tenant.tasks[0].pk}/annotation/",
        {"shapes": [box(victim.tenant.label)]},
        format="json",
    )
    assert foreign_label.status_code == 400
    foreign_tasks = client.post(
        f"/api/projects/{tenant.project.pk}/assign/",
        {"tasks": [victim.tenant.tasks[0].pk], "assignee": None},
        format="json",
    )
    assert foreign_tasks.json() == {"updated": 0}
    assert not AuditEvent.objects.filter(
        organization=victim.tenant.organization, actor=tenant.user(Role.OWNER)
    ).exists()
