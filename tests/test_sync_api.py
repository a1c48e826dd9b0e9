"""`/v1/sync/*` and the GraphQL sync fields, as an integrator uses them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app import runtime
from app.sync import service as sync
from app.sync.models import SyncJob
from rest_compat.schemas import ErrorResponse, SyncJobObject, SyncStatusObject
from tests.conftest import Tenant
from tests.test_sync_engine import simulated_store


async def finish_jobs() -> None:
    await runtime.current().jobs.join()


@pytest.fixture
def held_queue(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Jobs are recorded instead of run, so a triggered sync stays queued."""
    calls: list[tuple[Any, ...]] = []

    async def enqueue(name: str, *args: Any, **kwargs: Any) -> str:
        calls.append((name, *args))
        return str(args[0])

    monkeypatch.setattr(sync.jobs, "enqueue", enqueue)
    return calls


async def test_trigger_runs_a_delta_and_history_shows_it(client, tenant: Tenant) -> None:
    store = await simulated_store(tenant)

    response = await client.post("/v1/sync/trigger", headers=tenant.headers())
    assert response.status_code == 202
    job = response.json()["data"]
    SyncJobObject.model_validate(job)
    assert job["id"].startswith("sync_")
    assert (job["object"], job["type"], job["status"], job["trigger"]) == (
        "sync_job",
        "delta",
        "queued",
        "api",
    )
    await finish_jobs()

    history = (await client.get("/v1/sync/history", headers=tenant.headers())).json()
    assert history["has_more"] is False
    [done] = history["data"]
    SyncJobObject.model_validate(done)
    assert done["id"] == job["id"]
    assert done["status"] == "completed"
    assert done["stats"]["products_added"] > 0
    assert done["stats"]["errors"] == 0
    assert done["stores_updated"] == [store.id]
    assert done["stores"][store.id]["pushed"] == done["stats"]["products_added"]
    assert done["progress"]["fraction"] == 1.0
    assert done["finished_at"].endswith("Z")

    status = (await client.get("/v1/sync/status", headers=tenant.headers())).json()["data"]
    SyncStatusObject.model_validate(status)
    assert status["state"] == "idle"
    assert status["current_job"] is None
    assert status["last_sync"]["id"] == job["id"]
    assert status["next_sync"]["type"] in ("delta", "full")
    assert status["schedule"] == {"delta_interval_minutes": 15, "full_sync_hour_utc": 3}

    products = (await client.get("/v1/products", headers=tenant.headers())).json()["data"]
    assert products and products[0]["ha_lot"]


async def test_a_second_trigger_is_a_409_with_the_running_job(
    client, tenant: Tenant, held_queue
) -> None:
    first = await client.post("/v1/sync/trigger", json={"type": "full"}, headers=tenant.headers())
    assert first.status_code == 202
    second = await client.post("/v1/sync/trigger", json={}, headers=tenant.headers())
    assert second.status_code == 409
    ErrorResponse.model_validate(second.json())
    error = second.json()["error"]
    assert error["type"] == "conflict"
    assert error["code"] == "sync_in_progress"
    assert error["sync_job"]["id"] == first.json()["data"]["id"]
    assert error["sync_job"]["type"] == "full"

    status = (await client.get("/v1/sync/status", headers=tenant.headers())).json()["data"]
    assert status["state"] == "queued"
    assert status["current_job"]["id"] == first.json()["data"]["id"]
    # The sandbox is another environment: its own sync may start.
    sandbox = await client.post("/v1/sync/trigger", headers=tenant.headers(tenant.test))
    assert sandbox.status_code == 202
    assert held_queue == [
        ("run_sync", first.json()["data"]["id"]),
        ("run_sync", sandbox.json()["data"]["id"]),
    ]


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"type": "partial"}, "type", "parameter_invalid"),
        ({"type": None}, "type", None),
        ({"store_ids": ["store_doesnotexist0000000000"]}, "store_ids.0", "resource_missing"),
        ({"store_ids": "all"}, "store_ids", None),
        ({"stores": []}, "stores", None),
    ],
)
async def test_bad_triggers_are_400s_and_start_nothing(
    client, tenant: Tenant, held_queue, body, param, code
) -> None:
    response = await client.post("/v1/sync/trigger", json=body, headers=tenant.headers())
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    if code:
        assert error["code"] == code
    assert held_queue == []
    history = (await client.get("/v1/sync/history", headers=tenant.headers())).json()
    assert history["data"] == []


async def test_another_accounts_store_is_unknown(client, tenant, other_tenant, held_queue) -> None:
    theirs = await simulated_store(other_tenant)
    response = await client.post(
        "/v1/sync/trigger", json={"store_ids": [theirs.id]}, headers=tenant.headers()
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "resource_missing"


async def test_read_only_keys_see_sync_but_cannot_trigger(client, tenant: Tenant) -> None:
    denied = await client.post("/v1/sync/trigger", headers=tenant.headers(tenant.live_read))
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "insufficient_scope"
    assert (
        await client.get("/v1/sync/status", headers=tenant.headers(tenant.live_read))
    ).status_code == 200


async def test_trigger_with_an_idempotency_key_starts_one_sync(
    client, tenant: Tenant, held_queue
) -> None:
    headers = {**tenant.headers(), "Idempotency-Key": "nightly-2026-11-27"}
    first = await client.post("/v1/sync/trigger", json={"type": "full"}, headers=headers)
    again = await client.post("/v1/sync/trigger", json={"type": "full"}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert len(held_queue) == 1


async def test_graphql_sync_fields(client, tenant: Tenant) -> None:
    await simulated_store(tenant)

    async def gql(query: str, **variables: Any) -> dict[str, Any]:
        response = await client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=tenant.headers()
        )
        assert response.status_code == 200
        return response.json()

    started = await gql(
        "mutation($input: SyncTriggerInput!) { syncTrigger(input: $input) { id type status } }",
        input={"type": "FULL"},
    )
    job = started["data"]["syncTrigger"]
    assert job["type"] == "FULL" and job["status"] == "QUEUED"
    await finish_jobs()

    body = await gql(
        "{ syncStatus { state lastSync { id status stats { productsAdded errors } "
        "storesUpdated } nextSyncAt } syncJobs(first: 5) { edges { node { id } } } }"
    )
    status = body["data"]["syncStatus"]
    assert status["state"] == "IDLE"
    assert status["lastSync"]["id"] == job["id"]
    assert status["lastSync"]["status"] == "COMPLETED"
    assert status["lastSync"]["stats"]["productsAdded"] > 0
    assert [e["node"]["id"] for e in body["data"]["syncJobs"]["edges"]] == [job["id"]]


async def test_graphql_trigger_conflict(client, tenant: Tenant, held_queue) -> None:
    response = await client.post(
        "/graphql",
        json={
            "query": "mutation { a: syncTrigger(input: {type: DELTA}) { id } "
            "b: syncTrigger(input: {type: DELTA}) { id } }"
        },
        headers=tenant.headers(),
    )
    conflict = response.json()
    # The first alias queued a job; the second was refused with it (and, as the mutation
    # field is non-null, the error nulls `data`).
    [(_, queued)] = held_queue
    [error] = conflict["errors"]
    assert error["path"] == ["b"]
    assert error["extensions"]["code"] == "sync_in_progress"
    assert error["extensions"]["sync_job"]["id"] == queued


async def test_the_schedule_can_be_changed_and_starts_due_syncs(client, tenant: Tenant) -> None:
    from datetime import UTC, datetime, timedelta

    from app.sync.models import SyncJob, SyncState

    await simulated_store(tenant)
    # The nightly full half a day away, so the deltas below are due whatever the clock says.
    full_hour = (datetime.now(UTC).hour + 12) % 24
    body = (
        await client.post(
            "/graphql",
            json={
                "query": "mutation { syncScheduleUpdate(input: {deltaIntervalMinutes: 30, "
                f"fullSyncHourUtc: {full_hour}}}) "
                "{ deltaIntervalMinutes fullSyncHourUtc nextSyncType } }"
            },
            headers=tenant.headers(),
        )
    ).json()
    assert body["data"]["syncScheduleUpdate"] == {
        "deltaIntervalMinutes": 30,
        "fullSyncHourUtc": full_hour,
        "nextSyncType": "FULL",  # never synced: a full is due now
    }
    bad = (
        await client.post(
            "/graphql",
            json={
                "query": "mutation { syncScheduleUpdate(input: {deltaIntervalMinutes: 2}) "
                "{ deltaIntervalMinutes } }"
            },
            headers=tenant.headers(),
        )
    ).json()
    assert bad["errors"][0]["extensions"]["code"] == "parameter_invalid"
    for field in ("deltaIntervalMinutes", "fullSyncHourUtc", "nightlyFull"):
        refused = (
            await client.post(
                "/graphql",
                json={
                    "query": f"mutation {{ syncScheduleUpdate(input: {{{field}: null}}) "
                    "{ deltaIntervalMinutes fullSyncHourUtc } }"
                },
                headers=tenant.headers(),
            )
        ).json()
        [error] = refused["errors"]
        assert error["extensions"]["code"] == "parameter_invalid", error
        assert "may be omitted but not null" in error["message"]
    kept = await client.get("/v1/sync/status", headers=tenant.headers())
    assert kept.json()["data"]["schedule"]["delta_interval_minutes"] == 30

    # Never synced: the schedule starts a full sync for the tenant (and only one).
    assert await sync.schedule_due() == 1
    assert await sync.schedule_due() == 0  # still unfinished: nothing more
    await finish_jobs()
    [job] = await SyncJob.filter(account_id=tenant.account_id)
    assert (job.type.value, job.trigger.value, job.status.value) == (
        "full",
        "schedule",
        "completed",
    )
    state = await SyncState.get(account_id=tenant.account_id, environment="live")
    now = datetime.now(UTC)
    at, kind = sync.next_run(state, now)
    assert kind == "delta" and timedelta(minutes=29) < at - now <= timedelta(minutes=30)
    assert await sync.schedule_due() == 0
    # 31 minutes later the delta is due.
    assert await sync.schedule_due(now + timedelta(minutes=31)) == 1
    await finish_jobs()
    latest = await SyncJob.filter(account_id=tenant.account_id).order_by("-id").first()
    assert latest.type.value == "delta"


def test_next_run_picks_the_nightly_full_or_the_next_delta() -> None:
    from datetime import UTC, datetime

    from app.sync.models import SyncState

    now = datetime(2026, 11, 27, 1, 50, tzinfo=UTC)
    state = SyncState(
        delta_interval_minutes=15,
        full_sync_hour=2,
        last_full_at=datetime(2026, 11, 26, 2, 0, 30, tzinfo=UTC),
        last_delta_at=datetime(2026, 11, 27, 1, 40, tzinfo=UTC),
    )
    assert sync.next_run(state, now) == (datetime(2026, 11, 27, 1, 55, tzinfo=UTC), "delta")
    later = datetime(2026, 11, 27, 2, 0, 5, tzinfo=UTC)
    assert sync.next_run(state, later) == (later, "full")  # tonight's full is due
    state.delta_interval_minutes = 0
    assert sync.next_run(state, now) == (datetime(2026, 11, 27, 2, 0, tzinfo=UTC), "full")
    state.full_sync_hour = None
    assert sync.next_run(state, now) == (None, None)
    assert sync.next_run(None, now) == (now, "full")


async def test_a_store_with_sync_off_cannot_be_asked_for(
    client, tenant: Tenant, held_queue
) -> None:
    store = await simulated_store(tenant, sync_enabled=False)
    response = await client.post(
        "/v1/sync/trigger", json={"store_ids": [store.id]}, headers=tenant.headers()
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "store_sync_disabled"
    assert response.json()["error"]["param"] == "store_ids.0"
    assert held_queue == []


async def test_a_trigger_the_queue_cannot_take_is_still_started(
    client, tenant: Tenant, monkeypatch: pytest.MonkeyPatch, held_queue
) -> None:
    """Redis down at the moment of the trigger: the job is committed, so the client gets it
    (202, replayable) and the sweeper queues it once it has waited a minute."""
    recording = sync.jobs.enqueue

    async def unreachable(name: str, *args: Any, **kwargs: Any) -> str:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(sync.jobs, "enqueue", unreachable)
    headers = {**tenant.headers(), "Idempotency-Key": "redis-down-1"}
    first = await client.post("/v1/sync/trigger", headers=headers)
    assert first.status_code == 202, first.text
    job = first.json()["data"]
    assert job["status"] == "queued"

    again = await client.post("/v1/sync/trigger", headers=headers)
    assert again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["data"]["id"] == job["id"]

    monkeypatch.setattr(sync.jobs, "enqueue", recording)
    assert await sync.resume_stalled() == 0  # queued for less than a minute: not lost yet
    await SyncJob.filter(id=job["id"]).update(created_at=datetime.now(UTC) - timedelta(minutes=2))
    assert await sync.resume_stalled() == 1
    assert held_queue == [(sync.RUN_JOB, job["id"])]
