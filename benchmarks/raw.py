"""The raw drivers doing each workload's work by hand: the floor.

Each raw variant writes or reads the very rows the library does, on the same
table, from the same Python inputs (the ``NewEvent`` objects the library gets).
Nothing here calls the library: writes are plain ``executemany`` (in pipeline
mode on PostgreSQL), ``COPY``, or a single INSERT and COMMIT; reads are the
driver's fetch, orjson for the payloads and :func:`count_fold`, a minimal dict
fold (count the events, keep the last event type). So library/raw is the price
of the library over the least a hand-written program must do on this table,
not the price of the database, and not of a reducer.

Shared by both: ids are UUIDv7 (the stream order needs time-ordered ids, so raw
code would have to make them too), payloads are serialized with orjson, SQLite
timestamps are written in the library's fixed-width UTC text, and a plan's
stream is read in the engine's order ``occurred_at, created_at, tie rank, id``
(the tie rank as a ``CASE`` built from the projection's own table).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any, Final, Protocol
from uuid import UUID

import orjson
import psycopg
from psycopg.types.json import Jsonb, set_json_dumps, set_json_loads

from eventsource.ids import uuid7

from .library import NewEvent, RecordedEvent

__all__ = [
    "FloorFold",
    "PostgresRaw",
    "RawDriver",
    "SqliteRaw",
    "count_fold",
    "initial_count_state",
]

SQLITE_PRAGMAS: Final = (
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 30000",
    "PRAGMA cache_size = -65536",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
)
"""What the library's SQLite connections to a file run first (``eventsource.config``)."""

FloorFold = tuple[dict[str, Any], str | None]
"""A floor fold's state (``count``, ``last``) and the last event's id, as text."""


def initial_count_state() -> dict[str, Any]:
    return {"count": 0, "last": None}


def count_fold(state: Mapping[str, Any], event_type: str) -> dict[str, Any]:
    """The trivial fold every side runs: count the events, keep the last type.

    A new dict per event, as a pure reducer returns one.
    """
    return {"count": state["count"] + 1, "last": event_type}


def _sqlite_timestamp(value: datetime) -> str:
    """The library's SQLite timestamp text: UTC, microseconds, ``Z``, zero-padded year."""
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _state_hash(state: Any) -> str:
    return hashlib.sha256(orjson.dumps(state, option=orjson.OPT_SORT_KEYS)).hexdigest()


ENGINE_TABLES: Final = (
    "eventsource_snapshots",
    "eventsource_plan_changes",
    "eventsource_retractions",
    "eventsource_replay_progress",
)

SNAPSHOT_UPSERT: Final = (
    "INSERT INTO eventsource_snapshots (plan_id, projection, projection_version, state, "
    "state_hash, event_count, position_occurred_at, position_created_at, position_rank, "
    "position_id, stale, updated_at) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, "
    "{p}, {p}) ON CONFLICT (plan_id, projection) DO UPDATE SET "
    "projection_version = excluded.projection_version, state = excluded.state, "
    "state_hash = excluded.state_hash, event_count = excluded.event_count, "
    "position_occurred_at = excluded.position_occurred_at, "
    "position_created_at = excluded.position_created_at, "
    "position_rank = excluded.position_rank, position_id = excluded.position_id, "
    "stale = excluded.stale, updated_at = excluded.updated_at"
)
"""A snapshot row as the engine stores one; ``{p}`` is the driver's placeholder."""

SNAPSHOT_SELECT: Final = (
    "SELECT state, position_occurred_at, position_created_at, position_id "
    "FROM eventsource_snapshots WHERE plan_id = {p} AND projection = {p} AND NOT stale"
)
TAIL_SELECT: Final = (
    "SELECT id, event_type, payload FROM course_designer_plan_events "
    "WHERE course_designer_plan_id = {p} AND deleted_at IS NULL "
    "AND occurred_at > {p} ORDER BY occurred_at, created_at, id"
)
"""The events after a snapshot's position, for a projection without tie ranks: those
after its instant, as the library reads them (``Dialect.load_with_tail`` says why)."""

INSERT: Final = (
    "INSERT INTO course_designer_plan_events (id, course_designer_plan_id, actor_user_id, "
    "event_type, stage, payload, occurred_at, created_at, updated_at) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})"
)
"""The same INSERT for every raw append (SQLAlchemy sends the library's equivalent)."""

INSERT_STORED: Final = (
    "INSERT INTO course_designer_plan_events (id, course_designer_plan_id, actor_user_id, "
    "event_type, stage, payload, occurred_at, created_at, updated_at, deleted_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
COPY: Final = (
    "COPY course_designer_plan_events (id, course_designer_plan_id, actor_user_id, "
    "event_type, stage, payload, occurred_at, created_at, updated_at) FROM STDIN"
)
COPY_STORED: Final = (
    "COPY course_designer_plan_events (id, course_designer_plan_id, actor_user_id, "
    "event_type, stage, payload, occurred_at, created_at, updated_at, deleted_at) FROM STDIN"
)


def _rank_sql(tie_rank: Mapping[str, int]) -> str:
    """The tie rank as SQL, from the projection's own (constant) table."""
    for event_type in tie_rank:
        if not event_type.replace("_", "").isalnum():
            raise ValueError(f"unexpected event type in tie_rank: {event_type!r}")
    if not tie_rank:
        return "0"
    whens = " ".join(f"WHEN '{t}' THEN {int(r)}" for t, r in sorted(tie_rank.items()))
    return f"CASE event_type {whens} ELSE 0 END"


def _read_sql(placeholder: str, tie_rank: Mapping[str, int], *, positions: bool) -> str:
    """A plan's live events in stream order: id, type, payload (and the timestamps)."""
    columns = "id, event_type, payload" + (", occurred_at, created_at" if positions else "")
    # No rank term without ranks: a bare integer in ORDER BY names a column.
    rank = f"{_rank_sql(tie_rank)}, " if tie_rank else ""
    return (
        f"SELECT {columns} FROM course_designer_plan_events "  # noqa: S608 (constants only)
        f"WHERE course_designer_plan_id = {placeholder} AND deleted_at IS NULL "
        f"ORDER BY occurred_at, created_at, {rank}id"
    )


class _Statements:
    """Read statements per tie-rank table, built once."""

    def __init__(self, placeholder: str) -> None:
        self.placeholder = placeholder
        self._cache: dict[tuple[tuple[str, int], ...], tuple[str, str]] = {}

    def reads(self, tie_rank: Mapping[str, int]) -> tuple[str, str]:
        """(without, with) the timestamps."""
        key = tuple(sorted(tie_rank.items()))
        if key not in self._cache:
            p = self.placeholder
            self._cache[key] = (
                _read_sql(p, tie_rank, positions=False),
                _read_sql(p, tie_rank, positions=True),
            )
        return self._cache[key]


class RawDriver(Protocol):
    """What every workload needs from a backend's raw driver."""

    name: str

    def truncate(self, *, events: bool = True) -> None:
        """Empty the engine's tables, and the event table unless told not to (untimed).

        Also settles the database (a checkpoint) so every timed run starts alike.
        """

    def analyze(self) -> None:
        """Refresh planner statistics after a bulk load (untimed)."""

    def count_events(self) -> int: ...

    def create_parents(self, users: Sequence[UUID], plans: Sequence[tuple[UUID, UUID]]) -> None:
        """Insert the host's ``users`` and ``course_designer_plans`` rows."""

    def load_rows(self, rows: Sequence[RecordedEvent]) -> None:
        """Bulk-insert finished rows, ids and timestamps included (untimed setup)."""

    def append_batches(self, batches: Sequence[tuple[UUID, Sequence[NewEvent]]]) -> None:
        """A: per plan, one transaction inserting its events with ``executemany``."""

    def append_singles(self, singles: Sequence[tuple[UUID, NewEvent]]) -> None:
        """B: one transaction per event: a single-row INSERT, then COMMIT."""

    def read_fold(self, plan_id: UUID, tie_rank: Mapping[str, int]) -> FloorFold:
        """Fetch a plan's live events in stream order, decode, :func:`count_fold` them."""

    def load_snapshot_fold(self, plan_id: UUID, projection: str) -> FloorFold | None:
        """The projection's fresh snapshot row, then the events after its position, folded.

        For a projection without tie ranks whose state is a :func:`count_fold`
        state. None when the plan has no fresh snapshot of that projection.
        """

    def fold_and_snapshot(
        self, plan_id: UUID, tie_rank: Mapping[str, int], projection: str
    ) -> FloorFold:
        """In one transaction: read, fold, upsert the plan's snapshot row for ``projection``."""

    def close(self) -> None: ...


class PostgresRaw:
    """psycopg 3 on the scratch schema, orjson for JSON both ways."""

    name = "postgresql"

    def __init__(self, conninfo: str) -> None:
        self.conn = psycopg.connect(conninfo, autocommit=True, options="-c timezone=UTC")
        set_json_dumps(orjson.dumps, self.conn)
        set_json_loads(orjson.loads, self.conn)
        self.insert_sql = INSERT.format(p="%s")
        self.upsert_sql = SNAPSHOT_UPSERT.format(p="%s")
        self.snapshot_sql = SNAPSHOT_SELECT.format(p="%s")
        self.tail_sql = TAIL_SELECT.format(p="%s")
        self.statements = _Statements("%s")

    # -- setup ---------------------------------------------------------------

    def truncate(self, *, events: bool = True) -> None:
        tables = ("course_designer_plan_events", *ENGINE_TABLES) if events else ENGINE_TABLES
        self.conn.execute(f"TRUNCATE {', '.join(tables)}")
        # Not a superuser: runs start a little less alike, nothing worse.
        with suppress(psycopg.errors.InsufficientPrivilege):
            self.conn.execute("CHECKPOINT")

    def analyze(self) -> None:
        self.conn.execute("ANALYZE course_designer_plan_events")

    def count_events(self) -> int:
        row = self.conn.execute("SELECT count(*) FROM course_designer_plan_events").fetchone()
        assert row is not None
        return int(row[0])

    def create_parents(self, users: Sequence[UUID], plans: Sequence[tuple[UUID, UUID]]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany("INSERT INTO users (id) VALUES (%s)", [(u,) for u in users])
            cur.executemany(
                "INSERT INTO course_designer_plans (id, created_by_user_id) VALUES (%s, %s)",
                list(plans),
            )

    def load_rows(self, rows: Sequence[RecordedEvent]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur, cur.copy(COPY_STORED) as copy:
            for e in rows:
                copy.write_row(
                    (
                        e.id,
                        e.plan_id,
                        e.actor_user_id,
                        e.event_type,
                        e.stage,
                        Jsonb(e.payload),
                        e.occurred_at,
                        e.created_at,
                        e.updated_at,
                        e.deleted_at,
                    )
                )

    # -- A and B -------------------------------------------------------------

    def append_batches(self, batches: Sequence[tuple[UUID, Sequence[NewEvent]]]) -> None:
        """``executemany`` in pipeline mode: BEGIN, the inserts and COMMIT in one trip."""
        conn, sql = self.conn, self.insert_sql
        with conn.cursor() as cur:
            for plan_id, events in batches:
                now = datetime.now(UTC)
                params = [
                    (
                        uuid7(),
                        plan_id,
                        e.actor_user_id,
                        e.event_type,
                        e.stage,
                        Jsonb(e.payload),
                        e.occurred_at or now,
                        now,
                        now,
                    )
                    for e in events
                ]
                with conn.pipeline(), conn.transaction():
                    cur.executemany(sql, params)

    def append_copy(self, batches: Sequence[tuple[UUID, Sequence[NewEvent]]]) -> None:
        """``COPY ... FROM STDIN``, one transaction per plan."""
        conn, sql = self.conn, COPY
        with conn.cursor() as cur:
            for plan_id, events in batches:
                now = datetime.now(UTC)
                with conn.transaction(), cur.copy(sql) as copy:
                    for e in events:
                        copy.write_row(
                            (
                                uuid7(),
                                plan_id,
                                e.actor_user_id,
                                e.event_type,
                                e.stage,
                                Jsonb(e.payload),
                                e.occurred_at or now,
                                now,
                                now,
                            )
                        )

    def append_singles(self, singles: Sequence[tuple[UUID, NewEvent]]) -> None:
        conn, sql = self.conn, self.insert_sql
        with conn.cursor() as cur:
            for plan_id, e in singles:
                now = datetime.now(UTC)
                with conn.transaction():
                    cur.execute(
                        sql,
                        (
                            uuid7(),
                            plan_id,
                            e.actor_user_id,
                            e.event_type,
                            e.stage,
                            Jsonb(e.payload),
                            e.occurred_at or now,
                            now,
                            now,
                        ),
                    )

    # -- C and D -------------------------------------------------------------

    def read_fold(self, plan_id: UUID, tie_rank: Mapping[str, int]) -> FloorFold:
        sql = self.statements.reads(tie_rank)[0]
        state, last = initial_count_state(), None
        for event_id, event_type, _payload in self.conn.execute(sql, (plan_id,)).fetchall():
            state, last = count_fold(state, event_type), event_id
        return state, None if last is None else str(last)

    def load_snapshot_fold(self, plan_id: UUID, projection: str) -> FloorFold | None:
        found = self.conn.execute(self.snapshot_sql, (plan_id, projection)).fetchone()
        if found is None:
            return None
        state, occurred, _created, last = found
        tail = self.conn.execute(self.tail_sql, (plan_id, occurred)).fetchall()
        for event_id, event_type, _payload in tail:
            state, last = count_fold(state, event_type), event_id
        return state, None if last is None else str(last)

    def fold_and_snapshot(
        self, plan_id: UUID, tie_rank: Mapping[str, int], projection: str
    ) -> FloorFold:
        sql = self.statements.reads(tie_rank)[1]
        with self.conn.transaction():
            state, last = initial_count_state(), None
            for row in self.conn.execute(sql, (plan_id,)).fetchall():
                state, last = count_fold(state, row[1]), row
            position = (None, None, None, None) if last is None else (last[3], last[4], 0, last[0])
            self.conn.execute(
                self.upsert_sql,
                (
                    plan_id,
                    projection,
                    1,
                    Jsonb(state),
                    _state_hash(state),
                    state["count"],
                    *position,
                    False,
                    datetime.now(UTC),
                ),
            )
        return state, None if last is None else str(last[0])

    def close(self) -> None:
        self.conn.close()


class SqliteRaw:
    """The stdlib ``sqlite3`` on the same file, with the library's pragmas.

    WAL, ``synchronous = NORMAL``, foreign keys on, the same page cache and
    ``BEGIN IMMEDIATE`` for writes, as ``eventsource.config`` sets them, so both
    pay the same durability and read through the same cache.
    Values are stored as the library stores them: UUIDs as text, timestamps as
    fixed-width UTC text, payloads as JSON text.
    """

    name = "sqlite"

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        for pragma in SQLITE_PRAGMAS:
            self.conn.execute(pragma)
        self.insert_sql = INSERT.format(p="?")
        self.upsert_sql = SNAPSHOT_UPSERT.format(p="?")
        self.snapshot_sql = SNAPSHOT_SELECT.format(p="?")
        self.tail_sql = TAIL_SELECT.format(p="?")
        self.statements = _Statements("?")

    def _write(self, work: Callable[[], object]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            work()
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- setup ---------------------------------------------------------------

    def truncate(self, *, events: bool = True) -> None:
        tables = ("course_designer_plan_events", *ENGINE_TABLES) if events else ENGINE_TABLES

        def empty() -> None:
            for table in tables:
                self.conn.execute(f"DELETE FROM {table}")  # noqa: S608 (constant names)

        self._write(empty)
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def analyze(self) -> None:
        self.conn.execute("ANALYZE")

    def count_events(self) -> int:
        row = self.conn.execute("SELECT count(*) FROM course_designer_plan_events").fetchone()
        return int(row[0])

    def create_parents(self, users: Sequence[UUID], plans: Sequence[tuple[UUID, UUID]]) -> None:
        def insert() -> None:
            self.conn.executemany("INSERT INTO users (id) VALUES (?)", [(str(u),) for u in users])
            self.conn.executemany(
                "INSERT INTO course_designer_plans (id, created_by_user_id) VALUES (?, ?)",
                [(str(p), str(u)) for p, u in plans],
            )

        self._write(insert)

    def load_rows(self, rows: Sequence[RecordedEvent]) -> None:
        fmt = _sqlite_timestamp
        params = [
            (
                str(e.id),
                str(e.plan_id),
                None if e.actor_user_id is None else str(e.actor_user_id),
                e.event_type,
                e.stage,
                orjson.dumps(e.payload).decode(),
                fmt(e.occurred_at),
                fmt(e.created_at),
                fmt(e.updated_at),
                None if e.deleted_at is None else fmt(e.deleted_at),
            )
            for e in rows
        ]
        self._write(lambda: self.conn.executemany(INSERT_STORED, params))

    # -- A and B -------------------------------------------------------------

    def _params(self, plan_id: str, e: NewEvent, now: str) -> tuple[Any, ...]:
        return (
            str(uuid7()),
            plan_id,
            None if e.actor_user_id is None else str(e.actor_user_id),
            e.event_type,
            e.stage,
            orjson.dumps(e.payload).decode(),
            now if e.occurred_at is None else _sqlite_timestamp(e.occurred_at),
            now,
            now,
        )

    def append_batches(self, batches: Sequence[tuple[UUID, Sequence[NewEvent]]]) -> None:
        conn, sql, params = self.conn, self.insert_sql, self._params
        for plan_id, events in batches:
            now = _sqlite_timestamp(datetime.now(UTC))
            plan = str(plan_id)
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, [params(plan, e, now) for e in events])
            conn.execute("COMMIT")

    def append_singles(self, singles: Sequence[tuple[UUID, NewEvent]]) -> None:
        conn, sql, params = self.conn, self.insert_sql, self._params
        for plan_id, e in singles:
            now = _sqlite_timestamp(datetime.now(UTC))
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(sql, params(str(plan_id), e, now))
            conn.execute("COMMIT")

    # -- C and D -------------------------------------------------------------

    def read_fold(self, plan_id: UUID, tie_rank: Mapping[str, int]) -> FloorFold:
        sql, loads = self.statements.reads(tie_rank)[0], orjson.loads
        state, last = initial_count_state(), None
        for event_id, event_type, payload in self.conn.execute(sql, (str(plan_id),)):
            loads(payload)
            state, last = count_fold(state, event_type), event_id
        return state, last

    def load_snapshot_fold(self, plan_id: UUID, projection: str) -> FloorFold | None:
        loads = orjson.loads
        found = self.conn.execute(self.snapshot_sql, (str(plan_id), projection)).fetchone()
        if found is None:
            return None
        state, occurred, last = loads(found[0]), found[1], found[3]
        for event_id, event_type, payload in self.conn.execute(
            self.tail_sql, (str(plan_id), occurred)
        ):
            loads(payload)
            state, last = count_fold(state, event_type), event_id
        return state, last

    def fold_and_snapshot(
        self, plan_id: UUID, tie_rank: Mapping[str, int], projection: str
    ) -> FloorFold:
        sql, loads = self.statements.reads(tie_rank)[1], orjson.loads
        result: list[FloorFold] = []

        def work() -> None:
            state, last = initial_count_state(), None
            for row in self.conn.execute(sql, (str(plan_id),)):
                loads(row[2])
                state, last = count_fold(state, row[1]), row
            position = (None, None, None, None) if last is None else (last[3], last[4], 0, last[0])
            self.conn.execute(
                self.upsert_sql,
                (
                    str(plan_id),
                    projection,
                    1,
                    orjson.dumps(state).decode(),
                    _state_hash(state),
                    state["count"],
                    *position,
                    False,
                    _sqlite_timestamp(datetime.now(UTC)),
                ),
            )
            result.append((state, None if last is None else last[0]))

        self._write(work)
        return result[0]

    def close(self) -> None:
        self.conn.close()
