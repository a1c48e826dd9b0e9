"""Writing a batch of synced products and their events inside one transaction.

PostgreSQL takes the fast path: the rows are COPied into a temporary table and merged with one
`INSERT … ON CONFLICT DO UPDATE`, events COPied straight into the outbox. Other databases
(SQLite) take the portable path through the ORM. Both write the same values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from app.events.models import Event
from app.products.models import Product
from app.sqltext import is_postgres
from app.sync.diff import listing_hash

# Columns the sync owns; `manual_price`, `tags`, `description` (after creation) and a
# merchant-set status belong to the merchant and survive every sync.
_COLUMNS = (
    "id",
    "account_id",
    "environment",
    "ha_lot",
    "sku",
    "title",
    "description",
    "price",
    "cost",
    "margin",
    "manual_price",
    "currency",
    "metal",
    "grade",
    "service",
    "year",
    "mint",
    "denomination",
    "images",
    "tags",
    "status",
    "content_hash",
    "listing_hash",
    "created_at",
    "updated_at",
)
_UPDATED = (
    "title",
    "price",
    "cost",
    "margin",
    "metal",
    "grade",
    "service",
    "year",
    "mint",
    "denomination",
    "images",
    "status",
    "content_hash",
    "listing_hash",
    "updated_at",
)
_EVENT_COLUMNS = ("id", "account_id", "environment", "type", "data", "created_at")

_MERGE = (
    f"INSERT INTO products ({', '.join(_COLUMNS)}) "
    f"SELECT {', '.join(_COLUMNS)} FROM _sync_products "
    "ON CONFLICT (account_id, environment, ha_lot) DO UPDATE SET "
    + ", ".join(f"{column} = EXCLUDED.{column}" for column in _UPDATED)
)


@dataclass(slots=True)
class ProductRow:
    """A product's values as a sync writes them (new or changed)."""

    id: str
    account_id: str
    environment: str
    ha_lot: str
    sku: str
    title: str
    description: str
    price: Decimal
    cost: Decimal
    margin: Decimal
    manual_price: Decimal | None
    metal: str | None
    grade: str | None
    service: str | None
    year: int | None
    mint: str | None
    denomination: str | None
    images: list[str]
    tags: list[str]
    status: str
    content_hash: str
    listing_hash: str
    created_at: datetime
    updated_at: datetime
    created: bool
    currency: str = "USD"

    @classmethod
    def for_lot(
        cls,
        lot: Any,
        *,
        id: str,
        account_id: str,
        environment: str,
        price: Decimal,
        description: str,
        content_hash: str,
        now: datetime,
        current: Product | None = None,
    ) -> ProductRow:
        """The row a sync writes for `lot`: new, or `current` updated (its manual price, tags,
        merchant status and creation time kept; a sold product comes back active)."""
        sku = f"HA-{lot.ha_lot}"
        status = "active"
        if current is not None and current.status.value != "sold":
            status = current.status.value
        return cls(
            id=id,
            account_id=account_id,
            environment=environment,
            ha_lot=lot.ha_lot,
            sku=sku,
            title=lot.title,
            description=description,
            price=price,
            cost=lot.cost,
            margin=price - lot.cost,
            manual_price=current.manual_price if current is not None else None,
            metal=lot.metal,
            grade=lot.grade,
            service=lot.service,
            year=lot.year,
            mint=lot.mint,
            denomination=lot.denomination,
            images=list(lot.images),
            tags=list(current.tags or []) if current is not None else [],
            status=status,
            content_hash=content_hash,
            listing_hash=listing_hash(
                title=lot.title,
                description=description,
                price=price,
                images=list(lot.images),
                sku=sku,
            ),
            created_at=current.created_at if current is not None else now,
            updated_at=now,
            created=current is None,
        )

    def values(self) -> dict[str, Any]:
        return {column: getattr(self, column) for column in _COLUMNS}


async def write_products(connection: Any, rows: list[ProductRow]) -> None:
    if not rows:
        return
    if is_postgres(connection):
        await _copy_merge(connection, rows)
        return
    created = [Product(**row.values()) for row in rows if row.created]
    if created:
        await Product.bulk_create(created, using_db=connection)
    for row in rows:
        if not row.created:
            await (
                Product.filter(id=row.id)
                .using_db(connection)
                .update(**{column: getattr(row, column) for column in _UPDATED})
            )


async def _copy_merge(connection: Any, rows: list[ProductRow]) -> None:
    records = [
        tuple(
            orjson.dumps(value).decode() if column in ("images", "tags") else value
            for column, value in row.values().items()
        )
        for row in rows
    ]
    async with connection.acquire_connection() as raw:
        await raw.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _sync_products "
            "(LIKE products INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        await raw.copy_records_to_table("_sync_products", records=records, columns=_COLUMNS)
        await raw.execute(_MERGE)


async def write_events(connection: Any, events: list[Event]) -> None:
    """Outbox rows for a batch (published by `atomic()` after the commit)."""
    if not events:
        return
    if not is_postgres(connection):
        await Event.bulk_create(events, using_db=connection)
        return
    records = [
        (
            e.id,
            e.account_id,
            str(e.environment),
            e.type,
            orjson.dumps(e.data).decode(),
            e.created_at,
        )
        for e in events
    ]
    async with connection.acquire_connection() as raw:
        await raw.copy_records_to_table("events", records=records, columns=_EVENT_COLUMNS)
