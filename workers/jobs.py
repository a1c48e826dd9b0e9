"""Job functions. Each is `async def job(ctx, *args)`, idempotent, and takes ids, not objects;
the same function runs under arq (`syncauction worker`) and in the in-process runner."""

from __future__ import annotations

import logging
from typing import Any

from app.events.service import publish_pending_events
from app.idempotency import service as idempotency

logger = logging.getLogger("syncauction.jobs")


async def publish_events_sweep(ctx: dict[str, Any]) -> int:
    """Publish outbox events that were committed but never published."""
    count = await publish_pending_events()
    if count:
        logger.info("sweeper published %d pending events", count)
    return count


async def purge_idempotency_records(ctx: dict[str, Any]) -> int:
    """Forget `Idempotency-Key` responses older than 24 hours."""
    return await idempotency.purge_expired()
