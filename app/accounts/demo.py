"""Development demo: one professional account with a live and a sandbox key, pricing rules and
a simulated WooCommerce store, created on first start and remembered in the data directory so
later runs print the same keys. The app runs the first sync of a new demo before serving."""

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
from app.pricing import service as pricing
from app.stores import service as stores

DEMO_FILE = "demo-keys.json"


@dataclass(frozen=True)
class DemoCredentials:
    account_id: str
    live_key: str
    test_key: str


async def ensure_demo(data_dir: Path) -> DemoCredentials:
    """The demo account and its two keys: the saved ones while they still work, else new ones
    (saved owner-only in `data_dir`), with rules and a simulated store in live and sandbox."""
    path = data_dir / DEMO_FILE
    saved = _load(path)
    if saved is not None and await _still_valid(saved):
        return DemoCredentials(saved["account_id"], saved["live_key"], saved["test_key"])
    account = await accounts.create_account(name="Demo Coin Shop", plan=Plan.PROFESSIONAL)
    live = await keys.create_key(account_id=account.id, mode="live", name="demo live key")
    test = await keys.create_key(account_id=account.id, mode="test", name="demo sandbox key")
    data_dir.mkdir(parents=True, exist_ok=True)
    _save(path, {"account_id": account.id, "live_key": live.secret, "test_key": test.secret})
    await setup_demo_shop(account)
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


async def setup_demo_shop(account: Account) -> None:
    """Pricing rules and a simulated WooCommerce store in live and sandbox, so the first sync
    fills the catalog (1921 Morgan Dollar MS65 at 374.35 -> 430.50; 1893-S Morgan Dollar VF35
    at 1087.00 -> 1250.00, margin 163.00, as on the developer page)."""
    for environment in (Environment.LIVE, Environment.SANDBOX):
        actor = accounts.operator_principal(account, environment)
        await pricing.create_pricing_rule(
            actor,
            data=pricing.PricingRuleInput(
                name="Lots from $1,000: +15 %, whole dollars",
                priority=10,
                markup_percent=Decimal(15),
                rounding="1.00",
                min_cost=Decimal(1000),
            ),
        )
        await pricing.create_pricing_rule(
            actor,
            data=pricing.PricingRuleInput(
                name="Everything else: +15 %", priority=100, markup_percent=Decimal(15)
            ),
        )
        await stores.create_store(
            actor,
            data=stores.StoreCreate(
                name="Demo WooCommerce Store",
                platform="woocommerce",
                url="https://demo-store.simulated.invalid",
                credentials={"consumer_key": "ck_demo", "consumer_secret": "cs_demo"},
                simulated=True,
            ),
        )
