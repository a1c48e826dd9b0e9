"""Serve one benchmark target with uvicorn on a loopback port.

    python bench/_server.py full --port 8001 --database-url postgres://... --redis-url redis://...
    python bench/_server.py full --no-rate-limit ...
    python bench/_server.py bare --port 8002 --database-url postgres://...

`full` is the whole application (`create_app(Settings(...))`: gateway, auth, rate limiter,
route table, Tortoise). With `--limiter-switch` it also serves requests that carry
`X-Bench-Limiter: off` through a gateway without the rate limiter, so B2 compares the limiter
on and off in one process. `bare` is a plain Starlette app whose one endpoint reads the same row
with a raw asyncpg pool (the same size as Tortoise's default, and the application's reset
setting) and returns it as JSON.
Both use the same uvicorn settings (loop and HTTP implementation `auto`, log level warning).
With `--workers` > 1 the app is built by a factory in each worker, configured through the
`BENCH_*` environment variables this script sets.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SECRET = "bench-secret-key-0123456789abcdef0123456789"
POOL_MIN, POOL_MAX = 1, 5  # Tortoise's asyncpg defaults (minsize=1, maxsize=5)
PRODUCT_SQL = "SELECT * FROM products WHERE id = $1"


# A request carrying this header goes through a second gateway with the rate limiter off
# (`full --limiter-switch`); see `full_app`.
LIMITER_OFF_HEADER = (b"x-bench-limiter", b"off")


def full_app() -> Any:
    from app.auth.gateway import ApiGateway
    from app.config import Settings
    from app.main import create_app

    settings = Settings(
        env="development",
        database_url=os.environ["BENCH_DATABASE_URL"],
        redis_url=os.environ.get("BENCH_REDIS_URL") or None,
        secret_key=SECRET,
        auto_migrate=False,
        demo=False,
        log_level="WARNING",
        rate_limit_enabled=os.environ.get("BENCH_RATE_LIMIT", "1") == "1",
    )
    app = create_app(settings)
    if os.environ.get("BENCH_LIMITER_SWITCH") != "1":
        return app
    # The limiter on and off in one process: the application behind two gateways, one built
    # exactly as `rate_limit_enabled=False` builds it. Two processes of the same code differ
    # by several percent for their whole life (memory layout), as much as the limiter costs;
    # one process for both halves of B2 leaves only the limiter between them.
    without = ApiGateway(
        app.app,
        settings=settings.model_copy(update={"rate_limit_enabled": False}),
        limiter=None,
        metrics=app.metrics,
    )

    async def switch(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and LIMITER_OFF_HEADER in scope["headers"]:
            await without(scope, receive, send)
        else:
            await app(scope, receive, send)

    return switch


async def _keep_session(connection: Any) -> None:
    """No reset query on release (asyncpg still rolls back a transaction left open)."""


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(type(value).__name__)


def bare_app() -> Any:
    import asyncpg
    import orjson
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    dsn = os.environ["BENCH_DATABASE_URL"].replace("postgres://", "postgresql://", 1)
    pools: list[asyncpg.Pool] = []

    async def init(connection: asyncpg.Connection) -> None:
        await connection.set_type_codec(
            "jsonb",
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The application's pool setting (`app.db._keep_session`): an idle connection goes
        # back without asyncpg's session-reset query. Left at asyncpg's default, the baseline
        # would make a second round trip per request that the application does not.
        pool = await asyncpg.create_pool(
            dsn, min_size=POOL_MIN, max_size=POOL_MAX, init=init, reset=_keep_session
        )
        pools.append(pool)
        try:
            yield
        finally:
            await pool.close()

    async def product(request: Request) -> Response:
        row = await pools[0].fetchrow(PRODUCT_SQL, request.path_params["id"])
        if row is None:
            return Response(b'{"error": "not found"}', 404, media_type="application/json")
        body = orjson.dumps({"data": dict(row)}, default=_default)
        return Response(body, media_type="application/json")

    async def healthz(request: Request) -> Response:
        return Response(b'{"status": "ok"}', media_type="application/json")

    return Starlette(
        routes=[Route("/v1/products/{id}", product), Route("/healthz", healthz)],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["full", "bare"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--no-rate-limit", action="store_true")
    parser.add_argument(
        "--limiter-switch",
        action="store_true",
        help="serve requests with `X-Bench-Limiter: off` with the rate limiter off",
    )
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    os.environ["BENCH_DATABASE_URL"] = args.database_url
    os.environ["BENCH_REDIS_URL"] = args.redis_url
    os.environ["BENCH_RATE_LIMIT"] = "0" if args.no_rate_limit else "1"
    os.environ["BENCH_LIMITER_SWITCH"] = "1" if args.limiter_switch else "0"
    # Per-request logs would dominate a benchmark; the app and uvicorn both log at WARNING.
    os.environ["SYNCAUCTION_LOG_LEVEL"] = "WARNING"

    import uvicorn

    factory = full_app if args.kind == "full" else bare_app
    options: dict[str, Any] = {"host": "127.0.0.1", "port": args.port, "log_level": "warning"}
    if args.workers > 1:
        uvicorn.run(
            f"_server:{factory.__name__}",
            factory=True,
            workers=args.workers,
            app_dir=str(Path(__file__).parent),
            **options,
        )
    else:
        uvicorn.run(factory(), **options)


if __name__ == "__main__":
    main()
