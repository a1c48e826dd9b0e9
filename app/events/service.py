"""The outbox: `emit()` writes an Event row inside the caller's transaction; once that
transaction commits, `atomic()` publishes the events on the bus. An event whose publication
failed (or whose process died after commit) stays unpublished and the sweeper job sends it.

Published events are marked (`published_at`) in batches a moment later, one UPDATE for every
commit of that moment rather than one per commit. A process that dies in between leaves its
last events unmarked; the sweeper publishes them again, so the bus is at least once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.transactions import in_transaction

from app import sqltext
from app.auth.principal import Principal
from app.errors import RateLimited, ServiceUnavailable
from app.events.bus import TooManySubscriptions, get_bus
from app.events.models import Event
from app.events.types import EventType
from app.ids import new_id

logger = logging.getLogger("syncauction.events")


class Transaction:
    """A database transaction that remembers the events to publish after commit."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.events: list[Event] = []


@contextlib.asynccontextmanager
async def atomic() -> AsyncIterator[Transaction]:
    async with in_transaction() as connection:
        tx = Transaction(connection)
        yield tx
    if tx.events:
        try:
            await publish_events(tx.events)
        except Exception:  # the change is committed; the sweeper publishes what is left
            logger.exception("publishing after commit failed")
        await _fan_out_soon()


# Commits within one window share a fan-out, queued to run just after the window closes: under
# load one fan-out routes many events, and an event waits about this long to be routed. The job
# id is the window's, so a request while that job waits adds nothing; one made after it ran
# (a late commit, or a worker whose clock runs ahead) queues it again. The periodic fan-out
# catches anything a lost request misses.
FAN_OUT_WINDOW = 0.02


def _window() -> int:
    return int(time.time() / FAN_OUT_WINDOW)


async def _fan_out_soon() -> None:
    """Ask for the webhook deliveries of what was just committed."""
    from app import jobs, runtime

    try:
        if runtime.current().jobs is None:
            return
        await jobs.enqueue(
            "fan_out_webhooks", job_id=f"fan-out:{_window()}", defer_seconds=FAN_OUT_WINDOW
        )
    except Exception:
        logger.warning("could not queue the webhook fan-out", exc_info=True)


async def emit(
    tx: Transaction, *, account_id: str, environment: str, type: EventType, data: dict[str, Any]
) -> Event:
    """Record an event in `tx`; it is published only if `tx` commits."""
    event = Event(
        id=new_id("evt"), account_id=account_id, environment=environment, type=type.value, data=data
    )
    await event.save(using_db=tx.connection)
    tx.events.append(event)
    return event


def event_message(event: Event) -> dict[str, Any]:
    """The bus message; `event`, `timestamp` and `data` are exactly the webhook payload."""
    return {
        "id": event.id,
        "event": event.type,
        "timestamp": format_timestamp(event.created_at),
        "data": event.data,
        "account_id": event.account_id,
        "environment": str(event.environment),
    }


def format_timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def publish_events(events: list[Event], *, mark_now: bool = False) -> int:
    """Publish committed events and have them marked (at once with `mark_now`, else with the
    next batch); failures are left for the sweeper."""
    bus = get_bus()
    if bus is None:
        return 0
    published: list[str] = []
    for event in events:
        try:
            await bus.publish(event_message(event))
        except Exception:
            logger.exception("publishing %s failed; the sweeper will retry", event.id)
            continue
        published.append(event.id)
    marks = _marks()
    marks.add(published)
    if mark_now:
        await marks.flush()
    return len(published)


MARK_DELAY = 0.05  # seconds published ids wait to be marked together
_MARK_CHUNK = 1000


class _PublishedMarks:
    """Ids published on the bus but not yet marked in the database (one per event loop)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.task: asyncio.Task[None] | None = None

    def add(self, ids: list[str]) -> None:
        self.ids += ids
        if self.ids and self.task is None:
            self.task = asyncio.create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(MARK_DELAY)
        self.task = None
        try:
            await self.flush()
        except Exception:  # left unmarked: the sweeper publishes them again
            logger.exception("marking published events failed")

    async def flush(self) -> None:
        ids, self.ids = self.ids, []
        now = datetime.now(UTC)
        connection = Event._meta.db
        for start in range(0, len(ids), _MARK_CHUNK):
            chunk = ids[start : start + _MARK_CHUNK]
            await sqltext.execute(
                connection,
                f"UPDATE events SET published_at = {{}} WHERE id IN ({sqltext.params(len(chunk))})",
                now,
                *chunk,
            )


_published_marks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _PublishedMarks] = (
    weakref.WeakKeyDictionary()
)


def _marks() -> _PublishedMarks:
    return _published_marks.setdefault(asyncio.get_running_loop(), _PublishedMarks())


async def flush_published_marks() -> None:
    """Mark what this process published and has not marked yet (at shutdown, and in tests)."""
    marks = _published_marks.get(asyncio.get_running_loop())
    if marks is None:
        return
    if marks.task is not None:
        marks.task.cancel()
        marks.task = None
    await marks.flush()


async def publish_pending_events(*, older_than_seconds: float = 5.0, batch: int = 500) -> int:
    """Sweeper: publish events committed but never published (e.g. the process died)."""
    cutoff = datetime.now(UTC).timestamp() - older_than_seconds
    pending = (
        await Event.filter(published_at=None, created_at__lt=datetime.fromtimestamp(cutoff, UTC))
        .order_by("id")
        .limit(batch)
    )
    return await publish_events(list(pending), mark_now=True)


Check = Callable[[], Awaitable[None]]


async def live_events(
    actor: Principal,
    *,
    types: frozenset[str] | None = None,
    still_valid: Check | None = None,
    recheck_every: float = 30.0,
) -> AsyncIterator[dict[str, Any]]:
    """The caller's events as they are published (bus messages), optionally only `types`. A
    stream outlives the check that opened it: every `recheck_every` seconds `still_valid` runs
    and ends the stream by raising (a revoked key)."""
    actor.require("events:read")
    bus = get_bus()
    if bus is None:
        raise ServiceUnavailable("Live events are unavailable right now.", retry_after=5)
    tenant = {"account_id": actor.account_id, "environment": str(actor.environment)}
    try:
        async with bus.subscribe(**tenant, types=types) as subscription:
            checked = time.monotonic()
            while True:
                try:
                    message = await asyncio.wait_for(subscription.queue.get(), recheck_every)
                except TimeoutError:
                    message = None
                if still_valid is not None and time.monotonic() - checked >= recheck_every:
                    await still_valid()
                    checked = time.monotonic()
                if message is not None:
                    yield message
    except TooManySubscriptions as exc:
        raise RateLimited(
            f"This account holds {exc.limit} live subscriptions on this "
            "server already; close one before opening another.",
            retry_after=30,
            code="too_many_subscriptions",
        ) from None


_PURGE_BATCH = 2000
_PURGEABLE = (
    "SELECT id FROM events e WHERE e.created_at < {}"
    " AND e.published_at IS NOT NULL AND e.fanned_out_at IS NOT NULL"
    " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d"
    " WHERE d.event_id = e.id AND d.status = 'pending')"
    " ORDER BY e.id LIMIT {}"
)


async def purge_old_events(*, now: datetime | None = None) -> int:
    """Remove events older than the retention (`SYNCAUCTION_EVENT_RETENTION_DAYS`) with their
    webhook deliveries and attempt logs; returns how many events. An event not yet published
    or routed, or with a delivery still being retried, is kept. Batches keep each transaction
    short on a table a sync fills by the hundred thousand."""
    from app import runtime

    days = runtime.current().settings.event_retention_days
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    connection = Event._meta.db
    removed = 0
    while True:
        rows = await connection.execute_query_dict(
            sqltext.sql(connection, _PURGEABLE), [cutoff, _PURGE_BATCH]
        )
        ids = [row["id"] for row in rows]
        if not ids:
            return removed
        listed = sqltext.params(len(ids))
        # The conditions are checked again as rows are deleted: a delivery replayed since the
        # SELECT above is pending again, and it and its event stay.
        settled = f"event_id IN ({listed}) AND status <> 'pending'"
        async with in_transaction() as tx:
            await sqltext.execute(
                tx,
                "DELETE FROM webhook_attempts WHERE delivery_id IN"
                f" (SELECT id FROM webhook_deliveries WHERE {settled})",
                *ids,
            )
            await sqltext.execute(tx, f"DELETE FROM webhook_deliveries WHERE {settled}", *ids)
            removed += await sqltext.execute(
                tx,
                f"DELETE FROM events WHERE id IN ({listed}) AND NOT EXISTS"
                " (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = events.id)",
                *ids,
            )
        if len(ids) < _PURGE_BATCH:
            return removed
