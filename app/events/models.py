from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from app.accounts.models import Environment


class Event(Model):
    """Outbox row, written in the same transaction as the change it reports."""

    id = fields.CharField(primary_key=True, max_length=40)
    account = fields.ForeignKeyField(
        "models.Account", related_name="events", on_delete=fields.CASCADE
    )
    environment = fields.CharEnumField(Environment, max_length=10)
    type = fields.CharField(max_length=40)
    data = fields.JSONField()
    created_at = fields.DatetimeField(auto_now_add=True)
    published_at = fields.DatetimeField(null=True)
    fanned_out_at = fields.DatetimeField(null=True)  # webhook deliveries created

    class Meta:
        table = "events"
        indexes = (("account_id", "environment", "type"), ("published_at",), ("fanned_out_at",))
