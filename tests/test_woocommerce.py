"""The WooCommerce connector: the client against the in-process simulator of the REST API v3."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from starlette.applications import Starlette

from app.connectors.woocommerce import (
    BatchInterrupted,
    WooCommerceClient,
    product_payload,
)
from app.connectors.woocommerce.simulator import create_simulator
from app.errors import UpstreamError

KEY = "ck_test_0123456789"
SECRET = "cs_test_abcdef"
BASE_URL = "http://shop.test"


class RecordingSleep:
    """Stands in for `asyncio.sleep`: records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def lot(n: int, *, in_stock: bool = True) -> dict[str, object]:
    return product_payload(
        f"LOT-{n:05d}",
        f"1921 Morgan Dollar MS6{n % 10}",
        Decimal("430.5") + n,
        "A Morgan dollar.",
        [f"https://img.example/{n}.jpg"],
        in_stock,
    )


@pytest.fixture
def simulator() -> Starlette:
    return create_simulator(consumer_key=KEY, consumer_secret=SECRET, max_batch=100)


@pytest.fixture
async def http(simulator: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=simulator), base_url=BASE_URL
    ) as client:
        yield client


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def woo(http: httpx.AsyncClient, sleep: RecordingSleep) -> WooCommerceClient:
    return WooCommerceClient(BASE_URL, KEY, SECRET, client=http, sleep=sleep)


def test_product_payload_formats_price_and_stock() -> None:
    payload = product_payload(
        "LOT-1", "1921 Morgan Dollar MS65", Decimal("430.505"), "desc", ["https://a/1.jpg"], False
    )
    assert payload["regular_price"] == "430.51"
    assert payload["sku"] == "LOT-1"
    assert payload["name"] == "1921 Morgan Dollar MS65"
    assert payload["images"] == [{"src": "https://a/1.jpg"}]
    assert payload["stock_status"] == "outofstock"
    assert payload["stock_quantity"] == 0
    assert product_payload("s", "t", Decimal(7), "", [], True)["regular_price"] == "7.00"
    with pytest.raises(ValueError):
        product_payload("s", "t", Decimal("-1"), "", [], True)


async def test_250_products_go_in_three_batch_calls(
    woo: WooCommerceClient, simulator: Starlette
) -> None:
    result = await woo.push_products([lot(n) for n in range(250)])

    stats = simulator.state.store.stats
    assert result.calls == 3
    assert stats.batch_calls == 3
    assert stats.too_large == 0
    assert stats.created == 250
    assert result.ok
    assert len(result.created) == 250
    ids = result.ids_by_sku()
    assert len(ids) == 250
    assert len(set(ids.values())) == 250
    store = simulator.state.store.products
    assert {p["sku"]: pid for pid, p in store.items()} == ids
    first = store[ids["LOT-00000"]]
    assert first["regular_price"] == "430.50"
    assert first["images"][0]["src"] == "https://img.example/0.jpg"
    assert [o.index for o in result.created] == list(range(250))


async def test_per_item_errors_are_reported_and_the_rest_succeed(
    woo: WooCommerceClient, simulator: Starlette
) -> None:
    first = await woo.push_products([lot(1), lot(2)])
    existing = first.ids_by_sku()["LOT-00001"]
    doomed = first.ids_by_sku()["LOT-00002"]

    result = await woo.batch(
        create=[lot(1), lot(3), {"sku": "NO-PRICE", "name": "x"}],
        update=[{"id": existing, "regular_price": "500.00"}, {"id": 999_999, "name": "ghost"}],
        delete=[doomed, 888_888],
    )

    assert result.calls == 1
    assert not result.ok
    errors = {(o.action, o.index): o for o in result.errors}
    assert set(errors) == {("create", 0), ("create", 2), ("update", 1), ("delete", 1)}
    assert errors["create", 0].error_code == "product_invalid_sku"
    assert errors["create", 0].sku == "LOT-00001"
    assert errors["update", 1].error_code == "woocommerce_rest_product_invalid_id"
    assert errors["update", 1].external_id == 999_999
    assert errors["delete", 1].external_id == 888_888
    assert [o.sku for o in result.created] == ["LOT-00003"]
    assert [o.external_id for o in result.updated] == [existing]
    assert [o.external_id for o in result.deleted] == [doomed]
    store = simulator.state.store
    assert store.products[existing]["regular_price"] == "500.00"
    assert doomed not in store.products
    assert store.stats.item_errors == 4


async def test_simulator_refuses_more_than_100_objects(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/wp-json/wc/v3/products/batch",
        json={"create": [lot(n) for n in range(101)]},
        auth=(KEY, SECRET),
    )
    assert response.status_code == 413
    assert response.json()["code"] == "woocommerce_rest_request_entity_too_large"


async def test_batch_counts_all_three_arrays(woo: WooCommerceClient, simulator: Starlette) -> None:
    created = await woo.push_products([lot(n) for n in range(60)])
    ids = list(created.ids_by_sku().values())
    result = await woo.batch(
        create=[lot(n) for n in range(100, 160)],
        update=[{"id": i, "regular_price": "1.00"} for i in ids[:30]],
        delete=ids[30:],
    )
    assert result.ok
    assert result.calls == 2
    assert simulator.state.store.stats.too_large == 0
    assert len(simulator.state.store.products) == 90


async def test_falls_back_to_query_string_auth_when_the_host_strips_authorization(
    sleep: RecordingSleep,
) -> None:
    app = create_simulator(consumer_key=KEY, consumer_secret=SECRET, strip_authorization=True)
    seen: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request)

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), event_hooks={"request": [record]}
    ) as http:
        woo = WooCommerceClient(BASE_URL, KEY, SECRET, client=http, sleep=sleep)
        result = await woo.push_products([lot(1)])
        orders = await woo.list_orders()

    assert result.ok and len(result.created) == 1
    assert orders == []
    assert woo.query_string_auth
    assert len(seen) == 3
    assert "consumer_key" not in seen[0].url.params
    assert seen[1].url.params["consumer_key"] == KEY
    assert seen[2].url.params["consumer_secret"] == SECRET
    assert app.state.store.stats.auth_failures == 1
    assert sleep.delays == []


async def test_bad_credentials_are_not_retryable(
    http: httpx.AsyncClient, sleep: RecordingSleep, simulator: Starlette
) -> None:
    woo = WooCommerceClient(BASE_URL, KEY, "wrong-secret", client=http, sleep=sleep)
    with pytest.raises(UpstreamError) as caught:
        await woo.push_products([lot(1), lot(2)])
    assert caught.value.retryable is False
    assert caught.value.code == "store_auth_failed"
    assert isinstance(caught.value, BatchInterrupted)
    assert [o.error_code for o in caught.value.result.outcomes] == ["store_auth_failed"] * 2
    assert not woo.query_string_auth
    assert simulator.state.store.stats.auth_failures == 1
    assert sleep.delays == []

    with pytest.raises(UpstreamError) as caught:
        await woo.list_orders()
    assert caught.value.code == "store_auth_failed"


async def test_429_is_retried_honouring_retry_after(
    woo: WooCommerceClient, simulator: Starlette, sleep: RecordingSleep
) -> None:
    simulator.state.faults.inject(429, retry_after=7)
    simulator.state.faults.inject(503)
    result = await woo.push_products([lot(n) for n in range(5)])
    assert result.ok and len(result.created) == 5
    assert sleep.delays[0] == 7
    assert len(sleep.delays) == 2
    assert 0 < sleep.delays[1] <= 1.0
    assert simulator.state.store.stats.faults_served == 2
    assert simulator.state.store.stats.batch_calls == 1


async def test_gives_up_after_max_retries_and_keeps_earlier_outcomes(
    http: httpx.AsyncClient, simulator: Starlette, sleep: RecordingSleep
) -> None:
    woo = WooCommerceClient(BASE_URL, KEY, SECRET, client=http, sleep=sleep, max_retries=2)
    first = await woo.push_products([lot(1)])
    assert first.ok
    simulator.state.faults.inject(503, count=3)
    with pytest.raises(BatchInterrupted) as caught:
        await woo.batch(create=[lot(n) for n in range(10, 160)])
    error = caught.value
    assert error.retryable is True
    assert error.code == "store_unavailable"
    assert len(sleep.delays) == 2
    # Nothing was sent successfully: all 150 objects are reported as failed, none dropped.
    assert len(error.result.outcomes) == 150
    assert {o.error_code for o in error.result.outcomes} == {"store_unavailable"}
    assert all(o.retryable for o in error.result.outcomes)


async def test_transport_errors_are_retried(sleep: RecordingSleep) -> None:
    app = create_simulator(consumer_key=KEY, consumer_secret=SECRET)
    inner = httpx.ASGITransport(app=app)
    failures = [httpx.ConnectError("boom")]

    class Flaky(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if failures:
                raise failures.pop()
            return await inner.handle_async_request(request)

    async with httpx.AsyncClient(transport=Flaky()) as http:
        woo = WooCommerceClient(BASE_URL, KEY, SECRET, client=http, sleep=sleep)
        result = await woo.push_products([lot(1)])
    assert result.ok
    assert len(sleep.delays) == 1


async def test_orders_are_listed_page_by_page_after_a_moment(
    http: httpx.AsyncClient, simulator: Starlette
) -> None:
    store = simulator.state.store
    start = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    for n in range(250):
        store.add_order(date_created=start + timedelta(minutes=n), total=f"{n}.00")
    seen: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request)

    http.event_hooks["request"] = [record]
    woo = WooCommerceClient(BASE_URL, KEY, SECRET, client=http)

    everything = await woo.list_orders()
    assert len(everything) == 250
    assert len(seen) == 3
    assert [o["id"] for o in everything] == sorted(o["id"] for o in everything)

    seen.clear()
    recent = await woo.list_orders(start + timedelta(minutes=199), per_page=20)
    assert [o["total"] for o in recent] == [f"{n}.00" for n in range(200, 250)]
    assert [r.url.params["page"] for r in seen] == ["1", "2", "3"]
    assert seen[0].url.params["after"] == "2025-03-01T15:19:00"

    assert await woo.list_orders(start + timedelta(days=1)) == []
    with pytest.raises(ValueError):
        await woo.list_orders(datetime(2025, 1, 1))


async def test_sku_index_scales_and_frees_skus_like_woocommerce(
    http: httpx.AsyncClient, simulator: Starlette
) -> None:
    def small(n: int) -> dict[str, object]:
        return {"sku": f"BULK-{n:06d}", "name": f"Lot {n}", "regular_price": "1.00"}

    async def batch(body: dict[str, object]) -> dict[str, list[dict[str, object]]]:
        response = await http.post("/wp-json/wc/v3/products/batch", json=body, auth=(KEY, SECRET))
        assert response.status_code == 200
        return response.json()

    async def by_sku(sku: str) -> list[int]:
        response = await http.get(
            "/wp-json/wc/v3/products", params={"sku": sku}, auth=(KEY, SECRET)
        )
        assert response.status_code == 200
        return [p["id"] for p in response.json()]

    for start in range(0, 20_000, 100):
        answer = await batch({"create": [small(n) for n in range(start, start + 100)]})
        assert all("error" not in item for item in answer["create"])
    store = simulator.state.store
    assert len(store.products) == 20_000
    assert store.stats.batch_calls == 200

    # A duplicate is still refused with 20,000 products, in a batch and on its own.
    answer = await batch({"create": [small(12_345), small(20_000)]})
    assert answer["create"][0]["error"]["code"] == "product_invalid_sku"
    assert answer["create"][1]["sku"] == "BULK-020000"
    single = await http.post("/wp-json/wc/v3/products", json=small(0), auth=(KEY, SECRET))
    assert single.status_code == 400 and single.json()["code"] == "product_invalid_sku"
    [first] = await by_sku("BULK-000000")
    assert first == 101
    assert await by_sku("NOPE") == []

    # Updating a product to its own SKU is fine; to another's is refused.
    answer = await batch(
        {"update": [{"id": first, "sku": "BULK-000000"}, {"id": first, "sku": "BULK-000001"}]}
    )
    assert answer["update"][0]["sku"] == "BULK-000000"
    assert answer["update"][1]["error"]["code"] == "product_invalid_sku"

    # A SKU changed by an update is free; the new one is taken.
    answer = await batch({"update": [{"id": first, "sku": "RENAMED-0"}]})
    assert answer["update"][0]["sku"] == "RENAMED-0"
    assert await by_sku("BULK-000000") == []
    assert await by_sku("RENAMED-0") == [first]
    answer = await batch({"create": [small(0), {**small(1), "sku": "RENAMED-0"}]})
    reused = answer["create"][0]["id"]
    assert answer["create"][0]["sku"] == "BULK-000000" and reused != first
    assert answer["create"][1]["error"]["code"] == "product_invalid_sku"
    assert await by_sku("BULK-000000") == [reused]

    # A forced delete frees the SKU; a trashed product keeps it.
    [doomed] = await by_sku("BULK-000002")
    answer = await batch({"delete": [doomed]})
    assert answer["delete"][0]["id"] == doomed
    assert await by_sku("BULK-000002") == []
    answer = await batch({"create": [small(2)]})
    assert answer["create"][0]["sku"] == "BULK-000002"
    [trashed] = await by_sku("BULK-000003")
    response = await http.delete(f"/wp-json/wc/v3/products/{trashed}", auth=(KEY, SECRET))
    assert response.status_code == 200 and response.json()["status"] == "trash"
    assert await by_sku("BULK-000003") == [trashed]
    answer = await batch({"create": [small(3)]})
    assert answer["create"][0]["error"]["code"] == "product_invalid_sku"
    response = await http.delete(
        f"/wp-json/wc/v3/products/{trashed}", params={"force": "true"}, auth=(KEY, SECRET)
    )
    assert response.status_code == 200
    answer = await batch({"create": [small(3)]})
    assert answer["create"][0]["sku"] == "BULK-000003"

    # Clearing a SKU frees it too; empty SKUs are never duplicates.
    [cleared] = await by_sku("BULK-000004")
    answer = await batch({"update": [{"id": cleared, "sku": ""}]})
    assert answer["update"][0]["sku"] == ""
    answer = await batch({"create": [small(4)]})
    assert answer["create"][0]["sku"] == "BULK-000004"
    answer = await batch({"create": [{**small(0), "sku": ""}]})
    assert "error" not in answer["create"][0]
    assert len(store.products) == 20_004
    # The index agrees with a full scan.
    assert all(store.product_by_sku(p["sku"]) is p for p in store.products.values() if p["sku"])
    assert store.product_by_sku("BULK-000000") is store.products[reused]


async def test_find_product_id_by_sku(woo: WooCommerceClient, simulator: Starlette) -> None:
    created = await woo.push_products([lot(n) for n in range(3)])
    ids = created.ids_by_sku()

    assert await woo.find_product_id_by_sku("LOT-00001") == ids["LOT-00001"]
    assert await woo.find_product_id_by_sku("LOT-99999") is None
    # The recovery it is for: a create whose answer was lost comes back as a duplicate SKU.
    retry = await woo.push_products([lot(2)])
    assert retry.errors[0].error_code == "product_invalid_sku"
    assert await woo.find_product_id_by_sku("LOT-00002") == ids["LOT-00002"]
    with pytest.raises(ValueError):
        await woo.find_product_id_by_sku("")
    assert simulator.state.store.stats.requests["GET products"] == 3


async def test_find_product_id_by_sku_retries_and_falls_back_to_query_string_auth(
    sleep: RecordingSleep,
) -> None:
    app = create_simulator(consumer_key=KEY, consumer_secret=SECRET, strip_authorization=True)
    app.state.store.create_product(lot(7))
    app.state.faults.inject(503)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        woo = WooCommerceClient(BASE_URL, KEY, SECRET, client=http, sleep=sleep)
        assert await woo.find_product_id_by_sku("LOT-00007") == 101
    assert woo.query_string_auth
    assert len(sleep.delays) == 1
