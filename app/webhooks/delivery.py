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

from app import jobs
from app.connectors.http import read_retry_after
from app.errors import InvalidInput
from app.events.models import Event
from app.events.service import atomic, emit, format_timestamp
from app.events.types import EventType
from app.ids import new_id
from app.netguard import ensure_public_url
from app.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.webhooks.service import signing_secrets
from app.webhooks.signing import headers as signed_headers

logger = logging.getLogger("syncauction.webhooks")

# Seconds before each attempt: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
JITTER = 0.1  # +-10 % on every delay but the first
TIMEOUT = 15.0
EXCERPT_BYTES = 1024
LEASE = timedelta(seconds=TIMEOUT * 4)  # an attempt in flight is not picked up again before
ATTEMPT_JOB = "deliver_webhook"
USER_AGENT = "SyncAuction-Webhooks/1"

_rng = random.Random()
# Attempts running at once in one process: beyond this they wait (a burst of thousands of
# events must not open thousands of connections or starve the database pool).
MAX_CONCURRENT_ATTEMPTS = 32
# Attempts due within this many seconds are queued as deferred jobs; later ones (minutes to
# hours away) stay rows until the sweeper finds them due, not jobs sleeping in a queue.
QUEUE_AHEAD = 300.0
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


async def _fan_out(batch: int) -> int:
    created = 0
    while True:
        # Only what routing needs: a sync's 100,000 product events are not loaded whole.
        events = [
            _Routed(*row)
            for row in await Event.filter(fanned_out_at=None)
            .order_by("id")
            .limit(batch)
            .values_list("id", "account_id", "environment", "type")
        ]
        if not events:
            return created
        endpoints: dict[tuple[str, str], list[WebhookEndpoint]] = {}
        tenants = {(e.account_id, str(e.environment)) for e in events}
        for account_id, environment in tenants:
            endpoints[(account_id, environment)] = list(
                await WebhookEndpoint.filter(
                    account_id=account_id, environment=environment, active=True
                )
            )
        now = datetime.now(UTC)
        deliveries = [
            WebhookDelivery(
                id=new_id("whd"),
                account_id=event.account_id,
                environment=event.environment,
                endpoint_id=endpoint.id,
                event_id=event.id,
                event_type=event.type,
                next_attempt_at=now,
            )
            for event in events
            for endpoint in endpoints[(event.account_id, str(event.environment))]
            if event.type in (endpoint.event_types or ())
        ]
        deliveries = await _not_about_themselves(deliveries)
        async with atomic() as tx:
            if deliveries:
                await WebhookDelivery.bulk_create(
                    deliveries, using_db=tx.connection, ignore_conflicts=True
                )
            await (
                Event.filter(id__in=[e.id for e in events])
                .using_db(tx.connection)
                .update(fanned_out_at=now)
            )
        if deliveries:
            # Another process may have fanned the same events out meanwhile: only the rows
            # that exist under these ids are ours to send.
            ours = set(
                await WebhookDelivery.filter(id__in=[d.id for d in deliveries]).values_list(
                    "id", flat=True
                )
            )
            deliveries = [d for d in deliveries if d.id in ours]
        for delivery in deliveries:
            await enqueue_attempt(delivery)
        created += len(deliveries)
        if len(events) < batch:
            return created


@dataclass(frozen=True, slots=True)
class _Routed:
    id: str
    account_id: str
    environment: str
    type: str


async def _not_about_themselves(deliveries: list[WebhookDelivery]) -> list[WebhookDelivery]:
    """An endpoint is not sent the event saying that it was disabled."""
    about = [d.event_id for d in deliveries if d.event_type == EventType.WEBHOOK_ENDPOINT_DISABLED]
    if not about:
        return deliveries
    subject = {
        event_id: (data or {}).get("endpoint_id")
        for event_id, data in await Event.filter(id__in=about).values_list("id", "data")
    }
    return [d for d in deliveries if subject.get(d.event_id, object()) != d.endpoint_id]


async def enqueue_attempt(delivery: WebhookDelivery, delay: float | None = None) -> None:
    """Queue the next attempt of `delivery` (one job per attempt)."""
    try:
        await jobs.enqueue(
            ATTEMPT_JOB,
            delivery.id,
            # One job per scheduled attempt: a sweeper finding it queued adds nothing.
            job_id=f"{delivery.id}:{delivery.attempts}:{_when(delivery)}",
            defer_seconds=delay or None,
        )
    except Exception:  # the sweeper finds it due
        logger.warning("could not enqueue webhook delivery %s", delivery.id, exc_info=True)


def _when(delivery: WebhookDelivery) -> int:
    due = delivery.next_attempt_at
    return int(due.timestamp() * 1000) if due is not None else 0


async def requeue_due(*, limit: int = 1000) -> int:
    """Sweeper: queue attempts that are due (their job was lost, or a worker died)."""
    now = datetime.now(UTC)
    due = (
        await WebhookDelivery.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .limit(limit)
    )
    for delivery in due:
        await enqueue_attempt(delivery)
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


async def _attempt(delivery_id: str) -> str | None:
    now = datetime.now(UTC)
    # Claim: push the due time out by a lease, so no other worker sends it meanwhile. The
    # lease's end is also the token the outcome is written with (see below).
    lease_until = now + LEASE
    claimed = await WebhookDelivery.filter(
        id=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=lease_until)
    if not claimed:
        return None
    delivery = await WebhookDelivery.get(id=delivery_id).select_related("endpoint", "event")
    endpoint: WebhookEndpoint = delivery.endpoint
    event: Event = delivery.event
    if not endpoint.active:
        delivery.status = DeliveryStatus.FAILED
        delivery.last_error = "endpoint disabled"
        delivery.next_attempt_at = None
        await delivery.save()
        return delivery.status.value
    body = payload(event.type, event.created_at, event.data)
    try:
        secrets_ = signing_secrets(endpoint, now)
    except ValueError as exc:  # the secret key changed: a failed attempt, retried and logged
        logger.error("webhook endpoint %s: %s", endpoint.id, exc)
        answer = Answer(None, 0, "", error="internal: the signing secret cannot be read")
    else:
        headers = signed_headers(secrets_, event.id, int(now.timestamp()), body)
        answer = await post(endpoint.url, body, headers)  # bounded well inside the lease
    delivery.attempts += 1
    delivery.last_status_code = answer.status_code
    delivery.last_error = answer.error
    disable_reason = None
    if answer.ok:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = datetime.now(UTC)
        delivery.next_attempt_at = None
    elif answer.status_code == 410:
        delivery.status = DeliveryStatus.FAILED
        delivery.next_attempt_at = None
        disable_reason = "The endpoint answered 410 Gone."
    else:
        delay = next_delay(delivery.attempts - delivery.retry_base, answer.retry_after)
        if delay is None:
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
            disable_reason = f"Every attempt of {len(SCHEDULE)} failed."
        else:
            delivery.next_attempt_at = datetime.now(UTC) + timedelta(seconds=delay)
    async with atomic() as tx:
        # Written only while the lease is still ours: an attempt that outlived it (a paused
        # process) must not overwrite what the worker that took over has done since.
        owned = await (
            WebhookDelivery.filter(
                id=delivery.id, status=DeliveryStatus.PENDING, next_attempt_at=lease_until
            )
            .using_db(tx.connection)
            .update(
                attempts=delivery.attempts,
                status=delivery.status,
                last_status_code=delivery.last_status_code,
                last_error=delivery.last_error,
                delivered_at=delivery.delivered_at,
                next_attempt_at=delivery.next_attempt_at,
                updated_at=datetime.now(UTC),
            )
        )
        await WebhookAttempt.create(
            delivery_id=delivery.id,
            number=delivery.attempts,
            status_code=answer.status_code,
            error=answer.error if owned else f"{answer.error or ''} (lease lost)".strip(),
            duration_ms=answer.duration_ms,
            response_excerpt=answer.excerpt,
            using_db=tx.connection,
        )
        if owned and disable_reason is not None:
            await _disable(endpoint, disable_reason, tx)
    if not owned:
        logger.warning("webhook delivery %s: attempt outlived its lease", delivery.id)
        return None
    if delivery.status is DeliveryStatus.PENDING:
        delay = (delivery.next_attempt_at - datetime.now(UTC)).total_seconds()
        if delay <= QUEUE_AHEAD:  # later attempts wait in the database for the sweeper
            await enqueue_attempt(delivery, max(delay, 0.0))
    return delivery.status.value


async def _disable(endpoint: WebhookEndpoint, reason: str, tx: Any) -> None:
    updated = await (
        WebhookEndpoint.filter(id=endpoint.id, active=True)
        .using_db(tx.connection)
        .update(active=False, disabled_reason=reason)
    )
    if updated:
        logger.warning("webhook endpoint %s disabled: %s", endpoint.id, reason)
        await emit(
            tx,
            account_id=endpoint.account_id,
            environment=str(endpoint.environment),
            type=EventType.WEBHOOK_ENDPOINT_DISABLED,
            data={"endpoint_id": endpoint.id, "url": endpoint.url, "reason": reason},
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
