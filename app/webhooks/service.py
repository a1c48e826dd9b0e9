"""Webhook endpoints: CRUD, secret rotation, the test send, delivery history and replay."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Protocol

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from app import runtime
from app.auth.principal import Principal
from app.deletion import Deleted
from app.errors import Conflict, InvalidInput
from app.events.types import EventType
from app.ids import new_id
from app.netguard import ensure_public_url
from app.pagination import Page, PageParams, paginate
from app.partial import not_null, without_null
from app.tenancy import get_owned, owned
from app.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from app.webhooks.signing import new_secret

EventName = Literal[tuple(t.value for t in EventType)]  # type: ignore[valid-type]
# After a rotation the previous secret keeps signing (a second signature) this long.
ROTATION_OVERLAP = timedelta(hours=24)
MAX_ENDPOINTS = 20


def _webhook_url(url: AnyHttpUrl) -> AnyHttpUrl:
    if url.username is not None or url.password is not None:
        raise ValueError("must not embed credentials")
    if len(str(url)) > 500:
        raise ValueError("must be at most 500 characters")
    return url


WebhookUrl = Annotated[AnyHttpUrl, AfterValidator(_webhook_url)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
EventTypes = Annotated[list[EventName], Field(min_length=1, max_length=len(EventType))]


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class WebhookEndpointInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: WebhookUrl = Field(description="Where events are POSTed (https in production).")
    event_types: EventTypes = Field(description="The event types to send (at least one).")
    description: Description = ""
    active: bool = True

    _dedupe = field_validator("event_types")(classmethod(lambda cls, v: _unique(v)))


_WEBHOOK_NOT_NULL = (
    "url",
    "event_types",
    "description",
    "active",
)


class WebhookEndpointChanges(BaseModel):
    """Partial update; fields left out stay. Turning an endpoint back on (`active: true`)
    clears its disabled reason."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=without_null(*_WEBHOOK_NOT_NULL))
    url: WebhookUrl | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    active: bool | None = None

    _not_null = not_null(*_WEBHOOK_NOT_NULL)

    _dedupe = field_validator("event_types")(
        classmethod(lambda cls, v: _unique(v) if v is not None else v)
    )


@dataclass(frozen=True, slots=True)
class CreatedEndpoint:
    """A new endpoint with its signing secret, shown this once."""

    endpoint: WebhookEndpoint
    secret: str


def _url_text(url: AnyHttpUrl) -> str:
    return str(url)


async def list_endpoints(actor: Principal, *, page: PageParams) -> Page[WebhookEndpoint]:
    actor.require("webhooks:read")
    return await paginate(owned(WebhookEndpoint, actor), page, prefix="whk")


async def get_endpoint(actor: Principal, endpoint_id: str) -> WebhookEndpoint:
    actor.require("webhooks:read")
    return await get_owned(WebhookEndpoint, actor, endpoint_id, prefix="whk", noun="webhook")


async def create_endpoint(actor: Principal, *, data: WebhookEndpointInput) -> CreatedEndpoint:
    actor.require("webhooks:write")
    url = _url_text(data.url)
    await ensure_public_url(url)
    if await owned(WebhookEndpoint, actor).count() >= MAX_ENDPOINTS:
        raise Conflict(
            f"An account has at most {MAX_ENDPOINTS} webhook endpoints per environment.",
            code="too_many_endpoints",
        )
    secret = new_secret()
    endpoint = await WebhookEndpoint.create(
        id=new_id("whk"),
        account_id=actor.account_id,
        environment=actor.environment,
        url=url,
        description=data.description,
        event_types=list(data.event_types),
        active=data.active,
        secret_encrypted=runtime.current().secret_box.encrypt(secret),
    )
    return CreatedEndpoint(endpoint, secret)


async def update_endpoint(
    actor: Principal, endpoint_id: str, *, changes: WebhookEndpointChanges
) -> WebhookEndpoint:
    actor.require("webhooks:write")
    endpoint = await get_owned(WebhookEndpoint, actor, endpoint_id, prefix="whk", noun="webhook")
    provided = changes.model_dump(exclude_unset=True)
    if "url" in provided:
        url = _url_text(changes.url)  # type: ignore[arg-type]
        await ensure_public_url(url)
        endpoint.url = url
    if "event_types" in provided:
        endpoint.event_types = list(provided["event_types"])
    if "description" in provided:
        endpoint.description = provided["description"]
    if "active" in provided:
        endpoint.active = provided["active"]
        if endpoint.active:
            endpoint.disabled_reason = None
    await endpoint.save()
    return endpoint


async def delete_endpoint(actor: Principal, endpoint_id: str) -> Deleted:
    """Delete an endpoint for good, with its deliveries and their attempts: nothing more is
    sent to it (an attempt already on its way finishes, and its outcome is dropped)."""
    actor.require("webhooks:write")
    endpoint = await get_owned(WebhookEndpoint, actor, endpoint_id, prefix="whk", noun="webhook")
    await endpoint.delete()
    return Deleted(id=endpoint.id, object="webhook_endpoint")


async def rotate_secret(actor: Principal, endpoint_id: str) -> CreatedEndpoint:
    """A new secret, shown once; the previous one also signs for 24 hours, so receivers can
    switch without losing an event."""
    actor.require("webhooks:write")
    endpoint = await get_owned(WebhookEndpoint, actor, endpoint_id, prefix="whk", noun="webhook")
    secret = new_secret()
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.previous_secret_expires_at = datetime.now(UTC) + ROTATION_OVERLAP
    endpoint.secret_encrypted = runtime.current().secret_box.encrypt(secret)
    await endpoint.save()
    return CreatedEndpoint(endpoint, secret)


class _Secrets(Protocol):
    secret_encrypted: str
    previous_secret_encrypted: str | None
    previous_secret_expires_at: datetime | None


def signing_secrets(endpoint: _Secrets, now: datetime) -> list[str]:
    """The secrets that sign a message now: the current one, and during a rotation the
    previous one until it expires."""
    box = runtime.current().secret_box
    found = [box.decrypt(endpoint.secret_encrypted)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_encrypted and expires is not None and expires > now:
        found.append(box.decrypt(endpoint.previous_secret_encrypted))
    return found


async def list_deliveries(
    actor: Principal, endpoint_id: str, *, page: PageParams
) -> Page[WebhookDelivery]:
    endpoint = await get_endpoint(actor, endpoint_id)
    return await paginate(
        WebhookDelivery.filter(endpoint_id=endpoint.id).prefetch_related("attempt_log"),
        page,
        prefix="whd",
    )


async def replay_delivery(actor: Principal, delivery_id: str) -> WebhookDelivery:
    """Send a delivery again now (same webhook-id), whatever its state."""
    actor.require("webhooks:write")
    delivery = await get_owned(
        WebhookDelivery, actor, delivery_id, prefix="whd", noun="webhook delivery"
    )
    endpoint = await WebhookEndpoint.get(id=delivery.endpoint_id)
    if not endpoint.active:
        raise InvalidInput(
            "The endpoint is disabled; turn it back on before replaying.",
            code="endpoint_disabled",
            param="id",
        )
    now = datetime.now(UTC)
    due = delivery.next_attempt_at
    if delivery.status is DeliveryStatus.PENDING and due is not None and now < due:
        from app.webhooks.delivery import LEASE

        if due <= now + LEASE:
            raise Conflict(
                "An attempt of this delivery may be in flight; replay it in a minute.",
                code="delivery_in_flight",
            )
    # A fresh retry budget: the schedule restarts from this replay.
    delivery.status = DeliveryStatus.PENDING
    delivery.next_attempt_at = now
    delivery.retry_base = delivery.attempts
    await delivery.save(update_fields=["status", "next_attempt_at", "retry_base", "updated_at"])
    from app.webhooks import delivery as sender

    await sender.enqueue_attempt(delivery.id, delivery.attempts, delivery.next_attempt_at)
    return delivery


@dataclass(frozen=True, slots=True)
class TestSend:
    endpoint_id: str
    message_id: str  # the webhook-id sent
    answer: Any  # delivery.Answer


async def test_endpoint(actor: Principal, endpoint_id: str) -> TestSend:
    """Send a signed `webhook.test` event now and report what the receiver answered."""
    actor.require("webhooks:write")
    endpoint = await get_owned(WebhookEndpoint, actor, endpoint_id, prefix="whk", noun="webhook")
    from app.webhooks.delivery import send_test

    message_id, answer = await send_test(endpoint)
    return TestSend(endpoint.id, message_id, answer)
