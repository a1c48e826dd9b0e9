"""Job functions. Each is `async def job(ctx, *args)`, idempotent, and takes ids, not objects;
the same function runs under arq (`syncauction worker`) and in the in-process runner."""

from __future__ import annotations

import logging
from typing import Any

from app.events import service as events
from app.idempotency import service as idempotency
from app.sync import service as sync
from app.webhooks import delivery as webhooks

logger = logging.getLogger("syncauction.jobs")


async def publish_events_sweep(ctx: dict[str, Any]) -> int:
    """Publish outbox events that were committed but never published."""
    count = await events.publish_pending_events()
    if count:
        logger.info("sweeper published %d pending events", count)
    return count


async def purge_idempotency_records(ctx: dict[str, Any]) -> int:
    """Forget `Idempotency-Key` responses older than 24 hours."""
    return await idempotency.purge_expired()


async def purge_old_events(ctx: dict[str, Any]) -> int:
    """Remove events, deliveries and attempt logs older than the retention."""
    return await events.purge_old_events()


async def run_sync(ctx: dict[str, Any], sync_id: str) -> str | None:
    """Run or resume one sync job (idempotent: a finished or busy job is left alone)."""
    job = await sync.run_job(sync_id)
    return job.status.value if job is not None else None


async def schedule_syncs(ctx: dict[str, Any]) -> int:
    """Start the scheduled deltas and nightly full syncs that are due."""
    return await sync.schedule_due()


async def resume_stalled_syncs(ctx: dict[str, Any]) -> int:
    """Re-enqueue syncs whose process died mid-run, so they finish."""
    count = await sync.resume_stalled()
    if count:
        logger.info("re-enqueued %d stalled sync jobs", count)
    return count


async def fan_out_webhooks(ctx: dict[str, Any]) -> int:
    """Create webhook deliveries for committed events and queue their first attempts."""
    return await webhooks.fan_out()


async def deliver_webhook(ctx: dict[str, Any], delivery_id: str) -> str | None:
    """One attempt of one webhook delivery (the next one is queued by the attempt)."""
    return await webhooks.attempt(delivery_id)


async def requeue_due_webhooks(ctx: dict[str, Any]) -> int:
    """Queue webhook attempts that are due but not queued (a lost job, a killed worker)."""
    return await webhooks.requeue_due()
