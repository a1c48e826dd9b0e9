"""Domain objects -> the documented `/v1` JSON shapes (money as JSON numbers)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.deletion import Deleted
from app.pricing.models import PricingRule
from app.products.models import Product
from app.stores.models import Store
from app.stores.service import StoreSettings
from app.sync.models import SyncJob
from app.sync.service import SyncOverview, job_summary
from app.webhooks.models import WebhookEndpoint
from app.webhooks.service import CreatedEndpoint, TestSend


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
        "simulated": store.simulated,
        "credentials_set": bool(store.credentials_encrypted),
        "settings": _store_settings(store.settings),
        "livemode": str(store.environment) == "live",
        "created_at": _time(store.created_at),
        "updated_at": _time(store.updated_at),
    }


def pricing_rule_json(rule: PricingRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "object": "pricing_rule",
        "name": rule.name,
        "active": rule.active,
        "is_default": rule.is_default,
        "priority": rule.priority,
        "markup_percent": _money(rule.markup_percent),
        "markup_fixed": _money(rule.markup_fixed),
        "rounding": str(rule.rounding),
        "min_margin": _money(rule.min_margin),
        "min_margin_percent": _money(rule.min_margin_percent),
        "metals": list(rule.metals or []),
        "services": list(rule.services or []),
        "min_grade": rule.min_grade,
        "max_grade": rule.max_grade,
        "min_cost": _money(rule.min_cost),
        "max_cost": _money(rule.max_cost),
        "title_contains": rule.title_contains,
        "livemode": str(rule.environment) == "live",
        "created_at": _time(rule.created_at),
        "updated_at": _time(rule.updated_at),
    }


def deleted_json(deleted: Deleted) -> dict[str, Any]:
    return {"id": deleted.id, "object": deleted.object, "deleted": True}


def sync_job_json(job: SyncJob) -> dict[str, Any]:
    return job_summary(job)


def sync_status_json(overview: SyncOverview) -> dict[str, Any]:
    return {
        "object": "sync_status",
        "state": overview.state,
        "current_job": job_summary(overview.current) if overview.current else None,
        "last_sync": job_summary(overview.last) if overview.last else None,
        "next_sync": (
            {"at": _time(overview.next_sync_at), "type": overview.next_sync_type}
            if overview.next_sync_at
            else None
        ),
        "schedule": {
            "delta_interval_minutes": overview.delta_interval_minutes,
            "full_sync_hour_utc": overview.full_sync_hour,
        },
    }


def webhook_endpoint_json(value: WebhookEndpoint | CreatedEndpoint) -> dict[str, Any]:
    """An endpoint; its `secret` only in the creation response (it is shown once)."""
    endpoint = value.endpoint if isinstance(value, CreatedEndpoint) else value
    body: dict[str, Any] = {
        "id": endpoint.id,
        "object": "webhook_endpoint",
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": list(endpoint.event_types or []),
        "active": endpoint.active,
        "disabled_reason": endpoint.disabled_reason,
        "livemode": str(endpoint.environment) == "live",
        "created_at": _time(endpoint.created_at),
        "updated_at": _time(endpoint.updated_at),
    }
    if isinstance(value, CreatedEndpoint):
        body["secret"] = value.secret
    return body


def webhook_test_json(sent: TestSend) -> dict[str, Any]:
    answer = sent.answer
    return {
        "object": "webhook_test",
        "endpoint_id": sent.endpoint_id,
        "webhook_id": sent.message_id,
        "ok": answer.ok,
        "status_code": answer.status_code,
        "duration_ms": answer.duration_ms,
        "response_excerpt": answer.excerpt,
        "error": answer.error,
    }
