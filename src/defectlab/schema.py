"""What the OpenAPI schema says about every operation, beyond its own serializers.

Every error answers one shape (``defectlab.errors.error_body``); the schema documents it once as
the ``Error`` component and lists it under each status code any operation may answer. Lists that
walk by cursor answer a page object, built by ``page_serializer``."""

from __future__ import annotations

from typing import Any, TypeVar

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers
from rest_framework.settings import api_settings

# 400 bad input, 401 not signed in, 403 role does not allow it, 404 not found (or another
# organization's), 409 conflict (a stale version, a taken task), 413 too large, 429 throttled.
ERROR_CODES = ("400", "401", "403", "404", "409", "413", "429")
# Only operations that read a body can refuse its media type.
BODY_ERROR_CODES = ("415",)


class ErrorDetailSerializer(serializers.Serializer[Any]):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. `stale`.")
    message = serializers.CharField(help_text="What went wrong, in the request's language.")
    details = serializers.JSONField(
        required=False, help_text="More about it, e.g. which field or row; absent when none."
    )


@extend_schema_serializer(many=False)
class ErrorSerializer(serializers.Serializer[Any]):
    error = ErrorDetailSerializer()


F = TypeVar("F", bound=serializers.Field[Any, Any, Any, Any])


def documented_field(name: str, base: type[F], schema: dict[str, Any]) -> type[F]:
    """A subclass of ``base`` that validates exactly as it does but that the schema describes
    as ``schema``: for rules a service checks (with its own message) that the schema should
    state too, e.g. a colour's pattern."""
    return extend_schema_field(schema)(type(name, (base,), {}))


def page_serializer(
    name: str, item: type[serializers.BaseSerializer[Any]]
) -> type[serializers.Serializer[Any]]:
    """The schema of a page of ``item`` rows and the cursor (null on the last page) to the next."""
    fields: dict[str, serializers.Field[Any, Any, Any, Any]] = {
        "results": item(many=True),
        "next_cursor": serializers.CharField(allow_null=True),
    }
    page = type(name, (serializers.Serializer,), fields)
    return extend_schema_serializer(many=False)(page)


INT64 = {"format": "int64", "minimum": -(2**63), "maximum": 2**63 - 1}


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's schema, with the error answers every operation may give, and integer
    parameters bounded to what a database id can be (a larger number answers 400)."""

    def map_parsers(self) -> list[Any]:
        # The API speaks JSON: where a view keeps DRF's default parsers, bodies are documented
        # as JSON only (nested fields such as labels and shapes have no form encoding). Actions
        # that take files name their own parsers, and those are documented as they are.
        if list(self.view.parser_classes) == list(api_settings.DEFAULT_PARSER_CLASSES):
            return ["application/json"]
        return super().map_parsers()

    def _map_serializer_field(
        self, field: Any, direction: Any, bypass_extensions: bool = False
    ) -> dict[str, Any]:
        schema: dict[str, Any] = super()._map_serializer_field(field, direction, bypass_extensions)
        # DRF trims text fields and refuses what is left blank: say so, as a pattern.
        if (
            direction == "request"
            and isinstance(field, serializers.CharField)
            and field.trim_whitespace
            and not field.allow_blank
            and schema.get("type") == "string"
            and not {"pattern", "format", "enum"} & schema.keys()
        ):
            schema["pattern"] = r"\S"
        return schema

    def get_operation(self, *args: Any, **kwargs: Any) -> Any:
        operation = super().get_operation(*args, **kwargs)
        for parameter in (operation or {}).get("parameters", []):
            schema = parameter.get("schema", {})
            if schema.get("type") == "integer" and "maximum" not in schema:
                schema.update(INT64)
        return operation

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        codes: tuple[str, ...] = ERROR_CODES
        if self.method in ("POST", "PUT", "PATCH"):
            codes = (*codes, *BODY_ERROR_CODES)
        for code in codes:
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    ErrorSerializer, code, direction=direction
                )
        return dict(sorted(responses.items()))
