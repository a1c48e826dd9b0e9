"""The Shopify connector: the GraphQL simulator and the client, in-process with a fake clock."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from starlette.applications import Starlette

from app.connectors.shopify import ShopifyClient, product_input
from app.connectors.shopify.simulator import GRAPHQL_PATH, INVALID_TOKEN, create_simulator
from app.errors import UpstreamError

TOKEN = "shpat_test_token"
SHOP_URL = "https://test-shop.myshopify.com"


class FakeTime:
    """A clock that only moves when the code under test sleeps; sleeps are recorded."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def simulator(fake: FakeTime) -> Starlette:
    return create_simulator(access_token=TOKEN, clock=fake.clock)


@pytest.fixture
async def http(simulator: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=simulator)) as client:
        yield client


def make_client(http: httpx.AsyncClient, fake: FakeTime, **kwargs: object) -> ShopifyClient:
    return ShopifyClient(
        SHOP_URL,
        kwargs.pop("access_token", TOKEN),  # type: ignore[arg-type]
        client=http,
        sleep=fake.sleep,
        clock=fake.clock,
        rng=random.Random(7),
        **kwargs,  # type: ignore[arg-type]
    )


def lot(n: int, **overrides: object) -> dict:
    fields: dict = {
        "sku": f"LOT-{n:05d}",
        "title": f"1921 Morgan Dollar MS6{n % 10}",
        "price": Decimal("125.50") + n,
        "description_html": f"<p>Lot {n}</p>",
        "images": [f"https://img.example/{n}.jpg"],
        "active": True,
    }
    fields.update(overrides)
    return product_input(**fields)


def test_product_input_shape() -> None:
    data = product_input("SKU-1", "Coin", Decimal("12.5"), "<p>x</p>", ["https://i/1.jpg"], False)
    assert data["status"] == "DRAFT"
    assert data["variants"] == [
        {
            "optionValues": [{"optionName": "Title", "name": "Default Title"}],
            "price": "12.50",
            "inventoryItem": {"sku": "SKU-1"},
        }
    ]
    assert data["files"] == [
        {"originalSource": "https://i/1.jpg", "contentType": "IMAGE", "alt": "Coin"}
    ]


async def test_raw_protocol_cost_extensions_and_bad_token(http: httpx.AsyncClient) -> None:
    url = SHOP_URL + GRAPHQL_PATH
    query = "query { products(first: 5) { nodes { id } pageInfo { hasNextPage } } }"
    bad = await http.post(url, json={"query": query}, headers={"X-Shopify-Access-Token": "nope"})
    assert bad.status_code == 401
    assert bad.json() == {"errors": INVALID_TOKEN}

    ok = await http.post(url, json={"query": query}, headers={"X-Shopify-Access-Token": TOKEN})
    assert ok.status_code == 200
    body = ok.json()
    assert body["data"] == {"products": {"nodes": [], "pageInfo": {"hasNextPage": False}}}
    assert body["extensions"]["cost"] == {
        "requestedQueryCost": 6,
        "actualQueryCost": 6,
        "throttleStatus": {
            "maximumAvailable": 1000.0,
            "currentlyAvailable": 994.0,
            "restoreRate": 100.0,
        },
    }


async def test_product_set_creates_then_updates_by_sku(
    http: httpx.AsyncClient, simulator: Starlette, fake: FakeTime
) -> None:
    shop = simulator.state.shop
    first = await make_client(http, fake).product_set(lot(1))
    assert first.ok and first.created and first.sku == "LOT-00001"
    assert first.product_id and first.product_id.startswith("gid://shopify/Product/")

    # A fresh client (nothing remembered) finds the product by SKU and updates it.
    again = make_client(http, fake)
    second = await again.product_set(lot(1, title="Retitled", price=Decimal("99"), active=False))
    assert second.ok and not second.created
    assert second.product_id == first.product_id
    assert len(shop.products) == 1
    stored = next(iter(shop.products.values()))
    assert stored["title"] == "Retitled"
    assert stored["status"] == "DRAFT"
    assert [(v["sku"], v["price"]) for v in stored["_variants"]] == [("LOT-00001", "99.00")]
    assert stored["_media"][0]["preview"]["image"]["url"] == "https://img.example/1.jpg"

    # The same client remembers the gid: no lookup query the third time.
    calls = shop.stats.calls
    third = await again.product_set(lot(1, title="Third"))
    assert third.product_id == first.product_id
    assert shop.stats.calls == calls + 1


async def test_user_errors_are_returned_per_product(
    http: httpx.AsyncClient, simulator: Starlette, fake: FakeTime
) -> None:
    client = make_client(http, fake)
    results = await client.push_products(
        [lot(1), lot(2, title="  "), lot(3, price=Decimal("-1")), lot(4)]
    )
    assert [r.ok for r in results] == [True, False, False, True]
    assert results[1].product_id is None
    assert [(e.field, e.code) for e in results[1].user_errors] == [(["input", "title"], "BLANK")]
    assert results[2].user_errors[0].field == ["input", "variants", "0", "price"]
    assert results[2].user_errors[0].code == "GREATER_THAN_OR_EQUAL_TO"
    assert results[2].sku == "LOT-00003"
    assert len(simulator.state.shop.products) == 2


async def test_throttled_reply_waits_the_right_time_and_retries(
    http: httpx.AsyncClient, fake: FakeTime
) -> None:
    app = create_simulator(access_token=TOKEN, bucket_size=100, restore_rate=10, clock=fake.clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as own:
        # Another process drains the bucket to 1 point: 9 x (10 + 1 variant) = 99.
        other = make_client(own, fake, lookup_by_sku=False)
        await other.push_products([lot(n) for n in range(9)])
        assert fake.sleeps == []

        client = make_client(own, fake, lookup_by_sku=False)  # knows nothing of the bucket
        result = await client.product_set(lot(100))

    assert result.ok
    assert client.throttled_replies == 1
    assert app.state.shop.stats.throttled == 1
    # (11 needed - 1 available) / 10 per second, then no further pacing wait.
    assert fake.sleeps == [pytest.approx(1.0)]


async def test_throttled_reply_is_http_200_without_data(fake: FakeTime) -> None:
    app = create_simulator(access_token=TOKEN, bucket_size=10, restore_rate=1, clock=fake.clock)
    query = "query { orders(first: 8) { nodes { id } } }"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        headers = {"X-Shopify-Access-Token": TOKEN}
        url = SHOP_URL + GRAPHQL_PATH
        assert "data" in (await http.post(url, json={"query": query}, headers=headers)).json()
        throttled = await http.post(url, json={"query": query}, headers=headers)
    assert throttled.status_code == 200
    body = throttled.json()
    assert "data" not in body
    assert body["errors"] == [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]
    assert body["extensions"]["cost"]["requestedQueryCost"] == 9
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 1


async def test_pacing_keeps_throttling_rare_and_time_near_minimum(
    http: httpx.AsyncClient, simulator: Starlette, fake: FakeTime
) -> None:
    shop = simulator.state.shop
    client = make_client(http, fake)
    start = fake.now
    results = await client.push_products([lot(n) for n in range(300)])
    assert all(r.ok for r in results)
    assert len(shop.products) == 300
    assert shop.stats.throttled < 0.01 * shop.stats.calls
    # Each product: a SKU lookup (2) and a productSet (11); the first 1000 points are free.
    assert shop.stats.points_used == 300 * 13
    minimum = (shop.stats.points_used - 1000) / 100
    elapsed = fake.now - start
    assert minimum <= elapsed + 1e-6
    assert elapsed <= minimum * 1.05


async def test_server_errors_are_retried_with_backoff(
    http: httpx.AsyncClient, simulator: Starlette, fake: FakeTime
) -> None:
    simulator.state.shop.inject_fault(503, count=2)
    result = await make_client(http, fake, lookup_by_sku=False).product_set(lot(1))
    assert result.ok
    assert len(fake.sleeps) == 2
    assert 0.25 <= fake.sleeps[0] <= 0.5 and 0.5 <= fake.sleeps[1] <= 1.0


async def test_persistent_server_errors_raise_retryable(
    http: httpx.AsyncClient, simulator: Starlette, fake: FakeTime
) -> None:
    simulator.state.shop.inject_fault(500, count=10)
    client = make_client(http, fake, max_retries=2, lookup_by_sku=False)
    with pytest.raises(UpstreamError) as caught:
        await client.product_set(lot(1))
    assert caught.value.retryable is True
    assert simulator.state.shop.stats.faults_served == 3


async def test_bad_token_is_not_retryable(http: httpx.AsyncClient, fake: FakeTime) -> None:
    client = make_client(http, fake, access_token="wrong")
    with pytest.raises(UpstreamError) as caught:
        await client.product_set(lot(1))
    assert caught.value.retryable is False
    assert caught.value.code == "store_auth_failed"
    assert fake.sleeps == []


async def test_delete_product_and_recreate_after_store_side_delete(
    http: httpx.AsyncClient, simulator: Starlette, fake: FakeTime
) -> None:
    shop = simulator.state.shop
    client = make_client(http, fake)
    created = await client.product_set(lot(1))
    assert created.product_id

    # Deleted in the store by someone else: the remembered gid is stale, the push recreates.
    assert await make_client(http, fake).delete_product(created.product_id) is True
    recreated = await client.product_set(lot(1))
    assert recreated.ok and recreated.created
    assert recreated.product_id != created.product_id
    assert len(shop.products) == 1

    assert recreated.product_id
    assert await client.delete_product(recreated.product_id) is True
    assert await client.delete_product(recreated.product_id) is False
    assert shop.products == {}


async def test_list_orders_after_a_time_across_pages(
    http: httpx.AsyncClient, simulator: Starlette, fake: FakeTime
) -> None:
    shop = simulator.state.shop
    base = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    for n in range(130):
        shop.add_order(
            created_at=base + timedelta(minutes=n),
            line_items=[{"sku": f"LOT-{n:05d}", "quantity": 1, "title": "Coin"}],
            total=f"{100 + n}.00",
            email=f"buyer{n}@example.com",
        )
    client = make_client(http, fake)
    everything = await client.list_orders()
    assert len(everything) == 130

    recent = await client.list_orders(after=base + timedelta(minutes=9))
    assert len(recent) == 120
    assert recent[0].created_at == base + timedelta(minutes=10)
    assert recent[0].lines[0].sku == "LOT-00010"
    assert recent[0].total == Decimal("110.00") and recent[0].currency == "USD"
    assert [o.created_at for o in recent] == sorted(o.created_at for o in recent)
    assert await client.list_orders(after=base + timedelta(days=1)) == []


async def test_sku_index_follows_variant_changes_and_product_delete(
    http: httpx.AsyncClient, simulator: Starlette, fake: FakeTime
) -> None:
    shop = simulator.state.shop
    url = SHOP_URL + GRAPHQL_PATH
    headers = {"X-Shopify-Access-Token": TOKEN}
    set_product = (
        "mutation($input: ProductSetInput!) { productSet(input: $input, synchronous: true) "
        "{ product { id variants(first: 5) { nodes { sku } } } userErrors { code } } }"
    )

    async def call(query: str, variables: dict | None = None) -> dict:
        fake.now += 10  # the bucket refills
        response = await http.post(
            url, json={"query": query, "variables": variables or {}}, headers=headers
        )
        body = response.json()
        assert "errors" not in body
        return body["data"]

    async def product_set(sku: str, product_id: str | None = None) -> dict:
        data: dict = {
            "title": "Coin",
            "variants": [{"price": "1.00", "inventoryItem": {"sku": sku}}],
        }
        if product_id is not None:
            data["id"] = product_id
        return (await call(set_product, {"input": data}))["productSet"]

    async def search(sku: str) -> list[str]:
        query = "query($q: String) { products(first: 5, query: $q) { nodes { id } } }"
        return [n["id"] for n in (await call(query, {"q": f"sku:{sku}"}))["products"]["nodes"]]

    # 5,000 products, 50 aliased productSet mutations per call.
    for start in range(0, 5_000, 50):
        fields = " ".join(
            f'p{n}: productSet(input: {{title: "Lot {n}", variants: [{{price: "1.00", '
            f'inventoryItem: {{sku: "BULK-{n:05d}"}}}}]}}, synchronous: true) '
            "{ userErrors { code } }"
            for n in range(start, start + 50)
        )
        answer = await call(f"mutation {{ {fields} }}")
        assert all(r["userErrors"] == [] for r in answer.values())
    assert len(shop.products) == 5_000
    [first] = await search("BULK-00001")
    assert (await product_set("BULK-04999", first))["userErrors"] == [{"code": "TAKEN"}]

    a = (await product_set("S-1"))["product"]["id"]
    b = (await product_set("S-2"))["product"]["id"]
    assert (await product_set("S-1", b))["userErrors"] == [{"code": "TAKEN"}]
    assert await search("S-1") == [a]

    # A SKU moved to another value by productSet is free again.
    assert (await product_set("S-3", a))["userErrors"] == []
    assert await search("S-1") == []
    assert (await product_set("S-1", b))["product"]["variants"]["nodes"] == [{"sku": "S-1"}]
    assert await search("S-1") == [b] and await search("S-2") == []
    assert shop.product_by_sku("S-2") is None

    # productDelete frees the SKUs: a push by SKU creates a new product instead of updating.
    deleted = await call(
        "mutation($input: ProductDeleteInput!) { productDelete(input: $input) "
        "{ deletedProductId } }",
        {"input": {"id": a}},
    )
    assert deleted["productDelete"]["deletedProductId"] == a
    assert await search("S-3") == []
    assert shop.product_by_sku("S-3") is None
    again = (await product_set("S-3"))["product"]["id"]
    assert again not in (a, b)
    assert await search("S-3") == [again]
    assert (await product_set("S-3", b))["userErrors"] == [{"code": "TAKEN"}]
    assert len(shop.products) == 5_002
    # The index agrees with a full scan.
    for product in shop.products.values():
        assert all(shop.product_by_sku(v["sku"]) is product for v in product["_variants"])
