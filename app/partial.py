"""Partial updates (`PUT` bodies, `…Update` inputs): a field left out stays as it is; some fields
may be left out but not set to null. `not_null` refuses the null, and `without_null` keeps the
OpenAPI document from offering it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import field_validator


def _refuse_null(cls: type, value: Any) -> Any:
    if value is None:
        raise ValueError("may be omitted but not null")
    return value


def not_null(*names: str) -> Any:
    """A validator for the model body: `_not_null = not_null("name", …)`."""
    return field_validator(*names)(classmethod(_refuse_null))


def without_null(*names: str) -> Callable[[dict[str, Any]], None]:
    """`json_schema_extra` for the model: `names` are optional but not nullable."""

    def edit(schema: dict[str, Any]) -> None:
        for name in names:
            field = schema.get("properties", {}).get(name)
            if field is None or "anyOf" not in field:
                continue
            options = [option for option in field["anyOf"] if option != {"type": "null"}]
            del field["anyOf"]
            if len(options) == 1:
                field.update(options[0])
            else:
                field["anyOf"] = options
            field.pop("default", None)

    return edit
