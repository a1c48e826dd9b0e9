"""Subscription resolvers: live events for dashboards, over the websocket.

Each subscription is one bus subscription scoped to the caller's account and environment, with
its own bounded queue (a slow client loses its oldest events, never stalls others)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry
from strawberry.types import Info

from app.auth.service import authenticate_api_key
from app.errors import ServiceUnavailable
from app.events.bus import get_bus
from app.sync import service as sync
from app.sync.models import SyncJob, SyncStatus
from resolvers.common import actor
from resolvers.sync import to_type as sync_job_type
from schema import types

ORDER_EVENTS = frozenset({"order.received", "order.forwarded", "order.failed"})
PROGRESS_EVERY = 0.5  # seconds between progress checks of a running sync
RECHECK_EVERY = 30.0  # seconds between checks that a live stream's key is still valid


async def _still_authorized(info: Info) -> None:
    """A stream outlives its connection_init: every RECHECK_EVERY seconds the key must still be
    valid (not revoked, plan unchanged), else the stream ends with the authentication error."""
    key = info.context.get("api_key")
    if key:
        await authenticate_api_key(key)


def _event(message: dict) -> types.Event:
    return types.Event(
        id=message["id"],
        event=message["event"],
        timestamp=message["timestamp"],
        data=message["data"],
    )


async def _stream(info: Info, wanted: frozenset[str] | None) -> AsyncGenerator[types.Event, None]:
    principal = actor(info)
    principal.require("events:read")
    bus = get_bus()
    if bus is None:
        raise ServiceUnavailable("Live events are unavailable right now.", retry_after=5)
    async with bus.subscribe(
        account_id=principal.account_id,
        environment=str(principal.environment),
        types=wanted,
    ) as subscription:
        checked = time.monotonic()
        while True:
            try:
                message = await asyncio.wait_for(subscription.queue.get(), RECHECK_EVERY)
            except TimeoutError:
                message = None
            if time.monotonic() - checked >= RECHECK_EVERY:
                await _still_authorized(info)
                checked = time.monotonic()
            if message is not None:
                yield _event(message)


async def events(
    info: Info,
    types_: Annotated[
        list[types.EventType] | None,
        strawberry.argument(name="types", description="Only these types (default: all)."),
    ] = None,
) -> AsyncGenerator[types.Event, None]:
    wanted = frozenset(t.value for t in types_) if types_ else None
    async for event in _stream(info, wanted):
        yield event


async def order_updates(info: Info) -> AsyncGenerator[types.Event, None]:
    async for event in _stream(info, ORDER_EVENTS):
        yield event


async def sync_progress(
    info: Info,
    sync_id: Annotated[strawberry.ID, strawberry.argument(description="The `sync_…` id.")],
) -> AsyncGenerator[types.SyncProgressUpdate, None]:
    """The job's progress now, then at each change until it finishes (the last update has
    status COMPLETED or FAILED, and the stream ends)."""
    principal = actor(info)
    job = await sync.get_job(principal, sync_id)  # 404 for another tenant's job
    last = None
    checked = time.monotonic()
    while True:
        if time.monotonic() - checked >= RECHECK_EVERY:
            await _still_authorized(info)
            checked = time.monotonic()
        update = _progress(job)
        key = (update.status, update.phase, job.lots_processed, job.lots_total, job.stores)
        if key != last:
            last = key
            yield update
        if job.status in (SyncStatus.COMPLETED, SyncStatus.FAILED):
            return
        await asyncio.sleep(PROGRESS_EVERY)
        job = await SyncJob.get(id=job.id)


def _progress(job: SyncJob) -> types.SyncProgressUpdate:
    full = sync_job_type(job)
    return types.SyncProgressUpdate(
        sync_id=job.id,
        status=full.status,
        phase=full.phase,
        progress=full.progress,
        stats=full.stats,
    )
