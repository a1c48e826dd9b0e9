"""Background jobs: one API, two backends.

`enqueue(job, *args, job_id=...)` hands a job to arq when `SYNCAUCTION_REDIS_URL` is set and to
`InProcessQueue` otherwise; both call the same job functions, `async def job(ctx, *args)`,
registered in `workers.registry`. Jobs take ids, are idempotent (arq may run a job twice), and
the database row stays the truth: a queue only says "look at row X".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from app import runtime

logger = logging.getLogger("syncauction.jobs")

JobFunction = Callable[..., Awaitable[Any]]


class JobQueue(Protocol):
    async def enqueue(
        self, name: str, *args: Any, job_id: str | None = None, defer_seconds: float | None = None
    ) -> str | None: ...

    async def taken(self, job_id: str) -> bool:
        """Whether a worker took the job and has not finished it (it may have died with it)."""
        ...

    async def close(self) -> None: ...


class InProcessQueue:
    """Runs jobs as asyncio tasks in this process (embedded mode).

    Like arq, a `job_id` that is queued or running is not enqueued twice. On close it drops
    deferred jobs that have not started, waits for running jobs up to `shutdown_timeout`, then
    cancels them (their rows stay due, and the sweeper picks them up after a restart)."""

    def __init__(
        self,
        functions: dict[str, JobFunction],
        *,
        context: dict[str, Any] | None = None,
        shutdown_timeout: float = 10.0,
    ) -> None:
        self.functions = functions
        self.context = context if context is not None else {}
        self.shutdown_timeout = shutdown_timeout
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._deferred: set[str] = set()  # job ids still waiting for their delay
        self._counter = 0
        self._closed = False

    async def enqueue(
        self, name: str, *args: Any, job_id: str | None = None, defer_seconds: float | None = None
    ) -> str | None:
        if self._closed:
            raise RuntimeError("the job queue is closed")
        function = self.functions.get(name)
        if function is None:
            raise LookupError(f"unknown job {name!r}")
        if job_id is not None and job_id in self._tasks:
            return None
        self._counter += 1
        job_id = job_id or f"inproc-{self._counter}"
        task = asyncio.create_task(self._run(name, function, args, job_id, defer_seconds))
        self._tasks[job_id] = task
        if defer_seconds:
            self._deferred.add(job_id)
        task.add_done_callback(lambda _t, key=job_id: self._forget(key))
        return job_id

    def _forget(self, job_id: str) -> None:
        self._tasks.pop(job_id, None)
        self._deferred.discard(job_id)

    async def _run(
        self,
        name: str,
        function: JobFunction,
        args: tuple[Any, ...],
        job_id: str,
        defer: float | None,
    ) -> Any:
        if defer:
            await asyncio.sleep(defer)
        self._deferred.discard(job_id)
        ctx = {**self.context, "job_id": job_id, "job_try": 1}
        try:
            return await function(ctx, *args)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("job %s (%s) failed", name, job_id)
            return None

    async def join(self) -> None:
        """Wait until no job is running (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def taken(self, job_id: str) -> bool:
        # A job here runs in this process: none can outlive a worker that died.
        return False

    async def close(self) -> None:
        self._closed = True
        # A deferred job that has not started is only a schedule: drop it rather than hold
        # shutdown for its delay (its row stays due).
        for job_id in list(self._deferred):
            task = self._tasks.get(job_id)
            if task is not None:
                task.cancel()
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self.shutdown_timeout)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class ArqQueue:
    """Enqueues on Redis for `syncauction worker` processes."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, redis_url: str) -> ArqQueue:
        from arq import create_pool
        from arq.connections import RedisSettings

        return cls(await create_pool(RedisSettings.from_dsn(redis_url)))

    async def enqueue(
        self, name: str, *args: Any, job_id: str | None = None, defer_seconds: float | None = None
    ) -> str | None:
        job = await self.pool.enqueue_job(name, *args, _job_id=job_id, _defer_by=defer_seconds)
        return job.job_id if job is not None else None

    async def taken(self, job_id: str) -> bool:
        from arq.constants import in_progress_key_prefix

        # A worker holds this key while it runs the job, for the longest job timeout.
        return bool(await self.pool.exists(in_progress_key_prefix + job_id))

    async def close(self) -> None:
        await self.pool.aclose()


async def enqueue(
    job: str | JobFunction,
    *args: Any,
    job_id: str | None = None,
    defer_seconds: float | None = None,
) -> str | None:
    """Queue `job` (a registered function or its name). Returns the job id, or None when a job
    with the same `job_id` is already queued or running."""
    name = job if isinstance(job, str) else job.__name__
    return await _queue().enqueue(name, *args, job_id=job_id, defer_seconds=defer_seconds)


async def taken(job_id: str) -> bool:
    """Whether a worker took `job_id` and has not finished it."""
    return await _queue().taken(job_id)


def _queue() -> JobQueue:
    queue = runtime.current().jobs
    if queue is None:
        raise RuntimeError("no job queue in this process")
    return queue
