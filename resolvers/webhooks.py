"""Webhook resolvers: thin adapters over `app.webhooks.service`."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from app.webhooks import service
from app.webhooks.models import WebhookDelivery as DeliveryRow
from app.webhooks.models import WebhookEndpoint as EndpointRow
from resolvers.common import (
    After,
    First,
    ObjectId,
    actor,
    connection,
    input_errors,
    page_params,
    plain,
    validate,
)
from schema import types
from schema.inputs import WebhookEndpointCreateInput, WebhookEndpointUpdateInput

FIELDS = ("url", "event_types", "description", "active")


def to_type(row: EndpointRow) -> types.WebhookEndpoint:
    return types.WebhookEndpoint(
        id=row.id,
        url=row.url,
        description=row.description,
        event_types=[types.EventType(t) for t in row.event_types or []],
        active=row.active,
        disabled_reason=row.disabled_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def delivery_type(row: DeliveryRow) -> types.WebhookDelivery:
    return types.WebhookDelivery(
        id=row.id,
        endpoint_id=row.endpoint_id,
        event_id=row.event_id,
        event_type=row.event_type,
        status=types.WebhookDeliveryStatus(row.status.value),
        attempts=[
            types.WebhookAttempt(
                number=a.number,
                status_code=a.status_code,
                error=a.error,
                duration_ms=a.duration_ms,
                response_excerpt=a.response_excerpt,
                created_at=a.created_at,
            )
            for a in sorted(row.attempt_log, key=lambda a: a.number)
        ],
        next_attempt_at=row.next_attempt_at,
        delivered_at=row.delivered_at,
        created_at=row.created_at,
    )


def _with_secret(created: service.CreatedEndpoint) -> types.WebhookEndpointWithSecret:
    return types.WebhookEndpointWithSecret(
        endpoint=to_type(created.endpoint), secret=created.secret
    )


async def webhook_endpoints(
    info: Info, first: First = 25, after: After = None
) -> types.WebhookEndpointConnection:
    page = await service.list_endpoints(actor(info), page=page_params(first, after))
    return connection(page, to_type, types.WebhookEndpointConnection, types.WebhookEndpointEdge)


async def webhook_endpoint(info: Info, id: ObjectId) -> types.WebhookEndpoint:
    return to_type(await service.get_endpoint(actor(info), id))


async def webhook_deliveries(
    info: Info,
    endpoint_id: Annotated[strawberry.ID, strawberry.argument(description="`whk_…` id.")],
    first: First = 25,
    after: After = None,
) -> types.WebhookDeliveryConnection:
    page = await service.list_deliveries(actor(info), endpoint_id, page=page_params(first, after))
    return connection(
        page, delivery_type, types.WebhookDeliveryConnection, types.WebhookDeliveryEdge
    )


async def webhook_endpoint_create(
    info: Info,
    input: Annotated[WebhookEndpointCreateInput, strawberry.argument(description="The endpoint.")],
) -> types.WebhookEndpointWithSecret:
    data = validate(service.WebhookEndpointInput, plain(input))
    with input_errors(FIELDS):
        return _with_secret(await service.create_endpoint(actor(info), data=data))


async def webhook_endpoint_update(
    info: Info,
    id: ObjectId,
    input: Annotated[WebhookEndpointUpdateInput, strawberry.argument(description="The changes.")],
) -> types.WebhookEndpoint:
    changes = validate(service.WebhookEndpointChanges, plain(input))
    with input_errors(FIELDS):
        return to_type(await service.update_endpoint(actor(info), id, changes=changes))


async def webhook_endpoint_delete(info: Info, id: ObjectId) -> types.DeletedWebhookEndpoint:
    deleted = await service.delete_endpoint(actor(info), id)
    return types.DeletedWebhookEndpoint(id=deleted.id, deleted=True)


async def webhook_endpoint_rotate_secret(
    info: Info, id: ObjectId
) -> types.WebhookEndpointWithSecret:
    return _with_secret(await service.rotate_secret(actor(info), id))


async def webhook_endpoint_test(info: Info, id: ObjectId) -> types.WebhookTestResult:
    sent = await service.test_endpoint(actor(info), id)
    answer = sent.answer
    return types.WebhookTestResult(
        webhook_id=sent.message_id,
        ok=answer.ok,
        status_code=answer.status_code,
        duration_ms=answer.duration_ms,
        response_excerpt=answer.excerpt,
        error=answer.error,
    )


async def webhook_delivery_replay(info: Info, id: ObjectId) -> types.WebhookDelivery:
    delivery = await service.replay_delivery(actor(info), id)
    await delivery.fetch_related("attempt_log")
    return delivery_type(delivery)
