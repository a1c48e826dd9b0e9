"""Cursor pagination shared by every list: newest first, stable (ids are time-ordered)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from app.errors import InvalidInput
from app.ids import is_valid_id

T = TypeVar("T")

MAX_LIMIT = 100
DEFAULT_LIMIT = 25


def _digits(value: object) -> object:
    """`limit` from a query string: plain digits only (lax int parsing would take `+5`, ` 5`
    and `5_0`)."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("must be a whole number from 1 to 100")
    return value


class PageParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: Annotated[int, BeforeValidator(_digits)] = Field(
        default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="1–100, default 25."
    )
    cursor: str | None = Field(default=None, description="`next_cursor` of the previous page.")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    has_more: bool
    next_cursor: str | None
    after_cursor: bool = False  # the page was asked for after a cursor: items come before it


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *, prefix: str) -> str:
    """Return the id a cursor points after; 400 `invalid_cursor` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    version, _, last_id = raw.partition(":")
    if version != "v1" or not is_valid_id(last_id, prefix):
        raise InvalidInput(
            "The cursor is invalid or expired.", code="invalid_cursor", param="cursor"
        )
    return last_id


async def paginate(queryset, params: PageParams, *, prefix: str) -> Page:  # type: ignore[no-untyped-def]
    """Apply the cursor and limit to a Tortoise queryset ordered newest first."""
    # An empty cursor is refused, not read as "from the start": a client that turned a null
    # `next_cursor` into `cursor=` would otherwise page through the same list forever.
    if params.cursor is not None:
        queryset = queryset.filter(id__lt=decode_cursor(params.cursor, prefix=prefix))
    rows = await queryset.order_by("-id").limit(params.limit + 1)
    has_more = len(rows) > params.limit
    items = rows[: params.limit]
    return Page(
        items=items,
        has_more=has_more,
        next_cursor=encode_cursor(items[-1].id) if has_more else None,
        after_cursor=params.cursor is not None,
    )
