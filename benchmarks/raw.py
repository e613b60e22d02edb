"""The raw drivers doing each workload's work by hand: the yardstick.

Each raw variant writes or reads the very rows the library does, on the same
table, from the same Python inputs (the ``NewEvent`` objects the library gets),
and produces the same outputs (``RecordedEvent`` objects, the same folded state
and hash). What it leaves out is exactly what the library adds: validation,
SQLAlchemy, the plan lock, the change feed, snapshot invalidation, paging. So
library/raw is the price of the library, not of the database.

Shared by both: ids are UUIDv7 (the stream order needs time-ordered ids, so raw
code would have to make them too), payloads are serialized with orjson, and a
plan's stream is read in the engine's order ``occurred_at, created_at, tie
rank, id`` (the tie rank as the same ``CASE`` the library sends).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol
from uuid import UUID

import orjson
import psycopg
from psycopg.types.json import Jsonb, set_json_dumps, set_json_loads
from uuid6 import uuid7

from eventsource.config import SQLITE_BUSY_TIMEOUT_MS
from eventsource.events import NewEvent, RecordedEvent
from eventsource.types import format_sqlite_timestamp
from projections.fold import FoldResult, canonical_json, fold_from_scratch, state_hash
from projections.typing import JSONValue, Projection

__all__ = ["FoldedPlan", "PostgresRaw", "RawDriver", "SqliteRaw", "fold_plan"]

READ_COLUMNS: Final = (
    "id, course_designer_plan_id, event_type, payload, stage, actor_user_id, "
    "occurred_at, created_at, updated_at, deleted_at"
)
"""In ``RecordedEvent`` field order, so a row builds one positionally."""

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
"""What ``projections.snapshots.save`` does; ``{p}`` is the driver's placeholder."""

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


def _read_sql(placeholder: str, tie_rank: Mapping[str, int]) -> str:
    return (
        f"SELECT {READ_COLUMNS} FROM course_designer_plan_events "  # noqa: S608 (constants only)
        f"WHERE course_designer_plan_id = {placeholder} AND deleted_at IS NULL "
        f"ORDER BY occurred_at, created_at, {_rank_sql(tie_rank)}, id"
    )


@dataclass(frozen=True)
class FoldedPlan:
    """A plan folded from scratch: what the engine's ``LoadedState`` carries."""

    result: FoldResult[Any]
    json: JSONValue
    hash: str

    @property
    def event_count(self) -> int:
        return self.result.folded + sum(self.result.skipped.values())


def fold_plan(
    projection: Projection[Any], plan_id: UUID, events: Sequence[RecordedEvent]
) -> FoldedPlan:
    """Fold with the library's pure fold, then encode and hash as the engine does."""
    result = fold_from_scratch(projection, plan_id, events)
    data = projection.to_json(result.state)
    return FoldedPlan(result, data, state_hash(canonical_json(data)))


def _position(projection: Projection[Any], folded: FoldedPlan) -> tuple[Any, ...]:
    last = folded.result.last
    if last is None:
        return (None, None, None, None)
    return (
        last.occurred_at,
        last.created_at,
        projection.tie_rank.get(last.event_type, 0),
        last.id,
    )


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

    def read_plan(self, plan_id: UUID, projection: Projection[Any]) -> list[RecordedEvent]:
        """A plan's live events in stream order, payloads decoded."""

    def fold_and_snapshot(self, projection: Projection[Any], plan_id: UUID) -> str:
        """In one transaction: read, fold, upsert the snapshot row. Returns the hash."""

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
        self._read_sql: dict[int, str] = {}

    def _reader(self, projection: Projection[Any]) -> str:
        key = id(projection.tie_rank)
        if key not in self._read_sql:
            self._read_sql[key] = _read_sql("%s", projection.tie_rank)
        return self._read_sql[key]

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

    def read_plan(self, plan_id: UUID, projection: Projection[Any]) -> list[RecordedEvent]:
        rows = self.conn.execute(self._reader(projection), (plan_id,)).fetchall()
        return [RecordedEvent(*row) for row in rows]

    def fold_and_snapshot(self, projection: Projection[Any], plan_id: UUID) -> str:
        with self.conn.transaction():
            folded = fold_plan(projection, plan_id, self.read_plan(plan_id, projection))
            self.conn.execute(
                self.upsert_sql,
                (
                    plan_id,
                    projection.name,
                    projection.version,
                    Jsonb(folded.json),
                    folded.hash,
                    folded.event_count,
                    *_position(projection, folded),
                    False,
                    datetime.now(UTC),
                ),
            )
        return folded.hash

    def close(self) -> None:
        self.conn.close()


class SqliteRaw:
    """The stdlib ``sqlite3`` on the same file, with the library's pragmas.

    WAL, ``synchronous = NORMAL``, foreign keys on and ``BEGIN IMMEDIATE`` for
    writes, as ``eventsource.config`` sets them, so both pay the same durability.
    Values are stored as the library stores them: UUIDs as text, timestamps as
    fixed-width UTC text, payloads as JSON text.
    """

    name = "sqlite"

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        for pragma in (
            "PRAGMA foreign_keys = ON",
            f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}",
            "PRAGMA journal_mode = WAL",
            "PRAGMA synchronous = NORMAL",
        ):
            self.conn.execute(pragma)
        self.insert_sql = INSERT.format(p="?")
        self.upsert_sql = SNAPSHOT_UPSERT.format(p="?")
        self._read_sql: dict[int, str] = {}

    def _reader(self, projection: Projection[Any]) -> str:
        key = id(projection.tie_rank)
        if key not in self._read_sql:
            self._read_sql[key] = _read_sql("?", projection.tie_rank)
        return self._read_sql[key]

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
        fmt = format_sqlite_timestamp
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
            now if e.occurred_at is None else format_sqlite_timestamp(e.occurred_at),
            now,
            now,
        )

    def append_batches(self, batches: Sequence[tuple[UUID, Sequence[NewEvent]]]) -> None:
        conn, sql, params = self.conn, self.insert_sql, self._params
        for plan_id, events in batches:
            now = format_sqlite_timestamp(datetime.now(UTC))
            plan = str(plan_id)
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, [params(plan, e, now) for e in events])
            conn.execute("COMMIT")

    def append_singles(self, singles: Sequence[tuple[UUID, NewEvent]]) -> None:
        conn, sql, params = self.conn, self.insert_sql, self._params
        for plan_id, e in singles:
            now = format_sqlite_timestamp(datetime.now(UTC))
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(sql, params(str(plan_id), e, now))
            conn.execute("COMMIT")

    # -- C and D -------------------------------------------------------------

    def read_plan(self, plan_id: UUID, projection: Projection[Any]) -> list[RecordedEvent]:
        parse, loads = datetime.fromisoformat, orjson.loads
        return [
            RecordedEvent(
                UUID(r[0]),
                UUID(r[1]),
                r[2],
                loads(r[3]),
                r[4],
                None if r[5] is None else UUID(r[5]),
                parse(r[6]),
                parse(r[7]),
                parse(r[8]),
                None if r[9] is None else parse(r[9]),
            )
            for r in self.conn.execute(self._reader(projection), (str(plan_id),))
        ]

    def fold_and_snapshot(self, projection: Projection[Any], plan_id: UUID) -> str:
        fmt = format_sqlite_timestamp
        result: list[str] = []

        def work() -> None:
            folded = fold_plan(projection, plan_id, self.read_plan(plan_id, projection))
            occurred, created, rank, last_id = _position(projection, folded)
            self.conn.execute(
                self.upsert_sql,
                (
                    str(plan_id),
                    projection.name,
                    projection.version,
                    orjson.dumps(folded.json).decode(),
                    folded.hash,
                    folded.event_count,
                    None if occurred is None else fmt(occurred),
                    None if created is None else fmt(created),
                    rank,
                    None if last_id is None else str(last_id),
                    False,
                    fmt(datetime.now(UTC)),
                ),
            )
            result.append(folded.hash)

        self._write(work)
        return result[0]

    def close(self) -> None:
        self.conn.close()
