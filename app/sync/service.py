"""Sync jobs: trigger, status, history, and the job body that runs the engine.

One unfinished (queued or running) sync per account and environment: the job row's unique
`slot` holds `<account>:<environment>` until it finishes, so a second trigger is a 409 with the
running job, on every database and across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from app import jobs
from app.accounts.models import Environment
from app.auth.principal import Principal
from app.errors import Conflict, DomainError, InvalidInput
from app.events.service import atomic, emit, format_timestamp
from app.events.types import EventType
from app.ids import is_valid_id, new_id
from app.pagination import Page, PageParams, paginate
from app.partial import not_null, without_null
from app.stores.models import Store
from app.sync.models import SyncJob, SyncState, SyncStatus, SyncTrigger, SyncType
from app.tenancy import get_owned, owned

logger = logging.getLogger("syncauction.sync")

# A running job whose heartbeat is older than this is taken to have died with its process;
# a running job beats every HEARTBEAT_EVERY even while one call makes no progress.
STALE_AFTER = timedelta(minutes=2)
HEARTBEAT_EVERY = timedelta(seconds=15)
# A job that dies this many times (out of memory, killed by a timeout...) is abandoned, so the
# account's next sync may start.
MAX_ATTEMPTS = 5
RUN_JOB = "run_sync"


class SyncTriggerInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["full", "delta"] = Field(
        default="delta", description="`delta` sends only what changed; `full` re-sends all."
    )
    store_ids: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Stores to push to; empty = every store with sync enabled.",
    )


_SCHEDULE_NOT_NULL = (
    "delta_interval_minutes",
    "full_sync_hour_utc",
    "nightly_full",
)


class SyncScheduleChanges(BaseModel):
    """The tenant's sync schedule; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=without_null(*_SCHEDULE_NOT_NULL))
    delta_interval_minutes: int | None = Field(
        default=None, ge=0, le=1440, description="A delta every N minutes (5–1440; 0 = none)."
    )
    full_sync_hour_utc: int | None = Field(
        default=None, ge=0, le=23, description="Hour (UTC) of the nightly full sync."
    )
    nightly_full: bool | None = Field(default=None, description="false: no nightly full sync.")

    _not_null = not_null(*_SCHEDULE_NOT_NULL)


@dataclass(frozen=True, slots=True)
class SyncOverview:
    """`GET /v1/sync/status`: what runs now, what ran last, what runs next."""

    state: str  # idle | queued | running
    current: SyncJob | None
    last: SyncJob | None
    next_sync_at: datetime | None
    next_sync_type: str | None
    delta_interval_minutes: int
    full_sync_hour: int | None


def _slot(account_id: str, environment: Environment | str) -> str:
    return f"{account_id}:{Environment(environment).value}"


async def trigger_sync(
    actor: Principal,
    *,
    data: SyncTriggerInput,
    trigger: SyncTrigger = SyncTrigger.API,
    run: bool = True,
) -> SyncJob:
    """Queue a sync; 409 `sync_in_progress` (with the job) while another is unfinished. With
    `run=False` the job is not queued: the caller runs it (`run_job`)."""
    actor.require("sync:write")
    store_ids = list(dict.fromkeys(data.store_ids))
    for index, store_id in enumerate(store_ids):
        store = None
        if is_valid_id(store_id, "store"):
            store = await owned(Store, actor).filter(id=store_id).first()
        if store is None:
            raise InvalidInput(
                f"No such store: {store_id}", code="resource_missing", param=f"store_ids.{index}"
            )
        if not store.sync_enabled:
            raise InvalidInput(
                f"Sync is turned off for store {store_id}; turn it on with PUT /v1/stores/:id "
                '({"sync_enabled": true}) first.',
                code="store_sync_disabled",
                param=f"store_ids.{index}",
            )
    return await start_job(
        actor.account_id,
        actor.environment,
        SyncType(data.type),
        trigger=trigger,
        stores=store_ids,
        enqueue=run,
    )


async def start_job(
    account_id: str,
    environment: Environment,
    type: SyncType,
    *,
    trigger: SyncTrigger,
    stores: list[str] | None = None,
    enqueue: bool = True,
) -> SyncJob:
    """Create the job row (409 while another is unfinished) and queue it; with
    `enqueue=False` the caller runs it (`run_job`)."""
    job = SyncJob(
        id=new_id("sync"),
        account_id=account_id,
        environment=environment,
        type=type,
        trigger=trigger,
        slot=_slot(account_id, environment),
        store_ids=stores or [],
    )
    try:
        await job.save()
    except IntegrityError:
        running = await SyncJob.filter(slot=_slot(account_id, environment)).first()
        details = {"sync_job": job_summary(running)} if running is not None else None
        raise Conflict(
            "A sync is already queued or running for this account"
            + (f": {running.id}." if running is not None else "."),
            code="sync_in_progress",
            details=details,
        ) from None
    if enqueue:
        try:
            await jobs.enqueue(RUN_JOB, job.id, job_id=job.id)
        except Exception:
            # The row is the truth and is committed: `resume_stalled` queues a job left queued
            # for a minute. Failing the request instead would leave the client a job it was
            # told does not exist, refusing every retry with `sync_in_progress`.
            logger.warning("could not enqueue sync job %s; the sweeper will", job.id, exc_info=True)
    return job


async def first_sync(account_id: str, environment: Environment) -> SyncJob | None:
    """Run a full sync now, here, if the tenant never synced (the demo's first start)."""
    if await SyncJob.exists(account_id=account_id, environment=environment):
        return None
    job = await start_job(
        account_id, environment, SyncType.FULL, trigger=SyncTrigger.DEMO, enqueue=False
    )
    return await run_job(job.id)


async def get_job(actor: Principal, sync_id: str) -> SyncJob:
    actor.require("sync:read")
    return await get_owned(SyncJob, actor, sync_id, prefix="sync", noun="sync job")


async def watch_job(
    actor: Principal,
    sync_id: str,
    *,
    every: float = 0.5,
    still_valid: Callable[[], Awaitable[None]] | None = None,
    recheck_every: float = 30.0,
) -> AsyncIterator[SyncJob]:
    """The job now, then each time its progress changes, ending once it has finished (the last
    one yielded is completed or failed). `still_valid` runs every `recheck_every` seconds."""
    job = await get_job(actor, sync_id)  # 404 for another tenant's job
    last = None
    checked = time.monotonic()
    while True:
        if still_valid is not None and time.monotonic() - checked >= recheck_every:
            await still_valid()
            checked = time.monotonic()
        key = (job.status, job.phase, job.lots_processed, job.lots_total, job.stores)
        if key != last:
            last = key
            yield job
        if job.status in (SyncStatus.COMPLETED, SyncStatus.FAILED):
            return
        await asyncio.sleep(every)
        job = await SyncJob.get(id=job.id)


async def list_jobs(actor: Principal, *, page: PageParams) -> Page[SyncJob]:
    """Sync history, newest first."""
    actor.require("sync:read")
    return await paginate(owned(SyncJob, actor), page, prefix="sync")


async def sync_overview(actor: Principal) -> SyncOverview:
    actor.require("sync:read")
    current = await owned(SyncJob, actor).filter(slot__not_isnull=True).first()
    last = (
        await owned(SyncJob, actor)
        .filter(status__in=[SyncStatus.COMPLETED, SyncStatus.FAILED])
        .order_by("-id")
        .first()
    )
    state = await SyncState.get_or_none(id=_slot(actor.account_id, actor.environment))
    delta_every = state.delta_interval_minutes if state else 15
    full_hour = state.full_sync_hour if state else 3
    next_at, next_type = next_run(state, datetime.now(UTC))
    return SyncOverview(
        state=current.status.value if current is not None else "idle",
        current=current,
        last=last,
        next_sync_at=next_at,
        next_sync_type=next_type,
        delta_interval_minutes=delta_every,
        full_sync_hour=full_hour,
    )


async def update_schedule(actor: Principal, *, changes: SyncScheduleChanges) -> SyncOverview:
    """Change when the schedule syncs this account and environment."""
    actor.require("sync:write")
    if changes.delta_interval_minutes is not None and 0 < changes.delta_interval_minutes < 5:
        raise InvalidInput(
            "Scheduled deltas run at most every 5 minutes (0 turns them off).",
            code="parameter_invalid",
            param="delta_interval_minutes",
        )
    key = _slot(actor.account_id, actor.environment)
    state, _ = await SyncState.get_or_create(
        id=key, defaults={"account_id": actor.account_id, "environment": actor.environment}
    )
    update: dict[str, Any] = {}
    if changes.delta_interval_minutes is not None:
        update["delta_interval_minutes"] = changes.delta_interval_minutes
    if changes.full_sync_hour_utc is not None:
        update["full_sync_hour"] = changes.full_sync_hour_utc
    if changes.nightly_full is False:
        update["full_sync_hour"] = None
    elif changes.nightly_full and state.full_sync_hour is None and "full_sync_hour" not in update:
        update["full_sync_hour"] = 3
    if update:
        await SyncState.filter(id=key).update(**update)
    return await sync_overview(actor)


def next_run(state: SyncState | None, now: datetime) -> tuple[datetime | None, str | None]:
    """When the schedule runs this tenant next, and which type: the nightly full at
    `full_sync_hour` UTC, a delta `delta_interval_minutes` after the last sync; a tenant that
    never synced is due now."""
    if state is None or (state.last_full_at is None and state.last_delta_at is None):
        return now, SyncType.FULL.value
    candidates: list[tuple[datetime, str]] = []
    if state.full_sync_hour is not None:
        today = now.replace(hour=state.full_sync_hour, minute=0, second=0, microsecond=0)
        due = today if today > now else today + timedelta(days=1)
        if state.last_full_at is None or state.last_full_at < today <= now:
            due = now
        candidates.append((due, SyncType.FULL.value))
    if state.delta_interval_minutes:
        last = max(t for t in (state.last_full_at, state.last_delta_at) if t is not None)
        candidates.append(
            (
                max(last + timedelta(minutes=state.delta_interval_minutes), now),
                SyncType.DELTA.value,
            )
        )
    if not candidates:
        return None, None
    return min(candidates, key=lambda item: (item[0], item[1] != SyncType.FULL.value))


def job_summary(job: SyncJob) -> dict[str, Any]:
    """A sync job as the API shows it (REST `data`, the 409's `sync_job`)."""
    finished = job.finished_at
    duration = None
    if job.started_at is not None:
        duration = round(((finished or datetime.now(UTC)) - job.started_at).total_seconds(), 3)
    progress = None
    if job.lots_total:
        progress = round(min(job.lots_processed / job.lots_total, 1.0), 4)
    return {
        "id": job.id,
        "object": "sync_job",
        "type": job.type.value,
        "status": job.status.value,
        "trigger": job.trigger.value,
        "phase": job.phase,
        "progress": {
            "lots_processed": job.lots_processed,
            "lots_total": job.lots_total,
            "fraction": progress,
        },
        "stats": {
            "products_added": job.products_added,
            "products_updated": job.products_updated,
            "products_removed": job.products_removed,
            "errors": job.errors,
        },
        "store_ids": list(job.store_ids or []),
        "stores": dict(job.stores or {}),
        "stores_updated": list(job.stores_updated or []),
        "error": (
            {"code": job.error_code, "message": job.error_message} if job.error_code else None
        ),
        "duration_seconds": duration,
        "created_at": format_timestamp(job.created_at),
        "started_at": format_timestamp(job.started_at) if job.started_at else None,
        "finished_at": format_timestamp(finished) if finished else None,
    }


# -- the job body ---------------------------------------------------------------------------


async def claim(job_id: str) -> SyncJob | None:
    """Take the job for this process: a queued job, or a running one whose heartbeat stopped
    (its process died). None if it is finished or another process is running it. Each claim
    takes the next attempt number, and every later write of the job is conditional on it, so
    an execution presumed dead that wakes up cannot write over its successor."""
    now = datetime.now(UTC)
    claimed = await SyncJob.filter(id=job_id, status=SyncStatus.QUEUED).update(
        status=SyncStatus.RUNNING,
        heartbeat_at=now,
        started_at=now,
        phase="starting",
        attempts=F("attempts") + 1,
    )
    if not claimed:
        claimed = await SyncJob.filter(
            id=job_id, status=SyncStatus.RUNNING, heartbeat_at__lt=now - STALE_AFTER
        ).update(heartbeat_at=now, attempts=F("attempts") + 1)
    if not claimed:
        return None
    return await SyncJob.get(id=job_id)


async def run_job(job_id: str) -> SyncJob | None:
    """Run (or resume) a sync job to its end; the job function of `run_sync`."""
    from app.sync.engine import LostClaim, SyncRun

    job = await claim(job_id)
    if job is None:
        return None
    if job.attempts > MAX_ATTEMPTS:
        await _finish(
            job,
            failure=DomainError(
                f"The sync stopped {job.attempts - 1} times without finishing; it was abandoned.",
                code="sync_abandoned",
            ),
        )
        return await SyncJob.get(id=job_id)
    if job.attempts == 1:
        async with atomic() as tx:
            await emit(
                tx,
                account_id=job.account_id,
                environment=job.environment,
                type=EventType.SYNC_STARTED,
                data={"sync_id": job.id, "type": job.type.value, "trigger": job.trigger.value},
            )
    else:
        logger.info("resuming sync %s (attempt %d)", job.id, job.attempts)
    beat = asyncio.create_task(_heartbeat(job), name=f"heartbeat:{job.id}")
    try:
        await SyncRun(job).run()
    except LostClaim:
        logger.warning("sync %s was taken over by another execution; this one stops", job_id)
        return await SyncJob.get(id=job_id)
    except Exception as exc:
        await _finish(job, failure=exc)
        if not isinstance(exc, DomainError):
            logger.exception("sync %s failed", job_id)
    else:
        await _finish(job)
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
    return await SyncJob.get(id=job_id)


async def _heartbeat(job: SyncJob) -> None:
    """Keep the job visibly alive while a long call (a slow store, a feed honouring a long
    `Retry-After`) makes no progress to record."""
    while True:
        await asyncio.sleep(HEARTBEAT_EVERY.total_seconds())
        try:
            await SyncJob.filter(
                id=job.id, attempts=job.attempts, status=SyncStatus.RUNNING
            ).update(heartbeat_at=datetime.now(UTC))
        except Exception:  # a database blip: the next beat tries again
            logger.warning("heartbeat of sync %s failed", job.id, exc_info=True)


async def _finish(owned_job: SyncJob, *, failure: Exception | None = None) -> None:
    """Close the job (only if this execution still owns it) and emit sync.completed|failed."""
    job = await SyncJob.get(id=owned_job.id)
    if job.attempts != owned_job.attempts or job.status is not SyncStatus.RUNNING:
        return
    now = datetime.now(UTC)
    store_errors = sum(int(s.get("errors", 0)) for s in (job.stores or {}).values())
    job.errors = store_errors
    job.stores_updated = sorted(
        store_id for store_id, s in (job.stores or {}).items() if int(s.get("pushed", 0)) > 0
    )
    job.finished_at = now
    job.slot = None
    job.phase = "done"
    if failure is None:
        job.status = SyncStatus.COMPLETED
        event = EventType.SYNC_COMPLETED
    else:
        job.status = SyncStatus.FAILED
        job.errors += 1
        if isinstance(failure, DomainError):
            job.error_code, job.error_message = failure.code, failure.message
        else:
            job.error_code, job.error_message = "internal_error", "The sync stopped unexpectedly."
        event = EventType.SYNC_FAILED
    duration = (now - (job.started_at or now)).total_seconds()
    data: dict[str, Any] = {
        "sync_id": job.id,
        "type": job.type.value,
        "duration_seconds": round(duration),
        "stats": {
            "products_added": job.products_added,
            "products_updated": job.products_updated,
            "products_removed": job.products_removed,
            "errors": job.errors,
        },
        "stores_updated": list(job.stores_updated),
    }
    if failure is not None:
        data["error"] = {"code": job.error_code, "message": job.error_message}
    async with atomic() as tx:
        closed = (
            await SyncJob.filter(id=job.id, attempts=job.attempts, status=SyncStatus.RUNNING)
            .using_db(tx.connection)
            .update(
                status=job.status,
                slot=None,
                phase="done",
                finished_at=now,
                errors=job.errors,
                stores_updated=job.stores_updated,
                error_code=job.error_code,
                error_message=job.error_message,
            )
        )
        if closed:
            await emit(
                tx, account_id=job.account_id, environment=job.environment, type=event, data=data
            )


# -- schedule and recovery ------------------------------------------------------------------


async def schedule_due(now: datetime | None = None) -> int:
    """Start the syncs the schedule says are due, for every tenant with a store to sync."""
    now = now or datetime.now(UTC)
    started = 0
    tenants = (
        await Store.filter(sync_enabled=True).distinct().values_list("account_id", "environment")
    )
    for account_id, environment in tenants:
        environment = Environment(environment)
        state = await SyncState.get_or_none(id=_slot(account_id, environment))
        due_at, type_name = next_run(state, now)
        if due_at is None or due_at > now or type_name is None:
            continue
        if await _backing_off(account_id, environment, now):
            continue
        try:
            await start_job(
                account_id, environment, SyncType(type_name), trigger=SyncTrigger.SCHEDULE
            )
        except Conflict:
            continue
        started += 1
    return started


async def _backing_off(account_id: str, environment: Environment, now: datetime) -> bool:
    """After failed syncs the schedule waits 5 minutes, doubling per consecutive failure up to
    6 hours, instead of starting (and failing) one every minute while a system is down."""
    recent = (
        await SyncJob.filter(account_id=account_id, environment=environment)
        .exclude(status__in=[SyncStatus.QUEUED, SyncStatus.RUNNING])
        .order_by("-id")
        .limit(8)
        .values_list("status", "finished_at")
    )
    failures = 0
    for status, _ in recent:
        if status != SyncStatus.FAILED:
            break
        failures += 1
    if not failures or recent[0][1] is None:
        return False
    wait = min(timedelta(minutes=5) * 2 ** (failures - 1), timedelta(hours=6))
    return bool(recent[0][1] + wait > now)


async def resume_stalled() -> int:
    """Re-enqueue jobs that should be moving but are not: running with a stale heartbeat (the
    process died), or queued for a minute (the queue lost them). `run_sync` is idempotent."""
    now = datetime.now(UTC)
    stalled = await SyncJob.filter(
        status=SyncStatus.RUNNING, heartbeat_at__lt=now - STALE_AFTER
    ).values_list("id", flat=True)
    waiting = await SyncJob.filter(
        status=SyncStatus.QUEUED, created_at__lt=now - timedelta(minutes=1)
    ).values_list("id", flat=True)
    count = 0
    minute = int(now.timestamp()) // 60
    for job_id in [*stalled, *waiting]:
        # A fresh queue id: the original one may still be remembered by arq as finished.
        if await jobs.enqueue(RUN_JOB, job_id, job_id=f"{job_id}:resume:{minute}") is not None:
            count += 1
    return count


__all__ = [
    "SyncOverview",
    "SyncTriggerInput",
    "get_job",
    "job_summary",
    "list_jobs",
    "resume_stalled",
    "run_job",
    "schedule_due",
    "sync_overview",
    "trigger_sync",
]
