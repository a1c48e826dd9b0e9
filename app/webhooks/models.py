from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from app.accounts.models import Environment


class WebhookEndpoint(Model):
    """A URL of the merchant that receives signed events (Standard Webhooks). The signing
    secret is encrypted at rest and shown once; during a rotation the previous secret signs too
    until it expires."""

    id = fields.CharField(primary_key=True, max_length=40)
    account = fields.ForeignKeyField(
        "models.Account", related_name="webhook_endpoints", on_delete=fields.CASCADE
    )
    environment = fields.CharEnumField(Environment, max_length=10)
    url = fields.CharField(max_length=500)
    description = fields.CharField(max_length=500, default="")
    event_types = fields.JSONField(default=list)
    active = fields.BooleanField(default=True)
    secret_encrypted = fields.TextField()
    previous_secret_encrypted = fields.TextField(null=True)
    previous_secret_expires_at = fields.DatetimeField(null=True)
    disabled_reason = fields.CharField(max_length=200, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "webhook_endpoints"
        indexes = (("account_id", "environment", "id"),)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookDelivery(Model):
    """One event for one endpoint: retried on the schedule until delivered or failed. Its
    webhook-id (the event id) is the same on every attempt and replay."""

    id = fields.CharField(primary_key=True, max_length=40)
    account = fields.ForeignKeyField(
        "models.Account", related_name="webhook_deliveries", on_delete=fields.CASCADE
    )
    environment = fields.CharEnumField(Environment, max_length=10)
    endpoint = fields.ForeignKeyField(
        "models.WebhookEndpoint", related_name="deliveries", on_delete=fields.CASCADE
    )
    event = fields.ForeignKeyField(
        "models.Event", related_name="deliveries", on_delete=fields.CASCADE
    )
    event_type = fields.CharField(max_length=40)
    status = fields.CharEnumField(DeliveryStatus, max_length=10, default=DeliveryStatus.PENDING)
    attempts = fields.IntField(default=0)
    retry_base = fields.IntField(default=0)  # attempts made before the last replay
    next_attempt_at = fields.DatetimeField(null=True)
    last_status_code = fields.IntField(null=True)
    last_error = fields.TextField(null=True)
    delivered_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "webhook_deliveries"
        unique_together = (("endpoint_id", "event_id"),)
        # event_id: the events purge (and its ON DELETE CASCADE check) finds deliveries by event.
        indexes = (("status", "next_attempt_at"), ("endpoint_id", "id"), ("event_id",))


class WebhookAttempt(Model):
    """One HTTP attempt of a delivery: what the receiver answered, and how fast."""

    id = fields.BigIntField(primary_key=True)
    delivery = fields.ForeignKeyField(
        "models.WebhookDelivery", related_name="attempt_log", on_delete=fields.CASCADE
    )
    number = fields.IntField()
    status_code = fields.IntField(null=True)
    error = fields.TextField(null=True)
    duration_ms = fields.IntField()
    response_excerpt = fields.TextField(default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "webhook_attempts"
        indexes = (("delivery_id", "number"),)
