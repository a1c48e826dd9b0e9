"""B6: webhook deliveries to a local sink against a raw httpx POST loop to the same sink.

Sink   a uvicorn + Starlette app in its own process on a loopback port (pinned to the last core
       when there are two or more): it answers 200 to `POST /hook` and records (webhook-id,
       receive time); `GET /stats` returns what it recorded. Every sender below runs in its
       own process too (pinned to the first core), so sink and sender never share a CPU.
Raw    an `httpx.AsyncClient` (one, shared) POSTing N signed Standard Webhooks bodies of the
       app's shape and size (body built with orjson and signed per request, as the app does)
       (a) paced at the offered rate (default 200/s), one task per request;
       (b) unpaced: `--concurrency` (32) workers looping as fast as they can.
Ours   the real app in a child process (`create_app` + its lifespan, embedded mode: in-process
       jobs and bus, PostgreSQL throw-away database): one tenant, one endpoint at the sink for
       `product.updated`; N events, one `emit()` per `atomic()` transaction, (a) paced at the
       offered rate, (b) unpaced (as fast as the loop allows). The app's own machinery sends
       them: after each commit `_fan_out_soon` queues `fan_out_webhooks`, which creates the
       deliveries and queues one `deliver_webhook` job per delivery; the periodic fan-out and
       sweeper run as in production. The child waits until every delivery is delivered or
       `--grace` seconds (30) have passed since the last emit.

Latency = sink receive time - event creation time (`Event.created_at`; for raw, the time the
request was created). Throughput = unique ids received / (last receive - first creation); for
the paced runs, the arrival rate at the sink (ids / (last receive - first receive)) is printed
as well: it is what "keeps up with the offered rate" means. Lost = events whose id never
reached the sink by the end of the grace period.

Goals: delivery throughput >= 0.5 x the unpaced raw loop's (both unpaced); 0 lost over both
app runs; the paced arrival rate >= 195/s (0.975 x the offered 200/s). p95 latency is printed.

    .venv/bin/python bench/bench_webhooks.py [--events 3000] [--rate 200] [--concurrency 32]
                                             [--grace 30] [--profile]

`--profile` runs the app children under cProfile and prints their top functions (the profiler
slows the run several-fold: read hotspots, not figures). Exit status: 1 when a goal is missed,
2 (a traceback) when the run breaks (a sink or child that fails).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
import urllib.request
import uuid
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _harness import (  # noqa: E402
    CLIENT_CPUS,
    SERVER_CPUS,
    VERDICTS,
    _pin,
    create_migrated_database,
    drop_database,
    free_port,
    goal,
)

SECRET = "bench-secret-key-0123456789abcdef0123456789"
EVENT_TYPE = "product.updated"
KEEP_UP_SHARE = 0.975  # paced: arrival rate at the sink >= this share of the offered rate
THROUGHPUT_RATIO = 0.5


def event_data(number: int) -> dict[str, Any]:
    """A `product.updated` payload of the usual shape and size (~600 bytes as sent)."""
    return {
        "id": f"prod_bench{number:019d}",
        "ha_lot": f"3101-{number:05d}",
        "title": "1921 Morgan Dollar MS65 PCGS",
        "price": "430.50",
        "cost": "374.35",
        "currency": "USD",
        "metal": "Silver",
        "grade": "MS65",
        "service": "PCGS",
        "year": 1921,
        "mint": "P",
        "denomination": "$1",
        "status": "active",
        "images": [
            "https://img.example/3101-42017/obverse.jpg",
            "https://img.example/3101-42017/reverse.jpg",
        ],
        "changed": ["price"],
    }


# --- sink (its own process) ----------------------------------------------------------------


def sink_main(port: int) -> None:
    import orjson
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    ids: list[str] = []
    times: list[float] = []

    async def hook(request: Request) -> Response:
        await request.body()
        ids.append(request.headers.get("webhook-id", ""))
        times.append(time.time())
        return Response(b"ok")

    async def stats(request: Request) -> Response:
        return Response(orjson.dumps({"ids": ids, "times": times}), media_type="application/json")

    async def healthz(request: Request) -> Response:
        return Response(b"ok")

    app = Starlette(
        routes=[
            Route("/hook", hook, methods=["POST"]),
            Route("/stats", stats),
            Route("/healthz", healthz),
        ]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


class Sink:
    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__)), "--sink", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        _pin(self.process.pid, SERVER_CPUS)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sink exited early:\n{self.log_text()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1),
            ):
                return
            time.sleep(0.1)
        raise RuntimeError(f"sink did not start:\n{self.log_text()}")

    def log_text(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def stats(self) -> dict[str, float]:
        """First receive time per webhook-id, and how many requests came in all."""
        url = f"http://127.0.0.1:{self.port}/stats"
        with urllib.request.urlopen(url, timeout=30) as response:
            data = json.loads(response.read())
        first: dict[str, float] = {}
        for message_id, at in zip(data["ids"], data["times"], strict=True):
            if message_id not in first or at < first[message_id]:
                first[message_id] = at
        first["__requests__"] = float(len(data["ids"]))
        return first

    def cpu_seconds(self) -> float:
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# --- child: raw httpx loop -------------------------------------------------------------------


async def raw_child(sink_url: str, events: int, rate: float, concurrency: int) -> dict[str, Any]:
    import httpx
    import orjson

    from app.webhooks.signing import headers as signed_headers
    from app.webhooks.signing import new_secret

    secret = new_secret()
    run = uuid.uuid4().hex[:8]
    ids = [f"msg_raw{run}_{number}" for number in range(events)]
    created = [0.0] * events
    errors = 0

    async def send(client: httpx.AsyncClient, number: int) -> None:
        nonlocal errors
        created[number] = time.time()
        body = orjson.dumps(
            {"event": EVENT_TYPE, "timestamp": "2026-01-01T00:00:00Z", "data": event_data(number)}
        )
        headers = {
            "content-type": "application/json",
            "user-agent": "bench-raw",
            **signed_headers([secret], ids[number], int(created[number]), body),
        }
        try:
            reply = await client.post(sink_url, content=body, headers=headers)
            if reply.status_code != 200:
                errors += 1
        except httpx.HTTPError:
            errors += 1

    cpu = time.process_time()
    limits = httpx.Limits(max_connections=max(concurrency, 100), max_keepalive_connections=100)
    async with httpx.AsyncClient(timeout=15.0, limits=limits) as client:
        started = time.time()
        if rate:
            t0 = time.perf_counter()
            tasks = []
            for number in range(events):
                delay = t0 + number / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(send(client, number)))
            await asyncio.gather(*tasks)
        else:
            queue = iter(range(events))

            async def worker() -> None:
                for number in queue:
                    await send(client, number)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        finished = time.time()
    return {
        "ids": ids,
        "created": created,
        "started": started,
        "finished": finished,
        "emit_seconds": None,
        "errors": errors,
        "cpu_seconds": time.process_time() - cpu,
    }


# --- child: the app ------------------------------------------------------------------------


async def app_child(
    url: str, sink_url: str, events: int, rate: float, grace: float, profile: bool
) -> dict[str, Any]:
    from asgi_lifespan import LifespanManager
    from tortoise.functions import Count

    from app.accounts.models import Environment
    from app.accounts.service import create_account
    from app.auth.principal import Principal, expand_key_scopes
    from app.config import Settings
    from app.events.service import atomic, emit
    from app.events.types import EventType
    from app.main import create_app
    from app.webhooks import service as webhooks
    from app.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery

    with tempfile.TemporaryDirectory(prefix="syncauction-bench-") as data_dir:
        settings = Settings(
            env="development",  # lets the endpoint point at 127.0.0.1
            data_dir=Path(data_dir),
            database_url=url,
            redis_url=None,
            secret_key=SECRET,
            auto_migrate=False,
            demo=False,
            log_level="WARNING",
        )
        async with LifespanManager(create_app(settings)):
            account = await create_account(
                name=f"B6 Coins {uuid.uuid4().hex[:6]}", plan="enterprise", rate_limit=100_000
            )
            principal = Principal(
                account_id=account.id,
                environment=Environment.LIVE,
                scopes=expand_key_scopes(["write"]),
                plan=account.plan,
                rate_limit=100_000,
            )
            created_endpoint = await webhooks.create_endpoint(
                principal,
                data=webhooks.WebhookEndpointInput(url=sink_url, event_types=[EVENT_TYPE]),
            )
            endpoint_id = created_endpoint.endpoint.id
            ids: list[str] = []
            created: list[float] = []
            profiler = cProfile.Profile() if profile else None
            cpu = time.process_time()
            if profiler:
                profiler.enable()
            started = time.time()
            t0 = time.perf_counter()
            for number in range(events):
                if rate:
                    delay = t0 + number / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                async with atomic() as tx:
                    event = await emit(
                        tx,
                        account_id=account.id,
                        environment=Environment.LIVE.value,
                        type=EventType.PRODUCT_UPDATED,
                        data=event_data(number),
                    )
                ids.append(event.id)
                created.append(event.created_at.timestamp())
            emit_seconds = time.perf_counter() - t0
            deadline = time.monotonic() + grace
            delivered = 0
            while time.monotonic() < deadline:
                delivered = await WebhookDelivery.filter(
                    endpoint_id=endpoint_id, status=DeliveryStatus.DELIVERED
                ).count()
                if delivered >= events:
                    break
                await asyncio.sleep(0.1)
            finished = time.time()
            if profiler:
                profiler.disable()
            cpu_seconds = time.process_time() - cpu
            statuses = {
                str(row["status"]): row["n"]
                for row in await WebhookDelivery.filter(endpoint_id=endpoint_id)
                .annotate(n=Count("id"))
                .group_by("status")
                .values("status", "n")
            }
            attempts = await WebhookAttempt.filter(delivery__endpoint_id=endpoint_id).count()
            errors = [
                row["error"]
                for row in await WebhookAttempt.filter(
                    delivery__endpoint_id=endpoint_id, error__not_isnull=True
                )
                .limit(5)
                .values("error")
            ]
            out: dict[str, Any] = {
                "ids": ids,
                "created": created,
                "started": started,
                "finished": finished,
                "emit_seconds": emit_seconds,
                "errors": 0,
                "cpu_seconds": cpu_seconds,
                "statuses": statuses,
                "attempts": attempts,
                "attempt_errors": errors,
            }
            if profiler:
                buffer = io.StringIO()
                stats = pstats.Stats(profiler, stream=buffer)
                stats.sort_stats("cumulative").print_stats(40)
                stats.sort_stats("tottime").print_stats(30)
                out["profile"] = buffer.getvalue()
                dump = os.environ.get("BENCH_PROFILE_DIR")
                if dump:
                    profiler.dump_stats(str(Path(dump) / f"webhooks-{rate or 'burst'}.prof"))
    return out


# --- parent --------------------------------------------------------------------------------


def run_child(args: list[str]) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__)), *args]
    env = {**os.environ, "SYNCAUCTION_LOG_LEVEL": "WARNING", "PYTHONHASHSEED": "0"}
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        preexec_fn=(lambda: _pin(0, CLIENT_CPUS)) if CLIENT_CPUS else None,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"child {args[:2]} failed ({completed.returncode}):\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def measure(label: str, out: dict[str, Any], sink: Sink, sink_cpu: float) -> dict[str, Any]:
    first = sink.stats()
    received = [
        (first[i], c) for i, c in zip(out["ids"], out["created"], strict=True) if i in first
    ]
    lost = len(out["ids"]) - len(received)
    latencies = [(at - made) * 1000 for at, made in received]
    arrivals = [at for at, _ in received]
    first_created = min(out["created"])
    span = (max(arrivals) - first_created) if arrivals else float("nan")
    window = (max(arrivals) - min(arrivals)) if len(arrivals) > 1 else float("nan")
    wall = out["finished"] - out["started"]
    return {
        "label": label,
        "events": len(out["ids"]),
        "received": len(received),
        "lost": lost,
        "throughput": len(received) / span if span else float("nan"),
        "arrival_rate": len(received) / window if window else float("nan"),
        "emit_rate": (len(out["ids"]) / out["emit_seconds"]) if out["emit_seconds"] else None,
        "p50": percentile(latencies, 0.5),
        "p95": percentile(latencies, 0.95),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies) if latencies else float("nan"),
        "sender_cpu": out["cpu_seconds"] / span if span else float("nan"),
        "sink_cpu": sink_cpu / wall if wall else float("nan"),
        "out": out,
    }


def run(label: str, args: list[str], sink: Sink) -> dict[str, Any]:
    cpu = sink.cpu_seconds()
    out = run_child(args)
    result = measure(label, out, sink, sink.cpu_seconds() - cpu)
    print(f"  {label}: done ({result['received']}/{result['events']} received)", flush=True)
    return result


def report(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'sender':<34}{'events':>7}{'lost':>6}{'deliv/s':>9}{'arriv/s':>9}{'emit/s':>8}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'snd CPU':>9}{'sink CPU':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        emit = f"{r['emit_rate']:.0f}" if r["emit_rate"] else "-"
        print(
            f"{r['label']:<34}{r['events']:>7}{r['lost']:>6}{r['throughput']:>9.0f}"
            f"{r['arrival_rate']:>9.0f}{emit:>8}{r['p50']:>9.1f}{r['p95']:>9.1f}{r['p99']:>9.1f}"
            f"{r['max']:>9.1f}{r['sender_cpu']:>9.0%}{r['sink_cpu']:>9.0%}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description="B6: webhook deliveries vs a raw httpx loop")
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=200.0, help="offered events/s (paced)")
    parser.add_argument("--concurrency", type=int, default=32, help="unpaced raw loop workers")
    parser.add_argument("--grace", type=float, default=30.0, help="seconds after the last emit")
    parser.add_argument("--profile", action="store_true", help="cProfile the app children")
    parser.add_argument("--sink", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--raw-child", metavar="SINK_URL", help=argparse.SUPPRESS)
    parser.add_argument("--app-child", nargs=2, metavar=("DB", "SINK"), help=argparse.SUPPRESS)
    parser.add_argument("--paced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.sink:
        sink_main(args.sink)
        return 0
    rate = args.rate if args.paced else 0.0
    if args.raw_child:
        out = asyncio.run(raw_child(args.raw_child, args.events, rate, args.concurrency))
        print(json.dumps(out))
        return 0
    if args.app_child:
        database, sink_url = args.app_child
        child_args = (database, sink_url, args.events, rate, args.grace, args.profile)
        out = asyncio.run(app_child(*child_args))
        print(json.dumps(out))
        return 0

    print(
        f"B6  webhook deliveries, {args.events} events, offered {args.rate:g}/s paced; "
        f"{os.cpu_count()} CPU(s); "
        + (
            f"sink pinned to CPU {sorted(SERVER_CPUS)}, senders to CPU {sorted(CLIENT_CPUS)}"
            if SERVER_CPUS
            else "no CPU pinning (one core)"
        ),
        flush=True,
    )
    common = ["--events", str(args.events), "--rate", str(args.rate)]
    sink = Sink()
    name, url = asyncio.run(create_migrated_database())
    try:
        sink.start()
        raw = [*common, "--raw-child", sink.url, "--concurrency", str(args.concurrency)]
        app = [*common, "--app-child", url, sink.url, "--grace", str(args.grace)]
        if args.profile:
            app.append("--profile")
        rows = [
            run(f"raw httpx, paced {args.rate:g}/s", [*raw, "--paced"], sink),
            run(f"app, paced {args.rate:g}/s", [*app, "--paced"], sink),
            run(f"raw httpx, unpaced x{args.concurrency}", raw, sink),
            run("app, unpaced", app, sink),
        ]
    except Exception:
        traceback.print_exc()
        return 2
    finally:
        sink.stop()
        asyncio.run(drop_database(name))

    raw_paced, app_paced, raw_burst, app_burst = rows
    print(
        "deliv/s = unique ids received / (last receive - first event created); arriv/s = the "
        "same over (last receive - first receive); latency = sink receive - event created; "
        "CPU as a share of one core over the run"
    )
    report(rows)
    for r in (app_paced, app_burst):
        out = r["out"]
        print(
            f"{r['label']}: deliveries by status {out['statuses']}, {out['attempts']} attempts, "
            f"first attempt errors {out['attempt_errors'] or 'none'}"
        )
        if out.get("profile"):
            print(out["profile"])
    if raw_paced["lost"] or raw_burst["lost"]:
        print(f"raw loop lost {raw_paced['lost']} + {raw_burst['lost']} (transport errors)")
    print(
        f"B6: p95 latency, paced {args.rate:g}/s: app {app_paced['p95']:.1f} ms, raw httpx "
        f"{raw_paced['p95']:.1f} ms; unpaced: app {app_burst['p95']:.1f} ms, raw httpx "
        f"{raw_burst['p95']:.1f} ms"
    )
    goal(
        "B6",
        "delivery throughput / raw httpx loop throughput (unpaced)",
        app_burst["throughput"] / raw_burst["throughput"],
        THROUGHPUT_RATIO,
        ">=",
    )
    goal(
        "B6",
        f"paced arrival rate at the sink, deliveries/s (offered {args.rate:g}/s)",
        app_paced["arrival_rate"],
        args.rate * KEEP_UP_SHARE,
        ">=",
    )
    goal(
        "B6",
        "lost deliveries (paced + unpaced)",
        float(app_paced["lost"] + app_burst["lost"]),
        0,
        "<=",
    )
    return 0 if all(VERDICTS) else 1


if __name__ == "__main__":
    sys.exit(main())
