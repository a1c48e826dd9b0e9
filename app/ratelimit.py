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
import operator
import time
from dataclasses import dataclass
from typing import Any

import hiredis
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.storage import memory as limits_memory
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from redis.exceptions import ResponseError


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs twice as much
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
            (b"x-ratelimit-limit", b"%d" % self.limit),
            (b"x-ratelimit-remaining", b"%d" % self.remaining),
            (b"x-ratelimit-reset", b"%d" % self.reset),
        ]
        if not self.allowed:
            headers.append((b"retry-after", b"%d" % self.retry_after))
        return headers


# The moving-window check in one round trip: acquire an entry and read the window's count and
# start, on the same list `limits` keeps (same key, same entry format, newest first), so
# `limits`' own reads, clears and resets keep working on it. Each `redis.call` costs Redis
# about a microsecond on top of the script's fixed cost, so the script makes as few as the
# check needs: in steady traffic LINDEX, RPOP (the entry that just expired), LINDEX, LLEN, LPUSH
# and EXPIRE.
_ACQUIRE_WITH_STATS = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local expiry = tonumber(ARGV[3])
local cutoff = now - expiry
-- The list is newest first: entries that left the window sit at the tail. Dropping them as
-- they expire keeps every step O(1) (each entry is popped once) and LLEN the window's count.
local oldest = redis.call('lindex', key, -1)
while oldest and tonumber(oldest) < cutoff do
    redis.call('rpop', key)
    oldest = redis.call('lindex', key, -1)
end
local count = redis.call('llen', key)
local acquired = 0
if count < limit then
    -- The window had room, so after the push the list holds at most `limit` entries.
    count = redis.call('lpush', key, ARGV[1])
    redis.call('expire', key, expiry)
    acquired = 1
end
-- An empty window starts now (with the entry just pushed, if there is one).
return {acquired, oldest or ARGV[1], count}
"""


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


class _ReplyProtocol(asyncio.Protocol):
    """Parses a Redis connection's replies with hiredis as they arrive on the transport.

    redis-py's `read_response` wraps each reply in a timeout context and several layers of
    calls, tens of microseconds apiece; here a batch's replies go straight from the parser to
    their waiters, with no task, stream read or timeout object per reply."""

    def __init__(self, batcher: _ScriptBatcher, writer: asyncio.StreamWriter) -> None:
        self.batcher = batcher
        self.writer = writer
        self.transport = writer.transport
        self.reader = hiredis.Reader(replyError=ResponseError)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        gets = self.reader.gets
        while (reply := gets()) is not False:
            self.batcher._reply(self, reply)

    def eof_received(self) -> bool:
        return False  # Redis closed its side: close ours, `connection_lost` follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.batcher._lost(self, exc)


# A queued script call: its key and arguments in RESP, how many arguments follow the key, the
# waiter, and whether to send the script's source (EVAL) rather than its digest (EVALSHA).
_Call = tuple[bytes, int, "asyncio.Future[Any]", bool]


class _ScriptBatcher:
    """Runs the limiter's script for many requests in one round trip on one connection.

    A standalone redis-py call costs ~150 µs of CPU. Here a check only queues its encoded
    command and waits on a future. One batch is in flight at a time: the checks that arrive
    meanwhile go out together, in one write, as soon as its last reply is in; so an idle server
    adds no latency and a busy one sends large batches (fewer system calls for the server and
    for Redis). Each script call stays atomic on its own, so the budget is exact.

    The write and the reply's wake-up cost the server far more than a check's own encoding
    (about 75 µs against 15 on a small VM), so calls nobody waits for yet are held up to
    `WINDOW` to share a round trip; see `submit`.

    redis-py opens the connection (so the URL's password, db, TLS and client settings apply);
    the batcher then takes over its transport and parses the replies itself."""

    # A stalled Redis fails the batch in flight after this long (and the gateway fails open),
    # instead of holding every request behind it.
    TIMEOUT = 0.5
    # Checks nobody waits for yet (early checks: their read is still running) may wait this
    # long for others to share their round trip; a read that finishes first sends them at once.
    WINDOW = 0.005

    def __init__(self, redis_url: str, source: str) -> None:
        from redis.asyncio import ConnectionPool

        self._factory = ConnectionPool.from_url(
            redis_url, socket_timeout=self.TIMEOUT, socket_connect_timeout=self.TIMEOUT
        )
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._heads: dict[tuple[int, bool], bytes] = {}
        self._pending: list[_Call] = []  # queued for the next batch
        self._retry: list[_Call] = []  # found the script missing in the batch in flight
        self._inflight: list[_Call] = []  # sent, in reply order
        self._replied = 0  # replies received for the batch in flight
        self._protocol: _ReplyProtocol | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._scheduled = False
        self._connecting = False
        self._connect_task: asyncio.Task[None] | None = None  # held: a bare task may be collected
        self._closed = False
        self._urgent = False  # a queued call has someone waiting for it
        self._window: asyncio.TimerHandle | None = None

    # --- encoding ---------------------------------------------------------------------------

    def _head(self, nargs: int, evaluate: bool) -> bytes:
        """`EVALSHA <sha> 1` (or `EVAL <source> 1`, which loads the script again) in RESP for a
        call with `nargs` arguments after its key, encoded once."""
        head = self._heads.get((nargs, evaluate))
        if head is None:
            command = (
                _bulk(b"EVAL") + _bulk(self.source.encode())
                if evaluate
                else (_bulk(b"EVALSHA") + _bulk(self.sha.encode()))
            )
            head = self._heads[nargs, evaluate] = b"*%d\r\n%s%s" % (
                nargs + 4,
                command,
                _bulk(b"1"),
            )
        return head

    @staticmethod
    def encode(*values: str | bytes | int | float) -> bytes:
        """Values in RESP, as `submit` takes them (callers may cache constant parts)."""
        return b"".join(
            _bulk(value if isinstance(value, bytes) else str(value).encode()) for value in values
        )

    # --- calls ------------------------------------------------------------------------------

    def submit(self, arguments: bytes, nargs: int, *, urgent: bool = True) -> asyncio.Future[Any]:
        """Queue one script call; `arguments` is `encode(key, *args)` with `nargs` args after
        the key. The future gets the script's reply.

        An urgent call (someone waits for it) goes out at the end of this pass of the event
        loop. Others may wait up to `WINDOW` for company, unless `hurry` is called first."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._closed:  # shutting down: fail the check (the gateway lets it through)
            future.set_exception(ConnectionError("the rate limiter was closed"))
            return future
        self._pending.append((arguments, nargs, future, False))
        if urgent:
            self._urgent = True
            if not self._scheduled and not self._inflight and not self._connecting:
                # Send at the end of this pass of the event loop, with every check it starts.
                self._scheduled = True
                future.get_loop().call_soon(self._flush)
        elif self._window is None and not self._inflight and not self._connecting:
            self._window = future.get_loop().call_later(self.WINDOW, self._window_over)
        return future

    def hurry(self) -> None:
        """Someone now waits for a queued call: send the queue as soon as it can go."""
        if self._urgent or not self._pending:
            return
        self._urgent = True
        if not self._scheduled and not self._inflight and not self._connecting:
            self._flush()

    def _window_over(self) -> None:
        self._window = None
        self._urgent = True
        self._flush()

    async def call(self, key: str, *args: str | bytes | int | float) -> Any:
        return await self.submit(self.encode(key, *args), len(args))

    def _flush(self) -> None:
        self._scheduled = False
        if self._closed:  # calls requeued by the close itself (NOSCRIPT retries) fail too
            pending, self._pending = self._pending, []
            self._fail(pending, ConnectionError("the rate limiter was closed"))
            return
        if self._inflight or self._connecting or not self._pending:
            return
        if not self._urgent:
            if self._window is None:
                self._window = asyncio.get_running_loop().call_later(self.WINDOW, self._window_over)
            return
        protocol = self._protocol
        if protocol is None or protocol.transport.is_closing():
            self._connecting = True
            self._connect_task = asyncio.get_running_loop().create_task(self._connect())
            return
        self._urgent = False
        if self._window is not None:
            self._window.cancel()
            self._window = None
        batch, self._pending = self._pending, []
        head = self._head
        protocol.transport.write(
            b"".join([head(nargs, evaluate) + arguments for arguments, nargs, _, evaluate in batch])
        )
        self._inflight, self._replied = batch, 0
        self._timer = asyncio.get_running_loop().call_later(self.TIMEOUT, self._stalled, protocol)

    def _reply(self, protocol: _ReplyProtocol, reply: Any) -> None:
        if protocol is not self._protocol or self._replied >= len(self._inflight):
            return  # a connection being dropped
        call = self._inflight[self._replied]
        self._replied += 1
        future = call[2]
        if isinstance(reply, ResponseError):
            if not call[3] and str(reply).startswith("NOSCRIPT"):
                # Redis lost the script (restart, SCRIPT FLUSH): nothing ran for this call, so
                # it runs in the next batch, as EVAL. Calls that did run are not repeated.
                self._retry.append((call[0], call[1], future, True))
            elif not future.done():
                future.set_exception(reply)
        elif not future.done():
            future.set_result(reply)
        if self._replied == len(self._inflight):
            self._inflight = []
            if self._retry:
                self._pending[:0], self._retry = self._retry, []
                self._urgent = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._flush()

    def _fail(self, calls: list[_Call], exc: BaseException) -> None:
        for _, _, future, _ in calls:
            if not future.done():
                future.set_exception(exc)

    def _stalled(self, protocol: _ReplyProtocol) -> None:
        if protocol is self._protocol and self._inflight:
            # Replies still owed would desynchronise the connection: drop it.
            self._drop(TimeoutError("Redis did not answer the rate-limit check in time"))

    def _lost(self, protocol: _ReplyProtocol, exc: Exception | None) -> None:
        if protocol is self._protocol:
            self._drop(ConnectionError(f"Redis connection lost: {exc or 'closed by the server'}"))

    def _drop(self, exc: BaseException) -> None:
        """Close the connection and fail the batch in flight; queued checks go out on a new
        connection."""
        protocol, self._protocol = self._protocol, None
        inflight, self._inflight = self._inflight, []
        self._pending[:0], self._retry = self._retry, []
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if protocol is not None:
            protocol.transport.abort()
        self._fail(inflight, exc)
        if self._pending and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def _connect(self) -> None:
        try:
            connection = self._factory.make_connection()
            await connection.connect()
            # Take the transport over from redis-py's (private) stream. The connection object
            # then forgets it, so it neither reads from it nor closes it when collected; the
            # protocol keeps the stream writer, which closes its transport when collected.
            writer = connection._writer
            protocol = _ReplyProtocol(self, writer)
            writer.transport.set_protocol(protocol)
            connection._reader = connection._writer = None
        except BaseException as exc:
            self._connecting = self._urgent = False
            pending, self._pending = self._pending, []
            self._fail(pending, exc if isinstance(exc, Exception) else ConnectionError(str(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        self._protocol = protocol
        self._connecting = False
        if self._closed:  # closed while connecting
            self._drop(ConnectionError("the rate limiter was closed"))
            return
        self._flush()

    async def close(self) -> None:
        self._closed = True
        if self._window is not None:
            self._window.cancel()
            self._window = None
        closed = ConnectionError("the rate limiter was closed")
        pending, self._pending = self._pending, []
        self._fail(pending, closed)
        if self._protocol is not None:
            self._drop(closed)
        await self._factory.aclose()


class _MemoryStorage(MemoryStorage):
    """`limits`' memory storage, with plain timestamps for the moving windows and its expiry
    sweep run at most once a second and inline.

    Upstream keeps an `Entry` object per request in a window, a minute's worth per key: every
    one lives through the young garbage-collector generations into the oldest, whose full
    collections (a tenth of a second and more on a loaded API process) then come more often and
    take longer as the windows fill. A window here is a list of floats (the entries' times,
    newest first), which the collector never tracks; the window's length is the key's own, so
    an entry's expiry is its time plus that length. The methods that read or write the windows
    (`acquire_entry`, `get_moving_window`, the sweep) are overridden to match.

    Upstream also schedules the sweep again on every hit as soon as the previous one has
    finished, and each sweep hops to a worker thread once per key: under steady traffic that
    background churn cost more than the rate limiting itself. Expired entries never count
    either way (the moving window compares timestamps); the sweep only frees memory, so once a
    second is plenty.
    """

    SWEEP_INTERVAL = 1.0
    _last_sweep = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.windows: dict[str, int] = {}  # each key's window length (its entries' expiry)

    async def acquire_with_stats(
        self, key: str, limit: int, expiry: int
    ) -> tuple[bool, float, int]:
        """`acquire_entry` then `get_moving_window` in one pass on the same entries:
        (allowed, reset time, remaining)."""
        if time.monotonic() - self._last_sweep >= self.SWEEP_INTERVAL:
            await self._MemoryStorage__schedule_expiry()
        # The pass never awaits, so nothing can interleave with it; the key's lock only has to
        # be respected if some other `limits` call holds it across an await. Taking a free
        # lock (and creating one per key) would cost more than the check itself.
        lock = self.locks.get(key)
        if lock is not None and lock.locked():
            async with lock:
                return self._acquire(key, limit, expiry)
        return self._acquire(key, limit, expiry)

    def _window(self, key: str, expiry: int) -> list[float]:
        events = self.events.get(key)
        if events is None:
            events = self.events[key] = []  # type: ignore[assignment]
        self.windows[key] = expiry
        return events  # type: ignore[return-value]

    def _acquire(self, key: str, limit: int, expiry: int) -> tuple[bool, float, int]:
        events = self._window(key, expiry)
        now = limits_memory.time.time()  # the clock `limits` stamps entries with
        allowed = len(events) < limit or events[limit - 1] < now - expiry
        if allowed:
            events.insert(0, now)
        count = bisect.bisect_left(events, expiry - now, key=operator.neg)
        start = events[count - 1] if count else now
        return allowed, start + expiry, limit - count

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Upstream's check, on the float windows."""
        if amount > limit:
            return False
        await self._MemoryStorage__schedule_expiry()
        events = self._window(key, expiry)
        now = limits_memory.time.time()
        if len(events) > limit - amount and events[limit - amount] >= now - expiry:
            return False
        events[:0] = [now] * amount
        return True

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """Upstream's (start of the window, entries in it), on the float windows."""
        now = limits_memory.time.time()
        events: list[float] = self.events.get(key) or []  # type: ignore[assignment]
        if events:
            count = bisect.bisect_left(events, expiry - now, key=operator.neg)
            return events[count - 1], count
        return now, 0

    async def clear(self, key: str) -> None:
        await super().clear(key)
        self.windows.pop(key, None)

    async def reset(self) -> int | None:
        self.windows.clear()
        return await super().reset()

    async def _MemoryStorage__expire_events(self) -> None:
        # Upstream hops to a worker thread per key for the bisect; on lists the size of a plan's
        # window that costs more than it saves, and with no await here nothing interleaves.
        now = limits_memory.time.time()
        for key in list(self.events):
            events: list[float] = self.events[key]  # type: ignore[assignment]
            window = self.windows.get(key, 0)
            # Entries at or before `now - window` have expired (upstream: expiry <= now).
            del events[bisect.bisect_left(events, window - now, key=operator.neg) :]
            if not events:
                del self.events[key]
                self.windows.pop(key, None)
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


class EarlyCheck:
    """A Redis check sent for a read that goes ahead while it is in flight (see
    `RateLimiter.check_early`). `result()` waits for it, once; it raises if the store failed."""

    __slots__ = ("_expiry", "_future", "_key", "_landed", "_limiter", "_per_minute")

    def __init__(
        self,
        limiter: RateLimiter,
        future: asyncio.Future[Any],
        key: str,
        per_minute: int,
        expiry: int,
    ) -> None:
        self._limiter = limiter
        self._future = future
        self._key = key
        self._per_minute = per_minute
        self._expiry = expiry
        self._landed = False

    async def result(self) -> RateLimitResult:
        if self._landed:
            raise RuntimeError("an early check's result is read once")
        try:
            if not self._future.done():
                self._limiter._script.hurry()  # type: ignore[union-attr]
            reply = await self._future
        finally:
            self._landed = True
            self._limiter._early_landed(self._key)
        return self._limiter._redis_result(self._key, self._per_minute, self._expiry, reply)


class RateLimiter:
    # Each budget's fixed parts (`_budget`) per (key, limit): one entry per account budget
    # and per client IP seen. Cleared when it grows past this, so a flood of distinct IPs
    # cannot grow it without bound. The last remaining count seen per key is bounded alike.
    MAX_CACHED_KEYS = 10_000

    # A read may go ahead while its Redis check is in flight only if this many requests (a
    # tenth of the limit, at least 8) would still be left after every check already ahead.
    EARLY_HEADROOM_SHARE = 10
    EARLY_HEADROOM_MIN = 8

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
        self._budgets: dict[tuple[str, int], tuple[Any, ...]] = {}  # see `_budget`
        self._remaining: dict[str, int] = {}  # per key, as its last Redis check here left it
        self._ahead: dict[str, int] = {}  # per key, early checks still in flight

    def _item(self, per_minute: int) -> RateLimitItemPerMinute:
        item = self._items.get(per_minute)
        if item is None:
            item = self._items[per_minute] = RateLimitItemPerMinute(per_minute)
        return item

    def _budget(self, key: str, per_minute: int) -> tuple[Any, ...]:
        """What does not change between checks of one budget, worked out once. Memory
        storage: the key `limits` uses and the expiry. Redis: that key, and the limit and
        expiry arguments, in RESP, then the expiry."""
        budget = self._budgets.get((key, per_minute))
        if budget is None:
            if len(self._budgets) >= self.MAX_CACHED_KEYS:
                self._budgets.clear()
            item = self._item(per_minute)
            storage_key, expiry = item.key_for(key), item.get_expiry()
            if self._script is None:
                budget = (storage_key, expiry)
            else:
                encode = _ScriptBatcher.encode
                budget = (encode(self._prefixed(storage_key)), encode(per_minute, expiry), expiry)
            self._budgets[key, per_minute] = budget
        return budget

    async def hit(self, key: str, per_minute: int) -> RateLimitResult:
        """Take one request from `key`'s budget; the result says whether it was allowed and
        what is left (for the headers)."""
        if self._script is not None:
            future, expiry = self._submit(key, per_minute)
            return self._redis_result(key, per_minute, expiry, await future)
        storage_key, expiry = self._budget(key, per_minute)
        allowed, reset, remaining = await self.storage.acquire_with_stats(  # type: ignore[union-attr]
            storage_key, per_minute, expiry
        )
        return RateLimitResult(allowed, per_minute, max(0, remaining), math.ceil(reset))

    def check_early(self, key: str, per_minute: int) -> EarlyCheck | None:
        """Send `key`'s check for a read that may run while the check is in flight, or return
        None when it must wait for the answer (`hit`).

        Waiting for Redis costs a request one more pass through the event loop, about as much
        CPU as the check itself. A read (it changes nothing) can instead go ahead and have its
        answer held back until the check is in, then be sent or replaced by the 429. That is
        only done while the budget is far from empty: the last check here left more than the
        headroom, counting every early check still in flight. So traffic near or over its
        limit waits as before, and a refused request's handler only runs when other processes
        spent the headroom in the moment before. The budget is exact either way: the check
        itself is the same atomic script. Memory storage answers without suspending: None."""
        if self._script is None:
            return None
        remaining = self._remaining.get(key)
        ahead = self._ahead.get(key, 0)
        headroom = max(self.EARLY_HEADROOM_MIN, per_minute // self.EARLY_HEADROOM_SHARE)
        if remaining is None or remaining - ahead <= headroom:
            return None
        self._ahead[key] = ahead + 1
        future, expiry = self._submit(key, per_minute, urgent=False)
        return EarlyCheck(self, future, key, per_minute, expiry)

    def _submit(
        self, key: str, per_minute: int, *, urgent: bool = True
    ) -> tuple[asyncio.Future[Any], int]:
        redis_key, limit_and_expiry, expiry = self._budget(key, per_minute)
        now = repr(time.time()).encode()
        future = self._script.submit(  # type: ignore[union-attr]
            b"%s$%d\r\n%s\r\n%s" % (redis_key, len(now), now, limit_and_expiry), 3, urgent=urgent
        )
        return future, expiry

    def _redis_result(
        self, key: str, per_minute: int, expiry: int, reply: list[Any]
    ) -> RateLimitResult:
        acquired, oldest, count = reply
        remaining = per_minute - count
        seen = self._remaining
        if len(seen) >= self.MAX_CACHED_KEYS and key not in seen:
            seen.clear()
        seen[key] = remaining
        return RateLimitResult(
            acquired == 1, per_minute, max(0, remaining), math.ceil(float(oldest) + expiry)
        )

    def _early_landed(self, key: str) -> None:
        ahead = self._ahead.get(key, 0) - 1
        if ahead > 0:
            self._ahead[key] = ahead
        else:
            self._ahead.pop(key, None)

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
