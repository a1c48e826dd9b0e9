"""Per-plan rate limits (moving window, `limits` package).

The budget belongs to (account, environment): 100/min starter, 500/min professional, the
account's own limit on enterprise. Unauthenticated traffic is limited per client IP. Memory
storage in embedded mode; Redis storage when `SYNCAUCTION_REDIS_URL` is set, so every API
process draws on one budget (the moving window is a Lua script: exact under concurrency).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string


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


class RateLimiter:
    def __init__(self, redis_url: str | None, *, namespace: str = "syncauction") -> None:
        if redis_url:
            uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
            self.storage = storage_from_string(
                uri, implementation="redispy", key_prefix=f"{namespace}:rl"
            )
        else:
            self.storage = storage_from_string("async+memory://")
        self.strategy = MovingWindowRateLimiter(self.storage)  # type: ignore[arg-type]
        self._items: dict[int, RateLimitItemPerMinute] = {}

    def _item(self, per_minute: int) -> RateLimitItemPerMinute:
        item = self._items.get(per_minute)
        if item is None:
            item = self._items[per_minute] = RateLimitItemPerMinute(per_minute)
        return item

    async def hit(self, key: str, per_minute: int) -> RateLimitResult:
        item = self._item(per_minute)
        allowed = await self.strategy.hit(item, key)
        reset, remaining = await self.strategy.get_window_stats(item, key)
        return RateLimitResult(
            allowed=allowed, limit=per_minute, remaining=max(0, remaining), reset=math.ceil(reset)
        )

    async def reset(self) -> None:
        await self.storage.reset()

    async def check(self) -> bool:
        return await self.storage.check()

    async def close(self) -> None:
        """Close the Redis connection pool (memory storage holds none)."""
        bridge = getattr(self.storage, "bridge", None)
        client = getattr(bridge, "storage", None)
        if client is not None:
            await client.aclose()
