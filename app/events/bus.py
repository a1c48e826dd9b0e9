"""The event bus: how a committed event reaches live subscribers in every API process.

`InProcessBus` fans out inside one process (embedded mode). `RedisBus` publishes on one Redis
channel and runs one listener per process that feeds the same local fan-out, so an event emitted
in an arq worker reaches subscribers on every API process. Each subscriber has a bounded queue:
a slow consumer loses its oldest events (and is told so) instead of stalling everybody.
Subscriptions are kept by account and environment, so an event costs its own tenant's
subscribers, not every subscriber of the process; a tenant may hold at most
`MAX_SUBSCRIPTIONS_PER_TENANT` live subscriptions in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

logger = logging.getLogger("syncauction.events")

CHANNEL = "syncauction:events"
SUBSCRIBER_QUEUE_SIZE = 1000
MAX_SUBSCRIPTIONS_PER_TENANT = 100  # per process: a dashboard opens a few


class TooManySubscriptions(Exception):
    """The tenant already holds the most live subscriptions one process serves."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} live subscriptions per tenant")
        self.limit = limit


@dataclass(eq=False)
class Subscription:
    account_id: str
    environment: str
    types: frozenset[str] | None
    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(SUBSCRIBER_QUEUE_SIZE)
    )
    dropped: int = 0

    def wants(self, message: dict[str, Any]) -> bool:
        return (
            message.get("account_id") == self.account_id
            and message.get("environment") == self.environment
            and (self.types is None or message.get("event") in self.types)
        )

    def offer(self, message: dict[str, Any]) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(message)


class InProcessBus:
    """Fan-out to the subscribers of this process."""

    def __init__(self) -> None:
        self._subscriptions: dict[tuple[str, str], set[Subscription]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._subscriptions.clear()

    async def publish(self, message: dict[str, Any]) -> None:
        self._deliver_locally(message)

    def _deliver_locally(self, message: dict[str, Any]) -> None:
        tenant = (message.get("account_id"), message.get("environment"))
        for subscription in list(self._subscriptions.get(tenant, ())):  # type: ignore[arg-type]
            if subscription.wants(message):
                subscription.offer(message)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, *, account_id: str, environment: str, types: frozenset[str] | None = None
    ) -> AsyncIterator[Subscription]:
        """A live subscription to the tenant's events; raises `TooManySubscriptions` when the
        tenant holds `MAX_SUBSCRIPTIONS_PER_TENANT` in this process already."""
        tenant = (account_id, environment)
        held = self._subscriptions.setdefault(tenant, set())
        if len(held) >= MAX_SUBSCRIPTIONS_PER_TENANT:
            raise TooManySubscriptions(MAX_SUBSCRIPTIONS_PER_TENANT)
        subscription = Subscription(account_id, environment, types)
        held.add(subscription)
        try:
            yield subscription
        finally:
            held.discard(subscription)
            if not held and self._subscriptions.get(tenant) is held:
                del self._subscriptions[tenant]

    @property
    def subscriber_count(self) -> int:
        return sum(len(held) for held in self._subscriptions.values())


class RedisBus(InProcessBus):
    """Redis pub/sub between processes; one listener task per process."""

    def __init__(self, redis_url: str, *, start_timeout: float = 10.0) -> None:
        super().__init__()
        from redis.asyncio import Redis

        # Publishing is on the request path: bounded waits. The listener's connection idles
        # between events by design, so it gets no read timeout, only health checks.
        self._redis = Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        self._listen_redis = Redis.from_url(
            redis_url, socket_connect_timeout=2, health_check_interval=30
        )
        self._listener: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._start_timeout = start_timeout

    async def start(self) -> None:
        """Subscribe the listener; raise `ConnectionError` if Redis cannot be reached."""
        self._listener = asyncio.create_task(self._listen(), name="event-bus-listener")
        try:
            await asyncio.wait_for(self._ready.wait(), timeout=self._start_timeout)
        except TimeoutError:
            # Without this the listener would keep retrying forever in a process that failed
            # to start.
            await self.close()
            raise ConnectionError(
                f"the event bus could not subscribe to Redis within {self._start_timeout:g} s"
            ) from None

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._redis.aclose()
        await self._listen_redis.aclose()
        await super().close()

    async def publish(self, message: dict[str, Any]) -> None:
        await self._redis.publish(CHANNEL, orjson.dumps(message))

    async def _listen(self) -> None:
        while True:
            pubsub = self._listen_redis.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                self._ready.set()
                async for raw in pubsub.listen():
                    if raw.get("type") != "message":
                        continue
                    try:
                        self._deliver_locally(orjson.loads(raw["data"]))
                    except orjson.JSONDecodeError:
                        logger.warning("dropped a malformed bus message")
            except asyncio.CancelledError:
                await pubsub.aclose()
                raise
            except Exception:  # the connection dropped: reconnect after a pause
                logger.exception("event bus listener lost its connection; reconnecting")
                await pubsub.aclose()
                await asyncio.sleep(1)


EventBus = InProcessBus

_bus: EventBus | None = None


def set_bus(bus: EventBus | None) -> None:
    """Install the process's bus (the app lifespan and the worker start-up do this)."""
    global _bus
    _bus = bus


def get_bus() -> EventBus | None:
    return _bus


def make_bus(redis_url: str | None) -> EventBus:
    return RedisBus(redis_url) if redis_url else InProcessBus()
