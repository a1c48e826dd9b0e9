"""Text fields as the API accepts them: trimmed, bounded, and free of control characters
(PostgreSQL rejects NUL in text and JSON, and no control character belongs in a name)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StringConstraints


def printable(value: str) -> str:
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise ValueError("must not contain control characters")
    return value


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(printable),
]
# A condition value such as a metal or a grading service.
FilterValue = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=20),
    AfterValidator(printable),
]
