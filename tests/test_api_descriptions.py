"""Every operation of the OpenAPI schema says what it does, and so does every parameter and every
field a script sends: the schema at /api/schema/ is the API's reference for scripts (issue 10).

The schema is built as ``/api/schema/`` builds it (drf-spectacular's generator, public). That
generation gives no warning is ``tests/test_schema.py``'s (``--fail-on-warn``)."""

from __future__ import annotations

from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator

METHODS = ("get", "put", "post", "patch", "delete")


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)  # type: ignore[no-any-return]


def operations(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    return schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]  # type: ignore[no-any-return]


def test_every_operation_has_a_description(schema: dict[str, Any]) -> None:
    undescribed = [name for name, op in operations(schema) if not op.get("description", "").strip()]
    assert not undescribed, (
        "describe these operations (a docstring on the view method, or "
        f"extend_schema(description=...)): {undescribed}"
    )


def test_every_path_and_query_parameter_has_a_description(schema: dict[str, Any]) -> None:
    undescribed = [
        f"{name}: {parameter['in']} parameter `{parameter['name']}`"
        for name, operation in operations(schema)
        for parameter in operation.get("parameters", [])
        if parameter["in"] in ("path", "query") and not parameter.get("description", "").strip()
    ]
    assert not undescribed, f"describe these (OpenApiParameter(description=...)): {undescribed}"


def test_every_field_a_script_sends_has_a_description(schema: dict[str, Any]) -> None:
    """Every top-level property of every request body, in every media type an operation takes."""
    undescribed = []
    for name, operation in operations(schema):
        for media_type, body in operation.get("requestBody", {}).get("content", {}).items():
            properties = _resolve(schema, body["schema"]).get("properties", {})
            for field, spec in properties.items():
                if spec.get("readOnly"):
                    continue
                if not (spec.get("description") or _resolve(schema, spec).get("description")):
                    undescribed.append(f"{name} ({media_type}): `{field}`")
    assert not undescribed, f"give these fields a help_text: {undescribed}"


def test_the_checks_above_see_what_they_should(schema: dict[str, Any]) -> None:
    """The walk reaches operations, parameters and body fields, so an empty list means described."""
    names = dict(operations(schema))
    assert "POST /api/projects/{id}/export/" in names
    assert "GET /api/jobs/{id}/" in names
    wait = [p for p in names["GET /api/jobs/{id}/"]["parameters"] if p["name"] == "wait"]
    assert wait and wait[0]["in"] == "query"
    body = names["POST /api/projects/{id}/export/"]["requestBody"]["content"]["application/json"]
    assert {"format", "include_images", "include_unlabeled"} <= set(
        _resolve(schema, body["schema"])["properties"]
    )
