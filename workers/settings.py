"""arq `WorkerSettings` for `syncauction worker` (distributed mode)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from arq import cron
from arq.connections import RedisSettings
from arq.worker import Function, func

from app import db, runtime
from app.config import Settings, get_settings
from app.events.bus import make_bus, set_bus
from app.events.service import flush_published_marks
from app.jobs import ArqQueue
from app.logging import configure_logging
from app.webhooks.delivery import close_client as close_webhook_client
from workers.registry import JOB_KEEP_RESULT, JOB_TIMEOUTS, JOBS, PERIODIC

logger = logging.getLogger("syncauction.worker")


def _cron_schedule(every_seconds: int) -> dict[str, set[int] | None]:
    # arq's cron has second resolution: "every 30 s" is seconds {0, 30} of every minute.
    if every_seconds < 60:
        return {"minute": None, "second": set(range(0, 60, every_seconds))}
    return {"minute": set(range(0, 60, every_seconds // 60)), "second": {0}}


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.get("settings") or get_settings()
    configure_logging(settings)
    rt = runtime.install(settings)
    await db.init_orm(settings.resolved_database_url)
    rt.bus = make_bus(settings.redis_url)
    await rt.bus.start()
    set_bus(rt.bus)
    rt.jobs = ArqQueue(ctx["redis"])
    await db.report_pending_migrations(logger, "until then jobs fail")
    logger.info("worker started")


async def shutdown(ctx: dict[str, Any]) -> None:
    try:
        await _shutdown(ctx)
    finally:
        logger.info("worker stopped")


async def _shutdown(ctx: dict[str, Any]) -> None:
    rt = runtime.current()
    with contextlib.suppress(Exception):  # unmarked events are published again later
        await flush_published_marks()
    if rt.bus is not None:
        await rt.bus.close()
        set_bus(None)
    await close_webhook_client()
    await db.close_orm()


def worker_settings(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `arq.Worker` built from our settings."""
    if not settings.redis_url:
        raise ValueError("SYNCAUCTION_REDIS_URL is not set: the worker needs Redis")
    functions: list[Function] = [
        func(
            fn,
            name=name,
            timeout=JOB_TIMEOUTS.get(name, 600),
            keep_result=JOB_KEEP_RESULT.get(name),
        )
        for name, fn in JOBS.items()
    ]
    cron_jobs = [
        cron(JOBS[name], name=f"cron:{name}", run_at_startup=True, **_cron_schedule(every))
        for name, every in PERIODIC
    ]
    return {
        "functions": functions,
        "cron_jobs": cron_jobs,
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "ctx": {"settings": settings},
        # Most jobs wait on the network (deliveries, store pushes); long syncs must not take
        # every slot. Webhook attempts are further capped per process (32 at once).
        "max_jobs": 100,
        "keep_result": 3600,
    }
