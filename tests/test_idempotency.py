"""`Idempotency-Key` on POST, through the real handler: the `/v1` table has no POST row yet, so
the app is built with test rows that create stores through the stores service."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager

from app.accounts.models import Environment
from app.auth import service as keys
from app.auth.principal import Principal
from app.idempotency.models import IdempotencyRecord
from app.stores import service as stores
from app.stores.models import Store
from rest_compat.schemas import StoreObject
from rest_compat.serializers import store_json
from rest_compat.table import Route
from tests.conftest import Tenant, make_tenant


class Controls:
    """Lets a test hold a request in flight or make the service crash."""

    gate: asyncio.Event | None = None
    entered: asyncio.Event | None = None
    crashes_left = 0
    calls = 0


async def create_test_widget(actor: Principal, *, data: stores.StoreCreate) -> Store:
    Controls.calls += 1
    if Controls.entered is not None:
        Controls.entered.set()
    if Controls.gate is not None:
        await Controls.gate.wait()
    if Controls.crashes_left:
        Controls.crashes_left -= 1
        raise RuntimeError("simulated crash")
    return await stores.create_store(actor, data=data)


async def create_test_gadget(actor: Principal, *, data: stores.StoreCreate) -> Store:
    return await stores.create_store(actor, data=data)


EXTRA_ROUTES = [
    Route(
        "POST",
        "/v1/test-widgets",
        scope="stores:write",
        call=create_test_widget,
        body=("data", stores.StoreCreate),
        output=store_json,
        summary="Create a store (test route)",
        tag="Test",
        status_code=201,
    ),
    Route(
        "POST",
        "/v1/test-gadgets",
        scope="stores:write",
        call=create_test_gadget,
        body=("data", stores.StoreCreate),
        output=store_json,
        summary="Create a store (second test route)",
        tag="Test",
        status_code=201,
    ),
]

BODY = {
    "name": "Idempotent Coins",
    "platform": "woocommerce",
    "url": "https://idem.example.com",
    "credentials": {"consumer_key": "ck_idem", "consumer_secret": "cs_idem"},
}


@pytest.fixture
async def client(settings) -> AsyncIterator[httpx.AsyncClient]:
    from app.main import create_app

    Controls.gate = Controls.entered = None
    Controls.crashes_left = Controls.calls = 0
    keys.forget_cached_principals()
    application = create_app(settings, extra_routes=EXTRA_ROUTES)
    async with LifespanManager(application):
        # A crash must reach the client as the 500 a user sees, not as a Python exception.
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


@pytest.fixture
async def tenant(client) -> Tenant:
    return await make_tenant()


@pytest.fixture
async def other_tenant(client) -> Tenant:
    return await make_tenant(name="Rival Coins")


def post(
    client, tenant: Tenant, body: Any, key: str | None, *, path="/v1/test-widgets", api_key=None
):
    headers = tenant.headers(api_key)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(path, json=body, headers=headers)


async def store_names(tenant: Tenant, environment=Environment.LIVE) -> list[str]:
    rows = await Store.filter(account_id=tenant.account_id, environment=environment)
    return sorted(row.name for row in rows)


async def test_same_key_same_body_replays_the_first_response(client, tenant):
    first = await post(client, tenant, BODY, "order-7f3a")
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    data = first.json()["data"]
    StoreObject.model_validate(data)
    assert data["id"].startswith("store_") and data["name"] == "Idempotent Coins"

    second = await post(client, tenant, BODY, "order-7f3a")
    assert second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["content-type"] == "application/json"
    assert second.content == first.content
    assert "x-ratelimit-limit" in second.headers
    assert await store_names(tenant) == ["Idempotent Coins"]
    assert Controls.calls == 1


async def test_same_key_different_body_is_a_conflict(client, tenant):
    first = await post(client, tenant, BODY, "key-1")
    assert first.status_code == 201
    response = await post(client, tenant, {**BODY, "name": "Another Shop"}, "key-1")
    assert response.status_code == 409
    assert response.json()["error"] == {
        "type": "conflict",
        "code": "idempotency_key_reused",
        "message": "This Idempotency-Key was used with a different request.",
        "param": "Idempotency-Key",
    }
    assert "idempotent-replayed" not in response.headers
    assert await store_names(tenant) == ["Idempotent Coins"]
    # The first response is still the one replayed.
    again = await post(client, tenant, BODY, "key-1")
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"


async def test_the_same_json_in_another_key_order_and_spacing_replays(client, tenant):
    first = await post(client, tenant, BODY, "key-order")
    assert first.status_code == 201
    reordered = orjson.dumps(dict(reversed(list(BODY.items()))), option=orjson.OPT_INDENT_2)
    assert reordered != orjson.dumps(BODY)
    second = await client.post(
        "/v1/test-widgets",
        content=reordered,
        headers={
            **tenant.headers(),
            "content-type": "application/json",
            "Idempotency-Key": "key-order",
        },
    )
    assert second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.content == first.content
    assert Controls.calls == 1


async def test_a_record_of_the_exact_bytes_still_replays(client, tenant):
    """A record may hold the hash of the request's bytes rather than of its canonical JSON:
    the very same bytes replay all the same."""
    raw = orjson.dumps(BODY)
    headers = {**tenant.headers(), "content-type": "application/json", "Idempotency-Key": "raw"}
    first = await client.post("/v1/test-widgets", content=raw, headers=headers)
    assert first.status_code == 201
    by_bytes = hashlib.sha256(b"POST /v1/test-widgets\n" + raw).hexdigest()
    await IdempotencyRecord.filter(key="raw").update(request_hash=by_bytes)
    again = await client.post("/v1/test-widgets", content=raw, headers=headers)
    assert again.headers["idempotent-replayed"] == "true" and again.content == first.content
    assert Controls.calls == 1


async def test_a_body_nested_too_deep_is_a_400_with_a_key_too(client, tenant):
    deep = b'{"name": "Deep", "extra": ' + b"[" * 300 + b"]" * 300 + b"}"
    for key in ("deep-1", None):
        headers = {**tenant.headers(), "content-type": "application/json"}
        if key:
            headers["Idempotency-Key"] = key
        response = await client.post("/v1/test-widgets", content=deep, headers=headers)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_json"
    assert await store_names(tenant) == []


async def test_two_idempotency_key_headers_are_refused(client, tenant):
    response = await client.post(
        "/v1/test-widgets",
        content=orjson.dumps(BODY),
        headers=[
            *tenant.headers().items(),
            ("content-type", "application/json"),
            ("Idempotency-Key", "key-a"),
            ("Idempotency-Key", "key-b"),
        ],
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request", "Idempotency-Key")
    assert await store_names(tenant) == []
    assert await IdempotencyRecord.all().count() == 0


async def test_same_key_on_another_route_is_a_conflict(client, tenant):
    assert (await post(client, tenant, BODY, "key-2")).status_code == 201
    response = await post(client, tenant, BODY, "key-2", path="/v1/test-gadgets")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert len(await store_names(tenant)) == 1


async def test_same_key_with_another_query_string_is_a_conflict(client, tenant):
    assert (await post(client, tenant, BODY, "key-q")).status_code == 201
    response = await post(client, tenant, BODY, "key-q", path="/v1/test-widgets?limit=5")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert len(await store_names(tenant)) == 1


@pytest.mark.parametrize("key", ["k" * 256, ""])
async def test_key_must_be_1_to_255_characters(client, tenant, key):
    response = await post(client, tenant, BODY, key)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request", "Idempotency-Key")
    assert await store_names(tenant) == []
    assert await IdempotencyRecord.all().count() == 0


async def test_a_255_character_key_is_accepted(client, tenant):
    key = "k" * 255
    first = await post(client, tenant, BODY, key)
    assert first.status_code == 201
    second = await post(client, tenant, BODY, key)
    assert second.headers["idempotent-replayed"] == "true"
    assert len(await store_names(tenant)) == 1


async def test_without_a_key_every_post_creates(client, tenant):
    first = await post(client, tenant, BODY, None)
    second = await post(client, tenant, BODY, None)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["data"]["id"] != second.json()["data"]["id"]
    assert "idempotent-replayed" not in second.headers
    assert await store_names(tenant) == ["Idempotent Coins", "Idempotent Coins"]


async def test_a_validation_failure_is_replayed_too(client, tenant):
    bad = {**BODY, "url": "ftp://idem.example.com"}
    first = await post(client, tenant, bad, "bad-1")
    assert first.status_code == 400
    assert first.json()["error"]["param"] == "url"
    assert "idempotent-replayed" not in first.headers
    second = await post(client, tenant, bad, "bad-1")
    assert second.status_code == 400
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    # The key is spent on that answer: a corrected body needs a new key.
    corrected = await post(client, tenant, BODY, "bad-1")
    assert corrected.status_code == 409
    assert corrected.json()["error"]["code"] == "idempotency_key_reused"
    assert await store_names(tenant) == []
    assert (await post(client, tenant, BODY, "bad-2")).status_code == 201


async def test_a_service_error_is_replayed(client, tenant):
    bad = {**BODY, "platform": "shopify"}  # WooCommerce keys for a Shopify store
    first = await post(client, tenant, bad, "svc-1")
    assert first.status_code == 400
    assert first.json()["error"]["param"] == "credentials"
    second = await post(client, tenant, bad, "svc-1")
    assert (second.status_code, second.content) == (400, first.content)
    assert second.headers["idempotent-replayed"] == "true"
    assert Controls.calls == 1


async def test_keys_are_per_account_and_environment(client, tenant, other_tenant):
    mine = await post(client, tenant, BODY, "shared-key")
    theirs = await post(client, other_tenant, BODY, "shared-key")
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert "idempotent-replayed" not in theirs.headers
    assert mine.json()["data"]["id"] != theirs.json()["data"]["id"]
    # Even a different body under the same key is fine in another account.
    other_body = {**BODY, "name": "Rival Shop"}
    rival = await post(client, other_tenant, other_body, "rival-key")
    assert rival.status_code == 201
    mine_again = await post(client, tenant, BODY, "rival-key")
    assert mine_again.status_code == 201 and "idempotent-replayed" not in mine_again.headers

    sandbox = await post(client, tenant, BODY, "shared-key", api_key=tenant.test)
    assert sandbox.status_code == 201 and "idempotent-replayed" not in sandbox.headers
    assert sandbox.json()["data"]["livemode"] is False

    assert await store_names(tenant) == ["Idempotent Coins", "Idempotent Coins"]
    assert await store_names(other_tenant) == ["Idempotent Coins", "Rival Shop"]
    assert await store_names(tenant, Environment.SANDBOX) == ["Idempotent Coins"]
    replay = await post(client, tenant, BODY, "shared-key")
    assert replay.content == mine.content and replay.headers["idempotent-replayed"] == "true"


async def test_a_key_in_flight_is_a_conflict(client, tenant):
    Controls.gate, Controls.entered = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(post(client, tenant, BODY, "slow"))
    await asyncio.wait_for(Controls.entered.wait(), 5)
    Controls.entered = None
    response = await post(client, tenant, BODY, "slow")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_in_progress"
    Controls.gate.set()
    done = await asyncio.wait_for(first, 5)
    assert done.status_code == 201
    replay = await post(client, tenant, BODY, "slow")
    assert replay.content == done.content and replay.headers["idempotent-replayed"] == "true"
    assert len(await store_names(tenant)) == 1


async def test_a_crash_is_not_stored_so_the_key_can_be_retried(client, tenant):
    Controls.crashes_left = 1
    crashed = await post(client, tenant, BODY, "retry-me")
    assert crashed.status_code == 500
    assert crashed.json()["error"]["code"] == "internal_error"
    retried = await post(client, tenant, BODY, "retry-me")
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert Controls.calls == 2
    assert await store_names(tenant) == ["Idempotent Coins"]


async def test_graphql_mutations_honour_idempotency_keys(client, tenant):
    """A retried `storeCreate` with the same key creates one store; another body is a 409;
    queries are not recorded."""
    mutation = """mutation($name: String!) { storeCreate(input: {name: $name, platform: SHOPIFY,
        url: "https://coins.myshopify.com", credentials: {accessToken: "shpat_123"}})
        { id name } }"""
    headers = {**tenant.headers(), "Idempotency-Key": "gql-create-1"}
    body = {"query": mutation, "variables": {"name": "Coins on Shopify"}}
    first = await client.post("/graphql", json=body, headers=headers)
    again = await client.post("/graphql", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert "errors" not in first.json(), first.json()
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert await Store.filter(account_id=tenant.account_id).count() == 1

    other = {"query": mutation, "variables": {"name": "Another shop"}}
    conflict = await client.post("/graphql", json=other, headers=headers)
    assert conflict.status_code == 409
    assert conflict.json()["errors"][0]["extensions"]["code"] == "idempotency_key_reused"
    assert await Store.filter(account_id=tenant.account_id).count() == 1

    two_keys = [*tenant.headers().items(), ("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
    refused = await client.post("/graphql", json=other, headers=two_keys)
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["extensions"]["code"] == "invalid_request"
    assert await Store.filter(account_id=tenant.account_id).count() == 1

    query = {"query": "{ stores(first: 5) { nodes { id } } }"}
    for _ in range(2):
        response = await client.post(
            "/graphql", json=query, headers={**tenant.headers(), "Idempotency-Key": "gql-q"}
        )
        assert "idempotent-replayed" not in response.headers
    assert not await IdempotencyRecord.filter(key="gql-q").exists()
