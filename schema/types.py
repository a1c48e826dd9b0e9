"""GraphQL object types. Every type and field carries a description: it is the API reference."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum

import strawberry
from strawberry.scalars import JSON


@strawberry.enum(description="Where a product stands in the merchant's stores.")
class ProductStatus(Enum):
    ACTIVE = strawberry.enum_value("active", description="Listed for sale.")
    DRAFT = strawberry.enum_value("draft", description="Kept but not listed.")
    ARCHIVED = strawberry.enum_value("archived", description="Withdrawn by the merchant.")
    SOLD = strawberry.enum_value("sold", description="The lot sold at the auction house.")


@strawberry.enum(description="Subscription plan of an account.")
class Plan(Enum):
    STARTER = strawberry.enum_value("starter", description="100 requests/minute, read-only keys.")
    PROFESSIONAL = strawberry.enum_value(
        "professional", description="500 requests/minute, read/write keys, sandbox."
    )
    ENTERPRISE = strawberry.enum_value(
        "enterprise", description="Custom limit, sandbox, OAuth apps."
    )


@strawberry.enum(description="`live` data or the `sandbox` (test keys).")
class Environment(Enum):
    LIVE = strawberry.enum_value("live", description="Production data.")
    SANDBOX = strawberry.enum_value(
        "sandbox", description="Test data, reached with `sa_test_` keys."
    )


@strawberry.enum(description="E-commerce platform of a store.")
class Platform(Enum):
    WOOCOMMERCE = strawberry.enum_value("woocommerce", description="WooCommerce REST API v3.")
    SHOPIFY = strawberry.enum_value("shopify", description="Shopify Admin GraphQL API.")


@strawberry.enum(description="What happens to a store listing when its lot sells.")
class SoldLotsBehavior(Enum):
    OUT_OF_STOCK = strawberry.enum_value("out_of_stock", description="Keep it, out of stock.")
    DELETE = strawberry.enum_value("delete", description="Delete the listing.")


@strawberry.enum(description="How a computed price is rounded.")
class Rounding(Enum):
    NONE = strawberry.enum_value("none", description="To the cent.")
    WHOLE = strawberry.enum_value("1.00", description="To whole dollars: 1250.00.")
    CHARM_99 = strawberry.enum_value("0.99", description="To a price ending in .99: 1249.99.")
    CHARM_95 = strawberry.enum_value("0.95", description="To a price ending in .95: 1249.95.")
    NEAREST_5 = strawberry.enum_value("5.00", description="To a multiple of five dollars.")


@strawberry.type(description="The caller's merchant account.")
class Account:
    id: strawberry.ID = strawberry.field(description="`acct_…` id.")
    name: str = strawberry.field(description="Merchant name.")
    plan: Plan = strawberry.field(description="Current plan.")
    rate_limit: int = strawberry.field(description="Requests per minute allowed to this account.")
    environment: Environment = strawberry.field(description="Environment of the calling key.")
    created_at: datetime = strawberry.field(description="When the account was created.")


@strawberry.type(description="An auction-house lot as the merchant sells it.")
class Product:
    id: strawberry.ID = strawberry.field(description="`prod_…` id.")
    title: str = strawberry.field(description='Listing title, e.g. "1921 Morgan Dollar MS65".')
    description: str = strawberry.field(description="Listing description (HTML allowed).")
    ha_lot: str = strawberry.field(description="Auction-house lot number.")
    sku: str = strawberry.field(description="`HA-<lot>`, the SKU used in every store.")
    price: Decimal = strawberry.field(description="Selling price.")
    cost: Decimal = strawberry.field(description="Cost at the auction house.")
    margin: Decimal = strawberry.field(description="price - cost.")
    currency: str = strawberry.field(description="ISO 4217 currency code.")
    price_locked: bool = strawberry.field(description="A manual price overrides the rules.")
    metal: str | None = strawberry.field(description="Silver, Gold, Platinum, …")
    grade: str | None = strawberry.field(description="Sheldon grade, e.g. MS65.")
    service: str | None = strawberry.field(description="Grading service: PCGS, NGC, …")
    year: int | None = strawberry.field(description="Year of issue.")
    mint: str | None = strawberry.field(description="Mint mark (S, D, O, CC, …).")
    denomination: str | None = strawberry.field(description="Face value, e.g. $1.")
    images: list[str] = strawberry.field(description="Image URLs, obverse first.")
    tags: list[str] = strawberry.field(description="Merchant tags.")
    status: ProductStatus = strawberry.field(description="Listing status.")
    created_at: datetime = strawberry.field(description="When the product was created.")
    updated_at: datetime = strawberry.field(description="Last change.")


@strawberry.type(description="Which products a store lists (empty lists = everything).")
class StoreFilters:
    metals: list[str] = strawberry.field(description="Only these metals.")
    services: list[str] = strawberry.field(description="Only these grading services.")
    min_cost: Decimal | None = strawberry.field(description="Only lots costing at least this.")
    max_cost: Decimal | None = strawberry.field(description="Only lots costing at most this.")


@strawberry.type(description="Sync settings of a store.")
class StoreSettings:
    sold_lots: SoldLotsBehavior = strawberry.field(
        description="Listing behaviour when a lot sells."
    )
    filters: StoreFilters = strawberry.field(description="Which products the store lists.")


@strawberry.type(description="A merchant's WooCommerce or Shopify store.")
class Store:
    id: strawberry.ID = strawberry.field(description="`store_…` id.")
    name: str = strawberry.field(description="Display name.")
    platform: Platform = strawberry.field(description="Store platform.")
    url: str = strawberry.field(description="Store base URL.")
    sync_enabled: bool = strawberry.field(description="Whether syncs push to this store.")
    simulated: bool = strawberry.field(
        description="Backed by the built-in simulator of its platform (demo, sandbox)."
    )
    credentials_set: bool = strawberry.field(
        description="Credentials are write-only; this tells whether they are set."
    )
    settings: StoreSettings = strawberry.field(description="Sync settings.")
    created_at: datetime = strawberry.field(description="When the store was connected.")
    updated_at: datetime = strawberry.field(description="Last change.")


@strawberry.type(
    description="A pricing rule: lots matching its conditions are priced cost plus its markup. "
    "The first active matching rule by priority prices a lot."
)
class PricingRule:
    id: strawberry.ID = strawberry.field(description="`rule_…` id.")
    name: str = strawberry.field(description="Display name.")
    active: bool = strawberry.field(description="Inactive rules are skipped.")
    is_default: bool = strawberry.field(
        description="The account default: prices lots no other rule matches."
    )
    priority: int = strawberry.field(description="Lower numbers are evaluated first (0–10000).")
    markup_percent: Decimal = strawberry.field(description="Percent of cost added.")
    markup_fixed: Decimal = strawberry.field(description="Amount added after the percent.")
    rounding: Rounding = strawberry.field(description="How the price is rounded.")
    min_margin: Decimal | None = strawberry.field(description="Absolute minimum margin.")
    min_margin_percent: Decimal | None = strawberry.field(
        description="Minimum margin in percent of cost."
    )
    metals: list[str] = strawberry.field(description="Only these metals (empty = any).")
    services: list[str] = strawberry.field(description="Only these grading services (empty = any).")
    min_grade: int | None = strawberry.field(description="Lowest Sheldon grade, 1–70.")
    max_grade: int | None = strawberry.field(description="Highest Sheldon grade, 1–70.")
    min_cost: Decimal | None = strawberry.field(description="Only lots costing at least this.")
    max_cost: Decimal | None = strawberry.field(description="Only lots costing at most this.")
    title_contains: str | None = strawberry.field(
        description="Only lots whose title contains this (any case)."
    )
    created_at: datetime = strawberry.field(description="When the rule was created.")
    updated_at: datetime = strawberry.field(description="Last change.")


@strawberry.type(description="A pricing rule that was deleted.")
class DeletedPricingRule:
    id: strawberry.ID = strawberry.field(description="The deleted rule's `rule_…` id.")
    deleted: bool = strawberry.field(description="Always true.")


@strawberry.type(description="A webhook endpoint that was deleted.")
class DeletedWebhookEndpoint:
    id: strawberry.ID = strawberry.field(description="The deleted endpoint's `whk_…` id.")
    deleted: bool = strawberry.field(description="Always true.")


@strawberry.type(description="Relay pagination state.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow `endCursor`.")
    has_previous_page: bool = strawberry.field(
        description="Items come before this page (it was asked for with `after`)."
    )
    start_cursor: str | None = strawberry.field(
        description="The first edge's cursor (null when the page is empty)."
    )
    end_cursor: str | None = strawberry.field(
        description="The last edge's cursor (null when the page is empty); pass it as `after` "
        "for the next page."
    )


@strawberry.type(description="A product in a connection.")
class ProductEdge:
    cursor: str = strawberry.field(description="Opaque cursor of this edge.")
    node: Product = strawberry.field(description="The product.")


@strawberry.type(description="A page of products, newest first.")
class ProductConnection:
    edges: list[ProductEdge] = strawberry.field(description="Products with their cursors.")
    nodes: list[Product] = strawberry.field(description="The products of this page.")
    page_info: PageInfo = strawberry.field(description="Pagination state.")


@strawberry.type(description="A store in a connection.")
class StoreEdge:
    cursor: str = strawberry.field(description="Opaque cursor of this edge.")
    node: Store = strawberry.field(description="The store.")


@strawberry.type(description="A page of stores, newest first.")
class StoreConnection:
    edges: list[StoreEdge] = strawberry.field(description="Stores with their cursors.")
    nodes: list[Store] = strawberry.field(description="The stores of this page.")
    page_info: PageInfo = strawberry.field(description="Pagination state.")


@strawberry.type(description="A pricing rule in a connection.")
class PricingRuleEdge:
    cursor: str = strawberry.field(description="Opaque cursor of this edge.")
    node: PricingRule = strawberry.field(description="The pricing rule.")


@strawberry.type(description="A page of pricing rules, newest first.")
class PricingRuleConnection:
    edges: list[PricingRuleEdge] = strawberry.field(description="Rules with their cursors.")
    nodes: list[PricingRule] = strawberry.field(description="The rules of this page.")
    page_info: PageInfo = strawberry.field(description="Pagination state.")


__all__ = ["JSON"]


@strawberry.enum(description="What a sync reads and re-sends.")
class SyncType(Enum):
    FULL = strawberry.enum_value(
        "full", description="Read every feed page and re-send every listing to every store."
    )
    DELTA = strawberry.enum_value(
        "delta", description="Skip unchanged feed pages and send stores only what changed."
    )


@strawberry.enum(description="Where a sync job stands.")
class SyncJobStatus(Enum):
    QUEUED = strawberry.enum_value("queued", description="Waiting for a worker.")
    RUNNING = strawberry.enum_value("running", description="Running now.")
    COMPLETED = strawberry.enum_value(
        "completed", description="Finished; per-store errors, if any, are in `stores`."
    )
    FAILED = strawberry.enum_value("failed", description="Stopped; see `error`.")


@strawberry.enum(description="Whether a sync is under way for the account.")
class SyncState(Enum):
    IDLE = strawberry.enum_value("idle", description="No sync queued or running.")
    QUEUED = strawberry.enum_value("queued", description="A sync waits for a worker.")
    RUNNING = strawberry.enum_value("running", description="A sync is running.")


@strawberry.type(description="What a sync changed (the `sync.completed` webhook's `stats`).")
class SyncStats:
    products_added: int = strawberry.field(description="New products (new lots).")
    products_updated: int = strawberry.field(description="Products whose lot or price changed.")
    products_removed: int = strawberry.field(description="Products whose lot sold or went away.")
    errors: int = strawberry.field(description="Store writes that failed, plus a failed run.")


@strawberry.type(description="How far a sync has read the auction-house feed.")
class SyncProgress:
    lots_processed: int = strawberry.field(description="Lots read so far.")
    lots_total: int | None = strawberry.field(description="Lots in the feed, once known.")
    fraction: float | None = strawberry.field(description="0–1, for a progress bar.")


@strawberry.type(description="What a sync sent one store.")
class SyncStoreResult:
    store_id: strawberry.ID = strawberry.field(description="`store_…` id.")
    pushed: int = strawberry.field(description="Listings written (created, updated, removed).")
    errors: int = strawberry.field(description="Listings the store refused.")
    error: str | None = strawberry.field(
        description="Why the store could not be synced at all (e.g. rejected credentials)."
    )
    error_samples: list[str] = strawberry.field(description="Up to five refused listings.")


@strawberry.type(description="An error that stopped a sync.")
class SyncError:
    code: str = strawberry.field(description="Machine-readable code.")
    message: str = strawberry.field(description="What went wrong.")


@strawberry.type(description="One sync run: progress while it runs, stats after.")
class SyncJob:
    id: strawberry.ID = strawberry.field(description="`sync_…` id.")
    type: SyncType = strawberry.field(description="Full or delta.")
    status: SyncJobStatus = strawberry.field(description="Queued, running, completed or failed.")
    trigger: str = strawberry.field(description="`api`, `schedule`, `cli` or `demo`.")
    phase: str = strawberry.field(
        description="`queued`, `fetching`, `repricing`, `pushing` or `done`."
    )
    progress: SyncProgress = strawberry.field(description="Feed reading progress.")
    stats: SyncStats = strawberry.field(description="Products added, updated, removed; errors.")
    store_ids: list[strawberry.ID] = strawberry.field(
        description="Stores asked for (empty = every store with sync enabled)."
    )
    stores: list[SyncStoreResult] = strawberry.field(description="Per-store results.")
    stores_updated: list[strawberry.ID] = strawberry.field(
        description="Stores that received at least one write."
    )
    error: SyncError | None = strawberry.field(description="Set when the job failed.")
    duration_seconds: float | None = strawberry.field(description="Run time so far or in total.")
    created_at: datetime = strawberry.field(description="When it was triggered.")
    started_at: datetime | None = strawberry.field(description="When it started running.")
    finished_at: datetime | None = strawberry.field(description="When it finished.")


@strawberry.type(description="A sync job in a connection.")
class SyncJobEdge:
    cursor: str = strawberry.field(description="Opaque cursor of this edge.")
    node: SyncJob = strawberry.field(description="The sync job.")


@strawberry.type(description="A page of sync jobs, newest first.")
class SyncJobConnection:
    edges: list[SyncJobEdge] = strawberry.field(description="Jobs with their cursors.")
    nodes: list[SyncJob] = strawberry.field(description="The jobs of this page.")
    page_info: PageInfo = strawberry.field(description="Pagination state.")


@strawberry.type(description="The account's sync: what runs now, what ran last, what runs next.")
class SyncStatus:
    state: SyncState = strawberry.field(description="Idle, queued or running.")
    current_job: SyncJob | None = strawberry.field(description="The queued or running job.")
    last_sync: SyncJob | None = strawberry.field(description="The last finished job.")
    next_sync_at: datetime | None = strawberry.field(description="When the schedule runs next.")
    next_sync_type: SyncType | None = strawberry.field(description="Which sync runs then.")
    delta_interval_minutes: int = strawberry.field(
        description="Scheduled delta every N minutes (0 = none)."
    )
    full_sync_hour_utc: int | None = strawberry.field(
        description="Hour (UTC) of the nightly full sync (null = none)."
    )


@strawberry.type(description="A price the previewed rule would change.")
class PriceChange:
    product_id: strawberry.ID = strawberry.field(description="`prod_…` id.")
    sku: str = strawberry.field(description="`HA-<lot>`.")
    title: str = strawberry.field(description="Product title.")
    cost: Decimal = strawberry.field(description="Auction-house cost.")
    price_before: Decimal = strawberry.field(description="Price today.")
    price_after: Decimal = strawberry.field(description="Price with the rule.")
    margin_before: Decimal = strawberry.field(description="Margin today.")
    margin_after: Decimal = strawberry.field(description="Margin with the rule.")


@strawberry.type(description="What saving a pricing rule would change on the next sync.")
class PricingRulePreview:
    products_considered: int = strawberry.field(
        description="Products the rules price (not sold, no manual price)."
    )
    products_changed: int = strawberry.field(description="Of those, how many change price.")
    samples: list[PriceChange] = strawberry.field(
        description="Up to 10 changes, the largest first."
    )


@strawberry.enum(description="A documented event type (`event` carries its dotted name).")
class EventType(Enum):
    SYNC_STARTED = strawberry.enum_value("sync.started", description="A sync job has started.")
    SYNC_COMPLETED = strawberry.enum_value(
        "sync.completed", description="A sync job has completed."
    )
    SYNC_FAILED = strawberry.enum_value("sync.failed", description="A sync job has failed.")
    PRODUCT_CREATED = strawberry.enum_value(
        "product.created", description="A new product was synced."
    )
    PRODUCT_UPDATED = strawberry.enum_value("product.updated", description="A product was updated.")
    PRODUCT_DELETED = strawberry.enum_value("product.deleted", description="A product was removed.")
    ORDER_RECEIVED = strawberry.enum_value(
        "order.received", description="A new order was received."
    )
    ORDER_FORWARDED = strawberry.enum_value(
        "order.forwarded", description="An order was forwarded to the auction house."
    )
    ORDER_FAILED = strawberry.enum_value(
        "order.failed", description="An order could not be forwarded."
    )
    WEBHOOK_ENDPOINT_DISABLED = strawberry.enum_value(
        "webhook_endpoint.disabled",
        description="A webhook endpoint was turned off (410, or every retry failed).",
    )


@strawberry.type(description="An event, as its webhook delivers it (`data` is the payload's).")
class Event:
    id: strawberry.ID = strawberry.field(description="`evt_…` id (the webhook-id too).")
    event: str = strawberry.field(description="Dotted type, e.g. `sync.completed`.")
    timestamp: str = strawberry.field(description="ISO 8601 UTC, e.g. `2024-01-15T10:30:00Z`.")
    data: JSON = strawberry.field(description="The payload's `data`, as documented per type.")


@strawberry.type(description="A sync's progress, for live progress bars.")
class SyncProgressUpdate:
    sync_id: strawberry.ID = strawberry.field(description="`sync_…` id.")
    status: SyncJobStatus = strawberry.field(description="Queued, running, completed, failed.")
    phase: str = strawberry.field(description="`fetching`, `repricing`, `pushing`, `done`…")
    progress: SyncProgress = strawberry.field(description="Feed reading progress.")
    stats: SyncStats = strawberry.field(description="Counts so far.")


@strawberry.type(description="A URL that receives signed events (Standard Webhooks).")
class WebhookEndpoint:
    id: strawberry.ID = strawberry.field(description="`whk_…` id.")
    url: str = strawberry.field(description="Where events are POSTed.")
    description: str = strawberry.field(description="Free text.")
    event_types: list[EventType] = strawberry.field(description="The event types sent to it.")
    active: bool = strawberry.field(description="Inactive endpoints receive nothing.")
    disabled_reason: str | None = strawberry.field(
        description="Why SyncAuction turned it off (410 Gone, retries exhausted), if it did."
    )
    created_at: datetime = strawberry.field(description="When it was created.")
    updated_at: datetime = strawberry.field(description="Last change.")


@strawberry.type(description="An endpoint with its signing secret, shown this once.")
class WebhookEndpointWithSecret:
    endpoint: WebhookEndpoint = strawberry.field(description="The endpoint.")
    secret: str = strawberry.field(description="`whsec_…`: keep it; it is not shown again.")


@strawberry.type(description="A webhook endpoint in a connection.")
class WebhookEndpointEdge:
    cursor: str = strawberry.field(description="Opaque cursor of this edge.")
    node: WebhookEndpoint = strawberry.field(description="The endpoint.")


@strawberry.type(description="A page of webhook endpoints, newest first.")
class WebhookEndpointConnection:
    edges: list[WebhookEndpointEdge] = strawberry.field(description="Endpoints with cursors.")
    nodes: list[WebhookEndpoint] = strawberry.field(description="The endpoints of this page.")
    page_info: PageInfo = strawberry.field(description="Pagination state.")


@strawberry.type(description="One HTTP attempt of a delivery.")
class WebhookAttempt:
    number: int = strawberry.field(description="1 for the first attempt.")
    status_code: int | None = strawberry.field(description="The receiver's status, if any.")
    error: str | None = strawberry.field(description="Timeout, refused connection, redirect…")
    duration_ms: int = strawberry.field(description="How long the attempt took.")
    response_excerpt: str = strawberry.field(description="The first KiB of the answer.")
    created_at: datetime = strawberry.field(description="When it was made.")


@strawberry.enum(description="Where a delivery stands.")
class WebhookDeliveryStatus(Enum):
    PENDING = strawberry.enum_value("pending", description="Waiting for its next attempt.")
    DELIVERED = strawberry.enum_value("delivered", description="The receiver answered 2xx.")
    FAILED = strawberry.enum_value("failed", description="Given up (410 or retries exhausted).")


@strawberry.type(description="One event for one endpoint, with its attempts.")
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(description="`whd_…` id.")
    endpoint_id: strawberry.ID = strawberry.field(description="`whk_…` id.")
    event_id: strawberry.ID = strawberry.field(description="`evt_…`: the webhook-id header.")
    event_type: str = strawberry.field(description="Dotted event type.")
    status: WebhookDeliveryStatus = strawberry.field(description="Pending, delivered, failed.")
    attempts: list[WebhookAttempt] = strawberry.field(description="Every attempt, in order.")
    next_attempt_at: datetime | None = strawberry.field(description="When it is tried next.")
    delivered_at: datetime | None = strawberry.field(description="When the receiver took it.")
    created_at: datetime = strawberry.field(description="When the event was fanned out.")


@strawberry.type(description="A webhook delivery in a connection.")
class WebhookDeliveryEdge:
    cursor: str = strawberry.field(description="Opaque cursor of this edge.")
    node: WebhookDelivery = strawberry.field(description="The delivery.")


@strawberry.type(description="A page of deliveries, newest first.")
class WebhookDeliveryConnection:
    edges: list[WebhookDeliveryEdge] = strawberry.field(description="Deliveries with cursors.")
    nodes: list[WebhookDelivery] = strawberry.field(description="The deliveries of this page.")
    page_info: PageInfo = strawberry.field(description="Pagination state.")


@strawberry.type(description="What an endpoint answered to a test event.")
class WebhookTestResult:
    webhook_id: str = strawberry.field(description="The webhook-id of the test message.")
    ok: bool = strawberry.field(description="The receiver answered 2xx.")
    status_code: int | None = strawberry.field(description="Its status, if it answered.")
    duration_ms: int = strawberry.field(description="How long it took.")
    response_excerpt: str = strawberry.field(description="The first KiB of the answer.")
    error: str | None = strawberry.field(description="Timeout, refused connection, redirect…")
