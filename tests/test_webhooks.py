"""Webhooks as an integrator sees them: endpoints over REST, deliveries to a real HTTP receiver
(uvicorn on a loopback port) verified with the `standardwebhooks` library, retries, 410,
redirects, timeouts, big answers, rotation, replay and the test send."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import runtime
from app.auth import service as keys
from app.events.models import Event
from app.webhooks import delivery as sender
from app.webhooks import service as webhooks
from app.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.conftest import Tenant, make_product


@dataclass
class Receiver:
    """A merchant's webhook receiver: records requests, answers from a script."""

    url: str = ""
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    script: list[Any] = field(default_factory=list)  # status, ("hang", s), ("redirect",), ("big",)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        self.received.append(({k.lower(): v for k, v in request.headers.items()}, body))
        step = self.script.pop(0) if self.script else 200
        if isinstance(step, tuple) and step[0] == "hang":
            await asyncio.sleep(step[1])
            return Response("late")
        if isinstance(step, tuple) and step[0] == "redirect":
            return Response(status_code=302, headers={"location": "http://169.254.169.254/"})
        if isinstance(step, tuple) and step[0] == "big":
            return Response(b"x" * 5_000_000)
        if isinstance(step, tuple) and step[0] == "nul":
            return Response(b"ok\x00binary")
        if isinstance(step, tuple) and step[0] == "retry-after":
            return Response("busy", status_code=429, headers={"retry-after": str(step[1])})
        return Response(f"answer {step}", status_code=step)


@pytest.fixture
async def receiver(app: Any) -> AsyncIterator[Receiver]:
    state = Receiver()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/hook", state.handle, methods=["POST"])]),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    state.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield state
    finally:
        server.should_exit = True
        await task


@pytest.fixture
def fast_schedule(monkeypatch: pytest.MonkeyPatch) -> tuple[float, ...]:
    schedule = (0, 0.05, 0.05, 0.05)
    monkeypatch.setattr(sender, "SCHEDULE", schedule)
    monkeypatch.setattr(sender, "JITTER", 0.0)
    return schedule


async def settle(rounds: int = 200) -> None:
    """Run fan-out and attempts until nothing is pending (the periodic jobs, made eager)."""
    queue = runtime.current().jobs
    for _ in range(rounds):
        await sender.fan_out()
        await queue.join()
        pending = await WebhookDelivery.filter(status=DeliveryStatus.PENDING).count()
        if not pending and not await Event.filter(fanned_out_at=None).exists():
            return
        await sender.requeue_due()
        await asyncio.sleep(0.02)
    raise AssertionError("deliveries still pending")


async def endpoint(client, tenant: Tenant, url: str, types: list[str]) -> dict[str, Any]:
    response = await client.post(
        "/v1/webhooks", json={"url": url, "event_types": types}, headers=tenant.headers()
    )
    assert response.status_code == 201, response.text
    return response.json()["data"]


async def test_create_list_update_and_bad_input(client, tenant: Tenant) -> None:
    created = await endpoint(client, tenant, "https://hooks.example.com/in", ["sync.completed"])
    assert created["id"].startswith("whk_")
    assert created["secret"].startswith("whsec_")
    assert (created["active"], created["event_types"]) == (True, ["sync.completed"])
    stored = await WebhookEndpoint.get(id=created["id"])
    assert created["secret"] not in stored.secret_encrypted  # encrypted at rest
    listed = (await client.get("/v1/webhooks", headers=tenant.headers())).json()["data"]
    assert [e["id"] for e in listed] == [created["id"]]
    assert "secret" not in listed[0]
    updated = await client.put(
        f"/v1/webhooks/{created['id']}",
        json={"event_types": ["order.received", "order.received"], "description": "Orders"},
        headers=tenant.headers(),
    )
    assert updated.status_code == 200
    assert updated.json()["data"]["event_types"] == ["order.received"]

    for body, param in (
        ({"url": "ftp://hooks.example.com", "event_types": ["sync.completed"]}, "url"),
        ({"url": "https://hooks.example.com", "event_types": ["sync.done"]}, "event_types.0"),
        ({"url": "https://hooks.example.com", "event_types": []}, "event_types"),
        ({"url": "https://hooks.example.com"}, "event_types"),
    ):
        response = await client.post("/v1/webhooks", json=body, headers=tenant.headers())
        assert response.status_code == 400, body
        assert response.json()["error"]["param"] == param
    assert await WebhookEndpoint.all().count() == 1


async def test_private_targets_are_refused_in_production(
    client, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = runtime.current()
    monkeypatch.setattr(rt, "settings", rt.settings.model_copy(update={"env": "production"}))
    for url in ("http://hooks.example.com/in", "https://127.0.0.1/in", "https://169.254.169.254/"):
        response = await client.post(
            "/v1/webhooks", json={"url": url, "event_types": ["sync.completed"]},
            headers=tenant.headers(),
        )  # fmt: skip
        assert response.status_code == 400, url
        assert response.json()["error"]["code"] == "url_not_allowed"
    allowed = rt.settings.model_copy(update={"allow_private_webhook_targets": True})
    monkeypatch.setattr(rt, "settings", allowed)
    response = await client.post(
        "/v1/webhooks", json={"url": "https://127.0.0.1/in", "event_types": ["sync.completed"]},
        headers=tenant.headers(),
    )  # fmt: skip
    assert response.status_code == 201


async def test_events_are_delivered_signed_with_the_documented_payload(
    client, tenant: Tenant, receiver: Receiver
) -> None:
    hook = await endpoint(client, tenant, receiver.url, ["product.updated"])
    product = await make_product(tenant, "789012")  # product.created: not subscribed
    response = await client.put(
        f"/v1/products/{product.id}", json={"price": 1250.0}, headers=tenant.headers()
    )
    assert response.status_code == 200

    await settle()

    [(headers, body)] = receiver.received
    event = await Event.get(type="product.updated")
    assert headers["webhook-id"] == event.id
    assert headers["content-type"] == "application/json"
    payload = Webhook(hook["secret"]).verify(body, headers)
    assert payload == {
        "event": "product.updated",
        "timestamp": event.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data": event.data,
    }
    assert payload["data"]["product_id"] == product.id
    assert payload["data"]["price"] == 1250.0
    delivery = await WebhookDelivery.get(event_id=event.id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        DeliveryStatus.DELIVERED,
        1,
        200,
    )
    [logged] = await WebhookAttempt.filter(delivery_id=delivery.id)
    assert (logged.number, logged.status_code, logged.response_excerpt) == (1, 200, "answer 200")


async def test_a_receiver_that_fails_then_recovers_gets_every_event_with_one_id(
    client, tenant: Tenant, receiver: Receiver, fast_schedule
) -> None:
    hook = await endpoint(client, tenant, receiver.url, ["product.created"])
    receiver.script = [500, ("redirect",), ("retry-after", 0), 200, 503, 200]
    await make_product(tenant, "111111")
    await make_product(tenant, "222222")

    await settle()

    ids = [h["webhook-id"] for h, _ in receiver.received]
    events = {e.id for e in await Event.filter(type="product.created")}
    assert set(ids) == events  # every event arrived
    for event_id in events:
        delivery = await WebhookDelivery.get(event_id=event_id)
        assert delivery.status is DeliveryStatus.DELIVERED
        attempts = await WebhookAttempt.filter(delivery_id=delivery.id).order_by("number")
        assert [a.number for a in attempts] == list(range(1, delivery.attempts + 1))
        assert ids.count(event_id) == delivery.attempts  # the same webhook-id on every retry
    for headers, body in receiver.received:
        Webhook(hook["secret"]).verify(body, headers)
    redirected = await WebhookAttempt.get(status_code=302)
    assert redirected.error == "redirect to http://169.254.169.254/ not followed"
    assert len(receiver.received) == 6  # the redirect target was never called


async def test_410_disables_the_endpoint_and_tells_the_account(
    client, tenant: Tenant, receiver: Receiver, fast_schedule
) -> None:
    hook = await endpoint(client, tenant, receiver.url, ["product.created"])
    receiver.script = [410]
    await make_product(tenant, "111111")

    await settle()

    stored = await WebhookEndpoint.get(id=hook["id"])
    assert stored.active is False
    assert stored.disabled_reason == "The endpoint answered 410 Gone."
    disabled = await Event.get(type="webhook_endpoint.disabled")
    assert disabled.data["endpoint_id"] == hook["id"]
    shown = (await client.get("/v1/webhooks", headers=tenant.headers())).json()["data"][0]
    assert (shown["active"], shown["disabled_reason"]) == (False, stored.disabled_reason)
    await make_product(tenant, "222222")  # a disabled endpoint gets nothing more
    await settle()
    assert len(receiver.received) == 1


async def test_an_endpoint_that_exhausts_the_schedule_is_disabled(
    client, tenant: Tenant, receiver: Receiver, fast_schedule
) -> None:
    hook = await endpoint(client, tenant, receiver.url, ["product.created"])
    receiver.script = [500] * len(fast_schedule)
    await make_product(tenant, "111111")

    await settle()

    delivery = await WebhookDelivery.get(endpoint_id=hook["id"])
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, len(fast_schedule))
    stored = await WebhookEndpoint.get(id=hook["id"])
    assert stored.active is False
    assert stored.disabled_reason == f"Every attempt of {len(fast_schedule)} failed."
    assert await Event.filter(type="webhook_endpoint.disabled").count() == 1


async def test_hanging_and_huge_answers_are_bounded(
    client, tenant: Tenant, receiver: Receiver, fast_schedule, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sender, "TIMEOUT", 0.3)
    await endpoint(client, tenant, receiver.url, ["product.created"])
    receiver.script = [("hang", 2), ("big",)]
    await make_product(tenant, "111111")

    await settle()

    attempts = await WebhookAttempt.all().order_by("number")
    assert attempts[0].status_code is None
    assert attempts[0].error == "no answer within 0.3 s"
    assert attempts[1].status_code == 200
    assert len(attempts[1].response_excerpt) == sender.EXCERPT_BYTES


async def test_rotation_signs_with_both_secrets_and_replay_keeps_the_id(
    client, tenant: Tenant, receiver: Receiver
) -> None:
    hook = await endpoint(client, tenant, receiver.url, ["product.created"])
    rotated = await webhooks.rotate_secret(tenant.principal(), hook["id"])
    assert rotated.secret != hook["secret"] and rotated.secret.startswith("whsec_")
    await make_product(tenant, "111111")
    await settle()
    [(headers, body)] = receiver.received
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (hook["secret"], rotated.secret):  # receivers on either secret verify it
        Webhook(secret).verify(body, headers)

    delivery = await WebhookDelivery.get(endpoint_id=hook["id"])
    await webhooks.replay_delivery(tenant.principal(), delivery.id)
    await settle()
    assert [h["webhook-id"] for h, _ in receiver.received] == [delivery.event_id] * 2
    assert (await WebhookDelivery.get(id=delivery.id)).attempts == 2


async def test_the_test_route_reports_the_receivers_answer(
    client, tenant: Tenant, receiver: Receiver
) -> None:
    hook = await endpoint(client, tenant, receiver.url, ["sync.completed"])
    receiver.script = [204]
    response = await client.post(f"/v1/webhooks/{hook['id']}/test", headers=tenant.headers())
    assert response.status_code == 200, response.text
    result = response.json()["data"]
    assert (result["ok"], result["status_code"], result["endpoint_id"]) == (True, 204, hook["id"])
    [(headers, body)] = receiver.received
    assert headers["webhook-id"] == result["webhook_id"]
    payload = Webhook(hook["secret"]).verify(body, headers)
    assert payload["event"] == "webhook.test"

    receiver.script = [500]
    failing = (
        await client.post(f"/v1/webhooks/{hook['id']}/test", headers=tenant.headers())
    ).json()["data"]
    assert (failing["ok"], failing["status_code"], failing["response_excerpt"]) == (
        False,
        500,
        "answer 500",
    )


async def test_graphql_endpoints_deliveries_rotation_test_and_replay(
    client, tenant: Tenant, receiver: Receiver
) -> None:
    async def gql(query: str, **variables: Any) -> dict[str, Any]:
        response = await client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=tenant.headers()
        )
        assert response.status_code == 200
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    created = (
        await gql(
            "mutation($input: WebhookEndpointCreateInput!) { webhookEndpointCreate(input: $input)"
            " { secret endpoint { id url eventTypes active } } }",
            input={"url": receiver.url, "eventTypes": ["PRODUCT_CREATED"]},
        )
    )["webhookEndpointCreate"]
    hook_id, secret = created["endpoint"]["id"], created["secret"]
    assert created["endpoint"]["eventTypes"] == ["PRODUCT_CREATED"]
    assert secret.startswith("whsec_")
    await make_product(tenant, "111111")
    await settle()

    deliveries = (
        await gql(
            "query($id: ID!) { webhookDeliveries(endpointId: $id) { nodes { id eventId status "
            "attempts { number statusCode durationMs responseExcerpt } } } }",
            id=hook_id,
        )
    )["webhookDeliveries"]["nodes"]
    [delivery] = deliveries
    assert delivery["status"] == "DELIVERED"
    assert [a["statusCode"] for a in delivery["attempts"]] == [200]

    rotated = (
        await gql(
            "mutation($id: ID!) { webhookEndpointRotateSecret(id: $id) { secret } }", id=hook_id
        )
    )["webhookEndpointRotateSecret"]["secret"]
    tested = (
        await gql(
            "mutation($id: ID!) { webhookEndpointTest(id: $id) { ok statusCode webhookId } }",
            id=hook_id,
        )
    )["webhookEndpointTest"]
    assert (tested["ok"], tested["statusCode"]) == (True, 200)
    headers, body = receiver.received[-1]
    Webhook(rotated).verify(body, headers)
    Webhook(secret).verify(body, headers)  # the old secret still signs during the overlap

    replayed = (
        await gql(
            "mutation($id: ID!) { webhookDeliveryReplay(id: $id) { id status } }",
            id=delivery["id"],
        )
    )["webhookDeliveryReplay"]
    assert replayed == {"id": delivery["id"], "status": "PENDING"}
    await settle()
    assert receiver.received[-1][0]["webhook-id"] == delivery["eventId"]

    off = (
        await gql(
            "mutation($id: ID!) { webhookEndpointUpdate(id: $id, input: {active: false}) "
            "{ active } }",
            id=hook_id,
        )
    )["webhookEndpointUpdate"]
    assert off == {"active": False}


async def test_an_attempt_that_outlives_its_lease_does_not_overwrite_its_successor(
    client, tenant: Tenant, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    monkeypatch.setattr(sender, "LEASE", timedelta(seconds=0.2))

    async def not_queued(*args: Any) -> None:
        return None  # this test plays both workers itself

    monkeypatch.setattr(sender, "enqueue_attempt", not_queued)
    await endpoint(client, tenant, receiver.url, ["product.created"])
    receiver.script = [("hang", 0.8)]  # the first attempt's answer comes after its lease
    await make_product(tenant, "111111")
    await sender.fan_out()
    delivery = await WebhookDelivery.get()
    slow = asyncio.create_task(sender.attempt(delivery.id))  # worker A, presumed dead later
    await asyncio.sleep(0.4)
    assert await sender.attempt(delivery.id) == "delivered"  # worker B took over
    assert await slow is None  # A's late answer changes nothing

    stored = await WebhookDelivery.get(id=delivery.id)
    assert (stored.status, stored.attempts) == (DeliveryStatus.DELIVERED, 1)
    errors = sorted(a.error or "" for a in await WebhookAttempt.filter(delivery_id=delivery.id))
    assert errors == ["", "(lease lost)"]
    assert [h["webhook-id"] for h, _ in receiver.received] == [delivery.event_id] * 2


async def test_odd_answers_and_hosts_are_failed_attempts_not_errors(
    client, tenant: Tenant, receiver: Receiver
) -> None:
    hook = await endpoint(client, tenant, receiver.url, ["product.created"])
    receiver.script = [("nul",)]
    await make_product(tenant, "111111")
    await settle()
    [logged] = await WebhookAttempt.all()
    assert (logged.status_code, logged.response_excerpt) == (200, "ok\ufffdbinary")

    # A host that validates but cannot be encoded: a clear failed test send, not a 500.
    snowman = await client.put(
        f"/v1/webhooks/{hook['id']}", json={"url": "https://☃.example/hook"},
        headers=tenant.headers(),
    )  # fmt: skip
    assert snowman.status_code == 200
    tested = await client.post(f"/v1/webhooks/{hook['id']}/test", headers=tenant.headers())
    assert tested.status_code == 200
    assert tested.json()["data"]["ok"] is False
    assert tested.json()["data"]["error"]


async def test_a_replay_gets_a_fresh_retry_budget(
    client, tenant: Tenant, receiver: Receiver, fast_schedule
) -> None:
    hook = await endpoint(client, tenant, receiver.url, ["product.created"])
    receiver.script = [500] * len(fast_schedule)
    await make_product(tenant, "111111")
    await settle()
    delivery = await WebhookDelivery.get(endpoint_id=hook["id"])
    assert delivery.status is DeliveryStatus.FAILED
    await client.put(f"/v1/webhooks/{hook['id']}", json={"active": True}, headers=tenant.headers())

    receiver.script = [500, 200]  # one more failure after the replay must not disable it again
    await webhooks.replay_delivery(tenant.principal(), delivery.id)
    await settle()

    delivery = await WebhookDelivery.get(id=delivery.id)
    assert (delivery.status, delivery.attempts) == (
        DeliveryStatus.DELIVERED,
        len(fast_schedule) + 2,
    )
    assert (await WebhookEndpoint.get(id=hook["id"])).active is True


async def test_the_connection_goes_to_the_checked_address(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In production the delivery dials the address the guard checked (no second DNS lookup
    that rebinding could answer differently); the Host header keeps the name."""
    port = receiver.url.split(":")[2].split("/")[0]

    async def checked(url: str, *, param: str = "url") -> list[str]:
        return ["127.0.0.1"]

    monkeypatch.setattr(sender, "ensure_public_url", checked)
    answer = await sender.post(f"http://hooks.invalid:{port}/hook", b"{}", {})
    assert answer.ok, answer
    [(headers, _)] = receiver.received
    assert headers["host"] == f"hooks.invalid:{port}"
    assert headers["accept-encoding"] == "identity"


async def test_a_second_process_routing_the_same_events_sends_nothing_twice(
    client, tenant: Tenant, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.events import service as events

    first = await endpoint(client, tenant, receiver.url, ["product.created"])
    second = await endpoint(client, tenant, receiver.url, ["product.created", "sync.completed"])
    await endpoint(client, tenant, receiver.url, ["sync.completed"])  # not routed these
    queued: list[str] = []

    async def record(delivery_id: str, *args: Any) -> None:
        queued.append(delivery_id)

    async def not_requested() -> None:
        return None  # the two fan-outs below are the only ones

    monkeypatch.setattr(sender, "enqueue_attempt", record)
    monkeypatch.setattr(events, "_fan_out_soon", not_requested)
    for number in range(6):
        await make_product(tenant, f"{700000 + number}")

    # Two processes read the same unrouted events; the first commits its deliveries, then
    # the second, which read the events before that commit, tries to write its own.
    first_process = await sender._fan_out(1000)
    await Event.all().update(fanned_out_at=None)  # what the second process had read
    second_process = await sender._fan_out(1000)

    deliveries = await WebhookDelivery.all()
    assert (first_process, second_process) == (12, 0)
    assert len(deliveries) == 12  # six events x the two endpoints subscribed to them
    assert {d.endpoint_id for d in deliveries} == {first["id"], second["id"]}
    assert sorted(queued) == sorted(d.id for d in deliveries)  # each queued by one process
    assert not await Event.filter(fanned_out_at=None).exists()


async def test_commits_of_one_moment_share_one_fan_out(
    client, tenant: Tenant, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.events import service as events

    await endpoint(client, tenant, receiver.url, ["product.created"])
    queue = runtime.current().jobs
    queued: list[tuple[str | None, str | None]] = []  # (job id asked for, job id queued)
    enqueue = queue.enqueue

    async def counting(name: str, *args: Any, **kwargs: Any) -> str | None:
        job_id = await enqueue(name, *args, **kwargs)
        if name == "fan_out_webhooks":
            queued.append((kwargs.get("job_id"), job_id))
        return job_id

    monkeypatch.setattr(queue, "enqueue", counting)
    monkeypatch.setattr(events, "_window", lambda: 89_500_000_000)  # all in one window
    monkeypatch.setattr(events, "FAN_OUT_WINDOW", 0.5)  # ... which closes after the commits
    for number in range(8):
        await make_product(tenant, f"{710000 + number}")

    assert len(queued) == 8  # every commit asks ...
    assert {asked for asked, _ in queued} == {"fan-out:89500000000"}
    assert [job for _, job in queued if job is not None] == ["fan-out:89500000000"]  # ... once
    await settle()
    assert len(receiver.received) == 8


async def test_order_events_are_delivered_with_the_documented_bodies(
    client, tenant: Tenant, receiver: Receiver
) -> None:
    from app.events.service import atomic, emit
    from app.events.types import EventType
    from tests.test_jobs_events import TIMESTAMP
    from tests.test_subscriptions import ORDER_FORWARDED, ORDER_RECEIVED

    hook = await endpoint(client, tenant, receiver.url, ["order.received", "order.forwarded"])
    for type_, data in (
        (EventType.ORDER_RECEIVED, ORDER_RECEIVED),
        (EventType.ORDER_FORWARDED, ORDER_FORWARDED),
    ):
        async with atomic() as tx:
            await emit(tx, account_id=tenant.account_id, environment="live", type=type_, data=data)

    await settle()

    bodies = [Webhook(hook["secret"]).verify(body, headers) for headers, body in receiver.received]
    assert [(b["event"], b["data"]) for b in sorted(bodies, key=lambda b: b["event"])] == [
        ("order.forwarded", ORDER_FORWARDED),
        ("order.received", ORDER_RECEIVED),
    ]
    assert all(TIMESTAMP.fullmatch(b["timestamp"]) for b in bodies)


async def test_events_and_their_delivery_history_are_kept_for_the_retention_only(
    client, tenant: Tenant, receiver: Receiver
) -> None:
    from datetime import UTC, datetime, timedelta

    from app.events.service import flush_published_marks, purge_old_events

    await endpoint(client, tenant, receiver.url, ["product.created"])
    products = [await make_product(tenant, f"{720000 + n}") for n in range(3)]
    await settle()
    await flush_published_marks()
    events = {e.data["product_id"]: e for e in await Event.filter(type="product.created")}
    old, fresh, retrying = (events[p.id] for p in products)
    # The third one's delivery waits for a retry, as after a receiver's 500.
    await WebhookDelivery.filter(event_id=retrying.id).update(
        status=DeliveryStatus.PENDING, next_attempt_at=datetime.now(UTC) + timedelta(hours=5)
    )
    for event in (old, retrying):
        await Event.filter(id=event.id).update(created_at=datetime.now(UTC) - timedelta(days=31))
    unrouted = await Event.create(
        id="evt_" + "0" * 24, account_id=tenant.account_id, environment="live",
        type="sync.completed", data={},
    )  # fmt: skip
    await Event.filter(id=unrouted.id).update(created_at=datetime.now(UTC) - timedelta(days=40))

    assert await purge_old_events() == 1

    remaining = set(await Event.all().values_list("id", flat=True))
    assert old.id not in remaining
    assert {fresh.id, retrying.id, unrouted.id} <= remaining  # young, still retried, unsent
    assert not await WebhookDelivery.filter(event_id=old.id).exists()
    assert not await WebhookAttempt.filter(delivery__event_id=old.id).exists()
    assert await WebhookAttempt.filter(delivery__event_id=fresh.id).count() == 1
    assert await purge_old_events() == 0


async def test_a_delivery_replayed_while_the_purge_runs_is_kept(
    client, tenant: Tenant, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    import contextlib
    from datetime import UTC, datetime, timedelta

    from app.events import service as events

    await endpoint(client, tenant, receiver.url, ["product.created"])
    await make_product(tenant, "730000")
    await settle()
    await events.flush_published_marks()
    event = await Event.get(type="product.created")
    await Event.filter(id=event.id).update(created_at=datetime.now(UTC) - timedelta(days=31))
    delivery = await WebhookDelivery.get(event_id=event.id)
    real_transaction = events.in_transaction

    @contextlib.asynccontextmanager
    async def replayed_meanwhile() -> Any:
        # Between the purge's choice of events and its deletes, the merchant replays.
        await WebhookDelivery.filter(id=delivery.id).update(
            status=DeliveryStatus.PENDING, next_attempt_at=datetime.now(UTC)
        )
        async with real_transaction() as connection:
            yield connection

    monkeypatch.setattr(events, "in_transaction", replayed_meanwhile)
    assert await events.purge_old_events() == 0
    assert await Event.exists(id=event.id)
    assert (await WebhookDelivery.get(id=delivery.id)).status is DeliveryStatus.PENDING
    assert await WebhookAttempt.filter(delivery_id=delivery.id).count() == 1


async def test_a_new_endpoint_is_not_sent_what_happened_before_it_existed(
    client, tenant: Tenant, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Routing runs after the commit, later still when the workers are busy or down: an
    endpoint created meanwhile gets only the events from its creation on."""
    from app.events import service as events

    async def routing_lags() -> None:
        return None

    monkeypatch.setattr(events, "_fan_out_soon", routing_lags)
    before = await make_product(tenant, "333333")
    created = await endpoint(client, tenant, receiver.url, ["product.created"])
    after = await make_product(tenant, "444444")

    assert await sender._fan_out(1000) == 1
    [delivery] = await WebhookDelivery.all()
    assert delivery.endpoint_id == created["id"]
    event = await Event.get(id=delivery.event_id)
    assert event.data["product_id"] == after.id
    assert event.data["product_id"] != before.id
    assert not await Event.filter(fanned_out_at=None).exists()  # both were routed


DELETE_ENDPOINT = "mutation($id: ID!) { webhookEndpointDelete(id: $id) { id deleted } }"


async def test_graphql_deletes_an_endpoint_with_its_history_and_frees_its_place(
    client, tenant: Tenant, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def gql(query: str, key: str | None = None, **variables: Any) -> dict[str, Any]:
        response = await client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers=tenant.headers(key),
        )
        assert response.status_code == 200
        return response.json()

    monkeypatch.setattr(webhooks, "MAX_ENDPOINTS", 2)
    gone = await endpoint(client, tenant, receiver.url, ["product.created"])
    kept = await endpoint(client, tenant, receiver.url, ["product.updated"])
    await make_product(tenant, "555555")
    await settle()
    assert await WebhookDelivery.filter(endpoint_id=gone["id"]).count() == 1
    full = await client.post(
        "/v1/webhooks",
        json={"url": receiver.url, "event_types": ["sync.completed"]},
        headers=tenant.headers(),
    )
    assert full.status_code == 409
    assert full.json()["error"]["code"] == "too_many_endpoints"

    reader = await keys.create_key(account_id=tenant.account_id, mode="live", scopes=["read"])
    refused = await gql(DELETE_ENDPOINT, reader.secret, id=gone["id"])
    assert refused["errors"][0]["extensions"]["code"] == "insufficient_scope"
    assert await WebhookEndpoint.exists(id=gone["id"])

    body = await gql(DELETE_ENDPOINT, id=gone["id"])
    assert body == {"data": {"webhookEndpointDelete": {"id": gone["id"], "deleted": True}}}
    assert not await WebhookEndpoint.exists(id=gone["id"])
    assert not await WebhookDelivery.filter(endpoint_id=gone["id"]).exists()
    assert not await WebhookAttempt.filter(delivery__endpoint_id=gone["id"]).exists()
    missing = await client.put(
        f"/v1/webhooks/{gone['id']}", json={"active": True}, headers=tenant.headers()
    )
    assert missing.status_code == 404
    listed = (await client.get("/v1/webhooks", headers=tenant.headers())).json()["data"]
    assert [hook["id"] for hook in listed] == [kept["id"]]
    again = await gql(DELETE_ENDPOINT, id=gone["id"])
    assert again["errors"][0]["extensions"]["code"] == "resource_missing"
    assert await WebhookEndpoint.exists(id=kept["id"])

    received = len(receiver.received)
    await make_product(tenant, "666666")  # product.created: only the deleted one wanted it
    await settle()
    assert len(receiver.received) == received
    replacement = await endpoint(client, tenant, receiver.url, ["sync.completed"])
    assert replacement["id"] != gone["id"]


async def test_an_endpoint_deleted_while_its_attempt_is_on_its_way(
    client, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attempt finishes and its outcome is dropped: no error, nothing left behind."""
    hook = await endpoint(client, tenant, "https://hooks.example.com/in", ["product.created"])
    queued: list[str] = []

    async def record(delivery_id: str, *args: Any, **kwargs: Any) -> None:
        queued.append(delivery_id)

    monkeypatch.setattr(sender, "enqueue_attempt", record)
    await make_product(tenant, "777777")
    await sender.fan_out()
    [delivery_id] = queued

    async def post_while_deleted(url: str, body: bytes, headers: dict[str, str]) -> sender.Answer:
        response = await client.post(
            "/graphql",
            json={"query": DELETE_ENDPOINT, "variables": {"id": hook["id"]}},
            headers=tenant.headers(),
        )
        assert response.json()["data"]["webhookEndpointDelete"]["deleted"] is True
        return sender.Answer(200, 12, "ok")

    monkeypatch.setattr(sender, "post", post_while_deleted)
    assert await sender.attempt(delivery_id) is None
    assert not await WebhookDelivery.exists(id=delivery_id)
    assert not await WebhookAttempt.filter(delivery_id=delivery_id).exists()


async def test_an_endpoint_deleted_while_events_are_routed(
    client, tenant: Tenant, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Routing read the endpoints, then one was deleted before the deliveries were written:
    the batch is routed again, to the endpoints that remain."""
    from app.events import service as events

    async def routing_lags() -> None:
        return None

    monkeypatch.setattr(events, "_fan_out_soon", routing_lags)
    gone = await endpoint(client, tenant, receiver.url, ["product.created"])
    kept = await endpoint(client, tenant, receiver.url, ["product.created"])
    await make_product(tenant, "888888")
    screen = sender._not_about_themselves
    deleted: list[str] = []

    async def delete_meanwhile(deliveries: list[Any]) -> list[Any]:
        if not deleted:
            await WebhookEndpoint.filter(id=gone["id"]).delete()
            deleted.append(gone["id"])
        return await screen(deliveries)

    monkeypatch.setattr(sender, "_not_about_themselves", delete_meanwhile)
    assert await sender._fan_out(1000) == 1
    [delivery] = await WebhookDelivery.all()
    assert delivery.endpoint_id == kept["id"]
    assert not await Event.filter(fanned_out_at=None).exists()
