from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from app.accounts.models import Environment


class ApiKey(Model):
    """A secret API key. Only its SHA-256 is stored, the key itself is shown once."""

    id = fields.CharField(primary_key=True, max_length=40)
    account = fields.ForeignKeyField(
        "models.Account", related_name="api_keys", on_delete=fields.CASCADE
    )
    environment = fields.CharEnumField(Environment, max_length=10)
    name = fields.CharField(max_length=200, default="")
    key_hash = fields.CharField(max_length=64, unique=True)
    prefix = fields.CharField(max_length=16)  # "sa_live_" / "sa_test_"
    last4 = fields.CharField(max_length=4)
    scopes = fields.JSONField(default=list)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_keys"
        indexes = (("account_id", "environment"),)
