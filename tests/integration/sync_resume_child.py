"""Child process of `test_sync_resume.py`: runs one sync job, to be SIGKILLed mid-run.

    python -m tests.integration.sync_resume_child '<json>'

The JSON holds `settings` (keyword arguments of `Settings`), `job_id`, and `feed_delay`: seconds
the built-in auction-house simulator waits before answering each feed page (a slow upstream,
so that the test can kill the run while it is still ingesting). The process sets up its runtime
and ORM as the worker's start-up does and calls `app.sync.service.run_job` once.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from app import db, runtime
from app.config import Settings
from app.sync import connect
from app.sync.service import run_job


class SlowApp:
    """An ASGI app answering like `app`, `delay` seconds later."""

    def __init__(self, app: Any, delay: float) -> None:
        self.app = app
        self.delay = delay

    def __getattr__(self, name: str) -> Any:  # `.state` etc. of the wrapped simulator
        return getattr(self.app, name)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(self.delay)
        await self.app(scope, receive, send)


async def main(config: dict[str, Any]) -> None:
    settings = Settings(**config["settings"])
    runtime.install(settings)
    await db.init_orm(settings.resolved_database_url)
    try:
        delay = float(config.get("feed_delay") or 0)
        if delay:
            simulators = connect.simulators()
            simulators.auction_house = SlowApp(simulators.auction_house, delay)
        job = await run_job(config["job_id"])
        print(json.dumps({"status": job.status.value if job else None}), flush=True)
    finally:
        await db.close_orm()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
