"""Database configuration and lifecycle (Tortoise ORM with its built-in migrations)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url

MODEL_MODULES = [
    "app.accounts.models",
    "app.auth.models",
    "app.products.models",
    "app.stores.models",
    "app.pricing.models",
    "app.sync.models",
    "app.webhooks.models",
    "app.events.models",
    "app.idempotency.models",
]


async def _keep_session(connection: Any) -> None:
    """asyncpg's pool `reset`, run when a connection goes back to the pool.

    asyncpg always rolls back a transaction left open first. Its default reset then sends
    `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` - a second round
    trip for every query made outside a transaction, undoing session state this application
    never creates: it takes no advisory locks, declares no holdable cursors, never LISTENs
    and never SETs a session variable (connection settings go in `server_settings`). So
    there is nothing to undo. (The sync upsert's temporary table is per connection on
    purpose and emptied at every commit; the default reset never dropped it either.) Code
    that starts doing any of those must use a transaction scoped form
    (`pg_advisory_xact_lock`, `SET LOCAL`) or restore this reset."""


POSTGRES_SCHEMES = ("postgres://", "postgresql://", "asyncpg://")


def tortoise_config(database_url: str) -> dict[str, Any]:
    connection: str | dict[str, Any] = database_url
    if database_url.startswith(POSTGRES_SCHEMES):
        connection = expand_db_url(database_url)
        connection["credentials"]["reset"] = _keep_session
    return {
        "connections": {"default": connection},
        "apps": {
            "models": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


# For `tortoise makemigrations` (pyproject [tool.tortoise]); the URL only has to parse.
TORTOISE_ORM = tortoise_config("sqlite://:memory:")


def _sqlite_directory(database_url: str) -> None:
    """Create a SQLite file's directory (the data directory, for the default database): a file
    that cannot be opened leaves Tortoise's connection lock taken, and the next query waits on
    it for ever."""
    if not database_url.startswith("sqlite://"):
        return
    path = database_url.removeprefix("sqlite://").partition("?")[0]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


# The PostgreSQL advisory lock migrators take ("SYNCMIGR").
MIGRATION_LOCK = 0x53594E434D494752


@contextlib.asynccontextmanager
async def _one_migrator(database_url: str) -> AsyncIterator[None]:
    """On PostgreSQL, one migrator at a time: replicas started together with AUTO_MIGRATE, or
    two `syncauction migrate` runs, wait for each other, and the later ones find nothing left
    to apply (without it, the second failed creating a table the first had just created). The
    lock is held by a connection of its own and goes with it."""
    if not database_url.startswith(POSTGRES_SCHEMES):
        yield
        return
    import asyncpg

    credentials = expand_db_url(database_url)["credentials"]
    connection = await asyncpg.connect(
        host=credentials.get("host"),
        port=credentials.get("port"),
        user=credentials.get("user"),
        password=credentials.get("password"),
        database=credentials.get("database"),
    )
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        yield
    finally:
        await connection.close()


async def migrate(database_url: str) -> None:
    """Apply every pending migration, then leave the ORM closed."""
    from tortoise.migrations.api import migrate as run_migrations

    _sqlite_directory(database_url)
    async with _one_migrator(database_url):
        try:
            await run_migrations(config=tortoise_config(database_url))
        finally:
            await close_orm()


@functools.cache
def known_migrations() -> list[str]:
    """The migrations this release ships (`migrations/`), in order."""
    import migrations

    return sorted(path.stem for path in Path(migrations.__file__).parent.glob("[0-9]*.py"))


_MIGRATION_TABLE_EXISTS = {
    "sqlite": "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tortoise_migrations'",
    "postgres": "SELECT 1 FROM information_schema.tables"
    " WHERE table_schema = current_schema() AND table_name = 'tortoise_migrations'",
}


async def pending_migrations() -> list[str]:
    """The shipped migrations the connected database has not applied (all of them when it was
    never migrated). The ORM must be initialised."""
    from tortoise import connections

    connection = connections.get("default")
    dialect = connection.capabilities.dialect
    _, found = await connection.execute_query(_MIGRATION_TABLE_EXISTS[dialect])
    applied: set[str] = set()
    if found:
        _, rows = await connection.execute_query(
            "SELECT name FROM tortoise_migrations WHERE app = 'models'"
        )
        applied = {row["name"] for row in rows}
    return [name for name in known_migrations() if name not in applied]


async def report_pending_migrations(logger: logging.Logger, consequence: str) -> None:
    """At start-up, log an error if the database lacks migrations. Best effort: a database
    that is not up yet is for /readyz to report, not a reason to fail the start."""
    try:
        async with asyncio.timeout(5):
            pending = await pending_migrations()
    except Exception as exc:
        logger.warning(
            "could not check the database's migrations at start-up: %s", type(exc).__name__
        )
        return
    if pending:
        logger.error(
            "the database lacks %d migration(s) (%s): run `syncauction migrate`; %s",
            len(pending),
            ", ".join(pending),
            consequence,
        )


async def init_orm(database_url: str) -> None:
    _sqlite_directory(database_url)
    await Tortoise.init(config=tortoise_config(database_url), _enable_global_fallback=True)


async def close_orm() -> None:
    """Close connections and forget the model registry, so a later `init_orm` in the same
    process may point at another database (tests, CLI commands)."""
    from tortoise.backends.base.executor import EXECUTOR_CACHE

    await Tortoise.close_connections()
    await Tortoise._reset_apps()
    # Prepared INSERT/UPDATE statements are cached per connection *name*: a later init with
    # another dialect under the same name would reuse SQLite's `?` placeholders on PostgreSQL.
    EXECUTOR_CACHE.clear()
