"""Distributed mode end to end: two API processes and an arq worker on one Redis. A sync
triggered on one API process runs in the worker, and its events reach the subscribers of both
API processes over Redis pub/sub (the `gql` client, a real websocket each)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gql import Client, gql
from gql.transport.websockets import WebsocketsTransport

from tests.integration.test_ratelimit_shared import (  # noqa: F401  (fixtures)
    SYNCAUCTION,
    _cli,
    database_name,
    env,
    pytestmark,
    servers,
)

DOCUMENT = "subscription { events { id event data } }"


@pytest.fixture
def worker(env: dict[str, str], servers: list[str], tmp_path: Path) -> Iterator[None]:  # noqa: F811
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [SYNCAUCTION, "worker"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _until_completed(url: str, key: str, started: asyncio.Event) -> list[dict[str, Any]]:
    transport = WebsocketsTransport(
        url=url.replace("http://", "ws://") + "/graphql",
        init_payload={"authorization": f"Bearer {key}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    seen: list[dict[str, Any]] = []
    async with Client(transport=transport) as session:
        generator = session.subscribe(gql(DOCUMENT))
        first = asyncio.ensure_future(generator.__anext__())
        await asyncio.sleep(0.5)  # the server has registered the subscription by then
        started.set()
        seen.append((await asyncio.wait_for(first, 60))["events"])
        while seen[-1]["event"] != "sync.completed":
            seen.append((await asyncio.wait_for(generator.__anext__(), 60))["events"])
        await generator.aclose()
    return seen


async def test_a_worker_sync_reaches_subscribers_on_every_api_process(
    servers: list[str],  # noqa: F811
    env: dict[str, str],  # noqa: F811
    worker: None,
) -> None:
    account = _cli(env, "accounts", "create", "--name", "Two Mints", "--plan", "professional")
    key = _cli(env, "keys", "create", "--account", account["id"], "--mode", "test")["key"]
    ready = [asyncio.Event(), asyncio.Event()]
    listeners = [
        asyncio.create_task(_until_completed(url, key, flag))
        for url, flag in zip(servers, ready, strict=True)
    ]
    await asyncio.gather(*(flag.wait() for flag in ready))
    # The store comes after the subscriptions: from then on the worker's minutely schedule
    # may start this never-synced tenant's first full sync before the trigger below does.
    store = _cli(env, "stores", "create", "--account", account["id"], "--mode", "test",
                 "--platform", "woocommerce", "--name", "Sandbox shop", "--simulated")  # fmt: skip

    async with httpx.AsyncClient(base_url=servers[0]) as client:
        response = await client.post(
            "/v1/sync/trigger",
            json={"type": "full"},
            headers={"Authorization": f"Bearer {key}"},
        )
    if response.status_code == 409:  # the schedule was first: that is the sync to follow
        assert response.json()["error"]["code"] == "sync_in_progress", response.text
        sync_id = response.json()["error"]["sync_job"]["id"]
    else:
        assert response.status_code == 202, response.text
        sync_id = response.json()["data"]["id"]

    first, second = await asyncio.gather(*listeners)
    # Both API processes delivered the same events, in the same order.
    assert [e["id"] for e in first] == [e["id"] for e in second]
    assert first[0]["event"] == "sync.started"
    completed = first[-1]
    assert completed["data"]["sync_id"] == sync_id
    assert completed["data"]["type"] == "full"
    added = completed["data"]["stats"]["products_added"]
    assert added > 0
    assert completed["data"]["stores_updated"] == [store["id"]]
    assert sum(e["event"] == "product.created" for e in first) == added
