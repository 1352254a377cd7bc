"""The API does what its OpenAPI schema says: schemathesis sends schema-generated requests to every
operation, in process through the WSGI app, as the owner of an organization with a project,
tasks, a pending invite, an allowlist entry and a job.

Each operation is its own pytest test in its own database transaction, so a destructive call
(deleting the organization, a token, the project) undoes itself before the next operation runs.
Generated ids mostly name nothing (404, which the schema documents); half of them are swapped
for the seeded row the path is about, so the success answers are checked too.

Bounded and repeatable: a fixed number of examples per operation, derandomized, no deadline."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from defectlab.hooks.services import create_webhook
from defectlab.inference.backends import create_backend
from defectlab.ingest.models import AllowedNetwork
from defectlab.insight.models import Evaluation, EvaluationState
from defectlab.jobs.models import Job
from defectlab.labeling.models import Task
from defectlab.serving.keys import create_key
from defectlab.tenancy.models import Membership, Role
from defectlab.tenancy.services import create_api_token, create_invite
from defectlab.wsgi import application
from tests.conftest import Tenant, client_for, make_tenant

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
# Every text field refuses NUL characters (DRF's rule, not ours to document field by field).
schema.config.generation.update(allow_x00=False)
# Operations that reach the network on their own: they test an S3 endpoint the request names
# (or AWS when it names none). Tests reach nothing but loopback; tests/media covers them on moto.
schema = schema.exclude(path_regex=r"^/api/storages/(check/|\{id\}/test/)$")

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Valid data must be accepted (2xx, or 401/403/404/409/429, which it documents) except where a
# schema-valid request can still be wrong for a reason a schema cannot say: a wrong current
# password, credentials that do not exist, an invite token nobody issued...
NOT_POSITIVE = {
    "POST /api/account/password/",
    "POST /api/auth/login/",
    "POST /api/invites/accept/",
    # ...the address policy (a schema cannot say which networks may never be allowed, nor
    # which addresses Python's URL parser reads as having a host)...
    "POST /api/allowlist/",
    "POST /api/projects/{id}/import/",
    "POST /api/webhooks/",
    "PUT /api/webhooks/{id}/",
    "PATCH /api/webhooks/{id}/",
    "POST /api/backends/",
    "PUT /api/backends/{id}/",
    "PATCH /api/backends/{id}/",
    # ...rules across fields and rows (unique names, an attribute's default among its options,
    # a rejection's comment, a split adding up to more than zero)...
    "POST /api/projects/",
    "PUT /api/projects/{id}/",
    "PATCH /api/projects/{id}/",
    "POST /api/projects/{id}/labels/",
    "PUT /api/labels/{id}/",
    "PATCH /api/labels/{id}/",
    "POST /api/tasks/{id}/review/",
    # (a model or a backend, a version or an alias; class names the model has, labels the
    # project has)
    "POST /api/projects/{id}/preannotate/",
    "POST /api/projects/{id}/evaluations/",
    # (another evaluation of the same project, both done)
    "GET /api/evaluations/{id}/compare/",
    "PUT /api/projects/{id}/models/{model_id}/",
    # (a usage range: `start` before `end`, at most 366 days between them)
    "GET /api/organizations/{id}/usage/",
    "GET /api/projects/{id}/statistics/",
    # ...the state of other rows (a target storage to export to, shapes naming the project's
    # labels and fitting the image, a storage's endpoint and bucket)...
    "POST /api/projects/{id}/export/",
    "PUT /api/tasks/{id}/annotation/",
    "POST /api/tasks/{id}/predictions/",
    "POST /api/storages/",
    "PUT /api/storages/{id}/",
    "PATCH /api/storages/{id}/",
    # ...or what is inside an uploaded file (an image, a zip, a text list).
    "POST /api/projects/{id}/upload/",
    "POST /api/projects/{id}/import-dataset/",
    "POST /api/projects/{id}/import-urls/",
}
# Body fields that name other rows: a generated number names nothing, so these are swapped for
# the seeded row's id (unknown ids of paths are tested; these would only repeat that).
REFERENCES = {"organization": "organizations", "project": "projects", "connection": "storages"}


class Seeded:
    """The rows a path's `{id}` is swapped for, by the path's first segment."""

    def __init__(self, tenant: Tenant) -> None:
        owner = tenant.user(Role.OWNER)
        self.token, self.key = create_api_token(owner, "contract test")
        spare, _key = create_api_token(owner, "spare")
        invite, self.invite_token = create_invite(owner, tenant.organization, Role.ANNOTATOR, "")
        entry = AllowedNetwork.objects.create(
            organization=tenant.organization, value="10.20.0.0/24", created_by=owner
        )
        job = Job.objects.create(
            organization=tenant.organization,
            project=tenant.project,
            kind="export",
            state="failed",
            started_by=owner,
        )
        hook, _secret = create_webhook(
            tenant.organization, owner, url="http://10.20.0.7/hook", events=["task.approved"]
        )
        # Refused by the guard at once (a private address outside the allowlist): a check
        # never leaves this machine.
        backend = create_backend(
            tenant.organization, owner, name="sam", url="http://192.168.99.9:9090"
        )
        service_key, _text = create_key(tenant.organization, owner, "line 3")
        evaluation = Evaluation.objects.create(
            organization=tenant.organization, project=tenant.project, model_name="m",
            version_number=1, conf=0.25, iou=0.7, state=EvaluationState.DONE,
            report={"images": 1, "map50": None, "map50_95": None, "classes": {},
                    "confusion": {"labels": [], "counts": [[0]]}},
        )  # fmt: skip
        self.ids = {
            "organizations": tenant.organization.pk,
            "projects": tenant.project.pk,
            "tasks": tenant.tasks[0].pk,
            "labels": tenant.label.pk,
            "memberships": Membership.objects.get(user=tenant.user(Role.ANNOTATOR)).pk,
            "invites": invite.pk,
            "tokens": spare.pk,
            "allowlist": entry.pk,
            "jobs": job.pk,
            "webhooks": hook.pk,
            "backends": backend.pk,
            "service-keys": service_key.pk,
            "evaluations": evaluation.pk,
        }
        self.owner_id = owner.pk

    def swap(self, case: Any) -> None:
        parameters = case.path_parameters or {}
        resource = case.path.split("/")[2]
        generated = parameters.get("id")
        if isinstance(generated, int) and generated % 2 == 0 and resource in self.ids:
            parameters["id"] = self.ids[resource]
        body = case.body if isinstance(case.body, dict) else {}
        for field, resource in REFERENCES.items():
            if isinstance(body.get(field), int) and resource in self.ids:
                body[field] = self.ids[resource]
        if "assignee" in body and body["assignee"] is not None:
            body["assignee"] = self.owner_id
        if case.query and "cursor" in case.query:
            # A cursor is an opaque token the server issued; a generated one answers 400.
            del case.query["cursor"]
        if "token" in parameters and len(str(parameters["token"])) % 2 == 0:
            parameters["token"] = self.invite_token


@pytest.fixture
def seeded(db: None) -> Iterator[Seeded]:
    # The WSGI handler, unlike Django's test client, closes the connection after each request,
    # which would end the test's transaction; the test client disconnects the same signals.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield Seeded(make_tenant("Contract"))
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=10,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_matches_its_schema(case: Any, seeded: Seeded) -> None:
    seeded.swap(case)
    checks = list(CHECKS)
    if f"{case.method} {case.path}" not in NOT_POSITIVE:
        checks.append(positive_data_acceptance)
    case.call_and_validate(headers={"Authorization": f"Bearer {seeded.key}"}, checks=checks)


# ---------------------------------------------------------------------------- what it found
# Each of these answered 500 (or HTML) before; each is a request a person or script sends.


def test_a_project_created_with_labels_that_say_their_own_order(tenant: Tenant) -> None:
    api = client_for(tenant.user(Role.MANAGER))
    response = api.post(
        "/api/projects/",
        {
            "organization": tenant.organization.pk,
            "name": "Copied project",
            "labels": [{"name": "dent", "order": 1}, {"name": "scratch", "order": 0}],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    labels = {label["name"]: label["order"] for label in response.json()["labels"]}
    assert labels == {"dent": 1, "scratch": 0}


def test_shape_types_that_are_not_names_are_refused_in_words(tenant: Tenant) -> None:
    api = client_for(tenant.user(Role.MANAGER))
    response = api.post(
        "/api/projects/",
        {"organization": tenant.organization.pk, "name": "P", "shape_types": [{"box": True}]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"field": "shape_types"}


def test_an_address_python_cannot_parse_is_refused_naming_its_row(tenant: Tenant) -> None:
    api = client_for(tenant.user(Role.MANAGER))
    project = tenant.project.pk
    tasks = ["https://cam.example.com/a.png", "http://[fe80::1/b.png"]
    response = api.post(f"/api/projects/{project}/import/", {"tasks": tasks}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"row": 2}
    response = api.post(f"/api/projects/{project}/import-urls/", {"urls": tasks}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"row": 2}
    assert Task.objects.filter(project=project).count() == len(tenant.tasks)


def test_a_prediction_that_found_nothing(tenant: Tenant) -> None:
    api = client_for(tenant.user(Role.MANAGER))
    task = tenant.tasks[0].pk
    response = api.post(f"/api/tasks/{task}/predictions/", {"model_name": "yolo"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["shapes"] == []


def test_an_api_address_nothing_answers_is_a_json_404(tenant: Tenant) -> None:
    api = client_for(tenant.user(Role.OWNER))
    response = api.get("/api/projects/1.5/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    # Pages keep their ordinary 404.
    assert "text/html" in api.get("/no-such-page/").headers["Content-Type"]


def test_a_width_beyond_any_image_is_refused_naming_its_row(tenant: Tenant) -> None:
    # PostgreSQL's integer column overflowed (500); SQLite took it silently.
    api = client_for(tenant.user(Role.MANAGER))
    rows = [{"image": "https://cam.example.com/a.png", "width": 3_000_000_000, "height": 10}]
    response = api.post(
        f"/api/projects/{tenant.project.pk}/import/", {"tasks": rows}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"row": 1}


def test_a_storage_prefix_too_long_to_store_is_refused(tenant: Tenant) -> None:
    # Stored with a trailing "/", a 500-character prefix overflowed its column on PostgreSQL.
    api = client_for(tenant.user(Role.MANAGER))
    settings = {"project": tenant.project.pk, "role": "source", "name": "line 3", "bucket": "b"}
    response = api.post("/api/storages/", {**settings, "prefix": "p" * 500}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("prefix:")
