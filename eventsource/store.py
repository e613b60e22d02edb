"""The event store: append, read, timeline, audit, soft delete and restore.

Ordering. A plan's stream order is ``occurred_at``, then ``created_at``, then an
optional tie rank by event type, then ``id``, over rows whose ``deleted_at`` is
null. Upstream services write both timestamps as ``now()`` (the transaction's
start), so events of one transaction tie on both and random v4 ids give them no
meaning: the tie rank lets a projection say which type comes first, and ``id``
only makes the order total and deterministic. Events appended here get UUIDv7
ids, monotonic within the process, so a batch keeps the order it was given in.
Every read of a stream pages with a keyset cursor on that whole tuple inside one
transaction (a snapshot on PostgreSQL's REPEATABLE READ and on SQLite's WAL), so
a fold never holds a stream in memory and never sees a half-applied write.

Writing. Every write runs in one transaction that first serializes the plan's
writers (``pg_advisory_xact_lock`` on a 64-bit key of the plan id on
PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite), so an expected-version check cannot
be raced. In the same transaction the write marks stale every snapshot of the
plan that it lands at or before, records the plan in the change feed
(``eventsource.feed``) and runs the registered write hooks (inline projections).
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol
from uuid import UUID

import orjson
import psycopg
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Integer,
    bindparam,
    case,
    exists,
    false,
    func,
    inspect,
    literal,
    not_,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import Executable
from uuid6 import uuid7

from . import feed
from .backend import SQLITE_CONSTRAINT_FOREIGNKEY, translated, with_retries
from .config import make_engine
from .errors import (
    ConcurrencyConflict,
    IdempotencyConflict,
    InvalidInput,
    SchemaMissing,
    UnknownEvent,
    UnknownReference,
)
from .events import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    NewEvent,
    RecordedEvent,
    check_timestamp,
    prepare_payload,
    same_json,
    validate_event_type,
    validate_stage,
)
from .tables import course_designer_plans, events, retractions, snapshots, users
from .types import Timestamp, UUIDType

DEFAULT_PAGE_SIZE: Final = 2000
PROBE_SIZE: Final = 500
"""Streams shorter than this are read in one statement, without a transaction."""


class StreamState(enum.Enum):
    """Expected-version sentinels (an ``int`` means an exact version)."""

    ANY = "any"
    """No concurrency check."""
    NO_STREAM = "no_stream"
    """The plan must have no events yet."""
    STREAM_EXISTS = "stream_exists"
    """The plan must have at least one event."""


ANY: Final = StreamState.ANY
NO_STREAM: Final = StreamState.NO_STREAM
STREAM_EXISTS: Final = StreamState.STREAM_EXISTS
ExpectedVersion = StreamState | int
"""What a writer expects the plan's version (its number of stored rows) to be."""


@dataclass(frozen=True, slots=True)
class AppendResult:
    plan_id: UUID
    event_ids: tuple[UUID, ...]
    """Ids of the whole batch, in the order given (new and already stored)."""
    appended: int
    """Rows actually inserted; 0 when the whole batch was an idempotent re-send."""
    version: int | None
    """The plan's version after the append, when an expected version was checked."""


@dataclass(frozen=True, slots=True, order=True)
class StreamPosition:
    """A point in a plan's stream order (exclusive lower bound for reads)."""

    occurred_at: datetime
    created_at: datetime
    rank: int
    id: UUID

    @classmethod
    def of(cls, event: RecordedEvent, tie_rank: Mapping[str, int] | None = None) -> StreamPosition:
        rank = (tie_rank or {}).get(event.event_type, 0)
        return cls(event.occurred_at, event.created_at, rank, event.id)


@dataclass(frozen=True, slots=True)
class TimelineCursor:
    """Where a newest-first timeline page ended (exclusive upper bound)."""

    occurred_at: datetime
    created_at: datetime
    id: UUID

    def encode(self) -> str:
        return f"{self.occurred_at.isoformat()}|{self.created_at.isoformat()}|{self.id}"

    @classmethod
    def decode(cls, value: str) -> TimelineCursor:
        try:
            occurred, created, ident = value.split("|")
            return cls(
                check_timestamp(datetime.fromisoformat(occurred), "cursor"),
                check_timestamp(datetime.fromisoformat(created), "cursor"),
                UUID(ident),
            )
        except (ValueError, InvalidInput):
            raise InvalidInput(
                f"cursor {value!r} is not one this tool printed; copy it from the "
                "previous page's output",
                field="cursor",
            ) from None


@dataclass(frozen=True, slots=True)
class TimelinePage:
    events: tuple[RecordedEvent, ...]
    next_cursor: TimelineCursor | None
    """Pass as ``before`` for the next (older) page; ``None`` on the last page."""


@dataclass(frozen=True, slots=True)
class WriteNotice:
    """What a write did to one plan, for write hooks (inline projections).

    ``earliest`` is the smallest ``occurred_at`` the write touched; snapshots
    positioned at or after it were marked stale in this transaction.
    """

    plan_id: UUID
    kind: str  # "append" | "soft_delete" | "restore" | "import"
    earliest: datetime
    appended: tuple[RecordedEvent, ...] = ()


class WriteHook(Protocol):
    """Runs inside every write transaction, after the rows are written.

    Inline projections implement it to update their snapshots atomically with
    the events. It must only use ``connection`` and must not commit.
    """

    def after_write(
        self, store: EventStore, connection: Connection, notice: WriteNotice
    ) -> None: ...


_PG_LOCK: Final = "SELECT pg_advisory_xact_lock(%s), now()"
_PG_INSERT: Final = (
    "INSERT INTO course_designer_plan_events (id, course_designer_plan_id, actor_user_id, "
    "event_type, stage, payload, occurred_at) "
    "VALUES (%s, %s, %s, %s, %s, %s::jsonb, COALESCE(%s::timestamptz, now()))"
)
# The change-feed upsert and the staleness update must be two statements. In
# READ COMMITTED a statement sees the rows committed before it started: the upsert
# may wait for a worker holding the plan's feed row, and only a statement started
# after that wait sees the snapshot row the worker just inserted. Folded into one
# statement (a CTE), the update would miss that row and leave it fresh although
# this write (a backfill, say) lands before its position. The fault test with
# four writers and two workers catches exactly that.
_PG_RECORD_CHANGE: Final = """INSERT INTO eventsource_plan_changes (plan_id, change_seq, changed_at)
VALUES (%(plan)s, 1, now())
ON CONFLICT (plan_id) DO UPDATE SET change_seq = eventsource_plan_changes.change_seq + 1"""
_PG_STALE: Final = """UPDATE eventsource_snapshots SET stale = true
WHERE plan_id = %(plan)s
  AND NOT stale
  AND position_occurred_at >= LEAST(COALESCE(%(earliest)s::timestamptz, now()), now())"""


def plan_lock_key(plan_id: UUID) -> int:
    """A signed 64-bit advisory-lock key derived from the plan id."""
    return int.from_bytes(plan_id.bytes[:8], "big", signed=True)


def _as_uuid(value: UUID | str, field: str) -> UUID:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise InvalidInput(f"{field} is not a UUID: {value!r}", field=field) from None


def event_from_row(row: Any) -> RecordedEvent:
    payload = row.payload
    if isinstance(payload, str | bytes):
        payload = orjson.loads(payload)
    return RecordedEvent(
        id=row.id,
        plan_id=row.course_designer_plan_id,
        event_type=row.event_type,
        payload=payload,
        stage=row.stage,
        actor_user_id=row.actor_user_id,
        occurred_at=row.occurred_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
    )


EVENT_COLUMNS: Final = (
    events.c.id,
    events.c.course_designer_plan_id,
    events.c.event_type,
    events.c.payload,
    events.c.stage,
    events.c.actor_user_id,
    events.c.occurred_at,
    events.c.created_at,
    events.c.updated_at,
    events.c.deleted_at,
)

_IMMUTABLE_FIELDS: Final = (
    "plan_id",
    "event_type",
    "payload",
    "stage",
    "actor_user_id",
    "occurred_at",
)


def rank_expression(tie_rank: Mapping[str, int] | None) -> ColumnElement[int]:
    """SQL for a projection's tie rank by event type (0 for unranked types)."""
    if not tie_rank:
        return literal(0)
    return case(
        {event_type: rank for event_type, rank in sorted(tie_rank.items())},
        value=events.c.event_type,
        else_=0,
    )


class EventStore:
    """The append-only store of ``course_designer_plan_events``.

    Args:
        engine: a SQLAlchemy engine from :func:`eventsource.config.make_engine`.
        max_payload_bytes: the largest payload (as JSON) an append accepts.
        hooks: write hooks run inside every write transaction.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        hooks: Sequence[WriteHook] = (),
    ) -> None:
        self.engine = engine
        self.dialect: str = engine.dialect.name
        self.max_payload_bytes = max_payload_bytes
        self.hooks: list[WriteHook] = list(hooks)
        self._statements: dict[tuple[Any, ...], Executable] = {}
        self._schema_ok = False

    @classmethod
    def from_url(cls, url: str | None = None, **kwargs: Any) -> EventStore:
        """A store for ``url`` (else ``EVENTSOURCE_DATABASE_URL``, else the default)."""
        return cls(make_engine(url), **kwargs)

    def close(self) -> None:
        self.engine.dispose()

    # -- connections ---------------------------------------------------------

    def check_schema(self) -> None:
        """Fail early, with what to do, if the database was never migrated.

        Raises:
            SchemaMissing: the event table or the engine's tables are missing.
        """
        if self._schema_ok:
            return
        with translated(), self.engine.connect() as connection:
            names = set(inspect(connection).get_table_names())
        missing = sorted(
            {events.name, snapshots.name, feed.plan_changes.name, retractions.name} - names
        )
        if missing:
            raise SchemaMissing(f"the database lacks table(s) {', '.join(missing)}")
        self._schema_ok = True

    @contextmanager
    def write_transaction(self) -> Iterator[Connection]:
        """A connection in a write transaction (``BEGIN IMMEDIATE`` on SQLite)."""
        self.check_schema()
        with translated(), self.engine.connect() as connection:
            connection = connection.execution_options(eventsource_write=True)
            with connection.begin():
                yield connection

    @contextmanager
    def read_transaction(self) -> Iterator[Connection]:
        """A connection in a read transaction that sees one consistent snapshot."""
        self.check_schema()
        with translated(), self.engine.connect() as connection:
            if self.dialect == "postgresql":
                connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                yield connection

    def lock_plan(self, connection: Connection, plan_id: UUID) -> datetime:
        """Serialize the plan's writers; return the transaction's timestamp."""
        if self.dialect == "postgresql":
            row = connection.execute(
                text("SELECT pg_advisory_xact_lock(:key), now()"),
                {"key": plan_lock_key(plan_id)},
            ).one()
            stamp: datetime = row[1]
            return stamp.astimezone(UTC)
        # SQLite: BEGIN IMMEDIATE already holds the database's write lock.
        return datetime.now(UTC)

    # -- appending -----------------------------------------------------------

    def prepare(self, plan_id: UUID, event: NewEvent, index: int) -> dict[str, Any]:
        """Validate one event; return the row to insert (without timestamps)."""
        where = f"event {index}"
        if not isinstance(event, NewEvent):
            raise InvalidInput(f"{where} is a {type(event).__name__}, not a NewEvent")
        try:
            validate_event_type(event.event_type)
            payload, payload_json = prepare_payload(event.payload, self.max_payload_bytes)
            stage = validate_stage(event.stage)
            occurred_at = (
                None
                if event.occurred_at is None
                else check_timestamp(event.occurred_at, "occurred_at")
            )
            actor = (
                None
                if event.actor_user_id is None
                else _as_uuid(event.actor_user_id, "actor_user_id")
            )
            event_id = None if event.id is None else _as_uuid(event.id, "id")
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc}", field=exc.field) from None
        return {
            "id": event_id,
            "course_designer_plan_id": plan_id,
            "actor_user_id": actor,
            "event_type": event.event_type,
            "stage": stage,
            "payload": payload,
            "occurred_at": occurred_at,
            "payload_json": payload_json,
        }

    def append(
        self,
        plan_id: UUID | str,
        new_events: Sequence[NewEvent],
        *,
        expected_version: ExpectedVersion = ANY,
    ) -> AppendResult:
        """Append a batch to a plan's stream in one transaction.

        Ids not given get time-ordered UUIDv7s (so the batch keeps its order);
        ``occurred_at`` not given is the transaction's time. Re-sending an event id
        with identical content is a no-op, so a whole append can safely be retried.

        Raises:
            InvalidInput: a bad event (nothing of the batch is written).
            UnknownReference: the plan or an actor does not exist.
            ConcurrencyConflict: the plan is not at ``expected_version``.
            IdempotencyConflict: an id was re-sent with different content.
            SchemaMissing: the database was never migrated.
            StoreUnavailable: the database cannot be reached (after retries).
        """
        plan = _as_uuid(plan_id, "plan_id")
        if not new_events:
            raise InvalidInput("append needs at least one event", field="events")
        if isinstance(expected_version, bool) or not isinstance(
            expected_version, StreamState | int
        ):
            raise InvalidInput(
                "expected_version must be ANY, NO_STREAM, STREAM_EXISTS or an int",
                field="expected_version",
            )
        if isinstance(expected_version, int) and expected_version < 0:
            raise InvalidInput("expected_version cannot be negative", field="expected_version")
        rows = [self.prepare(plan, event, index) for index, event in enumerate(new_events)]
        given_ids = {row["id"] for row in rows if row["id"] is not None}
        if len(given_ids) != sum(1 for row in rows if row["id"] is not None):
            raise InvalidInput("the batch repeats an event id", field="id")
        for row in rows:
            if row["id"] is None:
                row["id"] = uuid7()
        return with_retries(lambda: self._append(plan, rows, given_ids, expected_version))

    def _append(
        self,
        plan_id: UUID,
        prepared: list[dict[str, Any]],
        given_ids: set[UUID],
        expected_version: ExpectedVersion,
    ) -> AppendResult:
        ids = tuple(row["id"] for row in prepared)
        if self.dialect == "postgresql" and expected_version is ANY and not given_ids:
            return self._append_pipelined(plan_id, prepared, ids)
        with self.write_transaction() as connection:
            now = self.lock_plan(connection, plan_id)
            if given_ids:
                prepared = self._drop_resent(connection, plan_id, prepared, given_ids)
                if not prepared:
                    return AppendResult(plan_id, ids, 0, None)
            rows = [
                {
                    "id": row["id"],
                    "course_designer_plan_id": row["course_designer_plan_id"],
                    "actor_user_id": row["actor_user_id"],
                    "event_type": row["event_type"],
                    "stage": row["stage"],
                    "payload": row["payload"],
                    "occurred_at": row["occurred_at"] or now,
                    "created_at": now,
                    "updated_at": now,
                }
                for row in prepared
            ]
            version: int | None = None
            if expected_version is not ANY:
                actual = self.version(plan_id, connection=connection)
                if (
                    (expected_version is NO_STREAM and actual != 0)
                    or (expected_version is STREAM_EXISTS and actual == 0)
                    or (isinstance(expected_version, int) and actual != expected_version)
                ):
                    label = (
                        expected_version.value
                        if isinstance(expected_version, StreamState)
                        else expected_version
                    )
                    raise ConcurrencyConflict(plan_id, label, actual)
                version = actual + len(rows)
            try:
                connection.execute(events.insert(), rows)
            except DBAPIError as exc:
                missing = self._missing_reference(connection, plan_id, rows, exc)
                if missing is not None:
                    raise missing from exc
                raise
            appended = tuple(
                RecordedEvent(
                    id=row["id"],
                    plan_id=plan_id,
                    event_type=row["event_type"],
                    payload=row["payload"],
                    stage=row["stage"],
                    actor_user_id=row["actor_user_id"],
                    occurred_at=row["occurred_at"],
                    created_at=now,
                    updated_at=now,
                    deleted_at=None,
                )
                for row in rows
            )
            self.after_write(
                connection,
                WriteNotice(plan_id, "append", min(e.occurred_at for e in appended), appended),
                now,
            )
        return AppendResult(plan_id, ids, len(rows), version)

    def _append_pipelined(
        self, plan_id: UUID, prepared: list[dict[str, Any]], ids: tuple[UUID, ...]
    ) -> AppendResult:
        """The common PostgreSQL append (no version check, library ids) in one round trip.

        Lock, insert and bookkeeping go out in one psycopg pipeline; the
        timestamps come from the server's ``now()`` exactly as column defaults
        would set them. Same statements and lock order as the general path.
        """
        key = plan_lock_key(plan_id)
        params = [
            (
                row["id"],
                plan_id,
                row["actor_user_id"],
                row["event_type"],
                row["stage"],
                row["payload_json"].decode(),
                row["occurred_at"],
            )
            for row in prepared
        ]
        given = [row["occurred_at"] for row in prepared if row["occurred_at"] is not None]
        with self.write_transaction() as connection:
            raw = connection.connection.driver_connection
            assert raw is not None
            try:
                with raw.pipeline(), raw.cursor() as lock, raw.cursor() as cursor:
                    lock.execute(_PG_LOCK, (key,))
                    cursor.executemany(_PG_INSERT, params)
                    bookkeeping = {"plan": plan_id, "earliest": min(given) if given else None}
                    cursor.execute(_PG_RECORD_CHANGE, bookkeeping)
                    cursor.execute(_PG_STALE, bookkeeping)
                    if not self.hooks:
                        # Nothing else to do in this transaction: commit in the same
                        # round trip (SQLAlchemy's commit then finds it done).
                        raw.commit()
                    row = lock.fetchone()
            except psycopg.Error as exc:
                if isinstance(exc, psycopg.OperationalError):
                    connection.invalidate()
                # Into SQLAlchemy's wrapper, so the boundary translates it by SQLSTATE.
                raise DBAPIError.instance(_PG_INSERT, None, exc, psycopg.Error) from exc
            assert row is not None
            now: datetime = row[1].astimezone(UTC)
            if self.hooks:
                appended = tuple(
                    RecordedEvent(
                        r["id"],
                        plan_id,
                        r["event_type"],
                        r["payload"],
                        r["stage"],
                        r["actor_user_id"],
                        r["occurred_at"] or now,
                        now,
                        now,
                        None,
                    )
                    for r in prepared
                )
                notice = WriteNotice(
                    plan_id, "append", min(e.occurred_at for e in appended), appended
                )
                for hook in self.hooks:
                    hook.after_write(self, connection, notice)
        return AppendResult(plan_id, ids, len(prepared), None)

    def _missing_reference(
        self,
        connection: Connection,
        plan_id: UUID,
        rows: list[dict[str, Any]],
        exc: DBAPIError,
    ) -> UnknownReference | None:
        """On SQLite, which parent a failed foreign key names (it does not say).

        PostgreSQL names the constraint (``backend.translate`` uses it) and its
        failed transaction cannot be queried; SQLite's can, so look the parents up.
        """
        orig = exc.orig
        if not (
            isinstance(orig, sqlite3.Error)
            and getattr(orig, "sqlite_errorcode", None) == SQLITE_CONSTRAINT_FOREIGNKEY
        ):
            return None
        plan_known = connection.execute(
            select(func.count())
            .select_from(course_designer_plans)
            .where(course_designer_plans.c.id == plan_id)
        ).scalar_one()
        if not plan_known:
            return UnknownReference(
                f"course_designer_plan_id {plan_id} names a plan that does not exist; create "
                "the plan first or import with --create-parents",
                field="course_designer_plan_id",
            )
        actors = sorted({row["actor_user_id"] for row in rows if row["actor_user_id"]})
        known = set(connection.execute(select(users.c.id).where(users.c.id.in_(actors))).scalars())
        for actor in actors:
            if actor not in known:
                return UnknownReference(
                    f"actor_user_id {actor} names a user that does not exist; create the "
                    "user first or import with --create-parents",
                    field="actor_user_id",
                )
        return None

    def _drop_resent(
        self,
        connection: Connection,
        plan_id: UUID,
        rows: list[dict[str, Any]],
        given_ids: set[UUID],
    ) -> list[dict[str, Any]]:
        stored = {
            event.id: event
            for event in map(
                event_from_row,
                connection.execute(select(*EVENT_COLUMNS).where(events.c.id.in_(given_ids))),
            )
        }
        if not stored:
            return rows
        fresh = []
        for row in rows:
            existing = stored.get(row["id"])
            if existing is None:
                fresh.append(row)
                continue
            candidate = {
                "plan_id": plan_id,
                "event_type": row["event_type"],
                "payload": row["payload"],
                "stage": row["stage"],
                "actor_user_id": row["actor_user_id"],
                "occurred_at": row["occurred_at"],
            }
            # occurred_at left to default is "now" on every send: not compared.
            differing = [
                name
                for name in _IMMUTABLE_FIELDS
                if not (name == "occurred_at" and candidate[name] is None)
                and not _same(candidate[name], getattr(existing, name))
            ]
            if differing:
                raise IdempotencyConflict(row["id"], differing)
        return fresh

    def after_write(self, connection: Connection, notice: WriteNotice, now: datetime) -> None:
        """Record the change, stale snapshots, run hooks: the write's bookkeeping.

        The order is the lock order every transaction follows (plan lock, then the
        change-feed row, then snapshot rows), so writers and workers never deadlock.
        """
        # Two statements, in this order: see _PG_RECORD_CHANGE.
        feed.record_change(connection, notice.plan_id, now)
        connection.execute(
            update(snapshots)
            .where(
                snapshots.c.plan_id == notice.plan_id,
                snapshots.c.stale == false(),
                snapshots.c.position_occurred_at >= notice.earliest,
            )
            .values(stale=True)
        )
        for hook in self.hooks:
            hook.after_write(self, connection, notice)

    # -- reading -------------------------------------------------------------

    def version(self, plan_id: UUID | str, *, connection: Connection | None = None) -> int:
        """The plan's version: how many rows it has stored (deleted ones included)."""
        plan = _as_uuid(plan_id, "plan_id")
        query = (
            select(func.count()).select_from(events).where(events.c.course_designer_plan_id == plan)
        )
        if connection is not None:
            return int(connection.execute(query).scalar_one())
        with self.read_transaction() as conn:
            return int(conn.execute(query).scalar_one())

    @staticmethod
    def _live_filter(valid: bool, known: bool) -> list[ColumnElement[bool]]:
        """Which rows count, with ``:valid_at`` / ``:known_at`` bind parameters."""
        conditions: list[ColumnElement[bool]] = []
        if valid:
            conditions.append(events.c.occurred_at <= bindparam("valid_at", type_=Timestamp()))
        if not known:
            conditions.append(events.c.deleted_at.is_(None))
        else:
            known_at = bindparam("known_at", type_=Timestamp())
            # Recorded by K and not retracted at K: the current deleted_at covers
            # deletions still in force, eventsource_retractions the restored ones.
            conditions.append(events.c.created_at <= known_at)
            conditions.append(or_(events.c.deleted_at.is_(None), events.c.deleted_at > known_at))
            conditions.append(
                not_(
                    exists().where(
                        retractions.c.plan_id == events.c.course_designer_plan_id,
                        retractions.c.event_id == events.c.id,
                        retractions.c.deleted_at <= known_at,
                        or_(
                            retractions.c.restored_at.is_(None),
                            retractions.c.restored_at > known_at,
                        ),
                    )
                )
            )
        return conditions

    def _stream_statement(
        self, ranks: tuple[tuple[str, int], ...], valid: bool, known: bool, keyed: bool
    ) -> Executable:
        """The page query for one shape, built once and reused (bind parameters only)."""
        cache_key = (ranks, valid, known, keyed)
        cached = self._statements.get(cache_key)
        if cached is not None:
            return cached
        rank = rank_expression(dict(ranks))
        statement = (
            select(*EVENT_COLUMNS)
            .where(
                events.c.course_designer_plan_id == bindparam("plan", type_=UUIDType()),
                *self._live_filter(valid, known),
            )
            .order_by(events.c.occurred_at, events.c.created_at, rank, events.c.id)
            .limit(bindparam("page_size"))
        )
        if keyed:
            statement = statement.where(
                # The plain bound lets the timeline index narrow the scan; the row
                # comparison then makes the cursor exact.
                events.c.occurred_at >= bindparam("after_o", type_=Timestamp()),
                tuple_(events.c.occurred_at, events.c.created_at, rank, events.c.id)
                > tuple_(
                    bindparam("after_o2", type_=Timestamp()),
                    bindparam("after_c", type_=Timestamp()),
                    bindparam("after_r", type_=Integer()),
                    bindparam("after_i", type_=UUIDType()),
                ),
            )
        self._statements[cache_key] = statement
        return statement

    def read(
        self,
        plan_id: UUID | str,
        *,
        after: StreamPosition | None = None,
        tie_rank: Mapping[str, int] | None = None,
        valid_at: datetime | None = None,
        known_at: datetime | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        connection: Connection | None = None,
    ) -> Iterator[RecordedEvent]:
        """A plan's live events in stream order, fetched page by page.

        Args:
            after: start after this position (exclusive), e.g. a snapshot's.
            tie_rank: per event type, the rank ordering same-timestamp events.
            valid_at: only events that occurred at or before this time.
            known_at: the stream as it was known at this record time: events
                recorded by then and not retracted at that moment.
            connection: read inside this transaction instead of a new one.
        """
        plan = _as_uuid(plan_id, "plan_id")
        if connection is not None:
            yield from self._read_pages(
                connection, plan, after, tie_rank, valid_at, known_at, page_size
            )
            return
        if self.dialect == "postgresql":
            # Most streams fit one page, and one statement is a consistent snapshot
            # by itself: read it without BEGIN/COMMIT round trips. A longer stream
            # is then read again, whole, inside one REPEATABLE READ transaction.
            self.check_schema()
            # Small enough that a long stream wastes little re-reading it.
            probe = min(page_size, PROBE_SIZE)
            with translated(), self.engine.connect() as conn:
                first = list(
                    self._read_pages(
                        conn.execution_options(isolation_level="AUTOCOMMIT"),
                        plan,
                        after,
                        tie_rank,
                        valid_at,
                        known_at,
                        probe,
                        first_page_only=True,
                    )
                )
            if len(first) < probe:
                yield from first
                return
        with self.read_transaction() as conn:
            yield from self._read_pages(conn, plan, after, tie_rank, valid_at, known_at, page_size)

    def _read_pages(
        self,
        connection: Connection,
        plan_id: UUID,
        after: StreamPosition | None,
        tie_rank: Mapping[str, int] | None,
        valid_at: datetime | None,
        known_at: datetime | None,
        page_size: int,
        *,
        first_page_only: bool = False,
    ) -> Iterator[RecordedEvent]:
        ranks = tuple(sorted((tie_rank or {}).items()))
        params: dict[str, Any] = {"plan": plan_id, "page_size": page_size}
        if valid_at is not None:
            params["valid_at"] = check_timestamp(valid_at, "as_of")
        if known_at is not None:
            params["known_at"] = check_timestamp(known_at, "known_at")
        first = self._stream_statement(ranks, valid_at is not None, known_at is not None, False)
        keyed = self._stream_statement(ranks, valid_at is not None, known_at is not None, True)
        rank_of = dict(ranks)
        position = after
        while True:
            if position is None:
                result = connection.execute(first, params)
            else:
                result = connection.execute(
                    keyed,
                    {
                        **params,
                        "after_o": position.occurred_at,
                        "after_o2": position.occurred_at,
                        "after_c": position.created_at,
                        "after_r": position.rank,
                        "after_i": position.id,
                    },
                )
            # Columns are selected in RecordedEvent's field order.
            page = [RecordedEvent(*row) for row in result.all()]
            yield from page
            if len(page) < page_size or first_page_only:
                return
            last = page[-1]
            position = StreamPosition(
                last.occurred_at, last.created_at, rank_of.get(last.event_type, 0), last.id
            )

    def timeline(
        self,
        plan_id: UUID | str,
        *,
        before: TimelineCursor | None = None,
        limit: int = 50,
    ) -> TimelinePage:
        """One page of a plan's live events, newest first.

        Served by ``course_designer_plan_events_timeline_idx``
        (plan, deleted_at, occurred_at DESC).
        """
        plan = _as_uuid(plan_id, "plan_id")
        if limit < 1:
            raise InvalidInput("limit must be at least 1", field="limit")
        query = (
            select(*EVENT_COLUMNS)
            .where(events.c.course_designer_plan_id == plan, events.c.deleted_at.is_(None))
            .order_by(events.c.occurred_at.desc(), events.c.created_at.desc(), events.c.id.desc())
            .limit(limit + 1)
        )
        if before is not None:
            query = query.where(
                events.c.occurred_at <= before.occurred_at,
                tuple_(events.c.occurred_at, events.c.created_at, events.c.id)
                < tuple_(
                    literal(before.occurred_at, events.c.occurred_at.type),
                    literal(before.created_at, events.c.created_at.type),
                    literal(before.id, events.c.id.type),
                ),
            )
        with self.read_transaction() as connection:
            page = [event_from_row(row) for row in connection.execute(query)]
        more = len(page) > limit
        page = page[:limit]
        cursor = (
            TimelineCursor(page[-1].occurred_at, page[-1].created_at, page[-1].id) if more else None
        )
        return TimelinePage(tuple(page), cursor)

    def timeline_query_sql(self, plan_id: UUID) -> str:
        """The timeline's SQL with literal values (for EXPLAIN in tests and docs)."""
        query = (
            select(*EVENT_COLUMNS)
            .where(events.c.course_designer_plan_id == plan_id, events.c.deleted_at.is_(None))
            .order_by(events.c.occurred_at.desc(), events.c.created_at.desc(), events.c.id.desc())
            .limit(51)
        )
        return str(
            query.compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True})
        )

    def audit(
        self, plan_id: UUID | str, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[RecordedEvent]:
        """Every row of a plan, deleted ones included, in the order they were recorded."""
        plan = _as_uuid(plan_id, "plan_id")
        base = (
            select(*EVENT_COLUMNS)
            .where(events.c.course_designer_plan_id == plan)
            .order_by(events.c.created_at, events.c.occurred_at, events.c.id)
            .limit(page_size)
        )
        with self.read_transaction() as connection:
            last: RecordedEvent | None = None
            while True:
                query = base
                if last is not None:
                    query = query.where(
                        tuple_(events.c.created_at, events.c.occurred_at, events.c.id)
                        > tuple_(
                            literal(last.created_at, events.c.created_at.type),
                            literal(last.occurred_at, events.c.occurred_at.type),
                            literal(last.id, events.c.id.type),
                        )
                    )
                rows = [event_from_row(row) for row in connection.execute(query)]
                yield from rows
                if len(rows) < page_size:
                    return
                last = rows[-1]

    def get(self, event_id: UUID | str) -> RecordedEvent:
        """One event by id, deleted or not.

        Raises:
            UnknownEvent: no event has this id.
        """
        ident = _as_uuid(event_id, "event_id")
        with self.read_transaction() as connection:
            row = connection.execute(
                select(*EVENT_COLUMNS).where(events.c.id == ident)
            ).one_or_none()
        if row is None:
            raise UnknownEvent(ident)
        return event_from_row(row)

    def plan_ids(self, *, page_size: int = 1000) -> Iterator[UUID]:
        """Every plan with at least one stored row, in id order, page by page.

        This is one of the two queries that do not carry a plan id (the other is
        the change-feed claim); see docs/scaling.md.
        """
        last: UUID | None = None
        while True:
            query = (
                select(events.c.course_designer_plan_id)
                .distinct()
                .order_by(events.c.course_designer_plan_id)
                .limit(page_size)
            )
            if last is not None:
                query = query.where(events.c.course_designer_plan_id > last)
            with self.read_transaction() as connection:
                page = list(connection.execute(query).scalars())
            yield from page
            if len(page) < page_size:
                return
            last = page[-1]

    # -- soft delete and restore ---------------------------------------------

    def soft_delete(self, event_id: UUID | str) -> bool:
        """Retract an event: set its ``deleted_at``. Returns False if it already was.

        Raises:
            UnknownEvent: no event has this id.
        """
        ident = _as_uuid(event_id, "event_id")
        return with_retries(lambda: self._set_deleted(ident, deleted=True))

    def restore(self, event_id: UUID | str) -> bool:
        """Undo a soft delete: clear ``deleted_at``. Returns False if it was live.

        Raises:
            UnknownEvent: no event has this id.
        """
        ident = _as_uuid(event_id, "event_id")
        return with_retries(lambda: self._set_deleted(ident, deleted=False))

    def _set_deleted(self, event_id: UUID, *, deleted: bool) -> bool:
        with self.write_transaction() as connection:
            found = connection.execute(
                select(events.c.course_designer_plan_id).where(events.c.id == event_id)
            ).one_or_none()
            if found is None:
                raise UnknownEvent(event_id)
            plan_id: UUID = found[0]
            now = self.lock_plan(connection, plan_id)
            row = connection.execute(
                select(events.c.occurred_at, events.c.deleted_at).where(
                    events.c.course_designer_plan_id == plan_id, events.c.id == event_id
                )
            ).one()
            if (row.deleted_at is not None) == deleted:
                return False
            connection.execute(
                update(events)
                .where(events.c.course_designer_plan_id == plan_id, events.c.id == event_id)
                # PostgreSQL's set_timestamp trigger stamps updated_at; SQLite's only
                # has a millisecond clock, so the store stamps it with the same
                # microsecond transaction time the trigger would use.
                .values(
                    deleted_at=now if deleted else None,
                    **({} if self.dialect == "postgresql" else {"updated_at": now}),
                )
            )
            if deleted:
                connection.execute(
                    retractions.insert().values(
                        plan_id=plan_id, event_id=event_id, deleted_at=now, restored_at=None
                    )
                )
            else:
                closed = connection.execute(
                    update(retractions)
                    .where(
                        retractions.c.plan_id == plan_id,
                        retractions.c.event_id == event_id,
                        retractions.c.restored_at.is_(None),
                    )
                    .values(restored_at=now)
                ).rowcount
                if not closed:
                    # Deleted outside the library (or imported deleted): keep the
                    # interval it was retracted for.
                    connection.execute(
                        retractions.insert().values(
                            plan_id=plan_id,
                            event_id=event_id,
                            deleted_at=row.deleted_at,
                            restored_at=now,
                        )
                    )
            self.after_write(
                connection,
                WriteNotice(plan_id, "soft_delete" if deleted else "restore", row.occurred_at),
                now,
            )
        return True


def _same(left: Any, right: Any) -> bool:
    """Same stored content: JSON by value (as jsonb keeps numbers), instants in UTC."""
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return same_json(left, right)
    if isinstance(left, datetime) and isinstance(right, datetime):
        return left.astimezone(UTC) == right.astimezone(UTC)
    return bool(left == right)


__all__ = [
    "ANY",
    "NO_STREAM",
    "STREAM_EXISTS",
    "AppendResult",
    "EventStore",
    "ExpectedVersion",
    "StreamPosition",
    "StreamState",
    "TimelineCursor",
    "TimelinePage",
    "WriteHook",
    "WriteNotice",
]
