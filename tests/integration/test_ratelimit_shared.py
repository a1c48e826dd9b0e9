"""Two real API processes on one Redis draw on one rate-limit budget.

Starts two `syncauction serve` processes (uvicorn) against a fresh PostgreSQL database and the
test Redis, creates an enterprise account limited to 40 requests/minute with the CLI, then sends
100 concurrent requests split across both servers: exactly 40 may succeed. With per-process
(memory) storage each server would let 40 through, 80 in all.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    TEST_DATABASE_URL,
    TEST_REDIS_URL,
    _asyncpg_dsn,
    _replace_database,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (TEST_DATABASE_URL and TEST_REDIS_URL),
        reason="needs PostgreSQL and Redis: set SYNCAUCTION_TEST_DATABASE_URL and "
        "SYNCAUCTION_TEST_REDIS_URL",
    ),
]

BIN = Path(sys.executable).parent
SYNCAUCTION = str(BIN / "syncauction")
SECRET = "integration-secret-0123456789abcdefghijk"  # 40 characters
LIMIT = 40
REQUESTS = 100


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cli(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run(
        [SYNCAUCTION, *args, "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"syncauction {' '.join(args)} failed:\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_asyncpg_dsn(TEST_DATABASE_URL))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def database_name() -> Iterator[str]:
    name = f"syncauction_rl_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def env(database_name: str, tmp_path: Path) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SYNCAUCTION_")}
    environment.update(
        SYNCAUCTION_DATABASE_URL=_replace_database(TEST_DATABASE_URL, database_name),
        SYNCAUCTION_REDIS_URL=TEST_REDIS_URL or "",
        SYNCAUCTION_DEMO="false",
        SYNCAUCTION_SECRET_KEY=SECRET,
        SYNCAUCTION_DATA_DIR=str(tmp_path / "data"),
        SYNCAUCTION_LOG_LEVEL="WARNING",
    )
    return environment


@pytest.fixture
def servers(env: dict[str, str], tmp_path: Path) -> Iterator[list[str]]:
    _cli(env, "migrate")
    processes: list[tuple[subprocess.Popen[bytes], Path]] = []
    urls: list[str] = []
    try:
        for i in range(2):
            port = _free_port()
            log = tmp_path / f"server{i}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [SYNCAUCTION, "serve", "--host", "127.0.0.1", "--port", str(port)],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            processes.append((process, log))
            urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 20
        for (process, log), url in zip(processes, urls, strict=True):
            while True:
                assert process.poll() is None, f"server exited:\n{log.read_text()}"
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"server did not start:\n{log.read_text()}"
                time.sleep(0.1)
        yield urls
    finally:
        for process, _ in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _forget_limits(account_id: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(TEST_REDIS_URL)
    try:
        async for key in client.scan_iter(match=f"*{account_id}*"):
            await client.delete(key)
    finally:
        await client.aclose()


async def test_two_processes_share_one_budget(servers, env):
    account = _cli(env, "accounts", "create", "--name", "Shared Mint", "--plan", "enterprise",
                   "--rate-limit", str(LIMIT))  # fmt: skip
    assert account["plan"] == "enterprise"
    key = _cli(env, "keys", "create", "--account", account["id"], "--mode", "live")
    assert key["key"].startswith("sa_live_")
    headers = {"Authorization": f"Bearer {key['key']}"}
    try:
        limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=REQUESTS)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            responses = await asyncio.gather(
                *(
                    client.get(f"{servers[i % 2]}/v1/products", headers=headers)
                    for i in range(REQUESTS)
                )
            )
            by_status = Counter(r.status_code for r in responses)
            assert by_status == {200: LIMIT, 429: REQUESTS - LIMIT}, by_status

            # Both servers turned requests away, so neither had a budget of its own.
            rejected_by = Counter(
                str(r.request.url.port) for r in responses if r.status_code == 429
            )
            assert len(rejected_by) == 2, rejected_by
            for response in responses:
                assert response.headers["x-ratelimit-limit"] == str(LIMIT)
                assert 0 <= int(response.headers["x-ratelimit-remaining"]) < LIMIT
            for response in (r for r in responses if r.status_code == 429):
                assert response.headers["x-ratelimit-remaining"] == "0"
                assert 1 <= int(response.headers["retry-after"]) <= 61
                assert response.json()["error"]["type"] == "rate_limited"
            successes = [r for r in responses if r.status_code == 200]
            assert all(r.json()["data"] == [] for r in successes)

            # The budget stays spent on either server afterwards.
            for url in servers:
                late = await client.get(f"{url}/v1/products", headers=headers)
                assert late.status_code == 429
    finally:
        await _forget_limits(account["id"])
