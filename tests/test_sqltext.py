"""Hand-written statements render for the connection they run on."""

from __future__ import annotations

from types import SimpleNamespace

from app import sqltext


def connection(dialect: str) -> SimpleNamespace:
    return SimpleNamespace(capabilities=SimpleNamespace(dialect=dialect))


def test_placeholders_follow_the_dialect():
    template = "UPDATE t SET a = {} WHERE id IN ({})".replace("({})", f"({sqltext.params(3)})")
    assert template == "UPDATE t SET a = {} WHERE id IN ({}, {}, {})"
    assert sqltext.sql(connection("postgres"), template) == (
        "UPDATE t SET a = $1 WHERE id IN ($2, $3, $4)"
    )
    assert sqltext.sql(connection("sqlite"), template) == "UPDATE t SET a = ? WHERE id IN (?, ?, ?)"


def test_long_statements_are_not_kept():
    long = "INSERT INTO t (a) VALUES " + ", ".join("({})" for _ in range(1000))
    rendered = sqltext.sql(connection("postgres"), long)
    assert rendered.endswith("($1000)")
    assert ("postgres", long) not in sqltext._rendered
    short = "SELECT {} + {}"
    sqltext.sql(connection("postgres"), short)
    assert sqltext._rendered[("postgres", short)] == "SELECT $1 + $2"
