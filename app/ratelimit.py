"""Per-plan rate limits (moving window, `limits` package).

The budget belongs to (account, environment): 100/min starter, 500/min professional, the
account's own limit on enterprise. Unauthenticated traffic is limited per client IP. Memory
storage in embedded mode; Redis storage when `SYNCAUCTION_REDIS_URL` is set, so every API
process draws on one budget (the moving window is a Lua script: exact under concurrency).
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.storage import memory as limits_memory
from limits.aio.storage.memory import Entry
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from redis.exceptions import NoScriptError


@dataclass(frozen=True, slots=True)
class RateLimitResult:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # Unix seconds when the window has room again

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset - time.time()))

    def headers(self) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset).encode()),
        ]
        if not self.allowed:
            headers.append((b"retry-after", str(self.retry_after).encode()))
        return headers


# The moving-window check in one round trip: acquire an entry and read the window's count and
# start, on the same list `limits` keeps (same key, same entry format, newest first), so
# `limits`' own reads, clears and resets keep working on it.
_ACQUIRE_WITH_STATS = """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local expiry = tonumber(ARGV[3])
local cutoff = now - expiry
-- The list is newest first: entries that left the window sit at the tail. Dropping them as
-- they expire keeps every step O(1) (each entry is popped once) and LLEN the window's count.
while true do
    local last = redis.call('lindex', KEYS[1], -1)
    if last and tonumber(last) < cutoff then
        redis.call('rpop', KEYS[1])
    else
        break
    end
end
local count = redis.call('llen', KEYS[1])
local acquired = 0
if count < limit then
    redis.call('lpush', KEYS[1], now)
    redis.call('ltrim', KEYS[1], 0, limit - 1)
    redis.call('expire', KEYS[1], expiry)
    acquired = 1
    count = count + 1
end
local oldest = redis.call('lindex', KEYS[1], -1) or tostring(now)
return {acquired, oldest, count}
"""


class _ScriptBatcher:
    """Runs the limiter's script for many requests in one round trip on one connection.

    A standalone redis-py call costs ~150 µs of CPU; commands written together on a bare
    connection cost ~20 µs each at four a batch and ~10 µs at sixteen. One batch is in flight at
    a time: checks that arrive meanwhile wait for it and then go together, so an idle server adds
    no latency and a busy one sends large batches. Each script call stays atomic on its own, so
    the budget is exact."""

    def __init__(self, redis_url: str, source: str) -> None:
        from redis.asyncio import ConnectionPool

        # The pool only builds a connection with the URL's settings (password, db, TLS).
        # Short timeouts: a stalled Redis must fail the check (and the gateway fails open),
        # not hold every request behind the batch in flight.
        self._factory = ConnectionPool.from_url(
            redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        self._connection: Any = None
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._heads: dict[int, bytes] = {}
        self._pending: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]] = []
        self._busy = False

    def _evalsha(self, key: str, args: tuple[Any, ...]) -> bytes:
        """`EVALSHA <sha> 1 <key> <args…>` in RESP, the head encoded once (redis-py's generic
        command packing was a third of the limiter's cost)."""
        head = self._heads.get(len(args))
        if head is None:
            head = self._heads[len(args)] = b"*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n$1\r\n1\r\n" % (
                len(args) + 4,
                self.sha.encode(),
            )
        parts = [head]
        for value in (key, *args):
            data = value.encode() if isinstance(value, str) else repr(value).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        return b"".join(parts)

    async def call(self, key: str, *args: Any) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((key, args, future))
        if not self._busy:
            self._busy = True
            asyncio.get_running_loop().call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            self._busy = False
            return
        task = asyncio.create_task(self._send(batch))
        task.add_done_callback(lambda _task: self._flush())

    async def _send(self, batch: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        try:
            results = await self._execute(batch)
        except Exception as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _execute(
        self, batch: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]]
    ) -> list[Any]:
        payload = b"".join(self._evalsha(key, args) for key, args, _ in batch)
        for _ in range(2):
            connection = self._connection
            if connection is None:
                connection = self._connection = self._factory.make_connection()
            try:
                await connection.send_packed_command(payload)
                return [await connection.read_response() for _ in batch]
            except NoScriptError:  # first use, or Redis restarted / flushed its scripts
                await self._reset()
                await self._load_script()
            except BaseException:
                await self._reset()  # unread replies would desynchronise the connection
                raise
        raise RuntimeError("the rate-limit script could not be loaded into Redis")

    async def _load_script(self) -> None:
        connection = self._connection = self._factory.make_connection()
        await connection.send_command("SCRIPT", "LOAD", self.source)
        await connection.read_response()

    async def _reset(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.disconnect()

    async def close(self) -> None:
        await self._reset()
        await self._factory.aclose()


class _MemoryStorage(MemoryStorage):
    """`limits`' memory storage, with its expiry sweep run at most once a second and inline.

    Upstream schedules the sweep again on every hit as soon as the previous one has finished,
    and each sweep hops to a worker thread once per key: under steady traffic that background
    churn cost more than the rate limiting itself. Expired entries never count either way (the
    moving window compares timestamps); the sweep only frees memory, so once a second is plenty.
    """

    SWEEP_INTERVAL = 1.0
    _last_sweep = 0.0

    async def acquire_with_stats(
        self, key: str, limit: int, expiry: int
    ) -> tuple[bool, float, int]:
        """`acquire_entry` then `get_moving_window` in one pass under the key's lock, on the
        same entries: (allowed, reset time, remaining)."""
        await self._MemoryStorage__schedule_expiry()
        async with self.locks[key]:
            events = self.events.setdefault(key, [])
            now = limits_memory.time.time()  # the clock `Entry` stamps with
            newest_to_drop = events[limit - 1] if len(events) >= limit else None
            allowed = newest_to_drop is None or newest_to_drop.atime < now - expiry
            if allowed:
                events.insert(0, Entry(expiry))
            count = bisect.bisect_left(events, -(now - expiry), key=lambda entry: -entry.atime)
            start = events[count - 1].atime if count else now
        return allowed, start + expiry, limit - count

    async def _MemoryStorage__expire_events(self) -> None:
        # Upstream hops to a worker thread per key for the bisect; on lists the size of a plan's
        # window that costs more than it saves, and with no await here nothing interleaves.
        now = limits_memory.time.time()
        for key in list(self.events):
            events = self.events[key]
            cutoff = bisect.bisect_left(events, -now, key=lambda entry: -entry.expiry)
            del events[cutoff:]
            if not events:
                del self.events[key]
                self.locks.pop(key, None)
        for key in list(self.expirations):
            if self.expirations[key] <= now:
                self.storage.pop(key, None)
                self.expirations.pop(key, None)
                self.locks.pop(key, None)

    async def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep < self.SWEEP_INTERVAL:
            return
        self._last_sweep = now
        await super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]


class RateLimiter:
    def __init__(self, redis_url: str | None, *, namespace: str = "syncauction") -> None:
        self._script = None
        if redis_url:
            uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
            self.storage = storage_from_string(
                uri, implementation="redispy", key_prefix=f"{namespace}:rl"
            )
            bridge = self.storage.bridge  # type: ignore[attr-defined]
            self._script = _ScriptBatcher(redis_url.removeprefix("async+"), _ACQUIRE_WITH_STATS)
            self._prefixed = bridge.prefixed_key
        else:
            self.storage = _MemoryStorage()
        self.strategy = MovingWindowRateLimiter(self.storage)  # type: ignore[arg-type]
        self._items: dict[int, RateLimitItemPerMinute] = {}

    def _item(self, per_minute: int) -> RateLimitItemPerMinute:
        item = self._items.get(per_minute)
        if item is None:
            item = self._items[per_minute] = RateLimitItemPerMinute(per_minute)
        return item

    async def hit(self, key: str, per_minute: int) -> RateLimitResult:
        """Take one request from `key`'s budget; the result says whether it was allowed and
        what is left (for the headers)."""
        item = self._item(per_minute)
        if self._script is not None:
            expiry = item.get_expiry()
            acquired, oldest, count = await self._script.call(
                self._prefixed(item.key_for(key)), time.time(), per_minute, expiry
            )
            allowed = bool(acquired)
            reset, remaining = float(oldest) + expiry, per_minute - int(count)
        else:
            allowed, reset, remaining = await self.storage.acquire_with_stats(  # type: ignore[union-attr]
                item.key_for(key), per_minute, item.get_expiry()
            )
        return RateLimitResult(
            allowed=allowed, limit=per_minute, remaining=max(0, remaining), reset=math.ceil(reset)
        )

    async def reset(self) -> None:
        await self.storage.reset()

    async def close(self) -> None:
        """Close the Redis connections (memory storage holds none)."""
        if self._script is not None:
            await self._script.close()
        bridge = getattr(self.storage, "bridge", None)
        client = getattr(bridge, "storage", None)
        if client is not None:
            await client.aclose()
