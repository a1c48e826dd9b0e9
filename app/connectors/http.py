"""What every connector client shares: back-off with jitter, reading `Retry-After`, and
closing the httpx client only when the connector created it."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Self

import httpx


@dataclass
class Backoff:
    base: float = 0.5
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry `attempt` (0-based): the server's `Retry-After` when it
        gave one, else "equal jitter" (half the exponential step plus a random half), capped."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.cap)
        step = min(self.cap, self.base * 2**attempt)
        return step / 2 + self.rng.uniform(0, step / 2)


def read_retry_after(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds (given as seconds or as an HTTP date), or None."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


class OwnedClient:
    """Async context manager over `self._client`, closed only if `self._owns_client`."""

    _client: httpx.AsyncClient
    _owns_client: bool

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def owning(self) -> Self:
        """Take over the HTTP client passed in: `aclose()` closes it too."""
        self._owns_client = True
        return self

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it (or was handed it, `owning`)."""
        if self._owns_client:
            await self._client.aclose()


__all__ = ["Backoff", "OwnedClient", "read_retry_after"]
