"""What the projection commands print beyond a plain table: a plan's field changes.

Shared by ``timeline --changes`` and ``demo`` (both in ``projections.cli``).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import click
import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from eventsource import EventStore
from eventsource.cli import emit_json
from eventsource.errors import UnknownPlan
from eventsource.jsonl import format_timestamp

from .engine import ProjectionEngine
from .typing import Projection


def format_value(value: Any) -> str:
    """A state value for a table cell: strings as they are, the rest as JSON."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def print_changes(
    store: EventStore,
    plan_id: UUID,
    projection: Projection[Any],
    output_format: str,
    limit: int,
) -> None:
    """``timeline PLAN --changes``: newest first, each event with its field changes."""
    engine = ProjectionEngine(store)
    history = list(engine.changes(projection, plan_id))
    if not history:
        raise UnknownPlan(plan_id)
    newest_first = list(reversed(history))[:limit]
    if output_format in ("json", "jsonl"):
        records = [
            {
                "id": str(event.id),
                "event_type": event.event_type,
                "occurred_at": format_timestamp(event.occurred_at),
                "actor_user_id": None if event.actor_user_id is None else str(event.actor_user_id),
                "changes": [
                    {"field": c.path, "before": c.before, "after": c.after} for c in changes
                ],
            }
            for event, changes in newest_first
        ]
        if output_format == "json":
            emit_json(records)
        else:
            for record in records:
                click.echo(orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode())
        return
    table = Table(title=f"plan {plan_id}: what each event changed, newest first")
    table.add_column("occurred_at", no_wrap=True)
    table.add_column("event_type")
    table.add_column("actor", no_wrap=True)
    table.add_column("changes", overflow="fold")
    for event, changes in newest_first:
        text = "\n".join(
            escape(f"{c.path}: {format_value(c.before)} → {format_value(c.after)}") for c in changes
        )
        table.add_row(
            format_timestamp(event.occurred_at),
            event.event_type,
            "system" if event.actor_user_id is None else str(event.actor_user_id)[:8],
            text or "[dim](no change to plan state)[/]",
        )
    Console().print(table)
