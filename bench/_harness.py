"""Shared benchmark plumbing: a throw-away PostgreSQL database with one tenant and product,
uvicorn servers in subprocesses, the load generator in its own process, and the report."""

from __future__ import annotations

import asyncio
import contextlib
import json
import operator
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ADMIN_DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# Traffic comes from TENANTS accounts at once, each with its own key and product, as a shared
# API sees it: every account stays inside its own budget and its moving window holds about as
# many entries as a real plan's (a few thousand at most). One account sending the whole load
# would make every request scan a window of a hundred thousand entries, which no plan allows.
TENANTS = 64
ENTERPRISE_RATE_LIMIT = 100_000  # per account and minute: never reached in a run


def _dsn(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


# --- database ------------------------------------------------------------------------------


@dataclass
class Tenant:
    account_id: str
    api_key: str
    product_id: str


@dataclass
class Fixture:
    database: str
    database_url: str
    tenants: list[Tenant]

    def requests(self) -> list[tuple[str, list[str]]]:
        return [
            (f"/v1/products/{t.product_id}", [f"Authorization: Bearer {t.api_key}"])
            for t in self.tenants
        ]


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_dsn(ADMIN_DATABASE_URL))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_fixture(tenants: int = TENANTS) -> Fixture:
    """A fresh migrated database with `tenants` enterprise accounts, each with a live key and
    one product."""
    from app import db, runtime
    from app.accounts.models import Environment
    from app.accounts.service import create_account
    from app.auth.principal import Principal, expand_key_scopes
    from app.auth.service import create_key
    from app.config import Settings
    from app.products.service import create_product

    name = f"syncauction_bench_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{name}"')
    url = _with_database(ADMIN_DATABASE_URL, name)
    try:
        await db.migrate(url)
        runtime.install(
            Settings(
                database_url=url,
                secret_key="bench-secret-key-0123456789abcdef0123456789",
                log_level="WARNING",
                demo=False,
            )
        )
        await db.init_orm(url)
        made: list[Tenant] = []
        try:
            for number in range(tenants):
                account = await create_account(
                    name=f"Bench Coins {number}",
                    plan="enterprise",
                    rate_limit=ENTERPRISE_RATE_LIMIT,
                )
                key = await create_key(account_id=account.id, mode="live")
                principal = Principal(
                    account_id=account.id,
                    environment=Environment.LIVE,
                    scopes=expand_key_scopes(["write"]),
                    plan=account.plan,
                    rate_limit=ENTERPRISE_RATE_LIMIT,
                )
                product = await create_product(principal, lot=_bench_lot())
                made.append(Tenant(account.id, key.secret, product.id))
        finally:
            await db.close_orm()
    except BaseException:
        await drop_database(name)
        raise
    return Fixture(name, url, made)


def _bench_lot():  # type: ignore[no-untyped-def]
    from app.products.service import LotInput

    return LotInput(
        ha_lot="3101-42017",
        title="1921 Morgan Dollar MS65 PCGS",
        description="Lustrous, well struck, a few light contact marks.",
        cost=Decimal("374.35"),
        price=Decimal("430.50"),
        metal="Silver",
        grade="MS65",
        service="PCGS",
        year=1921,
        mint="P",
        denomination="$1",
        images=[
            "https://img.example/3101-42017/obverse.jpg",
            "https://img.example/3101-42017/reverse.jpg",
        ],
    )


async def drop_database(name: str) -> None:
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def forget_rate_limit_keys(account_ids: list[str]) -> int:
    """The moving-window list would expire in a minute anyway; leave Redis as we found it."""
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        keys = [
            key
            for account_id in account_ids
            async for key in client.scan_iter(match=f"*{account_id}*")
        ]
        if keys:
            await client.delete(*keys)
        return len(keys)
    finally:
        await client.aclose()


# --- servers -------------------------------------------------------------------------------

# On a machine with two or more cores, the server under test gets the last core and the load
# generator the first, so neither competes with the other for its core and run-to-run noise
# (which otherwise swings identical servers by 10-15%) drops. PostgreSQL and Redis float,
# unless a benchmark moves them off the server's core with `services_off_server_core`.
_CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
SERVER_CPUS = {_CPUS[-1]} if len(_CPUS) >= 2 else set()
CLIENT_CPUS = {_CPUS[0]} if len(_CPUS) >= 2 else set()
# The local services the servers under test talk to, by process name.
SERVICE_PROCESSES = ("postgres", "redis-server")


def _pin(pid: int, cpus: set[int]) -> None:
    if cpus:
        os.sched_setaffinity(pid, cpus)


def _service_threads() -> list[int]:
    """Thread ids of the local PostgreSQL (postmaster and backends) and Redis processes."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if (proc / "comm").read_text().strip() in SERVICE_PROCESSES:
                found += [int(task.name) for task in (proc / "task").iterdir()]
    return found


@contextlib.contextmanager
def services_off_server_core() -> Iterator[str]:
    """Keep PostgreSQL and Redis off the server's core while the block runs; yields a line for
    the report.

    Left floating, the scheduler often wakes a PostgreSQL backend or Redis on the core of the
    server that just wrote to it: measured with `perf record -a -C <server core>`, PostgreSQL
    took from 1% to 9% of the server's core from one target to the next, so a ratio moved by
    that much for reasons that have nothing to do with the code under test. On the client's
    core (mostly idle: the load generator uses about a fifth of it) they still run
    promptly. Backends forked meanwhile inherit the postmaster's affinity. Every thread's
    affinity is restored afterwards; without the right to change it (the services run as
    another user and this process is not root) the services float as before."""
    if not CLIENT_CPUS or not hasattr(os, "sched_setaffinity"):
        yield "PostgreSQL and Redis not pinned (one core)"
        return
    saved: dict[int, set[int]] = {}
    try:
        for tid in _service_threads():
            with contextlib.suppress(ProcessLookupError):
                before = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, CLIENT_CPUS)
                saved[tid] = before
    except PermissionError:
        note = "PostgreSQL and Redis float (no permission to pin them)"
    else:
        note = (
            f"PostgreSQL and Redis pinned to the client's CPU {sorted(CLIENT_CPUS)} during "
            f"the run ({len(saved)} threads)"
        )
    try:
        yield note
    finally:
        for tid, cpus in saved.items():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, cpus)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    label: str
    args: list[str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def start(self, log_dir: Path) -> None:
        self.log_path = log_dir / f"{self.label.replace(' ', '_')}.log"
        # One hash seed for every server: dict and set layouts then match across processes,
        # one less reason for two identical servers to differ.
        env = {
            **os.environ,
            "SYNCAUCTION_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            "PYTHONHASHSEED": "0",
        }
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    str(BENCH_DIR / "_server.py"),
                    *self.args,
                    "--port",
                    str(self.port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )
        _pin(self.process.pid, SERVER_CPUS)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}/healthz"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label} exited early:\n{self.log_tail()}")
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.label} did not become ready:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process and its children (uvicorn workers)."""
        assert self.process is not None
        total = 0.0
        ticks = os.sysconf("SC_CLK_TCK")
        for pid in _descendants(self.process.pid):
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / ticks
        return total


def _descendants(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found += _descendants(int(child))
    return found


@contextlib.contextmanager
def running(servers: list[Server]) -> Iterator[list[Server]]:
    with tempfile.TemporaryDirectory(prefix="syncauction-bench-") as log_dir:
        try:
            for server in servers:
                server.start(Path(log_dir))
            for server in servers:
                server.wait_ready()
            yield servers
        finally:
            for server in servers:
                server.stop()


# --- load ----------------------------------------------------------------------------------


@dataclass
class LoadConfig:
    concurrency: int = 32
    warmup: float = 1.0
    duration: float = 2.0
    rounds: int = 4
    max_requests: int = 200_000


@dataclass
class Measurement:
    label: str
    ok: int = 0
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    round_rps: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        values = sorted(self.latencies_ms)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, max(0, round(fraction * len(values)) - 1))]


def load(
    server: Server,
    requests: list[tuple[str, list[str]]],
    config: LoadConfig,
    into: Measurement,
) -> None:
    """One load-generator run against `server`, merged into `into`."""
    command = [
        sys.executable,
        str(BENCH_DIR / "_loadgen.py"),
        "--port",
        str(server.port),
        "--concurrency",
        str(config.concurrency),
        "--warmup",
        str(config.warmup),
        "--duration",
        str(config.duration),
        "--max-requests",
        str(config.max_requests),
        "--raw",
    ]
    for path, headers in requests:
        command += ["--target", "\n".join([path, *headers])]
    children_before = os.times()
    server_before = server.cpu_seconds()
    started = time.perf_counter()
    completed = subprocess.run(
        command,
        capture_output=True,
        check=False,
        preexec_fn=(lambda: _pin(0, CLIENT_CPUS)) if CLIENT_CPUS else None,
    )
    wall = time.perf_counter() - started
    server_after = server.cpu_seconds()
    children_after = os.times()
    if completed.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{completed.stderr.decode()}")
    result = json.loads(completed.stdout)
    into.ok += result["ok"]
    into.round_rps.append(result["rps"])
    into.requests += result["requests"]
    into.errors += result["errors"]
    into.seconds += result["seconds"]
    for status, count in result["statuses"].items():
        into.statuses[status] = into.statuses.get(status, 0) + count
    into.latencies_ms += result["latencies_ms"]
    into.samples.append(result["sample"])
    # CPU shares over the whole run (warm-up included), as a fraction of one core.
    client = (children_after.children_user + children_after.children_system) - (
        children_before.children_user + children_before.children_system
    )
    into.client_cpu += client / wall * result["seconds"]
    into.server_cpu += (server_after - server_before) / wall * result["seconds"]


Requests = list[tuple[str, list[str]]]  # (path, header lines) sent in turn


def measure(
    targets: list[tuple[Server, Measurement, Requests]],
    config: LoadConfig,
    *,
    fresh_processes: bool = False,
) -> None:
    """Interleave the targets round by round (rotating the order), so drift in the machine's
    load hits every target alike and each ratio compares figures taken minutes apart at most.

    With `fresh_processes` the servers are started anew for every round (and stopped after
    it). Two server processes running the very same code differ here by up to ±7% in
    throughput, and keep that difference for as long as they live (measured: three identical
    servers in one run gave 1.07, 1.02 and 0.93 of each other, round after round). Between
    two long-lived servers that offset is in every round, so the median cannot remove it;
    with new processes each round it becomes noise like any other."""
    servers: list[tuple[Server, Requests]] = []
    for server, _, requests in targets:  # a server may serve several targets
        if not any(server is known for known, _ in servers):
            servers.append((server, requests))
    # A new process is slow for its first seconds (its pool connecting, PostgreSQL backends
    # filling their caches, the interpreter specialising): each is loaded this long before
    # the round measures anything, so the first target on a server is not the one that pays.
    warm_up = replace(config, warmup=0.0, duration=config.warmup + 1.0)
    for round_no in range(config.rounds):
        shift = round_no % len(targets)
        order = targets[shift:] + targets[:shift]
        started = running([server for server, _ in servers]) if fresh_processes else None
        with started or contextlib.nullcontext():
            if started is not None:
                for server, requests in servers:
                    load(server, requests, warm_up, Measurement("warm-up"))
            for server, into, requests in order:
                load(server, requests, config, into)


# --- report --------------------------------------------------------------------------------


def environment_line(config: LoadConfig, workers: int) -> str:
    loop = "uvloop" if _importable("uvloop") else "asyncio"
    http = "httptools" if _importable("httptools") else "h11"
    return (
        f"Python {platform.python_version()}, {os.cpu_count()} CPU(s); uvicorn {workers} "
        f"worker(s) per server, loop={loop}, http={http}, log level WARNING (app and uvicorn: "
        f"per-request logs off); client: separate process, raw asyncio streams, "
        f"{config.concurrency} keep-alive connections, {config.rounds} round(s) x "
        f"{config.duration:g} s measured after {config.warmup:g} s warm-up per target; "
        + (
            f"server pinned to CPU {sorted(SERVER_CPUS)}, client to CPU {sorted(CLIENT_CPUS)}"
            if SERVER_CPUS
            else "no CPU pinning (one core)"
        )
    )


def load_average(when: str) -> str:
    one, five, _ = os.getloadavg()
    return (
        f"load average {when}: {one:.2f} (1 min), {five:.2f} (5 min); other work on the machine "
        "moves the absolute figures, the interleaved rounds keep the ratios comparable"
    )


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def table(measurements: list[Measurement]) -> str:
    header = (
        f"{'target':<34}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'200s':>9}{'non-200':>9}{'errors':>8}{'srv CPU':>9}{'cli CPU':>9}"
    )
    rows = [header, "-" * len(header)]
    for m in measurements:
        non_ok = m.requests - m.ok
        srv = m.server_cpu / m.seconds if m.seconds else 0.0
        cli = m.client_cpu / m.seconds if m.seconds else 0.0
        rows.append(
            f"{m.label:<34}{m.rps:>9.0f}{m.percentile(0.5):>9.2f}{m.percentile(0.95):>9.2f}"
            f"{m.percentile(0.99):>9.2f}{m.ok:>9}{non_ok:>9}{m.errors:>8}{srv:>9.0%}{cli:>9.0%}"
        )
    return "\n".join(rows)


def round_ratio(numerator: Measurement, denominator: Measurement) -> float:
    """Median over rounds of the per-round throughput ratio. The two figures of a round are
    taken seconds apart, so a slow spell of the machine (other jobs, a noisy neighbour) moves
    both; the median then ignores the odd round it hit only one side of."""
    ratios = [a / b for a, b in zip(numerator.round_rps, denominator.round_rps, strict=True) if b]
    return statistics.median(ratios) if ratios else float("nan")


_RELATIONS = {">=": operator.ge, "<=": operator.le, "<": operator.lt}
VERDICTS: list[bool] = []  # every goal this process checked, for its exit status


def goal(name: str, description: str, value: float, target: float, relation: str = ">=") -> bool:
    """Print a `GOAL … PASS|MISS` line (run_all.py collects them) and remember the verdict."""
    ok = bool(_RELATIONS[relation](value, target))
    verdict = "PASS" if ok else "MISS"
    print(
        f"GOAL {name}: {description} = {value:.4g} (goal {relation} {target:g}) {verdict}",
        flush=True,
    )
    VERDICTS.append(ok)
    return ok


async def create_migrated_database() -> tuple[str, str]:
    """A throw-away database with every migration applied: (name, URL)."""
    from app import db

    name = f"syncauction_bench_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{name}"')
    url = _with_database(ADMIN_DATABASE_URL, name)
    try:
        await db.migrate(url)
    except BaseException:
        await drop_database(name)
        raise
    return name, url


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)
