"""A closed-loop HTTP/1.1 load generator on raw asyncio streams (uvloop when installed).

Run as its own process so the client never shares a core's event loop with the server:

    python bench/_loadgen.py --port 8001 --path /v1/products/prod_x --header "Authorization: ..."

`--concurrency` keep-alive connections each send one request at a time, for `--warmup` seconds
(not recorded) and then `--duration` seconds (recorded), stopping early at `--max-requests`.
Prints one JSON object: counts, status codes, requests/s and latency percentiles. Only loopback
targets are accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

HOST = "127.0.0.1"


class Target:
    """One or more requests; connection i sends request i, i+1, … in turn, so the load is
    spread evenly over them (several tenants, each with its own key and product)."""

    def __init__(self, port: int, requests: list[tuple[str, list[str]]]) -> None:
        self.port = port
        self.requests = [
            "\r\n".join([f"GET {path} HTTP/1.1", f"Host: {HOST}:{port}", *headers, "", ""]).encode(
                "latin-1"
            )
            for path, headers in requests
        ]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length")
    if length is None:
        raise RuntimeError("response without content-length (chunked bodies are not supported)")
    body = await reader.readexactly(int(length)) if length != "0" else b""
    return status, headers, body


class Recorder:
    def __init__(self, max_requests: int) -> None:
        self.max_requests = max_requests
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.errors = 0

    @property
    def full(self) -> bool:
        return len(self.latencies) + self.errors >= self.max_requests


async def _connection(
    target: Target, until: list[float], recorder: Recorder, sample: dict[str, Any], offset: int
) -> None:
    reader, writer = await asyncio.open_connection(HOST, target.port)
    requests = target.requests
    turn = offset
    perf = time.perf_counter
    try:
        for phase, end in enumerate(until):
            record = phase == len(until) - 1
            while perf() < end:
                if record and recorder.full:
                    return
                request = requests[turn % len(requests)]
                turn += 1
                started = perf()
                try:
                    writer.write(request)
                    status, headers, body = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError, RuntimeError) as exc:
                    recorder.errors += 1
                    sample.setdefault("error", repr(exc))
                    writer.close()
                    reader, writer = await asyncio.open_connection(HOST, target.port)
                    continue
                elapsed = perf() - started
                if "status" not in sample:
                    sample.update(status=status, headers=headers, body=body.decode()[:2000])
                if record:
                    recorder.latencies.append(elapsed)
                    recorder.statuses[status] = recorder.statuses.get(status, 0) + 1
    finally:
        writer.close()


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    requests = [(args.path, args.header)] if args.path else []
    for spec in args.target:
        path, *headers = spec.split("\n")
        requests.append((path, headers))
    target = Target(args.port, requests)
    recorder = Recorder(args.max_requests)
    sample: dict[str, Any] = {}
    start = time.perf_counter()
    warm_end = start + args.warmup
    end = warm_end + args.duration
    tasks = [
        asyncio.create_task(_connection(target, [warm_end, end], recorder, sample, i))
        for i in range(args.concurrency)
    ]
    await asyncio.sleep(max(0.0, warm_end - time.perf_counter()))
    measured_from = time.perf_counter()
    await asyncio.gather(*tasks)
    measured_for = time.perf_counter() - measured_from
    latencies = sorted(recorder.latencies)
    ok = recorder.statuses.get(200, 0)
    return {
        "requests": len(latencies),
        "ok": ok,
        "errors": recorder.errors,
        "statuses": {str(k): v for k, v in sorted(recorder.statuses.items())},
        "seconds": measured_for,
        "rps": ok / measured_for if measured_for > 0 else 0.0,
        "latencies_ms": [round(v * 1000, 3) for v in latencies] if args.raw else None,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p95_ms": _percentile(latencies, 0.95) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "concurrency": args.concurrency,
        "sample": sample,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", help="one request path (with --header)")
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        help="a request as 'PATH\\nHeader: value\\n…' (repeatable; used in turn)",
    )
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--raw", action="store_true", help="include every latency (ms)")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run(args))
    else:
        result = uvloop.run(run(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
