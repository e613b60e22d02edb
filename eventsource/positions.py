"""Where a read starts or stops: stream positions and timeline cursors (I/O-free)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from .errors import InvalidInput
from .events import RecordedEvent, check_timestamp


@dataclass(frozen=True, slots=True, order=True)
class StreamPosition:
    """A point in a plan's stream order (exclusive lower bound for reads)."""

    occurred_at: datetime
    created_at: datetime
    rank: int
    id: UUID

    @classmethod
    def of(cls, event: RecordedEvent, tie_rank: Mapping[str, int] | None = None) -> StreamPosition:
        rank = (tie_rank or {}).get(event.event_type, 0)
        return cls(event.occurred_at, event.created_at, rank, event.id)


@dataclass(frozen=True, slots=True)
class TimelineCursor:
    """Where a newest-first timeline page ended (exclusive upper bound)."""

    occurred_at: datetime
    created_at: datetime
    id: UUID

    def encode(self) -> str:
        """The cursor as the text the CLI prints and takes back with ``--before``."""
        return f"{self.occurred_at.isoformat()}|{self.created_at.isoformat()}|{self.id}"

    @classmethod
    def decode(cls, value: str) -> TimelineCursor:
        """Parse :meth:`encode` output.

        Raises:
            InvalidInput: the text is not a cursor this library printed.
        """
        try:
            occurred, created, ident = value.split("|")
            return cls(
                check_timestamp(datetime.fromisoformat(occurred), "cursor"),
                check_timestamp(datetime.fromisoformat(created), "cursor"),
                UUID(ident),
            )
        except (ValueError, InvalidInput):
            raise InvalidInput(
                f"cursor {value!r} is not one this tool printed; copy it from the "
                "previous page's output",
                field="cursor",
            ) from None


@dataclass(frozen=True, slots=True)
class TimelinePage:
    events: tuple[RecordedEvent, ...]
    next_cursor: TimelineCursor | None
    """Pass as ``before`` for the next (older) page; ``None`` on the last page."""


__all__ = ["StreamPosition", "TimelineCursor", "TimelinePage"]
