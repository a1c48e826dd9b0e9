"""Per-plan rate limits at the gateway: the `X-RateLimit-*` headers on every response of both
APIs, 429 with `Retry-After`, separate budgets per (account, environment) and per client IP,
and the switch that turns the limiter off."""

from __future__ import annotations

import logging
import time
import types
import uuid
from decimal import Decimal

import httpx
import limits.aio.storage.memory
import pytest
from asgi_lifespan import LifespanManager

from app.accounts import service as accounts
from app.accounts.models import Plan
from app.auth import gateway
from app.auth import service as keys
from app.products.models import Product
from app.ratelimit import RateLimiter
from tests.conftest import TEST_REDIS_URL, Tenant, make_product, make_tenant, requires_redis


def limit_headers(response: httpx.Response) -> tuple[int, int, int]:
    h = response.headers
    return int(h["x-ratelimit-limit"]), int(h["x-ratelimit-remaining"]), int(h["x-ratelimit-reset"])


def assert_reset_about_a_minute_away(response: httpx.Response) -> None:
    reset = int(response.headers["x-ratelimit-reset"])
    now = time.time()
    assert now + 55 <= reset <= now + 61, (reset, now)


async def enterprise(name: str = "Big Mint", rate_limit: int = 5) -> Tenant:
    account = await accounts.create_account(name=name, plan="enterprise", rate_limit=rate_limit)
    live = await keys.create_key(account_id=account.id, mode="live")
    live_read = await keys.create_key(account_id=account.id, mode="live", scopes=["read"])
    test = await keys.create_key(account_id=account.id, mode="test")
    return Tenant(account.id, Plan.ENTERPRISE, live.secret, test.secret, live_read.secret)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_headers_on_rest_success_and_errors_share_one_budget(client, tenant):
    product = await make_product(tenant)
    ok = await client.get("/v1/products", headers=tenant.headers())
    assert ok.status_code == 200
    assert limit_headers(ok)[:2] == (500, 499)
    assert_reset_about_a_minute_away(ok)

    missing = await client.get("/v1/products/prod_missing", headers=tenant.headers())
    assert missing.status_code == 404
    assert limit_headers(missing)[:2] == (500, 498)

    invalid = await client.get("/v1/products?limit=0", headers=tenant.headers())
    assert invalid.status_code == 400
    assert limit_headers(invalid)[:2] == (500, 497)

    forbidden = await client.put(
        f"/v1/products/{product.id}", json={"price": 1}, headers=tenant.headers(tenant.live_read)
    )
    assert forbidden.status_code == 403
    # A read-only key of the same account and environment draws on the same budget.
    assert limit_headers(forbidden)[:2] == (500, 496)

    no_route = await client.get("/v1/nowhere", headers=tenant.headers())
    assert no_route.status_code == 404
    assert limit_headers(no_route)[:2] == (500, 495)
    # The reset is the same moment while the first request is the oldest in the window.
    assert len({limit_headers(r)[2] for r in (ok, missing, invalid, forbidden, no_route)}) <= 2


async def test_headers_on_graphql_responses_share_the_rest_budget(client, tenant):
    rest = await client.get("/v1/products", headers=tenant.headers())
    assert limit_headers(rest)[:2] == (500, 499)
    gql = await client.post("/graphql", json={"query": "{ me { id } }"}, headers=tenant.headers())
    assert gql.status_code == 200 and gql.json()["data"]["me"]["id"] == tenant.account_id
    assert limit_headers(gql)[:2] == (500, 498)
    assert_reset_about_a_minute_away(gql)

    failing = await client.post(
        "/graphql",
        json={"query": '{ product(id: "prod_missing") { id } }'},
        headers=tenant.headers(),
    )
    assert failing.json()["errors"][0]["extensions"]["code"] == "resource_missing"
    assert limit_headers(failing)[:2] == (500, 497)

    invalid = await client.post("/graphql", json={"query": "{ nope }"}, headers=tenant.headers())
    assert "errors" in invalid.json()
    assert limit_headers(invalid)[:2] == (500, 496)

    via_get = await client.get(
        "/graphql", params={"query": "{ me { id } }"}, headers=tenant.headers()
    )
    assert via_get.status_code == 200
    assert limit_headers(via_get)[:2] == (500, 495)


async def test_unauthenticated_requests_draw_on_a_per_ip_budget(app, client, tenant, settings):
    first = await client.get("/v1/products")
    assert first.status_code == 401
    assert limit_headers(first)[:2] == (60, 59)
    assert_reset_about_a_minute_away(first)
    second = await client.post("/graphql", json={"query": "{ me { id } }"})
    assert second.status_code == 401
    assert limit_headers(second)[:2] == (60, 58)
    unknown_key = await client.get("/v1/products", headers=bearer("sa_live_" + "x" * 32))
    assert unknown_key.status_code == 401
    assert limit_headers(unknown_key)[:2] == (60, 57)
    # Authenticated traffic from the same IP uses the account's budget instead.
    authed = await client.get("/v1/products", headers=tenant.headers())
    assert limit_headers(authed)[:2] == (500, 499)
    # Another client IP has its own budget.
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4711))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        elsewhere = await other.get("/v1/products")
    assert elsewhere.status_code == 401
    assert limit_headers(elsewhere)[:2] == (60, 59)


async def test_an_exhausted_ip_budget_answers_429_even_to_bad_keys(client, tenant, settings):
    settings.unauthenticated_rate_limit = 3
    statuses = [
        (await client.get("/v1/products", headers=bearer(f"sa_live_guess{i:027d}"))).status_code
        for i in range(3)
    ]
    assert statuses == [401, 401, 401]
    for response in (
        await client.get("/v1/products", headers=bearer("sa_live_guess" + "9" * 27)),
        await client.get("/v1/products"),
    ):
        assert response.status_code == 429
        assert limit_headers(response)[:2] == (3, 0)
        assert 1 <= int(response.headers["retry-after"]) <= 61
        assert "www-authenticate" not in response.headers
        assert response.json()["error"]["type"] == "rate_limited"
    graphql = await client.post("/graphql", json={"query": "{ me { id } }"})
    assert graphql.status_code == 429
    assert graphql.json()["errors"][0]["extensions"]["code"] == "rate_limit_exceeded"
    # A valid key is not affected by the IP's budget.
    assert (await client.get("/v1/products", headers=tenant.headers())).status_code == 200


async def test_enterprise_custom_limit_429_on_request_six(client, tenant):
    big = await enterprise(rate_limit=5)
    responses = [await client.get("/v1/products", headers=big.headers()) for _ in range(5)]
    assert [r.status_code for r in responses] == [200] * 5
    assert [limit_headers(r)[:2] for r in responses] == [(5, 4), (5, 3), (5, 2), (5, 1), (5, 0)]
    assert "retry-after" not in responses[-1].headers

    sixth = await client.get("/v1/products", headers=big.headers())
    assert sixth.status_code == 429
    limit, remaining, reset = limit_headers(sixth)
    assert (limit, remaining) == (5, 0)
    assert_reset_about_a_minute_away(sixth)
    retry_after = int(sixth.headers["retry-after"])
    assert 55 <= retry_after <= 61
    assert abs((time.time() + retry_after) - reset) <= 2
    error = sixth.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "rate_limited",
        "rate_limit_exceeded",
        None,
    )
    assert "5 requests per minute" in error["message"]
    assert sixth.headers["x-request-id"].startswith("req_")

    # Every key of the same account and environment is out of budget, on both APIs.
    read_key = await client.get("/v1/products", headers=big.headers(big.live_read))
    assert read_key.status_code == 429
    gql = await client.post("/graphql", json={"query": "{ me { id } }"}, headers=big.headers())
    assert gql.status_code == 429
    assert gql.headers["retry-after"]
    assert gql.json()["data"] is None
    assert gql.json()["errors"][0]["extensions"]["code"] == "rate_limit_exceeded"

    # The sandbox key of the same account has its own budget.
    sandbox = await client.get("/v1/products", headers=big.headers(big.test))
    assert sandbox.status_code == 200
    assert limit_headers(sandbox)[:2] == (5, 4)
    # Other accounts are unaffected.
    other = await client.get("/v1/products", headers=tenant.headers())
    assert other.status_code == 200
    assert limit_headers(other)[:2] == (500, 499)
    neighbour = await enterprise(name="Other Mint", rate_limit=5)
    again = await client.get("/v1/products", headers=neighbour.headers())
    assert again.status_code == 200
    assert limit_headers(again)[:2] == (5, 4)


async def test_a_rejected_write_does_not_run(client):
    big = await enterprise(rate_limit=2)
    product = await make_product(big)
    for _ in range(2):
        assert (await client.get("/v1/products", headers=big.headers())).status_code == 200
    response = await client.put(
        f"/v1/products/{product.id}", json={"price": 1.00}, headers=big.headers()
    )
    assert response.status_code == 429
    assert (await Product.get(id=product.id)).price == Decimal("430.50")


async def test_budget_returns_when_the_window_moves(client, monkeypatch):
    big = await enterprise(rate_limit=2)
    offset = 0.0
    fake = types.SimpleNamespace(time=lambda: time.time() + offset)
    monkeypatch.setattr(limits.aio.storage.memory, "time", fake)
    for _ in range(2):
        assert (await client.get("/v1/products", headers=big.headers())).status_code == 200
    blocked = await client.get("/v1/products", headers=big.headers())
    assert blocked.status_code == 429
    reset = limit_headers(blocked)[2]

    offset = (reset - 2) - time.time()  # two seconds before the advertised reset
    still = await client.get("/v1/products", headers=big.headers())
    assert still.status_code == 429

    offset = (reset + 0.5) - time.time()  # just after it
    back = await client.get("/v1/products", headers=big.headers())
    assert back.status_code == 200
    # Both first hits are out of the moving window by now (they were < 1 s apart).
    assert limit_headers(back)[:2] == (2, 1)


@pytest.mark.parametrize(
    ("plan", "expected"),
    [(Plan.STARTER, 100), (Plan.PROFESSIONAL, 500), (Plan.ENTERPRISE, 2000)],
)
async def test_limit_header_follows_the_plan(client, plan, expected):
    tenant = await make_tenant(plan, name=f"{plan.value} coins")
    response = await client.get("/v1/products", headers=tenant.headers())
    assert response.status_code == 200
    assert limit_headers(response)[:2] == (expected, expected - 1)


async def test_disabled_rate_limit_removes_the_limiter(settings):
    from app.main import create_app

    keys.forget_cached_principals()
    off = settings.model_copy(update={"rate_limit_enabled": False})
    application = create_app(off)
    assert application.limiter is None
    async with LifespanManager(application):
        big = await enterprise(rate_limit=1)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            responses = [await c.get("/v1/products", headers=big.headers()) for _ in range(5)]
            unauthenticated = await c.get("/v1/products")
    assert [r.status_code for r in responses] == [200] * 5
    assert unauthenticated.status_code == 401
    for response in (*responses, unauthenticated):
        assert not any(name.startswith("x-ratelimit") for name in response.headers)
        assert "retry-after" not in response.headers
        assert response.headers["x-request-id"].startswith("req_")


@requires_redis
async def test_redis_storage_is_one_budget_for_every_limiter():
    """Two limiters on the same Redis (two API processes) draw on one moving window."""
    namespace = f"test-{uuid.uuid4().hex}"
    first = RateLimiter(TEST_REDIS_URL, namespace=namespace)
    second = RateLimiter(TEST_REDIS_URL, namespace=namespace)
    key = f"acct:acct_{uuid.uuid4().hex}:live"
    try:
        results = [await (first if i % 2 else second).hit(key, 3) for i in range(5)]
        assert [r.allowed for r in results] == [True, True, True, False, False]
        assert [r.remaining for r in results] == [2, 1, 0, 0, 0]
        assert results[3].headers()[-1][0] == b"retry-after"
        # Another key (the sandbox budget) is untouched.
        other = await first.hit(key.replace(":live", ":sandbox"), 3)
        assert (other.allowed, other.remaining) == (True, 2)
        # The one-round-trip script keeps the window `limits` itself reads.
        stats = await first.strategy.get_window_stats(first._item(3), key)
        assert stats.remaining == 0
        assert abs(stats.reset_time - results[-1].reset) < 1
    finally:
        await first.reset()
        await first.close()
        await second.close()


async def test_an_unreachable_limiter_store_fails_open(settings, monkeypatch, caplog):
    """Redis going away must not take the API down: requests pass, without limit headers."""
    from app.main import create_app

    async def broken_hit(self, key, per_minute):
        raise ConnectionError("limiter store unreachable")

    monkeypatch.setattr(RateLimiter, "hit", broken_hit)
    monkeypatch.setattr(gateway, "_limiter_warning", {"at": float("-inf"), "since": 0})
    application = create_app(settings)
    with caplog.at_level(logging.WARNING, logger=gateway.logger.name):
        async with LifespanManager(application):
            tenant = await make_tenant()
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                responses = [
                    await client.get("/v1/products", headers=tenant.headers()) for _ in range(5)
                ]
    for response in responses:
        assert response.status_code == 200
        assert response.json()["data"] == []
        assert "x-ratelimit-limit" not in response.headers
    # One warning with the cause, not a traceback per request.
    [warning] = [r for r in caplog.records if r.name == gateway.logger.name]
    assert warning.getMessage() == (
        "rate limiter unavailable; 1 request(s) let through without a check since the last "
        "such warning"
    )
    assert warning.exc_info is not None
    assert gateway._limiter_warning["since"] == 4


@requires_redis
async def test_concurrent_checks_share_one_round_trip_and_stay_exact():
    """Checks arriving together go to Redis in one pipeline; each is still atomic, so exactly
    `limit` pass and each sees its own remaining count. A Redis that lost its scripts (restart,
    SCRIPT FLUSH) gets the script loaded again transparently."""
    import asyncio

    from redis.asyncio import Redis

    limiter = RateLimiter(TEST_REDIS_URL, namespace=f"test-{uuid.uuid4().hex}")
    admin = Redis.from_url(TEST_REDIS_URL)
    try:
        await admin.script_flush()
        results = await asyncio.gather(*(limiter.hit("acct:batch:live", 10) for _ in range(25)))
        allowed = [r for r in results if r.allowed]
        assert len(allowed) == 10
        assert sorted(r.remaining for r in allowed) == list(range(10))
        assert all(r.remaining == 0 for r in results if not r.allowed)
    finally:
        await limiter.reset()
        await limiter.close()
        await admin.aclose()


async def test_memory_check_agrees_with_the_limits_window():
    """The one-pass memory check keeps the entries `limits` itself reads."""
    limiter = RateLimiter(None)
    results = [await limiter.hit("acct:mem:live", 3) for _ in range(5)]
    assert [(r.allowed, r.remaining) for r in results] == [
        (True, 2),
        (True, 1),
        (True, 0),
        (False, 0),
        (False, 0),
    ]
    stats = await limiter.strategy.get_window_stats(limiter._item(3), "acct:mem:live")
    assert stats.remaining == 0
    assert abs(stats.reset_time - results[-1].reset) < 1
    await limiter.close()


@requires_redis
async def test_redis_window_moves_and_expired_entries_leave_it(monkeypatch):
    """Entries older than the window are dropped as it moves: the budget comes back exactly
    when the advertised reset passes, and the count is the live entries only."""
    import app.ratelimit as ratelimit_module

    offset = 0.0
    monkeypatch.setattr(
        ratelimit_module, "time", types.SimpleNamespace(time=lambda: time.time() + offset)
    )
    limiter = RateLimiter(TEST_REDIS_URL, namespace=f"test-{uuid.uuid4().hex}")
    key = f"acct:acct_{uuid.uuid4().hex}:live"
    try:
        first = [await limiter.hit(key, 2) for _ in range(3)]
        assert [r.allowed for r in first] == [True, True, False]
        reset = first[-1].reset
        offset = (reset - 2) - time.time()
        assert not (await limiter.hit(key, 2)).allowed
        offset = (reset + 0.5) - time.time()
        back = await limiter.hit(key, 2)
        assert (back.allowed, back.remaining) == (True, 1)
    finally:
        await limiter.reset()
        await limiter.close()


async def test_memory_sweep_frees_windows_that_have_expired(monkeypatch):
    limiter = RateLimiter(None)
    for _ in range(10):
        await limiter.hit("acct:sweep:live", 100)
    await limiter.hit("acct:other:live", 100)
    assert sum(len(v) for v in limiter.storage.events.values()) == 11
    later = types.SimpleNamespace(time=lambda: time.time() + 61)
    monkeypatch.setattr(limits.aio.storage.memory, "time", later)
    await limiter.storage._MemoryStorage__expire_events()
    assert limiter.storage.events == {}
    assert (await limiter.hit("acct:sweep:live", 100)).remaining == 99


async def test_memory_windows_are_plain_timestamps_limits_also_reads():
    """The memory windows hold floats (the garbage collector never tracks them), and
    `limits`' own acquire/read path works on the same windows as the one-pass check."""
    import gc

    limiter = RateLimiter(None)
    item = limiter._item(3)
    assert (await limiter.hit("acct:floats:live", 3)).remaining == 2
    assert await limiter.strategy.hit(item, "acct:floats:live")  # `limits`' acquire_entry
    window = limiter.storage.events[item.key_for("acct:floats:live")]
    assert len(window) == 2
    assert all(type(entry) is float and not gc.is_tracked(entry) for entry in window)
    result = await limiter.hit("acct:floats:live", 3)
    assert (result.allowed, result.remaining) == (True, 0)
    assert not await limiter.strategy.hit(item, "acct:floats:live")
    assert not (await limiter.hit("acct:floats:live", 3)).allowed
    await limiter.reset()
    assert limiter.storage.events == {} and limiter.storage.windows == {}
    await limiter.close()


@requires_redis
async def test_a_dropped_redis_connection_is_replaced_and_the_budget_stays_exact():
    """Redis closing the limiter's connection fails at most the checks in flight on it (the
    gateway lets those through); the next check opens a new connection on the same budget."""
    from redis.asyncio import Redis

    limiter = RateLimiter(TEST_REDIS_URL, namespace=f"test-{uuid.uuid4().hex}")
    admin = Redis.from_url(TEST_REDIS_URL)
    key = f"acct:acct_{uuid.uuid4().hex}:live"
    try:
        assert (await limiter.hit(key, 10)).remaining == 9
        await admin.client_kill_filter(_type="normal", skipme=True)
        remaining: list[int | None] = []
        for _ in range(3):
            try:
                remaining.append((await limiter.hit(key, 10)).remaining)
            except ConnectionError:
                remaining.append(None)
        passed = [r for r in remaining if r is not None]
        assert remaining[-1] is not None
        assert remaining[-1] == 10 - 1 - len(passed)
    finally:
        await limiter.reset()
        await limiter.close()
        await admin.aclose()


@requires_redis
async def test_a_closed_limiter_fails_checks_instead_of_reconnecting():
    limiter = RateLimiter(TEST_REDIS_URL, namespace=f"test-{uuid.uuid4().hex}")
    key = f"acct:acct_{uuid.uuid4().hex}:live"
    try:
        assert (await limiter.hit(key, 10)).remaining == 9
    finally:
        await limiter.reset()
        await limiter.close()
    with pytest.raises(ConnectionError, match="closed"):
        await limiter.hit(key, 10)
    assert limiter._script._protocol is None


@requires_redis
async def test_early_checks_only_while_the_budget_is_far_from_empty():
    """A read may run while its Redis check is in flight only while the last check here left
    more than the headroom (a tenth of the limit, at least 8), counting the checks already
    ahead; each early check still takes exactly one request from the shared budget."""
    import asyncio

    from redis.asyncio import Redis

    limiter = RateLimiter(TEST_REDIS_URL, namespace=f"test-{uuid.uuid4().hex}")
    admin = Redis.from_url(TEST_REDIS_URL)
    key = f"acct:acct_{uuid.uuid4().hex}:live"
    try:
        assert limiter.check_early(key, 100) is None  # nothing known here yet: wait
        assert (await limiter.hit(key, 100)).remaining == 99
        early = [limiter.check_early(key, 100) for _ in range(90)]
        # 99 left, headroom 10: 89 may go ahead; the 90th would leave too little.
        assert all(early[:89]) and early[89] is None
        results = await asyncio.gather(*(check.result() for check in early[:89]))
        assert sorted(r.remaining for r in results) == list(range(10, 99))
        assert all(r.allowed for r in results)
        assert limiter.check_early(key, 100) is None  # 10 left: reads wait again
        assert (await limiter.hit(key, 100)).remaining == 9

        # Nobody waits for an early check: it still goes out within the window.
        other = f"acct:acct_{uuid.uuid4().hex}:live"
        await limiter.hit(other, 100)
        check = limiter.check_early(other, 100)
        await asyncio.sleep(limiter._script.WINDOW + 0.1)
        assert await admin.llen(limiter._prefixed(limiter._item(100).key_for(other))) == 2
        assert (await check.result()).remaining == 98

        # A read that finishes first sends its check at once instead of waiting the window.
        limiter._script.WINDOW = 30.0
        check = limiter.check_early(other, 100)
        assert (await asyncio.wait_for(check.result(), 2)).remaining == 97
        with pytest.raises(RuntimeError):
            await check.result()
    finally:
        await limiter.reset()
        await limiter.close()
        await admin.aclose()


@requires_redis
async def test_an_early_read_refused_by_another_process_answers_429_and_no_body(app, client):
    """Another API process spends the budget while this one's read runs ahead of its check:
    the read's answer is replaced by the 429. Once a check has seen the budget empty, reads
    wait for their check again, so refused reads stop reaching the handler; writes always
    wait."""
    namespace = f"test-{uuid.uuid4().hex}"
    here = RateLimiter(TEST_REDIS_URL, namespace=namespace)
    elsewhere = RateLimiter(TEST_REDIS_URL, namespace=namespace)
    app.limiter = here
    handled: list[str] = []
    inner = app.app

    async def counting(scope, receive, send):  # type: ignore[no-untyped-def]
        handled.append(f"{scope['method']} {scope['path']}")
        await inner(scope, receive, send)

    app.app = counting
    big = await enterprise(rate_limit=20)
    product = await make_product(big)
    url = f"/v1/products/{product.id}"
    key = f"acct:{big.account_id}:live"
    try:
        first = await client.get(url, headers=big.headers())
        second = await client.get(url, headers=big.headers())
        assert [first.status_code, second.status_code] == [200, 200]
        assert [limit_headers(r)[:2] for r in (first, second)] == [(20, 19), (20, 18)]
        assert second.json()["data"]["id"] == product.id

        for _ in range(18):  # the other process takes the rest of the minute's budget
            assert (await elsewhere.hit(key, 20)).allowed
        refused = await client.get(url, headers=big.headers())
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert product.id not in refused.text
        assert limit_headers(refused)[:2] == (20, 0)
        assert 1 <= int(refused.headers["retry-after"]) <= 61
        assert refused.headers["content-type"] == "application/json"
        assert len(handled) == 3  # it ran ahead of its check; its answer was dropped

        again = await client.get(url, headers=big.headers())
        write = await client.put(url, json={"price": 1.00}, headers=big.headers())
        assert [again.status_code, write.status_code] == [429, 429]
        assert len(handled) == 3  # neither reached the handler
        assert (await Product.get(id=product.id)).price == Decimal("430.50")
    finally:
        await here.reset()
        await here.close()
        await elsewhere.close()


@requires_redis
async def test_an_early_check_that_fails_lets_the_read_through(app, client, monkeypatch):
    """Fail open, as for a check that waits: the read answers, without limit headers."""
    from app.ratelimit import EarlyCheck

    limiter = RateLimiter(TEST_REDIS_URL, namespace=f"test-{uuid.uuid4().hex}")
    app.limiter = limiter
    big = await enterprise(rate_limit=100)
    product = await make_product(big)
    url = f"/v1/products/{product.id}"
    original = EarlyCheck.result

    async def broken(self):  # type: ignore[no-untyped-def]
        await original(self)
        raise ConnectionError("Redis connection lost")

    monkeypatch.setattr(EarlyCheck, "result", broken)
    try:
        assert limit_headers(await client.get(url, headers=big.headers()))[:2] == (100, 99)
        response = await client.get(url, headers=big.headers())
        assert response.status_code == 200
        assert response.json()["data"]["id"] == product.id
        assert "x-ratelimit-limit" not in response.headers
        assert limiter._ahead == {}
    finally:
        await limiter.reset()
        await limiter.close()


@requires_redis
async def test_an_early_read_turned_away_for_its_size_still_settles_its_check(app, client):
    """A read declaring a body over the limit gets its 413 with the budget's headers, and its
    early check lands (nothing is left counted as ahead)."""
    limiter = RateLimiter(TEST_REDIS_URL, namespace=f"test-{uuid.uuid4().hex}")
    app.limiter = limiter
    big = await enterprise(rate_limit=100)
    product = await make_product(big)
    url = f"/v1/products/{product.id}"
    try:
        assert limit_headers(await client.get(url, headers=big.headers()))[:2] == (100, 99)
        huge = {**big.headers(), "content-length": str(2 * 1024 * 1024)}
        response = await client.get(url, headers=huge)
        assert response.status_code == 413
        assert limit_headers(response)[:2] == (100, 98)
        assert limiter._ahead == {}
    finally:
        await limiter.reset()
        await limiter.close()


@requires_redis
async def test_closing_the_limiter_fails_checks_it_would_have_retried():
    """A call queued for a retry (its script was missing) when the limiter closes fails with
    the others instead of reopening a connection."""
    import asyncio

    limiter = RateLimiter(TEST_REDIS_URL, namespace=f"test-{uuid.uuid4().hex}")
    batcher = limiter._script
    try:
        await limiter.hit(f"acct:acct_{uuid.uuid4().hex}:live", 10)
        retried = asyncio.get_running_loop().create_future()
        batcher._retry.append((b"", 0, retried, True))
    finally:
        await limiter.close()
    with pytest.raises(ConnectionError, match="closed"):
        await asyncio.wait_for(retried, 1)
    await asyncio.sleep(0.05)
    assert batcher._protocol is None and not batcher._connecting
