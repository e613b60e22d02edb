"""The JSON Lines exchange format: one event a line, the table's own column names.

Lines are ``json.dumps(row, sort_keys=True, ensure_ascii=False)``; timestamps are
RFC 3339 UTC with microseconds and a ``Z``; ids are canonical UUID strings. This
is the format of the sample fixtures, of ``eventsource export`` and of
``eventsource generate``, so export -> import -> export is byte-for-byte stable.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

from .errors import InvalidInput
from .events import RecordedEvent, check_timestamp

COLUMNS: Final = (
    "actor_user_id",
    "course_designer_plan_id",
    "created_at",
    "deleted_at",
    "event_type",
    "id",
    "occurred_at",
    "payload",
    "stage",
    "updated_at",
)


def format_timestamp(value: datetime) -> str:
    """RFC 3339, UTC, microseconds, ``Z``: ``2025-05-14T03:27:36.133474Z``."""
    # Not strftime: its %Y does not zero-pad years before 1000 on glibc.
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_timestamp(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be an RFC 3339 string, got {value!r}", field=field)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{field} is not an RFC 3339 timestamp: {value!r}", field=field
        ) from None
    return check_timestamp(parsed, field)


def parse_uuid(value: Any, field: str) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise InvalidInput(f"{field} is not a UUID: {value!r}", field=field) from None


def event_to_row(event: RecordedEvent) -> dict[str, Any]:
    return {
        "actor_user_id": None if event.actor_user_id is None else str(event.actor_user_id),
        "course_designer_plan_id": str(event.plan_id),
        "created_at": format_timestamp(event.created_at),
        "deleted_at": None if event.deleted_at is None else format_timestamp(event.deleted_at),
        "event_type": event.event_type,
        "id": str(event.id),
        "occurred_at": format_timestamp(event.occurred_at),
        "payload": event.payload,
        "stage": event.stage,
        "updated_at": format_timestamp(event.updated_at),
    }


def dumps_row(row: dict[str, Any]) -> str:
    """One line of the format (without the newline)."""
    return json.dumps(row, sort_keys=True, ensure_ascii=False)


def row_to_event(row: Any) -> RecordedEvent:
    """Parse one decoded line into a :class:`RecordedEvent`.

    Raises:
        InvalidInput: a missing or malformed column (the message names it).
    """
    if not isinstance(row, dict):
        raise InvalidInput("a line must be a JSON object with the table's columns")
    missing = [c for c in ("course_designer_plan_id", "event_type", "id") if c not in row]
    if missing:
        raise InvalidInput(f"missing column(s): {', '.join(missing)}", field=missing[0])
    unknown = sorted(set(row) - set(COLUMNS))
    if unknown:
        raise InvalidInput(f"unknown column(s): {', '.join(unknown)}", field=unknown[0])
    created_at = parse_timestamp(row.get("created_at"), "created_at")
    occurred_raw = row.get("occurred_at")
    updated_raw = row.get("updated_at")
    deleted_raw = row.get("deleted_at")
    actor_raw = row.get("actor_user_id")
    return RecordedEvent(
        id=parse_uuid(row["id"], "id"),
        plan_id=parse_uuid(row["course_designer_plan_id"], "course_designer_plan_id"),
        event_type=row["event_type"],
        payload=row.get("payload", {}),
        stage=row.get("stage"),
        actor_user_id=None if actor_raw is None else parse_uuid(actor_raw, "actor_user_id"),
        occurred_at=created_at
        if occurred_raw is None
        else parse_timestamp(occurred_raw, "occurred_at"),
        created_at=created_at,
        updated_at=created_at
        if updated_raw is None
        else parse_timestamp(updated_raw, "updated_at"),
        deleted_at=None if deleted_raw is None else parse_timestamp(deleted_raw, "deleted_at"),
    )
