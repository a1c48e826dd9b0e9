"""Embedded mode: the in-process job queue plus a loop that fires the periodic jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from app.jobs import InProcessQueue
from workers.registry import JOBS, PERIODIC

logger = logging.getLogger("syncauction.jobs")


class EmbeddedRunner:
    def __init__(self, *, shutdown_timeout: float = 10.0, periodic: bool = True) -> None:
        self.queue = InProcessQueue(dict(JOBS), shutdown_timeout=shutdown_timeout)
        self._periodic = periodic
        self._ticker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._periodic:
            self._ticker = asyncio.create_task(self._tick(), name="periodic-jobs")

    async def _tick(self) -> None:
        elapsed = 0
        while True:
            await asyncio.sleep(1)
            elapsed += 1
            for name, every in PERIODIC:
                if elapsed % every == 0:
                    await self.queue.enqueue(name, job_id=f"periodic:{name}")

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self.queue.close()
