"""The OpenAPI document as the kernel answers: every route's error answers in the kernel's error shape.

FastAPI documents only a 422 of its own shape (``detail`` as a list). The kernel answers every error as
``{"detail": {"code", "message", ...}}`` (``errors.py``), and a route can answer more than 422: the
kernel's middleware and dependencies add answers to every route, the kernel's and the plugins'. They are
derived here from what the route is, not listed by hand, so a new route (a plugin's included) is
documented as it is mounted:

- every ``/api/`` route: 400 (unreadable request), 404, 422 (the validation layer and pydantic),
  429 (rate limits), 503 (database or a breaker away, with ``Retry-After``), 500 (a bug);
- a route behind a credential (an OpenAPI ``security`` entry) or one that checks credentials itself
  (tag ``auth``: login, refresh, logout): 401 and 403;
- a route with a body: 409, 413 and 415; a create (201) whose body carries an ``idempotency_key``
  also answers 200, the replay of the original.

``tests/test_openapi.py`` checks it against the real answers (schemathesis' status-code and response
conformance checks) on both databases.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA_NAME = "Error"
ERROR_SCHEMA = {
    "title": ERROR_SCHEMA_NAME,
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "stable, machine-readable (docs/api.md)"},
                "message": {"type": "string", "description": "for people; may change"},
                "field": {
                    "type": ["string", "null"],
                    "description": "the input the error is about (with VALIDATION_ERROR: the first error's, dotted)",
                },
                "retry_after": {"type": "integer", "description": "seconds, with 429 and 503"},
                "errors": {
                    "type": "array",
                    "description": "with VALIDATION_ERROR: which inputs and why",
                    "items": {
                        "type": "object",
                        "properties": {
                            "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                            "msg": {"type": "string"},
                            "type": {"type": "string"},
                        },
                    },
                },
            },
            "additionalProperties": True,
        }
    },
}

# status -> (description, codes the kernel answers with it; docs/api.md has the meaning of each)
ERRORS: dict[int, tuple[str, tuple[str, ...]]] = {
    400: ("The request cannot be read", ("BAD_REQUEST", "MALFORMED_JSON")),
    401: ("No valid credential", ("UNAUTHORIZED", "INVALID_TOKEN", "TOKEN_EXPIRED", "INVALID_CREDENTIALS")),
    403: ("The caller may not do this", ("FORBIDDEN", "NOT_A_STATION")),
    404: ("No such resource", ("NOT_FOUND", "LOT_NOT_FOUND", "UNIT_NOT_FOUND", "PROCESS_NOT_FOUND")),
    409: ("Conflicts with the current state", ("CONFLICT", "LOT_CLOSED", "IDEMPOTENCY_CONFLICT")),
    413: ("The body is too large", ("PAYLOAD_TOO_LARGE",)),
    415: ("The body's media type is not the one this route reads", ("UNSUPPORTED_MEDIA_TYPE",)),
    422: ("An input is missing, malformed or out of range", ("VALIDATION_ERROR",)),
    429: ("Over the rate budget; retry after `retry_after` seconds", ("RATE_LIMITED",)),
    500: ("A bug; the request id finds it in the logs", ("INTERNAL_ERROR",)),
    503: ("A dependency is away; retry after `retry_after` seconds", ("SERVICE_UNAVAILABLE",)),
}
ALWAYS = (400, 404, 422, 429, 500, 503)
WITH_CREDENTIAL = (401, 403)
WITH_BODY = (409, 413, 415)
RATE_HEADERS = {
    "X-RateLimit-Limit": "requests per minute in this caller's budget",
    "X-RateLimit-Remaining": "requests left in the sliding window",
    "X-RateLimit-Reset": "seconds until the current window ends",
}


def error_statuses(path: str, operation: dict) -> list[int]:
    """The error statuses a route can answer, from what it is (see the module docstring)."""
    if not path.startswith("/api/"):
        return [500]
    statuses = list(ALWAYS)
    if operation.get("security") or "auth" in operation.get("tags", ()):
        statuses += WITH_CREDENTIAL
    if "requestBody" in operation:
        statuses += WITH_BODY
    return sorted(statuses)


def _response(status: int) -> dict[str, Any]:
    description, codes = ERRORS[status]
    listed = ", ".join(f"`{c}`" for c in codes)
    response: dict[str, Any] = {
        "description": f"{description} (`detail.code`: {listed}, or a more specific code in docs/api.md)",
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}}},
    }
    if status in (429, 503):
        response["headers"] = {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}}
    return response


def _takes_idempotency_key(operation: dict, components: dict) -> bool:
    """True when the JSON body has an ``idempotency_key``: a retry answers 200 with the original."""
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        schema = components.get(ref.rsplit("/", 1)[1], {})
    return "idempotency_key" in schema.get("properties", {})


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """``app.openapi`` for the kernel: FastAPI's document with the kernel's error answers."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes, tags=app.openapi_tags
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components[ERROR_SCHEMA_NAME] = ERROR_SCHEMA
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in ("get", "put", "post", "patch", "delete", "head", "options"):
                continue
            responses = operation.setdefault("responses", {})
            for status in error_statuses(path, operation):
                declared = responses.get(str(status), {})
                responses[str(status)] = {**_response(status), **{k: v for k, v in declared.items() if k != "content"}}
            if "201" in responses and "200" not in responses and _takes_idempotency_key(operation, components):
                responses["200"] = {
                    **responses["201"],
                    "description": "A replay: the same idempotency key and body again; the original answer",
                }
            for status, answer in responses.items():  # the route's own error answers have the same shape
                if status[0] in "45" and "content" not in answer:
                    answer["content"] = _response(500)["content"]
            if path.startswith("/api/") and not path.startswith("/api/v1/health"):
                for status, answer in responses.items():
                    if status.startswith("2"):
                        headers = answer.setdefault("headers", {})
                        for name, meaning in RATE_HEADERS.items():
                            headers[name] = {"description": meaning, "schema": {"type": "integer"}}
    app.openapi_schema = schema
    return schema
