"""Events as text for people: readable at 80 columns and whole when piped.

A table with a payload column leaves the payload a few characters at 80 columns
and truncates event types. Here each event is a header line (when, what, stage,
who) and its payload on the next line, indented: on a terminal long lines wrap
at its width under their indent; in a pipe nothing is wrapped or cut, so every
line is whole for ``grep`` and ``less``.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

from .events import RecordedEvent
from .jsonl import format_timestamp

INDENT: Final = "    "
TIMESTAMP_WIDTH: Final = 27
"""``2025-05-14T03:27:36.133474Z``"""
STAGE_WIDTH: Final = 14
"""``implementation``, the longest stage."""
TYPE_WIDTH_CAP: Final = 24
"""Event types are padded to the longest on the page, up to this; longer ones push."""


def terminal_width() -> int | None:
    """Stdout's width when it is a terminal; None (never wrap) in a pipe or file."""
    try:
        interactive = sys.stdout.isatty()
    except (AttributeError, ValueError):
        interactive = False
    return shutil.get_terminal_size().columns if interactive else None


def compact_json(value: Any) -> str:
    """One-line JSON with spaces after separators (so it can wrap between items)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def actor_label(event: RecordedEvent) -> str:
    return "system" if event.actor_user_id is None else str(event.actor_user_id)[:8]


def wrapped(text: str, width: int | None, indent: str = INDENT) -> list[str]:
    """``text`` under ``indent``; wrapped at ``width`` (continuations indented deeper)."""
    if width is None or len(indent) + len(text) <= width:
        return [indent + text]
    return textwrap.wrap(
        text,
        width=max(width, len(indent) + 20),
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_long_words=True,
        break_on_hyphens=False,
        drop_whitespace=True,
    ) or [indent]


def type_width(events: Iterable[RecordedEvent]) -> int:
    return min(TYPE_WIDTH_CAP, max((len(e.event_type) for e in events), default=10))


def header(event: RecordedEvent, types: int, *, stage: bool = True) -> str:
    parts = [format_timestamp(event.occurred_at), event.event_type.ljust(types)]
    if stage:
        parts.append((event.stage or "").ljust(STAGE_WIDTH))
    parts.append(actor_label(event))
    return "  ".join(parts)


def column_names(types: int, *, stage: bool = True) -> str:
    parts = ["occurred_at".ljust(TIMESTAMP_WIDTH), "event_type".ljust(types)]
    if stage:
        parts.append("stage".ljust(STAGE_WIDTH))
    parts.append("actor")
    return "  ".join(parts)


def event_blocks(
    events: Sequence[RecordedEvent], *, audit: bool = False, width: int | None = None
) -> Iterator[str]:
    """The column names, then for each event its header line and indented details.

    ``audit`` adds a line with ``created_at`` and ``deleted_at``. An empty payload
    (``{}``) prints no line.
    """
    types = type_width(events)
    yield column_names(types)
    for event in events:
        yield header(event, types)
        if audit:
            recorded = f"created_at {format_timestamp(event.created_at)}"
            if event.deleted_at is not None:
                recorded += f"  deleted_at {format_timestamp(event.deleted_at)}"
            yield from wrapped(recorded, width)
        if event.payload:
            yield from wrapped(compact_json(event.payload), width)


def counted(count: int, noun: str) -> str:
    """``1 plan``, ``2 plans``, ``0 plans``: a count and its noun, in summaries."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


__all__ = [
    "INDENT",
    "actor_label",
    "column_names",
    "compact_json",
    "counted",
    "event_blocks",
    "header",
    "terminal_width",
    "type_width",
    "wrapped",
]
