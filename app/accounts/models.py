from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class Plan(StrEnum):
    STARTER = "starter"
    PROFESSIONAL = "professional"
    ENTERPRISE = "enterprise"


class Environment(StrEnum):
    LIVE = "live"
    SANDBOX = "sandbox"


class Account(Model):
    """A merchant (tenant). Every other row belongs to one account and one environment."""

    id = fields.CharField(primary_key=True, max_length=40)
    name = fields.CharField(max_length=200)
    plan = fields.CharEnumField(Plan, max_length=20)
    rate_limit = fields.IntField(null=True)  # requests/minute; used by the enterprise plan
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "accounts"
