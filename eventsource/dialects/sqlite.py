"""SQLite (the stdlib driver): placeholders, the process clock, text codecs.

UUIDs are stored as canonical lowercase text and timestamps as fixed-width
RFC 3339 UTC text (see ``eventsource.types``), so both sort as text exactly as
PostgreSQL sorts ``uuid`` and ``timestamptz``. Decoding text back is most of
what a SQLite read costs, so a decoder made for one stream remembers the values
that repeat in it (the plan id, actors, the timestamps a batch shares).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID, SafeUUID

import orjson

from ..events import RecordedEvent
from ..types import format_sqlite_timestamp
from .base import EVENTS, Dialect

_new_event: Final = tuple.__new__
_new_object: Final = object.__new__
_set: Final = object.__setattr__
_from_iso: Final = datetime.fromisoformat
_loads: Final = orjson.loads
_UNKNOWN: Final = SafeUUID.unknown


def fast_uuid(text: str) -> UUID:
    """``UUID(text)`` for canonical text the store wrote, in a third of the time."""
    ident = _new_object(UUID)
    _set(ident, "int", int(text.replace("-", ""), 16))
    _set(ident, "is_safe", _UNKNOWN)
    return ident


class SQLite(Dialect):
    """BEGIN IMMEDIATE takes the database's write lock: no plan lock to take (lock_step)."""

    name = "sqlite"

    def p(self, name: str) -> str:
        return f":{name}"

    def uuid(self, value: UUID) -> Any:
        return str(value)

    def timestamp(self, value: datetime) -> Any:
        return format_sqlite_timestamp(value)

    def decode_timestamp(self, value: Any) -> datetime:
        return _from_iso(value)

    def decode_uuid(self, value: Any) -> UUID:
        return fast_uuid(value)

    def decoder(self, plan_id: UUID | None = None) -> Callable[[Any], RecordedEvent]:
        uuids: dict[str, UUID] = {} if plan_id is None else {str(plan_id): plan_id}
        stamps: dict[str, datetime] = {}
        known_uuid, known_stamp = uuids.get, stamps.get

        def uuid(text: str) -> UUID:
            found = uuids[text] = fast_uuid(text)
            return found

        def stamp(text: str) -> datetime:
            if len(stamps) > 4096:
                stamps.clear()
            found = stamps[text] = _from_iso(text)
            return found

        # The cache hits inline (no call): a stream repeats its plan, its actors
        # and the timestamps each append shares.
        def decode(row: Any) -> RecordedEvent:
            ident, plan, kind, payload, stage, actor, occurred, created, updated, deleted = row
            return _new_event(
                RecordedEvent,
                (
                    fast_uuid(ident),
                    known_uuid(plan) or uuid(plan),
                    kind,
                    _loads(payload),
                    stage,
                    None if actor is None else known_uuid(actor) or uuid(actor),
                    known_stamp(occurred) or stamp(occurred),
                    known_stamp(created) or stamp(created),
                    known_stamp(updated) or stamp(updated),
                    None if deleted is None else known_stamp(deleted) or stamp(deleted),
                ),
            )

        return decode

    # -- writing -------------------------------------------------------------

    def lock_table(self, raw: Any) -> datetime:
        return datetime.now(UTC)  # BEGIN IMMEDIATE holds the whole database

    def insert_rows(
        self, plan_id: UUID, rows: Iterable[Any], now: datetime
    ) -> list[tuple[Any, ...]]:
        plan = str(plan_id)
        stamp = format_sqlite_timestamp(now)
        return [
            (
                str(row.id),
                plan,
                None if row.actor_user_id is None else str(row.actor_user_id),
                row.event_type,
                row.stage,
                row.payload_json.decode(),
                stamp if row.occurred_at is None else format_sqlite_timestamp(row.occurred_at),
                stamp,
                stamp,
            )
            for row in rows
        ]

    insert = (
        f"INSERT INTO {EVENTS} (id, course_designer_plan_id, actor_user_id, event_type, stage, "
        "payload, occurred_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    """Positional, for ``executemany``; the store stamps the transaction's time."""

    @property
    def table_note(self) -> str:
        # No comments in SQLite; it keeps each CREATE TABLE as written, comments in it.
        return "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :table"

    @property
    def set_deleted(self) -> str:
        # SQLite's trigger has only a millisecond clock: the store stamps
        # updated_at with the microsecond transaction time the trigger would use.
        return (
            f"UPDATE {EVENTS} SET deleted_at = :deleted_at, updated_at = :now "
            "WHERE course_designer_plan_id = :plan AND id = :id"
        )


__all__ = ["SQLite", "fast_uuid"]
