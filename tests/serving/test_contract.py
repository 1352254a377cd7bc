"""The detection service does what its OpenAPI schema (`/openapi.json`) says: schemathesis sends
schema-generated requests to every operation of the running service over HTTP, with an
organization's key; half of them name the organization's model (``panels``) so the success
answers are checked too. No answer may be a 5xx, and each must match its documented status,
content type and shape. Bounded and repeatable: a fixed number of examples, derandomized."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from defectlab.serving.openapi import schema as service_schema
from defectlab.serving.quotas import set_quota
from tests.conftest import make_tenant
from tests.serving.conftest import Running, box_model, key_of, put_model, running

pytestmark = pytest.mark.django_db(transaction=True)

schema = schemathesis.openapi.from_dict(service_schema())
schema.config.generation.update(allow_x00=False)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def service(transactional_db: None) -> Iterator[tuple[Running, str]]:
    tenant = make_tenant("Contract")
    put_model(tenant.organization, "panels", box_model())
    set_quota(tenant.organization, None, requests_per_minute=None, images_per_day=None)
    key = key_of(tenant.organization)
    with running() as client:
        yield client, key


def swap(case: Any, counter: list[int]) -> None:
    """Every other case asks for the organization's model, once (not in both the query and
    the body, which the service refuses as documented), without a version or alias of chance."""
    counter[0] += 1
    if counter[0] % 2 or case.path != "/v1/detect":
        return
    body = case.body if isinstance(case.body, dict) else None
    query = case.query if isinstance(case.query, dict) else {}
    if body is not None:
        for name in list(query):
            if name in body:
                del query[name]
    for where in (query, body):
        if isinstance(where, dict):
            where.pop("version", None)
            where.pop("alias", None)
            where.pop("classes", None)
    (body if body is not None and "model" in body else query)["model"] = "panels"
    if case.query is None and query:
        case.query = query


@schema.parametrize()
@settings(
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_service_matches_its_schema(case: Any, service: tuple[Running, str]) -> None:
    client, key = service
    counter = getattr(test_the_service_matches_its_schema, "counter", [0])
    test_the_service_matches_its_schema.counter = counter  # type: ignore[attr-defined]
    swap(case, counter)
    case.call_and_validate(
        base_url=str(client.base_url), headers={"Authorization": f"Bearer {key}"}, checks=CHECKS
    )
