"""`/graphql` over a websocket (a real uvicorn on a loopback port): the key goes in
`connection_init`, and the socket carries subscriptions only, so queries and mutations cannot
dodge the HTTP rate limit or outlive a revoked key there."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
import websockets

from app.main import create_app
from tests.conftest import make_tenant


@pytest.fixture
async def live_url(settings: Any) -> AsyncIterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws="websockets-sansio",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.02)
    if not server.started:
        server.should_exit = True
        await task  # surfaces the start-up error
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"ws://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        await task


async def _init(ws: Any, payload: dict[str, str]) -> None:
    await ws.send(json.dumps({"type": "connection_init", "payload": payload}))


async def test_a_socket_without_a_valid_key_is_closed_with_4403(live_url):
    for payload in ({}, {"authorization": "Bearer sa_live_not_a_real_key_000000000000"}):
        async with websockets.connect(live_url, subprotocols=["graphql-transport-ws"]) as ws:
            await _init(ws, payload)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd.code == 4403


async def test_queries_are_refused_over_the_socket(live_url):
    tenant = await make_tenant()
    async with websockets.connect(live_url, subprotocols=["graphql-transport-ws"]) as ws:
        await _init(ws, {"authorization": f"Bearer {tenant.live}"})
        ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert ack["type"] == "connection_ack"
        query = {"query": "{ me { id } }"}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": query}))
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        errors = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
        assert errors[0]["extensions"]["code"] == "subscriptions_only"
        assert "me" not in json.dumps(message.get("payload", {}).get("data") or {})


async def test_several_subscriptions_without_a_name_are_refused(live_url):
    tenant = await make_tenant()
    async with websockets.connect(live_url, subprotocols=["graphql-transport-ws"]) as ws:
        await _init(ws, {"authorization": f"Bearer {tenant.live}"})
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
        query = {"query": "subscription A { events { id } } subscription B { orderUpdates { id } }"}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": query}))
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert message["type"] == "error"
        [error] = message["payload"]
        assert error["extensions"]["code"] == "graphql_validation_failed"
        assert "operationName" in error["message"]
