"""Distributed mode on the real Redis: arq jobs run by a worker built from `worker_settings`,
the Redis event bus between processes, and the `syncauction worker` command.

Each test uses its own arq queue name and deletes only the keys its jobs created."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asgi_lifespan import LifespanManager

from app import db
from app.accounts import service as accounts
from app.accounts.models import Environment, Plan
from app.config import Settings
from app.events.bus import RedisBus
from app.events.models import Event
from app.events.service import flush_published_marks
from app.idempotency.models import IdempotencyRecord
from app.ids import new_id
from app.jobs import ArqQueue
from tests.conftest import TEST_REDIS_URL, make_product, make_tenant, requires_redis
from workers.settings import worker_settings

# arq 0.28's `Worker.close()` calls redis-py's deprecated `close()`; it still closes the pool.
arq_close_is_deprecated = pytest.mark.filterwarnings(
    "ignore:Call to deprecated close. \\(Use aclose\\(\\) instead\\):DeprecationWarning"
)


@contextlib.asynccontextmanager
async def orm(settings: Settings) -> AsyncIterator[None]:
    """The ORM for set-up and checks; closed while the worker (which opens its own) runs."""
    await db.init_orm(settings.resolved_database_url)
    try:
        yield
    finally:
        await db.close_orm()


@pytest.fixture
def redis_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"redis_url": TEST_REDIS_URL})


@pytest.fixture
async def arq_queue(redis_settings: Settings) -> AsyncIterator[tuple[str, ArqQueue, set[str]]]:
    """A private arq queue name, an `ArqQueue` on it, and the set of job ids to clean up."""
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.constants import (
        health_check_key_suffix,
        in_progress_key_prefix,
        job_key_prefix,
        result_key_prefix,
        retry_key_prefix,
    )

    assert redis_settings.redis_url
    name = f"syncauction-test:{uuid.uuid4().hex}"
    pool = await create_pool(
        RedisSettings.from_dsn(redis_settings.redis_url), default_queue_name=name
    )
    job_ids: set[str] = set()
    yield name, ArqQueue(pool), job_ids
    prefixes = (job_key_prefix, result_key_prefix, in_progress_key_prefix, retry_key_prefix)
    keys = [prefix + job_id for job_id in job_ids for prefix in prefixes]
    await pool.delete(name, name + health_check_key_suffix, *keys)
    await pool.aclose()


async def run_worker(
    settings: Settings,
    queue_name: str,
    job_ids: set[str],
    *,
    cron: bool = True,
    until: str | None = None,
) -> Any:
    """Run an arq worker built from our settings until the queue is empty, or until the job
    `until` has ended (a job locked by a dead worker would keep the queue from emptying)."""
    from arq.worker import Worker

    ended = asyncio.Event()

    async def remember(ctx: dict[str, Any]) -> None:
        job_ids.add(ctx["job_id"])
        if ctx["job_id"] == until:
            ended.set()

    kwargs = worker_settings(settings)
    if not cron:
        kwargs["cron_jobs"] = []
    worker = Worker(
        **kwargs,
        queue_name=queue_name,
        after_job_end=remember,
        burst=until is None,
        poll_delay=0,
        handle_signals=False,
    )
    try:
        if until is None:
            await worker.main()
        else:
            running = asyncio.create_task(worker.main())
            try:
                await asyncio.wait_for(ended.wait(), timeout=10)
            finally:
                # Stop at the loop's next turn, between two polls (cancelling the task could
                # interrupt a Redis pipeline): a burst worker with no jobs left to start.
                worker.burst, worker.max_burst_jobs = True, 0
                await asyncio.wait_for(running, timeout=10)
    finally:
        await worker.close()
    return worker


@requires_redis
@arq_close_is_deprecated
async def test_worker_runs_an_enqueued_job_against_the_database(redis_settings, arq_queue):
    queue_name, queue, job_ids = arq_queue
    async with orm(redis_settings):
        account = await accounts.create_account(name="Coin Shop", plan=Plan.PROFESSIONAL)
        for key, age in (("old", timedelta(hours=30)), ("recent", timedelta(hours=1))):
            record = await IdempotencyRecord.create(
                account_id=account.id,
                environment=Environment.LIVE,
                key=key,
                method="POST",
                path="/v1/sync",
                request_hash="0" * 64,
                status_code=202,
            )
            created_at = datetime.now(UTC) - age
            await IdempotencyRecord.filter(id=record.id).update(created_at=created_at)

    job_id = f"purge:{uuid.uuid4().hex}"
    job_ids.add(job_id)
    assert await queue.enqueue("purge_idempotency_records", job_id=job_id) == job_id
    # arq refuses a second job with the same id while the first is queued.
    assert await queue.enqueue("purge_idempotency_records", job_id=job_id) is None

    # The start-up cron run of the same job would race this one for the same row.
    worker = await run_worker(redis_settings, queue_name, job_ids, cron=False)
    assert (worker.jobs_complete, worker.jobs_failed) == (1, 0)

    from arq.jobs import Job

    info = await Job(job_id, queue.pool, _queue_name=queue_name).result_info()
    assert info is not None
    assert info.function == "purge_idempotency_records"
    assert info.success is True
    assert info.result == 1
    async with orm(redis_settings):
        remaining = await IdempotencyRecord.filter(account_id=account.id).values_list(
            "key", flat=True
        )
    assert remaining == ["recent"]


@requires_redis
@arq_close_is_deprecated
async def test_worker_start_up_sweep_reaches_a_subscriber_in_another_process(
    redis_settings, arq_queue
):
    queue_name, _, job_ids = arq_queue
    async with orm(redis_settings):
        account = await accounts.create_account(name="Coin Shop", plan=Plan.PROFESSIONAL)
        event = await Event.create(
            id=new_id("evt"),
            account_id=account.id,
            environment=Environment.LIVE,
            type="sync.completed",
            data={"sync_id": "sync_ghi789", "type": "delta"},
        )
        created_at = datetime.now(UTC) - timedelta(minutes=2)
        await Event.filter(id=event.id).update(created_at=created_at)

    api_process_bus = RedisBus(TEST_REDIS_URL)  # type: ignore[arg-type]
    await api_process_bus.start()
    try:
        async with api_process_bus.subscribe(
            account_id=account.id, environment="live"
        ) as subscription:
            await run_worker(redis_settings, queue_name, job_ids)
            message = await asyncio.wait_for(subscription.queue.get(), timeout=5)
    finally:
        await api_process_bus.close()

    assert any(job_id.startswith("cron:publish_events_sweep:") for job_id in job_ids)
    assert message["id"] == event.id
    assert message["event"] == "sync.completed"
    assert message["data"] == {"sync_id": "sync_ghi789", "type": "delta"}
    assert message["timestamp"] == created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    async with orm(redis_settings):
        assert (await Event.get(id=event.id)).published_at is not None


@requires_redis
async def test_an_event_published_on_one_redis_bus_reaches_subscribers_on_another():
    first, second = RedisBus(TEST_REDIS_URL), RedisBus(TEST_REDIS_URL)  # type: ignore[arg-type]
    await first.start()
    await second.start()
    account_id, rival_id = new_id("acct"), new_id("acct")
    message = {
        "id": new_id("evt"),
        "event": "product.updated",
        "timestamp": "2024-01-15T10:30:00Z",
        "data": {"product_id": "prod_jkl012", "price": 1250.0},
        "account_id": account_id,
        "environment": "live",
    }
    try:
        async with (
            second.subscribe(account_id=account_id, environment="live") as remote,
            second.subscribe(account_id=account_id, environment="sandbox") as remote_sandbox,
            second.subscribe(account_id=rival_id, environment="live") as remote_rival,
            first.subscribe(account_id=account_id, environment="live") as local,
        ):
            await first.publish(message)
            assert await asyncio.wait_for(remote.queue.get(), timeout=5) == message
            assert await asyncio.wait_for(local.queue.get(), timeout=5) == message
            # Delivered by the same listener pass as `remote`: nothing is on its way.
            assert remote_sandbox.queue.empty() and remote_rival.queue.empty()
    finally:
        await first.close()
        await second.close()


@requires_redis
async def test_a_product_created_by_the_api_reaches_another_process_over_redis(
    redis_settings: Settings,
):
    from app.main import create_app

    other_process = RedisBus(TEST_REDIS_URL)  # type: ignore[arg-type]
    await other_process.start()
    try:
        async with LifespanManager(create_app(redis_settings)):
            tenant = await make_tenant()
            async with other_process.subscribe(
                account_id=tenant.account_id, environment="live"
            ) as subscription:
                product = await make_product(tenant, "789012", title="1893-S Morgan Dollar VF35")
                message = await asyncio.wait_for(subscription.queue.get(), timeout=5)
            await flush_published_marks()
            stored = await Event.get(id=message["id"])
            assert stored.published_at is not None
    finally:
        await other_process.close()
    assert message["event"] == "product.created"
    assert message["data"]["product_id"] == product.id
    assert message["data"]["title"] == "1893-S Morgan Dollar VF35"
    assert message["data"]["sku"] == "HA-789012"


async def test_redis_bus_start_fails_clearly_when_redis_is_unreachable():
    bus = RedisBus("redis://127.0.0.1:1/0", start_timeout=0.5)
    with pytest.raises(ConnectionError) as raised:
        await bus.start()
    assert str(raised.value) == "the event bus could not subscribe to Redis within 0.5 s"
    assert bus._listener is not None and bus._listener.done()


def test_worker_settings_need_redis_and_schedule_the_periodic_jobs(tmp_path: Path):
    with pytest.raises(ValueError, match="SYNCAUCTION_REDIS_URL"):
        worker_settings(Settings(data_dir=tmp_path, redis_url=None))
    redis_url = "redis://127.0.0.1:6379/0"
    kwargs = worker_settings(Settings(data_dir=tmp_path, redis_url=redis_url))
    # (name, timeout, seconds its result is kept: None is the worker's 3600 s)
    assert {(f.name, f.timeout_s, f.keep_result_s) for f in kwargs["functions"]} == {
        ("publish_events_sweep", 600, None),
        ("purge_idempotency_records", 600, None),
        ("purge_old_events", 600, None),
        ("run_sync", 4 * 3600, None),
        ("schedule_syncs", 600, None),
        ("resume_stalled_syncs", 600, None),
        ("fan_out_webhooks", 600, 0),
        ("deliver_webhook", 600, 0),
        ("requeue_due_webhooks", 600, None),
    }
    assert (kwargs["keep_result"], kwargs["max_jobs"]) == (3600, 100)
    assert kwargs["ctx"]["settings"].redis_url == redis_url
    runs = {}
    for cron_job in kwargs["cron_jobs"]:
        assert cron_job.run_at_startup
        cron_job.calculate_next(datetime(2024, 1, 15, 10, 30, 0, 123456))
        first = cron_job.next_run
        cron_job.calculate_next(first)
        runs[cron_job.name] = (first.strftime("%H:%M:%S"), cron_job.next_run.strftime("%H:%M:%S"))
    # The same periods as the embedded runner: 30 s, an hour, a minute.
    assert runs == {
        "cron:publish_events_sweep": ("10:30:30", "10:31:00"),
        "cron:purge_idempotency_records": ("11:00:00", "12:00:00"),
        "cron:purge_old_events": ("11:00:00", "12:00:00"),
        "cron:schedule_syncs": ("10:31:00", "10:32:00"),
        "cron:resume_stalled_syncs": ("10:31:00", "10:32:00"),
        "cron:fan_out_webhooks": ("10:30:05", "10:30:10"),
        "cron:requeue_due_webhooks": ("10:30:30", "10:31:00"),
    }


def test_worker_command_without_redis_exits_with_a_clear_message(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCAUCTION_")}
    env["SYNCAUCTION_DATA_DIR"] = str(tmp_path / "data")
    command = Path(sys.executable).parent / "syncauction"
    result = subprocess.run(
        [str(command), "worker", "--burst"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: the worker needs Redis: set SYNCAUCTION_REDIS_URL")
    assert not (tmp_path / "data").exists()


@requires_redis
@arq_close_is_deprecated
async def test_a_delivery_whose_job_died_with_its_worker_is_queued_again(
    redis_settings: Settings, arq_queue, monkeypatch: pytest.MonkeyPatch
):
    """A worker SIGKILLed after taking an attempt's job, before claiming the delivery: arq
    keeps that job locked for the longest job timeout (a sync's 4 hours), so the sweeper's
    usual id finds only the lock. Once the attempt is overdue, the sweeper queues it under a
    new id, and the next worker sends it."""
    from arq.constants import in_progress_key_prefix

    from app import runtime
    from app.webhooks import delivery as sender
    from app.webhooks import service as webhooks
    from app.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery

    queue_name, queue, job_ids = arq_queue
    runtime.install(redis_settings).jobs = queue
    async with orm(redis_settings):
        tenant = await make_tenant()
        created = await webhooks.create_endpoint(
            tenant.principal(),
            data=webhooks.WebhookEndpointInput(
                url="http://127.0.0.1:1/hook", event_types=["product.created"]
            ),
        )
        await make_product(tenant, "654321")
        assert await sender._fan_out(100) == 1  # and queues the first attempt
        delivery = await WebhookDelivery.get(endpoint_id=created.endpoint.id)
        usual = f"{delivery.id}:0:{int(delivery.next_attempt_at.timestamp() * 1000)}"
        job_ids.add(usual)
        assert await queue.enqueue(sender.ATTEMPT_JOB, delivery.id, job_id=usual) is None

        async def attempts_queued() -> list[str]:
            queued = [job.decode() for job in await queue.pool.zrange(queue_name, 0, -1)]
            return sorted(job for job in queued if job.startswith(delivery.id))

        assert await sender.requeue_due() == 1  # due, but not yet overdue: the usual id
        assert await attempts_queued() == [usual]
        monkeypatch.setattr(sender, "ORPHANED_AFTER", timedelta(0))  # as if minutes passed
        # Overdue, but its job waits in a backed-up queue: nothing is queued twice.
        assert await sender.requeue_due() == 1
        assert await attempts_queued() == [usual]
        # The dead worker had taken that job: arq's lock on it outlives the worker by hours.
        await queue.pool.psetex(in_progress_key_prefix + usual, 4 * 3600 * 1000, b"1")
        assert await sender.requeue_due() == 1
        [_, orphaned] = await attempts_queued()
        assert orphaned.startswith(usual + ":orphaned:")
        job_ids.add(orphaned)

    # The locked job stays queued (arq skips it), so the queue never empties: the worker runs
    # until the new job has ended.
    worker = await run_worker(redis_settings, queue_name, job_ids, cron=False, until=orphaned)
    assert worker.jobs_failed == 0
    # The orphaned job ran and left the queue; its failed attempt queued the next one.
    [still_locked, retry] = await attempts_queued()
    job_ids.add(retry)
    assert still_locked == usual
    assert retry.startswith(f"{delivery.id}:1:")
    async with orm(redis_settings):
        attempted = await WebhookDelivery.get(id=delivery.id)
        assert attempted.attempts == 1
        assert attempted.status == DeliveryStatus.PENDING  # nobody listens on port 1: a retry
        [attempt] = await WebhookAttempt.filter(delivery_id=delivery.id)
        assert attempt.status_code is None
        assert attempt.error


@requires_redis
def test_worker_command_stops_cleanly_on_sigterm(tmp_path: Path):
    """A deployment stops workers with SIGTERM on every release: that is a clean exit (0), not
    a failure with a traceback."""
    import signal
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCAUCTION_")}
    env.update(
        SYNCAUCTION_DATA_DIR=str(tmp_path / "data"),
        SYNCAUCTION_REDIS_URL=TEST_REDIS_URL,
    )
    command = Path(sys.executable).parent / "syncauction"
    migrated = subprocess.run(
        [str(command), "migrate"], env=env, cwd=tmp_path, capture_output=True, timeout=60
    )
    assert migrated.returncode == 0, migrated.stderr
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [str(command), "worker"], env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 30
            while b'"worker started"' not in log.read_bytes():
                assert worker.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0, log.read_text()
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    logged = log.read_text()
    assert "Traceback" not in logged
    assert '"worker stopped"' in logged
