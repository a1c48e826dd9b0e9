"""Money as the API accepts it: a non-negative amount with at most two decimal places."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field

MAX_AMOUNT = Decimal("999999999999.99")

Money = Annotated[Decimal, Field(ge=0, le=MAX_AMOUNT, decimal_places=2)]
