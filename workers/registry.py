"""Every job and periodic task, by name: the single list both backends run."""

from __future__ import annotations

from app.jobs import JobFunction
from workers import jobs

JOBS: dict[str, JobFunction] = {
    fn.__name__: fn for fn in (jobs.publish_events_sweep, jobs.purge_idempotency_records)
}

# (job name, every N seconds) — arq cron in distributed mode, a loop in embedded mode.
PERIODIC: list[tuple[str, int]] = [
    ("publish_events_sweep", 30),
    ("purge_idempotency_records", 3600),
]
