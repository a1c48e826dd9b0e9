"""Getting events to webhook endpoints: at least once, signed, on the Standard Webhooks retry
schedule, with every attempt logged.

    committed event -> fan_out(): one delivery row per matching active endpoint
      -> attempt(): one job per attempt; the database row is the truth (a sweeper re-enqueues
         what is due, so a killed worker delays a delivery, never loses it)
      -> 2xx delivered | 410 endpoint disabled | else the next attempt on the schedule
         (Retry-After honoured) | schedule exhausted: failed, endpoint disabled, account told
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from tortoise import fields
from tortoise.exceptions import IntegrityError

from app import jobs, sqltext
from app.connectors.http import read_retry_after
from app.errors import InvalidInput
from app.events.models import Event
from app.events.service import atomic, emit, format_timestamp
from app.events.types import EventType
from app.ids import new_id
from app.netguard import ensure_public_url
from app.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from app.webhooks.service import signing_secrets
from app.webhooks.signing import headers as signed_headers

logger = logging.getLogger("syncauction.webhooks")

# Seconds before each attempt: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
JITTER = 0.1  # +-10 % on every delay but the first
TIMEOUT = 15.0
EXCERPT_BYTES = 1024
LEASE = timedelta(seconds=TIMEOUT * 4)  # an attempt in flight is not picked up again before
# An attempt still unsent this long after it was due, whose job a worker took, lost that job
# with its worker. arq keeps a dead worker's job locked for the longest job timeout (a sync's
# 4 hours), and the sweeper's usual id would only find that lock, so such an attempt gets a job
# under a new id. Duplicates are harmless: an attempt claims its delivery first, and a claimed
# one is no longer due.
ORPHANED_AFTER = timedelta(minutes=2)
ATTEMPT_JOB = "deliver_webhook"
USER_AGENT = "SyncAuction-Webhooks/1"

_rng = random.Random()
# Attempts running at once in one process: beyond this they wait (a burst of thousands of
# events must not open thousands of connections or starve the database pool).
MAX_CONCURRENT_ATTEMPTS = 32
# Attempts due within this many seconds are queued as deferred jobs; later ones (minutes to
# hours away) stay rows until the sweeper finds them due, not jobs sleeping in a queue.
QUEUE_AHEAD = 300.0
# Column converters for rows read with hand-written SQL (SQLite returns text, PostgreSQL
# returns datetimes; both return JSON as text).
_datetime = fields.DatetimeField()
_json = fields.JSONField()
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _client() -> httpx.AsyncClient:
    """One HTTP client per process (per event loop): connections are reused across attempts,
    and building a client (TLS context, CA bundle) is paid once, not per delivery."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(
            timeout=TIMEOUT,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=MAX_CONCURRENT_ATTEMPTS * 2),
        )
        _clients[loop] = client
    return client


def _slot() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slot = _slots.get(loop)
    if slot is None:
        slot = _slots[loop] = asyncio.Semaphore(MAX_CONCURRENT_ATTEMPTS)
    return slot


async def close_client() -> None:
    """Close this process's delivery client (at shutdown)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


def next_delay(attempts_made: int, retry_after: float | None = None) -> float | None:
    """Seconds until the next attempt after `attempts_made` attempts; None when exhausted."""
    if attempts_made >= len(SCHEDULE):
        return None
    delay = SCHEDULE[attempts_made] * (1 + _rng.uniform(-JITTER, JITTER))
    if retry_after is not None:
        delay = max(delay, min(retry_after, 86400.0))
    return delay


def payload(event_type: str, created_at: datetime, data: dict[str, Any]) -> bytes:
    """The body, exactly as signed and sent: `{"event", "timestamp", "data"}`."""
    return orjson.dumps(
        {"event": event_type, "timestamp": format_timestamp(created_at), "data": data}
    )


# -- fan-out --------------------------------------------------------------------------------


@dataclass
class _FanOutState:
    running: bool = False
    again: bool = False


_fan_out_states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _FanOutState] = (
    weakref.WeakKeyDictionary()
)


async def fan_out(*, batch: int = 1000) -> int:
    """Create the deliveries of committed events not fanned out yet; returns how many. One
    fan-out runs at a time per process: a call while one runs makes it look once more."""
    state = _fan_out_states.setdefault(asyncio.get_running_loop(), _FanOutState())
    if state.running:
        state.again = True
        return 0
    state.running = True
    try:
        created = 0
        while True:
            state.again = False
            created += await _fan_out(batch)
            if not state.again:
                return created
    finally:
        state.running = False


_UNROUTED = (
    "SELECT id, account_id, environment, type, created_at FROM events"
    " WHERE fanned_out_at IS NULL ORDER BY id LIMIT {}"
)
_ACTIVE_ENDPOINTS = (
    "SELECT id, event_types, created_at FROM webhook_endpoints"
    " WHERE account_id = {} AND environment = {} AND active = {}"
)
_DELIVERY_COLUMNS = (
    "id, account_id, environment, endpoint_id, event_id, event_type, status, attempts,"
    " retry_base, next_attempt_at, created_at, updated_at"
)
_INSERT_CHUNK = 500  # rows per INSERT (12 parameters each, well under both databases' cap)


@dataclass(frozen=True, slots=True)
class _Routed:
    id: str
    account_id: str
    environment: str
    type: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class _NewDelivery:
    id: str
    event: _Routed
    endpoint_id: str


async def _fan_out(batch: int) -> int:
    db = Event._meta.db
    created = conflicts = 0
    while True:
        # Only what routing needs: a sync's 100,000 product events are not loaded whole.
        rows = await db.execute_query_dict(sqltext.sql(db, _UNROUTED), [batch])
        events = [
            _Routed(
                r["id"],
                r["account_id"],
                str(r["environment"]),
                r["type"],
                _datetime.to_python_value(r["created_at"]),
            )
            for r in rows
        ]
        if not events:
            return created
        endpoints: dict[tuple[str, str], list[tuple[str, list[str], datetime]]] = {}
        for tenant in {(e.account_id, e.environment) for e in events}:
            found = await db.execute_query_dict(sqltext.sql(db, _ACTIVE_ENDPOINTS), [*tenant, True])
            endpoints[tenant] = [
                (
                    r["id"],
                    _json.to_python_value(r["event_types"]) or [],
                    _datetime.to_python_value(r["created_at"]),
                )
                for r in found
            ]
        # An endpoint gets the events that happened once it existed: routing may run seconds
        # after the commit (minutes, with the workers down), and a new endpoint must not be
        # sent the backlog of changes made before it was created.
        deliveries = [
            _NewDelivery(new_id("whd"), event, endpoint_id)
            for event in events
            for endpoint_id, types, since in endpoints[(event.account_id, event.environment)]
            if event.type in types and since <= event.created_at
        ]
        deliveries = await _not_about_themselves(deliveries)
        now = datetime.now(UTC)
        ours: list[str] = []
        try:
            async with atomic() as tx:
                for start in range(0, len(deliveries), _INSERT_CHUNK):
                    ours += await _insert_deliveries(
                        tx.connection, deliveries[start : start + _INSERT_CHUNK], now
                    )
                ids = [e.id for e in events]
                await sqltext.execute(
                    tx.connection,
                    f"UPDATE events SET fanned_out_at = {{}}"
                    f" WHERE id IN ({sqltext.params(len(ids))})",
                    now,
                    *ids,
                )
        except IntegrityError:
            # An endpoint was deleted (or an event purged) after they were read: read again.
            conflicts += 1
            if conflicts > 3:
                raise
            continue
        for delivery_id in ours:
            await enqueue_attempt(delivery_id, 0, now)
        created += len(ours)
        if len(events) < batch:
            return created


async def _insert_deliveries(
    connection: Any, deliveries: list[_NewDelivery], now: datetime
) -> list[str]:
    """Insert `deliveries`; returns the ids inserted. Another process may have fanned the
    same events out meanwhile: a (endpoint, event) pair that exists is skipped, and only the
    rows inserted here are this process's to send."""
    if not deliveries:
        return []
    row = f"({sqltext.params(12)})"
    template = (
        f"INSERT INTO webhook_deliveries ({_DELIVERY_COLUMNS}) VALUES "
        + ", ".join(row for _ in deliveries)
        + " ON CONFLICT (endpoint_id, event_id) DO NOTHING RETURNING id"
    )
    values: list[Any] = []
    pending = DeliveryStatus.PENDING.value
    for d in deliveries:
        event = d.event
        values += [
            d.id,
            event.account_id,
            event.environment,
            d.endpoint_id,
            event.id,
            event.type,
            pending,
            0,
            0,
            now,
            now,
            now,
        ]
    inserted = await connection.execute_query_dict(sqltext.sql(connection, template), values)
    return [r["id"] for r in inserted]


async def _not_about_themselves(deliveries: list[_NewDelivery]) -> list[_NewDelivery]:
    """An endpoint is not sent the event saying that it was disabled."""
    about = [d.event.id for d in deliveries if d.event.type == EventType.WEBHOOK_ENDPOINT_DISABLED]
    if not about:
        return deliveries
    subject = {
        event_id: (data or {}).get("endpoint_id")
        for event_id, data in await Event.filter(id__in=about).values_list("id", "data")
    }
    return [d for d in deliveries if subject.get(d.event.id, object()) != d.endpoint_id]


async def enqueue_attempt(
    delivery_id: str,
    attempts: int,
    due: datetime | None,
    delay: float | None = None,
    *,
    orphaned_at: int | None = None,
) -> None:
    """Queue the attempt of a delivery due at `due` after `attempts` attempts (one job per
    attempt; `orphaned_at`, the sweep's minute, gives an attempt whose job was lost a new one)."""
    job_id = _attempt_job_id(delivery_id, attempts, due)
    if orphaned_at is not None:
        job_id += f":orphaned:{orphaned_at}"
    try:
        await jobs.enqueue(
            ATTEMPT_JOB,
            delivery_id,
            # One job per scheduled attempt: a sweeper finding it queued adds nothing.
            job_id=job_id,
            defer_seconds=delay or None,
        )
    except Exception:  # the sweeper finds it due
        logger.warning("could not enqueue webhook delivery %s", delivery_id, exc_info=True)


def _attempt_job_id(delivery_id: str, attempts: int, due: datetime | None) -> str:
    when = int(due.timestamp() * 1000) if due is not None else 0
    return f"{delivery_id}:{attempts}:{when}"


async def _taken(job_id: str) -> bool:
    try:
        return await jobs.taken(job_id)
    except Exception:  # the queue is unreachable: the next sweep asks again
        logger.warning("could not ask the job queue about %s", job_id, exc_info=True)
        return False


async def requeue_due(*, limit: int = 1000) -> int:
    """Sweeper: queue attempts that are due (their job was lost, or a worker died)."""
    now = datetime.now(UTC)
    due = (
        await WebhookDelivery.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .limit(limit)
    )
    minute = int(now.timestamp()) // 60
    for delivery in due:
        # Overdue, and its job taken by a worker that has not claimed the delivery: that worker
        # died. (An overdue job still waiting in a backed-up queue is not queued twice.)
        orphaned = delivery.next_attempt_at <= now - ORPHANED_AFTER and await _taken(
            _attempt_job_id(delivery.id, delivery.attempts, delivery.next_attempt_at)
        )
        await enqueue_attempt(
            delivery.id,
            delivery.attempts,
            delivery.next_attempt_at,
            orphaned_at=minute if orphaned else None,
        )
    return len(due)


# -- one attempt ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """What a receiver answered (or why it did not)."""

    status_code: int | None
    duration_ms: int
    excerpt: str
    error: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def post(url: str, body: bytes, headers: dict[str, str]) -> Answer:
    """POST once: no redirects followed, at most 30 s in all, at most 1 KiB of the answer read
    (undecoded: a compressed answer is not inflated). In production the connection goes to the
    address that was checked, never to a second DNS answer."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(TIMEOUT * 2):
            return await _post(url, body, headers, started)
    except TimeoutError:
        elapsed = int((time.perf_counter() - started) * 1000)
        return Answer(None, elapsed, "", error=f"no answer within {TIMEOUT:g} s")


async def _post(url: str, body: bytes, headers: dict[str, str], started: float) -> Answer:
    try:
        checked = await ensure_public_url(url)
    except InvalidInput as exc:
        return Answer(None, 0, "", error=f"url_not_allowed: {exc.message}")
    request_headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "accept-encoding": "identity",
        **headers,
    }
    extensions: dict[str, Any] = {}
    try:
        target = httpx.URL(url)
        if checked:
            # Dial the checked address; TLS still verifies the certificate for the host name.
            request_headers["host"] = target.netloc.decode("ascii")
            extensions["sni_hostname"] = target.host
            target = target.copy_with(host=checked[0])
        async with _client().stream(
            "POST",
            target,
            content=body,
            headers=request_headers,
            timeout=TIMEOUT,
            extensions=extensions,
        ) as reply:
            excerpt = b""
            async for chunk in reply.aiter_raw():
                excerpt += chunk
                if len(excerpt) >= EXCERPT_BYTES:
                    break
            elapsed = int((time.perf_counter() - started) * 1000)
            error = None
            if 300 <= reply.status_code < 400:
                error = f"redirect to {reply.headers.get('location', '?')} not followed"
            text = excerpt[:EXCERPT_BYTES].decode("utf-8", "replace").replace("\x00", "\ufffd")
            return Answer(
                reply.status_code,
                elapsed,
                text,
                error=error,
                retry_after=read_retry_after(reply),
            )
    except httpx.TimeoutException:
        error = f"no answer within {TIMEOUT:g} s"
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:  # IDNA errors are ValueErrors
        error = f"{type(exc).__name__}: {exc}"[:300]
    return Answer(None, int((time.perf_counter() - started) * 1000), "", error=error)


async def attempt(delivery_id: str) -> str | None:
    """Make one attempt of a due delivery (the `deliver_webhook` job); idempotent: a delivery
    not due, or in flight elsewhere, is left alone."""
    async with _slot():
        return await _attempt(delivery_id)


# The attempt runs a handful of statements per event; written out, they cost a fraction of
# building them through the ORM each time (see `app.sqltext`).
_CLAIM = (
    "UPDATE webhook_deliveries SET next_attempt_at = {}"
    " WHERE id = {} AND status = 'pending' AND next_attempt_at <= {}"
)
_LOAD = (
    "SELECT d.event_id, d.attempts, d.retry_base, ev.type, ev.created_at, ev.data,"
    " ep.id AS endpoint_id, ep.account_id, ep.environment, ep.url, ep.active,"
    " ep.secret_encrypted, ep.previous_secret_encrypted, ep.previous_secret_expires_at"
    " FROM webhook_deliveries d"
    " JOIN events ev ON ev.id = d.event_id"
    " JOIN webhook_endpoints ep ON ep.id = d.endpoint_id"
    " WHERE d.id = {}"
)
_OUTCOME = (
    "UPDATE webhook_deliveries SET attempts = {}, status = {}, last_status_code = {},"
    " last_error = {}, delivered_at = {}, next_attempt_at = {}, updated_at = {}"
    " WHERE id = {} AND status = 'pending' AND next_attempt_at = {}"
)
_LOG = (
    "INSERT INTO webhook_attempts"
    " (delivery_id, number, status_code, error, duration_ms, response_excerpt, created_at)"
    " VALUES ({}, {}, {}, {}, {}, {}, {})"
)


@dataclass(slots=True)
class _Claimed:
    """What an attempt needs of its delivery, event and endpoint, read in one query."""

    event_id: str
    attempts: int
    retry_base: int
    event_type: str
    event_created_at: datetime
    event_data: dict[str, Any]
    endpoint_id: str
    account_id: str
    environment: str
    url: str
    active: bool
    secret_encrypted: str
    previous_secret_encrypted: str | None
    previous_secret_expires_at: datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> _Claimed:
        expires = row["previous_secret_expires_at"]
        return cls(
            event_id=row["event_id"],
            attempts=row["attempts"],
            retry_base=row["retry_base"],
            event_type=row["type"],
            event_created_at=_datetime.to_python_value(row["created_at"]),
            event_data=_json.to_python_value(row["data"]),
            endpoint_id=row["endpoint_id"],
            account_id=row["account_id"],
            environment=str(row["environment"]),
            url=row["url"],
            active=bool(row["active"]),
            secret_encrypted=row["secret_encrypted"],
            previous_secret_encrypted=row["previous_secret_encrypted"],
            previous_secret_expires_at=(
                _datetime.to_python_value(expires) if expires is not None else None
            ),
        )


async def _attempt(delivery_id: str) -> str | None:
    now = datetime.now(UTC)
    db = WebhookDelivery._meta.db
    # Claim: push the due time out by a lease, so no other worker sends it meanwhile. The
    # lease's end is also the token the outcome is written with (see below).
    lease_until = now + LEASE
    if not await sqltext.execute(db, _CLAIM, lease_until, delivery_id, now):
        return None
    row = await sqltext.fetch_one(db, _LOAD, delivery_id)
    if row is None:  # deleted with its endpoint meanwhile
        return None
    claimed = _Claimed.from_row(row)
    if not claimed.active:
        await WebhookDelivery.filter(id=delivery_id, next_attempt_at=lease_until).update(
            status=DeliveryStatus.FAILED,
            last_error="endpoint disabled",
            next_attempt_at=None,
            updated_at=datetime.now(UTC),
        )
        return DeliveryStatus.FAILED.value
    body = payload(claimed.event_type, claimed.event_created_at, claimed.event_data)
    try:
        secrets_ = signing_secrets(claimed, now)
    except ValueError as exc:  # the secret key changed: a failed attempt, retried and logged
        logger.error("webhook endpoint %s: %s", claimed.endpoint_id, exc)
        answer = Answer(None, 0, "", error="internal: the signing secret cannot be read")
    else:
        headers = signed_headers(secrets_, claimed.event_id, int(now.timestamp()), body)
        answer = await post(claimed.url, body, headers)  # bounded well inside the lease
    attempts = claimed.attempts + 1
    status = DeliveryStatus.PENDING
    delivered_at = next_attempt_at = None
    disable_reason = None
    if answer.ok:
        status = DeliveryStatus.DELIVERED
        delivered_at = datetime.now(UTC)
    elif answer.status_code == 410:
        status = DeliveryStatus.FAILED
        disable_reason = "The endpoint answered 410 Gone."
    else:
        delay = next_delay(attempts - claimed.retry_base, answer.retry_after)
        if delay is None:
            status = DeliveryStatus.FAILED
            disable_reason = f"Every attempt of {len(SCHEDULE)} failed."
        else:
            next_attempt_at = datetime.now(UTC) + timedelta(seconds=delay)
    try:
        async with atomic() as tx:
            # Written only while the lease is still ours: an attempt that outlived it (a paused
            # process) must not overwrite what the worker that took over has done since.
            owned = await sqltext.execute(
                tx.connection,
                _OUTCOME,
                attempts,
                status.value,
                answer.status_code,
                answer.error,
                delivered_at,
                next_attempt_at,
                datetime.now(UTC),
                delivery_id,
                lease_until,
            )
            await sqltext.execute(
                tx.connection,
                _LOG,
                delivery_id,
                attempts,
                answer.status_code,
                answer.error if owned else f"{answer.error or ''} (lease lost)".strip(),
                answer.duration_ms,
                answer.excerpt,
                datetime.now(UTC),
            )
            if owned and disable_reason is not None:
                await _disable(claimed, disable_reason, tx)
    except IntegrityError:
        if await WebhookDelivery.exists(id=delivery_id):
            raise
        return None  # deleted with its endpoint while the request was on its way
    if not owned:
        logger.warning("webhook delivery %s: attempt outlived its lease", delivery_id)
        return None
    if status is DeliveryStatus.PENDING and next_attempt_at is not None:
        delay = (next_attempt_at - datetime.now(UTC)).total_seconds()
        if delay <= QUEUE_AHEAD:  # later attempts wait in the database for the sweeper
            await enqueue_attempt(delivery_id, attempts, next_attempt_at, max(delay, 0.0))
    return status.value


async def _disable(claimed: _Claimed, reason: str, tx: Any) -> None:
    updated = await (
        WebhookEndpoint.filter(id=claimed.endpoint_id, active=True)
        .using_db(tx.connection)
        .update(active=False, disabled_reason=reason, updated_at=datetime.now(UTC))
    )
    if updated:
        logger.warning("webhook endpoint %s disabled: %s", claimed.endpoint_id, reason)
        await emit(
            tx,
            account_id=claimed.account_id,
            environment=claimed.environment,
            type=EventType.WEBHOOK_ENDPOINT_DISABLED,
            data={"endpoint_id": claimed.endpoint_id, "url": claimed.url, "reason": reason},
        )


async def send_test(endpoint: WebhookEndpoint) -> tuple[str, Answer]:
    """A signed `webhook.test` event, sent now; the receiver's answer is returned, not retried."""
    now = datetime.now(UTC)
    message_id = new_id("evt")
    body = payload(
        "webhook.test",
        now,
        {"endpoint_id": endpoint.id, "message": "A test event from SyncAuction."},
    )
    headers = signed_headers(signing_secrets(endpoint, now), message_id, int(now.timestamp()), body)
    return message_id, await post(endpoint.url, body, headers)
