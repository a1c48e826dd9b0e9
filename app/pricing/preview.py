"""What a pricing rule would change before it is saved: the prices the next sync would set,
computed over the tenant's current products with the same pure core the engine uses."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from app.auth.principal import Principal
from app.pricing.core import LotFacts, Rule, price_lot
from app.pricing.models import PricingRule
from app.pricing.service import (
    RULE_FIELDS,
    PricingRuleInput,
    check_rule,
    tenant_pricing,
    to_core,
)
from app.products.models import Product, ProductStatus
from app.tenancy import get_owned, owned

PREVIEW_RULE_ID = "rule_preview"
SAMPLE_SIZE = 10


@dataclass(frozen=True, slots=True)
class PriceChange:
    product_id: str
    sku: str
    title: str
    cost: Decimal
    price_before: Decimal
    price_after: Decimal

    @property
    def margin_before(self) -> Decimal:
        return self.price_before - self.cost

    @property
    def margin_after(self) -> Decimal:
        return self.price_after - self.cost


@dataclass(frozen=True, slots=True)
class RulePreview:
    products_considered: int  # listed or listable, without a manual price
    products_changed: int
    samples: list[PriceChange]  # the largest price changes first


async def preview_rule(
    actor: Principal, *, data: PricingRuleInput, rule_id: str | None = None
) -> RulePreview:
    """Prices with `data` added to the rules (or replacing rule `rule_id`), against today's."""
    actor.require("pricing:read")
    check_rule(data)
    if rule_id is not None:
        await get_owned(PricingRule, actor, rule_id, prefix="rule", noun="pricing rule")
    rules, default = await tenant_pricing(actor.account_id, actor.environment.value)
    candidate = _candidate(data, rule_id)
    new_rules = [r for r in rules if r.id != rule_id]
    new_default = default if default is None or default.id != rule_id else None
    if data.active and data.is_default:
        new_default = candidate
    elif data.active:
        new_rules.append(candidate)

    rows = await (
        owned(Product, actor)
        .filter(manual_price=None)
        .exclude(status=ProductStatus.SOLD)
        .values_list("id", "sku", "title", "cost", "price", "metal", "service", "grade")
    )
    changes: list[PriceChange] = []
    for product_id, sku, title, cost, price, metal, service, grade in rows:
        facts = LotFacts(cost=Decimal(cost), title=title, metal=metal, service=service, grade=grade)
        after = price_lot(facts, new_rules, default=new_default).price
        if after != Decimal(price):
            changes.append(
                PriceChange(product_id, sku, title, Decimal(cost), Decimal(price), after)
            )
    changes.sort(key=lambda c: (-abs(c.price_after - c.price_before), c.product_id))
    return RulePreview(
        products_considered=len(rows),
        products_changed=len(changes),
        samples=changes[:SAMPLE_SIZE],
    )


def _candidate(data: PricingRuleInput, rule_id: str | None) -> Rule:
    row = PricingRule(id=rule_id or PREVIEW_RULE_ID, **{n: getattr(data, n) for n in RULE_FIELDS})
    return to_core(row)
