"""Money as the API accepts it: a non-negative amount with at most two decimal places, sent as
a JSON number or as a plain decimal string (`"430.50"`; no exponent, digit separators, spaces
or non-ASCII digits, all of which Python's `Decimal` would otherwise take)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

MAX_AMOUNT = Decimal("999999999999.99")

_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def plain_decimal(value: Any) -> Any:
    """A number, or a decimal string in the plain notation, as a `Decimal` (what a strict
    validation then takes); anything else is left for the type check to refuse."""
    if isinstance(value, str):
        if not _PLAIN_DECIMAL.fullmatch(value):
            raise ValueError("must be a number such as 12.50")
        return Decimal(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Decimal(str(value))  # a float by its shortest repr: 12.5, not 12.4999…
    if isinstance(value, Decimal) or value is None:
        return value
    raise ValueError("must be a number such as 12.50")


PlainDecimal = Annotated[Decimal, BeforeValidator(plain_decimal)]
Money = Annotated[PlainDecimal, Field(ge=0, le=MAX_AMOUNT, decimal_places=2)]
