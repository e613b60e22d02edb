"""PostgreSQL (psycopg 3): placeholders, the plan lock, the server's clock, codecs.

psycopg already returns ``uuid.UUID``, aware UTC datetimes (sessions run in UTC)
and, through the engine's orjson loader, decoded ``jsonb``: a fetched event row
is a :class:`RecordedEvent` as it stands.

The plan lock is the host's lock. The upstream service serializes every write to
a plan by selecting the plan's ``course_designer_plans`` row ``FOR UPDATE`` first,
then updating its own rows and inserting the event, in one transaction. The
library takes exactly that row lock, in the same transaction as its own work, so
library appends, soft deletes and restores queue behind the service's writes and
the service's behind them: an expected-version check counts the events after
every earlier writer committed (each statement of a READ COMMITTED transaction
sees what committed before it; the lock's wait ends at the other's commit). A
private lock (an advisory lock, say) would serialize only the library with
itself and let a service write land between a version check and an insert.

Lock order, so nothing deadlocks: a writer takes the plan row, then (library
writes) the change-feed row, then snapshot rows. Workers never take the plan row:
they hold a change-feed row while they fold, and a writer holding the plan row
may be waiting for that very row (``projections.worker``). An event insert's
foreign key takes ``FOR KEY SHARE`` on the plan row, which a transaction that
holds ``FOR UPDATE`` already covers. Locking a row needs ``UPDATE`` privilege on
one of its columns; a host grants the narrowest (README, "Beside the host").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any, Final
from uuid import UUID

import orjson

from ..events import RecordedEvent
from ..program import Many, Pipeline, Query
from .base import EVENT_COLUMNS, EVENTS, Dialect

_new_event: Final = tuple.__new__
_loads: Final = orjson.loads

SHORT_LOAD: Final = 500
"""Rows a load reads in one prepared execute before it streams instead (the
default snapshot policy keeps a tail shorter)."""


@cache
def _short(sql: str) -> str:
    """A load statement limited to one row past :data:`SHORT_LOAD` (built once)."""
    return f"{sql} LIMIT {SHORT_LOAD + 1}"


def _as_event(row: Any) -> RecordedEvent:
    # psycopg decoded the rest; the payload comes as text (EVENT_SELECT).
    ident, plan, kind, payload, stage, actor, occurred, created, updated, deleted = row
    return _new_event(
        RecordedEvent,
        (ident, plan, kind, _loads(payload), stage, actor, occurred, created, updated, deleted),
    )


class PostgreSQL(Dialect):
    name = "postgresql"
    positional = "%s"
    supports_skip_locked = True

    def p(self, name: str) -> str:
        return f"%({name})s"

    def literal(self, text: str) -> str:
        # psycopg reads % in statement text as a placeholder: double it.
        return super().literal(text).replace("%", "%%")

    min_timestamp = "'-infinity'::timestamptz"

    def clock(self, name: str) -> str:
        # now(): the transaction's start, the clock of the table's own defaults.
        return "now()"

    def json_param(self, name: str) -> str:
        return f"%({name})s::jsonb"

    def decoder(self, plan_id: UUID | None = None) -> Callable[[Any], RecordedEvent]:
        return _as_event

    def decode_timestamp(self, value: Any) -> datetime:
        stamp: datetime = value
        return stamp

    def decode_uuid(self, value: Any) -> UUID:
        ident: UUID = value
        return ident

    # -- writing -------------------------------------------------------------

    pipelines = True

    def lock_step(self, plan_id: UUID) -> Query:
        return Query(self.lock_sql, {"plan": plan_id}, "one")

    def lock_time(self, row: Any) -> datetime:
        stamp: datetime = row[0]
        return stamp

    def insert_rows(
        self, plan_id: UUID, rows: Iterable[Any], now: datetime
    ) -> list[tuple[Any, ...]]:
        # occurred_at left out is the server's now(), created_at/updated_at its defaults.
        return [
            (
                row.id,
                plan_id,
                row.actor_user_id,
                row.event_type,
                row.stage,
                row.payload_json.decode(),
                row.occurred_at,
            )
            for row in rows
        ]

    def fetch(self, raw: Any, sql: str, params: Mapping[str, Any], size: int) -> Iterable[Any]:
        # One statement streamed in chunks (libpq's chunked rows mode): no cursor
        # to declare, no re-query per page, memory bounded by ``size``.
        # Binary rows: every event SELECT loads its stage as text (EVENT_SELECT).
        with raw.cursor() as cursor:
            yield from cursor.stream(sql, params, size=size, binary=True)

    def fetch_prepared(
        self, raw: Any, sql: str, params: Mapping[str, Any], size: int
    ) -> Iterable[Any]:
        # Two shapes of load, two ways to read them. A short one (a snapshot's
        # tail) is fastest as a plain execute, which psycopg prepares once it has
        # run a few times (a streamed statement never is): 140 us against 290 us
        # streamed for a snapshot and one event. A long one (a whole stream) is
        # fastest streamed, rows decoded while the server still sends them (2.6
        # against 3.8 us per event at 10,000 events, and the gap grows with the
        # plan). So the statement first runs prepared with a LIMIT; only when
        # the result does not fit is it streamed whole, and just that result
        # used: one statement, one snapshot of the database, either way.
        # Binary rows, as fetch.
        with raw.cursor() as cursor:
            cursor.execute(_short(sql), params, binary=True)
            rows = cursor.fetchall()
        if len(rows) <= SHORT_LOAD:
            yield from rows
            return
        yield from self.fetch(raw, sql, params, size)

    def lock_table(self, raw: Any) -> datetime:
        # LOCK ... IN SHARE ROW EXCLUSIVE MODE needs table-level UPDATE, DELETE or
        # TRUNCATE, which a role that may only import must not have (it could then
        # rewrite or empty the log): eventsource_importer locks through the
        # SECURITY DEFINER function of migration 0004 instead. A session that may
        # lock the table itself (its owner, say, beside a host) does.
        (direct,) = raw.execute(
            "SELECT has_table_privilege(%s, 'UPDATE, DELETE, TRUNCATE')", (EVENTS,)
        ).fetchone()
        if direct:
            raw.execute(f"LOCK TABLE {EVENTS} IN SHARE ROW EXCLUSIVE MODE")
            stamp: datetime = raw.execute("SELECT now()").fetchone()[0]
        else:
            stamp = raw.execute("SELECT eventsource_lock_events()").fetchone()[0]
        return stamp

    def bulk_insert(self, raw: Any, events: list[RecordedEvent]) -> None:
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY {EVENTS} ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy,
        ):
            for event in events:
                copy.write_row(self.encode_event(event))

    def append_pipeline(
        self,
        plan_id: UUID,
        rows: list[Any],
        accepted: tuple[int, int],
        bookkeeping: list[tuple[str, dict[str, Any]]],
    ) -> Pipeline:
        # BEGIN to COMMIT in one round trip; a failed version check divides by
        # zero (see check_version) and aborts the rest before anything is inserted.
        return Pipeline(
            [
                Query("BEGIN"),
                self.lock_step(plan_id),
                Query(
                    self.check_version,
                    {"plan": plan_id, "low": accepted[0], "high": accepted[1]},
                    "one",
                ),
                Many(self.insert, self.insert_rows(plan_id, rows, datetime.now(UTC))),
                *(Query(sql, values) for sql, values in bookkeeping),
                Query("COMMIT"),
            ]
        )

    lock_sql: Final = "SELECT now() FROM course_designer_plans WHERE id = %(plan)s FOR UPDATE"
    """The host's lock: the plan row, ``FOR UPDATE``; ``now()`` is the transaction's start.

    No row comes back when the plan has no row (nothing is locked then).
    """

    lock_all_sql = (
        "SELECT now() FROM course_designer_plans WHERE id = ANY(%(plans)s) ORDER BY id FOR UPDATE"
    )

    insert = (
        f"INSERT INTO {EVENTS} (id, course_designer_plan_id, actor_user_id, event_type, stage, "
        "payload, occurred_at) "
        "VALUES (%s, %s, %s, %s, %s, %s::jsonb, COALESCE(%s::timestamptz, now()))"
    )
    """Positional, for ``executemany``: ``created_at``/``updated_at`` default to now().

    Exactly the columns ``eventsource_writer`` may insert (``eventsource.roles``):
    the time an event is recorded is always the database's, never the caller's.
    """

    check_version: Final = (
        "SELECT CASE WHEN n BETWEEN %(low)s AND %(high)s THEN n ELSE 1 / (n - n) END "
        f"FROM (SELECT count(*) AS n FROM {EVENTS} WHERE course_designer_plan_id = %(plan)s) v"
    )
    """The expected-version check inside the append's pipeline.

    A mismatch divides by zero (SQLSTATE 22012), which aborts the rest of the
    pipelined transaction before anything is inserted; the store then rolls back
    and reads the actual version for its :class:`ConcurrencyConflict`. No other
    statement of an append can divide by zero.
    """

    # -- history: through the functions of migration 0004 -------------------
    #
    # The store's roles (eventsource.roles) may not update deleted_at, write the
    # retraction history or update snapshots: a writer could then retract at a
    # forged time, erase history or un-stale a snapshot. These functions run as
    # their owner, stamp now() (the transaction's start, the clock of the
    # table's defaults) and do only what their name says.

    @property
    def mark_stale(self) -> str:
        # ``earliest`` is null when every event took the transaction's time; the
        # function stales every snapshot of the plan at or after
        # LEAST(COALESCE(earliest, now()), now()), and never makes one fresh.
        return "SELECT eventsource_mark_stale(%(plan)s, %(earliest)s::timestamptz)"

    def retract(self, deleted: bool) -> str:
        # deleted_at and the retraction row at now(); the set_timestamp trigger
        # stamps updated_at.
        function = "eventsource_soft_delete" if deleted else "eventsource_restore"
        return f"SELECT {function}(%(plan)s, %(id)s)"

    @property
    def record_change(self) -> str:
        # changed_at and change_seq left to the table's defaults (now(), 1): the
        # writer's column privileges do not include changed_at.
        return (
            "INSERT INTO eventsource_plan_changes (plan_id) VALUES (%(plan)s) "
            "ON CONFLICT (plan_id) "
            "DO UPDATE SET change_seq = eventsource_plan_changes.change_seq + 1"
        )

    @property
    def table_note(self) -> str:
        # The table the session's statements resolve the name to (search_path).
        return "SELECT obj_description(to_regclass(%(table)s), 'pg_class')"

    @property
    def claim(self) -> str:
        return super().claim + " FOR UPDATE SKIP LOCKED"

    table_names = (
        "SELECT table_name::text FROM information_schema.tables "
        "WHERE table_schema = ANY (current_schemas(false))"
    )

    channel: Final = "eventsource_plan_changes"
    """The NOTIFY channel a trigger on the change table signals."""


__all__ = ["PostgreSQL"]
