"""The GraphQL schema: Query and Mutation roots, limits, and error codes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry
from graphql import GraphQLError, OperationDefinitionNode
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from app.errors import DomainError
from app.events.service import format_timestamp
from app.money import plain_decimal
from resolvers import accounts as account_resolvers
from resolvers import events as event_resolvers
from resolvers import pricing_rules as pricing_rule_resolvers
from resolvers import products as product_resolvers
from resolvers import stores as store_resolvers
from resolvers import sync as sync_resolvers
from resolvers import webhooks as webhook_resolvers
from schema import types

logger = logging.getLogger("syncauction.graphql")

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000


@strawberry.type(
    description="Read the caller's account, products, stores, pricing rules and syncs."
)
class Query:
    me: types.Account = strawberry.field(
        resolver=account_resolvers.me, description="The caller's account."
    )
    products: types.ProductConnection = strawberry.field(
        resolver=product_resolvers.products,
        description="Products, newest first. `first` is 1–100 (default 25); `after` a cursor.",
    )
    product: types.Product = strawberry.field(
        resolver=product_resolvers.product, description="One product by `prod_…` id."
    )
    stores: types.StoreConnection = strawberry.field(
        resolver=store_resolvers.stores, description="Connected stores, newest first."
    )
    store: types.Store = strawberry.field(
        resolver=store_resolvers.store, description="One store by id."
    )
    pricing_rules: types.PricingRuleConnection = strawberry.field(
        resolver=pricing_rule_resolvers.pricing_rules,
        description="Pricing rules, newest first (syncs evaluate them by priority).",
    )
    pricing_rule: types.PricingRule = strawberry.field(
        resolver=pricing_rule_resolvers.pricing_rule, description="One pricing rule by `rule_…` id."
    )
    pricing_rule_preview: types.PricingRulePreview = strawberry.field(
        resolver=pricing_rule_resolvers.pricing_rule_preview,
        description="What a rule would change (count and the largest changes) before saving it.",
    )
    webhook_endpoints: types.WebhookEndpointConnection = strawberry.field(
        resolver=webhook_resolvers.webhook_endpoints,
        description="Webhook endpoints, newest first.",
    )
    webhook_endpoint: types.WebhookEndpoint = strawberry.field(
        resolver=webhook_resolvers.webhook_endpoint, description="One endpoint by `whk_…` id."
    )
    webhook_deliveries: types.WebhookDeliveryConnection = strawberry.field(
        resolver=webhook_resolvers.webhook_deliveries,
        description="An endpoint's deliveries, newest first, with every attempt.",
    )
    sync_status: types.SyncStatus = strawberry.field(
        resolver=sync_resolvers.sync_status,
        description="Whether a sync runs, the last one, and when the schedule runs next.",
    )
    sync_jobs: types.SyncJobConnection = strawberry.field(
        resolver=sync_resolvers.sync_jobs, description="Sync history, newest first."
    )
    sync_job: types.SyncJob = strawberry.field(
        resolver=sync_resolvers.sync_job, description="One sync job by `sync_…` id."
    )


@strawberry.type(description="Change products, stores and pricing rules; start syncs.")
class Mutation:
    product_update: types.Product | None = strawberry.mutation(
        resolver=product_resolvers.product_update,
        description="Edit a product. A `price` locks it against syncs; `null` releases the lock.",
    )
    store_create: types.Store | None = strawberry.mutation(
        resolver=store_resolvers.store_create, description="Connect a WooCommerce or Shopify store."
    )
    store_update: types.Store | None = strawberry.mutation(
        resolver=store_resolvers.store_update,
        description="Change a store's settings or credentials.",
    )
    pricing_rule_create: types.PricingRule | None = strawberry.mutation(
        resolver=pricing_rule_resolvers.pricing_rule_create, description="Create a pricing rule."
    )
    pricing_rule_update: types.PricingRule | None = strawberry.mutation(
        resolver=pricing_rule_resolvers.pricing_rule_update,
        description="Change a pricing rule; the result is validated as a whole.",
    )
    pricing_rule_delete: types.DeletedPricingRule | None = strawberry.mutation(
        resolver=pricing_rule_resolvers.pricing_rule_delete,
        description="Delete a pricing rule; answers its id.",
    )
    webhook_endpoint_create: types.WebhookEndpointWithSecret | None = strawberry.mutation(
        resolver=webhook_resolvers.webhook_endpoint_create,
        description="Add a webhook endpoint; the answer has its secret, shown this once.",
    )
    webhook_endpoint_update: types.WebhookEndpoint | None = strawberry.mutation(
        resolver=webhook_resolvers.webhook_endpoint_update,
        description="Change an endpoint's URL, event types, description or switch.",
    )
    webhook_endpoint_delete: types.DeletedWebhookEndpoint | None = strawberry.mutation(
        resolver=webhook_resolvers.webhook_endpoint_delete,
        description="Delete an endpoint with its delivery history; nothing more is sent to it.",
    )
    webhook_endpoint_rotate_secret: types.WebhookEndpointWithSecret | None = strawberry.mutation(
        resolver=webhook_resolvers.webhook_endpoint_rotate_secret,
        description="A new secret (shown once); the previous one also signs for 24 hours.",
    )
    webhook_endpoint_test: types.WebhookTestResult | None = strawberry.mutation(
        resolver=webhook_resolvers.webhook_endpoint_test,
        description="Send a signed `webhook.test` event now and report the answer.",
    )
    webhook_delivery_replay: types.WebhookDelivery | None = strawberry.mutation(
        resolver=webhook_resolvers.webhook_delivery_replay,
        description="Send a delivery again now, with the same webhook-id.",
    )
    sync_schedule_update: types.SyncStatus | None = strawberry.mutation(
        resolver=sync_resolvers.sync_schedule_update,
        description="Change the schedule: delta interval and nightly full sync hour (UTC).",
    )
    sync_trigger: types.SyncJob | None = strawberry.mutation(
        resolver=sync_resolvers.sync_trigger,
        description="Start a sync. `sync_in_progress` (with `sync_job`) while one is unfinished.",
    )


@strawberry.type(
    description="Live updates over the websocket (`graphql-transport-ws` or `graphql-ws`); "
    'authenticate with {"authorization": "Bearer <key>"} in connection_init.'
)
class Subscription:
    events: types.Event = strawberry.subscription(
        resolver=event_resolvers.events,
        description="Every event of the account and environment as it happens, optionally "
        "only some types; `data` equals the webhook payload's.",
    )
    sync_progress: types.SyncProgressUpdate = strawberry.subscription(
        resolver=event_resolvers.sync_progress,
        description="A sync's progress now and at each change, until it finishes.",
    )
    order_updates: types.Event = strawberry.subscription(
        resolver=event_resolvers.order_updates,
        description="Order events: order.received, order.forwarded, order.failed.",
    )


def error_code(error: GraphQLError) -> str:
    original = error.original_error
    if isinstance(original, DomainError):
        return original.code
    if original is None:
        message = error.message
        if "exceeds maximum operation depth" in message:
            return "query_too_deep"
        if "aliases found. Allowed:" in message or (
            "Document contains more than" in message and "tokens" in message
        ):
            return "query_too_complex"
        if error.path is None:
            return "graphql_validation_failed"
    elif isinstance(original, GraphQLError) and error.path is None:
        # "Variable '$x' has invalid value: …": graphql-core wraps its own coercion error.
        return "graphql_validation_failed"
    return "internal_error"


class SyncAuctionSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            code = error_code(error)
            if code == "internal_error":
                logger.error("unexpected GraphQL error", exc_info=error.original_error or error)
                error.message = "Internal server error."
            # Set on the error itself so every transport (HTTP and websocket) sends the code.
            error.extensions = {**(error.extensions or {}), "code": code}
            if isinstance(error.original_error, DomainError):
                if error.original_error.param:
                    error.extensions["param"] = error.original_error.param
                if error.original_error.details:
                    error.extensions.update(error.original_error.details)


def format_error(error: GraphQLError) -> dict[str, Any]:
    """The error as sent: domain errors keep their message and get `extensions.code`;
    unexpected ones are masked."""
    formatted = error.formatted
    code = error_code(error)
    extensions = dict(formatted.get("extensions") or {})
    extensions["code"] = code
    if isinstance(error.original_error, DomainError):
        if error.original_error.param:
            extensions["param"] = error.original_error.param
        if error.original_error.details:
            extensions.update(error.original_error.details)
    if code == "internal_error":
        formatted["message"] = "Internal server error."
    formatted["extensions"] = extensions
    return formatted


class OperationNameRequired(SchemaExtension):
    """A document with several operations needs `operationName` to say which one runs (GraphQL
    spec, GetOperation); without it Strawberry would silently run the first."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        # `operation_name` falls back to the first operation's name: ask what the client sent.
        # (A private attribute: tests/test_graphql_limits.py fails loudly if it goes away.)
        if context._provided_operation_name is None and document is not None:
            operations = sum(
                isinstance(definition, OperationDefinitionNode)
                for definition in document.definitions
            )
            if operations > 1:
                error = GraphQLError(
                    "The document holds several operations: send `operationName` to choose one."
                )
                context.pre_execution_errors = [*(context.pre_execution_errors or []), error]
        yield


def _parse_decimal(value: Any) -> Decimal:
    """A `Decimal` input: a number, or a string in the plain notation REST takes too."""
    try:
        parsed = plain_decimal(value)
    except ValueError:
        parsed = None
    if not isinstance(parsed, Decimal) or not parsed.is_finite():
        raise GraphQLError(f"Decimal cannot represent {value!r}: send a number such as 12.50.")
    return parsed


DECIMAL = strawberry.scalar(
    name="Decimal",
    description='A decimal amount, sent as a string such as "430.50" (inputs take a number too).',
    serialize=str,
    parse_value=_parse_decimal,
)


def _parse_datetime(value: object) -> datetime:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise GraphQLError(
            f"DateTime cannot represent {value!r}: send ISO 8601 with a zone, such as "
            "2024-01-15T10:30:00Z."
        )
    return parsed


# The wire form of every timestamp, as in REST and in webhook payloads: UTC, seconds, with a Z.
DATETIME = strawberry.scalar(
    name="DateTime",
    description="An instant, in ISO 8601 UTC with a Z, such as 2024-01-15T10:30:00Z.",
    serialize=format_timestamp,
    parse_value=_parse_datetime,
)


def build_schema() -> SyncAuctionSchema:
    return SyncAuctionSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(scalar_map={Decimal: DECIMAL, datetime: DATETIME}),
        extensions=[
            lambda: ParserCache(maxsize=256),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
            lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
            lambda: ValidationCache(maxsize=256),
            OperationNameRequired,  # after the cache, which sets the validation errors
        ],
    )
