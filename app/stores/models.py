from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from app.accounts.models import Environment


class Platform(StrEnum):
    WOOCOMMERCE = "woocommerce"
    SHOPIFY = "shopify"


class Store(Model):
    """A WooCommerce or Shopify store of the merchant. Credentials are encrypted, never returned."""

    id = fields.CharField(primary_key=True, max_length=40)
    account = fields.ForeignKeyField(
        "models.Account", related_name="stores", on_delete=fields.CASCADE
    )
    environment = fields.CharEnumField(Environment, max_length=10)
    name = fields.CharField(max_length=200)
    platform = fields.CharEnumField(Platform, max_length=20)
    url = fields.CharField(max_length=500)
    credentials_encrypted = fields.TextField(default="")
    sync_enabled = fields.BooleanField(default=True)
    # Backed by the built-in simulator of its platform (demo and sandbox), not a real shop.
    simulated = fields.BooleanField(default=False)
    settings = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "stores"
        indexes = (("account_id", "environment", "id"),)
