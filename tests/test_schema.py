"""The OpenAPI schema builds without a warning and validates, and the docs page serves it."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import yaml
from django.core.management import call_command
from rest_framework.test import APIClient


def test_openapi_schema_builds_without_warnings_and_validates(tmp_path: Path) -> None:
    target = tmp_path / "schema.yaml"
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(target), stderr=StringIO()
    )
    schema = yaml.safe_load(target.read_text())
    assert "/api/projects/{id}/tasks/" in schema["paths"]
    assert "apiToken" in schema["components"]["securitySchemes"]


def test_schema_and_docs_are_served_without_any_cdn(db) -> None:  # type: ignore[no-untyped-def]
    client = APIClient()
    assert client.get("/api/schema/").status_code == 200
    page = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/" in page
    assert "cdn" not in page.lower() and "https://" not in page


def test_lists_walked_by_cursor_are_documented_as_pages_and_errors_as_one_shape() -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]

    def answer(path: str, method: str, code: str) -> dict:  # type: ignore[type-arg]
        content = schema["paths"][path][method]["responses"][code]["content"]
        ref = content["application/json"]["schema"]["$ref"]
        return components[ref.rsplit("/", 1)[-1]]  # type: ignore[no-any-return]

    # These four answer an object, not the array drf-spectacular guessed from the action.
    assert set(answer("/api/jobs/", "get", "200")["properties"]) == {"results", "next_cursor"}
    assert set(answer("/api/jobs/{id}/items/", "get", "200")["properties"]) == {
        "results",
        "next_cursor",
    }
    audit = answer("/api/organizations/{id}/audit-events/", "get", "200")
    assert set(audit["properties"]) == {"results", "next_cursor"}
    assert "email" in answer("/api/account/", "get", "200")["properties"]
    # A stale annotation answers 409, a big upload 413, a paused login 429: all documented,
    # all in the one error shape.
    for path, method, code in [
        ("/api/tasks/{id}/annotation/", "put", "409"),
        ("/api/projects/{id}/upload/", "post", "413"),
        ("/api/auth/login/", "post", "429"),
        ("/api/projects/{id}/upload/", "post", "415"),
    ]:
        assert set(answer(path, method, code)["properties"]) == {"error"}
