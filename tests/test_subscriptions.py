"""GraphQL subscriptions as a dashboard uses them: the `gql` client over its websockets
transport (both protocols) against a live uvicorn, authenticated in `connection_init`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from gql import Client, gql
from gql.transport.exceptions import (
    TransportClosed,
    TransportConnectionFailed,
    TransportQueryError,
    TransportServerError,
)
from gql.transport.websockets import WebsocketsTransport

from app import runtime
from app.events.models import Event
from app.sync import service as sync
from tests.conftest import Tenant, make_product, make_tenant
from tests.test_graphql_websocket import live_url  # noqa: F401  (the live server fixture)
from tests.test_sync_engine import simulated_store

PROTOCOLS = [WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL, WebsocketsTransport.APOLLO_SUBPROTOCOL]


def transport(url: str, key: str | None, protocol: str) -> WebsocketsTransport:
    payload = {"authorization": f"Bearer {key}"} if key else {}
    return WebsocketsTransport(url=url, init_payload=payload, subprotocols=[protocol])


async def collect(
    url: str, key: str, protocol: str, document: str, count: int, ready: asyncio.Event
) -> list[dict[str, Any]]:
    """Subscribe, signal `ready` once the server has the subscription, take `count` results."""
    received: list[dict[str, Any]] = []
    async with Client(transport=transport(url, key, protocol)) as session:
        generator = session.subscribe(gql(document))
        task = asyncio.ensure_future(generator.__anext__())
        bus = runtime.current().bus
        for _ in range(200):  # the subscription is live once the bus has a subscriber for it
            if bus.subscriber_count or task.done():
                break
            await asyncio.sleep(0.01)
        ready.set()
        received.append(await asyncio.wait_for(task, 10))
        while len(received) < count:
            received.append(await asyncio.wait_for(generator.__anext__(), 10))
        await generator.aclose()
    return received


@pytest.fixture
async def http(live_url: str) -> AsyncIterator[httpx.AsyncClient]:  # noqa: F811
    base = live_url.replace("ws://", "http://").removesuffix("/graphql")
    async with httpx.AsyncClient(base_url=base) as client:
        yield client


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_events_reach_the_subscriber_with_the_webhook_payload(
    live_url: str,  # noqa: F811
    http: httpx.AsyncClient,
    protocol: str,
) -> None:
    tenant = await make_tenant()
    other = await make_tenant(name="Rival Coins")
    mine = await make_product(tenant, "111111")
    theirs = await make_product(other, "222222")
    sandbox = await make_product(tenant, "333333", environment="sandbox")
    ready = asyncio.Event()
    document = "subscription { events(types: [PRODUCT_UPDATED]) { id event timestamp data } }"
    listener = asyncio.create_task(collect(live_url, tenant.live, protocol, document, 1, ready))
    await ready.wait()

    # Another account's change and the caller's sandbox change are not the caller's events.
    for key, product in ((other.live, theirs), (tenant.test, sandbox)):
        response = await http.put(
            f"/v1/products/{product.id}", json={"title": "Not yours"}, headers=_auth(key)
        )
        assert response.status_code == 200
    response = await http.put(
        f"/v1/products/{mine.id}", json={"price": 455.0}, headers=_auth(tenant.live)
    )
    assert response.status_code == 200

    [result] = await listener
    received = result["events"]
    stored = await Event.get(id=received["id"])
    assert stored.account_id == tenant.account_id
    assert received["event"] == "product.updated"
    assert received["data"] == stored.data
    assert received["data"]["product_id"] == mine.id
    assert received["data"]["price"] == 455.0
    assert received["data"]["changed"] == ["manual_price", "margin", "price"]
    assert received["timestamp"].endswith("Z")


async def test_sync_progress_follows_a_sync_to_its_end(live_url: str) -> None:  # noqa: F811
    tenant = await make_tenant()
    await simulated_store(tenant)
    job = await sync.start_job(
        tenant.account_id,
        tenant.principal().environment,
        sync.SyncType.FULL,
        trigger=sync.SyncTrigger.API,
        enqueue=False,
    )
    document = (
        f'subscription {{ syncProgress(syncId: "{job.id}") {{ syncId status phase '
        "progress { lotsProcessed lotsTotal fraction } stats { productsAdded errors } } }"
    )
    updates: list[dict[str, Any]] = []
    async with Client(transport=transport(live_url, tenant.live, PROTOCOLS[0])) as session:
        first = True
        async for result in session.subscribe(gql(document)):
            updates.append(result["syncProgress"])
            if first:  # the job is still queued: start it now
                first = False
                runner = asyncio.create_task(sync.run_job(job.id))
    await runner
    assert updates[0]["status"] == "QUEUED"
    assert updates[-1]["status"] == "COMPLETED"
    assert updates[-1]["phase"] == "done"
    assert updates[-1]["progress"]["fraction"] == 1.0
    assert updates[-1]["stats"]["productsAdded"] > 0
    assert {u["syncId"] for u in updates} == {job.id}


async def test_another_accounts_sync_is_not_found(live_url: str) -> None:  # noqa: F811
    tenant, other = await make_tenant(), await make_tenant(name="Rival Coins")
    job = await sync.start_job(
        other.account_id,
        other.principal().environment,
        sync.SyncType.DELTA,
        trigger=sync.SyncTrigger.API,
        enqueue=False,
    )
    document = f'subscription {{ syncProgress(syncId: "{job.id}") {{ status }} }}'
    async with Client(transport=transport(live_url, tenant.live, PROTOCOLS[0])) as session:
        with pytest.raises(Exception) as raised:
            async for _ in session.subscribe(gql(document)):
                pass
    assert "No such sync job" in str(raised.value)


async def test_a_socket_without_a_valid_key_receives_nothing(live_url: str) -> None:  # noqa: F811
    for key in (None, "sa_live_not_a_real_key_000000000000"):
        client = Client(transport=transport(live_url, key, PROTOCOLS[0]))
        with pytest.raises((TransportServerError, TransportClosed, TransportConnectionFailed)):
            async with client as session:
                async for _ in session.subscribe(gql("subscription { events { id } }")):
                    pass
    assert runtime.current().bus.subscriber_count == 0


def _auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


__all__ = ["Tenant"]


async def test_a_revoked_key_ends_its_live_stream(
    live_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.auth import service as keys
    from resolvers import events

    monkeypatch.setattr(events, "RECHECK_EVERY", 0.2)
    tenant = await make_tenant()
    [live] = [
        k
        for k in await keys.list_keys(account_id=tenant.account_id)
        if k.scopes == ["read", "write"] and k.prefix == "sa_live_"
    ]
    async with Client(transport=transport(live_url, tenant.live, PROTOCOLS[0])) as session:
        stream = session.subscribe(gql("subscription { events { id } }"))
        waiting = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0.3)
        await keys.revoke_key(live.id)
        keys.forget_cached_principals()
        with pytest.raises(Exception) as ended:
            await asyncio.wait_for(waiting, 5)
    assert "invalid_api_key" in str(ended.value)  # a revoked key is no key at all


# The developer page's `order.received` and `order.forwarded` payloads: the pipeline carries
# them to subscribers and endpoints unchanged.
ORDER_RECEIVED = {
    "order_id": "ord_abc123",
    "store_id": "store_xyz",
    "store_name": "My WooCommerce Store",
    "external_order_id": "WC-1234",
    "total": 430.50,
    "currency": "USD",
    "items": [
        {
            "product_id": "prod_def456",
            "sku": "HA-123456",
            "title": "1921 Morgan Dollar MS65",
            "quantity": 1,
            "price": 430.50,
        }
    ],
    "customer": {"name": "John Smith", "email": "john@example.com"},
}
ORDER_FORWARDED = {
    "order_id": "ord_abc123",
    "ha_order_id": "HA-ORD-567890",
    "status": "confirmed",
    "forwarded_at": "2024-01-15T10:30:05Z",
    "estimated_ship_date": "2024-01-17",
    "tracking": None,
}


async def test_order_updates_carry_the_documented_order_payloads(
    live_url: str,  # noqa: F811
) -> None:
    from app.events.service import atomic, emit
    from app.events.types import EventType

    tenant = await make_tenant()
    ready = asyncio.Event()
    document = "subscription { orderUpdates { id event timestamp data } }"
    listener = asyncio.create_task(collect(live_url, tenant.live, PROTOCOLS[0], document, 2, ready))
    await ready.wait()
    emitted = []
    for type_, data in (
        (EventType.PRODUCT_CREATED, {"product_id": "prod_not_an_order"}),  # not an order event
        (EventType.ORDER_RECEIVED, ORDER_RECEIVED),
        (EventType.ORDER_FORWARDED, ORDER_FORWARDED),
    ):
        async with atomic() as tx:
            event = await emit(
                tx, account_id=tenant.account_id, environment="live", type=type_, data=data
            )
        emitted.append(event)

    received = [result["orderUpdates"] for result in await listener]
    assert [(r["id"], r["event"]) for r in received] == [
        (emitted[1].id, "order.received"),
        (emitted[2].id, "order.forwarded"),
    ]
    assert [r["data"] for r in received] == [ORDER_RECEIVED, ORDER_FORWARDED]


async def test_a_tenant_holding_the_most_live_streams_is_told_to_close_one(
    live_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.events import bus as bus_module

    monkeypatch.setattr(bus_module, "MAX_SUBSCRIPTIONS_PER_TENANT", 2)
    tenant = await make_tenant()
    other = await make_tenant(name="Rival Coins")
    document = "subscription { events { id } }"
    async with (
        Client(transport=transport(live_url, tenant.live, PROTOCOLS[0])) as first,
        Client(transport=transport(live_url, tenant.live, PROTOCOLS[0])) as second,
        Client(transport=transport(live_url, tenant.live, PROTOCOLS[0])) as third,
        Client(transport=transport(live_url, other.live, PROTOCOLS[0])) as rival,
    ):
        open_streams = [first.subscribe(gql(document)), second.subscribe(gql(document))]
        waiting = [asyncio.ensure_future(s.__anext__()) for s in open_streams]
        bus = runtime.current().bus
        await _until(lambda: bus.subscriber_count == 2)

        with pytest.raises(TransportQueryError) as refused:
            await asyncio.wait_for(third.subscribe(gql(document)).__anext__(), 5)
        assert refused.value.errors == [
            {
                "message": "This account holds 2 live subscriptions on this server already; "
                "close one before opening another.",
                "extensions": {"code": "too_many_subscriptions"},
            }
        ]
        # Another account is not held to this one's streams.
        rival_stream = asyncio.ensure_future(rival.subscribe(gql(document)).__anext__())
        await _until(lambda: bus.subscriber_count == 3)
        for task in (*waiting, rival_stream):
            task.cancel()


async def _until(condition: Any, seconds: float = 2.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    assert condition()
