"""The ASGI application: `create_app(settings)` wires the REST `/v1` table, GraphQL, docs and
operations endpoints behind the API gateway, with one lifespan that opens and closes the
database, the event bus, the job queue and the rate limiter."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from cross_web import HTTPException as GraphQLHTTPException
from graphql import GraphQLError, OperationDefinitionNode, OperationType
from graphql import parse as parse_graphql
from openapi_ui_bundles.swagger_ui import static_path as swagger_static
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from tortoise import connections

from app import db, runtime
from app.accounts.demo import ensure_demo
from app.auth.gateway import ApiGateway
from app.auth.service import authenticate_api_key
from app.config import Settings, get_settings
from app.errors import AuthenticationFailed, DomainError, NotFound
from app.events.bus import make_bus, set_bus
from app.events.service import flush_published_marks
from app.idempotency import service as idempotency
from app.jobs import ArqQueue
from app.logging import configure_logging
from app.metrics import Metrics
from app.ratelimit import RateLimiter
from app.webhooks.delivery import close_client as close_webhook_client
from rest_compat.handler import MethodNotAllowed, starlette_routes
from rest_compat.openapi import build_openapi
from rest_compat.table import ROUTES
from rest_compat.table import Route as TableRoute
from schema.root import MAX_TOKENS, build_schema, format_error

logger = logging.getLogger("syncauction")

# Seconds /readyz waits for the database and for Redis before calling either unavailable.
READY_TIMEOUT = 2.0


def _json(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code, headers, media_type="application/json")


# Strawberry answers requests it cannot run (no query, body not JSON, a mutation over GET,
# an unknown `operationName`) with a plain-text body; send a coded error instead.
_GRAPHQL_HTTP_ERROR_CODES = {404: "unknown_route", 405: "method_not_allowed"}


def _graphql_error(message: str, code: str, status: int) -> Response:
    return _json(
        {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}, status
    )


@functools.lru_cache(maxsize=256)  # clients send the same few documents again and again
def _operations(query: str) -> tuple[tuple[str | None, OperationType], ...]:
    """Each operation's name and type, in document order (none if the query does not parse)."""
    try:
        # Bounded like the schema's own token limit: a huge document fails fast here, and
        # Strawberry then answers it with `query_too_complex`.
        document = parse_graphql(query, no_location=True, max_tokens=MAX_TOKENS)
    except GraphQLError:
        return ()
    return tuple(
        (definition.name.value if definition.name else None, definition.operation)
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
    )


def _operation_type(data: Any) -> OperationType | None:
    """The type of the request's chosen operation; None when it cannot be told (Strawberry
    reports parse failures and unknown names itself)."""
    query = data.get("query")
    if not isinstance(query, str):
        return None
    name = data.get("operationName")
    # Cached for documents of ordinary size; a huge one (comments, padding) is parsed uncached.
    parse = _operations if len(query) <= 20_000 else _operations.__wrapped__
    for operation_name, operation in parse(query):
        if name is None or operation_name == name:
            return operation
    return None


class GraphQLApp(GraphQL):
    """Strawberry's ASGI view with our principal in the context and coded errors."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive=receive)
        try:
            data = await self._check_body(request)
            key = idempotency.single_key(request.headers.getlist("idempotency-key"))
            chosen = _operation_type(data if data is not None else request.query_params)
            if chosen is OperationType.SUBSCRIPTION:
                raise GraphQLHTTPException(
                    400,
                    "Subscriptions run over the websocket (graphql-transport-ws) at /graphql; "
                    "send queries and mutations over HTTP.",
                )
            if key is not None and data is not None and chosen is OperationType.MUTATION:
                response = await self._run_once(request, key)
            else:
                response = await self.run(request)
        except GraphQLHTTPException as exc:
            code = _GRAPHQL_HTTP_ERROR_CODES.get(exc.status_code, "invalid_request")
            response = _graphql_error(exc.reason, code, exc.status_code)
        except DomainError as exc:  # from the idempotency check: a reused or busy key
            response = _graphql_error(exc.message, exc.code, exc.status_code)
        await response(scope, receive, send)

    async def _run_once(self, request: Request, key: str) -> Response:
        """`Idempotency-Key` on a mutation: as on REST POSTs, the first response is replayed for
        24 hours and the same key with another body is a 409."""
        principal = getattr(request.state, "principal", None)
        if principal is None:
            return await self.run(request)
        body = await request.body()

        async def run() -> tuple[int, bytes]:
            response = await self.run(request)
            return response.status_code, bytes(response.body)

        status, content, replayed = await idempotency.run_once(
            principal,
            key=key,
            method="POST",
            path="/graphql",
            body=body,
            run=run,
        )
        headers = {"idempotent-replayed": "true"} if replayed else {}
        return Response(content, status, headers, media_type="application/json")

    @staticmethod
    async def _check_body(request: Request) -> dict[str, Any] | None:
        """A JSON body must be one object (Strawberry would fail on a string or a number).
        Returns it, or None when there is no JSON body to look at."""
        content_type = request.headers.get("content-type", "")
        if request.method != "POST" or not content_type.startswith("application/json"):
            return None
        try:
            data = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return None  # Strawberry answers this one itself, as a coded 400
        if not isinstance(data, dict):
            raise GraphQLHTTPException(400, "The body must be a JSON object.")
        return data

    async def get_context(self, request: Any, response: Any) -> dict[str, Any]:
        principal = (
            getattr(request.state, "principal", None) if request.scope["type"] == "http" else None
        )
        return {"request": request, "response": response, "principal": principal}

    async def process_result(self, request: Any, result: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"data": result.data}
        if result.errors:
            data["errors"] = [format_error(error) for error in result.errors]
        return data

    async def on_ws_connect(self, context: dict[str, Any]) -> Any:
        params = context.get("connection_params") or {}
        authorization = params.get("authorization") or params.get("Authorization") or ""
        scheme, _, token = str(authorization).partition(" ")
        try:
            if scheme.lower() != "bearer":
                raise AuthenticationFailed(
                    'Send {"authorization": "Bearer <key>"} in connection_init.'
                )
            context["principal"] = await authenticate_api_key(token.strip())
            # Kept in this connection's memory only: live streams re-check the key with it.
            context["api_key"] = token.strip()
        except AuthenticationFailed as exc:
            raise ConnectionRejectionError({"code": exc.code, "message": exc.message}) from None
        return None


SWAGGER_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SyncAuction API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/v1/openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>"""


def create_app(
    settings: Settings | None = None, *, extra_routes: list[TableRoute] | None = None
) -> Starlette:
    """Build the application. `extra_routes` lets tests add rows to the `/v1` table."""
    settings = settings or get_settings()
    table = [*ROUTES, *(extra_routes or [])]
    metrics = Metrics(route_templates=[route.path for route in table])
    limiter = RateLimiter(settings.redis_url) if settings.rate_limit_enabled else None
    openapi = orjson.dumps(build_openapi(table, server_url=settings.base_url))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        configure_logging(settings)
        rt = runtime.install(settings)
        if settings.should_migrate_at_startup:
            await db.migrate(settings.resolved_database_url)
        await db.init_orm(settings.resolved_database_url)
        rt.bus = make_bus(settings.redis_url)
        await rt.bus.start()
        set_bus(rt.bus)
        runner = None
        if settings.redis_url:
            rt.jobs = await ArqQueue.connect(settings.redis_url)
        else:
            from workers.runner import EmbeddedRunner

            runner = EmbeddedRunner()
            await runner.start()
            rt.jobs = runner.queue
        app.state.runtime = rt
        if settings.should_create_demo:
            demo = await ensure_demo(settings.data_dir)
            app.state.demo = demo
            synced = await _first_demo_sync(demo)
            _print_banner(settings, demo, synced)
        await db.report_pending_migrations(
            logger, "until then /readyz answers 503 and requests fail"
        )
        logger.info("started", extra={"mode": "embedded" if settings.embedded else "distributed"})
        try:
            yield
        finally:
            if runner is not None:
                await runner.close()
            elif rt.jobs is not None:
                await rt.jobs.close()
            with contextlib.suppress(Exception):  # unmarked events are published again later
                await flush_published_marks()
            await rt.bus.close()
            set_bus(None)
            await close_webhook_client()
            if limiter is not None:
                await limiter.close()
            await db.close_orm()
            logger.info("stopped")

    async def healthz(request: Request) -> Response:
        return _json({"status": "ok"})

    async def readyz(request: Request) -> Response:
        async def database() -> dict[str, str]:
            try:
                async with asyncio.timeout(READY_TIMEOUT):
                    await connections.get("default").execute_query("SELECT 1")
                    pending = await db.pending_migrations()
            except Exception as exc:
                return {"database": f"error: {type(exc).__name__}"}
            migrations = f"pending: {', '.join(pending)} (run `syncauction migrate`)"
            return {"database": "ok", "migrations": migrations if pending else "ok"}

        async def redis() -> dict[str, str]:
            from redis.asyncio import Redis

            try:
                client = Redis.from_url(
                    settings.redis_url,  # type: ignore[arg-type]
                    socket_connect_timeout=READY_TIMEOUT,
                    socket_timeout=READY_TIMEOUT,
                )
                try:
                    async with asyncio.timeout(READY_TIMEOUT):
                        await client.ping()
                finally:
                    await client.aclose()
            except Exception as exc:
                return {"redis": f"error: {type(exc).__name__}"}
            return {"redis": "ok"}

        # Side by side: the probe answers within READY_TIMEOUT (and a little), not twice that.
        results = await asyncio.gather(database(), *([redis()] if settings.redis_url else []))
        checks = {name: state for result in results for name, state in result.items()}
        ready = all(v == "ok" for v in checks.values())
        return _json(
            {"status": "ready" if ready else "unavailable", "checks": checks}, 200 if ready else 503
        )

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    async def openapi_endpoint(request: Request) -> Response:
        return Response(openapi, media_type="application/json")

    async def docs(request: Request) -> Response:
        return HTMLResponse(SWAGGER_HTML)

    graphql_app = GraphQLApp(
        build_schema(),
        graphql_ide="graphiql" if settings.is_development else None,
        allow_queries_via_get=True,
    )

    # The router tries routes in order, each a regular expression: API traffic first.
    routes = [
        Route("/v1/openapi.json", openapi_endpoint),
        *starlette_routes(table),
        Route("/graphql", graphql_app, methods=["GET", "POST"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        Route("/docs", docs),
        Mount("/docs/static", StaticFiles(directory=str(swagger_static)), name="docs-static"),
        *(
            # The built-in auction house, reachable for demos: `POST …/v1/_admin/advance`
            # (bearer `simulated-auction-house`) sells, reprices and adds lots.
            [Mount("/simulators/auction-house", app=_simulated_auction_house)]
            if settings.is_development
            else []
        ),
        WebSocketRoute("/graphql", graphql_app),
    ]

    async def domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)
        headers = {}
        if isinstance(exc, MethodNotAllowed):
            headers["allow"] = ", ".join(exc.allowed)
        return _json({"error": exc.to_dict()}, exc.status_code, headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            error: DomainError = NotFound(
                f"Unrecognized request URL ({request.method} {request.url.path}).",
                code="unknown_route",
            )
        elif exc.status_code == 405:
            error = MethodNotAllowed([])
            error.message = f"Method {request.method} is not allowed on {request.url.path}."
        else:
            error = DomainError(str(exc.detail))
            error.status_code = exc.status_code
        return _json({"error": error.to_dict()}, error.status_code, dict(exc.headers or {}))

    async def server_error(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error", exc_info=exc)
        body = {
            "error": {
                "type": "server",
                "code": "internal_error",
                "message": "Something went wrong on our side; it has been logged.",
                "param": None,
            }
        }
        return _json(body, 500)

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            DomainError: domain_error,
            HTTPException: http_error,
            Exception: server_error,
        },
    )
    # `/v1/products/` is not a documented route: a JSON 404, not a redirect to an absolute
    # http:// URL (which, behind a TLS proxy, would point at the wrong scheme).
    app.router.redirect_slashes = False
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.limiter = limiter
    return ApiGateway(app, settings=settings, limiter=limiter, metrics=metrics)  # type: ignore[return-value]


async def _simulated_auction_house(scope: Any, receive: Any, send: Any) -> None:
    from app.sync.connect import simulators

    await simulators().auction_house(scope, receive, send)


async def _first_demo_sync(demo: Any) -> list[Any]:
    """A new demo's first sync runs before serving, so its first `GET /v1/products` lists the
    simulated auction house's coins."""
    from app.accounts.models import Environment
    from app.sync.service import first_sync

    done = []
    for environment in (Environment.LIVE, Environment.SANDBOX):
        job = await first_sync(demo.account_id, environment)
        if job is not None:
            done.append(job)
    return done


def _print_banner(settings: Settings, demo: Any, synced: list[Any] = ()) -> None:
    base = settings.base_url
    lines = [
        "",
        "SyncAuction is running (development mode).",
        f"  API:          {base}/v1/products",
        f"  GraphQL IDE:  {base}/graphql",
        f"  API docs:     {base}/docs",
        f"  Demo account: {demo.account_id} (professional)",
        f"  Live key:     {demo.live_key}",
        f"  Sandbox key:  {demo.test_key}",
        *(
            f"  First sync:   {job.id} ({job.environment}) {job.status.value}: "
            f"{job.products_added} products listed in the demo WooCommerce store"
            for job in synced
        ),
        "",
        f'  curl -H "Authorization: Bearer {demo.live_key}" {base}/v1/products',
        "",
    ]
    print("\n".join(lines), flush=True)
