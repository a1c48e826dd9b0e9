"""Public object ids: `<prefix>_<24 chars>`, time-ordered so that sorting by id is sorting by
creation (the cursor pagination relies on it), and unguessable (72 random bits)."""

from __future__ import annotations

import re
import secrets
import threading
import time

_ALPHABET = "0123456789abcdefghijklmnopqrstuv"  # base32, sorts the same in every collation
_BODY_LENGTH = 24
_ID_RE = re.compile(rf"([a-z]+)_([0-9a-v]{{{_BODY_LENGTH}}})")


_RANDOM_BITS = 72
_last_value = 0
_lock = threading.Lock()


def new_id(prefix: str) -> str:
    """Within a process ids are strictly increasing, even within one millisecond (the random
    part is incremented, as monotonic ULIDs do)."""
    global _last_value
    candidate = (time.time_ns() // 1_000_000) << _RANDOM_BITS | secrets.randbits(_RANDOM_BITS)
    with _lock:
        if candidate <= _last_value:
            candidate = _last_value + 1 + secrets.randbits(16)
        _last_value = candidate
    value = candidate
    chars = []
    for _ in range(_BODY_LENGTH):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return f"{prefix}_{''.join(reversed(chars))}"


def is_valid_id(value: str, prefix: str) -> bool:
    match = _ID_RE.fullmatch(value)
    return bool(match) and match.group(1) == prefix
