"""Newest first with a tie rank: exactly the reverse of the stream order.

The stream order is ``occurred_at``, ``created_at``, the projection's tie rank by
event type, then ``id``. :meth:`StreamStore.timeline` pages newest first by
``occurred_at``, ``created_at`` and ``id`` (its index has no tie rank), so for
events of one transaction, which tie on both timestamps, it can put a stage's start
before the previous stage's completion, the reverse of what a fold sees.

:func:`newest_first` keeps the index's paging and fixes the ties: it reads pages
until the group of tied events at the page's end is complete (the index returns a
group's rows together), sorts by the full stream key, and pages with a cursor that
carries the tie rank, so paging never splits or repeats a group. Without a tie rank
the result is the store's timeline, row for row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

from .errors import InvalidInput
from .events import RecordedEvent, check_timestamp
from .positions import StreamPosition, TimelineCursor
from .streams import StreamStore

_ONE_MICROSECOND: Final = timedelta(microseconds=1)
_LOWEST_ID: Final = UUID(int=0)


@dataclass(frozen=True, slots=True)
class RankedPage:
    events: tuple[RecordedEvent, ...]
    """Newest first: the reverse of the stream order, tie rank included."""
    next_cursor: StreamPosition | None
    """Give to ``before`` for the next (older) page; None on the last page."""


def encode_cursor(position: StreamPosition) -> str:
    """The cursor text the CLI prints for ``--before``."""
    return (
        f"{position.occurred_at.isoformat()}|{position.created_at.isoformat()}|"
        f"{position.rank}|{position.id}"
    )


def decode_cursor(value: str) -> StreamPosition:
    """Parse :func:`encode_cursor` output.

    Raises:
        InvalidInput: the text is not a cursor this tool printed.
    """
    try:
        occurred, created, rank, ident = value.split("|")
        return StreamPosition(
            check_timestamp(datetime.fromisoformat(occurred), "cursor"),
            check_timestamp(datetime.fromisoformat(created), "cursor"),
            int(rank),
            UUID(ident),
        )
    except (ValueError, InvalidInput):
        raise InvalidInput(
            f"cursor {value!r} is not one this tool printed; copy it from the previous "
            "page's output",
            field="cursor",
        ) from None


def _group(event: RecordedEvent) -> tuple[datetime, datetime]:
    return event.occurred_at, event.created_at


def newest_first(
    store: StreamStore,
    plan_id: UUID,
    tie_rank: Mapping[str, int],
    *,
    before: StreamPosition | None = None,
    limit: int = 50,
) -> RankedPage:
    """One page of the plan's live events, newest first, tie rank included.

    Raises:
        InvalidInput: ``limit`` is below 1.
    """
    if limit < 1:
        raise InvalidInput("limit must be at least 1", field="limit")

    def key(event: RecordedEvent) -> StreamPosition:
        return StreamPosition.of(event, tie_rank)

    # Everything at or before the cursor's group: the store's cursor is exclusive on
    # (occurred_at, created_at, id), and timestamps are kept to the microsecond.
    cursor = (
        None
        if before is None
        else TimelineCursor(before.occurred_at, before.created_at + _ONE_MICROSECOND, _LOWEST_ID)
    )
    fetched: list[RecordedEvent] = []
    chunk = max(limit + 1, 50)
    while True:
        page = store.timeline(plan_id, before=cursor, limit=chunk)
        fetched += [e for e in page.events if before is None or key(e) < before]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        if len(fetched) > limit and _group(fetched[-1]) != _group(fetched[limit]):
            break
    ordered = sorted(fetched, key=key, reverse=True)
    events = tuple(ordered[:limit])
    more = len(ordered) > limit
    return RankedPage(events, key(events[-1]) if more else None)


__all__ = ["RankedPage", "decode_cursor", "encode_cursor", "newest_first"]
