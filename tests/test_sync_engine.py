"""The sync engine end to end, against the built-in simulators, on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from app import runtime
from app.connectors.auction_house.catalog import catalog_at
from app.events.models import Event
from app.pricing.core import LotFacts, price_lot
from app.pricing.service import to_core
from app.products.models import Product, ProductStatus
from app.stores.models import Store
from app.sync import service as sync
from app.sync.connect import simulators
from app.sync.models import Listing, ListingStatus, SyncJob, SyncState, SyncStatus
from tests.conftest import Tenant, make_pricing_rule, make_store

SIZE = 60  # the test settings' simulator_catalog_size
SEED = 1


async def run(tenant: Tenant, type: str = "delta", **fields: Any) -> SyncJob:
    job = await sync.trigger_sync(
        tenant.principal(), data=sync.SyncTriggerInput(type=type, **fields)
    )
    await runtime.current().jobs.join()
    return await SyncJob.get(id=job.id)


async def simulated_store(tenant: Tenant, platform: str = "woocommerce", **fields: Any) -> Store:
    credentials = (
        {"consumer_key": "ck_sim", "consumer_secret": "cs_sim"}
        if platform == "woocommerce"
        else {"access_token": "shpat_sim"}
    )
    data = {
        "name": f"Simulated {platform}",
        "platform": platform,
        "url": f"https://{platform}.simulated.example",
        "credentials": credentials,
        "simulated": True,
        **fields,
    }
    return await make_store(tenant, **data)


def woo_products(store: Store) -> dict[str, dict[str, Any]]:
    shop = simulators().shop(store.id, "woocommerce", {})
    return {p["sku"]: p for p in shop.state.store.products.values()}


def advance_catalog(generations: int = 1) -> list[Any]:
    state = simulators().auction_house.state.catalog
    for _ in range(generations):
        state.advance()
    return state.lots


async def test_full_sync_lists_every_lot_priced_by_the_rules(tenant: Tenant) -> None:
    rule = await make_pricing_rule(tenant, markup_percent="15", rounding="1.00")
    store = await simulated_store(tenant)

    job = await run(tenant, "full")

    lots = [lot for lot in catalog_at(SEED, SIZE) if lot.available]
    assert job.status is SyncStatus.COMPLETED
    assert (job.products_added, job.products_updated, job.products_removed) == (len(lots), 0, 0)
    assert job.errors == 0
    assert job.lots_processed == job.lots_total == SIZE
    assert job.stores_updated == [store.id]
    assert job.slot is None

    products = {p.ha_lot: p for p in await Product.filter(account_id=tenant.account_id)}
    assert set(products) == {lot.ha_lot for lot in lots}
    lot = lots[0]
    expected = price_lot(LotFacts(cost=lot.cost, title=lot.title), [to_core(rule)]).price
    assert products[lot.ha_lot].price == expected
    assert products[lot.ha_lot].price == (lot.cost * Decimal("1.15")).quantize(Decimal(1))
    assert products[lot.ha_lot].sku == f"HA-{lot.ha_lot}"
    assert products[lot.ha_lot].title == lot.title

    listed = woo_products(store)
    assert set(listed) == {f"HA-{lot.ha_lot}" for lot in lots}
    assert listed[f"HA-{lot.ha_lot}"]["regular_price"] == f"{expected:.2f}"
    assert await Listing.filter(store_id=store.id, status=ListingStatus.LISTED).count() == len(lots)

    types = [e.type for e in await Event.filter(account_id=tenant.account_id).order_by("id")]
    assert types[0] == "sync.started"
    assert types[-1] == "sync.completed"
    assert types.count("product.created") == len(lots)
    completed = await Event.filter(type="sync.completed").get()
    assert completed.data["sync_id"] == job.id
    assert completed.data["type"] == "full"
    assert completed.data["stats"] == {
        "products_added": len(lots),
        "products_updated": 0,
        "products_removed": 0,
        "errors": 0,
    }
    assert completed.data["stores_updated"] == [store.id]
    assert isinstance(completed.data["duration_seconds"], int)


async def test_a_delta_right_after_a_full_changes_nothing(tenant: Tenant) -> None:
    store = await simulated_store(tenant)
    await run(tenant, "full")
    shop = simulators().shop(store.id, "woocommerce", {}).state.store
    writes_before = shop.stats.written
    events_before = await Event.all().count()

    job = await run(tenant, "delta")

    assert job.status is SyncStatus.COMPLETED
    assert (job.products_added, job.products_updated, job.products_removed) == (0, 0, 0)
    assert shop.stats.written == writes_before
    assert job.stores_updated == []
    # sync.started and sync.completed only
    assert await Event.all().count() == events_before + 2


async def test_delta_applies_what_the_auction_house_changed(tenant: Tenant) -> None:
    store = await simulated_store(tenant)
    await run(tenant, "full")
    before = {lot.ha_lot: lot for lot in catalog_at(SEED, SIZE) if lot.available}
    after = {lot.ha_lot: lot for lot in advance_catalog(10) if lot.available}
    added = set(after) - set(before)
    removed = set(before) - set(after)
    repriced = {n for n in set(before) & set(after) if before[n].cost != after[n].cost}
    assert added and removed and repriced

    job = await run(tenant, "delta")

    assert job.products_added == len(added)
    assert job.products_removed == len(removed)
    assert job.products_updated == len(repriced)
    # The delta read the feed's change list, not the catalog.
    assert job.lots_processed == job.lots_total < SIZE
    state = await SyncState.get(account_id=tenant.account_id)
    assert state.feed_generation == 10
    sold = await Product.filter(ha_lot__in=list(removed)).values_list("status", flat=True)
    assert set(sold) <= {ProductStatus.SOLD}
    listed = woo_products(store)
    for ha_lot in removed:
        assert listed[f"HA-{ha_lot}"]["stock_status"] == "outofstock"
    for ha_lot in added:
        assert listed[f"HA-{ha_lot}"]["stock_status"] == "instock"
    for ha_lot in repriced:
        product = await Product.get(ha_lot=ha_lot)
        assert product.cost == after[ha_lot].cost
        assert listed[f"HA-{ha_lot}"]["regular_price"] == f"{product.price:.2f}"


async def test_changing_a_rule_reprices_and_pushes_on_the_next_sync(tenant: Tenant) -> None:
    from app.pricing import service as pricing

    rule = await make_pricing_rule(tenant, markup_percent="10", rounding="none")
    store = await simulated_store(tenant)
    await run(tenant, "full")
    await pricing.update_pricing_rule(
        tenant.principal(), rule.id, changes=pricing.PricingRuleChanges(markup_percent="20")
    )

    job = await run(tenant, "delta")

    total = await Product.filter(account_id=tenant.account_id).count()
    assert job.products_updated == total
    listed = woo_products(store)
    for product in await Product.filter(account_id=tenant.account_id):
        assert product.price == (product.cost * Decimal("1.2")).quantize(Decimal("0.01"))
        assert listed[product.sku]["regular_price"] == f"{product.price:.2f}"


async def test_a_manual_price_survives_syncs(tenant: Tenant) -> None:
    from app.products import service as products

    await make_pricing_rule(tenant, markup_percent="10", rounding="none")
    store = await simulated_store(tenant)
    await run(tenant, "full")
    product = await Product.filter(account_id=tenant.account_id).order_by("ha_lot").first()
    ruled = product.price
    await products.update_product(
        tenant.principal(),
        product.id,
        changes=products.ProductChanges(price="999.99", title="Key date Morgan"),
    )

    # A delta sends the merchant's edits; neither it nor a full sync undoes them.
    job = await run(tenant, "delta")
    assert job.stores[store.id]["pushed"] == 1
    listed = woo_products(store)[product.sku]
    assert (listed["regular_price"], listed["name"]) == ("999.99", "Key date Morgan")
    await run(tenant, "full")
    product = await Product.get(id=product.id)
    assert product.price == Decimal("999.99")
    assert woo_products(store)[product.sku]["regular_price"] == "999.99"

    # Released: the rules price it again at once, and the next delta sends that price.
    await products.update_product(
        tenant.principal(), product.id, changes=products.ProductChanges(price=None)
    )
    assert (await Product.get(id=product.id)).price == ruled
    await run(tenant, "delta")
    assert woo_products(store)[product.sku]["regular_price"] == f"{ruled:.2f}"


async def test_a_store_that_rejects_credentials_fails_alone(tenant: Tenant) -> None:
    good = await simulated_store(tenant)
    bad = await simulated_store(tenant, name="Wrong keys")
    # The simulator of `bad` expects other keys than the stored ones.
    simulators()._shops[bad.id] = simulators().shop("other", "woocommerce", {"consumer_key": "x"})

    job = await run(tenant, "full")

    assert job.status is SyncStatus.COMPLETED
    assert job.stores_updated == [good.id]
    assert job.stores[bad.id]["error"].startswith("store_auth_failed")
    assert job.errors == 1
    assert len(woo_products(good)) == job.products_added


async def test_shopify_store_is_synced_too(tenant: Tenant) -> None:
    store = await simulated_store(tenant, "shopify")
    job = await run(tenant, "full")
    shop = simulators().shop(store.id, "shopify", {}).state.shop
    assert job.stores[store.id]["pushed"] == job.products_added
    skus = {v["sku"] for p in shop.products.values() for v in p["_variants"]}
    assert len(skus) == job.products_added


async def test_store_filters_limit_what_a_store_lists(tenant: Tenant) -> None:
    store = await simulated_store(tenant, settings={"filters": {"metals": ["Gold"]}})
    await run(tenant, "full")
    gold = await Product.filter(account_id=tenant.account_id, metal="Gold").count()
    assert 0 < gold < await Product.filter(account_id=tenant.account_id).count()
    assert len(woo_products(store)) == gold


async def test_a_second_trigger_while_one_is_queued_is_a_conflict(tenant: Tenant) -> None:
    first = await sync.trigger_sync(tenant.principal(), data=sync.SyncTriggerInput())
    with pytest.raises(sync.Conflict) as caught:
        await sync.trigger_sync(tenant.principal(), data=sync.SyncTriggerInput(type="full"))
    assert caught.value.code == "sync_in_progress"
    assert caught.value.details["sync_job"]["id"] == first.id
    await runtime.current().jobs.join()
    again = await run(tenant)
    assert again.status is SyncStatus.COMPLETED


async def test_woocommerce_writes_recover_from_lost_answers_and_hand_deleted_products(
    tenant: Tenant,
) -> None:
    store = await simulated_store(tenant)
    await run(tenant, "full")
    shop = simulators().shop(store.id, "woocommerce", {}).state.store
    listings = await Listing.filter(store_id=store.id).order_by("id").limit(2)
    # 1: a create was applied but its answer lost: we hold no id for a product the shop has.
    await Listing.filter(id=listings[0].id).update(external_id=None, pushed_hash="")
    # 2: the merchant deleted a product by hand in WordPress.
    shop.delete_product(int(listings[1].external_id), force=True)
    await Listing.filter(id=listings[1].id).update(pushed_hash="")
    count = len(shop.products)

    job = await run(tenant, "delta")

    assert job.errors == 0
    assert job.stores[store.id]["pushed"] == 2
    assert len(shop.products) == count + 1  # re-created once, never duplicated
    first = await Listing.get(id=listings[0].id)
    assert first.external_id == listings[0].external_id  # found again by its SKU
    second = await Listing.get(id=listings[1].id)
    assert second.external_id != listings[1].external_id
    assert int(second.external_id) in shop.products


async def test_sold_lots_are_deleted_from_a_store_that_asks_for_it(tenant: Tenant) -> None:
    store = await simulated_store(tenant, settings={"sold_lots": "delete"})
    await run(tenant, "full")
    before = {lot.ha_lot for lot in catalog_at(SEED, SIZE) if lot.available}
    after = {lot.ha_lot for lot in advance_catalog(10) if lot.available}
    sold = before - after
    assert sold

    job = await run(tenant, "delta")

    listed = woo_products(store)
    assert not {f"HA-{n}" for n in sold} & set(listed)
    assert set(listed) == {f"HA-{n}" for n in after}
    deleted = await Listing.filter(store_id=store.id, status=ListingStatus.DELETED).count()
    assert deleted == len(sold) == job.products_removed


async def test_products_a_store_refuses_are_recorded_and_retried(tenant: Tenant) -> None:
    from app.connectors.woocommerce.simulator import ItemError

    store = await simulated_store(tenant)
    credentials = {"consumer_key": "ck_sim", "consumer_secret": "cs_sim"}
    shop = simulators().shop(store.id, "woocommerce", credentials).state.store
    lots = sorted(lot.ha_lot for lot in catalog_at(SEED, SIZE) if lot.available)
    refused = f"HA-{lots[3]}"
    accept = shop.create_product

    def create_product(data: dict[str, Any]) -> dict[str, Any]:
        if data.get("sku") == refused:
            raise ItemError("woocommerce_product_image_upload_error", "Error getting remote image.")
        return accept(data)

    shop.create_product = create_product
    job = await run(tenant, "full")

    assert job.status is SyncStatus.COMPLETED
    assert job.errors == 1
    result = job.stores[store.id]
    assert (result["pushed"], result["errors"]) == (len(lots) - 1, 1)
    assert result["error_samples"] == [
        f"{refused}: woocommerce_product_image_upload_error: Error getting remote image."
    ]
    listing = await Listing.get(store_id=store.id, product__sku=refused)
    assert listing.status is ListingStatus.ERROR
    assert listing.error_code == "woocommerce_product_image_upload_error"
    assert refused not in woo_products(store)

    shop.create_product = accept  # the store accepts it now: the next delta retries it
    again = await run(tenant, "delta")
    assert again.errors == 0
    assert again.stores[store.id]["pushed"] == 1
    assert refused in woo_products(store)
    assert (await Listing.get(id=listing.id)).status is ListingStatus.LISTED


async def test_an_unreachable_auction_house_fails_the_sync_and_says_why(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    import functools

    from app.sync import connect

    fast = functools.partial(connect.AuctionHouseClient, backoff_base=0.001, backoff_cap=0.01)
    monkeypatch.setattr(connect, "AuctionHouseClient", fast)
    feed = simulators().auction_house
    feed.state.faults.inject(503, count=50)
    job = await run(tenant, "full")
    feed.state.faults.clear()

    assert job.status is SyncStatus.FAILED
    assert job.error_code == "upstream_unavailable"
    assert "Auction house unavailable" in job.error_message
    assert job.slot is None  # the next sync may start
    failed = await Event.get(type="sync.failed")
    assert failed.data["sync_id"] == job.id
    assert failed.data["error"]["code"] == "upstream_unavailable"
    assert (await run(tenant, "full")).status is SyncStatus.COMPLETED


async def test_a_feed_that_changes_while_read_defers_removals(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.connectors.auction_house.client import AuctionHouseClient
    from app.sync import connect

    await simulated_store(tenant)
    await run(tenant, "full")
    # Read the whole feed (as when the feed lists no changes), ten lots a page.
    await SyncState.filter(account_id=tenant.account_id).update(feed_generation=None)
    monkeypatch.setattr(connect, "FEED_PAGE_SIZE", 10)
    fetch = AuctionHouseClient.fetch_page
    advanced: list[int] = []

    async def fetch_then_advance(self, number: int, *, conditional: bool = True):
        page = await fetch(self, number, conditional=conditional)
        if number == 2 and not advanced:
            advanced.append(number)
            for _ in range(10):  # lots sell (and leave) after pages 1-2 were read
                simulators().auction_house.state.catalog.advance()
        return page

    monkeypatch.setattr(AuctionHouseClient, "fetch_page", fetch_then_advance)
    offered = {lot.ha_lot for lot in catalog_at(SEED, SIZE, 10) if lot.available}

    job = await run(tenant, "delta")

    assert job.status is SyncStatus.COMPLETED
    assert job.products_removed == 0  # deferred: nothing still offered was taken for sold
    sold = await Product.filter(account_id=tenant.account_id, status=ProductStatus.SOLD)
    assert not {p.ha_lot for p in sold} & offered
    monkeypatch.setattr(AuctionHouseClient, "fetch_page", fetch)
    assert (await SyncState.get(account_id=tenant.account_id)).feed_generation is None
    again = await run(tenant, "delta")
    assert again.products_removed > 0
    active = await Product.filter(
        account_id=tenant.account_id, status=ProductStatus.ACTIVE
    ).values_list("ha_lot", flat=True)
    assert set(active) == offered


async def test_an_execution_that_lost_its_claim_stops_and_writes_nothing(tenant: Tenant) -> None:
    from app.sync.engine import LostClaim, SyncRun

    await simulated_store(tenant)
    job = await sync.start_job(
        tenant.account_id,
        tenant.principal().environment,
        sync.SyncType.FULL,
        trigger=sync.SyncTrigger.API,
        enqueue=False,
    )
    mine = await sync.claim(job.id)
    assert mine is not None and mine.attempts == 1
    # Presumed dead, the job was taken over by another execution (attempt 2).
    await SyncJob.filter(id=job.id).update(attempts=2)
    with pytest.raises(LostClaim):
        await SyncRun(mine).run()
    await sync._finish(mine)  # a late finish of the old execution changes nothing
    row = await SyncJob.get(id=job.id)
    assert (row.status, row.attempts, row.slot) == (SyncStatus.RUNNING, 2, job.slot)
    assert not await Event.filter(type__in=["sync.completed", "sync.failed"]).exists()


async def test_a_job_that_keeps_dying_is_abandoned_and_frees_the_account(tenant: Tenant) -> None:
    from datetime import UTC, datetime, timedelta

    job = await sync.start_job(
        tenant.account_id,
        tenant.principal().environment,
        sync.SyncType.DELTA,
        trigger=sync.SyncTrigger.API,
        enqueue=False,
    )
    stale = datetime.now(UTC) - timedelta(minutes=10)
    await SyncJob.filter(id=job.id).update(
        status=SyncStatus.RUNNING, attempts=sync.MAX_ATTEMPTS, heartbeat_at=stale
    )
    done = await sync.run_job(job.id)
    assert done.status is SyncStatus.FAILED
    assert done.error_code == "sync_abandoned"
    assert done.slot is None
    assert (await run(tenant)).status is SyncStatus.COMPLETED


async def test_failed_syncs_back_off_the_schedule(tenant: Tenant) -> None:
    from datetime import UTC, datetime, timedelta

    await simulated_store(tenant)
    simulators().auction_house.state.faults.inject(401, count=1)  # the feed refuses once
    assert await sync.schedule_due() == 1
    await runtime.current().jobs.join()
    [failed] = await SyncJob.filter(account_id=tenant.account_id)
    assert failed.status is SyncStatus.FAILED
    now = datetime.now(UTC)
    assert await sync.schedule_due(now + timedelta(minutes=4)) == 0
    assert await sync.schedule_due(now + timedelta(minutes=6)) == 1
    await runtime.current().jobs.join()


async def test_live_data_needs_a_configured_auction_house_in_production(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = runtime.current()
    monkeypatch.setattr(rt, "settings", rt.settings.model_copy(update={"env": "production"}))
    job = await run(tenant, "full")
    assert job.status is SyncStatus.FAILED
    assert job.error_code == "auction_house_unconfigured"
    assert not await Product.filter(account_id=tenant.account_id).exists()


async def test_narrowing_a_stores_filters_takes_down_what_no_longer_passes(tenant: Tenant) -> None:
    from app.stores import service as stores

    store = await simulated_store(tenant)
    await run(tenant, "full")
    await stores.update_store(
        tenant.principal(),
        store.id,
        changes=stores.StoreChanges(settings={"filters": {"metals": ["gold"], "min_cost": 500}}),
    )

    job = await run(tenant, "delta")

    products = await Product.filter(account_id=tenant.account_id)
    kept = {p.sku for p in products if p.metal == "Gold" and p.cost >= 500}
    assert kept and len(kept) < len(products)
    listed = woo_products(store)
    in_stock = {sku for sku, p in listed.items() if p["stock_status"] == "instock"}
    assert in_stock == kept
    assert job.stores[store.id]["pushed"] == len(products) - len(kept)
    assert (await run(tenant, "delta")).stores[store.id]["pushed"] == 0


async def test_a_feed_that_cannot_list_changes_is_read_whole(tenant: Tenant) -> None:
    store = await simulated_store(tenant)
    await run(tenant, "full")
    # As after the simulator restarted: the stored generation is ahead of the catalog.
    await SyncState.filter(account_id=tenant.account_id).update(feed_generation=99)
    after = {lot.ha_lot for lot in advance_catalog(10) if lot.available}

    job = await run(tenant, "delta")

    assert job.status is SyncStatus.COMPLETED
    assert job.lots_total >= len(after)  # the whole catalog
    assert (await SyncState.get(account_id=tenant.account_id)).feed_generation == 10
    in_stock = {s for s, p in woo_products(store).items() if p["stock_status"] == "instock"}
    assert in_stock == {f"HA-{n}" for n in after}
