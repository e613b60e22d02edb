"""Event values: what callers append and what the store reads back."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

import orjson

from .errors import InvalidInput

STAGES: Final = ("analysis", "design", "development", "implementation", "evaluation")
"""The ``course_designer_stage`` enum, in its declared order."""

EVENT_TYPE_MAX: Final = 255
DEFAULT_MAX_PAYLOAD_BYTES: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append.

    ``id`` defaults to a time-ordered UUIDv7 chosen by the store (so a batch
    keeps its order); ``occurred_at`` defaults to the append's transaction time
    and may be set to backfill the past. Timestamps must be timezone-aware.
    """

    event_type: str
    payload: Mapping[str, Any]
    stage: str | None = None
    actor_user_id: UUID | None = None
    occurred_at: datetime | None = None
    id: UUID | None = None


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One row of ``course_designer_plan_events``, as stored."""

    id: UUID
    plan_id: UUID
    event_type: str
    payload: Mapping[str, Any]
    stage: str | None
    actor_user_id: UUID | None
    occurred_at: datetime
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None

    @property
    def position(self) -> tuple[datetime, datetime, UUID]:
        """The event's place in its plan's stream (before any tie rank)."""
        return (self.occurred_at, self.created_at, self.id)


def check_timestamp(value: datetime, field: str) -> datetime:
    """Reject naive datetimes; return the instant in UTC."""
    if not isinstance(value, datetime):
        raise InvalidInput(f"{field} must be a datetime, got {type(value).__name__}", field=field)
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(
            f"{field} is a naive datetime; give it a timezone (for example UTC)", field=field
        )
    return value.astimezone(UTC)


def _check_json(value: Any, path: str) -> None:
    # PostgreSQL's jsonb refuses \u0000 and has no NaN/Infinity; SQLite must refuse
    # the same so both backends store exactly the same set of payloads.
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInput(
                f"{path} contains a NUL character (\\u0000), which jsonb cannot store; remove it",
                field="payload",
            )
    elif isinstance(value, bool) or value is None or isinstance(value, int):
        return
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(
                f"{path} is {value!r}; JSON has no NaN or Infinity, use null or a string",
                field="payload",
            )
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(f"{path} has a non-string key {key!r}", field="payload")
            if "\x00" in key:
                raise InvalidInput(
                    f"{path} has a key containing a NUL character (\\u0000); remove it",
                    field="payload",
                )
            _check_json(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]")
    else:
        raise InvalidInput(
            f"{path} holds a {type(value).__name__}, which is not JSON; "
            "use objects, arrays, strings, numbers, booleans or null",
            field="payload",
        )


def validate_payload(payload: Any, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> bytes:
    """Check a payload and return its JSON encoding.

    Raises:
        InvalidInput: not an object, not JSON, NaN/Infinity, NUL, or too large.
    """
    if not isinstance(payload, Mapping):
        raise InvalidInput(
            f"payload must be a JSON object, got {type(payload).__name__}", field="payload"
        )
    _check_json(payload, "payload")
    encoded = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    if len(encoded) > max_bytes:
        raise InvalidInput(
            f"payload is {len(encoded)} bytes, over the limit of {max_bytes}; "
            "store large data elsewhere and reference it",
            field="payload",
        )
    return encoded


def validate_event_type(event_type: Any) -> str:
    if not isinstance(event_type, str):
        raise InvalidInput("event_type must be a string", field="event_type")
    if not event_type.strip():
        raise InvalidInput("event_type is blank; give the event a type name", field="event_type")
    if len(event_type) > EVENT_TYPE_MAX:
        raise InvalidInput(
            f"event_type is {len(event_type)} characters, over the column's {EVENT_TYPE_MAX}",
            field="event_type",
        )
    if "\x00" in event_type:
        raise InvalidInput("event_type contains a NUL character; remove it", field="event_type")
    return event_type


def validate_stage(stage: Any) -> str | None:
    if stage is None:
        return None
    if stage not in STAGES:
        raise InvalidInput(
            f"stage {stage!r} is not one of {', '.join(STAGES)} (or null)", field="stage"
        )
    return str(stage)
