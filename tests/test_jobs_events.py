"""Jobs and events in embedded mode: the in-process job queue, the outbox (`atomic()` + `emit()`),
the in-process bus and the sweeper, on SQLite and (where configured) PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app import runtime
from app.accounts.models import Environment
from app.events import bus as bus_module
from app.events.bus import InProcessBus
from app.events.models import Event
from app.events.service import atomic, emit, flush_published_marks, publish_pending_events
from app.events.types import EventType
from app.ids import new_id
from app.jobs import InProcessQueue, enqueue
from tests.conftest import make_product
from workers import jobs as worker_jobs
from workers.registry import JOBS

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _drain(queue: asyncio.Queue[dict[str, Any]]) -> list[dict[str, Any]]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


async def _stored_event(
    account_id: str,
    *,
    age: timedelta,
    published: bool = False,
    type: EventType = EventType.SYNC_COMPLETED,
) -> Event:
    """An outbox row written without going through `atomic()` (as if the process had died
    between commit and publication), backdated by `age`."""
    event = await Event.create(
        id=new_id("evt"),
        account_id=account_id,
        environment=Environment.LIVE,
        type=type.value,
        data={"sync_id": "sync_abc", "type": "delta"},
        published_at=datetime.now(UTC) if published else None,
    )
    await Event.filter(id=event.id).update(created_at=datetime.now(UTC) - age)
    return await Event.get(id=event.id)


# --- the in-process job queue -------------------------------------------------------------


async def test_in_process_queue_calls_the_job_with_ctx_and_args():
    calls: list[tuple[dict[str, Any], tuple[Any, ...]]] = []

    async def record_call(ctx: dict[str, Any], *args: Any) -> str:
        calls.append((ctx, args))
        return "done"

    queue = InProcessQueue({"record_call": record_call}, context={"settings": "S"})
    job_id = await queue.enqueue("record_call", "prod_1", 42, job_id="sync:prod_1")
    assert job_id == "sync:prod_1"
    generated = await queue.enqueue("record_call", "prod_2")
    assert generated == "inproc-2"
    await queue.join()
    assert sorted(calls, key=lambda c: c[1]) == [
        ({"settings": "S", "job_id": "sync:prod_1", "job_try": 1}, ("prod_1", 42)),
        ({"settings": "S", "job_id": "inproc-2", "job_try": 1}, ("prod_2",)),
    ]
    with pytest.raises(LookupError, match="unknown job 'nope'"):
        await queue.enqueue("nope")
    await queue.close()


async def test_a_failing_job_is_logged_and_the_queue_keeps_working():
    ran: list[str] = []

    async def flaky(ctx: dict[str, Any], name: str) -> None:
        if name == "bad":
            raise RuntimeError("boom")
        ran.append(name)

    queue = InProcessQueue({"flaky": flaky})
    await queue.enqueue("flaky", "bad")
    await queue.join()
    await queue.enqueue("flaky", "good")
    await queue.join()
    assert ran == ["good"]
    await queue.close()


async def test_job_id_is_not_enqueued_twice_while_running():
    release = asyncio.Event()
    runs: list[str] = []

    async def slow_sync(ctx: dict[str, Any], store_id: str) -> None:
        runs.append(store_id)
        await release.wait()

    queue = InProcessQueue({"slow_sync": slow_sync})
    assert await queue.enqueue("slow_sync", "store_1", job_id="sync:store_1") == "sync:store_1"
    await asyncio.sleep(0)  # let it start
    assert await queue.enqueue("slow_sync", "store_1", job_id="sync:store_1") is None
    assert await queue.enqueue("slow_sync", "store_2", job_id="sync:store_2") == "sync:store_2"
    release.set()
    await queue.join()
    assert sorted(runs) == ["store_1", "store_2"]
    # Once finished, the same id may run again (the row says whether there is work).
    assert await queue.enqueue("slow_sync", "store_1", job_id="sync:store_1") == "sync:store_1"
    await queue.join()
    assert sorted(runs) == ["store_1", "store_1", "store_2"]
    await queue.close()


async def test_close_waits_for_running_jobs_then_refuses_new_ones():
    finished: list[str] = []

    async def short_job(ctx: dict[str, Any]) -> None:
        await asyncio.sleep(0.1)
        finished.append(ctx["job_id"])

    queue = InProcessQueue({"short_job": short_job}, shutdown_timeout=5)
    await queue.enqueue("short_job", job_id="a")
    await queue.enqueue("short_job", job_id="b")
    await asyncio.sleep(0)
    await queue.close()
    assert sorted(finished) == ["a", "b"]
    with pytest.raises(RuntimeError, match="closed"):
        await queue.enqueue("short_job")


async def test_close_cancels_jobs_that_outlive_the_shutdown_timeout():
    outcome: list[str] = []

    async def stuck(ctx: dict[str, Any]) -> None:
        try:
            await asyncio.sleep(60)
            outcome.append("finished")
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    queue = InProcessQueue({"stuck": stuck}, shutdown_timeout=0.05)
    await queue.enqueue("stuck")
    await asyncio.sleep(0)
    started = time.monotonic()
    await queue.close()
    assert time.monotonic() - started < 2
    assert outcome == ["cancelled"]


async def test_close_does_not_wait_for_deferred_jobs_that_have_not_started():
    ran: list[str] = []

    async def retry_delivery(ctx: dict[str, Any], attempt: str) -> None:
        await asyncio.sleep(0.05)
        ran.append(attempt)

    queue = InProcessQueue({"retry_delivery": retry_delivery}, shutdown_timeout=5)
    await queue.enqueue("retry_delivery", "now")
    await queue.enqueue("retry_delivery", "in 30 s", defer_seconds=30)
    started = time.monotonic()
    await queue.close()
    assert time.monotonic() - started < 1, "shutdown waited for a job that was only scheduled"
    assert ran == ["now"]


async def test_deferred_job_runs_after_its_delay():
    ran_at: list[float] = []

    async def later(ctx: dict[str, Any]) -> None:
        ran_at.append(time.monotonic())

    queue = InProcessQueue({"later": later})
    started = time.monotonic()
    await queue.enqueue("later", defer_seconds=0.2)
    await queue.join()
    assert len(ran_at) == 1 and ran_at[0] - started >= 0.19
    await queue.close()


async def test_enqueue_runs_a_registered_job_in_the_app_runtime(app, tenant):
    rt = runtime.current()
    assert rt.bus is not None and rt.jobs is not None
    assert set(JOBS) == {
        "publish_events_sweep",
        "purge_idempotency_records",
        "purge_old_events",
        "run_sync",
        "schedule_syncs",
        "resume_stalled_syncs",
        "fan_out_webhooks",
        "deliver_webhook",
        "requeue_due_webhooks",
    }
    pending = await _stored_event(tenant.account_id, age=timedelta(minutes=5))
    async with rt.bus.subscribe(
        account_id=tenant.account_id, environment=Environment.LIVE
    ) as subscription:
        job_id = await enqueue(worker_jobs.publish_events_sweep)
        assert job_id is not None and job_id.startswith("inproc-")
        await rt.jobs.join()  # type: ignore[union-attr]
        [message] = _drain(subscription.queue)
    assert message["id"] == pending.id
    assert message["event"] == "sync.completed"
    assert (await Event.get(id=pending.id)).published_at is not None


# --- the outbox and the in-process bus ----------------------------------------------------


async def test_event_reaches_subscriber_only_after_commit_with_documented_shape(app, tenant):
    bus = runtime.current().bus
    assert bus is not None
    data = {"product_id": "prod_x", "sku": "HA-123456", "price": 430.5}
    async with bus.subscribe(
        account_id=tenant.account_id, environment=Environment.LIVE
    ) as subscription:
        async with atomic() as tx:
            event = await emit(
                tx,
                account_id=tenant.account_id,
                environment=Environment.LIVE,
                type=EventType.PRODUCT_UPDATED,
                data=data,
            )
            await asyncio.sleep(0)
            assert subscription.queue.empty(), "published before the transaction committed"
        [message] = _drain(subscription.queue)

    assert event.id.startswith("evt_")
    assert message["id"] == event.id
    assert message["event"] == "product.updated"
    assert message["data"] == data
    assert TIMESTAMP.match(message["timestamp"])
    row = await Event.get(id=event.id)
    assert message["timestamp"] == row.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert message["account_id"] == tenant.account_id
    assert message["environment"] == "live"
    assert set(message) == {"id", "event", "timestamp", "data", "account_id", "environment"}
    assert row.type == "product.updated"
    assert row.published_at is None  # marked with the next batch, a moment later
    await flush_published_marks()
    assert (await Event.get(id=event.id)).published_at is not None


async def test_event_is_neither_stored_nor_published_when_the_transaction_fails(app, tenant):
    bus = runtime.current().bus
    assert bus is not None
    emitted: list[str] = []
    async with bus.subscribe(
        account_id=tenant.account_id, environment=Environment.LIVE
    ) as subscription:
        with pytest.raises(ValueError, match="price below cost"):
            async with atomic() as tx:
                event = await emit(
                    tx,
                    account_id=tenant.account_id,
                    environment=Environment.LIVE,
                    type=EventType.PRODUCT_CREATED,
                    data={"product_id": "prod_y"},
                )
                emitted.append(event.id)
                raise ValueError("price below cost")
        await asyncio.sleep(0)
        assert subscription.queue.empty()
    assert len(emitted) == 1
    assert not await Event.filter(id=emitted[0]).exists()
    assert await Event.filter(account_id=tenant.account_id).count() == 0


async def test_subscribers_see_only_their_account_environment_and_types(app, tenant, other_tenant):
    bus = runtime.current().bus
    assert bus is not None
    async with (
        bus.subscribe(account_id=tenant.account_id, environment="live") as everything,
        bus.subscribe(
            account_id=tenant.account_id,
            environment="live",
            types=frozenset({"product.updated"}),
        ) as updates_only,
        bus.subscribe(account_id=tenant.account_id, environment="sandbox") as sandbox,
        bus.subscribe(account_id=other_tenant.account_id, environment="live") as rival,
    ):
        product = await make_product(tenant, "111111")
        sandbox_product = await make_product(tenant, "222222", environment=Environment.SANDBOX)
        rival_product = await make_product(other_tenant, "111111")
        async with atomic() as tx:
            await emit(
                tx,
                account_id=tenant.account_id,
                environment="live",
                type=EventType.PRODUCT_UPDATED,
                data={"product_id": product.id, "changed": ["price"]},
            )
        got = {
            "everything": _drain(everything.queue),
            "updates_only": _drain(updates_only.queue),
            "sandbox": _drain(sandbox.queue),
            "rival": _drain(rival.queue),
        }

    assert [(m["event"], m["data"]["product_id"]) for m in got["everything"]] == [
        ("product.created", product.id),
        ("product.updated", product.id),
    ]
    assert [m["event"] for m in got["updates_only"]] == ["product.updated"]
    assert [(m["event"], m["data"]["product_id"]) for m in got["sandbox"]] == [
        ("product.created", sandbox_product.id)
    ]
    assert got["sandbox"][0]["environment"] == "sandbox"
    assert [(m["event"], m["data"]["product_id"]) for m in got["rival"]] == [
        ("product.created", rival_product.id)
    ]
    assert got["everything"][0]["data"]["sku"] == "HA-111111"
    assert got["everything"][0]["data"]["price"] == 430.50
    assert bus.subscriber_count == 0


async def test_a_slow_subscriber_loses_its_oldest_events_and_counts_them():
    bus = InProcessBus()
    size = bus_module.SUBSCRIBER_QUEUE_SIZE
    total = size + 5
    async with (
        bus.subscribe(account_id="acct_a", environment="live") as slow,
        bus.subscribe(account_id="acct_a", environment="live") as fast,
    ):
        received: list[int] = []
        for n in range(total):
            await bus.publish(
                {"id": f"evt_{n}", "event": "product.updated", "account_id": "acct_a",
                 "environment": "live", "data": {"n": n}}
            )  # fmt: skip
            received.append(fast.queue.get_nowait()["data"]["n"])
        kept = [m["data"]["n"] for m in _drain(slow.queue)]
    assert received == list(range(total))
    assert fast.dropped == 0
    assert slow.dropped == 5
    assert kept == list(range(5, total))
    await bus.close()


# --- the sweeper --------------------------------------------------------------------------


async def test_sweeper_publishes_committed_but_unpublished_events(app, tenant):
    bus = runtime.current().bus
    assert bus is not None
    stale = await _stored_event(tenant.account_id, age=timedelta(minutes=2))
    already = await _stored_event(tenant.account_id, age=timedelta(minutes=2), published=True)
    # A row committed a moment ago may still be on its way through `atomic()`: left alone.
    fresh = await _stored_event(tenant.account_id, age=timedelta(0))
    async with bus.subscribe(
        account_id=tenant.account_id, environment=Environment.LIVE
    ) as subscription:
        assert await publish_pending_events() == 1
        [message] = _drain(subscription.queue)
        assert await publish_pending_events() == 0
        assert subscription.queue.empty()
    assert message["id"] == stale.id
    assert message["event"] == "sync.completed"
    assert message["data"] == {"sync_id": "sync_abc", "type": "delta"}
    assert message["timestamp"] == stale.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (await Event.get(id=stale.id)).published_at is not None
    assert (await Event.get(id=already.id)).published_at == already.published_at
    assert (await Event.get(id=fresh.id)).published_at is None


async def test_event_whose_publication_failed_is_committed_and_swept_later(
    app, tenant, monkeypatch
):
    bus = runtime.current().bus
    assert bus is not None

    async def bus_down(message: dict[str, Any]) -> None:
        raise ConnectionError("bus unavailable")

    monkeypatch.setattr(bus, "publish", bus_down)
    async with atomic() as tx:
        event = await emit(
            tx,
            account_id=tenant.account_id,
            environment=Environment.LIVE,
            type=EventType.ORDER_RECEIVED,
            data={"order_id": "ord_abc123"},
        )
    assert (await Event.get(id=event.id)).published_at is None
    monkeypatch.undo()

    await Event.filter(id=event.id).update(created_at=datetime.now(UTC) - timedelta(minutes=1))
    async with bus.subscribe(
        account_id=tenant.account_id, environment=Environment.LIVE
    ) as subscription:
        assert await worker_jobs.publish_events_sweep({}) == 1
        [message] = _drain(subscription.queue)
    assert message["id"] == event.id and message["event"] == "order.received"
    assert message["data"] == {"order_id": "ord_abc123"}
    assert (await Event.get(id=event.id)).published_at is not None
