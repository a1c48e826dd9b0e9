"""B1 and B2: `GET /v1/products/:id` through the whole stack, against baselines measured in the
same run.

B1  full stack (gateway + API-key auth + rate limiter + route table + Tortoise on PostgreSQL)
    vs a bare Starlette app reading the same row with raw asyncpg; in distributed mode (Redis
    limiter, arq queue, Redis bus) and in embedded mode (memory limiter, in-process jobs).
    Goal: full >= 0.5 x bare throughput.
B2  the same full stack with the rate limiter on vs off (`rate_limit_enabled=False`), with the
    Redis storage (shared budget) and with the memory storage (one process). Both halves run
    in one server process, behind two gateways (`_server.py --limiter-switch`).
    Goal: on >= 0.9 x off throughput.

Every round starts the servers anew: two processes of the same code differ by several percent
for as long as they live, so long-lived servers would carry that offset into every round.

    .venv/bin/python bench/bench_product_get.py [--duration 2.5] [--rounds 8] [--concurrency 32]

While it runs, PostgreSQL and Redis are pinned to the load generator's core (and restored
afterwards; see `_harness.services_off_server_core`): left floating they took 1-9% of the server's
core, a different share for each target, which moved the ratios by as much as B2's margin.

Exits 0 whether or not the goals are met (the GOAL lines say PASS or MISS); non-zero only when
the benchmark itself fails (a server that does not start, wrong responses, a 429).
"""

from __future__ import annotations

import argparse
import sys
import time

from _harness import (
    REDIS_URL,
    LoadConfig,
    Measurement,
    Server,
    create_fixture,
    drop_database,
    environment_line,
    forget_rate_limit_keys,
    goal,
    load_average,
    measure,
    round_ratio,
    run_async,
    services_off_server_core,
    table,
)


def _check(measurement: Measurement, product_ids: set[str], *, rate_limited: bool | None) -> None:
    """Every target must have answered the same request correctly, or the ratios are moot."""
    problems = []
    for sample in measurement.samples:
        body = sample.get("body", "")
        if sample.get("status") != 200 or not any(pid in body for pid in product_ids):
            problems.append(f"unexpected response {sample}")
        elif rate_limited is not None:
            has_headers = "x-ratelimit-limit" in sample["headers"]
            if has_headers != rate_limited:
                problems.append(f"x-ratelimit-* headers present={has_headers}")
    if measurement.ok != measurement.requests or measurement.errors:
        problems.append(f"statuses {measurement.statuses}, {measurement.errors} transport errors")
    if problems:
        raise SystemExit(f"{measurement.label}: " + "; ".join(problems))


def main() -> int:
    parser = argparse.ArgumentParser(description="B1/B2: GET /v1/products/:id")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=2.5, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--max-requests", type=int, default=200_000, help="per round")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers per server")
    args = parser.parse_args()
    config = LoadConfig(
        concurrency=args.concurrency,
        warmup=args.warmup,
        duration=args.duration,
        rounds=args.rounds,
        max_requests=args.max_requests,
    )
    started = time.perf_counter()
    print("B1/B2  GET /v1/products/:id")
    print(environment_line(config, args.workers))
    print(load_average("at start"))

    fixture = run_async(create_fixture())
    print(
        f"database {fixture.database} (PostgreSQL), Redis {REDIS_URL}; {len(fixture.tenants)} "
        "enterprise accounts, each with its own key and product, requested in turn"
    )
    try:
        common = ["--database-url", fixture.database_url, "--workers", str(args.workers)]
        bare = Server("bare", ["bare", *common])
        # Each full server runs B2's two halves itself: requests with `X-Bench-Limiter: off`
        # take a gateway without the limiter (see `_server.full_app`).
        full = Server("full", ["full", *common, "--redis-url", REDIS_URL, "--limiter-switch"])
        # Embedded mode: the same stack with in-process jobs and bus and the memory limiter.
        embedded = Server("full_embedded", ["full", *common, "--limiter-switch"])
        requests = fixture.requests()
        limiter_off = [(path, [*headers, "X-Bench-Limiter: off"]) for path, headers in requests]
        results = {
            "bare": Measurement("bare Starlette + asyncpg"),
            "on": Measurement("full stack, Redis limiter on"),
            "off": Measurement("full stack, Redis limiter off"),
            "emb_on": Measurement("full stack embedded, memory limiter on"),
            "emb_off": Measurement("full stack embedded, limiter off"),
        }
        targets = {
            "bare": (bare, requests),
            "on": (full, requests),
            "off": (full, limiter_off),
            "emb_on": (embedded, requests),
            "emb_off": (embedded, limiter_off),
        }
        with services_off_server_core() as pinning:
            print(pinning, flush=True)
            print("servers started anew for every round (see `_harness.measure`)", flush=True)
            measure(
                [(targets[name][0], results[name], targets[name][1]) for name in results],
                config,
                fresh_processes=True,
            )
    finally:
        run_async(drop_database(fixture.database))
        run_async(forget_rate_limit_keys([t.account_id for t in fixture.tenants]))

    product_ids = {t.product_id for t in fixture.tenants}
    _check(results["bare"], product_ids, rate_limited=None)
    _check(results["on"], product_ids, rate_limited=True)
    _check(results["off"], product_ids, rate_limited=False)
    _check(results["emb_on"], product_ids, rate_limited=True)
    _check(results["emb_off"], product_ids, rate_limited=False)
    print(load_average("at end"))
    print()
    print(table(list(results.values())))
    print("(srv/cli CPU: share of one core used by the server and by the load generator)")
    print()
    print("ratios: median over rounds of the per-round ratio (pooled ratio in brackets)")
    for name, description, top, bottom, minimum in (
        ("B1", "full stack (Redis) / bare", "on", "bare", 0.5),
        ("B1", "full stack (embedded) / bare", "emb_on", "bare", 0.5),
        ("B2", "Redis limiter on / off", "on", "off", 0.9),
        ("B2", "memory limiter on / off", "emb_on", "emb_off", 0.9),
    ):
        pooled = results[top].rps / results[bottom].rps
        goal(
            name,
            f"{description} throughput [{pooled:.2f}]",
            round_ratio(results[top], results[bottom]),
            minimum,
        )
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
