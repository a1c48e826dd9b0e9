"""Development demo: one professional account with a live and a sandbox key, created on first
start and remembered in the data directory so later runs print the same keys."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from app.accounts import service as accounts
from app.accounts.models import Account, Environment, Plan
from app.auth import service as keys
from app.auth.models import ApiKey
from app.crypto import hash_api_key
from app.products import service as products
from app.products.models import Product

DEMO_FILE = "demo-keys.json"

# A few lots so the first `GET /v1/products` shows what the API returns; syncs add the rest.
# Seeded last-to-first, so the newest-first list opens with the developer page's example coin.
SAMPLE_LOTS = [
    (
        "123456",
        "1921 Morgan Dollar MS65",
        "Silver",
        "MS65",
        "PCGS",
        1921,
        None,
        "$1",
        "374.35",
        "430.50",
    ),
    (
        "789012",
        "1893-S Morgan Dollar VF35",
        "Silver",
        "VF35",
        "PCGS",
        1893,
        "S",
        "$1",
        "1087.00",
        "1250.00",
    ),
    (
        "345678",
        "1924 Saint-Gaudens Double Eagle MS64",
        "Gold",
        "MS64",
        "NGC",
        1924,
        None,
        "$20",
        "2410.00",
        "2772.00",
    ),
    (
        "901234",
        "1943 Walking Liberty Half Dollar MS66",
        "Silver",
        "MS66",
        "NGC",
        1943,
        None,
        "50C",
        "96.00",
        "119.00",
    ),
    (
        "567890",
        "1937-D Buffalo Nickel MS65",
        "Nickel",
        "MS65",
        "PCGS",
        1937,
        "D",
        "5C",
        "88.00",
        "109.00",
    ),
]


@dataclass(frozen=True)
class DemoCredentials:
    account_id: str
    live_key: str
    test_key: str


async def ensure_demo(data_dir: Path) -> DemoCredentials:
    """The demo account and its two keys: the saved ones while they still work, else new ones
    (saved owner-only in `data_dir`), with a few sample coins in live and sandbox."""
    path = data_dir / DEMO_FILE
    saved = _load(path)
    if saved is not None and await _still_valid(saved):
        return DemoCredentials(saved["account_id"], saved["live_key"], saved["test_key"])
    account = await accounts.create_account(name="Demo Coin Shop", plan=Plan.PROFESSIONAL)
    live = await keys.create_key(account_id=account.id, mode="live", name="demo live key")
    test = await keys.create_key(account_id=account.id, mode="test", name="demo sandbox key")
    data_dir.mkdir(parents=True, exist_ok=True)
    _save(path, {"account_id": account.id, "live_key": live.secret, "test_key": test.secret})
    await seed_sample_products(account)
    return DemoCredentials(account.id, live.secret, test.secret)


def _load(path: Path) -> dict[str, str] | None:
    """The saved demo keys, or None when the file is missing, unreadable or malformed (a
    damaged file must not stop the server from starting; a new demo account replaces it)."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    fields = ("account_id", "live_key", "test_key")
    if not isinstance(saved, dict) or not all(isinstance(saved.get(f), str) for f in fields):
        return None
    return saved


def _save(path: Path, saved: dict[str, str]) -> None:
    """Write the keys readable by the owner only from the start, and atomically, so a crash
    mid-write never leaves a truncated file behind."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(saved))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


async def _still_valid(saved: dict[str, str]) -> bool:
    if not await Account.exists(id=saved.get("account_id", "")):
        return False
    for key in (saved.get("live_key", ""), saved.get("test_key", "")):
        if not await ApiKey.exists(key_hash=hash_api_key(key), revoked_at=None):
            return False
    return True


async def seed_sample_products(account: Account) -> None:
    for environment in (Environment.LIVE, Environment.SANDBOX):
        actor = accounts.operator_principal(account, environment)
        for lot, title, metal, grade, service, year, mint, denom, cost, price in reversed(
            SAMPLE_LOTS
        ):
            if await Product.exists(account_id=account.id, environment=environment, ha_lot=lot):
                continue
            await products.create_product(
                actor,
                lot=products.LotInput(
                    ha_lot=lot,
                    title=title,
                    metal=metal,
                    grade=grade,
                    service=service,
                    year=year,
                    mint=mint,
                    denomination=denom,
                    cost=Decimal(cost),
                    price=Decimal(price),
                    images=[
                        f"https://images.syncauction.example/lots/{lot}/obverse.jpg",
                        f"https://images.syncauction.example/lots/{lot}/reverse.jpg",
                    ],
                ),
            )
