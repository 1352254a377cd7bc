"""The detection service's OpenAPI 3.1 schema (`/openapi.json`), written out rather than
generated: it is the contract clients are built against, and schemathesis checks the service
against it (tests/serving/test_contract.py)."""

from __future__ import annotations

from typing import Any

from defectlab import __version__, signature
from defectlab.serving.inputs import MAX_IMAGES

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable: programs may test it."},
                "message": {"type": "string", "description": "In the caller's language."},
                "details": {},
            },
        }
    },
}

_PARAMETERS: dict[str, Any] = {
    "model": {
        "type": "string",
        "minLength": 1,
        "description": "The model's name; `NAME:ALIAS` or `NAME:VERSION` name the version too.",
    },
    "version": {"type": "integer", "minimum": 1, "description": "A version number."},
    "alias": {"type": "string", "description": "An alias (default `production`)."},
    "conf": {"type": "number", "minimum": 0, "maximum": 1, "description": "Lowest score kept."},
    "iou": {"type": "number", "minimum": 0, "maximum": 1, "description": "NMS IoU threshold."},
    "max_det": {"type": "integer", "minimum": 1, "maximum": 10000},
    "classes": {"type": "string", "description": "Class names to keep, comma-separated."},
    "tile": {"type": "boolean", "description": "Add native-resolution tiles (large images)."},
}

_DETECTION = {
    "type": "object",
    "required": ["class", "class_id", "score", "box"],
    "properties": {
        "class": {"type": "string"},
        "class_id": {"type": "integer"},
        "score": {"type": "number"},
        "box": {
            "type": "array",
            "items": {"type": "number"},
            "minItems": 4,
            "maxItems": 4,
            "description": "x1, y1, x2, y2 in the image's pixels (upright, EXIF applied).",
        },
        "polygon": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
    },
}

_RESULT = {
    "type": "object",
    "required": ["index"],
    "properties": {
        "index": {"type": "integer"},
        "width": {"type": "integer"},
        "height": {"type": "integer"},
        "detections": {"type": "array", "items": _DETECTION},
        "timings": {"type": "object", "additionalProperties": {"type": "number"}},
        "error": _ERROR["properties"]["error"],  # type: ignore[index]
    },
}

_ANSWER = {
    "type": "object",
    "required": ["model", "results", "timings"],
    "properties": {
        "model": {
            "type": "object",
            "required": ["name", "version", "sha256"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "integer"},
                "alias": {"type": ["string", "null"]},
                "sha256": {"type": "string"},
            },
        },
        "results": {"type": "array", "items": _RESULT},
        "timings": {"type": "object", "additionalProperties": {"type": "number"}},
    },
}


_MIRRORED = {
    "type": "object",
    "required": ["model", "alias", "version", "sha256", "size", "file"],
    "properties": {
        "model": {"type": "string"},
        "alias": {"type": "string"},
        "version": {"type": "integer", "description": "The version's number."},
        "sha256": {"type": "string", "description": "SHA-256 of the file (hex): check it."},
        "size": {"type": "integer", "description": "The file's size in bytes."},
        "names": {"type": "array", "items": {"type": "string"}, "description": "Class names."},
        "input_size": {
            "type": "array",
            "items": {"type": "integer"},
            "minItems": 2,
            "maxItems": 2,
            "description": "Height and width of the model's input.",
        },
        "layout": {"type": "string", "description": "The output layout the engine reads."},
        "conf": {"type": "number"},
        "iou": {"type": "number"},
        "max_det": {"type": "integer"},
        "file": {"type": "string", "description": "The path of the version's file."},
    },
}

_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The model's name.",
}


_SCOPE = "The key lacks the `models` scope."
_MISSING = "The caller's organization has no such model, alias or ready version."
_UNAUTHORIZED = "No key, or a wrong, revoked or badly signed one."


def _mirror_paths() -> dict[str, Any]:
    """What an edge mirror asks (docs/edge.md); a key with the `models` scope."""
    return {
        "/v1/models/{name}/aliases/{alias}": {"get": _alias_operation()},
        "/v1/models/{name}/versions/{number}/file": {"get": _file_operation()},
    }


def _alias_operation() -> dict[str, Any]:
    return {
        "operationId": "model_alias",
        "summary": "The version an alias names now (for edge mirrors)",
        "parameters": [
            _NAME,
            {"name": "alias", "in": "path", "required": True, "schema": {"type": "string"}},
        ],
        "responses": {
            "200": {
                "description": "The version, its file's hash, size and path.",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/MirroredVersion"}}
                },
            },
            "401": _error(_UNAUTHORIZED),
            "403": _error(_SCOPE),
            "404": _error(_MISSING),
        },
    }


def _file_operation() -> dict[str, Any]:
    binary = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    return {
        "operationId": "model_version_file",
        "summary": "A version's .onnx file (for edge mirrors); resumable with Range",
        "parameters": [
            _NAME,
            {
                "name": "number",
                "in": "path",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
            },
            {
                "name": "Range",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "`bytes=N-` (or `bytes=N-M`): the rest of the file from N.",
            },
            {
                "name": "If-Range",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "The ETag the client's part came from; another sends it whole.",
            },
        ],
        "responses": {
            "200": {
                "description": "The whole file; `ETag` is its SHA-256.",
                "headers": {
                    "ETag": {"schema": {"type": "string"}},
                    "Content-Length": {"schema": {"type": "integer"}},
                },
                "content": binary,
            },
            "206": {
                "description": "The part asked for, with `Content-Range`.",
                "headers": {
                    "ETag": {"schema": {"type": "string"}},
                    "Content-Range": {"schema": {"type": "string"}},
                },
                "content": binary,
            },
            "401": _error(_UNAUTHORIZED),
            "403": _error(_SCOPE),
            "404": _error(_MISSING),
            "416": _error("A range that starts past the file's end."),
        },
    }


def _error(description: str, retry: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if retry:
        answer["headers"] = {
            "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}
        }
    return answer


def _probe(operation: str, summary: str, responses: dict[str, str]) -> dict[str, Any]:
    return {
        "get": {
            "operationId": operation,
            "summary": summary,
            "security": [],
            "responses": {status: {"description": text} for status, text in responses.items()},
        }
    }


def _bodies() -> dict[str, Any]:
    """The three bodies `/v1/detect` takes."""
    json_body = {
        "type": "object",
        "required": ["model", "images"],
        "properties": {
            **_PARAMETERS,
            "classes": {"type": "array", "items": {"type": "string"}},
            "images": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_IMAGES,
                "items": {
                    "oneOf": [
                        {
                            "type": "object",
                            "required": ["data"],
                            "properties": {"data": {"type": "string", "contentEncoding": "base64"}},
                            "additionalProperties": False,
                        },
                        {
                            "type": "object",
                            "required": ["url"],
                            "properties": {"url": {"type": "string"}},
                            "additionalProperties": False,
                        },
                    ]
                },
            },
        },
    }
    multipart = {
        "type": "object",
        "required": ["image"],
        "properties": {
            "image": {
                "type": "array",
                "items": {"type": "string", "contentMediaType": "application/octet-stream"},
            },
            **{name: value for name, value in _PARAMETERS.items()},
        },
    }
    return {
        "multipart/form-data": {"schema": multipart},
        "application/json": {"schema": json_body},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    }


def _detect() -> dict[str, Any]:
    query = [
        {"name": name, "in": "query", "required": False, "schema": value}
        for name, value in _PARAMETERS.items()
    ]
    return {
        "operationId": "detect",
        "summary": "Detect defects on one or more images",
        "parameters": query,
        "requestBody": {
            "required": True,
            "content": _bodies(),
        },
        "responses": {
            "200": {
                "description": "Each image's detections (or its own error), in order.",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Detections"}}
                },
            },
            "400": _error("A parameter or body that cannot be used."),
            "401": _error("No key, or a wrong, revoked or badly signed one."),
            "403": _error("The key lacks the scope, or a URL is refused."),
            "404": _error("The caller's organization has no such model version."),
            "413": _error("An image (or the body) is too large."),
            "415": _error("A body of another type."),
            "429": _error("Over the organization's quota.", retry=True),
            "503": _error("The organization's queue for this model is full.", retry=True),
        },
    }


def schema() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "DefectLab detection service",
            "version": __version__,
            "description": (
                "Detections from an organization's models. Authenticate with an organization "
                "API key (`Authorization: Bearer dlk_…`) or sign the request "
                f"(`Authorization: {signature.SCHEME} key=…, ts=…, nonce=…, signature=…` and "
                f"`{signature.BODY_HEADER}`). Parameters go in the query string, or in the "
                "multipart form or JSON body (not both for one parameter)."
            ),
        },
        "components": {
            "schemas": {"Error": _ERROR, "Detections": _ANSWER, "MirroredVersion": _MIRRORED},
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "dlk_… key"},
                "signed": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": f"{signature.SCHEME}: see the service's documentation.",
                },
            },
        },
        "security": [{"apiKey": []}, {"signed": []}],
        "paths": {
            "/v1/detect": {"post": _detect()},
            **_mirror_paths(),
            "/healthz": _probe("healthz", "The process answers", {"200": "Alive."}),
            "/readyz": _probe(
                "readyz",
                "Ready: its models loaded and warm, its database answering",
                {"200": "Ready.", "503": "Not yet, or not any more."},
            ),
            "/metrics": _probe("metrics", "Prometheus metrics", {"200": "Prometheus text format."}),
        },
    }
