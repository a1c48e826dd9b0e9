"""Turns route-table rows into Starlette routes: one generic endpoint, no per-route handlers."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from app.errors import InvalidInput, from_validation_error, reject_nul
from app.idempotency import service as idempotency
from app.pagination import Page
from rest_compat.table import Route


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _parse_query(request: Request, route: Route) -> dict[str, BaseModel]:
    if not route.query and not request.scope["query_string"]:
        return {}  # nothing taken, nothing given
    items = request.query_params.multi_items()
    seen: set[str] = set()
    for key, _ in items:
        if key in seen:
            raise InvalidInput(f"Parameter {key} is given more than once.", param=key)
        seen.add(key)
    values = dict(items)
    reject_nul(values)
    owners = {name: kwarg for kwarg, model in route.query.items() for name in model.model_fields}
    unknown = sorted(set(values) - set(owners))
    if unknown:
        raise InvalidInput(
            f"Unknown parameter: {unknown[0]}.", code="unknown_parameter", param=unknown[0]
        )
    parsed = {}
    for kwarg, model in route.query.items():
        subset = {k: v for k, v in values.items() if owners[k] == kwarg}
        try:
            parsed[kwarg] = model.model_validate(subset)
        except ValidationError as exc:
            raise from_validation_error(exc) from None
    return parsed


async def _parse_body(body: bytes, model: type[BaseModel], *, optional: bool = False) -> BaseModel:
    if not body.strip() and optional:
        return model()
    if not body.strip():
        raise InvalidInput("A JSON object body is required.", code="invalid_json")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidInput("The body is not valid JSON.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidInput("The body must be a JSON object.", code="invalid_json")
    reject_nul(data)
    try:
        # Strict JSON validation: a field's JSON type must be its own (`"no"` is not a boolean,
        # `"5"` not an integer). Money also takes a numeric string, which keeps its exact digits.
        return model.model_validate_json(body, strict=True)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] == "json_invalid":  # e.g. nested deeper than the validator reads
            raise InvalidInput(
                f"The body could not be read: {first['msg']}.", code="invalid_json"
            ) from None
        raise from_validation_error(exc) from None


def serialize(route: Route, result: Any) -> dict[str, Any]:
    if isinstance(result, Page):
        return {
            "object": "list",
            "data": [route.output(item) for item in result.items],
            "has_more": result.has_more,
            "next_cursor": result.next_cursor,
        }
    return {"data": route.output(result)}


def build_endpoint(route: Route):  # type: ignore[no-untyped-def]
    async def endpoint(request: Request) -> Response:
        actor = request.state.principal
        actor.require(route.scope)
        # Every method but GET (and HEAD, served by GET) reads its body: a DELETE sent with
        # one is refused like any route that takes none, before it deletes anything.
        body = await request.body() if route.method != "GET" else b""
        args = list(request.path_params.values())

        async def run() -> tuple[int, bytes]:
            # Validation runs inside: with an Idempotency-Key, a 400 is replayed like any answer.
            kwargs: dict[str, Any] = dict(_parse_query(request, route))
            if route.body is not None:
                kwarg, model = route.body
                kwargs[kwarg] = await _parse_body(body, model, optional=route.body_optional)
            elif body.strip():
                raise InvalidInput("This endpoint takes no body.", code="unexpected_body")
            result = await route.call(actor, *args, **kwargs)
            return route.status_code, orjson.dumps(serialize(route, result))

        key = (
            idempotency.single_key(request.headers.getlist("idempotency-key"))
            if route.method == "POST"
            else None
        )
        if key is not None:
            status, content, replayed = await idempotency.run_once(
                actor,
                key=key,
                method=route.method,
                path=request.url.path,
                query=request.url.query,
                body=body,
                run=run,
            )
            headers = {"idempotent-replayed": "true"} if replayed else {}
            return Response(
                content, status_code=status, media_type="application/json", headers=headers
            )
        status, content = await run()
        return Response(content, status_code=status, media_type="application/json")

    endpoint.__name__ = route.operation_id
    return endpoint


def starlette_routes(routes: list[Route]) -> list[StarletteRoute]:
    """Group rows by path: one Starlette route per path, dispatching on method."""
    by_path: dict[str, dict[str, Route]] = {}
    for route in routes:
        by_path.setdefault(route.path, {})[route.method] = route
    result = []
    for path, methods in by_path.items():
        endpoints = {method: build_endpoint(route) for method, route in methods.items()}

        if "GET" in endpoints:
            endpoints["HEAD"] = endpoints["GET"]  # the server sends the headers, not the body

        async def dispatch(request: Request, endpoints=endpoints) -> Response:
            endpoint = endpoints.get(request.method)
            if endpoint is None:
                raise MethodNotAllowed(sorted(endpoints))
            return await endpoint(request)

        result.append(StarletteRoute(path, dispatch, methods=sorted(endpoints)))
    return result


class MethodNotAllowed(InvalidInput):
    """405: the path exists, the method does not (the `Allow` header lists what does)."""

    status_code = 405
    error_type = "invalid_request"
    default_code = "method_not_allowed"

    def __init__(self, allowed: list[str]) -> None:
        super().__init__(f"Method not allowed; this path accepts {', '.join(allowed)}.")
        self.allowed = allowed
