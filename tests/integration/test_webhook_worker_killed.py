"""A webhook worker killed mid-delivery (SIGKILL, the POST in flight) loses nothing: once the
attempt's lease has run out, the sweeper queues the delivery again, the next attempt delivers
it with the same webhook-id and a valid signature, and every other event arrives too.

The receiver must outlive the killed process, so it is served by uvicorn in a thread of the
test process on a free 127.0.0.1 port (development settings allow private webhook targets).
It records the webhook-id of every request and stops at the `HOLD_AT`-th one until released,
so that the kill lands on a known point:

- `answer_lost`: the receiver processed the event, but the worker died before it read the
  answer (and before it recorded the attempt): the event must come again, with the same
  webhook-id, so that the receiver can tell it is a duplicate;
- `request_lost`: the worker died while the request was on its way (the receiver never
  processed it): the event must come again, or it is lost.

The worker is a child process (`webhook_worker_child.py`) on PostgreSQL: it fans `EVENTS`
events out and attempts their deliveries in order; it is SIGKILLed while the `HOLD_AT`-th POST
is held. The test process then plays the surviving worker: the sweeper (`requeue_due`) and the
`deliver_webhook` job (`attempt`), first while the dead worker's lease still holds (the
delivery is left alone), then once it has run out (the lease is moved back by `LEASE`, as the
clock would do).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from app import db, runtime
from app.config import Settings
from app.events.models import Event
from app.webhooks import delivery as sender
from app.webhooks import service as webhooks
from app.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from tests.conftest import (
    _run,
    _truncate,
    make_product,
    make_settings,
    make_tenant,
    requires_postgres,
)
from tests.integration.child_process import kill, wait_until
from tests.integration.threaded_server import serve_in_thread

pytestmark = [pytest.mark.integration, requires_postgres]

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 5
HOLD_AT = 3  # the request the kill lands on
WAIT = 20.0


# -- the receiver, served over HTTP ---------------------------------------------------------


@dataclass
class Arrival:
    headers: dict[str, str]
    body: bytes
    processed: bool


@dataclass
class Receiver:
    """A merchant's receiver (ASGI): records every POST and whether it processed it; the
    `hold_at`-th POST stops, after processing it (`process_held`) or before, until `release`
    is set, then answers (to nobody, by then)."""

    hold_at: int
    process_held: bool
    arrivals: list[Arrival] = field(default_factory=list)
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        hold = len(self.arrivals) + 1 == self.hold_at
        processed = not hold or self.process_held
        self.arrivals.append(Arrival(headers, body, processed))
        if hold:
            self.held.set()
            while not self.release.is_set():
                await asyncio.sleep(0.01)
        status = 200 if processed else 503
        await _quietly(send, {"type": "http.response.start", "status": status, "headers": []})
        await _quietly(send, {"type": "http.response.body", "body": b"ok"})

    def processed_ids(self) -> list[str]:
        return [a.headers["webhook-id"] for a in self.arrivals if a.processed]


async def _quietly(send: Any, message: dict[str, Any]) -> None:
    with contextlib.suppress(Exception):  # the worker is gone (it was killed)
        await send(message)


@contextlib.contextmanager
def serve(receiver: Receiver) -> Iterator[str]:
    """Serve `receiver` with uvicorn in a thread; yields its URL."""
    try:
        with serve_in_thread(receiver, "webhook-receiver") as base:
            yield base + "/hook"
    finally:
        receiver.release.set()


# -- this process: the surviving worker -----------------------------------------------------


class RecordingQueue:
    """The job queue of this process: records the `deliver_webhook` jobs queued, which the
    test then runs (a worker draining its queue, made explicit)."""

    def __init__(self) -> None:
        self.queued: list[str] = []

    async def enqueue(self, name: str, *args: Any, **_: Any) -> str | None:
        if name == sender.ATTEMPT_JOB:
            self.queued.append(args[0])
        return None

    def take(self) -> list[str]:
        taken, self.queued = list(dict.fromkeys(self.queued)), []
        return taken

    async def close(self) -> None:
        return None


@pytest.fixture
def worker_settings(postgres_url: str, tmp_path: Path) -> Settings:
    _run(_truncate(postgres_url))
    return make_settings(postgres_url, tmp_path / "data")


@pytest.fixture
async def queue(worker_settings: Settings) -> AsyncIterator[RecordingQueue]:
    """This process's runtime and ORM, with a recording job queue."""
    recording = RecordingQueue()
    runtime.install(worker_settings).jobs = recording
    await db.init_orm(worker_settings.resolved_database_url)
    try:
        yield recording
    finally:
        await db.close_orm()


async def drain(queue: RecordingQueue) -> dict[str, str | None]:
    """Run the queued `deliver_webhook` jobs (and those they queue) until none is left due."""
    outcomes: dict[str, str | None] = {}
    for _ in range(10):
        ids = queue.take()
        if not ids:
            return outcomes
        for delivery_id in ids:
            outcomes[delivery_id] = await sender.attempt(delivery_id)
    raise AssertionError("the deliveries kept being queued")


# -- the killed worker ----------------------------------------------------------------------


_CHILD_SETTINGS = {
    "env",
    "data_dir",
    "database_url",
    "redis_url",
    "secret_key",
    "auto_migrate",
    "demo",
    "log_level",
}


def spawn(settings: Settings, event_ids: list[str], log: Path) -> subprocess.Popen:
    config = {
        "settings": json.loads(settings.model_dump_json(include=_CHILD_SETTINGS)),
        "event_ids": event_ids,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCAUCTION_")}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.integration.webhook_worker_child", json.dumps(config)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


# -- the test -------------------------------------------------------------------------------


@pytest.mark.parametrize("point", ["answer_lost", "request_lost"])
async def test_a_worker_killed_mid_delivery_loses_nothing(
    point: str, worker_settings: Settings, queue: RecordingQueue, tmp_path: Path
) -> None:
    receiver = Receiver(hold_at=HOLD_AT, process_held=point == "answer_lost")
    log = tmp_path / "worker-child.log"

    with serve(receiver) as url:
        tenant = await make_tenant()
        created = await webhooks.create_endpoint(
            tenant.principal(),
            data=webhooks.WebhookEndpointInput(url=url, event_types=["product.created"]),
        )
        secret = created.secret
        for n in range(EVENTS):
            await make_product(tenant, f"{100000 + n}")
        created_events = Event.filter(account_id=tenant.account_id, type="product.created")
        events = await created_events.order_by("id")
        assert len(events) == EVENTS
        event_ids = [e.id for e in events]
        killed_event = event_ids[HOLD_AT - 1]

        # 1. The worker fans out and delivers, and is SIGKILLed while POST HOLD_AT is held.
        child = spawn(worker_settings, event_ids, log)
        try:

            async def held() -> bool:
                return receiver.held.is_set()

            await wait_until(held, child, log, f"request {HOLD_AT} was held", timeout=WAIT)
            kill(child)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        receiver.release.set()

        assert len(receiver.arrivals) == HOLD_AT
        assert receiver.arrivals[-1].headers["webhook-id"] == killed_event
        deliveries = {
            d.event_id: d for d in await WebhookDelivery.filter(endpoint_id=created.endpoint.id)
        }
        assert set(deliveries) == set(event_ids)  # every event was fanned out
        killed = deliveries[killed_event]
        now = datetime.now(UTC)
        for event_id in event_ids[: HOLD_AT - 1]:
            assert deliveries[event_id].status is DeliveryStatus.DELIVERED
        # The attempt in flight left its delivery pending, under the dead worker's lease.
        assert killed.status is DeliveryStatus.PENDING
        assert killed.attempts == 0
        assert killed.next_attempt_at > now
        assert killed.next_attempt_at - now <= sender.LEASE
        for event_id in event_ids[HOLD_AT:]:  # never tried
            assert deliveries[event_id].status is DeliveryStatus.PENDING
            assert deliveries[event_id].attempts == 0
            assert deliveries[event_id].next_attempt_at <= now

        # 2. While the lease holds, the delivery counts as in flight elsewhere: the sweeper
        # leaves it alone, and so does an attempt; the rest is delivered by the survivor.
        assert await sender.attempt(killed.id) is None
        await sender.requeue_due()
        outcomes = await drain(queue)
        assert outcomes == {deliveries[e].id: "delivered" for e in event_ids[HOLD_AT:]}
        still = await WebhookDelivery.get(id=killed.id)
        assert (still.status, still.attempts) == (DeliveryStatus.PENDING, 0)
        assert still.next_attempt_at == killed.next_attempt_at
        assert len(receiver.arrivals) == EVENTS

        # 3. The lease runs out (moved back by LEASE, as the clock would do): the sweeper
        # queues the delivery, and the next attempt delivers it.
        await WebhookDelivery.filter(id=killed.id).update(
            next_attempt_at=killed.next_attempt_at - sender.LEASE
        )
        assert await sender.requeue_due() == 1
        assert await drain(queue) == {killed.id: "delivered"}
        assert await sender.requeue_due() == 0

    # Nothing lost: every event delivered, and processed by the receiver.
    processed = Counter(receiver.processed_ids())
    assert set(processed) == set(event_ids)
    for event_id in event_ids:
        expected = 2 if (event_id == killed_event and point == "answer_lost") else 1
        assert processed[event_id] == expected, event_id
    assert len(receiver.arrivals) == EVENTS + 1

    # The same webhook-id on every try of the killed delivery, each one validly signed.
    tries = [a for a in receiver.arrivals if a.headers["webhook-id"] == killed_event]
    assert len(tries) == 2
    assert tries[0].body == tries[1].body  # the same payload, byte for byte
    by_id = {e.id: e for e in events}
    for arrival in receiver.arrivals:
        payload = Webhook(secret).verify(arrival.body, arrival.headers)
        event = by_id[arrival.headers["webhook-id"]]
        assert payload == {
            "event": "product.created",
            "timestamp": event.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "data": event.data,
        }

    # Every delivery delivered once and its attempts logged, numbered, the last one a 200.
    for event_id in event_ids:
        delivery = await WebhookDelivery.get(event_id=event_id)
        assert delivery.status is DeliveryStatus.DELIVERED, event_id
        assert delivery.delivered_at is not None and delivery.next_attempt_at is None
        assert delivery.last_status_code == 200
        logged = await WebhookAttempt.filter(delivery_id=delivery.id).order_by("number")
        assert [a.number for a in logged] == list(range(1, delivery.attempts + 1))
        assert logged[-1].status_code == 200
        if event_id != killed_event:
            assert delivery.attempts == 1
        else:
            # The killed attempt ended with its process: whether or not it is logged, the one
            # that delivered is.
            assert delivery.attempts >= 1
