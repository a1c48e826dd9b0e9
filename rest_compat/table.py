"""The `/v1` route table: one row per documented route. A row says which service it calls, with
which validated inputs, under which scope, and how the result is serialized; `handler.py` turns
each row into an endpoint and `openapi.py` into the OpenAPI document."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from app.pagination import PageParams
from app.pricing import service as pricing
from app.products import service as products
from app.stores import service as stores
from app.sync import service as sync
from app.webhooks import service as webhooks
from rest_compat.serializers import (
    deleted_json,
    pricing_rule_json,
    product_json,
    store_json,
    sync_job_json,
    sync_status_json,
    webhook_endpoint_json,
    webhook_test_json,
)


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # Starlette syntax; path parameters are passed to the service positionally
    scope: str
    call: Callable[..., Awaitable[Any]]
    output: Callable[[Any], dict[str, Any]]
    summary: str
    tag: str
    query: dict[str, type[BaseModel]] = field(default_factory=dict)  # kwarg -> query model
    body: tuple[str, type[BaseModel]] | None = None  # (kwarg, body model)
    status_code: int = 200
    description: str = ""
    body_optional: bool = False  # an empty body means the model's defaults

    @property
    def operation_id(self) -> str:
        return self.call.__name__


ROUTES: list[Route] = [
    Route(
        "GET",
        "/v1/products",
        scope="products:read",
        call=products.list_products,
        query={"page": PageParams, "filters": products.ProductFilters},
        output=product_json,
        summary="List products",
        tag="Products",
        description=(
            "Products synced from the auction house, newest first, one cursor page at a time."
        ),
    ),
    Route(
        "GET",
        "/v1/products/{id}",
        scope="products:read",
        call=products.get_product,
        output=product_json,
        summary="Retrieve a product",
        tag="Products",
    ),
    Route(
        "PUT",
        "/v1/products/{id}",
        scope="products:write",
        call=products.update_product,
        body=("changes", products.ProductChanges),
        output=product_json,
        summary="Update a product",
        tag="Products",
        description=(
            "Change title, description, status or tags. A `price` locks the price: syncs keep it "
            'until it is released with `"price": null`.'
        ),
    ),
    Route(
        "GET",
        "/v1/stores",
        scope="stores:read",
        call=stores.list_stores,
        query={"page": PageParams},
        output=store_json,
        summary="List stores",
        tag="Stores",
    ),
    Route(
        "GET",
        "/v1/stores/{id}",
        scope="stores:read",
        call=stores.get_store,
        output=store_json,
        summary="Retrieve a store",
        tag="Stores",
    ),
    Route(
        "PUT",
        "/v1/stores/{id}",
        scope="stores:write",
        call=stores.update_store,
        body=("changes", stores.StoreChanges),
        output=store_json,
        summary="Update a store",
        tag="Stores",
        description=(
            "Rename, re-point, replace credentials (write-only), toggle sync or change settings."
        ),
    ),
    Route(
        "GET",
        "/v1/pricing-rules",
        scope="pricing:read",
        call=pricing.list_pricing_rules,
        query={"page": PageParams},
        output=pricing_rule_json,
        summary="List pricing rules",
        tag="Pricing rules",
        description="Pricing rules, newest first. Syncs evaluate them by `priority`.",
    ),
    Route(
        "POST",
        "/v1/pricing-rules",
        scope="pricing:write",
        call=pricing.create_pricing_rule,
        body=("data", pricing.PricingRuleInput),
        output=pricing_rule_json,
        summary="Create a pricing rule",
        tag="Pricing rules",
        status_code=201,
        description=(
            "A markup (percent and/or fixed) is required. A negative markup without a minimum "
            "margin would price lots below cost: it is refused unless `allow_below_cost` is true."
        ),
    ),
    Route(
        "PUT",
        "/v1/pricing-rules/{id}",
        scope="pricing:write",
        call=pricing.update_pricing_rule,
        body=("changes", pricing.PricingRuleChanges),
        output=pricing_rule_json,
        summary="Update a pricing rule",
        tag="Pricing rules",
        description=(
            "Send only what changes; conditions are cleared with `null`. The resulting rule is "
            "validated as a whole."
        ),
    ),
    Route(
        "DELETE",
        "/v1/pricing-rules/{id}",
        scope="pricing:write",
        call=pricing.delete_pricing_rule,
        output=deleted_json,
        summary="Delete a pricing rule",
        tag="Pricing rules",
        description='Answers `{"id": …, "object": "pricing_rule", "deleted": true}`.',
    ),
    Route(
        "GET",
        "/v1/sync/status",
        scope="sync:read",
        call=sync.sync_overview,
        output=sync_status_json,
        summary="Sync status",
        tag="Sync",
        description=(
            "`state` is `idle`, `queued` or `running`; `current_job` carries the running job's "
            "progress; `last_sync` the last finished one; `next_sync` when the schedule (a delta "
            "every 15 minutes and a nightly full by default) runs next."
        ),
    ),
    Route(
        "POST",
        "/v1/sync/trigger",
        scope="sync:write",
        call=sync.trigger_sync,
        body=("data", sync.SyncTriggerInput),
        body_optional=True,
        output=sync_job_json,
        summary="Trigger a sync",
        tag="Sync",
        status_code=202,
        description=(
            '`{"type": "delta"|"full", "store_ids": [...]}` (both optional; an empty body is a '
            "delta to every store). Answers 202 with the queued job; 409 `sync_in_progress` "
            "with `sync_job` while another sync is queued or running."
        ),
    ),
    Route(
        "GET",
        "/v1/sync/history",
        scope="sync:read",
        call=sync.list_jobs,
        query={"page": PageParams},
        output=sync_job_json,
        summary="Sync history",
        tag="Sync",
        description="Sync jobs, newest first, with their stats, per-store results and errors.",
    ),
    Route(
        "GET",
        "/v1/webhooks",
        scope="webhooks:read",
        call=webhooks.list_endpoints,
        query={"page": PageParams},
        output=webhook_endpoint_json,
        summary="List webhook endpoints",
        tag="Webhooks",
        description="Webhook endpoints, newest first. Secrets are never listed.",
    ),
    Route(
        "POST",
        "/v1/webhooks",
        scope="webhooks:write",
        call=webhooks.create_endpoint,
        body=("data", webhooks.WebhookEndpointInput),
        output=webhook_endpoint_json,
        summary="Create a webhook endpoint",
        tag="Webhooks",
        status_code=201,
        description=(
            "`url` (http or https; https and a public address in production), `event_types` "
            "(at least one documented type), `description`, `active`. The answer carries the "
            "`whsec_…` signing `secret`, shown this once. Deliveries follow the Standard "
            "Webhooks spec (`webhook-id`, `webhook-timestamp`, `webhook-signature`)."
        ),
    ),
    Route(
        "PUT",
        "/v1/webhooks/{id}",
        scope="webhooks:write",
        call=webhooks.update_endpoint,
        body=("changes", webhooks.WebhookEndpointChanges),
        output=webhook_endpoint_json,
        summary="Update a webhook endpoint",
        tag="Webhooks",
        description=(
            "Change `url`, `event_types`, `description` or `active` (turning a disabled "
            "endpoint back on clears its `disabled_reason`)."
        ),
    ),
    Route(
        "POST",
        "/v1/webhooks/{id}/test",
        scope="webhooks:write",
        call=webhooks.test_endpoint,
        output=webhook_test_json,
        summary="Send a test event",
        tag="Webhooks",
        description=(
            "Sends a signed `webhook.test` event to the endpoint now and reports what it "
            "answered (status, time, the first KiB of the body). Not retried."
        ),
    ),
]
