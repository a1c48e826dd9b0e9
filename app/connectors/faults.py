"""Fault injection for the simulators: answer the next requests with an error status."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class Fault:
    """One injected failure: the status to answer with and an optional `Retry-After`."""

    status: int
    retry_after: int | None = None


@dataclass
class Faults:
    """Failures to serve, in order, before requests are handled normally again."""

    pending: deque[Fault] = field(default_factory=deque)

    def inject(self, status: int, *, count: int = 1, retry_after: int | None = None) -> None:
        """Answer the next `count` requests the simulator handles with `status`."""
        self.pending.extend(Fault(status, retry_after) for _ in range(count))

    def clear(self) -> None:
        self.pending.clear()
