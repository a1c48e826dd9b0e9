"""Child process of `test_webhook_worker_killed.py`: a webhook worker, to be SIGKILLed while an
attempt is in flight.

    python -m tests.integration.webhook_worker_child '<json>'

The JSON holds `settings` (keyword arguments of `Settings`) and `event_ids` (in order). The
process sets up its runtime and ORM as the worker's start-up does, fans the committed events
out (`fan_out_webhooks`), then makes the first attempt of each event's delivery in the given
order (`deliver_webhook`), one after the other, as one worker draining its queue would.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from app import db, runtime
from app.config import Settings
from app.webhooks.delivery import attempt, fan_out
from app.webhooks.models import WebhookDelivery


class UnusedQueue:
    """This process runs the attempts itself, in order: what `fan_out` and `attempt` queue is
    dropped (the rows stay the truth)."""

    async def enqueue(self, name: str, *args: Any, **_: Any) -> str | None:
        return None

    async def close(self) -> None:
        return None


async def main(config: dict[str, Any]) -> None:
    settings = Settings(**config["settings"])
    runtime.install(settings).jobs = UnusedQueue()
    await db.init_orm(settings.resolved_database_url)
    try:
        created = await fan_out()
        print(json.dumps({"fanned_out": created}), flush=True)
        for event_id in config["event_ids"]:
            delivery = await WebhookDelivery.get(event_id=event_id)
            status = await attempt(delivery.id)
            print(json.dumps({"delivery": delivery.id, "status": status}), flush=True)
    finally:
        await db.close_orm()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
