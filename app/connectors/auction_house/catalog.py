"""A deterministic, realistic auction-house catalog of U.S. and world coins and bullion.

Pure values only: `generate_catalog(seed, size)` is generation 0, `evolve` moves a catalog one
step (a few lots sell, a few reprice, new lots arrive) and `catalog_at(seed, size, generation)`
replays those steps. The same `(seed, size, generation)` always gives the same lots.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CENT = Decimal("0.01")
IMAGE_HOST = "https://images.ha.example"

# Per-step rates: with these, about 2% of a catalog changes from one generation to the next.
SELL_RATE = 0.008
REPRICE_RATE = 0.008
ARRIVAL_RATE = (0.005, 0.01)

Years = tuple[tuple[int, int], ...]


@dataclass
class Lot:
    """One auction lot: a single certified coin or bullion piece."""

    ha_lot: str
    title: str
    cost: Decimal
    metal: str
    grade: str
    service: str
    year: int
    mint: str | None
    denomination: str
    images: list[str] = field(default_factory=list)
    available: bool = True


@dataclass(frozen=True)
class Series:
    """A coin series: which years exist, which mints struck it, and what an MS63 costs."""

    name: str
    metal: str
    denomination: str
    years: Years
    mints: tuple[tuple[str | None, Years], ...]
    base_price: float  # a typical MS63 (or MS69 for bullion), in dollars
    melt: float = 0.0  # metal value; lots never sell below it
    bullion: bool = False
    weight: int = 1  # how often the series turns up in a catalog


SERIES: tuple[Series, ...] = (
    Series(
        "Morgan Dollar",
        "Silver",
        "$1",
        ((1878, 1904), (1921, 1921)),
        (
            (None, ((1878, 1904), (1921, 1921))),
            ("O", ((1879, 1904),)),
            ("S", ((1878, 1904), (1921, 1921))),
            ("CC", ((1878, 1885), (1889, 1893))),
            ("D", ((1921, 1921),)),
        ),
        base_price=85,
        melt=24,
        weight=8,
    ),
    Series(
        "Peace Dollar",
        "Silver",
        "$1",
        ((1921, 1928), (1934, 1935)),
        (
            (None, ((1921, 1928), (1934, 1935))),
            ("D", ((1926, 1927), (1934, 1935))),
            ("S", ((1922, 1928), (1934, 1935))),
        ),
        base_price=70,
        melt=24,
        weight=4,
    ),
    Series(
        "Saint-Gaudens Double Eagle",
        "Gold",
        "$20",
        ((1907, 1916), (1920, 1932)),  # 1933 is not legal to own
        (
            (None, ((1907, 1916), (1920, 1932))),
            ("D", ((1908, 1908), (1911, 1911), (1913, 1914), (1924, 1926))),
            ("S", ((1908, 1916), (1922, 1922), (1924, 1927))),
        ),
        base_price=3000,
        melt=2600,
        weight=4,
    ),
    Series(
        "Liberty Double Eagle",
        "Gold",
        "$20",
        ((1850, 1907),),
        (
            (None, ((1850, 1907),)),
            ("O", ((1850, 1861), (1879, 1879))),
            ("S", ((1854, 1907),)),
            ("CC", ((1870, 1893),)),
            ("D", ((1906, 1907),)),
        ),
        base_price=3200,
        melt=2600,
        weight=3,
    ),
    Series(
        "Walking Liberty Half Dollar",
        "Silver",
        "50C",
        ((1916, 1921), (1923, 1923), (1927, 1929), (1933, 1947)),
        (
            (None, ((1916, 1921), (1934, 1947))),
            ("D", ((1917, 1921), (1929, 1929), (1934, 1947))),
            ("S", ((1916, 1921), (1923, 1923), (1927, 1929), (1933, 1946))),
        ),
        base_price=90,
        melt=11,
        weight=3,
    ),
    Series(
        "Buffalo Nickel",
        "Nickel",
        "5C",
        ((1913, 1921), (1923, 1931), (1934, 1938)),
        (
            (None, ((1913, 1921), (1923, 1930), (1934, 1937))),
            ("D", ((1913, 1921), (1924, 1929), (1934, 1938))),
            ("S", ((1913, 1921), (1923, 1931), (1935, 1937))),
        ),
        base_price=75,
        weight=3,
    ),
    Series(
        "Mercury Dime",
        "Silver",
        "10C",
        ((1916, 1921), (1923, 1931), (1934, 1945)),
        (
            (None, ((1916, 1921), (1923, 1931), (1934, 1945))),
            ("D", ((1916, 1921), (1925, 1931), (1934, 1945))),
            ("S", ((1916, 1921), (1923, 1931), (1935, 1945))),
        ),
        base_price=25,
        melt=2,
        weight=3,
    ),
    Series(
        "Lincoln Cent",
        "Copper",
        "1C",
        ((1909, 1958),),
        (
            (None, ((1909, 1958),)),
            ("D", ((1911, 1958),)),
            ("S", ((1909, 1955),)),
        ),
        base_price=8,
        weight=3,
    ),
    Series(
        "American Silver Eagle",
        "Silver",
        "$1",
        ((1986, 2024),),
        ((None, ((1986, 2024),)), ("S", ((1986, 1992),)), ("W", ((2006, 2024),))),
        base_price=42,
        melt=31,
        bullion=True,
        weight=4,
    ),
    Series(
        "American Gold Eagle",
        "Gold",
        "$50",
        ((1986, 2024),),
        ((None, ((1986, 2024),)), ("W", ((1988, 2024),))),
        base_price=2850,
        melt=2650,
        bullion=True,
        weight=3,
    ),
    Series(
        "Great Britain Sovereign",
        "Gold",
        "£1",
        ((1871, 1932),),
        ((None, ((1871, 1932),)),),
        base_price=720,
        melt=640,
        weight=2,
    ),
    Series(
        "Mexico 50 Pesos",
        "Gold",
        "50 Pesos",
        ((1921, 1931), (1943, 1947)),
        ((None, ((1921, 1931), (1943, 1947))),),
        base_price=3400,
        melt=3280,
        weight=2,
    ),
)

SERIES_BY_NAME = {series.name: series for series in SERIES}

# Price relative to MS63; circulated grades trade near the floor, gems far above it.
GRADE_FACTORS: dict[str, float] = {
    "VF20": 0.40,
    "VF30": 0.45,
    "VF35": 0.50,
    "EF40": 0.55,
    "EF45": 0.60,
    "AU50": 0.68,
    "AU55": 0.74,
    "AU58": 0.82,
    "MS60": 0.88,
    "MS61": 0.91,
    "MS62": 0.95,
    "MS63": 1.0,
    "MS64": 1.35,
    "MS65": 2.2,
    "MS66": 5.0,
    "MS67": 14.0,
}
GRADE_WEIGHTS = (2, 2, 2, 3, 3, 3, 4, 5, 4, 5, 8, 12, 12, 9, 5, 2)
CLASSIC_GRADES = tuple(GRADE_FACTORS)

# Bullion is priced against MS69 / PR69; a perfect 70 carries a premium (far less, relatively,
# on a one-ounce gold coin than on a silver one).
PERFECT_PREMIUM = {"Silver": 1.6, "Gold": 1.12}

# Famous key dates: (series, year, mint) -> multiplier on the usual price.
KEY_DATES: dict[tuple[str, int, str | None], float] = {
    ("Morgan Dollar", 1893, "S"): 60.0,
    ("Morgan Dollar", 1889, "CC"): 25.0,
    ("Morgan Dollar", 1884, "S"): 12.0,
    ("Morgan Dollar", 1892, "S"): 10.0,
    ("Morgan Dollar", 1903, "O"): 4.0,
    ("Peace Dollar", 1928, None): 4.0,
    ("Peace Dollar", 1934, "S"): 6.0,
    ("Saint-Gaudens Double Eagle", 1920, "S"): 8.0,
    ("Saint-Gaudens Double Eagle", 1921, None): 10.0,
    ("Saint-Gaudens Double Eagle", 1926, "D"): 6.0,
    ("Liberty Double Eagle", 1870, "CC"): 30.0,
    ("Liberty Double Eagle", 1861, "O"): 5.0,
    ("Walking Liberty Half Dollar", 1921, "S"): 15.0,
    ("Walking Liberty Half Dollar", 1916, "S"): 5.0,
    ("Buffalo Nickel", 1913, "S"): 6.0,
    ("Buffalo Nickel", 1926, "S"): 10.0,
    ("Mercury Dime", 1916, "D"): 80.0,
    ("Mercury Dime", 1921, None): 12.0,
    ("Lincoln Cent", 1909, "S"): 20.0,
    ("Lincoln Cent", 1914, "D"): 25.0,
    ("Lincoln Cent", 1931, "S"): 8.0,
}


def _in(year: int, ranges: Years) -> bool:
    return any(first <= year <= last for first, last in ranges)


def _money(amount: float) -> Decimal:
    return Decimal(repr(amount)).quantize(CENT, rounding=ROUND_HALF_UP)


def make_title(series: str, year: int, mint: str | None, grade: str) -> str:
    """`1893-S Morgan Dollar VF35`: the mint mark follows the year; Philadelphia has none."""
    date = f"{year}-{mint}" if mint else str(year)
    return f"{date} {series} {grade}"


def image_urls(ha_lot: str) -> list[str]:
    """Obverse and reverse photographs of a lot."""
    return [f"{IMAGE_HOST}/lots/{ha_lot}/{side}.jpg" for side in ("obverse", "reverse")]


def _price(series: Series, year: int, mint: str | None, grade: str, rng: random.Random) -> Decimal:
    if series.bullion:
        factor = PERFECT_PREMIUM[series.metal] if grade.endswith("70") else 1.0
        if grade.startswith("P"):
            factor *= 1.25 if series.metal == "Silver" else 1.1
        raw = series.base_price * factor * rng.uniform(0.95, 1.08)
    else:
        factor = GRADE_FACTORS[grade] * KEY_DATES.get((series.name, year, mint), 1.0)
        if series.melt > series.base_price / 2:
            # Gold trades at melt plus a numismatic premium; the grade scales the premium.
            raw = series.melt + (series.base_price - series.melt) * factor
        else:
            raw = series.base_price * factor
        raw *= rng.uniform(0.85, 1.2)
    floor = series.melt * rng.uniform(1.02, 1.06) if series.melt else 1.0
    return _money(max(raw, floor))


def _grade(series: Series, mint: str | None, service: str, rng: random.Random) -> str:
    if not series.bullion:
        return rng.choices(CLASSIC_GRADES, weights=GRADE_WEIGHTS)[0]
    points = rng.choices(("69", "70"), weights=(3, 2))[0]
    if mint is None:
        return f"MS{points}"
    # Proofs: PCGS writes PR, NGC writes PF.
    return f"{'PF' if service.startswith('NGC') else 'PR'}{points}"


def _new_lot(ha_lot: str, rng: random.Random) -> Lot:
    series = rng.choices(SERIES, weights=[s.weight for s in SERIES])[0]
    years = [y for first, last in series.years for y in range(first, last + 1)]
    year = rng.choice(years)
    mints = [mark for mark, ranges in series.mints if _in(year, ranges)]
    mint = rng.choice(mints)
    service = rng.choices(("PCGS", "NGC"), weights=(55, 45))[0]
    grade = _grade(series, mint, service, rng)
    if not series.bullion and rng.random() < 0.12:
        service += " CAC"
    cost = _price(series, year, mint, grade, rng)
    if service.endswith("CAC"):
        cost = _money(float(cost) * 1.15)
    return Lot(
        ha_lot=ha_lot,
        title=make_title(series.name, year, mint, grade),
        cost=cost,
        metal=series.metal,
        grade=grade,
        service=service,
        year=year,
        mint=mint,
        denomination=series.denomination,
        images=image_urls(ha_lot),
    )


def _new_lots(count: int, after: int, rng: random.Random) -> list[Lot]:
    lots = []
    number = after
    for _ in range(count):
        number += rng.randint(1, 7)
        lots.append(_new_lot(str(number), rng))
    return lots


def _step_rng(seed: int, generation: int) -> random.Random:
    return random.Random(f"auction-house:{seed}:{generation}")


def generate_catalog(seed: int, size: int) -> list[Lot]:
    """Generation 0: `size` available lots, ordered by lot number."""
    rng = _step_rng(seed, 0)
    return _new_lots(size, rng.randint(1_000_000, 1_900_000), rng)


def evolve(lots: Sequence[Lot], *, seed: int, generation: int) -> list[Lot]:
    """The catalog at `generation`, given the one at `generation - 1`.

    Lots sold in the previous generation disappear, about 1% of the rest sell (they stay listed
    with `available=False` for one generation), about 1% reprice, and new lots arrive with
    higher lot numbers. The input is not modified.
    """
    rng = _step_rng(seed, generation)
    last_number = max((int(lot.ha_lot) for lot in lots), default=1_000_000)
    result: list[Lot] = []
    for lot in lots:
        if not lot.available:
            continue
        roll = rng.random()
        if roll < SELL_RATE:
            result.append(replace(lot, images=list(lot.images), available=False))
        elif roll < SELL_RATE + REPRICE_RATE:
            result.append(replace(lot, images=list(lot.images), cost=_reprice(lot.cost, rng)))
        else:
            result.append(replace(lot, images=list(lot.images)))
    low, high = (max(1, round(len(lots) * rate)) for rate in ARRIVAL_RATE)
    result.extend(_new_lots(rng.randint(low, high), last_number, rng))
    return result


def _reprice(cost: Decimal, rng: random.Random) -> Decimal:
    factor = rng.choice((rng.uniform(0.88, 0.97), rng.uniform(1.03, 1.15)))
    return max(_money(float(cost) * factor), CENT)


def catalog_at(seed: int, size: int, generation: int = 0) -> list[Lot]:
    """The catalog for `seed` and `size` after `generation` steps of evolution."""
    if generation < 0:
        raise ValueError("generation must be >= 0")
    lots = generate_catalog(seed, size)
    for step in range(1, generation + 1):
        lots = evolve(lots, seed=seed, generation=step)
    return lots


def lot_to_json(lot: Lot) -> dict[str, Any]:
    """The wire form of a lot: money as a string with two decimals."""
    return {
        "ha_lot": lot.ha_lot,
        "title": lot.title,
        "cost": f"{lot.cost:.2f}",
        "metal": lot.metal,
        "grade": lot.grade,
        "service": lot.service,
        "year": lot.year,
        "mint": lot.mint,
        "denomination": lot.denomination,
        "images": list(lot.images),
        "available": lot.available,
    }


def lot_from_json(data: dict[str, Any]) -> Lot:
    """Parse the wire form; raises `KeyError`, `TypeError` or `ValueError` on a bad shape."""
    images = data["images"]
    if not isinstance(images, list) or not all(isinstance(url, str) for url in images):
        raise TypeError("images must be a list of strings")
    mint = data["mint"]
    if mint is not None and not isinstance(mint, str):
        raise TypeError("mint must be a string or null")
    cost = Decimal(str(data["cost"]))
    if not cost.is_finite() or cost < 0:
        raise ValueError("cost must be a non-negative amount")
    return Lot(
        ha_lot=str(data["ha_lot"]),
        title=str(data["title"]),
        cost=cost.quantize(CENT),
        metal=str(data["metal"]),
        grade=str(data["grade"]),
        service=str(data["service"]),
        year=int(data["year"]),
        mint=mint,
        denomination=str(data["denomination"]),
        images=list(images),
        available=bool(data["available"]),
    )


def featured_lots() -> list[Lot]:
    """The developer page's example coins, with fixed lot numbers below every generated one
    (so they open the feed). The demo's simulator offers them and they never sell."""
    rows = (
        ("123456", "Morgan Dollar", 1921, None, "MS65", "PCGS", "Silver", "$1", "374.35"),
        (
            "345678",
            "Saint-Gaudens Double Eagle",
            1924,
            None,
            "MS64",
            "NGC",
            "Gold",
            "$20",
            "2410.00",
        ),
        ("567890", "Buffalo Nickel", 1937, "D", "MS65", "PCGS", "Nickel", "5C", "88.00"),
        ("789012", "Morgan Dollar", 1893, "S", "VF35", "PCGS", "Silver", "$1", "1087.00"),
        (
            "901234",
            "Walking Liberty Half Dollar",
            1943,
            None,
            "MS66",
            "NGC",
            "Silver",
            "50C",
            "96.00",
        ),
    )
    return [
        Lot(
            ha_lot=number,
            title=make_title(series, year, mint, grade),
            cost=Decimal(cost),
            metal=metal,
            grade=grade,
            service=service,
            year=year,
            mint=mint,
            denomination=denomination,
            images=image_urls(number),
        )
        for number, series, year, mint, grade, service, metal, denomination, cost in rows
    ]


def lots_by_number(lots: Iterable[Lot]) -> dict[str, Lot]:
    """Index lots by `ha_lot`."""
    return {lot.ha_lot: lot for lot in lots}
