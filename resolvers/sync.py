"""Sync resolvers: thin adapters over `app.sync.service`."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from app.sync import service
from app.sync.models import SyncJob as SyncJobRow
from resolvers.common import (
    After,
    First,
    ObjectId,
    actor,
    connection,
    input_errors,
    page_params,
    plain,
    validate,
)
from schema import types
from schema.inputs import SyncScheduleInput, SyncTriggerInput


def to_type(row: SyncJobRow) -> types.SyncJob:
    summary: dict[str, Any] = service.job_summary(row)
    stats, progress = summary["stats"], summary["progress"]
    return types.SyncJob(
        id=row.id,
        type=types.SyncType(row.type.value),
        status=types.SyncJobStatus(row.status.value),
        trigger=row.trigger.value,
        phase=row.phase,
        progress=types.SyncProgress(**progress),
        stats=types.SyncStats(**stats),
        store_ids=list(row.store_ids or []),
        stores=[
            types.SyncStoreResult(
                store_id=store_id,
                pushed=int(result.get("pushed", 0)),
                errors=int(result.get("errors", 0)),
                error=result.get("error"),
                error_samples=list(result.get("error_samples") or []),
            )
            for store_id, result in (row.stores or {}).items()
        ],
        stores_updated=list(row.stores_updated or []),
        error=types.SyncError(code=row.error_code, message=row.error_message or "")
        if row.error_code
        else None,
        duration_seconds=summary["duration_seconds"],
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


async def sync_status(info: Info) -> types.SyncStatus:
    return _status(await service.sync_overview(actor(info)))


async def sync_schedule_update(
    info: Info,
    input: Annotated[SyncScheduleInput, strawberry.argument(description="The new schedule.")],
) -> types.SyncStatus:
    changes = validate(service.SyncScheduleChanges, plain(input))
    with input_errors(("delta_interval_minutes", "full_sync_hour_utc", "nightly_full")):
        return _status(await service.update_schedule(actor(info), changes=changes))


def _status(overview: service.SyncOverview) -> types.SyncStatus:
    return types.SyncStatus(
        state=types.SyncState(overview.state),
        current_job=to_type(overview.current) if overview.current else None,
        last_sync=to_type(overview.last) if overview.last else None,
        next_sync_at=overview.next_sync_at,
        next_sync_type=types.SyncType(overview.next_sync_type) if overview.next_sync_type else None,
        delta_interval_minutes=overview.delta_interval_minutes,
        full_sync_hour_utc=overview.full_sync_hour,
    )


async def sync_jobs(info: Info, first: First = 25, after: After = None) -> types.SyncJobConnection:
    page = await service.list_jobs(actor(info), page=page_params(first, after))
    return connection(page, to_type, types.SyncJobConnection, types.SyncJobEdge)


async def sync_job(info: Info, id: ObjectId) -> types.SyncJob:
    return to_type(await service.get_job(actor(info), id))


async def sync_trigger(
    info: Info,
    input: Annotated[
        SyncTriggerInput,
        strawberry.argument(description="Which sync; defaults to a delta to every store."),
    ] = strawberry.UNSET,  # type: ignore[assignment]
) -> types.SyncJob:
    raw = plain(input) if input is not strawberry.UNSET else {}
    data = validate(service.SyncTriggerInput, raw)
    with input_errors(("type", "store_ids")):
        return to_type(await service.trigger_sync(actor(info), data=data))
