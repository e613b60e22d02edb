"""The stream tier: append, read, version, timeline, audit, soft delete and restore.

Ordering. A plan's stream order is ``occurred_at``, then ``created_at``, then an
optional tie rank by event type, then ``id``, over rows whose ``deleted_at`` is
null. Upstream services write both timestamps as ``now()`` (the transaction's
start), so events of one transaction tie on both and random v4 ids give them no
meaning: the tie rank lets a projection say which type comes first, and ``id``
only makes the order total and deterministic. Events appended here get UUIDv7
ids, monotonic within the process, so a batch keeps the order it was given in.
A read is one statement (see ``eventsource.dialects.base``) whose rows arrive
as the caller folds them: one consistent snapshot of the stream, never held in
memory whole, never re-queried page by page.

Writing. Every write runs in one transaction that first serializes the plan's
writers (on PostgreSQL the plan's ``course_designer_plans`` row ``FOR UPDATE``,
the lock the host service takes before each of its writes, see
``eventsource.dialects.postgresql``; ``BEGIN IMMEDIATE`` on SQLite), so an
expected-version check cannot be raced, by the library or by the host. In the
same transaction the tiers above add their bookkeeping (the
change feed records the plan, the snapshot tier stales what the write lands
before) and the registered write hooks run (inline projections). On PostgreSQL
an append without hooks is one pipelined round trip, ``BEGIN`` to ``COMMIT``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, NamedTuple
from uuid import UUID

from sqlalchemy import Connection, Engine, inspect

from .backend import translate, translated, with_retries
from .config import make_engine
from .database import Database, Raw
from .dialects import Dialect
from .errors import (
    ConcurrencyConflict,
    IdempotencyConflict,
    InvalidEventPayload,
    InvalidInput,
    SchemaMissing,
    UnknownEvent,
    UnknownReference,
)
from .events import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    NewEvent,
    RecordedEvent,
    check_content,
    check_timestamp,
    differing_fields,
)
from .hooks import WriteHook, WriteNotice
from .ids import uuid7
from .payload_models import PayloadModels, installed
from .positions import StreamPosition, TimelineCursor, TimelinePage
from .program import DRIVER_ERRORS, Many, Program, Query, run
from .versions import (
    ANY,
    ExpectedVersion,
    accepted_range,
    check_expected_argument,
    check_version,
    label,
)

DEFAULT_PAGE_SIZE: Final = 2000
"""Rows fetched per round trip while a stream is folded."""

REQUIRED_TABLES: Final = frozenset(
    {
        "course_designer_plan_events",
        "eventsource_snapshots",
        "eventsource_plan_changes",
        "eventsource_retractions",
    }
)

Bookkeeping = list[tuple[str, dict[str, Any]]]
"""Statements a write runs after its rows, in this order, in its transaction."""


@dataclass(frozen=True, slots=True)
class AppendResult:
    plan_id: UUID
    event_ids: tuple[UUID, ...]
    """Ids of the whole batch, in the order given (new and already stored)."""
    appended: int
    """Rows actually inserted; 0 when the whole batch was an idempotent re-send."""
    version: int
    """The plan's version after the append (its stored rows, deleted ones included)."""


class PreparedEvent(NamedTuple):
    """One validated event of an append, before the transaction stamps it (a named
    tuple, as ``RecordedEvent``: built per event, in a third of a frozen
    dataclass's time)."""

    id: UUID
    event_type: str
    payload: dict[str, Any]
    payload_json: bytes
    stage: str | None
    actor_user_id: UUID | None
    occurred_at: datetime | None

    def recorded(self, plan_id: UUID, now: datetime) -> RecordedEvent:
        return RecordedEvent(
            self.id,
            plan_id,
            self.event_type,
            self.payload,
            self.stage,
            self.actor_user_id,
            self.occurred_at or now,
            now,
            now,
            None,
        )


def as_uuid(value: UUID | str, field: str) -> UUID:
    """``value`` as a UUID, or :class:`InvalidInput` naming ``field``."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise InvalidInput(f"{field} is not a UUID: {value!r}", field=field) from None


def prepare(
    event: NewEvent, index: int, max_payload_bytes: int, readers: PayloadModels | None = None
) -> PreparedEvent:
    """Validate one event of a batch (the ``index``-th) for appending; with
    ``readers``, against the payload models of the projections that read its type.

    Raises:
        InvalidInput: naming the event and the field.
        InvalidEventPayload: a projection's payload model refuses the payload.
    """
    if not isinstance(event, NewEvent):
        raise InvalidInput(f"event {index} is a {type(event).__name__}, not a NewEvent")
    try:
        _, payload, payload_json, stage = check_content(
            event.event_type,
            event.payload,
            event.stage,
            max_payload_bytes=max_payload_bytes,
            readers=readers,
        )
        occurred_at = (
            None if event.occurred_at is None else check_timestamp(event.occurred_at, "occurred_at")
        )
        actor = (
            None if event.actor_user_id is None else as_uuid(event.actor_user_id, "actor_user_id")
        )
        event_id = uuid7() if event.id is None else as_uuid(event.id, "id")
    except InvalidInput as exc:
        kind = InvalidEventPayload if isinstance(exc, InvalidEventPayload) else InvalidInput
        raise kind(f"event {index}: {exc}", field=exc.field) from None
    return PreparedEvent(
        event_id, event.event_type, payload, payload_json, stage, actor, occurred_at
    )


class StreamRules:
    """The stream tier's I/O-free half: validation, statements and write programs.

    Both faces of the store, :class:`StreamStore` (blocking) and
    ``AsyncEventStore`` (asyncio), inherit or hold these rules and only run what
    they produce; the tiers above add theirs by extending :meth:`_bookkeeping`.
    """

    def __init__(
        self,
        dialect: Dialect,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        *,
        validate_payloads: bool = True,
        payload_models: PayloadModels | None = None,
    ) -> None:
        self.sql = dialect
        self.max_payload_bytes = max_payload_bytes
        self.validate_payloads = validate_payloads
        self.payload_models = payload_models

    def payload_readers(self, validate: bool | None = None) -> PayloadModels | None:
        """The models writes are checked against (None: no check).

        ``validate`` overrides :attr:`validate_payloads` for one write; the models
        are :attr:`payload_models`, else those installed packages register (see
        ``eventsource.payload_models``).
        """
        if not (self.validate_payloads if validate is None else validate):
            return None
        return self.payload_models if self.payload_models is not None else installed()

    def prepare_batch(
        self,
        plan_id: UUID | str,
        new_events: Sequence[NewEvent],
        expected_version: object,
        validate_payloads: bool | None = None,
    ) -> tuple[UUID, list[PreparedEvent], set[UUID], ExpectedVersion]:
        """Validate an append: (plan, prepared rows, caller-given ids, expected version).

        Raises:
            InvalidInput: a bad plan id, event, batch or expected version.
            InvalidEventPayload: a projection's payload model refuses a payload.
        """
        plan = as_uuid(plan_id, "plan_id")
        if not new_events:
            raise InvalidInput("append needs at least one event", field="events")
        expected = check_expected_argument(expected_version)
        given = {event.id for event in new_events if isinstance(event, NewEvent) and event.id}
        readers = self.payload_readers(validate_payloads)
        rows = [self.prepare(plan, event, index, readers) for index, event in enumerate(new_events)]
        if len(given) != sum(1 for event in new_events if event.id is not None):
            raise InvalidInput("the batch repeats an event id", field="id")
        return plan, rows, ({row.id for row in rows} if given else set()), expected

    def timeline_params(
        self, plan_id: UUID, before: TimelineCursor | None, limit: int
    ) -> dict[str, Any]:
        """Parameters of the timeline statement (``limit + 1`` rows, to see a next page)."""
        if limit < 1:
            raise InvalidInput("limit must be at least 1", field="limit")
        params: dict[str, Any] = {"plan": self.sql.uuid(plan_id), "limit": limit + 1}
        if before is not None:
            params.update(
                before_o=self.sql.timestamp(before.occurred_at),
                before_c=self.sql.timestamp(before.created_at),
                before_i=self.sql.uuid(before.id),
            )
        return params

    def timeline_page(self, plan_id: UUID, rows: Sequence[Any], limit: int) -> TimelinePage:
        """The fetched timeline rows as a page and the cursor of the next one."""
        page = list(map(self.sql.decoder(plan_id), rows))
        more = len(page) > limit
        page = page[:limit]
        cursor = (
            TimelineCursor(page[-1].occurred_at, page[-1].created_at, page[-1].id) if more else None
        )
        return TimelinePage(tuple(page), cursor)

    def prepare(
        self, plan_id: UUID, event: NewEvent, index: int, readers: PayloadModels | None = None
    ) -> PreparedEvent:
        """Validate one event; return it ready to insert (without timestamps)."""
        return prepare(event, index, self.max_payload_bytes, readers)

    def append_program(
        self,
        plan_id: UUID,
        rows: list[PreparedEvent],
        given_ids: set[UUID],
        expected: ExpectedVersion,
        *,
        pipelined: bool,
    ) -> Program[tuple[AppendResult, WriteNotice | None]]:
        """An append as an I/O-free program (see ``eventsource.program``).

        ``pipelined``: the whole transaction as one pipeline, run outside any
        transaction (caller ids and hooks need the step-by-step form, run inside
        the caller's write transaction). Returns the result and, for the
        step-by-step form, the notice for write hooks.
        """
        sql = self.sql
        ids = tuple(row.id for row in rows)
        plan = sql.uuid(plan_id)
        if pipelined:
            given = [row.occurred_at for row in rows if row.occurred_at is not None]
            bookkeeping = self._bookkeeping(plan_id, min(given) if given else None, None)
            try:
                # ANY accepts every version: the check then only reports it.
                results = yield sql.append_pipeline(
                    plan_id, rows, accepted_range(expected), bookkeeping
                )
            except DRIVER_ERRORS as exc:
                if getattr(exc, "sqlstate", None) != "22012":  # division_by_zero: see check
                    raise
                yield Query("ROLLBACK")
                (actual,) = yield Query(sql.version, {"plan": plan}, "one")
                if not actual:
                    (known,) = yield Query(sql.plan_exists, {"plan": plan}, "one")
                    if not known:
                        # The check ran before the inserts could fail on the key.
                        raise UnknownReference.missing_plan() from None
                raise ConcurrencyConflict(plan_id, label(expected), int(actual)) from None
            before = int(results[2][0])
            return AppendResult(plan_id, ids, len(rows), before + len(rows)), None
        now = yield from sql.lock_program(plan_id)
        fresh = rows
        if given_ids:
            found = yield Query(sql.by_ids(len(ids)), sql.ids_params(ids), "all")
            stored = {event.id: event for event in map(sql.decoder(), found)}
            fresh = self._drop_resent(plan_id, rows, stored)
        (count,) = yield Query(sql.version, {"plan": plan}, "one")
        actual = int(count)
        if not fresh:
            return AppendResult(plan_id, ids, 0, actual), None
        check_version(plan_id, expected, actual)
        try:
            yield Many(sql.insert, sql.insert_rows(plan_id, fresh, now))
        except DRIVER_ERRORS as exc:
            error = translate(exc)
            if isinstance(error, UnknownReference) and error.field is None:
                missing = yield from self._missing_reference(plan_id, fresh)
                raise (missing or error) from exc
            raise error from exc
        appended = tuple(row.recorded(plan_id, now) for row in fresh)
        earliest = min(event.occurred_at for event in appended)
        for statement, params in self._bookkeeping(plan_id, earliest, now):
            yield Query(statement, params)
        result = AppendResult(plan_id, ids, len(fresh), actual + len(fresh))
        return result, WriteNotice(plan_id, "append", earliest, appended)

    def _missing_reference(
        self, plan_id: UUID, rows: list[PreparedEvent]
    ) -> Program[UnknownReference | None]:
        """Which parent a failed foreign key names, where the driver does not say.

        PostgreSQL names the constraint (``backend.translate`` uses it); SQLite
        does not, but its transaction can still be queried, so look the parents up.
        """
        sql = self.sql
        (known_plan,) = yield Query(sql.plan_exists, {"plan": sql.uuid(plan_id)}, "one")
        if not known_plan:
            return UnknownReference(
                f"course_designer_plan_id {plan_id} names a plan that does not exist; create "
                "the plan first or import with --create-parents",
                field="course_designer_plan_id",
            )
        actors = sorted({row.actor_user_id for row in rows if row.actor_user_id})
        found = yield Query(sql.known_users(len(actors)), sql.ids_params(actors), "all")
        known = {sql.decode_uuid(value) for (value,) in found}
        for actor in actors:
            if actor not in known:
                return UnknownReference(
                    f"actor_user_id {actor} names a user that does not exist; create the "
                    "user first or import with --create-parents",
                    field="actor_user_id",
                )
        return None

    def _drop_resent(
        self, plan_id: UUID, rows: list[PreparedEvent], stored: Mapping[UUID, RecordedEvent]
    ) -> list[PreparedEvent]:
        """The rows not stored yet; a stored one must match what is re-sent.

        Raises:
            IdempotencyConflict: an id re-sent with different content.
        """
        if not stored:
            return rows
        fresh = []
        for row in rows:
            existing = stored.get(row.id)
            if existing is None:
                fresh.append(row)
                continue
            # occurred_at left to default is "now" on every send: not compared.
            differing = differing_fields(
                existing,
                plan_id=plan_id,
                event_type=row.event_type,
                payload=row.payload,
                stage=row.stage,
                actor_user_id=row.actor_user_id,
                occurred_at=row.occurred_at,
            )
            if differing:
                raise IdempotencyConflict(row.id, differing)
        return fresh

    def _bookkeeping(
        self, plan_id: UUID, earliest: datetime | None, now: datetime | None
    ) -> Bookkeeping:
        """The statements the tiers above add to every write (none in this tier).

        ``earliest`` is the smallest ``occurred_at`` written (None: the
        transaction's time); ``now`` the transaction's time where the store
        stamps it (None where the server does).
        """
        return []

    def stream_query(
        self,
        plan_id: UUID,
        *,
        after: StreamPosition | None = None,
        tie_rank: Mapping[str, int] | None = None,
        valid_at: datetime | None = None,
        known_at: datetime | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """The statement and parameters of one stream read."""
        ranks = tuple(sorted((tie_rank or {}).items()))
        params: dict[str, Any] = {"plan": self.sql.uuid(plan_id)}
        if valid_at is not None:
            params["valid_at"] = self.sql.timestamp(check_timestamp(valid_at, "as_of"))
        if known_at is not None:
            params["known_at"] = self.sql.timestamp(check_timestamp(known_at, "known_at"))
        if after is not None:
            params.update(self.sql.position_params(after))
        sql = self.sql.stream(ranks, valid_at is not None, known_at is not None, after is not None)
        return sql, params

    def set_deleted_program(
        self, event_id: UUID, deleted: bool
    ) -> Program[tuple[bool, WriteNotice | None]]:
        """Soft delete (or restore) as an I/O-free program, in a write transaction.

        Only ``deleted_at`` changes (and ``updated_at``, as the trigger does);
        the retraction history keeps ``known_at`` reads exact after a restore.

        Raises:
            UnknownEvent: no event has this id.
        """
        sql = self.sql
        ident = sql.uuid(event_id)
        found = yield Query(sql.event_plan, {"id": ident}, "one")
        if found is None:
            raise UnknownEvent(event_id)
        plan_id = sql.decode_uuid(found[0])
        plan = sql.uuid(plan_id)
        now = yield from sql.lock_program(plan_id)
        occurred, was_deleted = yield Query(sql.event_state, {"plan": plan, "id": ident}, "one")
        if (was_deleted is not None) == deleted:
            return False, None
        retract = sql.retract(deleted)
        if retract is not None:
            # The database's own function (PostgreSQL): the store's roles may not
            # set deleted_at or write the history themselves (eventsource.roles).
            (changed,) = yield Query(retract, {"plan": plan, "id": ident}, "one")
            if not changed:
                return False, None
        else:
            yield from self._set_deleted_rows(plan, ident, deleted, was_deleted, now)
        earliest = sql.decode_timestamp(occurred)
        for statement, params in self._bookkeeping(plan_id, earliest, now):
            yield Query(statement, params)
        kind = "soft_delete" if deleted else "restore"
        return True, WriteNotice(plan_id, kind, earliest)

    def _set_deleted_rows(
        self, plan: Any, ident: Any, deleted: bool, was_deleted: Any, now: datetime
    ) -> Program[None]:
        """Set ``deleted_at`` and write the retraction history, statement by statement."""
        sql = self.sql
        stamp = sql.timestamp(now)
        yield Query(
            sql.set_deleted,
            {"plan": plan, "id": ident, "deleted_at": stamp if deleted else None, "now": stamp},
        )
        if deleted:
            yield Query(
                sql.open_retraction,
                {"plan": plan, "id": ident, "deleted_at": stamp, "restored_at": None},
            )
            return
        closed = yield Query(
            sql.close_retraction, {"plan": plan, "id": ident, "restored_at": stamp}, "rowcount"
        )
        if not closed:
            # Deleted outside the library (or imported deleted): keep the
            # interval it was retracted for.
            yield Query(
                sql.open_retraction,
                {"plan": plan, "id": ident, "deleted_at": was_deleted, "restored_at": stamp},
            )


__all__ = [
    "DEFAULT_PAGE_SIZE",
    "AppendResult",
    "PreparedEvent",
    "StreamRules",
    "StreamStore",
    "as_uuid",
]


class StreamStore(StreamRules):
    """The stream tier of the store of ``course_designer_plan_events``.

    Args:
        engine: a SQLAlchemy engine from :func:`eventsource.config.make_engine`.
        max_payload_bytes: the largest payload (as JSON) an append accepts.
        hooks: write hooks run inside every write transaction.
        validate_payloads: check appended and imported payloads of the event types
            projections read against their payload models (``False``: store them
            as they are, for raw data the projections will quarantine).
        payload_models: the models to check against (default: those installed
            packages register, see ``eventsource.payload_models``).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        hooks: Sequence[WriteHook] = (),
        validate_payloads: bool = True,
        payload_models: PayloadModels | None = None,
    ) -> None:
        self.engine = engine
        self.database = Database(engine)
        super().__init__(
            self.database.dialect,
            max_payload_bytes,
            validate_payloads=validate_payloads,
            payload_models=payload_models,
        )
        self.dialect: str = self.sql.name
        self.hooks: list[WriteHook] = list(hooks)
        self._schema_ok = False
        self._owns_engine = False

    @classmethod
    def from_url(cls, url: str | None = None, **kwargs: Any) -> Any:
        """A store for ``url`` (else ``EVENTSOURCE_DATABASE_URL``, else the default)."""
        store = cls(make_engine(url), **kwargs)
        store._owns_engine = True
        return store

    def close(self) -> None:
        """Give back the connections this store holds; dispose of the engine too if
        the store made it (``from_url``). An engine passed in stays the caller's."""
        self.database.close()
        if self._owns_engine:
            self.engine.dispose()

    # -- transactions ----------------------------------------------------------

    def check_schema(self) -> None:
        """Fail early, with what to do, if the database was never migrated.

        Raises:
            SchemaMissing: the event table or the engine's tables are missing.
        """
        if self._schema_ok:
            return
        with translated(), self.engine.connect() as connection:
            names = set(inspect(connection).get_table_names())
        missing = sorted(REQUIRED_TABLES - names)
        if missing:
            raise SchemaMissing(f"the database lacks table(s) {', '.join(missing)}")
        self._schema_ok = True

    @contextmanager
    def write_transaction(self) -> Iterator[Connection]:
        """A SQLAlchemy connection in a write transaction (``BEGIN IMMEDIATE`` on SQLite)."""
        self.check_schema()
        with translated(), self.engine.connect() as connection:
            connection = connection.execution_options(eventsource_write=True)
            with connection.begin():
                yield connection

    @contextmanager
    def read_transaction(self) -> Iterator[Connection]:
        """A SQLAlchemy connection in a read transaction that sees one snapshot."""
        self.check_schema()
        with translated(), self.engine.connect() as connection:
            connection = connection.execution_options(isolation_level=self._snapshot_isolation)
            with connection.begin():
                yield connection

    @property
    def _snapshot_isolation(self) -> str:
        # SQLite reads in WAL already see one snapshot per transaction.
        return "REPEATABLE READ" if self.sql.supports_skip_locked else "SERIALIZABLE"

    @staticmethod
    def raw(connection: Connection) -> Raw:
        """The driver connection under a SQLAlchemy one (same transaction)."""
        raw = connection.connection.driver_connection
        assert raw is not None
        return raw

    @contextmanager
    def driver_transaction(self, *, write: bool) -> Iterator[Raw]:
        """A driver connection in a transaction (see ``Database.transaction``)."""
        self.check_schema()
        with translated(), self.database.transaction(write=write) as raw:
            yield raw

    def lock_in(self, raw: Raw, plan_id: UUID, *, missing_ok: bool = False) -> datetime:
        """:meth:`lock_plan` on a driver connection in a write transaction."""
        return self.sql.lock(raw, plan_id, missing_ok=missing_ok)

    def lock_all_in(self, raw: Raw, plan_ids: Sequence[UUID]) -> datetime:
        """Lock every listed plan that has a row, in id order, in one statement (a
        batch of replay); the transaction's time."""
        return self.sql.lock_all(raw, plan_ids)

    def lock_plan(
        self, connection: Connection, plan_id: UUID, *, missing_ok: bool = False
    ) -> datetime:
        """Serialize the plan's writers; return the transaction's timestamp.

        Raises:
            UnknownReference: on PostgreSQL, the plan has no ``course_designer_plans``
                row (its row is the lock), unless ``missing_ok`` (for bookkeeping on
                plans the host removed: there is no writer to wait for).
        """
        return self.sql.lock(self.raw(connection), plan_id, missing_ok=missing_ok)

    # -- appending -------------------------------------------------------------

    def append(
        self,
        plan_id: UUID | str,
        new_events: Sequence[NewEvent],
        *,
        expected_version: ExpectedVersion = ANY,
        validate_payloads: bool | None = None,
    ) -> AppendResult:
        """Append a batch to a plan's stream in one transaction.

        Ids not given get time-ordered UUIDv7s (so the batch keeps its order);
        ``occurred_at`` not given is the transaction's time. Re-sending an event id
        with identical content is a no-op, so a whole append can safely be retried.
        ``validate_payloads`` overrides the store's setting for this append.

        Raises:
            InvalidInput: a bad event (nothing of the batch is written).
            InvalidEventPayload: a projection's payload model refuses a payload.
            UnknownReference: the plan or an actor does not exist.
            ConcurrencyConflict: the plan is not at ``expected_version``.
            IdempotencyConflict: an id was re-sent with different content.
            SchemaMissing: the database was never migrated.
            StoreUnavailable: the database cannot be reached (after retries).
        """
        plan, rows, given_ids, expected = self.prepare_batch(
            plan_id, new_events, expected_version, validate_payloads
        )
        self.check_schema()
        return with_retries(lambda: self._append(plan, rows, given_ids, expected))

    def _append(
        self,
        plan_id: UUID,
        rows: list[PreparedEvent],
        given_ids: set[UUID],
        expected: ExpectedVersion,
    ) -> AppendResult:
        # The common case on PostgreSQL, BEGIN to COMMIT in one round trip, runs
        # on an autocommit connection; every other append inside a transaction.
        pipelined = self.sql.pipelines and not self.hooks and not given_ids
        program = self.append_program(plan_id, rows, given_ids, expected, pipelined=pipelined)
        if pipelined:
            with translated(), self.database.connection() as raw:
                return run(program, raw)[0]
        if self.hooks:
            with self.write_transaction() as connection:
                result, notice = run(program, self.raw(connection))
                if notice is not None:
                    for hook in self.hooks:
                        hook.after_write(self, connection, notice)
                return result
        with translated(), self.database.transaction(write=True) as raw:
            return run(program, raw)[0]

    def stored(self, raw: Raw, ids: Sequence[UUID]) -> dict[UUID, RecordedEvent]:
        """The stored rows among ``ids`` (any plan), by id."""
        if not ids:
            return {}
        decode = self.sql.decoder()
        rows = raw.execute(self.sql.by_ids(len(ids)), self.sql.ids_params(ids)).fetchall()
        return {event.id: event for event in map(decode, rows)}

    def _run_bookkeeping(self, raw: Raw, plan_id: UUID, earliest: datetime, now: datetime) -> None:
        for sql, params in self._bookkeeping(plan_id, earliest, now):
            raw.execute(sql, params)

    def after_write(self, connection: Connection, notice: WriteNotice, now: datetime) -> None:
        """The write's bookkeeping and hooks, inside the caller's write transaction.

        The order is the lock order every transaction follows (plan lock, then the
        change-feed row, then snapshot rows), so writers and workers never deadlock.
        """
        self._run_bookkeeping(self.raw(connection), notice.plan_id, notice.earliest, now)
        for hook in self.hooks:
            hook.after_write(self, connection, notice)

    # -- reading ---------------------------------------------------------------

    def _version(self, raw: Raw, plan_id: UUID) -> int:
        (count,) = raw.execute(self.sql.version, {"plan": self.sql.uuid(plan_id)}).fetchone()
        return int(count)

    def version(self, plan_id: UUID | str, *, connection: Connection | None = None) -> int:
        """The plan's version: how many rows it has stored (deleted ones included)."""
        plan = as_uuid(plan_id, "plan_id")
        if connection is not None:
            with translated():
                return self._version(self.raw(connection), plan)
        self.check_schema()
        with translated(), self.database.connection() as raw:
            return self._version(raw, plan)

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
        """A plan's live events in stream order: one statement, fetched as you go.

        Args:
            after: start after this position (exclusive), e.g. a snapshot's.
            tie_rank: per event type, the rank ordering same-timestamp events.
            valid_at: only events that occurred at or before this time.
            known_at: the stream as it was known at this record time: events
                recorded by then and not retracted at that moment.
            page_size: rows fetched per round trip.
            connection: read inside this transaction instead of on its own.
        """
        plan = as_uuid(plan_id, "plan_id")
        sql, params = self.stream_query(
            plan, after=after, tie_rank=tie_rank, valid_at=valid_at, known_at=known_at
        )
        decode = self.sql.decoder(plan)
        if connection is not None:
            with translated():
                yield from map(decode, self.sql.fetch(self.raw(connection), sql, params, page_size))
            return
        self.check_schema()
        with translated(), self.database.connection() as raw:
            yield from map(decode, self.sql.fetch(raw, sql, params, page_size))

    def read_in(
        self,
        raw: Raw,
        plan_id: UUID,
        *,
        after: StreamPosition | None = None,
        tie_rank: Mapping[str, int] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[RecordedEvent]:
        """:meth:`read` on a driver connection the caller holds in a transaction."""
        sql, params = self.stream_query(plan_id, after=after, tie_rank=tie_rank)
        # A generator, so a caller that stops early can close() the stream.
        yield from map(self.sql.decoder(plan_id), self.sql.fetch(raw, sql, params, page_size))

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
        plan = as_uuid(plan_id, "plan_id")
        params = self.timeline_params(plan, before, limit)
        self.check_schema()
        with translated(), self.database.connection() as raw:
            rows = raw.execute(self.sql.timeline(before is not None), params).fetchall()
        return self.timeline_page(plan, rows, limit)

    def timeline_query_sql(self, plan_id: UUID) -> str:
        """The timeline's SQL with literal values (for EXPLAIN in tests and docs)."""
        sql = self.sql.timeline(False)
        literal = f"'{self.sql.uuid(plan_id)}'"
        return sql.replace(self.sql.p("plan"), literal).replace(self.sql.p("limit"), "51")

    def audit(
        self, plan_id: UUID | str, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[RecordedEvent]:
        """Every row of a plan, deleted ones included, in the order they were recorded."""
        plan = as_uuid(plan_id, "plan_id")
        self.check_schema()
        with translated(), self.database.connection() as raw:
            rows = self.sql.fetch(raw, self.sql.audit, {"plan": self.sql.uuid(plan)}, page_size)
            yield from map(self.sql.decoder(plan), rows)

    def export_rows(self, plan_id: UUID) -> list[RecordedEvent]:
        """Every row of a plan, deleted ones too, in stream order (no tie rank)."""
        self.check_schema()
        with translated(), self.database.connection() as raw:
            rows = raw.execute(self.sql.export, {"plan": self.sql.uuid(plan_id)}).fetchall()
        return list(map(self.sql.decoder(plan_id), rows))

    def get(self, event_id: UUID | str) -> RecordedEvent:
        """One event by id, deleted or not.

        Raises:
            UnknownEvent: no event has this id.
        """
        ident = as_uuid(event_id, "event_id")
        self.check_schema()
        with translated(), self.database.connection() as raw:
            row = raw.execute(self.sql.get, {"id": self.sql.uuid(ident)}).fetchone()
        if row is None:
            raise UnknownEvent(ident)
        return self.sql.decoder()(row)

    def plan_ids(self, *, page_size: int = 1000) -> Iterator[UUID]:
        """Every plan with at least one stored row, in id order, page by page.

        One of the few queries that carry no plan id (see docs/scaling.md).
        """
        self.check_schema()
        last: UUID | None = None
        while True:
            with translated(), self.database.connection() as raw:
                if last is None:
                    found = raw.execute(self.sql.first_plan_ids, {"limit": page_size})
                else:
                    found = raw.execute(
                        self.sql.plan_ids, {"after": self.sql.uuid(last), "limit": page_size}
                    )
                page = [self.sql.decode_uuid(value) for (value,) in found.fetchall()]
            yield from page
            if len(page) < page_size:
                return
            last = page[-1]

    # -- soft delete and restore -------------------------------------------------

    def soft_delete(self, event_id: UUID | str) -> bool:
        """Retract an event: set its ``deleted_at``. Returns False if it already was.

        Raises:
            UnknownEvent: no event has this id.
        """
        ident = as_uuid(event_id, "event_id")
        return with_retries(lambda: self._set_deleted(ident, deleted=True))

    def restore(self, event_id: UUID | str) -> bool:
        """Undo a soft delete: clear ``deleted_at``. Returns False if it was live.

        Raises:
            UnknownEvent: no event has this id.
        """
        ident = as_uuid(event_id, "event_id")
        return with_retries(lambda: self._set_deleted(ident, deleted=False))

    def _set_deleted(self, event_id: UUID, *, deleted: bool) -> bool:
        with self.write_transaction() as connection:
            changed, notice = run(self.set_deleted_program(event_id, deleted), self.raw(connection))
            if notice is not None:
                for hook in self.hooks:
                    hook.after_write(self, connection, notice)
        return changed
