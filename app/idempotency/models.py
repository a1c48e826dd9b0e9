from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from app.accounts.models import Environment


class IdempotencyRecord(Model):
    """The first response to a POST carrying `Idempotency-Key`, replayed for 24 hours."""

    id = fields.IntField(primary_key=True)
    account = fields.ForeignKeyField(
        "models.Account", related_name="idempotency_records", on_delete=fields.CASCADE
    )
    environment = fields.CharEnumField(Environment, max_length=10)
    key = fields.CharField(max_length=255)
    method = fields.CharField(max_length=10)
    path = fields.CharField(max_length=500)
    request_hash = fields.CharField(max_length=64)
    status_code = fields.IntField(null=True)  # null while the first request is in flight
    response_body = fields.BinaryField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "idempotency_records"
        unique_together = (("account_id", "environment", "key"),)
        indexes = (("created_at",),)
