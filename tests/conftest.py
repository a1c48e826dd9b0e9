"""Shared fixtures. The API suite runs on SQLite everywhere and on PostgreSQL too where
SYNCAUCTION_TEST_DATABASE_URL is set (CI sets it); integration tests that need Redis skip with
the reason when SYNCAUCTION_TEST_REDIS_URL is unset."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app import db
from app.accounts import service as accounts
from app.accounts.models import Environment, Plan
from app.auth import service as keys
from app.auth.principal import Principal
from app.config import Settings

TEST_DATABASE_URL = os.environ.get("SYNCAUCTION_TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("SYNCAUCTION_TEST_REDIS_URL")
TEST_SECRET = "test-secret-key-0123456789abcdef0123456789"

requires_postgres = pytest.mark.skipif(
    not TEST_DATABASE_URL, reason="SYNCAUCTION_TEST_DATABASE_URL is not set (no PostgreSQL)"
)
requires_redis = pytest.mark.skipif(
    not TEST_REDIS_URL, reason="SYNCAUCTION_TEST_REDIS_URL is not set (no Redis)"
)

TABLES = [
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_endpoints",
    "listings",
    "sync_jobs",
    "sync_states",
    "idempotency_records",
    "events",
    "pricing_rules",
    "products",
    "stores",
    "api_keys",
    "accounts",
]


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file; each test gets a copy (migrating per test would be slow)."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    _run(db.migrate(f"sqlite://{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A fresh PostgreSQL database for this session, migrated once."""
    import asyncpg

    name = f"syncauction_test_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        conn = await asyncpg.connect(_asyncpg_dsn(TEST_DATABASE_URL))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    _run(create())
    url = _replace_database(TEST_DATABASE_URL, name)
    _run(db.migrate(url))
    yield url

    async def drop() -> None:
        conn = await asyncpg.connect(_asyncpg_dsn(TEST_DATABASE_URL))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    _run(drop())


def _asyncpg_dsn(url: str | None) -> str:
    assert url
    return url.replace("postgres://", "postgresql://", 1)


def _replace_database(url: str | None, name: str) -> str:
    assert url
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


async def _truncate(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        await conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=requires_postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "db.sqlite3"
        shutil.copy(sqlite_template, path)
        return f"sqlite://{path}"
    url = request.getfixturevalue("postgres_url")
    _run(_truncate(url))
    return url


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Embedded-mode development settings on an already migrated database, without the demo."""
    values: dict[str, Any] = {
        "env": "development",
        "data_dir": data_dir,
        "database_url": database_url,
        "redis_url": None,
        "secret_key": TEST_SECRET,
        "auto_migrate": False,
        "demo": False,
        "log_level": "WARNING",
    }
    return Settings(**{**values, **overrides})


@pytest.fixture(autouse=True)
def app_logs_reach_caplog(monkeypatch: pytest.MonkeyPatch) -> None:
    """The application's loggers stop at their own handler (stderr); in tests they also pass
    their records on to the root logger, where `caplog` sees them."""
    from app import main

    configure = main.configure_logging

    def configure_and_propagate(settings: Settings) -> None:
        configure(settings)
        logging.getLogger("syncauction").propagate = True

    monkeypatch.setattr(main, "configure_logging", configure_and_propagate)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "data", simulator_catalog_size=60)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    from app.main import create_app

    keys.forget_cached_principals()
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@dataclass
class Tenant:
    """An account with its keys, for tests. `live`/`test` are full secrets."""

    account_id: str
    plan: Plan
    live: str
    test: str | None
    live_read: str

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.live}"}

    def principal(self, environment: Environment = Environment.LIVE) -> Principal:
        from app.accounts.plans import rate_limit_for
        from app.auth.principal import expand_key_scopes

        return Principal(
            account_id=self.account_id,
            environment=environment,
            scopes=expand_key_scopes(["write"]),
            plan=self.plan,
            rate_limit=rate_limit_for(self.plan, None),
        )


async def make_tenant(plan: Plan = Plan.PROFESSIONAL, name: str = "Coin Shop") -> Tenant:
    account = await accounts.create_account(name=name, plan=plan)
    writable = plan is not Plan.STARTER
    live = await keys.create_key(
        account_id=account.id, mode="live", scopes=["read", "write"] if writable else ["read"]
    )
    read = await keys.create_key(account_id=account.id, mode="live", scopes=["read"])
    test = await keys.create_key(account_id=account.id, mode="test") if writable else None
    return Tenant(account.id, plan, live.secret, test.secret if test else None, read.secret)


@pytest.fixture
async def tenant(app: Any) -> Tenant:
    return await make_tenant()


@pytest.fixture
async def other_tenant(app: Any) -> Tenant:
    return await make_tenant(name="Rival Coins")


LOT_DEFAULTS: dict[str, Any] = {
    "title": "1921 Morgan Dollar MS65",
    "metal": "Silver",
    "grade": "MS65",
    "service": "PCGS",
    "year": 1921,
    "denomination": "$1",
    "cost": Decimal("374.35"),
    "price": Decimal("430.50"),
    "images": ["https://img.example/123456/obverse.jpg", "https://img.example/123456/reverse.jpg"],
}


async def make_product(
    tenant: Tenant,
    ha_lot: str = "123456",
    *,
    environment: Environment = Environment.LIVE,
    **fields: Any,
):
    from app.products import service

    lot = service.LotInput(ha_lot=ha_lot, **{**LOT_DEFAULTS, **fields})
    return await service.create_product(tenant.principal(environment), lot=lot)


async def make_store(tenant: Tenant, *, environment: Environment = Environment.LIVE, **fields: Any):
    from app.stores import service

    data = {
        "name": "My WooCommerce Store",
        "platform": "woocommerce",
        "url": "https://shop.example.com",
        "credentials": {"consumer_key": "ck_live_1234", "consumer_secret": "cs_live_5678"},
        **fields,
    }
    return await service.create_store(
        tenant.principal(environment), data=service.StoreCreate(**data)
    )


async def make_pricing_rule(
    tenant: Tenant, *, environment: Environment = Environment.LIVE, **fields: Any
):
    from app.pricing import service

    data = {"name": "Silver dollars +15 %", "markup_percent": "15", "rounding": "1.00", **fields}
    return await service.create_pricing_rule(
        tenant.principal(environment), data=service.PricingRuleInput(**data)
    )
