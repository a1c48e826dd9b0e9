"""Operations endpoints (health, readiness, metrics, docs, OpenAPI) and the cross-cutting HTTP
behaviour of both APIs (request ids, JSON 404/405)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families
from tortoise import connections

from app.auth import service as keys
from app.config import Settings
from rest_compat.table import ROUTES
from tests.conftest import TEST_REDIS_URL, make_product, requires_redis

GENERATED_REQUEST_ID = re.compile(r"^req_[0-9a-f]{24}$")
CLOSED_REDIS_PORT_URL = "redis://127.0.0.1:1/0"


# --- health and readiness ---------------------------------------------------------------------


async def test_healthz_needs_no_key(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "ok"}


async def test_readyz_checks_the_database(client):
    response = await client.get("/readyz")
    assert response.status_code == 200
    # Embedded mode (no redis_url): there is no Redis to check.
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "migrations": "ok"}}


async def test_readyz_is_503_when_the_database_fails(client, monkeypatch):
    connection = connections.get("default")

    async def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError("database is down")

    monkeypatch.setattr(connection, "execute_query", refuse)
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "error: ConnectionRefusedError"},
    }


async def test_readyz_gives_up_on_a_database_that_does_not_answer(client, monkeypatch):
    from app import main

    connection = connections.get("default")

    async def hang(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(30)

    monkeypatch.setattr(main, "READY_TIMEOUT", 0.1)
    monkeypatch.setattr(connection, "execute_query", hang)
    started = time.perf_counter()
    response = await client.get("/readyz")
    assert time.perf_counter() - started < 5
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "error: TimeoutError"}


async def test_readyz_names_migrations_the_database_lacks(client, monkeypatch):
    from app import db

    shipped = db.known_migrations()
    monkeypatch.setattr(db, "known_migrations", lambda: [*shipped, "0099_next_release"])
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {
            "database": "ok",
            "migrations": "pending: 0099_next_release (run `syncauction migrate`)",
        },
    }


async def _readyz_of_a_new_app(settings: Settings) -> httpx.Response:
    """Start an application on `settings` and ask it /readyz."""
    from app.main import create_app

    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/readyz")


async def test_an_unmigrated_database_is_not_ready_and_says_why(tmp_path, caplog):
    """Production does not migrate at start-up: a release started before `syncauction migrate`
    says so at start-up and on /readyz, instead of looking ready and failing every request."""
    import logging

    from app import db
    from tests.conftest import make_settings

    settings = make_settings(f"sqlite://{tmp_path / 'empty.sqlite3'}", tmp_path / "data")
    with caplog.at_level(logging.ERROR, logger="syncauction"):
        response = await _readyz_of_a_new_app(settings)
    assert response.status_code == 503
    every = ", ".join(db.known_migrations())
    assert response.json()["checks"] == {
        "database": "ok",
        "migrations": f"pending: {every} (run `syncauction migrate`)",
    }
    [logged] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert logged.startswith(f"the database lacks {len(db.known_migrations())} migration(s)")


async def test_readyz_is_503_when_redis_is_unreachable(client, settings, monkeypatch):
    """Redis going away after start-up. (Starting with an unreachable Redis cannot be tested
    through the app: the lifespan connects the job queue and the event bus, and fails first.)
    The app started embedded; pointing its settings at a closed port is what the readiness
    check then sees."""
    monkeypatch.setattr(settings, "redis_url", CLOSED_REDIS_PORT_URL)
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "migrations": "ok", "redis": "error: ConnectionError"},
    }


@pytest.fixture
async def redis_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app in distributed mode: real Redis for jobs, the event bus and rate limits."""
    from app.main import create_app

    keys.forget_cached_principals()
    application = create_app(settings.model_copy(update={"redis_url": TEST_REDIS_URL}))
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


@requires_redis
async def test_readyz_checks_redis_when_configured(redis_client):
    response = await redis_client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "redis": "ok"},
    }


# --- metrics ------------------------------------------------------------------------------------


def _request_counts(text: str) -> dict[tuple[str, str, str], float]:
    families = {f.name: f for f in text_string_to_metric_families(text)}
    family = families["syncauction_http_requests"]  # the parser drops the `_total` suffix
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for s in family.samples
        if s.name == "syncauction_http_requests_total"
    }


async def test_metrics_count_requests_by_route_template(client, tenant):
    product = await make_product(tenant)
    for _ in range(2):
        response = await client.get(f"/v1/products/{product.id}", headers=tenant.headers())
        assert response.status_code == 200
    assert (
        await client.get("/v1/products/prod_doesnotexist", headers=tenant.headers())
    ).status_code == 404
    assert (await client.get("/v1/products", headers=tenant.headers())).status_code == 200

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    counts = _request_counts(response.text)
    assert counts[("GET", "/v1/products/{id}", "200")] == 2
    assert counts[("GET", "/v1/products/{id}", "404")] == 1
    assert counts[("GET", "/v1/products", "200")] == 1
    assert "syncauction_http_request_duration_seconds_bucket" in response.text
    # Ids never become label values.
    assert product.id not in response.text
    assert "prod_doesnotexist" not in response.text


async def test_metrics_labels_stay_bounded_for_unknown_paths_and_methods(client, tenant):
    """Each distinct raw path as a label would grow the registry without bound (scanners,
    typos, 401s for random paths): unknown routes and methods share the label `other`."""
    probes = [
        ("GET", "/v1/nope", tenant.headers(), 404),
        ("GET", "/v1/wp-admin/setup.php", {}, 401),
        ("GET", "/v1/products/x/y", tenant.headers(), 404),
        ("GET", "/.env", {}, 404),
        ("PROPFIND", "/v1/products", tenant.headers(), 405),
    ]
    for method, path, headers, status in probes:
        assert (await client.request(method, path, headers=headers)).status_code == status
    text = (await client.get("/metrics")).text
    counts = _request_counts(text)
    assert counts[("GET", "other", "404")] == 3
    assert counts[("GET", "other", "401")] == 1
    assert counts[("other", "/v1/products", "405")] == 1
    for _, path, _, _ in probes[:4]:
        assert f'route="{path}"' not in text
    assert "PROPFIND" not in text
    routes = {route for _, route, _ in counts}
    assert routes <= {"other", "/v1/products"}


# --- request ids ----------------------------------------------------------------------------------


async def _api_responses(client, tenant, headers: dict[str, str]) -> list[httpx.Response]:
    product = await make_product(tenant)
    auth = {**tenant.headers(), **headers}
    return [
        await client.get("/v1/products", headers=auth),
        await client.get(f"/v1/products/{product.id}", headers=auth),
        await client.put(f"/v1/products/{product.id}", json={"price": -1}, headers=auth),
        await client.get("/v1/products", headers=headers),  # 401, answered by the gateway
        await client.get("/v1/nope", headers=auth),
        await client.delete(f"/v1/products/{product.id}", headers=auth),
        await client.get("/v1/openapi.json", headers=headers),
        await client.post("/graphql", json={"query": "{ me { id } }"}, headers=auth),
        await client.post("/graphql", json={"query": "{ me { id "}, headers=auth),
        await client.post("/graphql", json={"query": ""}, headers=auth),
        await client.post("/graphql", json={"query": "{ me { id } }"}, headers=headers),
    ]


async def test_every_api_response_has_a_request_id(client, tenant):
    responses = await _api_responses(client, tenant, {})
    assert [r.status_code for r in responses] == [
        200,
        200,
        400,
        401,
        404,
        405,
        200,
        200,
        200,
        400,
        401,
    ]
    ids = [r.headers.get("x-request-id") for r in responses]
    assert all(i and GENERATED_REQUEST_ID.match(i) for i in ids), ids
    assert len(set(ids)) == len(ids)


async def test_a_sane_incoming_request_id_is_echoed(client, tenant):
    incoming = "lb-7f3a:9c.2_x"
    responses = await _api_responses(client, tenant, {"X-Request-Id": incoming})
    assert [r.headers["x-request-id"] for r in responses] == [incoming] * len(responses)


@pytest.mark.parametrize(
    "incoming", ["x" * 65, "has space", "<script>", "a\\b", "semi;colon", "é".encode(), ""]
)
async def test_an_unsafe_incoming_request_id_is_replaced(client, tenant, incoming):
    response = await client.get(
        "/v1/products", headers={**tenant.headers(), "X-Request-Id": incoming}
    )
    assert response.status_code == 200
    assert GENERATED_REQUEST_ID.match(response.headers["x-request-id"])


def test_text_logs_escape_control_characters_a_client_sent():
    """`%00` and `%0a` in a path arrive decoded: a text log line must stay one line."""
    import logging

    from app.logging import TextFormatter, request_id_var

    record = logging.LogRecord(
        "syncauction.http", logging.INFO, __file__, 1, "%s %s %s", None, None
    )
    record.args = ("GET", "/v1/stores/\x00\nERROR syncauction: forged\u2028\x85", 404)
    record.created = 1795844668.25  # 2026-11-28T05:44:28.250Z
    token = request_id_var.set("req_0123456789abcdef01234567")
    try:
        line = TextFormatter().format(record)
    finally:
        request_id_var.reset(token)
    assert line == (
        "2026-11-28T05:44:28.250Z INFO syncauction.http req_0123456789abcdef01234567: "
        "GET /v1/stores/\\x00\\x0aERROR syncauction: forged\\u2028\\x85 404"
    )
    assert (
        TextFormatter()
        .format(record)
        .startswith(
            "2026-11-28T05:44:28.250Z INFO syncauction.http: GET"  # outside a request: no id
        )
    )


# --- JSON errors for routing -------------------------------------------------------------------


async def test_unknown_v1_route_is_a_json_404(client, tenant):
    response = await client.get("/v1/nope", headers=tenant.headers())
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": {
            "type": "not_found",
            "code": "unknown_route",
            "message": "Unrecognized request URL (GET /v1/nope).",
            "param": None,
        }
    }


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/products/"), ("PUT", "/v1/stores/")])
async def test_a_trailing_slash_is_a_json_404_not_a_redirect(client, tenant, method, path):
    response = await client.request(method, f"{path}?limit=1", headers=tenant.headers())
    assert response.status_code == 404
    assert "location" not in response.headers
    error = response.json()["error"]
    assert (error["code"], error["message"]) == (
        "unknown_route",
        f"Unrecognized request URL ({method} {path}).",
    )


async def test_unknown_v1_route_without_a_key_is_401_first(client):
    response = await client.get("/v1/nope")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"


async def test_wrong_method_is_a_json_405_with_allow(client, tenant):
    response = await client.delete("/v1/products/x", headers=tenant.headers())
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": {
            "type": "invalid_request",
            "code": "method_not_allowed",
            "message": "Method DELETE is not allowed on /v1/products/x.",
            "param": None,
        }
    }
    assert {m.strip() for m in response.headers["allow"].split(",")} >= {"GET", "PUT"}
    assert "DELETE" not in response.headers["allow"]


# --- OpenAPI and docs -----------------------------------------------------------------------------

DOCUMENTED = {
    ("get", "/v1/products"),
    ("get", "/v1/products/{id}"),
    ("put", "/v1/products/{id}"),
    ("get", "/v1/stores"),
    ("get", "/v1/stores/{id}"),
    ("put", "/v1/stores/{id}"),
    ("get", "/v1/pricing-rules"),
    ("post", "/v1/pricing-rules"),
    ("put", "/v1/pricing-rules/{id}"),
    ("delete", "/v1/pricing-rules/{id}"),
    ("get", "/v1/sync/status"),
    ("post", "/v1/sync/trigger"),
    ("get", "/v1/sync/history"),
    ("get", "/v1/webhooks"),
    ("post", "/v1/webhooks"),
    ("put", "/v1/webhooks/{id}"),
    ("post", "/v1/webhooks/{id}/test"),
}


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"dangling $ref {ref}"
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


async def test_openapi_documents_exactly_the_route_table(client, settings):
    response = await client.get("/v1/openapi.json")  # no key needed
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": settings.base_url}]
    operations = {(method, path) for path, item in document["paths"].items() for method in item}
    assert operations == {(route.method.lower(), route.path) for route in ROUTES}
    assert operations >= DOCUMENTED
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `sa_live_…` (live) or `sa_test_…` (sandbox).",
    }
    operation_ids = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            operation_ids.append(operation["operationId"])
            assert operation["security"] == [{"bearerAuth": []}], where
            route = next(r for r in ROUTES if (r.method.lower(), r.path) == (method, path))
            success = str(route.status_code)
            assert success in ("200", "201", "202"), where
            assert {success, "401", "404", "429"} <= set(operation["responses"]), where
            if method == "post":
                assert "409" in operation["responses"], where
            assert operation["summary"] and operation["description"], where
            path_params = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert path_params == set(re.findall(r"{(\w+)}", path)), where
            if method == "put":
                assert operation["requestBody"]["required"] is True, where
            if route.body is not None:
                assert operation["requestBody"]["required"] is not route.body_optional, where
    assert len(set(operation_ids)) == len(operation_ids)
    listing = {p["name"] for p in document["paths"]["/v1/products"]["get"]["parameters"]}
    assert {"limit", "cursor", "status", "metal", "search"} <= listing


async def test_openapi_refs_all_resolve(client):
    document = (await client.get("/v1/openapi.json")).json()
    refs = _refs(document)
    assert "#/components/schemas/ProductObject" in refs
    for ref in refs:
        _resolve(document, ref)
    # The status filter of the product list points at the enum, not at a `$defs` that the
    # OpenAPI document does not have.
    [status] = [
        p for p in document["paths"]["/v1/products"]["get"]["parameters"] if p["name"] == "status"
    ]
    [enum_ref] = _refs(status["schema"])
    assert _resolve(document, enum_ref)["enum"] == ["active", "draft", "archived", "sold"]


def _allows_null(document: dict[str, Any], schema: dict[str, Any]) -> bool:
    if "$ref" in schema:
        return _allows_null(document, _resolve(document, schema["$ref"]))
    if schema.get("type") == "null":
        return True
    return any(_allows_null(document, option) for option in schema.get("anyOf", []))


async def test_openapi_says_null_exactly_where_a_body_takes_it(client):
    """A client generated from the document must not send a `null` the API refuses, nor be
    told a field cannot be cleared when it can."""
    from pydantic import ValidationError

    document = (await client.get("/v1/openapi.json")).json()
    checked = 0
    for route in ROUTES:
        if route.body is None:
            continue
        operation = document["paths"][route.path][route.method.lower()]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        properties = _resolve(document, body["$ref"])["properties"]
        for name, schema in properties.items():
            try:
                route.body[1].model_validate_json(orjson.dumps({name: None}), strict=True)
                takes_null = True
            except ValidationError as exc:
                takes_null = all(error["loc"][:1] != (name,) for error in exc.errors())
            assert _allows_null(document, schema) == takes_null, (route.path, name)
            checked += 1
    assert checked > 40
    # A merchant sets `active`, `draft` or `archived`; `sold` is the sync's.
    changes = _resolve(document, "#/components/schemas/ProductChanges")
    assert changes["properties"]["status"]["enum"] == ["active", "draft", "archived"]


async def test_openapi_names_the_headers_the_responses_carry(client, tenant):
    document = (await client.get("/v1/openapi.json")).json()
    responses = document["paths"]["/v1/products/{id}"]["get"]["responses"]
    cases = {
        "404": await client.get("/v1/products/prod_x", headers=tenant.headers()),
        "401": await client.get("/v1/products/prod_x"),
        "405": await client.delete("/v1/products/prod_x", headers=tenant.headers()),
    }
    for status, response in cases.items():
        assert response.status_code == int(status)
        documented = {name.lower() for name in responses[status]["headers"]}
        assert documented <= set(response.headers), (status, documented - set(response.headers))
    assert "Retry-After" in responses["429"]["headers"]
    post = document["paths"]["/v1/pricing-rules"]["post"]["responses"]["201"]["headers"]
    assert "Idempotent-Replayed" in post


async def test_docs_serve_swagger_ui_locally(client):
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert '<script src="/docs/static/swagger-ui-bundle.js"></script>' in html
    assert '"/v1/openapi.json"' in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "no CDN or remote asset"
    for asset in ("/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-ui.css"):
        static = await client.get(asset)
        assert static.status_code == 200, asset
        assert len(static.content) > 1000
    assert "SwaggerUIBundle" in (await client.get("/docs/static/swagger-ui-bundle.js")).text


async def test_every_log_line_of_a_request_has_its_id_and_the_duration_counts_auth(
    client, tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Authentication runs before the handler: its log lines carry the request's id too, and
    the access line's duration includes it."""
    import asyncio
    import logging

    from app.auth import gateway
    from app.logging import request_id_var

    seen: list[tuple[str, str | None, Any]] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.getMessage(), request_id_var.get(), record.__dict__))

    async def database_gone(token: str) -> Any:
        await asyncio.sleep(0.05)
        raise ConnectionError("the database is unreachable")

    monkeypatch.setattr(gateway, "authenticate_api_key", database_gone)
    capture = Capture()
    logger = logging.getLogger("syncauction")
    level = logger.level
    logger.addHandler(capture)
    logger.setLevel(logging.INFO)
    try:
        response = await client.get(
            "/v1/products", headers={**tenant.headers(), "X-Request-Id": "trace-abc-123"}
        )
    finally:
        logger.removeHandler(capture)
        logger.setLevel(level)
    assert response.status_code == 503
    assert response.headers["x-request-id"] == "trace-abc-123"
    failure = [entry for entry in seen if entry[0] == "authentication backend unavailable"]
    assert [request_id for _, request_id, _ in failure] == ["trace-abc-123"]
    [access] = [fields for message, _, fields in seen if message == "GET /v1/products 503"]
    assert access["duration_ms"] >= 50
    assert request_id_var.get() is None  # reset once the request is over


async def test_a_database_not_up_yet_does_not_stop_the_start(tmp_path, caplog):
    """Start order is not guaranteed (compose, Kubernetes): the server starts, /readyz says
    the database is unavailable, and the start-up migration check only warns."""
    import logging

    from tests.conftest import make_settings

    settings = make_settings("postgres://postgres@127.0.0.1:1/not_up_yet", tmp_path / "data")
    with caplog.at_level(logging.WARNING, logger="syncauction"):
        response = await _readyz_of_a_new_app(settings)
    assert response.status_code == 503
    assert response.json()["checks"]["database"].startswith("error: ")
    assert "could not check the database's migrations at start-up: ConnectionRefusedError" in [
        r.getMessage() for r in caplog.records
    ]
