"""The development demo account (`app.accounts.demo.ensure_demo`), in-process: the keys it
remembers in DATA_DIR, and what happens when that file is damaged or its keys are revoked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.accounts.demo import DEMO_FILE, ensure_demo
from app.accounts.models import Account, Environment, Plan
from app.auth import service as keys
from app.products.models import Product


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
        assert await Product.filter(account_id=account.id, environment=environment).count() == 5

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
