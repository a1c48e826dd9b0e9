"""Job functions. Each is `async def job(ctx, *args)`, idempotent, and takes ids, not objects;
the same function runs under arq (`syncauction worker`) and in the in-process runner."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from app.events.models import IdempotencyRecord
from app.events.service import publish_pending_events

logger = logging.getLogger("syncauction.jobs")

IDEMPOTENCY_TTL = timedelta(hours=24)


async def publish_events_sweep(ctx: dict[str, Any]) -> int:
    """Publish outbox events that were committed but never published."""
    count = await publish_pending_events()
    if count:
        logger.info("sweeper published %d pending events", count)
    return count


async def purge_idempotency_records(ctx: dict[str, Any]) -> int:
    """Forget `Idempotency-Key` responses older than 24 hours."""
    cutoff = datetime.now(UTC) - IDEMPOTENCY_TTL
    return await IdempotencyRecord.filter(created_at__lt=cutoff).delete()
