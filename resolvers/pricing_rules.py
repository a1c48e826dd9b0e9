"""Pricing rule resolvers: thin adapters over `app.pricing.service`."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from app.pricing import service
from app.pricing.models import PricingRule as PricingRuleRow
from app.pricing.preview import preview_rule
from resolvers.common import (
    After,
    First,
    ObjectId,
    actor,
    connection,
    input_errors,
    money,
    page_params,
    plain,
    validate,
)
from schema import types
from schema.inputs import PricingRuleCreateInput, PricingRuleUpdateInput


def to_type(row: PricingRuleRow) -> types.PricingRule:
    return types.PricingRule(
        id=row.id,
        name=row.name,
        active=row.active,
        is_default=row.is_default,
        priority=row.priority,
        markup_percent=money(row.markup_percent),
        markup_fixed=money(row.markup_fixed),
        rounding=types.Rounding(str(row.rounding)),
        min_margin=money(row.min_margin),
        min_margin_percent=money(row.min_margin_percent),
        metals=list(row.metals or []),
        services=list(row.services or []),
        min_grade=row.min_grade,
        max_grade=row.max_grade,
        min_cost=money(row.min_cost),
        max_cost=money(row.max_cost),
        title_contains=row.title_contains,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def pricing_rules(
    info: Info, first: First = 25, after: After = None
) -> types.PricingRuleConnection:
    page = await service.list_pricing_rules(actor(info), page=page_params(first, after))
    return connection(page, to_type, types.PricingRuleConnection, types.PricingRuleEdge)


async def pricing_rule(info: Info, id: ObjectId) -> types.PricingRule:
    return to_type(await service.get_pricing_rule(actor(info), id))


async def pricing_rule_create(
    info: Info,
    input: Annotated[
        PricingRuleCreateInput, strawberry.argument(description="The rule to create.")
    ],
) -> types.PricingRule:
    data = validate(service.PricingRuleInput, plain(input))
    with input_errors(service.RULE_FIELDS):
        return to_type(await service.create_pricing_rule(actor(info), data=data))


async def pricing_rule_update(
    info: Info,
    id: ObjectId,
    input: Annotated[PricingRuleUpdateInput, strawberry.argument(description="The changes.")],
) -> types.PricingRule:
    changes = validate(service.PricingRuleChanges, plain(input))
    with input_errors(service.RULE_FIELDS):
        return to_type(await service.update_pricing_rule(actor(info), id, changes=changes))


async def pricing_rule_delete(info: Info, id: ObjectId) -> types.DeletedPricingRule:
    deleted = await service.delete_pricing_rule(actor(info), id)
    return types.DeletedPricingRule(id=deleted.id, deleted=True)


async def pricing_rule_preview(
    info: Info,
    input: Annotated[
        PricingRuleCreateInput, strawberry.argument(description="The rule as it would be saved.")
    ],
    id: Annotated[
        strawberry.ID | None,
        strawberry.argument(description="Preview a change to this rule (it is replaced)."),
    ] = None,
) -> types.PricingRulePreview:
    data = validate(service.PricingRuleInput, plain(input))
    with input_errors(service.RULE_FIELDS):
        result = await preview_rule(actor(info), data=data, rule_id=id)
    return types.PricingRulePreview(
        products_considered=result.products_considered,
        products_changed=result.products_changed,
        samples=[
            types.PriceChange(
                product_id=c.product_id,
                sku=c.sku,
                title=c.title,
                cost=c.cost,
                price_before=c.price_before,
                price_after=c.price_after,
                margin_before=c.margin_before,
                margin_after=c.margin_after,
            )
            for c in result.samples
        ],
    )
