"""Money as the API accepts it: a non-negative amount with at most two decimal places, sent as
a JSON number or as a plain decimal string (`"430.50"`; no exponent, digit separators, spaces
or non-ASCII digits, all of which Python's `Decimal` would otherwise take)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationInfo

MAX_AMOUNT = Decimal("999999999999.99")

_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def plain_decimal(value: Any, *, stored: bool = False) -> Any:
    """A number, or a decimal string, as a `Decimal` (what a strict validation then takes);
    anything else is refused.

    A client's string must use the plain notation. What the application stored itself may
    read `0E-7` (`str(Decimal)` writes that), so with `stored` any decimal string passes."""
    if isinstance(value, str):
        if not stored and not _PLAIN_DECIMAL.fullmatch(value):
            raise ValueError("must be a number such as 12.50")
        try:
            return Decimal(value)
        except InvalidOperation:
            raise ValueError("must be a number such as 12.50") from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Decimal(str(value))  # a float by its shortest repr: 12.5, not 12.4999…
    if isinstance(value, Decimal) or value is None:
        return value
    raise ValueError("must be a number such as 12.50")


def _validate(value: Any, info: ValidationInfo) -> Any:
    # JSON is a client's body (REST); Python mode is stored data or input that GraphQL's
    # `Decimal` scalar has already held to the plain notation.
    return plain_decimal(value, stored=info.mode == "python")


# Placed after a type's `Field` constraints, so they stay on the decimal type itself (the
# OpenAPI `minimum`/`maximum` and the error messages keep their plain numbers).
PLAIN_DECIMAL = BeforeValidator(_validate)
Money = Annotated[Decimal, Field(ge=0, le=MAX_AMOUNT, decimal_places=2), PLAIN_DECIMAL]
