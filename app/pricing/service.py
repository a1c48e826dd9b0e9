"""Pricing rules: the merchant's stored rules, and their conversion to the pure core's `Rule`.

Each rule is validated as a whole (on create, and after merging an update), so a stored rule
always has a markup, consistent ranges, and prices below cost only when the merchant said so."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)
from tortoise.transactions import in_transaction

from app.auth.principal import Principal
from app.deletion import Deleted
from app.errors import InvalidInput, NotFound, from_validation_error
from app.ids import is_valid_id, new_id
from app.money import MAX_AMOUNT, PLAIN_DECIMAL, Money
from app.pagination import Page, PageParams, paginate
from app.partial import not_null, without_null
from app.pricing.core import CENT, Rounding, Rule
from app.pricing.models import PricingRule
from app.tenancy import get_owned, owned
from app.text import FilterValue, Name

Priority = Annotated[int, Field(ge=0, le=10_000)]
Grade = Annotated[int, Field(ge=1, le=70)]
MarkupPercent = Annotated[Decimal, Field(ge=-100, le=10_000, decimal_places=2), PLAIN_DECIMAL]
MarkupFixed = Annotated[
    Decimal, Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT, decimal_places=2), PLAIN_DECIMAL
]
MarginPercent = Annotated[Decimal, Field(ge=0, le=10_000, decimal_places=2), PLAIN_DECIMAL]

# What a rule stores (everything of the input but the below-cost acknowledgement).
RULE_FIELDS = (
    "name",
    "active",
    "is_default",
    "priority",
    "markup_percent",
    "markup_fixed",
    "rounding",
    "min_margin",
    "min_margin_percent",
    "metals",
    "services",
    "min_grade",
    "max_grade",
    "min_cost",
    "max_cost",
    "title_contains",
)
# Changing any of these may move prices below cost, so the acknowledgement is asked again.
_PRICE_FIELDS = {"markup_percent", "markup_fixed", "min_margin", "min_margin_percent"}
_REQUIRED = (
    "name",
    "active",
    "is_default",
    "priority",
    "markup_percent",
    "markup_fixed",
    "rounding",
    "allow_below_cost",
)


class PricingRuleInput(BaseModel):
    """A new pricing rule. Conditions left out match every lot."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    active: bool = True
    is_default: bool = Field(
        default=False,
        description="The account default: prices the lots no other rule matches. It takes no "
        "conditions; making a rule the default unsets the previous one.",
    )
    priority: Priority = Field(default=100, description="Lower numbers are evaluated first.")
    markup_percent: MarkupPercent = Field(default=Decimal(0), description="Percent of cost.")
    markup_fixed: MarkupFixed = Field(default=Decimal(0), description="Added after the percent.")
    rounding: Rounding = Rounding.NONE
    min_margin: Money | None = Field(default=None, description="Absolute minimum margin.")
    min_margin_percent: MarginPercent | None = Field(
        default=None, description="Minimum margin in percent of cost."
    )
    metals: list[FilterValue] = Field(default_factory=list, max_length=20)
    services: list[FilterValue] = Field(default_factory=list, max_length=20)
    min_grade: Grade | None = None
    max_grade: Grade | None = None
    min_cost: Money | None = None
    max_cost: Money | None = None
    title_contains: Name | None = None
    allow_below_cost: bool = Field(
        default=False, description="Accept a negative markup that may price lots below cost."
    )


class PricingRuleChanges(BaseModel):
    """Partial update: fields sent replace, fields left out stay. Conditions may be cleared with
    `null`; the other fields may be omitted but not null. The merged rule is validated whole."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=without_null(*_REQUIRED))

    name: Name | None = None
    active: bool | None = None
    is_default: bool | None = None
    priority: Priority | None = None
    markup_percent: MarkupPercent | None = None
    markup_fixed: MarkupFixed | None = None
    rounding: Rounding | None = None
    min_margin: Money | None = None
    min_margin_percent: MarginPercent | None = None
    metals: Annotated[list[FilterValue], Field(max_length=20)] | None = None
    services: Annotated[list[FilterValue], Field(max_length=20)] | None = None
    min_grade: Grade | None = None
    max_grade: Grade | None = None
    min_cost: Money | None = None
    max_cost: Money | None = None
    title_contains: Name | None = None
    allow_below_cost: bool | None = None

    _not_null = not_null(*_REQUIRED)


_CONDITIONS = (
    "metals",
    "services",
    "min_grade",
    "max_grade",
    "min_cost",
    "max_cost",
    "title_contains",
)


def check_rule(rule: PricingRuleInput) -> None:
    """The checks that span fields; each names the field to fix."""
    if rule.is_default:
        for name in _CONDITIONS:
            if getattr(rule, name) not in (None, []):
                raise InvalidInput(
                    f"The default rule applies to lots no other rule matches: it takes no "
                    f"conditions (remove {name}).",
                    code="default_rule_conditions",
                    param=name,
                )
    if rule.markup_percent == 0 and rule.markup_fixed == 0:
        raise InvalidInput(
            "A rule with no markup: set markup_percent or markup_fixed.",
            code="parameter_invalid",
            param="markup_percent",
        )
    has_floor = rule.min_margin is not None or rule.min_margin_percent is not None
    if not rule.allow_below_cost and not has_floor:
        for name in ("markup_percent", "markup_fixed"):
            if getattr(rule, name) < 0:
                raise InvalidInput(
                    f"A negative {name} prices lots below cost; send allow_below_cost: true "
                    "to accept that, or set a minimum margin.",
                    code="below_cost",
                    param=name,
                )
    for low, high in (("min_grade", "max_grade"), ("min_cost", "max_cost")):
        low_value, high_value = getattr(rule, low), getattr(rule, high)
        if low_value is not None and high_value is not None and low_value > high_value:
            raise InvalidInput(
                f"{low} must not exceed {high}.", code="parameter_invalid", param=low
            )


def _stored(rule: PricingRuleInput) -> dict[str, Any]:
    values = {name: getattr(rule, name) for name in RULE_FIELDS}
    for name, value in values.items():
        if isinstance(value, Decimal):
            values[name] = value.quantize(CENT) + 0  # `+ 0` turns -0.00 into 0.00
    return values


async def list_pricing_rules(actor: Principal, *, page: PageParams) -> Page[PricingRule]:
    """The caller's pricing rules, newest first (evaluation order is by priority)."""
    actor.require("pricing:read")
    return await paginate(owned(PricingRule, actor), page, prefix="rule")


async def get_pricing_rule(actor: Principal, rule_id: str) -> PricingRule:
    """One pricing rule; another account's id is a 404 like a missing one."""
    actor.require("pricing:read")
    return await get_owned(PricingRule, actor, rule_id, prefix="rule", noun="pricing rule")


async def create_pricing_rule(actor: Principal, *, data: PricingRuleInput) -> PricingRule:
    """Store a new rule after checking it as a whole."""
    actor.require("pricing:write")
    check_rule(data)
    async with in_transaction() as connection:
        rule = await PricingRule.create(
            id=new_id("rule"),
            account_id=actor.account_id,
            environment=actor.environment,
            using_db=connection,
            **_stored(data),
        )
        if rule.is_default:
            await _only_default(actor, rule, connection)
    return rule


async def _only_default(actor: Principal, rule: PricingRule, connection: Any) -> None:
    """`rule` became the default: the previous default, if any, is an ordinary rule again."""
    await (
        owned(PricingRule, actor)
        .using_db(connection)
        .filter(is_default=True)
        .exclude(id=rule.id)
        .update(is_default=False)
    )


async def update_pricing_rule(
    actor: Principal, rule_id: str, *, changes: PricingRuleChanges
) -> PricingRule:
    """Apply a partial update; the merged rule must be valid as a whole. A rule stored with a
    below-cost markup keeps it through unrelated edits, but changing the markup or the minimum
    margin asks for `allow_below_cost` again."""
    actor.require("pricing:write")
    provided = changes.model_dump(exclude_unset=True)
    acknowledged = bool(provided.pop("allow_below_cost", False))
    for name in ("metals", "services"):  # null clears a list condition, as it does the others
        if name in provided and provided[name] is None:
            provided[name] = []
    async with in_transaction() as connection:
        rule = await get_owned(
            PricingRule, actor, rule_id, prefix="rule", noun="pricing rule", lock=connection
        )
        current = {name: getattr(rule, name) for name in RULE_FIELDS}
        try:
            merged = PricingRuleInput.model_validate(
                {
                    **current,
                    **provided,
                    "allow_below_cost": acknowledged or not (provided.keys() & _PRICE_FIELDS),
                }
            )
        except ValidationError as exc:
            raise from_validation_error(exc) from None
        check_rule(merged)
        stored = _stored(merged)
        changed = [name for name, value in stored.items() if getattr(rule, name) != value]
        for name in changed:
            setattr(rule, name, stored[name])
        if changed:
            await rule.save(using_db=connection, update_fields=[*changed, "updated_at"])
        if "is_default" in changed and rule.is_default:
            await _only_default(actor, rule, connection)
    return rule


async def delete_pricing_rule(actor: Principal, rule_id: str) -> Deleted:
    """Delete a rule for good; the next sync prices without it."""
    actor.require("pricing:write")
    count = 0
    if is_valid_id(rule_id, "rule"):
        count = await owned(PricingRule, actor).filter(id=rule_id).delete()
    if not count:
        raise NotFound(f"No such pricing rule: {rule_id}", param="id")
    return Deleted(id=rule_id, object="pricing_rule")


def to_core(rule: PricingRule) -> Rule:
    """The stored rule as the pure pricing core evaluates it."""

    def decimal(value: Any) -> Decimal | None:
        return None if value is None else Decimal(value)

    return Rule(
        id=rule.id,
        markup_percent=Decimal(rule.markup_percent),
        markup_fixed=Decimal(rule.markup_fixed),
        rounding=Rounding(rule.rounding),
        min_margin=decimal(rule.min_margin),
        min_margin_percent=decimal(rule.min_margin_percent),
        priority=rule.priority,
        active=rule.active,
        metals=frozenset(rule.metals or ()),
        services=frozenset(rule.services or ()),
        min_grade=rule.min_grade,
        max_grade=rule.max_grade,
        min_cost=decimal(rule.min_cost),
        max_cost=decimal(rule.max_cost),
        title_contains=rule.title_contains,
    )


async def tenant_pricing(account_id: str, environment: str) -> tuple[list[Rule], Rule | None]:
    """A tenant's active rules as the engine evaluates them, and its default rule."""
    rules = await PricingRule.filter(account_id=account_id, environment=environment, active=True)
    default = next((to_core(r) for r in rules if r.is_default), None)
    return [to_core(r) for r in rules if not r.is_default], default
