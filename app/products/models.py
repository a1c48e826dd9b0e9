from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from app.accounts.models import Environment


class ProductStatus(StrEnum):
    ACTIVE = "active"
    DRAFT = "draft"
    ARCHIVED = "archived"
    SOLD = "sold"


class Product(Model):
    """An auction-house lot as the merchant sells it."""

    id = fields.CharField(primary_key=True, max_length=40)
    account = fields.ForeignKeyField(
        "models.Account", related_name="products", on_delete=fields.CASCADE
    )
    environment = fields.CharEnumField(Environment, max_length=10)
    ha_lot = fields.CharField(max_length=40)
    sku = fields.CharField(max_length=50)
    title = fields.CharField(max_length=300)
    description = fields.TextField(default="")
    price = fields.DecimalField(max_digits=14, decimal_places=2)
    cost = fields.DecimalField(max_digits=14, decimal_places=2)
    margin = fields.DecimalField(max_digits=14, decimal_places=2)
    manual_price = fields.DecimalField(max_digits=14, decimal_places=2, null=True)
    currency = fields.CharField(max_length=3, default="USD")
    metal = fields.CharField(max_length=20, null=True)
    grade = fields.CharField(max_length=20, null=True)
    service = fields.CharField(max_length=20, null=True)
    year = fields.IntField(null=True)
    mint = fields.CharField(max_length=10, null=True)
    denomination = fields.CharField(max_length=40, null=True)
    images = fields.JSONField(default=list)
    tags = fields.JSONField(default=list)
    status = fields.CharEnumField(ProductStatus, max_length=10, default=ProductStatus.ACTIVE)
    content_hash = fields.CharField(max_length=64, default="")  # of the lot, as last read
    listing_hash = fields.CharField(max_length=64, default="")  # of what stores should show
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "products"
        unique_together = (("account_id", "environment", "ha_lot"),)
        # Lists are newest first per tenant: (account, environment, id) serves them in order.
        indexes = (("account_id", "environment", "status"), ("account_id", "environment", "id"))
