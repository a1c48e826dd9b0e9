"""The migrations in `migrations/` build, from an EMPTY database, exactly the schema the models
describe: the app's tests run on a copied migrated template, so this is the one place that checks
the migrations themselves (on SQLite, and on a fresh PostgreSQL database where one is configured).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from tortoise.cli.cli import tortoise_cli_context
from tortoise.exceptions import IntegrityError
from tortoise.migrations.autodetector import MigrationAutodetector

import migrations
from app import db
from app.accounts.models import Account, Environment, Plan
from app.ids import new_id
from app.products.models import Product
from tests.conftest import TEST_DATABASE_URL, _asyncpg_dsn, _replace_database, requires_postgres

MIGRATIONS_TABLE = "tortoise_migrations"


@contextlib.asynccontextmanager
async def _new_postgres_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards."""
    import asyncpg

    name = f"syncauction_migrate_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(_asyncpg_dsn(TEST_DATABASE_URL))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield _replace_database(TEST_DATABASE_URL, name)
    finally:
        await db.close_orm()
        admin = await asyncpg.connect(_asyncpg_dsn(TEST_DATABASE_URL))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=requires_postgres)])
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database with no tables at all: a new SQLite file, or a new PostgreSQL database
    (dropped afterwards)."""
    if request.param == "sqlite":
        path = tmp_path / "empty.sqlite3"
        assert not path.exists()
        yield f"sqlite://{path}"
        return
    async with _new_postgres_database() as url:
        yield url


async def _model_classes(url: str) -> dict[str, Any]:
    """table name -> model class, from the same config the app uses."""
    async with tortoise_cli_context(db.tortoise_config(url)) as ctx:
        return {model._meta.db_table: model for model in ctx.apps["models"].values()}


async def _introspect(url: str) -> tuple[dict[str, dict[str, bool]], dict[str, set[frozenset]]]:
    """From the real database: {table: {column: nullable}} and {table: {unique column sets}}."""
    columns: dict[str, dict[str, bool]] = {}
    uniques: dict[str, set[frozenset]] = {}
    async with tortoise_cli_context(db.tortoise_config(url)) as ctx:
        conn = ctx.connections.get("default")
        if conn.capabilities.dialect == "sqlite":
            tables = await conn.execute_query_dict(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
            for row in tables:
                table = row["name"]
                info = await conn.execute_query_dict(f'PRAGMA table_info("{table}")')
                columns[table] = {c["name"]: not (c["notnull"] or c["pk"]) for c in info}
                uniques[table] = set()
                for index in await conn.execute_query_dict(f'PRAGMA index_list("{table}")'):
                    if not index["unique"]:
                        continue
                    cols = await conn.execute_query_dict(f'PRAGMA index_info("{index["name"]}")')
                    uniques[table].add(frozenset(c["name"] for c in cols))
                pk = frozenset(c["name"] for c in info if c["pk"])
                uniques[table].add(pk)  # an INTEGER PRIMARY KEY has no separate index
        else:
            rows = await conn.execute_query_dict(
                "SELECT table_name, column_name, is_nullable FROM information_schema.columns "
                "WHERE table_schema = current_schema()"
            )
            for row in rows:
                columns.setdefault(row["table_name"], {})[row["column_name"]] = (
                    row["is_nullable"] == "YES"
                )
            rows = await conn.execute_query_dict(
                "SELECT t.relname AS table_name, i.indexrelid::text AS index_id, "
                "a.attname AS column_name "
                "FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
                "JOIN pg_namespace n ON n.oid = t.relnamespace "
                "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(i.indkey) "
                "WHERE i.indisunique AND n.nspname = current_schema()"
            )
            by_index: dict[tuple[str, str], set[str]] = {}
            for row in rows:
                by_index.setdefault((row["table_name"], row["index_id"]), set()).add(
                    row["column_name"]
                )
            for (table, _), cols in by_index.items():
                uniques.setdefault(table, set()).add(frozenset(cols))
    return columns, uniques


def _expected_uniques(model: Any) -> set[frozenset]:
    meta = model._meta
    projection = meta.fields_db_projection
    expected = {frozenset([projection[meta.pk_attr]])}
    for name, field in meta.fields_map.items():
        if field.unique and name in projection:
            expected.add(frozenset([projection[name]]))
    for group in meta.unique_together:
        expected.add(frozenset(projection[name] for name in group))
    return expected


async def test_migrated_empty_database_has_no_pending_model_changes(empty_database_url):
    """What `tortoise makemigrations` would do: no operation is missing from migrations/."""
    await db.migrate(empty_database_url)
    config = db.tortoise_config(empty_database_url)
    async with tortoise_cli_context(config) as ctx:
        autodetector = MigrationAutodetector(ctx.apps, config["apps"])
        writers = await autodetector.changes()
    assert [(w.name, w.operations) for w in writers] == []


async def test_autodetector_check_can_fail(tmp_path, monkeypatch):
    """The check above is not vacuous: against an empty migrations package the same detector
    reports a CreateModel for every model."""
    package = f"no_migrations_{uuid.uuid4().hex[:8]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = db.tortoise_config("sqlite://:memory:")
    config["apps"]["models"]["migrations"] = package
    async with tortoise_cli_context(config) as ctx:
        autodetector = MigrationAutodetector(ctx.apps, config["apps"])
        writers = await autodetector.changes()
        model_names = {model.__name__ for model in ctx.apps["models"].values()}
    [writer] = writers
    created = {op.name for op in writer.operations if type(op).__name__ == "CreateModel"}
    assert created == model_names
    assert {"Account", "ApiKey", "Product", "Store", "Event"} <= created


async def test_migrated_tables_have_exactly_the_model_columns(empty_database_url):
    await db.migrate(empty_database_url)
    models = await _model_classes(empty_database_url)
    columns, _ = await _introspect(empty_database_url)

    assert set(columns) - {MIGRATIONS_TABLE} == set(models)
    assert {"accounts", "api_keys", "products", "stores", "events", "idempotency_records"} <= set(
        models
    )
    for table, model in models.items():
        meta = model._meta
        expected = set(meta.fields_db_projection.values())
        assert set(columns[table]) == expected, table
        for name, column in meta.fields_db_projection.items():
            field = meta.fields_map[name]
            assert columns[table][column] == bool(field.null), f"{table}.{column} nullability"


async def test_migrated_tables_have_the_model_unique_constraints(empty_database_url):
    await db.migrate(empty_database_url)
    models = await _model_classes(empty_database_url)
    _, uniques = await _introspect(empty_database_url)

    for table, model in models.items():
        assert uniques.get(table, set()) == _expected_uniques(model), table
    assert frozenset({"account_id", "environment", "ha_lot"}) in uniques["products"]
    assert frozenset({"key_hash"}) in uniques["api_keys"]
    assert frozenset({"account_id", "environment", "key"}) in uniques["idempotency_records"]


def _lot(account: Account, environment: Environment, ha_lot: str) -> dict[str, Any]:
    return {
        "id": new_id("prod"),
        "account": account,
        "environment": environment,
        "ha_lot": ha_lot,
        "sku": f"HA-{ha_lot}",
        "title": "1921 Morgan Dollar MS65",
        "price": Decimal("430.50"),
        "cost": Decimal("374.35"),
        "margin": Decimal("56.15"),
    }


async def test_database_refuses_a_duplicate_lot_per_account_and_environment(empty_database_url):
    """The service checks for duplicates first; the constraint is what holds under a race."""
    await db.migrate(empty_database_url)
    await db.init_orm(empty_database_url)
    try:
        account = await Account.create(id=new_id("acct"), name="Coin Shop", plan=Plan.STARTER)
        rival = await Account.create(id=new_id("acct"), name="Rival", plan=Plan.STARTER)
        await Product.create(**_lot(account, Environment.LIVE, "123456"))
        # Same lot in the other environment, or for another account: allowed.
        await Product.create(**_lot(account, Environment.SANDBOX, "123456"))
        await Product.create(**_lot(rival, Environment.LIVE, "123456"))
        with pytest.raises(IntegrityError):
            await Product.create(**_lot(account, Environment.LIVE, "123456"))
        assert await Product.filter(ha_lot="123456").count() == 3
    finally:
        await db.close_orm()


async def test_migrating_twice_is_a_noop(empty_database_url):
    await db.migrate(empty_database_url)
    await db.init_orm(empty_database_url)
    try:
        await Account.create(id="acct_keep", name="Coin Shop", plan=Plan.PROFESSIONAL)
        conn = Account._meta.db
        applied = await conn.execute_query_dict(
            f'SELECT app, name, applied_at FROM "{MIGRATIONS_TABLE}" ORDER BY id'
        )
    finally:
        await db.close_orm()
    on_disk = sorted(
        p.stem for p in Path(migrations.__file__).parent.glob("[0-9][0-9][0-9][0-9]_*.py")
    )
    assert on_disk[0] == "0001_initial"
    assert [(row["app"], row["name"]) for row in applied] == [("models", n) for n in on_disk]
    columns_before, uniques_before = await _introspect(empty_database_url)

    await db.migrate(empty_database_url)

    await db.init_orm(empty_database_url)
    try:
        conn = Account._meta.db
        again = await conn.execute_query_dict(
            f'SELECT app, name, applied_at FROM "{MIGRATIONS_TABLE}" ORDER BY id'
        )
        kept = await Account.get(id="acct_keep")
    finally:
        await db.close_orm()
    assert again == applied
    assert kept.name == "Coin Shop"
    assert await _introspect(empty_database_url) == (columns_before, uniques_before)


@pytest.fixture
async def empty_postgres_url() -> AsyncIterator[str]:
    async with _new_postgres_database() as url:
        yield url


@requires_postgres
async def test_migrators_started_together_wait_for_each_other(
    empty_postgres_url: str, tmp_path: Path
):
    """Several replicas starting with AUTO_MIGRATE (or two `migrate` runs) on a new PostgreSQL
    database: each succeeds, and every migration is applied once. (SQLite serialises writers
    itself.)"""
    import asyncio
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCAUCTION_")}
    env.update(SYNCAUCTION_DATABASE_URL=empty_postgres_url, SYNCAUCTION_DATA_DIR=str(tmp_path))
    command = str(Path(sys.executable).parent / "syncauction")
    runs = [
        await asyncio.create_subprocess_exec(
            command,
            "migrate",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    outputs = await asyncio.wait_for(asyncio.gather(*(run.communicate() for run in runs)), 120)
    assert [
        (run.returncode, err.decode()) for run, (_, err) in zip(runs, outputs, strict=True)
    ] == [(0, "")] * 3

    await db.init_orm(empty_postgres_url)
    try:
        rows = await Account._meta.db.execute_query_dict(
            f'SELECT name FROM "{MIGRATIONS_TABLE}" ORDER BY id'
        )
    finally:
        await db.close_orm()
    assert [row["name"] for row in rows] == db.known_migrations()
