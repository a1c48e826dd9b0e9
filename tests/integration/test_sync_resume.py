"""Killed mid-run (SIGKILL), the next run finishes the job with no duplicate products and
re-sends at most one batch per store (the guarantee in `app.sync.engine`'s docstring).

The store must outlive the killed process, so it is not a simulated store (those live in the
syncing process's memory): a WooCommerce simulator is served by uvicorn, in a thread of the
test process, on a free 127.0.0.1 port, and the tenant's store is a real (`simulated=False`)
store at that URL (development settings allow private URLs). A `Gate` in front of the shop
records the SKUs of every `/products/batch` call and can stop at the N-th call, before or after
the shop applied it, so that the kill lands on a known point:

- `answer_lost`: the shop applied batch N but the syncing process died before it recorded it;
- `request_lost`: the process died while batch N was on its way (the shop never applied it);
- `ingest`: the process died while it was still writing products from the feed (its auction
  house answers slowly, see `sync_resume_child.py`), with some batches committed.

The job runs in a child process (`sync_resume_child.py`) on PostgreSQL; the child's auction
house is the built-in simulator, deterministic by seed and size, so the resumed run (here, in
the test process, after the job's heartbeat is made stale) reads the same catalog.

A resumed `full` job killed while pushing re-sends every listing (`force` in
`SyncRun._pending_writes` ignores what the killed execution pushed): those two cases are strict
xfails until the engine is fixed, then they pass and the marker must go.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app import db, runtime
from app.accounts.models import Environment
from app.config import Settings
from app.connectors.auction_house.catalog import catalog_at
from app.connectors.woocommerce.simulator import create_simulator
from app.events.models import Event
from app.ids import new_id
from app.products.models import Product
from app.sync import service as sync
from app.sync.models import Listing, ListingStatus, SyncJob, SyncStatus, SyncTrigger, SyncType
from tests.conftest import (
    _run,
    _truncate,
    make_settings,
    make_store,
    make_tenant,
    requires_postgres,
)
from tests.integration.child_process import kill, wait_until
from tests.integration.threaded_server import serve_in_thread

pytestmark = [pytest.mark.integration, requires_postgres]

ROOT = Path(__file__).resolve().parents[2]
SIZE = 2000  # lots in the simulated auction house
SEED = 1
SYNC_BATCH = 200  # products per ingest transaction
WOO_BATCH = 100  # objects per WooCommerce /products/batch call
HOLD_AT = 6  # the batch call the kill lands on (of SIZE / WOO_BATCH)
CONSUMER_KEY = "ck_resume_0123456789"
CONSUMER_SECRET = "cs_resume_0123456789"
WAIT = 30.0


# -- the shop, served over HTTP -------------------------------------------------------------


@dataclass
class BatchCall:
    skus: list[str]
    applied: bool


@dataclass
class Gate:
    """ASGI middleware in front of the WooCommerce simulator: records the SKUs each
    `/products/batch` call carried (creates and updates) and whether the shop applied it;
    the `hold_at`-th call stops, after the shop applied it (`apply_held`) or before, until
    `release` is set."""

    app: Any
    hold_at: int | None = None
    apply_held: bool = True
    calls: list[BatchCall] = field(default_factory=list)
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].endswith("/products/batch")
        ):
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        try:
            data = json.loads(body)
        except ValueError:
            data = {}
        skus = [
            item["sku"]
            for action in ("create", "update")
            for item in (data.get(action) or [] if isinstance(data, dict) else [])
            if isinstance(item, dict) and item.get("sku")
        ]
        hold = len(self.calls) + 1 == self.hold_at
        if hold and not self.apply_held:
            self.calls.append(BatchCall(skus, applied=False))
            self.held.set()
            await self._wait()
            await _quietly(send, {"type": "http.response.start", "status": 503, "headers": []})
            await _quietly(send, {"type": "http.response.body", "body": b""})
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                await asyncio.Event().wait()  # no disconnect to report
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        answer: list[dict[str, Any]] = []

        async def capture(message: dict[str, Any]) -> None:
            answer.append(message)

        await self.app(scope, replay, capture)
        self.calls.append(BatchCall(skus, applied=True))
        if hold:
            self.held.set()
            await self._wait()
        for message in answer:
            if not await _quietly(send, message):
                return

    async def _wait(self) -> None:
        while not self.release.is_set():
            await asyncio.sleep(0.01)


async def _quietly(send: Any, message: dict[str, Any]) -> bool:
    try:
        await send(message)
    except Exception:  # the client is gone (it was killed)
        return False
    return True


@contextlib.contextmanager
def serve(gate: Gate) -> Iterator[str]:
    """Serve `gate` with uvicorn in a thread; yields its URL."""
    try:
        with serve_in_thread(gate, "woocommerce-simulator") as base:
            yield base
    finally:
        gate.release.set()


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def resume_settings(postgres_url: str, tmp_path: Path) -> Settings:
    _run(_truncate(postgres_url))
    return make_settings(
        postgres_url,
        tmp_path / "data",
        simulator_catalog_size=SIZE,
        simulator_seed=SEED,
        sync_batch_size=SYNC_BATCH,
    )


@pytest.fixture
async def orm(resume_settings: Settings) -> AsyncIterator[None]:
    """This process's runtime and ORM: it sets the job up, watches it, and resumes it."""
    runtime.install(resume_settings)
    await db.init_orm(resume_settings.resolved_database_url)
    try:
        yield
    finally:
        await db.close_orm()


# -- the killed process ---------------------------------------------------------------------


def spawn(settings: Settings, job_id: str, log: Path, *, feed_delay: float) -> subprocess.Popen:
    config = {
        "settings": json.loads(settings.model_dump_json(include=_CHILD_SETTINGS)),
        "job_id": job_id,
        "feed_delay": feed_delay,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCAUCTION_")}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.integration.sync_resume_child", json.dumps(config)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


_CHILD_SETTINGS = {
    "env",
    "data_dir",
    "database_url",
    "redis_url",
    "secret_key",
    "auto_migrate",
    "demo",
    "log_level",
    "simulator_catalog_size",
    "simulator_seed",
    "sync_batch_size",
}


async def create_job(account_id: str, type: SyncType) -> SyncJob:
    """A queued job row, as `start_job` writes it, without enqueueing it: the child runs it."""
    return await SyncJob.create(
        id=new_id("sync"),
        account_id=account_id,
        environment=Environment.LIVE,
        type=type,
        trigger=SyncTrigger.API,
        slot=sync._slot(account_id, Environment.LIVE),
        store_ids=[],
    )


# -- the test -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("point", "type"),
    [
        ("answer_lost", SyncType.DELTA),
        ("request_lost", SyncType.DELTA),
        ("ingest", SyncType.DELTA),
        ("answer_lost", SyncType.FULL),
        ("request_lost", SyncType.FULL),
        ("ingest", SyncType.FULL),
    ],
    ids=lambda value: str(value),
)
async def test_a_killed_sync_is_finished_by_the_next_run(
    point: str, type: SyncType, resume_settings: Settings, orm: None, tmp_path: Path
) -> None:
    lots = [lot for lot in catalog_at(SEED, SIZE) if lot.available]
    skus = {f"HA-{lot.ha_lot}" for lot in lots}
    assert len(lots) > HOLD_AT * WOO_BATCH
    shop_app = create_simulator(consumer_key=CONSUMER_KEY, consumer_secret=CONSUMER_SECRET)
    gate = Gate(
        shop_app,
        hold_at=None if point == "ingest" else HOLD_AT,
        apply_held=point == "answer_lost",
    )
    shop = shop_app.state.store
    log = tmp_path / "sync-child.log"

    with serve(gate) as url:
        tenant = await make_tenant()
        store = await make_store(
            tenant,
            name="Shop on 127.0.0.1",
            url=url,
            credentials={"consumer_key": CONSUMER_KEY, "consumer_secret": CONSUMER_SECRET},
            simulated=False,
        )
        job = await create_job(tenant.account_id, type)
        products = Product.filter(account_id=tenant.account_id)

        # 1. The job runs in a child process, which is SIGKILLed at the chosen point.
        child = spawn(resume_settings, job.id, log, feed_delay=0.2 if point == "ingest" else 0)
        try:
            if point == "ingest":

                async def ingesting() -> bool:
                    row = await SyncJob.get(id=job.id)
                    return row.phase == "fetching" and await products.count() >= 2 * SYNC_BATCH

                await wait_until(
                    ingesting, child, log, "two ingest batches were committed", timeout=WAIT
                )
            else:

                async def held() -> bool:
                    return gate.held.is_set()

                await wait_until(
                    held, child, log, f"batch call {HOLD_AT} reached the shop", timeout=WAIT
                )
            kill(child)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        gate.release.set()
        killed_at = len(gate.calls)

        killed = await SyncJob.get(id=job.id)
        assert killed.status is SyncStatus.RUNNING
        assert killed.attempts == 1
        if point == "ingest":
            assert killed.phase == "fetching"
            assert 2 * SYNC_BATCH <= await products.count() < len(lots)
            assert killed_at == 0
            assert shop.stats.batch_objects == 0
        else:
            assert killed.phase == "pushing"
            assert await products.count() == len(lots)
            assert killed_at == HOLD_AT
            # The batches before the one in flight are recorded; that one is not.
            recorded = await Listing.filter(store_id=store.id).count()
            assert recorded == (HOLD_AT - 1) * WOO_BATCH
            expected_in_shop = HOLD_AT if point == "answer_lost" else HOLD_AT - 1
            assert len(shop.products) == expected_in_shop * WOO_BATCH

        # 2. While its heartbeat is fresh the job is taken to be running elsewhere.
        assert await sync.run_job(job.id) is None
        assert (await SyncJob.get(id=job.id)).attempts == 1

        # 3. Stale, it is resumed (here, in this process) and finished.
        stale = datetime.now(UTC) - sync.STALE_AFTER - timedelta(seconds=1)
        await SyncJob.filter(id=job.id).update(heartbeat_at=stale)
        done = await sync.run_job(job.id)

    assert done is not None
    assert done.status is SyncStatus.COMPLETED, (done.error_code, done.error_message)
    assert done.attempts == 2
    assert done.phase == "done" and done.slot is None
    assert (done.products_added, done.products_updated, done.products_removed) == (
        len(lots),
        0,
        0,
    )
    assert done.errors == 0
    assert done.lots_processed == done.lots_total == SIZE
    assert done.stores_updated == [store.id]
    assert done.stores[store.id]["errors"] == 0

    # No duplicate products: one per available lot.
    ha_lots = Counter(await products.values_list("ha_lot", flat=True))
    assert set(ha_lots) == {lot.ha_lot for lot in lots}
    assert max(ha_lots.values()) == 1

    # Each event once: the resumed run re-announces nothing that was committed.
    types = Counter(await Event.filter(account_id=tenant.account_id).values_list("type", flat=True))
    assert types["sync.started"] == 1
    assert types["sync.completed"] == 1
    assert types["sync.failed"] == 0
    assert types["product.created"] == len(lots)
    assert types["product.updated"] == 0
    completed = await Event.get(account_id=tenant.account_id, type="sync.completed")
    assert completed.data["stats"]["products_added"] == len(lots)

    # The shop holds exactly one product per SKU, every one listed.
    by_sku = Counter(p["sku"] for p in shop.products.values())
    assert set(by_sku) == skus
    assert max(by_sku.values()) == 1
    assert {p["stock_status"] for p in shop.products.values()} == {"instock"}
    listings = await Listing.filter(store_id=store.id).values_list("status", "external_id")
    assert len(listings) == len(lots)
    assert {status for status, _ in listings} == {ListingStatus.LISTED}
    assert {int(external) for _, external in listings} == set(shop.products)

    # At most one batch re-sent: exactly the one whose answer was lost, if any.
    before = {sku for call in gate.calls[:killed_at] if call.applied for sku in call.skus}
    after = {sku for call in gate.calls[killed_at:] for sku in call.skus}
    resent = before & after
    assert before | after == skus
    assert len(resent) <= WOO_BATCH, f"{len(resent)} listings re-sent after the kill"
    if point == "answer_lost":
        assert resent == set(gate.calls[HOLD_AT - 1].skus)
    else:
        assert resent == set()
    assert shop.stats.created == len(lots)
    assert shop.stats.updated == len(resent)
    # A re-sent create comes back as a duplicate SKU and is sent again as an update.
    assert shop.stats.batch_objects == len(lots) + 2 * len(resent)
    # The store's count adds what each execution recorded: every listing once.
    assert done.stores[store.id]["pushed"] == len(lots)
