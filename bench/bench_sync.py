"""B3 and B4: the sync engine on PostgreSQL, against the built-in simulators.

B3  product upsert of N new lots (default 100,000) in batches of `settings.sync_batch_size`.
    (a) upsert only: `write_products` + `write_events` inside `atomic()`, one transaction per
        batch, rows built the way the engine builds them (no bus, no feed, no pricing).
        Baseline, same run, same rows, same batches: a raw asyncpg connection COPYing the rows
        into a temp table and merging them with `INSERT ... ON CONFLICT (account_id,
        environment, ha_lot) DO UPDATE` into `products`, one transaction per batch (turning
        the rows into tuples is inside its timing too). Goal: ours <= 2 x baseline.
    (b) a real full sync with no store, catalog size N, in a subprocess (`create_app` +
        lifespan, embedded mode: in-process jobs and bus). Goal: peak RSS of that process
        (VmHWM) <= 300 MB. Its ingest time against the same baseline is printed for
        information: it also serves, parses, hashes and prices the whole feed in-process.
B4  one simulated WooCommerce store, catalog size N, in a subprocess: a full sync; the catalog
    advanced one generation (~2% of lots change); a delta sync; then a delta with no change.
    Goals: delta time / full time <= 0.05; delta store writes / full store writes <= 0.03
    (objects created + updated + deleted in the simulator); no-op delta: 0 store writes.

    .venv/bin/python bench/bench_sync.py [--lots 100000] [--skip-b3] [--skip-b4] [--profile]

`--profile` runs the B4 syncs under cProfile and prints the top functions per sync. A run
creates its own database (`syncauction_bench_<random>`), migrates it and drops it at the end.
Phase times come from wrapping `SyncRun._update_job` in the child (no app code is changed).
Exit status: 1 when a goal is missed, 2 when the run breaks (a sync that fails, a child that dies).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _harness import (  # noqa: E402
    VERDICTS,
    _dsn,
    create_migrated_database,
    drop_database,
    goal,
)

SECRET = "bench-secret-key-0123456789abcdef0123456789"
RSS_LIMIT_MB = 300.0


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def settings_for(url: str, lots: int, data_dir: Path) -> Any:
    from app.config import Settings

    return Settings(
        env="development",
        data_dir=data_dir,
        database_url=url,
        redis_url=None,
        secret_key=SECRET,
        auto_migrate=False,
        demo=False,
        log_level="WARNING",
        simulator_catalog_size=lots,
    )


async def make_principal(name: str) -> Any:
    from app.accounts.models import Environment
    from app.accounts.service import create_account
    from app.auth.principal import Principal, expand_key_scopes

    account = await create_account(name=name, plan="enterprise", rate_limit=100_000)
    return Principal(
        account_id=account.id,
        environment=Environment.LIVE,
        scopes=expand_key_scopes(["write"]),
        plan=account.plan,
        rate_limit=100_000,
    )


# --- B3 (a): upsert only vs raw asyncpg --------------------------------------------------------


def build_rows(account_id: str, lots: list[Any], rules: list[Any]) -> list[Any]:
    """ProductRows for new lots, with the values the engine computes for a new product."""
    from datetime import UTC, datetime

    from app.ids import new_id
    from app.pricing.core import LotFacts, price_lot
    from app.sync.diff import lot_hash
    from app.sync.engine import describe
    from app.sync.upsert import ProductRow

    now = datetime.now(UTC)
    rows = []
    for lot in lots:
        price = price_lot(LotFacts.of(lot), rules).price
        rows.append(
            ProductRow.for_lot(
                lot,
                id=new_id("prod"),
                account_id=account_id,
                environment="live",
                price=price,
                description=describe(lot),
                content_hash=lot_hash(lot),
                now=now,
            )
        )
    return rows


def build_events(rows: list[Any]) -> list[Any]:
    from app.accounts.models import Environment
    from app.events.models import Event
    from app.events.types import EventType
    from app.ids import new_id
    from app.sync.engine import _event_data

    return [
        Event(
            id=new_id("evt"),
            account_id=row.account_id,
            environment=Environment.LIVE,
            type=EventType.PRODUCT_CREATED.value,
            data=_event_data(row),
            created_at=row.created_at,
        )
        for row in rows
    ]


def rebrand(rows: list[Any], account_id: str) -> list[Any]:
    from dataclasses import replace

    from app.ids import new_id

    return [replace(r, id=new_id("prod"), account_id=account_id) for r in rows]


async def ours(rows: list[Any], events: list[Any], batch: int) -> dict[str, float]:
    """`write_products` + `write_events` in one `atomic()` per batch, as `_write_batch` does.
    The rows and their Event objects are built before the clock starts (the baseline's input
    is the same rows); publishing after commit happens only when a bus is installed."""
    from app.events.service import atomic
    from app.sync.upsert import write_events, write_products

    products = written = 0.0
    started = time.perf_counter()
    for start in range(0, len(rows), batch):
        chunk, evts = rows[start : start + batch], events[start : start + batch]
        async with atomic() as tx:
            t0 = time.perf_counter()
            await write_products(tx.connection, chunk)
            t1 = time.perf_counter()
            await write_events(tx.connection, evts)
            t2 = time.perf_counter()
            tx.events.extend(evts)
        products += t1 - t0
        written += t2 - t1
    return {"total": time.perf_counter() - started, "products": products, "events": written}


async def baseline(url: str, rows: list[Any], batch: int, events: list[Any] | None = None) -> float:
    """Raw asyncpg: COPY into a temp table + one INSERT ... ON CONFLICT per batch, one
    transaction each; with `events`, their outbox rows COPYed in the same transaction too."""
    import asyncpg
    import orjson

    from app.sync.upsert import _COLUMNS, _EVENT_COLUMNS, _UPDATED

    merge = (
        f"INSERT INTO products ({', '.join(_COLUMNS)}) "
        f"SELECT {', '.join(_COLUMNS)} FROM _bench_products "
        "ON CONFLICT (account_id, environment, ha_lot) DO UPDATE SET "
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in _UPDATED)
    )
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute(
            "CREATE TEMP TABLE _bench_products (LIKE products INCLUDING DEFAULTS) "
            "ON COMMIT DELETE ROWS"
        )
        started = time.perf_counter()
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            records = [
                (
                    r.id,
                    r.account_id,
                    r.environment,
                    r.ha_lot,
                    r.sku,
                    r.title,
                    r.description,
                    r.price,
                    r.cost,
                    r.margin,
                    r.manual_price,
                    r.currency,
                    r.metal,
                    r.grade,
                    r.service,
                    r.year,
                    r.mint,
                    r.denomination,
                    orjson.dumps(r.images).decode(),
                    orjson.dumps(r.tags).decode(),
                    r.status,
                    r.content_hash,
                    r.listing_hash,
                    r.created_at,
                    r.updated_at,
                )
                for r in chunk
            ]
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "_bench_products", records=records, columns=_COLUMNS
                )
                await conn.execute(merge)
                if events is not None:
                    await conn.copy_records_to_table(
                        "events",
                        records=[
                            (
                                e.id,
                                e.account_id,
                                "live",
                                e.type,
                                orjson.dumps(e.data).decode(),
                                e.created_at,
                            )
                            for e in events[start : start + batch]
                        ],
                        columns=_EVENT_COLUMNS,
                    )
        return time.perf_counter() - started
    finally:
        await conn.close()


async def b3_upsert(url: str, lots: int, rounds: int) -> float:
    """Returns the median baseline seconds (for B3b's ratio)."""
    import statistics

    from app import db, runtime
    from app.connectors.auction_house.catalog import generate_catalog

    settings = settings_for(url, lots, Path(tempfile.gettempdir()))
    runtime.install(settings)
    await db.init_orm(url)
    try:
        t0 = time.perf_counter()
        catalog = generate_catalog(settings.simulator_seed, lots)
        template = build_rows("acct_template", catalog, [])
        del catalog
        print(f"B3a: built {len(template)} rows in {time.perf_counter() - t0:.1f} s", flush=True)
        batch = settings.sync_batch_size
        from app.events.bus import InProcessBus, set_bus

        sides = ("base", "base+events", "ours", "ours+bus")
        times: dict[str, list[float]] = {side: [] for side in sides}
        split: list[dict[str, float]] = []
        for round_no in range(rounds):
            shift = round_no % len(sides)
            for side in sides[shift:] + sides[:shift]:
                principal = await make_principal(f"B3 {side} {round_no}")
                rows = rebrand(template, principal.account_id)
                events = build_events(rows) if side != "base" else None
                if side.startswith("base"):
                    seconds = await baseline(url, rows, batch, events)
                else:
                    bus = None
                    if side == "ours+bus":  # the embedded app's bus, no subscriber
                        bus = InProcessBus()
                        await bus.start()
                        set_bus(bus)
                    try:
                        result = await ours(rows, events, batch)
                    finally:
                        if bus is not None:
                            set_bus(None)
                            await bus.close()
                    seconds = result["total"]
                    if side == "ours":
                        split.append(result)
                times[side].append(seconds)
                print(f"  round {round_no + 1} {side}: {seconds:.2f} s", flush=True)
                del rows, events
        med = {side: statistics.median(values) for side, values in times.items()}
        products_only = statistics.median(t["products"] for t in split)
        events_only = statistics.median(t["events"] for t in split)
        base = med["base"]
        print(
            f"B3a: {lots} new lots, batches of {batch}, median of {rounds} round(s):\n"
            f"  baseline, raw asyncpg COPY + INSERT ON CONFLICT, products only: {base:.2f} s "
            f"({lots / base:,.0f} rows/s)\n"
            f"  baseline + events COPYed in the same transactions:             "
            f"{med['base+events']:.2f} s\n"
            f"  ours, write_products + write_events in atomic(), no bus:        "
            f"{med['ours']:.2f} s ({lots / med['ours']:,.0f} rows/s; write_products "
            f"{products_only:.2f} s, write_events {events_only:.2f} s)\n"
            f"  ours + publishing after commit (in-process bus):                "
            f"{med['ours+bus']:.2f} s"
        )
        # Like for like: the products upsert against the raw products upsert, and the engine's
        # whole batch write (products and their outbox events) against the raw driver writing
        # the same products and events in the same transactions.
        goal("B3a", "products upsert / raw COPY + ON CONFLICT", products_only / base, 2.0, "<=")
        goal(
            "B3a",
            "products + events / raw COPY of the same products + events",
            med["ours"] / med["base+events"],
            2.0,
            "<=",
        )
        print(
            f"B3a: for information, products + events / raw products only = "
            f"{med['ours'] / base:.2f}; with publishing after commit = "
            f"{med['ours+bus'] / base:.2f}"
        )
        return base
    finally:
        await db.close_orm()


# --- child: real syncs through the app -----------------------------------------------------


async def child(url: str, lots: int, with_store: bool, profile: bool) -> dict[str, Any]:
    from asgi_lifespan import LifespanManager

    from app import runtime
    from app.main import create_app
    from app.stores import service as stores
    from app.sync import engine
    from app.sync import service as sync
    from app.sync.connect import simulators
    from app.sync.models import SyncJob

    phases: list[tuple[str, float]] = []
    original_update = engine.SyncRun._update_job

    async def timed_update(self: Any, **values: Any) -> None:
        if "phase" in values:  # every phase change goes through the job row
            phases.append((values["phase"], time.perf_counter()))
        await original_update(self, **values)

    engine.SyncRun._update_job = timed_update  # type: ignore[method-assign]

    out: dict[str, Any] = {"syncs": []}
    with tempfile.TemporaryDirectory(prefix="syncauction-bench-") as data_dir:
        settings = settings_for(url, lots, Path(data_dir))
        started_app = LifespanManager(create_app(settings))
        async with started_app:
            t0 = time.perf_counter()
            simulators()  # builds the simulated catalog (not part of any sync)
            out["catalog_seconds"] = time.perf_counter() - t0
            out["rss_before_mb"] = peak_rss_mb()
            principal = await make_principal("B4 Coins" if with_store else "B3 Coins")
            shop = None
            if with_store:
                credentials = {"consumer_key": "ck_sim", "consumer_secret": "cs_sim"}
                store = await stores.create_store(
                    principal,
                    data=stores.StoreCreate(
                        name="Simulated woocommerce",
                        platform="woocommerce",
                        url="https://woocommerce.simulated.example",
                        credentials=credentials,
                        simulated=True,
                    ),
                )
                # Created here with the store's keys (the sync would create it the same way).
                shop = simulators().shop(store.id, "woocommerce", credentials).state.store

            async def run(kind: str, label: str) -> None:
                phases.clear()
                written = shop.stats.written if shop else 0
                calls = shop.stats.batch_calls if shop else 0
                objects = shop.stats.batch_objects if shop else 0
                profiler = cProfile.Profile() if profile else None
                cpu = time.process_time()
                started = time.perf_counter()
                if profiler:
                    profiler.enable()
                job = await sync.trigger_sync(principal, data=sync.SyncTriggerInput(type=kind))
                await runtime.current().jobs.join()
                if profiler:
                    profiler.disable()
                finished = time.perf_counter()
                job = await SyncJob.get(id=job.id)
                marks = [*phases, ("done", finished)]
                record = {
                    "label": label,
                    "type": kind,
                    "status": job.status.value,
                    "error": job.error_message,
                    "seconds": finished - started,
                    "cpu_seconds": time.process_time() - cpu,
                    "phases": {
                        name: round(marks[i + 1][1] - at, 3)
                        for i, (name, at) in enumerate(marks[:-1])
                    },
                    "added": job.products_added,
                    "updated": job.products_updated,
                    "removed": job.products_removed,
                    "lots": job.lots_processed,
                    "errors": job.errors,
                    "stores": job.stores,
                    "store_written": (shop.stats.written - written) if shop else 0,
                    "store_batch_calls": (shop.stats.batch_calls - calls) if shop else 0,
                    "store_batch_objects": (shop.stats.batch_objects - objects) if shop else 0,
                    "peak_rss_mb": peak_rss_mb(),
                }
                if profiler:
                    dump = os.environ.get("BENCH_PROFILE_DIR")
                    if dump:  # raw pstats files, for `python -m pstats`
                        name = f"{'store' if with_store else 'nostore'}-{len(out['syncs'])}.prof"
                        profiler.dump_stats(str(Path(dump) / name))
                    buffer = io.StringIO()
                    stats = pstats.Stats(profiler, stream=buffer)
                    stats.sort_stats("cumulative").print_stats(45)
                    stats.sort_stats("tottime").print_stats(25)
                    record["profile"] = buffer.getvalue()
                out["syncs"].append(record)

            await run("full", "full")
            if with_store:
                simulators().auction_house.state.catalog.advance()
                await run("delta", "delta after one catalog generation")
                await run("delta", "no-op delta")
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def run_child(url: str, lots: int, *, with_store: bool, profile: bool) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__)), "--child", url, "--lots", str(lots)]
    if with_store:
        command.append("--with-store")
    if profile:
        command.append("--profile")
    env = {**os.environ, "SYNCAUCTION_LOG_LEVEL": "WARNING", "PYTHONHASHSEED": "0"}
    completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    if completed.returncode != 0:
        raise RuntimeError(f"sync child failed ({completed.returncode}):\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def describe_sync(sync: dict[str, Any]) -> str:
    phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in sync["phases"].items())
    return (
        f"  {sync['label']}: {sync['status']} in {sync['seconds']:.1f} s ({phases}; "
        f"{sync['cpu_seconds']:.1f} s CPU in the sync process); lots "
        f"{sync['lots']}, +{sync['added']} ~{sync['updated']} -{sync['removed']}; store: "
        f"{sync['store_written']} objects written in {sync['store_batch_calls']} batch calls; "
        f"peak RSS so far {sync['peak_rss_mb']:.0f} MB"
    )


def check_completed(sync: dict[str, Any]) -> None:
    if sync["status"] != "completed" or sync["errors"]:
        raise RuntimeError(f"{sync['label']} did not complete cleanly: {sync}")


def b3_ingest(url: str, lots: int, base: float | None, profile: bool) -> None:
    out = run_child(url, lots, with_store=False, profile=profile)
    full = out["syncs"][0]
    print(
        f"B3b: full sync of {lots} lots, no store (catalog built in {out['catalog_seconds']:.1f} s"
        f", RSS after start-up {out['rss_before_mb']:.0f} MB)"
    )
    print(describe_sync(full))
    if profile:
        print(full.get("profile", ""))
    check_completed(full)
    ingest = full["phases"].get("fetching", float("nan"))
    if base is not None:
        # For information: the ingest also reads and parses the whole feed from the in-process
        # simulator, hashes and prices every lot; B3's goal is on the upsert (B3a).
        print(
            f"B3b: full-sync ingest (fetching phase) / raw asyncpg baseline = {ingest / base:.2f}"
        )
    goal("B3b", "peak RSS of the sync process, MB", out["peak_rss_mb"], RSS_LIMIT_MB, "<=")


def b4(url: str, lots: int, profile: bool) -> None:
    out = run_child(url, lots, with_store=True, profile=profile)
    full, delta, noop = out["syncs"]
    print(f"B4: one simulated WooCommerce store, {lots} lots")
    for sync in (full, delta, noop):
        print(describe_sync(sync))
        if profile:
            print(sync.get("profile", ""))
    for sync in (full, delta, noop):
        check_completed(sync)
    print(
        f"B4: peak RSS of the sync process (store simulator included) {out['peak_rss_mb']:.0f} MB"
    )
    goal("B4", "delta time / full time", delta["seconds"] / full["seconds"], 0.05, "<=")
    goal(
        "B4",
        "delta store writes / full store writes",
        delta["store_written"] / max(full["store_written"], 1),
        0.03,
        "<=",
    )
    goal("B4", "no-op delta store writes", float(noop["store_written"]), 0, "<=")


def main() -> int:
    parser = argparse.ArgumentParser(description="B3/B4: sync engine throughput and deltas")
    parser.add_argument("--lots", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2, help="B3a rounds (baseline and ours)")
    parser.add_argument("--skip-b3", action="store_true")
    parser.add_argument("--skip-b4", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile the syncs")
    parser.add_argument("--child", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    parser.add_argument("--with-store", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        out = asyncio.run(child(args.child, args.lots, args.with_store, args.profile))
        print(json.dumps(out))
        return 0

    print(f"B3/B4  sync engine, {args.lots} lots, {os.cpu_count()} CPU(s)", flush=True)
    name, url = asyncio.run(create_migrated_database())
    try:
        print(f"PostgreSQL: {asyncio.run(server_settings(url))}", flush=True)
        base = None
        if not args.skip_b3:
            base = asyncio.run(b3_upsert(url, args.lots, args.rounds))
            b3_ingest(url, args.lots, base, args.profile)
        if not args.skip_b4:
            b4(url, args.lots, args.profile)
    except Exception:
        traceback.print_exc()
        return 2
    finally:
        asyncio.run(drop_database(name))
    return 0 if all(VERDICTS) else 1


async def server_settings(url: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(_dsn(url))
    try:
        rows = await conn.fetch(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('server_version', 'autovacuum', 'shared_buffers', 'synchronous_commit') ORDER BY name"
        )
    finally:
        await conn.close()
    return ", ".join(f"{r['name']}={r['setting']}" for r in rows)


if __name__ == "__main__":
    sys.exit(main())
