"""Which lots changed since the last sync: a content hash per lot, compared as the feed
streams by, so a delta sync touches only what the auction house changed.

Pure: no I/O. The engine loads `known` (ha_lot -> content hash of the stored product) for one
account and environment, feeds every lot of the stream through `LotDiff.feed`, and after the
stream asks `removed()` for the products whose lots are gone or sold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

import orjson


class SourceLot(Protocol):
    """What the diff reads of a lot (the auction-house connector's `Lot` fits)."""

    ha_lot: str
    title: str
    cost: Decimal
    metal: str | None
    grade: str | None
    service: str | None
    year: int | None
    mint: str | None
    denomination: str | None
    images: list[str]
    available: bool


class ChangeKind(StrEnum):
    CREATED = "created"
    UPDATED = "updated"


@dataclass(frozen=True, slots=True)
class LotChange:
    kind: ChangeKind
    lot: Any
    content_hash: str


def lot_hash(lot: SourceLot) -> str:
    """SHA-256 of the lot's content in a canonical form: equal lots hash equally whatever the
    feed's field order or the cost's trailing zeros ("1087.0" and "1087.00")."""
    content = {
        "title": lot.title,
        "cost": str(Decimal(lot.cost).quantize(Decimal("0.01"))),
        "metal": lot.metal,
        "grade": lot.grade,
        "service": lot.service,
        "year": lot.year,
        "mint": lot.mint,
        "denomination": lot.denomination,
        "images": list(lot.images),
    }
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


class LotDiff:
    """Compares a stream of lots with what is stored, one lot at a time."""

    def __init__(self, known: Mapping[str, str]) -> None:
        self._known = known
        self._seen: set[str] = set()
        self.unchanged = 0

    def feed(self, lot: SourceLot) -> LotChange | None:
        """The change this lot brings, or None when it is unchanged. A lot no longer available
        (sold) is not seen, so `removed()` reports its product."""
        if not lot.available or lot.ha_lot in self._seen:
            return None
        self._seen.add(lot.ha_lot)
        digest = lot_hash(lot)
        stored = self._known.get(lot.ha_lot)
        if stored is None:
            return LotChange(ChangeKind.CREATED, lot, digest)
        if stored != digest:
            return LotChange(ChangeKind.UPDATED, lot, digest)
        self.unchanged += 1
        return None

    def mark_seen(self, lots: Iterable[str]) -> None:
        """Count these stored lots as offered and unchanged (their feed page was not modified
        since the last sync, so it was not read again)."""
        for ha_lot in lots:
            if ha_lot not in self._seen and ha_lot in self._known:
                self._seen.add(ha_lot)
                self.unchanged += 1

    def removed(self) -> list[str]:
        """Stored lots that the finished stream did not offer (sold or withdrawn), sorted."""
        return sorted(set(self._known) - self._seen)


def listing_hash(
    *, title: str, description: str, price: Decimal, images: list[str], sku: str
) -> str:
    """SHA-256 of what a store shows of a product: a store listing whose last push carried a
    different hash needs a new push."""
    content = {
        "sku": sku,
        "title": title,
        "description": description,
        "price": str(Decimal(price).quantize(Decimal("0.01"))),
        "images": list(images),
    }
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()
