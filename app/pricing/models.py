from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from app.accounts.models import Environment
from app.pricing.core import Rounding


class PricingRule(Model):
    """A merchant pricing rule: conditions on a lot, a markup, rounding and a minimum margin."""

    id = fields.CharField(primary_key=True, max_length=40)
    account = fields.ForeignKeyField(
        "models.Account", related_name="pricing_rules", on_delete=fields.CASCADE
    )
    environment = fields.CharEnumField(Environment, max_length=10)
    name = fields.CharField(max_length=200)
    active = fields.BooleanField(default=True)
    # The account default: prices lots no other rule matches (it has no conditions).
    is_default = fields.BooleanField(default=False)
    priority = fields.IntField(default=100)
    markup_percent = fields.DecimalField(max_digits=9, decimal_places=2, default=0)
    markup_fixed = fields.DecimalField(max_digits=14, decimal_places=2, default=0)
    rounding = fields.CharEnumField(Rounding, max_length=10, default=Rounding.NONE)
    min_margin = fields.DecimalField(max_digits=14, decimal_places=2, null=True)
    min_margin_percent = fields.DecimalField(max_digits=9, decimal_places=2, null=True)
    metals = fields.JSONField(default=list)
    services = fields.JSONField(default=list)
    min_grade = fields.IntField(null=True)
    max_grade = fields.IntField(null=True)
    min_cost = fields.DecimalField(max_digits=14, decimal_places=2, null=True)
    max_cost = fields.DecimalField(max_digits=14, decimal_places=2, null=True)
    title_contains = fields.CharField(max_length=200, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "pricing_rules"
        # Lists are newest first per tenant: (account, environment, id) serves them in order.
        indexes = (("account_id", "environment", "id"),)
