"""What the sync engine needs from a store platform, whatever the platform.

The engine decides, per product and store, one `ListingWrite`; a `StoreConnector` applies a
batch of them with the platform's own protocol and reports one `ListingResult` per write,
never dropping one. A failure of the whole call (rejected credentials, the store down after
retries) raises `UpstreamError`; what the batch had already applied is then unknown, so the
engine re-sends that batch on the next run (platform connectors make a re-send safe).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Protocol


class WriteAction(StrEnum):
    UPSERT = "upsert"  # list the product (create it or update it in place)
    OUT_OF_STOCK = "out_of_stock"  # keep the listing but stop selling it
    DELETE = "delete"  # remove the listing from the store


@dataclass(frozen=True, slots=True)
class ListingWrite:
    product_id: str
    sku: str
    action: WriteAction
    external_id: str | None = None  # the store's id for the product, when known
    title: str = ""
    description: str = ""
    price: Decimal = Decimal(0)
    images: tuple[str, ...] = field(default_factory=tuple)
    # The product's listing hash when this write was built: what the store holds once it is
    # applied (a product edited during a push is sent again next time).
    listing_hash: str = ""
    listing_id: int | None = None  # the engine's record of this listing, if any


@dataclass(frozen=True, slots=True)
class ListingResult:
    product_id: str
    ok: bool
    external_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None


class StoreConnector(Protocol):
    """One store, opened with its credentials; `aclose()` releases the HTTP client."""

    batch_size: int  # writes per `apply` call the engine should send

    async def apply(self, writes: Sequence[ListingWrite]) -> list[ListingResult]: ...

    async def aclose(self) -> None: ...
