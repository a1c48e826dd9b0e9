"""OpenAPI 3.1 document generated from the route table."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from rest_compat.schemas import (
    DeletedObject,
    ErrorResponse,
    PricingRuleObject,
    ProductObject,
    StoreObject,
    SyncJobObject,
    SyncStatusObject,
    WebhookEndpointObject,
    WebhookTestResult,
)
from rest_compat.table import Route

OUTPUT_MODELS: dict[Any, type[BaseModel]] = {
    "product_json": ProductObject,
    "store_json": StoreObject,
    "pricing_rule_json": PricingRuleObject,
    "deleted_json": DeletedObject,
    "sync_job_json": SyncJobObject,
    "sync_status_json": SyncStatusObject,
    "webhook_endpoint_json": WebhookEndpointObject,
    "webhook_test_json": WebhookTestResult,
}

_ERRORS = {
    "400": "Invalid request (validation, malformed JSON, unknown parameter, bad cursor)",
    "401": "Missing or invalid API key",
    "403": "The key lacks the scope, or the plan lacks the feature",
    "404": "No such object in this account and environment",
    "405": "The path exists; the method does not (see Allow)",
    "413": "Body larger than 1 MiB",
    "429": "Rate limit exceeded (see Retry-After)",
}
# Every response of the API carries these.
_RATE_HEADERS = {
    "X-RateLimit-Limit": {"schema": {"type": "integer"}, "description": "Requests per minute."},
    "X-RateLimit-Remaining": {"schema": {"type": "integer"}, "description": "Left in the window."},
    "X-RateLimit-Reset": {
        "schema": {"type": "integer"},
        "description": "Unix seconds when the window next has room (its oldest request leaves).",
    },
    "X-Request-Id": {
        "schema": {"type": "string"},
        "description": "This request's id (yours, if you sent a sane one); quote it to support.",
    },
}
# And these on some statuses.
_STATUS_HEADERS: dict[str, dict[str, Any]] = {
    "401": {
        "WWW-Authenticate": {
            "schema": {"type": "string"},
            "description": 'Bearer realm="SyncAuction" (with error="invalid_token" for a bad key)',
        }
    },
    "405": {"Allow": {"schema": {"type": "string"}, "description": "The methods the path takes."}},
    "429": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
}
_REPLAYED = {
    "Idempotent-Replayed": {
        "schema": {"const": "true"},
        "description": "Present when this is the stored response to an Idempotency-Key.",
    }
}


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _query_parameters(route: Route, components: dict[str, Any]) -> list[dict[str, Any]]:
    params = []
    for model in route.query.values():
        # Nested models (enums) become components: a bare `#/$defs/…` would dangle here.
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            components[name] = definition
        for name, prop in schema.get("properties", {}).items():
            description = prop.pop("description", "")
            params.append(
                {
                    "name": name,
                    "in": "query",
                    "required": False,
                    "schema": prop,
                    "description": description,
                }
            )
    return params


def build_openapi(routes: list[Route], *, server_url: str) -> dict[str, Any]:
    components: dict[str, Any] = {}
    error_ref = _schema(ErrorResponse, components)
    paths: dict[str, Any] = {}
    for route in routes:
        output = OUTPUT_MODELS[route.output.__name__]
        item_ref = _schema(output, components)
        is_list = bool(route.query) and "page" in route.query
        if is_list:
            body_schema = {
                "type": "object",
                "properties": {
                    "object": {"const": "list"},
                    "data": {"type": "array", "items": item_ref},
                    "has_more": {"type": "boolean"},
                    "next_cursor": {"type": ["string", "null"]},
                },
                "required": ["object", "data", "has_more", "next_cursor"],
            }
        else:
            body_schema = {"type": "object", "properties": {"data": item_ref}, "required": ["data"]}
        operation: dict[str, Any] = {
            "operationId": route.operation_id,
            "summary": route.summary,
            "description": route.description or route.summary,
            "tags": [route.tag],
            "security": [{"bearerAuth": []}],
            "x-required-scope": route.scope,
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in re.findall(r"{(\w+)}", route.path)
            ]
            + _query_parameters(route, components),
            "responses": {
                str(route.status_code): {
                    "description": "OK",
                    "headers": {**_RATE_HEADERS, **(_REPLAYED if route.method == "POST" else {})},
                    "content": {"application/json": {"schema": body_schema}},
                },
                **{
                    status: {
                        "description": text,
                        "headers": {**_RATE_HEADERS, **_STATUS_HEADERS.get(status, {})},
                        "content": {"application/json": {"schema": error_ref}},
                    }
                    for status, text in _ERRORS.items()
                },
            },
        }
        if route.method == "POST":
            operation["responses"]["409"] = {
                "description": "Conflict: the Idempotency-Key was used with another body, or "
                "(sync trigger) a sync is already queued or running (`sync_job`)",
                "headers": _RATE_HEADERS,
                "content": {"application/json": {"schema": error_ref}},
            }
            operation["parameters"].append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 255},
                    "description": "Replays the first response for 24 h; 409 on a different body.",
                }
            )
        if route.body is not None:
            operation["requestBody"] = {
                "required": not route.body_optional,
                "content": {"application/json": {"schema": _schema(route.body[1], components)}},
            }
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "SyncAuction API",
            "version": "1",
            "description": "REST compatibility API. The GraphQL API at /graphql is the core.",
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key: `sa_live_…` (live) or `sa_test_…` (sandbox).",
                }
            },
        },
    }
