"""Subscription resolvers: thin adapters over `app.events.service.live_events` and
`app.sync.service.watch_job`, re-checking the connection's key as the stream goes on."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from app.auth.service import authenticate_api_key
from app.events.service import live_events
from app.sync import service as sync
from app.sync.models import SyncJob
from resolvers.common import actor
from resolvers.sync import to_type as sync_job_type
from schema import types

ORDER_EVENTS = frozenset({"order.received", "order.forwarded", "order.failed"})
PROGRESS_EVERY = 0.5  # seconds between progress checks of a running sync
RECHECK_EVERY = 30.0  # seconds between checks that a live stream's key is still valid


def _key_check(info: Info) -> Callable[[], Awaitable[Any]] | None:
    """Re-authenticates the connection's key (revoked: the stream ends with the error)."""
    key = info.context.get("api_key")
    return (lambda: authenticate_api_key(key)) if key else None


def _event(message: dict[str, Any]) -> types.Event:
    return types.Event(
        id=message["id"],
        event=message["event"],
        timestamp=message["timestamp"],
        data=message["data"],
    )


async def _stream(info: Info, wanted: frozenset[str] | None) -> AsyncGenerator[types.Event, None]:
    async for message in live_events(
        actor(info), types=wanted, still_valid=_key_check(info), recheck_every=RECHECK_EVERY
    ):
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
    async for job in sync.watch_job(
        actor(info),
        sync_id,
        every=PROGRESS_EVERY,
        still_valid=_key_check(info),
        recheck_every=RECHECK_EVERY,
    ):
        yield _progress(job)


def _progress(job: SyncJob) -> types.SyncProgressUpdate:
    full = sync_job_type(job)
    return types.SyncProgressUpdate(
        sync_id=job.id,
        status=full.status,
        phase=full.phase,
        progress=full.progress,
        stats=full.stats,
    )
