"""The `syncauction` console script, run for real in subprocesses against a temporary SQLite
data directory: what an operator types and what a script parsing `--json` relies on (one JSON
object as the last line of stdout; errors on stderr with a non-zero exit status)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import Settings


def _script() -> str:
    beside = Path(sys.executable).with_name("syncauction")
    found = str(beside) if beside.exists() else shutil.which("syncauction")
    assert found, "the `syncauction` console script is not installed (pip install -e .)"
    return found


SCRIPT = _script()


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without any SYNCAUCTION_* setting, pointed at `data_dir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCAUCTION_")}
    env.update(
        SYNCAUCTION_DATA_DIR=str(data_dir), SYNCAUCTION_ENV="development", PYTHONUNBUFFERED="1"
    )
    env.update(extra)
    return env


def run(data_dir: Path, *args: str, env: dict[str, str] | None = None):
    return subprocess.run(
        [SCRIPT, *args],
        env=env or cli_env(data_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )


def ok_json(data_dir: Path, *args: str) -> dict:
    """Run with --json, require success, and return the JSON object on the last line."""
    result = run(data_dir, *args, "--json")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines, f"no output; stderr: {result.stderr}"
    payload = json.loads(lines[-1])
    assert isinstance(payload, dict)
    return payload


def fails(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run with --json, require a failure reported on stderr only; return stderr."""
    result = run(data_dir, *args, "--json", env=env)
    assert result.returncode != 0, result.stdout
    assert result.stderr.strip(), "an error must be explained on stderr"
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout.strip() == "", f"nothing may be printed on stdout: {result.stdout!r}"
    return result.stderr


def database_bytes(data_dir: Path) -> bytes:
    """Everything SQLite keeps on disk for the database (main file, WAL and journal)."""
    files = sorted(data_dir.glob("syncauction.sqlite3*"))
    assert files
    return b"".join(f.read_bytes() for f in files)


def sqlite_dump(data_dir: Path) -> str:
    conn = sqlite3.connect(data_dir / "syncauction.sqlite3")
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "data"
    assert ok_json(path, "migrate") == {"migrated": True}
    return path


@pytest.fixture(scope="module")
def professional(data_dir: Path) -> str:
    return ok_json(data_dir, "accounts", "create", "--name", "Pro Coins", "--plan", "professional")[
        "id"
    ]


@pytest.fixture(scope="module")
def starter(data_dir: Path) -> str:
    return ok_json(data_dir, "accounts", "create", "--name", "Small Coins", "--plan", "starter")[
        "id"
    ]


def test_migrate_creates_the_database_and_can_run_again(data_dir: Path):
    # The module fixture migrated a directory that did not exist yet; running again is a no-op.
    assert (data_dir / "syncauction.sqlite3").is_file()
    again = run(data_dir, "migrate")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "migrations applied"


def test_accounts_create_prints_the_new_id_as_the_last_json_line(data_dir: Path):
    created = ok_json(data_dir, "accounts", "create", "--name", "Morgan & Co", "--plan", "starter")
    assert created["id"].startswith("acct_")
    assert created["plan"] == "starter" and created["name"] == "Morgan & Co"
    big = ok_json(
        data_dir,
        "accounts",
        "create",
        "--name",
        "Big",
        "--plan",
        "enterprise",
        "--rate-limit",
        "1200",
    )
    listed = {a["id"]: a for a in ok_json(data_dir, "accounts", "list")["accounts"]}
    assert listed[created["id"]]["rate_limit"] == 100
    assert listed[big["id"]]["rate_limit"] == 1200


def test_accounts_create_refuses_bad_input_on_stderr(data_dir: Path):
    refused = {
        "Gold": (["--plan", "gold"], "invalid choice"),
        "Starter custom": (["--plan", "starter", "--rate-limit", "50"], "enterprise"),
    }
    for name, (args, message) in refused.items():
        assert message in fails(data_dir, "accounts", "create", "--name", name, *args)
    names = {a["name"] for a in ok_json(data_dir, "accounts", "list")["accounts"]}
    assert not names & refused.keys()


def test_keys_create_for_a_professional_account(data_dir: Path, professional: str):
    new_key = ["keys", "create", "--account", professional, "--scopes", "read,write", "--mode"]
    live = ok_json(data_dir, *new_key, "live")
    test = ok_json(data_dir, *new_key, "test")
    assert live["key"].startswith("sa_live_") and len(live["key"]) > 30
    assert test["key"].startswith("sa_test_") and len(test["key"]) > 30
    assert live["key"] != test["key"]
    assert live["id"].startswith("key_") and test["id"].startswith("key_")
    assert live["scopes"] == ["read", "write"] == test["scopes"]
    assert (live["environment"], test["environment"]) == ("live", "sandbox")


def test_starter_keys_are_live_and_read_only(data_dir: Path, starter: str):
    assert "sandbox" in fails(data_dir, "keys", "create", "--account", starter, "--mode", "test")
    assert "read" in fails(
        data_dir, "keys", "create", "--account", starter, "--mode", "live", "--scopes", "read,write"
    )
    key = ok_json(data_dir, "keys", "create", "--account", starter, "--mode", "live")
    assert key["scopes"] == ["read"] and key["key"].startswith("sa_live_")


def test_keys_list_masks_keys_and_the_database_keeps_only_a_hash(data_dir: Path, professional: str):
    # Without --json the new key is shown once, on its own last line, for a human to copy.
    created = run(data_dir, "keys", "create", "--account", professional, "--mode", "live")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("sa_live_")
    masked = f"sa_live_…{secret[-4:]}"

    listed = run(data_dir, "keys", "list", "--account", professional, "--json")
    assert listed.returncode == 0, listed.stderr
    assert secret not in listed.stdout
    keys = json.loads(listed.stdout.splitlines()[-1])["keys"]
    [entry] = [k for k in keys if k["key"] == masked]
    assert entry["account"] == professional and entry["revoked"] is False
    assert {k["account"] for k in keys} == {professional}

    human = run(data_dir, "keys", "list")
    assert human.returncode == 0, human.stderr
    assert masked in human.stdout
    assert secret not in human.stdout

    raw = database_bytes(data_dir)
    assert secret.encode() not in raw and secret[8:].encode() not in raw
    # An account that does not exist is an error, not an empty list.
    assert "No such account: acct_nope" in fails(data_dir, "keys", "list", "--account", "acct_nope")


def test_keys_revoke_marks_the_key_revoked(data_dir: Path, professional: str):
    created = ok_json(data_dir, "keys", "create", "--account", professional, "--mode", "test")
    revoked = ok_json(data_dir, "keys", "revoke", created["id"])
    assert revoked == {"id": created["id"], "revoked": True}
    keys = {k["id"]: k for k in ok_json(data_dir, "keys", "list")["keys"]}
    assert keys[created["id"]]["revoked"] is True
    assert "key_nope" in fails(data_dir, "keys", "revoke", "key_nope")


def test_stores_create_keeps_credentials_encrypted_at_rest(data_dir: Path, professional: str):
    consumer_key = "ck_4b1f0e2d9c8a7b6f5e4d3c2b1a0f9e8d7c6b5a4f"
    consumer_secret = "cs_9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"
    store = ok_json(
        data_dir,
        "stores",
        "create",
        "--account",
        professional,
        "--platform",
        "woocommerce",
        "--name",
        "My WooCommerce Store",
        "--url",
        "https://shop.example.com",
        "--consumer-key",
        consumer_key,
        "--consumer-secret",
        consumer_secret,
    )
    assert store["id"].startswith("store_")
    assert store["platform"] == "woocommerce"
    token = "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"
    shop = ok_json(
        data_dir,
        "stores",
        "create",
        "--account",
        professional,
        "--platform",
        "shopify",
        "--name",
        "My Shopify Store",
        "--url",
        "https://coins.myshopify.com",
        "--access-token",
        token,
    )
    assert shop["id"].startswith("store_") and shop["platform"] == "shopify"

    dump = sqlite_dump(data_dir)
    assert store["id"] in dump and shop["id"] in dump  # the dump does hold the stores...
    raw = database_bytes(data_dir)
    for secret in (consumer_key, consumer_secret, token):  # ...but never their credentials
        assert secret not in dump
        assert secret.encode() not in raw


def test_stores_create_refuses_bad_input(data_dir: Path, professional: str, starter: str):
    woo = ["--platform", "woocommerce", "--name", "Shop", "--url", "https://shop.example.com"]
    creds = ["--consumer-key", "ck_1", "--consumer-secret", "cs_1"]
    missing = fails(data_dir, "stores", "create", "--account", professional, *woo)
    assert "woocommerce credentials need exactly: consumer_key, consumer_secret." in missing
    half = fails(data_dir, "stores", "create", "--account", professional, *woo, *creds[:2])
    assert "need exactly: consumer_key, consumer_secret." in half
    assert "acct_nope" in fails(
        data_dir, "stores", "create", "--account", "acct_nope", *woo, *creds
    )
    # A starter account has no sandbox, so no sandbox store either.
    assert "sandbox" in fails(
        data_dir, "stores", "create", "--account", starter, "--mode", "test", *woo, *creds
    )


def test_configuration_errors_are_reported_without_a_traceback(tmp_path: Path):
    production = cli_env(tmp_path, SYNCAUCTION_ENV="production")
    assert "SYNCAUCTION_SECRET_KEY" in fails(tmp_path, "accounts", "list", env=production)
    assert "SYNCAUCTION_SECRET_KEY" in fails(tmp_path, "serve", env=production)
    assert "SYNCAUCTION_REDIS_URL" in fails(tmp_path, "worker")
    staging = cli_env(tmp_path, SYNCAUCTION_ENV="staging")
    message = fails(tmp_path, "accounts", "list", env=staging)
    assert "invalid configuration: SYNCAUCTION_ENV: Input should be 'development' or" in message


def test_bad_settings_name_their_variable_and_never_show_a_url(tmp_path: Path):
    def message(**variables: str) -> str:
        return fails(tmp_path, "accounts", "list", env=cli_env(tmp_path, **variables))

    typo = message(SYNCAUCTION_REDIS_URL="reddis://:topsecretpw@127.0.0.1:6379/0")
    assert typo.startswith("error: invalid configuration: SYNCAUCTION_REDIS_URL: must start with")
    assert "topsecretpw" not in typo
    garbage = message(SYNCAUCTION_DATABASE_URL="postgress://app:hunter2@db/app")
    assert "SYNCAUCTION_DATABASE_URL: must start with sqlite://" in garbage
    assert "hunter2" not in garbage
    assert "SYNCAUCTION_PORT: Input should be less than or equal to 65535" in message(
        SYNCAUCTION_PORT="70000"
    )
    assert "SYNCAUCTION_LOG_LEVEL: Input should be 'DEBUG'" in message(SYNCAUCTION_LOG_LEVEL="x")
    production_demo = message(
        SYNCAUCTION_ENV="production", SYNCAUCTION_SECRET_KEY="s" * 48, SYNCAUCTION_DEMO="true"
    )
    assert "SYNCAUCTION_DEMO is for development" in production_demo
    unreachable = message(SYNCAUCTION_DATABASE_URL="postgres://postgres:pw@127.0.0.1:1/x")
    assert unreachable.startswith("error: cannot connect: ConnectionRefusedError")
    assert "Traceback" not in unreachable


def test_settings_read_an_empty_url_as_unset_and_a_level_in_any_case(tmp_path: Path):
    settings = Settings(data_dir=tmp_path, redis_url="", database_url=" ", log_level="debug")
    assert settings.redis_url is None and settings.embedded
    assert settings.should_migrate_at_startup  # embedded: migrates at start-up
    assert settings.database_url is None
    assert settings.log_level == "DEBUG"
    assert Settings(data_dir=tmp_path, log_level="warn").log_level == "WARNING"
    assert Settings(data_dir=tmp_path, redis_url="Redis://127.0.0.1:6379/0").redis_url


def test_serve_on_a_port_in_use_fails_before_starting_anything(tmp_path: Path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        message = fails(tmp_path, "serve", "--port", str(port))
    assert message.strip().endswith(f"cannot listen on 127.0.0.1:{port}: Address already in use")
    assert "SyncAuction is running" not in message
    assert not (tmp_path / "demo-keys.json").exists()  # no demo created, no banner printed
    assert not (tmp_path / "syncauction.sqlite3").exists()  # nor the database migrated


def test_a_sqlite_file_in_a_new_directory_is_created(tmp_path: Path):
    database = tmp_path / "not" / "yet" / "there.sqlite3"
    env = cli_env(tmp_path, SYNCAUCTION_DATABASE_URL=f"sqlite://{database}")
    result = run(tmp_path, "migrate", env=env)
    assert result.returncode == 0, result.stderr
    assert database.is_file()


def test_simulate_auction_house_serves_the_lot_feed(tmp_path: Path):
    import socket
    import time

    import httpx

    assert "--size must be" in fails(tmp_path, "simulate", "auction-house", "--size", "0")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [SCRIPT, "simulate", "auction-house", "--port", str(port), "--size", "30", "--seed", "4"],
        env=cli_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/v1/lots"
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(url, headers={"Authorization": "Bearer sim-token"})
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the simulator did not start"
                time.sleep(0.2)
        assert response.status_code == 200
        body = response.json()
        assert body["total"] == 30
        assert all(lot["ha_lot"].isdigit() and lot["title"] for lot in body["lots"])
        assert httpx.get(url).status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_sync_runs_against_a_simulated_store_and_reports_its_stats(
    data_dir: Path, professional: str
):
    store = ok_json(
        data_dir,
        "stores",
        "create",
        "--account",
        professional,
        "--platform",
        "woocommerce",
        "--name",
        "Sandbox shop",
        "--mode",
        "test",
        "--simulated",
    )
    assert store["id"].startswith("store_")
    assert store["simulated"] is True
    assert store["url"] == "https://woocommerce.simulated.invalid"

    env = cli_env(data_dir, SYNCAUCTION_SIMULATOR_CATALOG_SIZE="40")
    result = run(
        data_dir,
        "sync",
        "--account",
        professional,
        "--mode",
        "test",
        "--type",
        "full",
        "--wait",
        "--json",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout.strip().splitlines()[-1])
    assert job["id"].startswith("sync_")
    assert (job["type"], job["status"], job["trigger"]) == ("full", "completed", "cli")
    assert job["stats"]["products_added"] == job["progress"]["lots_total"] - _unavailable(40)
    assert job["stores_updated"] == [store["id"]]
    assert job["stores"][store["id"]]["pushed"] == job["stats"]["products_added"]

    # Human output: a delta right after the full finds nothing to change.
    human = run(data_dir, "sync", "--account", professional, "--mode", "test", "--wait", env=env)
    assert human.returncode == 0, human.stderr
    assert human.stdout.startswith("sync sync_")
    assert "(delta) completed: 0 added, 0 updated, 0 removed, 0 errors" in human.stdout
    assert " lots\n" in human.stderr  # progress, one line per phase off a terminal


def _unavailable(size: int) -> int:
    from app.connectors.auction_house.catalog import catalog_at

    return sum(1 for lot in catalog_at(1, size) if not lot.available)


def test_sync_refuses_a_sandbox_without_the_plan(data_dir: Path, starter: str):
    error = fails(data_dir, "sync", "--account", starter, "--mode", "test")
    assert "sandbox" in error
