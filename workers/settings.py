"""arq `WorkerSettings` for `syncauction worker` (distributed mode)."""

from __future__ import annotations

from typing import Any

from arq import cron
from arq.connections import RedisSettings
from arq.worker import Function, func

from app import db, runtime
from app.config import Settings, get_settings
from app.events.bus import make_bus, set_bus
from app.jobs import ArqQueue
from app.logging import configure_logging
from workers.registry import JOBS, PERIODIC


def _cron_minutes(every_seconds: int) -> set[int]:
    step = max(1, every_seconds // 60)
    return set(range(0, 60, step))


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.get("settings") or get_settings()
    configure_logging(settings)
    rt = runtime.install(settings)
    await db.init_orm(settings.resolved_database_url)
    rt.bus = make_bus(settings.redis_url)
    await rt.bus.start()
    set_bus(rt.bus)
    rt.jobs = ArqQueue(ctx["redis"])


async def shutdown(ctx: dict[str, Any]) -> None:
    rt = runtime.current()
    if rt.bus is not None:
        await rt.bus.close()
        set_bus(None)
    await db.close_orm()


def worker_settings(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `arq.Worker` built from our settings."""
    if not settings.redis_url:
        raise ValueError("SYNCAUCTION_REDIS_URL is not set: the worker needs Redis")
    functions: list[Function] = [func(fn, name=name, timeout=600) for name, fn in JOBS.items()]
    cron_jobs = [
        cron(
            JOBS[name],
            name=f"cron:{name}",
            minute=_cron_minutes(every),
            second=0,
            run_at_startup=True,
        )
        for name, every in PERIODIC
    ]
    return {
        "functions": functions,
        "cron_jobs": cron_jobs,
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "ctx": {"settings": settings},
        "max_jobs": 10,
        "keep_result": 3600,
    }


class WorkerSettings:
    """For `arq workers.settings.WorkerSettings`; reads settings from the environment."""

    functions = [func(fn, name=name, timeout=600) for name, fn in JOBS.items()]
    cron_jobs = [
        cron(JOBS[name], name=f"cron:{name}", minute=_cron_minutes(every), second=0)
        for name, every in PERIODIC
    ]
    on_startup = staticmethod(startup)
    on_shutdown = staticmethod(shutdown)
