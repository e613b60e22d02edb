"""What the projection commands print beyond plain events: a plan's field changes
and its stages.

Shared by ``timeline --changes``, ``state`` and ``demo`` (all in ``projections.cli``).
Like ``eventsource.render``, the layout is lines, not a table: at 80 columns and in
pipes every event type, field and stage stays whole, each change is a line of its
own, and a schedule is one line a stage.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from uuid import UUID

import click
import orjson

from eventsource import EventStore, StreamPosition
from eventsource.cli import emit_json
from eventsource.errors import UnknownPlan
from eventsource.jsonl import format_timestamp
from eventsource.render import (
    INDENT,
    column_names,
    compact_json,
    header,
    terminal_width,
    type_width,
    wrapped,
)
from eventsource.timeline_order import decode_cursor, encode_cursor

from .engine import FieldChange, ProjectionEngine
from .typing import Projection

STAGE_NAME_WIDTH = 15
STATUS_WIDTH = 12


def format_value(value: Any) -> str:
    """A state value for a cell or a line: strings as they are, the rest as JSON."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _is_rows(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def stage_line(stage: Mapping[str, Any]) -> str:
    """One stage of a plan state on one line: name, status, planned and actual times."""
    text = (
        f"{format_value(stage.get('stage')):<{STAGE_NAME_WIDTH}} "
        f"{format_value(stage.get('status')):<{STATUS_WIDTH}} "
        f"planned {format_value(stage.get('planned_starts_on'))} → "
        f"{format_value(stage.get('planned_ends_on'))}"
    )
    started, completed = stage.get("actual_started_at"), stage.get("actual_completed_at")
    if started is not None:
        text += f"  started {format_value(started)}"
    if completed is not None:
        text += f"  completed {format_value(completed)}"
    return text


def row_line(row: Mapping[str, Any]) -> str:
    """An item of a list in a state: a stage as :func:`stage_line`, else one-line JSON."""
    if "stage" in row and "planned_starts_on" in row:
        return stage_line(row)
    return compact_json(row)


def _count(value: list[Any], name: str) -> str:
    return "none" if not value else f"{len(value)} {name}"


def change_lines(change: FieldChange, width: int | None, indent: str = INDENT) -> Iterator[str]:
    """A field change as lines: ``status: draft → scheduling``; lists one item a line."""
    before, after = change.before, change.after
    if (_is_rows(before) and before) or (_is_rows(after) and after):
        name = change.path.rsplit(".", 1)[-1].split("[", 1)[0] or "items"
        b = before if isinstance(before, list) else []
        a = after if isinstance(after, list) else []
        yield from wrapped(f"{change.path}: {_count(b, name)} → {_count(a, name)}", width, indent)
        for label, rows in (("before", b), ("after", a)):
            if not rows:
                continue
            if b and a:
                yield f"{indent}  {label}:"
            for row in rows:
                yield from wrapped(row_line(row), width, indent + "    ")
        return
    text = f"{change.path}: {format_value(before)} → {format_value(after)}"
    yield from wrapped(text, width, indent)


FIELD_ORDER = (
    "status",
    "planned_starts_on",
    "planned_ends_on",
    "actual_started_at",
    "actual_completed_at",
)
"""Fields of a stage in reading order (the diff lists them alphabetically)."""


def _item(path: str) -> tuple[str, str] | None:
    """``stages[design].status`` -> (``stages[design]``, ``status``); else None."""
    head, bracket, rest = path.partition("]")
    if not bracket or not rest.startswith(".") or "[" not in head:
        return None
    return head + bracket, rest[1:]


def _field_rank(name: str) -> tuple[int, str]:
    return (FIELD_ORDER.index(name) if name in FIELD_ORDER else len(FIELD_ORDER), name)


def grouped_change_lines(
    changes: list[FieldChange], width: int | None, indent: str = INDENT
) -> Iterator[str]:
    """:func:`change_lines` for each change, but an item's changed fields share a line.

    ``stages[design]: planned_starts_on 2025-10-16 → 2025-10-01, planned_ends_on
    2026-01-31 → 2025-11-30``: a schedule update is one line a stage.
    """
    index = 0
    while index < len(changes):
        item = _item(changes[index].path)
        if item is None:
            yield from change_lines(changes[index], width, indent)
            index += 1
            continue
        fields: list[tuple[str, FieldChange]] = []
        while index < len(changes):
            found = _item(changes[index].path)
            if found is None or found[0] != item[0]:
                break
            fields.append((found[1], changes[index]))
            index += 1
        by_name = dict(fields)
        starts, ends = by_name.get("planned_starts_on"), by_name.get("planned_ends_on")
        parts = []
        for name, c in sorted(fields, key=lambda pair: _field_rank(pair[0])):
            if starts is not None and ends is not None and name == "planned_starts_on":
                parts.append(
                    f"planned {format_value(starts.before)}..{format_value(ends.before)} → "
                    f"{format_value(starts.after)}..{format_value(ends.after)}"
                )
            elif not (starts is not None and ends is not None and name == "planned_ends_on"):
                parts.append(f"{name} {format_value(c.before)} → {format_value(c.after)}")
        yield from wrapped(f"{item[0]}: " + ", ".join(parts), width, indent)


def print_changes(
    store: EventStore,
    plan_id: UUID,
    projection: Projection[Any],
    output_format: str,
    limit: int,
    before: str | None = None,
) -> None:
    """``timeline PLAN --changes``: newest first, each event with its field changes.

    The order is the stream's (tie rank included) reversed, as in ``timeline``, and
    ``before`` takes the cursor ``timeline`` prints.
    """
    cursor_in = None if before is None else decode_cursor(before)
    engine = ProjectionEngine(store, snapshot_every=None)
    history = list(engine.changes(projection, plan_id))
    if not history:
        raise UnknownPlan(plan_id)
    ranks = projection.tie_rank

    def key(event: Any) -> StreamPosition:
        return StreamPosition.of(event, ranks)

    newest_first = [
        (event, changes)
        for event, changes in reversed(history)
        if cursor_in is None or key(event) < cursor_in
    ]
    page = newest_first[:limit]
    cursor = encode_cursor(key(page[-1][0])) if len(newest_first) > limit else None
    if output_format in ("json", "jsonl"):
        records = [
            {
                "id": str(event.id),
                "event_type": event.event_type,
                "stage": event.stage,
                "occurred_at": format_timestamp(event.occurred_at),
                "actor_user_id": None if event.actor_user_id is None else str(event.actor_user_id),
                "changes": [
                    {"field": c.path, "before": c.before, "after": c.after} for c in changes
                ],
            }
            for event, changes in page
        ]
        if output_format == "json":
            emit_json(records)
        else:
            for record in records:
                click.echo(orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode())
        return
    width = terminal_width()
    types = type_width(event for event, _ in page)
    click.echo(f"plan {plan_id}: what each event changed, newest first")
    click.echo(column_names(types))
    for event, changes in page:
        click.echo(header(event, types))
        if not changes:
            click.echo(f"{INDENT}(no change to the plan state)")
        for line in grouped_change_lines(list(changes), width):
            click.echo(line)
    if cursor:
        click.echo(f"more: --before '{cursor}'")


__all__ = [
    "change_lines",
    "format_value",
    "grouped_change_lines",
    "print_changes",
    "row_line",
    "stage_line",
]
