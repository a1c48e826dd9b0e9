"""The auction-house connector: the seeded catalog, the simulator and the client, in-process."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import asdict
from decimal import Decimal
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app.connectors.auction_house import AuctionHouseClient, Lot, Page, catalog_at
from app.connectors.auction_house.catalog import SERIES, SERIES_BY_NAME, lot_to_json, make_title
from app.connectors.auction_house.simulator import create_simulator
from app.errors import UpstreamError
from tests.conftest import TEST_REDIS_URL, requires_redis

SEED = 42
SIZE = 750
TOKEN = "test-ha-token"
BASE_URL = "http://auction-house.test"

TITLE = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<mint>[A-Z]{1,2}))? (?P<series>.+) (?P<grade>[A-Z]{2}\d{2})$"
)
CLASSIC_GRADE = re.compile(r"^(VF(20|30|35)|EF(40|45)|AU(50|55|58)|MS6[0-9]|MS70)$")
BULLION_GRADE = re.compile(r"^(MS|PR|PF)(69|70)$")
SERIES_FACTS = {
    "Morgan Dollar": ("Silver", "$1", 1878, 1921, {None, "O", "S", "CC", "D"}),
    "Peace Dollar": ("Silver", "$1", 1921, 1935, {None, "D", "S"}),
    "Saint-Gaudens Double Eagle": ("Gold", "$20", 1907, 1933, {None, "D", "S"}),
    "Liberty Double Eagle": ("Gold", "$20", 1850, 1907, {None, "O", "S", "CC", "D"}),
    "Walking Liberty Half Dollar": ("Silver", "50C", 1916, 1947, {None, "D", "S"}),
    "Buffalo Nickel": ("Nickel", "5C", 1913, 1938, {None, "D", "S"}),
    "Mercury Dime": ("Silver", "10C", 1916, 1945, {None, "D", "S"}),
    "Lincoln Cent": ("Copper", "1C", 1909, 1958, {None, "D", "S"}),
    "American Silver Eagle": ("Silver", "$1", 1986, 2024, {None, "S", "W"}),
    "American Gold Eagle": ("Gold", "$50", 1986, 2024, {None, "W"}),
    "Great Britain Sovereign": ("Gold", "£1", 1871, 1932, {None}),
    "Mexico 50 Pesos": ("Gold", "50 Pesos", 1921, 1947, {None}),
}


class RecordingSleep:
    """Stands in for `asyncio.sleep`: records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def simulator() -> Starlette:
    return create_simulator(seed=SEED, size=SIZE, token=TOKEN)


@pytest.fixture
async def http(simulator: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=simulator)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield client


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


def make_client(
    http: httpx.AsyncClient, sleep: RecordingSleep, *, token: str = TOKEN, **kwargs: Any
) -> AuctionHouseClient:
    return AuctionHouseClient(BASE_URL, token, client=http, sleep=sleep, **kwargs)


async def collect_pages(client: AuctionHouseClient) -> list[Page]:
    return [page async for page in client.pages()]


async def advance(http: httpx.AsyncClient) -> int:
    response = await http.post("/v1/_admin/advance", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    generation: int = response.json()["generation"]
    return generation


# --- The catalog ------------------------------------------------------------------------------


def test_same_seed_and_generation_give_the_same_catalog() -> None:
    assert catalog_at(SEED, SIZE, 3) == catalog_at(SEED, SIZE, 3)
    assert catalog_at(SEED, SIZE, 0) != catalog_at(SEED + 1, SIZE, 0)
    assert len(catalog_at(SEED, SIZE, 0)) == SIZE


def test_catalog_lots_are_realistic() -> None:
    lots = catalog_at(SEED, 2_000, 0)
    assert len({lot.ha_lot for lot in lots}) == len(lots)
    seen_series = set()
    for lot in lots:
        assert re.fullmatch(r"\d{7}", lot.ha_lot)
        match = TITLE.match(lot.title)
        assert match, lot.title
        series = match["series"]
        seen_series.add(series)
        metal, denomination, first, last, mints = SERIES_FACTS[series]
        assert (lot.metal, lot.denomination) == (metal, denomination), lot
        assert int(match["year"]) == lot.year and first <= lot.year <= last, lot
        assert match["mint"] == lot.mint and lot.mint in mints, lot
        assert match["grade"] == lot.grade
        grade_pattern = BULLION_GRADE if SERIES_BY_NAME[series].bullion else CLASSIC_GRADE
        assert grade_pattern.match(lot.grade), lot
        assert lot.service in {"PCGS", "NGC", "PCGS CAC", "NGC CAC"}
        assert lot.cost > 0 and lot.cost == lot.cost.quantize(Decimal("0.01"))
        assert lot.cost.as_tuple().exponent == -2
        assert lot.images == [
            f"https://images.ha.example/lots/{lot.ha_lot}/obverse.jpg",
            f"https://images.ha.example/lots/{lot.ha_lot}/reverse.jpg",
        ]
        assert lot.available
        if lot.metal == "Gold" and SERIES_BY_NAME[series].denomination in {"$20", "$50"}:
            assert lot.cost >= Decimal("2000"), lot
    assert seen_series == {series.name for series in SERIES}
    assert any(lot.service.endswith("CAC") for lot in lots)
    assert any(lot.mint is None and re.match(r"^\d{4} ", lot.title) for lot in lots)
    assert any(lot.mint == "CC" and "-CC " in lot.title for lot in lots)


def test_titles_put_the_mint_mark_after_the_year() -> None:
    assert make_title("Morgan Dollar", 1921, None, "MS65") == "1921 Morgan Dollar MS65"
    assert make_title("Morgan Dollar", 1893, "S", "VF35") == "1893-S Morgan Dollar VF35"


def test_common_morgan_dollars_cost_what_collectors_pay() -> None:
    lots = catalog_at(SEED, 3_000, 0)
    key_morgans = {1893, 1889, 1884, 1892, 1903}
    common_ms63 = [
        lot.cost
        for lot in lots
        if lot.title.endswith("Morgan Dollar MS63")
        and lot.year not in key_morgans
        and "CAC" not in lot.service
    ]
    assert common_ms63
    assert all(Decimal("60") <= cost <= Decimal("120") for cost in common_ms63)
    silver_eagles = [lot.cost for lot in lots if "Silver Eagle" in lot.title]
    assert all(Decimal("30") <= cost <= Decimal("120") for cost in silver_eagles)


def test_catalog_evolves_a_little_each_generation() -> None:
    before = {lot.ha_lot: lot for lot in catalog_at(SEED, 2_000, 4)}
    after = {lot.ha_lot: lot for lot in catalog_at(SEED, 2_000, 5)}
    gone = before.keys() - after.keys()
    new = after.keys() - before.keys()
    common = before.keys() & after.keys()
    sold = {n for n in common if before[n].available and not after[n].available}
    repriced = {n for n in common if before[n].cost != after[n].cost}
    unchanged = {n for n in common if before[n] == after[n]}

    assert gone == {n for n, lot in before.items() if not lot.available}
    assert sold and repriced and new
    assert min(int(n) for n in new) > max(int(n) for n in before)
    changed = len(gone) + len(new) + len(sold) + len(repriced)
    assert 0.01 <= changed / len(before) <= 0.05
    assert len(unchanged) / len(before) >= 0.95
    for number in repriced:
        assert asdict(before[number]) | {"cost": after[number].cost} == asdict(after[number])


# --- The simulator ------------------------------------------------------------------------------


async def test_simulator_serves_pages_with_money_as_strings(http: httpx.AsyncClient) -> None:
    response = await http.get(
        "/v1/lots",
        params={"page": 2, "page_size": 10},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 200
    body = response.json()
    expected = catalog_at(SEED, SIZE, 0)[10:20]
    assert body["lots"] == [lot_to_json(lot) for lot in expected]
    assert re.fullmatch(r"\d+\.\d{2}", body["lots"][0]["cost"])
    assert (body["page"], body["page_size"], body["total"]) == (2, 10, SIZE)
    assert (body["next_page"], body["generation"]) == (3, 0)
    assert re.fullmatch(r'"[0-9a-f]+"', response.headers["etag"])

    last = await http.get(
        "/v1/lots",
        params={"page": 8, "page_size": 100},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert last.json()["next_page"] is None and len(last.json()["lots"]) == SIZE - 700


async def test_simulator_rejects_bad_tokens_and_bad_page_sizes(http: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"}):
        response = await http.get("/v1/lots", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_token"
    response = await http.get(
        "/v1/lots", params={"page_size": 501}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 400


# --- The client ----------------------------------------------------------------------------------


async def test_client_streams_every_lot_across_pages(
    http: httpx.AsyncClient, sleep: RecordingSleep
) -> None:
    client = make_client(http, sleep, page_size=100)
    streamed: list[Lot] = [lot async for lot in client.lots()]
    assert streamed == catalog_at(SEED, SIZE, 0)

    pages = await collect_pages(client)
    assert [page.number for page in pages] == list(range(1, 9))
    assert all(len(page.lots) <= 100 for page in pages)
    assert sleep.delays == []


async def test_unchanged_pages_come_back_not_modified_until_the_catalog_moves(
    http: httpx.AsyncClient, sleep: RecordingSleep
) -> None:
    client = make_client(http, sleep, page_size=250)
    first = await collect_pages(client)
    assert [(p.number, p.not_modified) for p in first] == [(1, False), (2, False), (3, False)]
    assert all(p.etag for p in first)

    again = await collect_pages(client)
    assert [(p.number, p.not_modified, p.lots) for p in again] == [
        (1, True, []),
        (2, True, []),
        (3, True, []),
    ]
    assert [p.etag for p in again] == [p.etag for p in first]

    assert await advance(http) == 1
    fresh = await collect_pages(client)
    assert not any(p.not_modified for p in fresh)
    assert [lot for p in fresh for lot in p.lots] == catalog_at(SEED, SIZE, 1)
    assert {p.generation for p in fresh} == {1}
    assert all(new.etag != old.etag for new, old in zip(fresh, first, strict=False))


async def test_client_waits_as_long_as_retry_after_says(
    simulator: Starlette, http: httpx.AsyncClient, sleep: RecordingSleep
) -> None:
    simulator.state.faults.inject(429, count=2, retry_after=1)
    client = make_client(http, sleep)
    page = await client.fetch_page(1)
    assert sleep.delays == [1.0, 1.0]
    assert page.lots == catalog_at(SEED, SIZE, 0)[:100]


async def test_client_backs_off_on_503_then_succeeds(
    simulator: Starlette, http: httpx.AsyncClient, sleep: RecordingSleep
) -> None:
    simulator.state.faults.inject(503, count=3)
    client = make_client(http, sleep, backoff_base=0.5, backoff_cap=30.0)
    lots = [lot async for lot in client.lots()]
    assert lots == catalog_at(SEED, SIZE, 0)
    assert len(sleep.delays) == 3
    # Exponential with jitter: each delay lies in [step / 2, step] for step = 0.5 * 2**attempt.
    for attempt, delay in enumerate(sleep.delays):
        step = 0.5 * 2**attempt
        assert step / 2 <= delay <= step


class DropsFirstConnection(httpx.AsyncBaseTransport):
    """Fails the first request with a connection error, then passes requests to `app`."""

    def __init__(self, app: Starlette) -> None:
        self.asgi = httpx.ASGITransport(app=app)
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.calls == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return await self.asgi.handle_async_request(request)


async def test_client_retries_transport_errors(sleep: RecordingSleep) -> None:
    transport = DropsFirstConnection(create_simulator(seed=SEED, size=20, token=TOKEN))
    async with httpx.AsyncClient(transport=transport) as http:
        client = make_client(http, sleep)
        lots = [lot async for lot in client.lots()]
    assert lots == catalog_at(SEED, 20, 0)
    assert transport.calls == 2 and len(sleep.delays) == 1


async def test_rejected_token_is_not_retryable(
    http: httpx.AsyncClient, sleep: RecordingSleep
) -> None:
    client = make_client(http, sleep, token="wrong")
    with pytest.raises(UpstreamError) as caught:
        [lot async for lot in client.lots()]
    assert caught.value.retryable is False
    assert caught.value.code == "upstream_unauthorized"
    assert sleep.delays == []


async def test_exhausted_retries_are_retryable(
    simulator: Starlette, http: httpx.AsyncClient, sleep: RecordingSleep
) -> None:
    simulator.state.faults.inject(429, count=10, retry_after=1)
    client = make_client(http, sleep, max_retries=3)
    with pytest.raises(UpstreamError) as caught:
        await client.fetch_page(1)
    assert caught.value.retryable is True
    assert caught.value.retry_after == 1.0
    assert sleep.delays == [1.0, 1.0, 1.0]
    assert len(simulator.state.faults.pending) == 6


async def test_retry_after_is_capped(
    simulator: Starlette, http: httpx.AsyncClient, sleep: RecordingSleep
) -> None:
    simulator.state.faults.inject(503, retry_after=3600)
    client = make_client(http, sleep, backoff_cap=30.0)
    await client.fetch_page(1)
    assert sleep.delays == [30.0]


@requires_redis
async def test_processes_share_the_simulated_catalogs_generation_over_redis(tmp_path) -> None:
    """Distributed mode: the API process takes `POST …/_admin/advance`, a worker's simulator
    serves the sync. Both follow the generation kept in Redis, so the worker sees the lots the
    advance sold, repriced and added."""
    from redis.asyncio import Redis

    from app.config import Settings
    from app.connectors.simulated import AUCTION_HOUSE_TOKEN, Simulators, asgi_client

    settings = Settings(
        data_dir=tmp_path,
        redis_url=TEST_REDIS_URL,
        simulator_seed=987_654,  # a key of its own
        simulator_catalog_size=40,
        demo=False,
    )
    api, worker = Simulators(settings), Simulators(settings)
    key = api.auction_house.state.shared.key
    auth = {"Authorization": f"Bearer {AUCTION_HOUSE_TOKEN}"}
    async with Redis.from_url(TEST_REDIS_URL) as redis:
        await redis.delete(key)
        try:
            async with (
                asgi_client(api.auction_house) as to_api,
                asgi_client(worker.auction_house) as to_worker,
            ):
                before = await to_worker.get("http://sim/v1/lots?page_size=500", headers=auth)
                assert before.json()["generation"] == 0
                advanced = await to_api.post("http://sim/v1/_admin/advance", headers=auth)
                assert advanced.json()["generation"] == 1
                assert int(await redis.get(key)) == 1

                seen = await to_worker.get("http://sim/v1/lots?page_size=500", headers=auth)
                changes = await to_worker.get(
                    "http://sim/v1/lots?page_size=500&changed_since=0", headers=auth
                )
                on_api = await to_api.get("http://sim/v1/lots?page_size=500", headers=auth)
        finally:
            await redis.delete(key)
    assert seen.json()["generation"] == 1
    assert seen.json()["lots"] == on_api.json()["lots"]
    assert seen.json()["lots"] != before.json()["lots"]
    assert changes.json()["total"] > 0
