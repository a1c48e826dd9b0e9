"""Response shapes of `/v1`, for the OpenAPI document (and checked against real responses in
the tests, so the document cannot drift from what the serializers send)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProductObject(_Strict):
    id: str = Field(examples=["prod_01hx3y8k2q9m4c7d0b5e6f7g8h"])
    object: Literal["product"]
    title: str = Field(examples=["1921 Morgan Dollar MS65"])
    price: float = Field(description="Selling price in `currency`.", examples=[430.5])
    ha_lot: str = Field(description="Auction-house lot number.", examples=["123456"])
    sku: str = Field(examples=["HA-123456"])
    description: str
    cost: float = Field(description="What the lot costs at the auction house.")
    margin: float = Field(description="price - cost")
    currency: str = Field(examples=["USD"])
    price_locked: bool = Field(description="True when a manual price overrides the pricing rules.")
    metal: str | None = Field(examples=["Silver"])
    grade: str | None = Field(examples=["MS65"])
    service: str | None = Field(examples=["PCGS"])
    year: int | None
    mint: str | None
    denomination: str | None
    images: list[str]
    tags: list[str]
    status: Literal["active", "draft", "archived", "sold"]
    livemode: bool
    created_at: str
    updated_at: str


class StoreObject(_Strict):
    id: str = Field(examples=["store_01hx3y8k2q9m4c7d0b5e6f7g8h"])
    object: Literal["store"]
    name: str
    platform: Literal["woocommerce", "shopify"]
    url: str
    sync_enabled: bool
    simulated: bool = Field(description="Backed by the built-in simulator of its platform.")
    credentials_set: bool = Field(description="Credentials are write-only; this says they exist.")
    settings: dict
    livemode: bool
    created_at: str
    updated_at: str


class PricingRuleObject(_Strict):
    id: str = Field(examples=["rule_01hx3y8k2q9m4c7d0b5e6f7g8h"])
    object: Literal["pricing_rule"]
    name: str = Field(examples=["Silver dollars +15 %"])
    active: bool
    is_default: bool = Field(description="The account default (prices unmatched lots).")
    priority: int = Field(description="Lower numbers are evaluated first (0–10000).")
    markup_percent: float = Field(description="Percent of cost added.", examples=[15.0])
    markup_fixed: float = Field(description="Amount added after the percent.", examples=[0.0])
    rounding: Literal["none", "1.00", "0.99", "0.95", "5.00"]
    min_margin: float | None = Field(description="Absolute minimum margin.")
    min_margin_percent: float | None = Field(description="Minimum margin in percent of cost.")
    metals: list[str] = Field(description="Only these metals (empty = any).")
    services: list[str] = Field(description="Only these grading services (empty = any).")
    min_grade: int | None = Field(description="Lowest Sheldon grade, 1–70.")
    max_grade: int | None = Field(description="Highest Sheldon grade, 1–70.")
    min_cost: float | None = Field(description="Only lots costing at least this.")
    max_cost: float | None = Field(description="Only lots costing at most this.")
    title_contains: str | None = Field(description="Only lots whose title contains this.")
    livemode: bool
    created_at: str
    updated_at: str


class DeletedObject(_Strict):
    id: str = Field(examples=["rule_01hx3y8k2q9m4c7d0b5e6f7g8h"])
    object: str = Field(examples=["pricing_rule"])
    deleted: Literal[True]


class SyncStats(_Strict):
    products_added: int
    products_updated: int
    products_removed: int
    errors: int


class SyncProgress(_Strict):
    lots_processed: int
    lots_total: int | None
    fraction: float | None = Field(description="0–1 of the feed read.")


class SyncStoreResult(_Strict):
    pushed: int = Field(description="Listings written (created, updated, removed).")
    errors: int = Field(description="Listings the store refused.")
    error: str | None = Field(description="Why the store could not be synced at all.")
    error_samples: list[str] = Field(description="Up to five refused listings.")


class SyncErrorObject(_Strict):
    code: str
    message: str | None


class SyncJobObject(_Strict):
    id: str = Field(examples=["sync_01hx3y8k2q9m4c7d0b5e6f7g8h"])
    object: Literal["sync_job"]
    type: Literal["full", "delta"]
    status: Literal["queued", "running", "completed", "failed"]
    trigger: Literal["api", "schedule", "cli", "demo"]
    phase: str = Field(description="queued, starting, fetching, repricing, pushing or done.")
    progress: SyncProgress
    stats: SyncStats
    store_ids: list[str] = Field(description="Stores asked for (empty = every enabled store).")
    stores: dict[str, SyncStoreResult] = Field(description="Per-store results by store id.")
    stores_updated: list[str] = Field(description="Stores that received at least one write.")
    error: SyncErrorObject | None = Field(description="Why a failed job stopped.")
    duration_seconds: float | None
    created_at: str
    started_at: str | None
    finished_at: str | None


class NextSync(_Strict):
    at: str | None
    type: Literal["full", "delta"] | None


class SyncSchedule(_Strict):
    delta_interval_minutes: int = Field(description="A delta every N minutes (0 = none).")
    full_sync_hour_utc: int | None = Field(description="Hour of the nightly full (null = none).")


class SyncStatusObject(_Strict):
    object: Literal["sync_status"]
    state: Literal["idle", "queued", "running"]
    current_job: SyncJobObject | None
    last_sync: SyncJobObject | None
    next_sync: NextSync | None
    schedule: SyncSchedule


class WebhookEndpointObject(_Strict):
    id: str = Field(examples=["whk_01hx3y8k2q9m4c7d0b5e6f7g8h"])
    object: Literal["webhook_endpoint"]
    url: str
    description: str
    event_types: list[str] = Field(examples=[["sync.completed", "order.received"]])
    active: bool
    disabled_reason: str | None = Field(description="Why SyncAuction turned it off, if it did.")
    livemode: bool
    created_at: str
    updated_at: str
    secret: str | None = Field(
        default=None,
        description="`whsec_…` signing secret: only in the creation response, shown once.",
    )


class WebhookTestResult(_Strict):
    object: Literal["webhook_test"]
    endpoint_id: str
    webhook_id: str = Field(description="The `webhook-id` header of the test message.")
    ok: bool = Field(description="The receiver answered 2xx.")
    status_code: int | None
    duration_ms: int
    response_excerpt: str = Field(description="The first KiB of the answer.")
    error: str | None = Field(description="Timeout, refused connection, redirect…")


class ErrorBody(_Strict):
    type: Literal[
        "invalid_request",
        "authentication",
        "permission",
        "not_found",
        "conflict",
        "rate_limited",
        "server",
    ]
    code: str
    message: str
    param: str | None
    sync_job: dict | None = Field(
        default=None, description="With 409 `sync_in_progress`: the queued or running job."
    )


class ErrorResponse(_Strict):
    error: ErrorBody
