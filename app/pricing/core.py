"""Pricing rules, evaluated: pure functions over plain values, no I/O.

A rule has conditions (metal, grading service, grade range, cost range, title contains), a
markup (percent and/or fixed), a rounding mode, a minimum margin (absolute and/or percent), a
priority and an active switch. For a lot, the first active rule whose conditions all hold, in
priority order (lowest number first, then id), sets the price; the account's default rule
applies when none does. `margin = price - cost`.

    cost 1087.00, +15 %, rounded to whole dollars -> price 1250.00, margin 163.00
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

CENT = Decimal("0.01")
HUNDRED = Decimal(100)


class Rounding(StrEnum):
    """How a computed price is rounded (to the nearest such value)."""

    NONE = "none"  # to the cent
    WHOLE = "1.00"  # whole dollars: 1250.00
    CHARM_99 = "0.99"  # ends in .99: 1249.99
    CHARM_95 = "0.95"  # ends in .95: 1249.95
    NEAREST_5 = "5.00"  # multiples of five dollars: 1250.00


_GRADE = re.compile(r"^\s*([A-Za-z]*)\s*-?\s*(\d{1,2})")


def grade_number(grade: str | None) -> int | None:
    """The Sheldon number of a grade ("MS65" -> 65, "VF-20" -> 20, "PR69DCAM" -> 69)."""
    if not grade:
        return None
    match = _GRADE.match(grade)
    if match is None:
        return None
    number = int(match.group(2))
    return number if 1 <= number <= 70 else None


@dataclass(frozen=True, slots=True)
class LotFacts:
    """What rules look at: the auction house's description of a lot."""

    cost: Decimal
    title: str = ""
    metal: str | None = None
    service: str | None = None
    grade: str | None = None

    @classmethod
    def of(cls, described: Any) -> LotFacts:
        """The facts of anything described like a lot: a feed lot or a stored product."""
        return cls(
            cost=Decimal(described.cost),
            title=described.title,
            metal=described.metal,
            service=described.service,
            grade=described.grade,
        )


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    markup_percent: Decimal = Decimal(0)
    markup_fixed: Decimal = Decimal(0)
    rounding: Rounding = Rounding.NONE
    min_margin: Decimal | None = None  # absolute, in currency
    min_margin_percent: Decimal | None = None  # of cost
    priority: int = 100
    active: bool = True
    metals: frozenset[str] = field(default_factory=frozenset)  # empty = any
    services: frozenset[str] = field(default_factory=frozenset)
    min_grade: int | None = None
    max_grade: int | None = None
    min_cost: Decimal | None = None
    max_cost: Decimal | None = None
    title_contains: str | None = None

    def matches(self, lot: LotFacts) -> bool:
        """Whether every condition the rule sets holds for `lot` (case-insensitive text)."""
        if self.metals and (lot.metal or "").casefold() not in {m.casefold() for m in self.metals}:
            return False
        if self.services and (lot.service or "").casefold() not in {
            s.casefold() for s in self.services
        }:
            return False
        if self.min_grade is not None or self.max_grade is not None:
            number = grade_number(lot.grade)
            if number is None:
                return False
            if self.min_grade is not None and number < self.min_grade:
                return False
            if self.max_grade is not None and number > self.max_grade:
                return False
        if self.min_cost is not None and lot.cost < self.min_cost:
            return False
        if self.max_cost is not None and lot.cost > self.max_cost:
            return False
        return not (
            self.title_contains and self.title_contains.casefold() not in lot.title.casefold()
        )


@dataclass(frozen=True, slots=True)
class PriceDecision:
    price: Decimal
    cost: Decimal
    rule_id: str | None  # None: no rule matched and there is no default

    @property
    def margin(self) -> Decimal:
        return self.price - self.cost


def round_price(value: Decimal, mode: Rounding, *, up: bool = False) -> Decimal:
    """`value` rounded per `mode`: to the nearest allowed price, or the next one up (`up`)."""
    how = ROUND_CEILING if up else ROUND_HALF_UP
    if mode is Rounding.NONE:
        return value.quantize(CENT, rounding=how)
    if mode is Rounding.WHOLE:
        return value.quantize(Decimal(1), rounding=how).quantize(CENT)
    if mode is Rounding.NEAREST_5:
        return ((value / 5).quantize(Decimal(1), rounding=how) * 5).quantize(CENT)
    ending = Decimal("0.99") if mode is Rounding.CHARM_99 else Decimal("0.95")
    # Prices ending in `ending` are n + ending; round (value - ending) to a whole n.
    whole = (value - ending).quantize(Decimal(1), rounding=how)
    return max(whole, Decimal(0)) + ending


def apply_rule(rule: Rule, cost: Decimal) -> Decimal:
    """The price `rule` gives a lot that costs `cost`, minimum margin included."""
    raw = cost * (1 + rule.markup_percent / HUNDRED) + rule.markup_fixed
    price = round_price(raw, rule.rounding)
    floor = cost
    if rule.min_margin is not None:
        floor = max(floor, cost + rule.min_margin)
    if rule.min_margin_percent is not None:
        floor = max(floor, cost * (1 + rule.min_margin_percent / HUNDRED))
    if (rule.min_margin is not None or rule.min_margin_percent is not None) and price < floor:
        # Rounding (or a small markup) went below the margin floor: the next allowed price up.
        price = round_price(floor, rule.rounding, up=True)
    return price


def ordered(rules: Iterable[Rule]) -> list[Rule]:
    """Active rules in evaluation order: priority, then id (a stable tie-break)."""
    return sorted((r for r in rules if r.active), key=lambda r: (r.priority, r.id))


def price_lot(
    lot: LotFacts, rules: Sequence[Rule], *, default: Rule | None = None
) -> PriceDecision:
    """The first active matching rule by priority prices the lot; else `default`; else the
    lot is offered at cost with `rule_id=None` (the caller decides whether to list it)."""
    for rule in ordered(rules):
        if rule.matches(lot):
            return PriceDecision(apply_rule(rule, lot.cost), lot.cost, rule.id)
    if default is not None:
        return PriceDecision(apply_rule(default, lot.cost), lot.cost, default.id)
    return PriceDecision(lot.cost.quantize(CENT), lot.cost, None)
