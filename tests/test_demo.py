"""The development demo account (`app.accounts.demo.ensure_demo`), in-process: the keys it
remembers in DATA_DIR, and what happens when that file is damaged or its keys are revoked."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from app.accounts.demo import DEMO_FILE, ensure_demo
from app.accounts.models import Account, Environment, Plan
from app.auth import service as keys
from app.pricing.models import PricingRule
from app.stores.models import Platform, Store


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "demo-data"
    path.mkdir()
    return path


async def test_second_start_returns_the_same_keys(app, data_dir: Path):
    first = await ensure_demo(data_dir)
    again = await ensure_demo(data_dir)
    assert again == first
    assert first.live_key.startswith("sa_live_") and first.test_key.startswith("sa_test_")
    account = await Account.get(id=first.account_id)
    assert account.plan is Plan.PROFESSIONAL
    live = await keys.authenticate_api_key(first.live_key)
    test = await keys.authenticate_api_key(first.test_key)
    assert (live.environment, test.environment) == (Environment.LIVE, Environment.SANDBOX)
    assert live.account_id == test.account_id == first.account_id
    for environment in Environment:
        store = await Store.get(account_id=account.id, environment=environment)
        assert (store.platform, store.simulated) == (Platform.WOOCOMMERCE, True)
        rules = await PricingRule.filter(account_id=account.id, environment=environment)
        assert sorted((r.priority, r.markup_percent, r.min_cost) for r in rules) == [
            (10, Decimal(15), Decimal(1000)),
            (100, Decimal(15), None),
        ]

    path = data_dir / DEMO_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text()) == {
        "account_id": first.account_id,
        "live_key": first.live_key,
        "test_key": first.test_key,
    }
    assert [p.name for p in data_dir.iterdir()] == [DEMO_FILE]  # no temporary file left over


@pytest.mark.parametrize(
    "content", [b'{"account_id": "acct_', b"[]", b'{"account_id": 1}', b"", b"\xff\xfe"]
)
async def test_a_damaged_keys_file_is_replaced(app, data_dir: Path, content: bytes):
    (data_dir / DEMO_FILE).write_bytes(content)
    demo = await ensure_demo(data_dir)
    assert (await keys.authenticate_api_key(demo.live_key)).account_id == demo.account_id
    assert json.loads((data_dir / DEMO_FILE).read_text())["live_key"] == demo.live_key
    assert await ensure_demo(data_dir) == demo


async def test_revoked_demo_keys_are_replaced(app, data_dir: Path):
    first = await ensure_demo(data_dir)
    [live] = [
        k for k in await keys.list_keys(account_id=first.account_id) if k.prefix == "sa_live_"
    ]
    await keys.revoke_key(live.id)
    second = await ensure_demo(data_dir)
    assert second.live_key != first.live_key
    assert (await keys.authenticate_api_key(second.live_key)).account_id == second.account_id


async def test_the_first_sync_lists_the_developer_page_coins(app, data_dir: Path):
    from app import runtime
    from app.connectors.simulated import Simulators
    from app.main import _first_demo_sync
    from app.products.models import Product
    from app.sync.models import SyncStatus

    rt = runtime.current()
    # What `make run` has: development settings with the demo on (the featured coins).
    rt.simulators = Simulators(rt.settings.model_copy(update={"demo": True}))
    demo = await ensure_demo(data_dir)
    [live, sandbox] = await _first_demo_sync(demo)
    assert live.status is sandbox.status is SyncStatus.COMPLETED
    assert live.products_added == sandbox.products_added > 5
    morgan = await Product.get(account_id=demo.account_id, environment="live", ha_lot="123456")
    assert (morgan.title, morgan.price) == ("1921 Morgan Dollar MS65", Decimal("430.50"))
    vf35 = await Product.get(account_id=demo.account_id, environment="live", ha_lot="789012")
    assert (vf35.title, vf35.price, vf35.margin) == (
        "1893-S Morgan Dollar VF35",
        Decimal("1250.00"),
        Decimal("163.00"),
    )
    # Only the first start syncs inline; later starts leave it to the schedule.
    assert await _first_demo_sync(demo) == []
