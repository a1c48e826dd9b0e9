"""The PostgreSQL pool returns idle connections without asyncpg's session reset (a second
round trip per query), and still rolls back a transaction left open."""

from __future__ import annotations

import pytest
from tortoise import connections

from app import db
from tests.conftest import TEST_DATABASE_URL, requires_postgres

pytestmark = requires_postgres


@pytest.fixture
async def pool():  # type: ignore[no-untyped-def]
    assert TEST_DATABASE_URL
    await db.init_orm(TEST_DATABASE_URL)
    client = connections.get("default")
    await client.execute_query("SELECT 1")  # opens the pool
    try:
        yield client._pool
    finally:
        await db.close_orm()


async def test_an_idle_connection_goes_back_without_a_reset_query(pool):
    sent: list[str] = []
    async with pool.acquire() as connection:
        connection.add_query_logger(lambda record: sent.append(record.query))
        assert await connection.fetchval("SELECT 41 + 1") == 42
    assert sent == ["SELECT 41 + 1"]  # asyncpg's default would add `… RESET ALL;` here
    assert pool.get_idle_size() >= 1


async def test_a_transaction_left_open_is_rolled_back_on_release(pool):
    async with pool.acquire() as connection:
        raw = connection._con
        await connection.execute("BEGIN")
        await connection.execute("CREATE TEMPORARY TABLE left_open (n int)")
        assert connection.is_in_transaction()
    assert not raw.is_in_transaction()
    async with pool.acquire() as again:
        # Rolled back: the table created inside the transaction is gone on every connection.
        assert await again.fetchval("SELECT to_regclass('pg_temp.left_open')") is None


def test_only_postgresql_urls_get_the_pool_setting():
    config = db.tortoise_config("postgres://postgres@127.0.0.1:5432/test")["connections"]
    assert config["default"]["credentials"]["reset"] is db._keep_session
    assert db.tortoise_config("sqlite://:memory:")["connections"]["default"] == "sqlite://:memory:"
