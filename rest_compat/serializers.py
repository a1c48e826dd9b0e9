"""Domain objects -> the documented `/v1` JSON shapes (money as JSON numbers)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.products.models import Product
from app.stores.models import Store
from app.stores.service import StoreSettings


def _money(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def product_json(product: Product) -> dict[str, Any]:
    return {
        "id": product.id,
        "object": "product",
        "title": product.title,
        "price": _money(product.price),
        "ha_lot": product.ha_lot,
        "sku": product.sku,
        "description": product.description,
        "cost": _money(product.cost),
        "margin": _money(product.margin),
        "currency": product.currency,
        "price_locked": product.manual_price is not None,
        "metal": product.metal,
        "grade": product.grade,
        "service": product.service,
        "year": product.year,
        "mint": product.mint,
        "denomination": product.denomination,
        "images": list(product.images or []),
        "tags": list(product.tags or []),
        "status": str(product.status),
        "livemode": str(product.environment) == "live",
        "created_at": _time(product.created_at),
        "updated_at": _time(product.updated_at),
    }


def _store_settings(settings: dict[str, Any] | None) -> dict[str, Any]:
    """Settings in one key order on every database, cost filters as JSON numbers (they are
    stored as decimal strings)."""
    parsed = StoreSettings.model_validate(settings or {})
    return {
        "sold_lots": parsed.sold_lots,
        "filters": {
            "metals": list(parsed.filters.metals),
            "services": list(parsed.filters.services),
            "min_cost": _money(parsed.filters.min_cost),
            "max_cost": _money(parsed.filters.max_cost),
        },
    }


def store_json(store: Store) -> dict[str, Any]:
    return {
        "id": store.id,
        "object": "store",
        "name": store.name,
        "platform": str(store.platform),
        "url": store.url,
        "sync_enabled": store.sync_enabled,
        "credentials_set": bool(store.credentials_encrypted),
        "settings": _store_settings(store.settings),
        "livemode": str(store.environment) == "live",
        "created_at": _time(store.created_at),
        "updated_at": _time(store.updated_at),
    }
