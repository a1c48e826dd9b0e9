"""The documented event types (see the developer page, "Webhook Events")."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    SYNC_STARTED = "sync.started"
    SYNC_COMPLETED = "sync.completed"
    SYNC_FAILED = "sync.failed"
    PRODUCT_CREATED = "product.created"
    PRODUCT_UPDATED = "product.updated"
    PRODUCT_DELETED = "product.deleted"
    ORDER_RECEIVED = "order.received"
    ORDER_FORWARDED = "order.forwarded"
    ORDER_FAILED = "order.failed"
    # Not sent to the endpoint it is about: an endpoint exhausted its retries and was disabled.
    WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint.disabled"
