"""Hand-written statements for the few hot paths where building a query through the ORM costs
more than running it (a webhook attempt, publishing events). They run on either database
through Tortoise's own connection, so they join its transactions.

A statement is written once with `{}` for each parameter; `sql()` renders it for the
connection's dialect (`$1, $2, …` on PostgreSQL, `?` on SQLite) and keeps the result.
Values are passed as the ORM would write them: aware UTC datetimes, strings, numbers.
"""

from __future__ import annotations

from typing import Any

_rendered: dict[tuple[str, str], str] = {}
# Statements with long value lists (bulk inserts, IN lists of many lengths) are rendered
# each time rather than kept.
_MAX_CACHED_LENGTH = 2000


def is_postgres(connection: Any) -> bool:
    return connection.capabilities.dialect == "postgres"


def sql(connection: Any, template: str) -> str:
    """`template` with its `{}` parameters in the connection's placeholder style."""
    dialect = connection.capabilities.dialect
    key = (dialect, template)
    rendered = _rendered.get(key)
    if rendered is None:
        count = template.count("{}")
        if dialect == "postgres":
            rendered = template.format(*(f"${n}" for n in range(1, count + 1)))
        else:
            rendered = template.format(*("?" for _ in range(count)))
        if len(template) <= _MAX_CACHED_LENGTH:
            _rendered[key] = rendered
    return rendered


def params(count: int) -> str:
    """`{}, {}, …`: the parameters of an IN list of `count` values."""
    return ", ".join("{}" for _ in range(count))


async def execute(connection: Any, template: str, *values: Any) -> int:
    """Run an INSERT, UPDATE or DELETE; returns the number of rows it changed."""
    changed, _ = await connection.execute_query(sql(connection, template), list(values))
    return changed


async def fetch_one(connection: Any, template: str, *values: Any) -> dict[str, Any] | None:
    rows = await connection.execute_query_dict(sql(connection, template), list(values))
    return rows[0] if rows else None
