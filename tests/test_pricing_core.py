"""The pricing core with plain values: no database, no I/O."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from app.pricing.core import (
    LotFacts,
    Rounding,
    Rule,
    apply_rule,
    grade_number,
    price_lot,
    round_price,
)


def test_the_documented_example():
    rule = Rule(id="rule_a", markup_percent=D(15), rounding=Rounding.WHOLE)
    decision = price_lot(LotFacts(cost=D("1087.00")), [rule])
    assert (decision.price, decision.margin, decision.rule_id) == (
        D("1250.00"),
        D("163.00"),
        "rule_a",
    )


@pytest.mark.parametrize(
    ("value", "mode", "nearest", "up"),
    [
        (D("1250.05"), Rounding.NONE, D("1250.05"), D("1250.05")),
        (D("1250.054"), Rounding.NONE, D("1250.05"), D("1250.06")),
        (D("1250.05"), Rounding.WHOLE, D("1250.00"), D("1251.00")),
        (D("1250.50"), Rounding.WHOLE, D("1251.00"), D("1251.00")),
        (D("1250.05"), Rounding.CHARM_99, D("1249.99"), D("1250.99")),
        (D("1250.60"), Rounding.CHARM_99, D("1250.99"), D("1250.99")),
        (D("1250.05"), Rounding.CHARM_95, D("1249.95"), D("1250.95")),
        (D("0.10"), Rounding.CHARM_99, D("0.99"), D("0.99")),
        (D("1252.40"), Rounding.NEAREST_5, D("1250.00"), D("1255.00")),
        (D("1252.50"), Rounding.NEAREST_5, D("1255.00"), D("1255.00")),
        (D("1255.00"), Rounding.NEAREST_5, D("1255.00"), D("1255.00")),
    ],
)
def test_every_rounding_mode(value, mode, nearest, up):
    assert round_price(value, mode) == nearest
    assert round_price(value, mode, up=True) == up


def test_markup_percent_and_fixed_add_up():
    rule = Rule(id="r", markup_percent=D(10), markup_fixed=D("25.00"))
    assert apply_rule(rule, D("200.00")) == D("245.00")


def test_minimum_margin_absolute_raises_the_price_to_the_next_allowed_value():
    # 5 % on 100.00 is 105.00, below the 20.00 minimum margin: 120.00 rounded up to .99.
    rule = Rule(id="r", markup_percent=D(5), rounding=Rounding.CHARM_99, min_margin=D(20))
    price = apply_rule(rule, D("100.00"))
    assert price == D("120.99")
    assert price - D("100.00") >= 20


def test_minimum_margin_percent():
    rule = Rule(id="r", markup_fixed=D(1), min_margin_percent=D(12))
    assert apply_rule(rule, D("50.00")) == D("56.00")


def test_rounding_down_may_not_break_the_minimum_margin():
    # 1087 * 1.15 = 1250.05 rounds to 1250.00 (margin 163.00) unless 163.05 is required.
    rule = Rule(id="r", markup_percent=D(15), rounding=Rounding.WHOLE, min_margin=D("163.05"))
    assert apply_rule(rule, D("1087.00")) == D("1251.00")


def test_first_active_match_by_priority_wins_and_ties_break_by_id():
    gold = Rule(id="rule_gold", markup_percent=D(8), metals=frozenset({"Gold"}), priority=10)
    pcgs = Rule(id="rule_pcgs", markup_percent=D(20), services=frozenset({"PCGS"}), priority=20)
    off = Rule(id="rule_off", markup_percent=D(99), priority=1, active=False)
    tie_b = Rule(id="rule_b", markup_percent=D(30), priority=50)
    tie_a = Rule(id="rule_a", markup_percent=D(40), priority=50)
    rules = [tie_b, pcgs, off, gold, tie_a]
    lot = LotFacts(cost=D("1000.00"), metal="gold", service="PCGS")
    assert price_lot(lot, rules).rule_id == "rule_gold"
    lot = LotFacts(cost=D("1000.00"), metal="Silver", service="pcgs")
    assert price_lot(lot, rules).rule_id == "rule_pcgs"
    lot = LotFacts(cost=D("1000.00"), metal="Silver", service="NGC")
    assert price_lot(lot, rules).rule_id == "rule_a"


def test_the_account_default_applies_when_nothing_matches():
    only_gold = Rule(id="rule_gold", markup_percent=D(8), metals=frozenset({"Gold"}))
    default = Rule(id="default", markup_percent=D(25), rounding=Rounding.WHOLE)
    decision = price_lot(LotFacts(cost=D("99.00"), metal="Silver"), [only_gold], default=default)
    assert (decision.rule_id, decision.price) == ("default", D("124.00"))
    bare = price_lot(LotFacts(cost=D("99.00"), metal="Silver"), [only_gold])
    assert (bare.rule_id, bare.price, bare.margin) == (None, D("99.00"), D("0.00"))


@pytest.mark.parametrize(
    ("grade", "number"),
    [
        ("MS65", 65),
        ("VF20", 20),
        ("VF-35", 35),
        ("PR69DCAM", 69),
        ("PF70", 70),
        ("AU58+", 58),
        ("", None),
        (None, None),
        ("Genuine", None),
        ("MS99", None),
    ],
)
def test_grade_numbers(grade, number):
    assert grade_number(grade) == number


def test_conditions_grade_cost_and_title():
    rule = Rule(
        id="r",
        min_grade=63,
        max_grade=66,
        min_cost=D(100),
        max_cost=D(1000),
        title_contains="morgan",
    )
    good = LotFacts(cost=D(430), title="1921 Morgan Dollar MS65", grade="MS65")
    assert rule.matches(good)
    assert not rule.matches(LotFacts(cost=D(430), title="1921 Morgan Dollar MS67", grade="MS67"))
    assert not rule.matches(LotFacts(cost=D(99), title="1921 Morgan Dollar", grade="MS65"))
    assert not rule.matches(LotFacts(cost=D(1001), title="1921 Morgan Dollar", grade="MS65"))
    assert not rule.matches(LotFacts(cost=D(430), title="1921 Peace Dollar", grade="MS65"))
    assert not rule.matches(LotFacts(cost=D(430), title="1921 Morgan Dollar", grade=None))
