"""The delta diff with plain values and the simulator's evolving catalog."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from app.connectors.auction_house import catalog_at
from app.sync.diff import ChangeKind, LotDiff, lot_hash


def test_hash_is_canonical_and_sensitive_to_content():
    [lot] = catalog_at(seed=3, size=1, generation=0)
    same = replace(lot, cost=Decimal(str(lot.cost)) + Decimal("0.000"))
    assert lot_hash(same) == lot_hash(lot)
    assert lot_hash(replace(lot, cost=lot.cost + Decimal("0.01"))) != lot_hash(lot)
    assert lot_hash(replace(lot, grade="MS70")) != lot_hash(lot)
    assert lot_hash(replace(lot, images=list(reversed(lot.images)))) != lot_hash(lot)


def test_first_sync_creates_everything_and_a_second_changes_nothing():
    lots = catalog_at(seed=5, size=200, generation=0)
    first = LotDiff({})
    changes = [c for lot in lots if (c := first.feed(lot)) is not None]
    assert [c.kind for c in changes] == [ChangeKind.CREATED] * len([x for x in lots if x.available])
    known = {c.lot.ha_lot: c.content_hash for c in changes}

    again = LotDiff(known)
    assert [again.feed(lot) for lot in lots] == [None] * len(lots)
    assert again.unchanged == len(known)
    assert again.removed() == []


def test_an_evolved_catalog_yields_only_its_changes():
    before = catalog_at(seed=9, size=1000, generation=0)
    after = catalog_at(seed=9, size=1000, generation=1)
    known = {lot.ha_lot: lot_hash(lot) for lot in before if lot.available}
    diff = LotDiff(known)
    changes = [c for lot in after if (c := diff.feed(lot)) is not None]

    by_lot_before = {lot.ha_lot: lot for lot in before}
    created = {c.lot.ha_lot for c in changes if c.kind is ChangeKind.CREATED}
    updated = {c.lot.ha_lot for c in changes if c.kind is ChangeKind.UPDATED}
    assert created and created.isdisjoint(by_lot_before)
    assert updated and all(
        by_lot_before[h].cost != c.lot.cost
        for c in changes
        if c.kind is ChangeKind.UPDATED
        for h in [c.lot.ha_lot]
    )
    sold_now = {lot.ha_lot for lot in after if not lot.available}
    gone = set(known) - {lot.ha_lot for lot in after}
    assert set(diff.removed()) == (sold_now | gone) & set(known)
    # A delta touches a few percent of the catalog, not all of it.
    assert len(changes) + len(diff.removed()) < 0.1 * len(known)
    assert diff.unchanged == len(known) - len(updated) - len(diff.removed())
