"""Every job and periodic task, by name: the single list both backends run."""

from __future__ import annotations

from app.jobs import JobFunction
from workers import jobs

JOBS: dict[str, JobFunction] = {
    fn.__name__: fn
    for fn in (
        jobs.publish_events_sweep,
        jobs.purge_idempotency_records,
        jobs.purge_old_events,
        jobs.run_sync,
        jobs.schedule_syncs,
        jobs.resume_stalled_syncs,
        jobs.fan_out_webhooks,
        jobs.deliver_webhook,
        jobs.requeue_due_webhooks,
    )
}

# (job name, every N seconds) — arq cron in distributed mode, a loop in embedded mode.
PERIODIC: list[tuple[str, int]] = [
    ("publish_events_sweep", 30),
    ("purge_idempotency_records", 3600),
    ("purge_old_events", 3600),
    ("schedule_syncs", 60),
    ("resume_stalled_syncs", 60),
    ("fan_out_webhooks", 5),
    ("requeue_due_webhooks", 30),
]

# Seconds a job may run under arq (default 600). A sync of a large catalog takes a while; a
# sync that outlives its timeout is resumed by `resume_stalled_syncs`.
JOB_TIMEOUTS: dict[str, int] = {"run_sync": 4 * 3600}

# Seconds arq keeps a job's result (default 3600), which also blocks its job id from being
# queued again. The fan-out and each delivery attempt are queued many times a second under
# id schemes that only need to hold while queued, so they keep nothing (Redis would otherwise
# hold a result per attempt for an hour).
JOB_KEEP_RESULT: dict[str, int] = {"fan_out_webhooks": 0, "deliver_webhook": 0}
