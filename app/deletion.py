"""What a delete service returns: the object is gone, so only its id and kind remain."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Deleted:
    """A deleted object: `id` as it was, `object` its kind (`pricing_rule`, …)."""

    id: str
    object: str
