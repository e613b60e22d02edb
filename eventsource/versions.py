"""Expected versions: the sentinels and the check (I/O-free).

A plan's version is the number of rows it has stored, deleted ones included, so
it only ever grows. A writer states what it expects; the store checks it under
the plan's write lock, in the append's own transaction.
"""

from __future__ import annotations

import enum
from typing import Final
from uuid import UUID

from .errors import ConcurrencyConflict, InvalidInput


class StreamState(enum.Enum):
    """Expected-version sentinels (an ``int`` means an exact version)."""

    ANY = "any"
    """No concurrency check."""
    NO_STREAM = "no_stream"
    """The plan must have no events yet."""
    STREAM_EXISTS = "stream_exists"
    """The plan must have at least one event."""


ANY: Final = StreamState.ANY
NO_STREAM: Final = StreamState.NO_STREAM
STREAM_EXISTS: Final = StreamState.STREAM_EXISTS
ExpectedVersion = StreamState | int
"""What a writer expects the plan's version (its number of stored rows) to be."""

_NO_LIMIT: Final = 2**62


def check_expected_argument(expected: object) -> ExpectedVersion:
    """Refuse anything that is not a sentinel or a non-negative ``int``.

    Raises:
        InvalidInput: a bool, a negative number or another type.
    """
    if isinstance(expected, bool) or not isinstance(expected, StreamState | int):
        raise InvalidInput(
            "expected_version must be ANY, NO_STREAM, STREAM_EXISTS or an int",
            field="expected_version",
        )
    if isinstance(expected, int) and expected < 0:
        raise InvalidInput("expected_version cannot be negative", field="expected_version")
    return expected


def accepted_range(expected: ExpectedVersion) -> tuple[int, int]:
    """The versions ``expected`` accepts, as an inclusive range (for SQL)."""
    if expected is NO_STREAM:
        return (0, 0)
    if expected is STREAM_EXISTS:
        return (1, _NO_LIMIT)
    if isinstance(expected, int):
        return (expected, expected)
    return (0, _NO_LIMIT)


def label(expected: ExpectedVersion) -> object:
    """How a conflict names what was expected."""
    return expected.value if isinstance(expected, StreamState) else expected


def check_version(plan_id: UUID, expected: ExpectedVersion, actual: int) -> None:
    """Raise when ``actual`` is not what the writer expected.

    Raises:
        ConcurrencyConflict: naming the plan, the expectation and the actual version.
    """
    low, high = accepted_range(expected)
    if not low <= actual <= high:
        raise ConcurrencyConflict(plan_id, label(expected), actual)


__all__ = [
    "ANY",
    "NO_STREAM",
    "STREAM_EXISTS",
    "ExpectedVersion",
    "StreamState",
    "accepted_range",
    "check_expected_argument",
    "check_version",
]
