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
