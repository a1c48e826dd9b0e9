from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from app.accounts.models import Environment


class SyncType(StrEnum):
    FULL = "full"
    DELTA = "delta"


class SyncStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class SyncTrigger(StrEnum):
    API = "api"
    SCHEDULE = "schedule"
    CLI = "cli"
    DEMO = "demo"


class SyncJob(Model):
    """One sync run of an account and environment: its progress, stats and outcome.

    `slot` holds the tenant key while the job is queued or running and is NULL after, so a
    unique index admits one unfinished sync per account and environment on every database."""

    id = fields.CharField(primary_key=True, max_length=40)
    account = fields.ForeignKeyField(
        "models.Account", related_name="sync_jobs", on_delete=fields.CASCADE
    )
    environment = fields.CharEnumField(Environment, max_length=10)
    type = fields.CharEnumField(SyncType, max_length=10)
    status = fields.CharEnumField(SyncStatus, max_length=10, default=SyncStatus.QUEUED)
    trigger = fields.CharEnumField(SyncTrigger, max_length=10, default=SyncTrigger.API)
    slot = fields.CharField(max_length=60, null=True, unique=True)
    store_ids = fields.JSONField(default=list)
    phase = fields.CharField(max_length=20, default="queued")
    lots_total = fields.IntField(null=True)
    lots_processed = fields.IntField(default=0)
    products_added = fields.IntField(default=0)
    products_updated = fields.IntField(default=0)
    products_removed = fields.IntField(default=0)
    errors = fields.IntField(default=0)
    stores = fields.JSONField(default=dict)
    stores_updated = fields.JSONField(default=list)
    error_code = fields.CharField(max_length=60, null=True)
    error_message = fields.TextField(null=True)
    attempts = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)
    heartbeat_at = fields.DatetimeField(null=True)

    class Meta:
        table = "sync_jobs"
        indexes = (("account_id", "environment", "id"), ("status", "heartbeat_at"))


class SyncState(Model):
    """What the last successful sync of an account and environment remembers: the feed pages
    it read (ETag and lot range of each, so unchanged pages are skipped) and the pricing rules
    it priced with (a change reprices every product on the next sync)."""

    id = fields.CharField(primary_key=True, max_length=60)  # "<account>:<environment>"
    account = fields.ForeignKeyField(
        "models.Account", related_name="sync_states", on_delete=fields.CASCADE
    )
    environment = fields.CharEnumField(Environment, max_length=10)
    pages = fields.JSONField(default=list)
    # The catalog generation the products reflect: a delta asks the feed for the changes
    # since it (null: read the whole feed).
    feed_generation = fields.IntField(null=True)
    # Schedule: a delta every N minutes (0 = none) and a full sync daily at this UTC hour
    # (null = none).
    delta_interval_minutes = fields.IntField(default=15)
    full_sync_hour = fields.IntField(null=True, default=3)
    rules_fingerprint = fields.CharField(max_length=64, default="")
    last_full_at = fields.DatetimeField(null=True)
    last_delta_at = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "sync_states"


class ListingStatus(StrEnum):
    LISTED = "listed"
    OUT_OF_STOCK = "out_of_stock"
    DELETED = "deleted"
    ERROR = "error"


class Listing(Model):
    """A product as one store holds it: the id the store gave it and the hash of what was last
    pushed, so a sync sends a store only what differs."""

    id = fields.BigIntField(primary_key=True)
    account = fields.ForeignKeyField(
        "models.Account", related_name="listings", on_delete=fields.CASCADE
    )
    environment = fields.CharEnumField(Environment, max_length=10)
    store = fields.ForeignKeyField(
        "models.Store", related_name="listings", on_delete=fields.CASCADE
    )
    product = fields.ForeignKeyField(
        "models.Product", related_name="listings", on_delete=fields.CASCADE
    )
    external_id = fields.CharField(max_length=100, null=True)
    status = fields.CharEnumField(ListingStatus, max_length=15, default=ListingStatus.LISTED)
    pushed_hash = fields.CharField(max_length=64, default="")
    error_code = fields.CharField(max_length=60, null=True)
    error_message = fields.TextField(null=True)
    pushed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "listings"
        unique_together = (("store_id", "product_id"),)
