"""GraphQL input types."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from schema.types import (
    EventType,
    Platform,
    ProductStatus,
    Rounding,
    SoldLotsBehavior,
    SyncType,
)


@strawberry.input(description="Product list filters; all optional, combined with AND.")
class ProductFilter:
    status: ProductStatus | None = strawberry.field(default=None, description="Only this status.")
    metal: str | None = strawberry.field(default=None, description="Only this metal.")
    service: str | None = strawberry.field(default=None, description="Only this grading service.")
    grade: str | None = strawberry.field(default=None, description="Only this grade.")
    ha_lot: str | None = strawberry.field(default=None, description="Only this lot.")
    search: str | None = strawberry.field(default=None, description="Title contains (any case).")


@strawberry.input(description="Changes to a product; omitted fields stay as they are.")
class ProductUpdateInput:
    title: str | None = strawberry.field(default=strawberry.UNSET, description="New title.")
    description: str | None = strawberry.field(
        default=strawberry.UNSET, description="New description."
    )
    price: Decimal | None = strawberry.field(
        default=strawberry.UNSET,
        description="Manual price: locks the price against syncs. `null` releases the lock.",
    )
    status: ProductStatus | None = strawberry.field(
        default=strawberry.UNSET, description="New status."
    )
    tags: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="Replaces the tags."
    )


@strawberry.input(
    description="Platform credentials (write-only). WooCommerce: consumer key and "
    "secret. Shopify: an Admin API access token."
)
class StoreCredentialsInput:
    consumer_key: str | None = strawberry.field(
        default=strawberry.UNSET, description="WooCommerce `ck_…`."
    )
    consumer_secret: str | None = strawberry.field(
        default=strawberry.UNSET, description="WooCommerce `cs_…`."
    )
    access_token: str | None = strawberry.field(
        default=strawberry.UNSET, description="Shopify `shpat_…`."
    )


@strawberry.input(description="Which products a store lists.")
class StoreFiltersInput:
    metals: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="Only these metals."
    )
    services: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="Only these services."
    )
    min_cost: Decimal | None = strawberry.field(
        default=strawberry.UNSET, description="Minimum lot cost."
    )
    max_cost: Decimal | None = strawberry.field(
        default=strawberry.UNSET, description="Maximum lot cost."
    )


@strawberry.input(description="Sync settings of a store.")
class StoreSettingsInput:
    sold_lots: SoldLotsBehavior | None = strawberry.field(
        default=strawberry.UNSET, description="Listing behaviour when a lot sells."
    )
    filters: StoreFiltersInput | None = strawberry.field(
        default=strawberry.UNSET, description="Filters."
    )


@strawberry.input(description="A store to connect.")
class StoreCreateInput:
    name: str = strawberry.field(description="Display name.")
    platform: Platform = strawberry.field(description="Store platform.")
    url: str = strawberry.field(description="Store base URL (http or https).")
    credentials: StoreCredentialsInput | None = strawberry.field(
        default=strawberry.UNSET,
        description="Platform credentials; a simulated store needs none.",
    )
    sync_enabled: bool = strawberry.field(default=True, description="Push syncs to this store.")
    settings: StoreSettingsInput | None = strawberry.field(
        default=strawberry.UNSET, description="Settings."
    )
    simulated: bool = strawberry.field(
        default=False,
        description="Use the built-in simulator of the platform instead of a real shop "
        "(sandbox; live only in development).",
    )


@strawberry.input(description="Changes to a store; omitted fields stay as they are.")
class StoreUpdateInput:
    name: str | None = strawberry.field(default=strawberry.UNSET, description="New name.")
    url: str | None = strawberry.field(default=strawberry.UNSET, description="New base URL.")
    credentials: StoreCredentialsInput | None = strawberry.field(
        default=strawberry.UNSET, description="Replaces the stored credentials."
    )
    sync_enabled: bool | None = strawberry.field(
        default=strawberry.UNSET, description="Sync switch."
    )
    settings: StoreSettingsInput | None = strawberry.field(
        default=strawberry.UNSET, description="Settings."
    )


@strawberry.input(description="A new pricing rule. Conditions left out match every lot.")
class PricingRuleCreateInput:
    name: str = strawberry.field(description="Display name, 1–200 characters.")
    active: bool = strawberry.field(default=True, description="Inactive rules are skipped.")
    is_default: bool = strawberry.field(
        default=False,
        description="The account default: prices lots no other rule matches (no conditions).",
    )
    priority: int = strawberry.field(
        default=100, description="Lower numbers are evaluated first (0–10000)."
    )
    markup_percent: Decimal = strawberry.field(
        default=Decimal(0), description="Percent of cost added (-100 to 10000)."
    )
    markup_fixed: Decimal = strawberry.field(
        default=Decimal(0), description="Amount added after the percent."
    )
    rounding: Rounding = strawberry.field(
        default=Rounding.NONE, description="How the price is rounded."
    )
    min_margin: Decimal | None = strawberry.field(
        default=None, description="Absolute minimum margin."
    )
    min_margin_percent: Decimal | None = strawberry.field(
        default=None, description="Minimum margin in percent of cost."
    )
    metals: list[str] = strawberry.field(
        default_factory=list, description="Only these metals (empty = any)."
    )
    services: list[str] = strawberry.field(
        default_factory=list, description="Only these grading services (empty = any)."
    )
    min_grade: int | None = strawberry.field(default=None, description="Lowest grade, 1–70.")
    max_grade: int | None = strawberry.field(default=None, description="Highest grade, 1–70.")
    min_cost: Decimal | None = strawberry.field(default=None, description="Minimum lot cost.")
    max_cost: Decimal | None = strawberry.field(default=None, description="Maximum lot cost.")
    title_contains: str | None = strawberry.field(
        default=None, description="Only lots whose title contains this."
    )
    allow_below_cost: bool = strawberry.field(
        default=False,
        description="Accept a negative markup that may price lots below cost.",
    )


@strawberry.input(
    description="Changes to a pricing rule; omitted fields stay as they are, `null` clears a "
    "condition. The resulting rule is validated as a whole."
)
class PricingRuleUpdateInput:
    name: str | None = strawberry.field(default=strawberry.UNSET, description="New name.")
    active: bool | None = strawberry.field(default=strawberry.UNSET, description="Switch.")
    is_default: bool | None = strawberry.field(
        default=strawberry.UNSET, description="Make it (or stop it being) the account default."
    )
    priority: int | None = strawberry.field(default=strawberry.UNSET, description="New priority.")
    markup_percent: Decimal | None = strawberry.field(
        default=strawberry.UNSET, description="New percent markup."
    )
    markup_fixed: Decimal | None = strawberry.field(
        default=strawberry.UNSET, description="New fixed markup."
    )
    rounding: Rounding | None = strawberry.field(
        default=strawberry.UNSET, description="New rounding."
    )
    min_margin: Decimal | None = strawberry.field(
        default=strawberry.UNSET, description="Absolute minimum margin; `null` clears it."
    )
    min_margin_percent: Decimal | None = strawberry.field(
        default=strawberry.UNSET, description="Minimum margin percent; `null` clears it."
    )
    metals: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="Replaces the metals."
    )
    services: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="Replaces the services."
    )
    min_grade: int | None = strawberry.field(
        default=strawberry.UNSET, description="Lowest grade; `null` clears it."
    )
    max_grade: int | None = strawberry.field(
        default=strawberry.UNSET, description="Highest grade; `null` clears it."
    )
    min_cost: Decimal | None = strawberry.field(
        default=strawberry.UNSET, description="Minimum lot cost; `null` clears it."
    )
    max_cost: Decimal | None = strawberry.field(
        default=strawberry.UNSET, description="Maximum lot cost; `null` clears it."
    )
    title_contains: str | None = strawberry.field(
        default=strawberry.UNSET, description="Title text; `null` clears it."
    )
    allow_below_cost: bool | None = strawberry.field(
        default=strawberry.UNSET,
        description="Accept a negative markup that may price lots below cost.",
    )


@strawberry.input(description="Which sync to start.")
class SyncTriggerInput:
    type: SyncType = strawberry.field(
        default=SyncType.DELTA, description="`DELTA` (default) or `FULL`."
    )
    store_ids: list[strawberry.ID] = strawberry.field(
        default_factory=list, description="Stores to push to; empty = every enabled store."
    )


@strawberry.input(description="When the schedule syncs; omitted fields stay as they are.")
class SyncScheduleInput:
    delta_interval_minutes: int | None = strawberry.field(
        default=strawberry.UNSET, description="A delta every N minutes (5–1440; 0 = none)."
    )
    full_sync_hour_utc: int | None = strawberry.field(
        default=strawberry.UNSET, description="Hour (UTC, 0–23) of the nightly full sync."
    )
    nightly_full: bool | None = strawberry.field(
        default=strawberry.UNSET, description="`false` turns the nightly full sync off."
    )


@strawberry.input(description="A new webhook endpoint.")
class WebhookEndpointCreateInput:
    url: str = strawberry.field(description="http(s) URL (https and public in production).")
    event_types: list[EventType] = strawberry.field(description="At least one event type.")
    description: str = strawberry.field(default="", description="Free text.")
    active: bool = strawberry.field(default=True, description="Receive events now.")


@strawberry.input(description="Changes to an endpoint; omitted fields stay as they are.")
class WebhookEndpointUpdateInput:
    url: str | None = strawberry.field(default=strawberry.UNSET, description="New URL.")
    event_types: list[EventType] | None = strawberry.field(
        default=strawberry.UNSET, description="New event types."
    )
    description: str | None = strawberry.field(
        default=strawberry.UNSET, description="New description."
    )
    active: bool | None = strawberry.field(
        default=strawberry.UNSET, description="On or off (on clears `disabledReason`)."
    )
