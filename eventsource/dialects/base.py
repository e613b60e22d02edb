"""The store's SQL, one module per backend, built once per store.

Every statement the hot paths run (append, stream reads, snapshot loads, feed
claims) is text prepared here and executed at the DBAPI level: no SQLAlchemy
compilation, coercion or type processing per call. :class:`Dialect` holds what
both backends share (the column list, the stream order, the one keyset
condition); :mod:`.postgresql` and :mod:`.sqlite` add their placeholders,
locking, clocks and value codecs. The tiers call a dialect's methods and never
ask which backend they run on.

The stream order (DESIGN.md, "Order and time") lives here and only here:
``occurred_at``, then ``created_at``, then a projection's tie rank by event type,
then ``id``, over live rows. A read is one statement whose rows the caller
fetches as it folds, so reading a plan costs the same per event however long the
plan is and however many of its events share a timestamp (a keyset re-query per
page would re-scan every tied row on each page: quadratic in a one-append plan).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any, Final
from uuid import UUID

import orjson

from ..errors import UnknownReference
from ..events import RecordedEvent
from ..program import Pipeline, Program, Query, run

EVENTS: Final = "course_designer_plan_events"
EVENT_COLUMNS: Final = (
    "id",
    "course_designer_plan_id",
    "event_type",
    "payload",
    "stage",
    "actor_user_id",
    "occurred_at",
    "created_at",
    "updated_at",
    "deleted_at",
)
"""The event columns in :class:`RecordedEvent` field order: the one row mapping."""

_AS_TEXT: Final = frozenset({"stage", "payload", "state"})


def _select_list(columns: tuple[str, ...]) -> str:
    return ", ".join(f"CAST({c} AS TEXT) AS {c}" if c in _AS_TEXT else c for c in columns)


EVENT_SELECT: Final = _select_list(EVENT_COLUMNS)
"""The SELECT list of an event row: :data:`EVENT_COLUMNS`, the stage and the
payload as text. On PostgreSQL the stage is an enum, which psycopg would load as
bytes from a binary row, and psycopg's jsonb loader costs more per row than the
rest of the row together; the dialect's decoder parses the text once, with
orjson (``Dialect.decode_json``)."""

SNAPSHOT_COLUMNS: Final = (
    "plan_id",
    "projection",
    "projection_version",
    "state",
    "state_hash",
    "event_count",
    "position_occurred_at",
    "position_created_at",
    "position_rank",
    "position_id",
    "stale",
    "updated_at",
)


Ranks = tuple[tuple[str, int], ...]
"""A projection's tie rank, as sorted ``(event_type, rank)`` pairs (hashable)."""


def _literal(text: str) -> str:
    """A SQL string literal (standard quoting, the same on both backends)."""
    return "'" + text.replace("'", "''") + "'"


def rank_sql(
    ranks: Ranks, column: str = "event_type", literal: Callable[[str], str] = _literal
) -> str:
    """SQL for a tie rank by event type (0 for unranked types)."""
    if not ranks:
        return "0"
    whens = " ".join(f"WHEN {literal(kind)} THEN {int(rank)}" for kind, rank in ranks)
    return f"(CASE {column} {whens} ELSE 0 END)"


def order_by(ranks: Ranks, prefix: str = "", literal: Callable[[str], str] = _literal) -> str:
    """The stream order as an ORDER BY list (no rank term without a tie rank:
    an integer constant there would mean a column position)."""
    rank = [rank_sql(ranks, f"{prefix}event_type", literal)] if ranks else []
    return ", ".join([f"{prefix}occurred_at", f"{prefix}created_at", *rank, f"{prefix}id"])


class Dialect:
    """What both backends share; a subclass fills in the backend's specifics.

    Statements use named placeholders written through :meth:`p`; values go in
    through :meth:`uuid` and :meth:`timestamp` and rows come out through
    :meth:`decoder`, so the tiers handle only Python values.
    """

    name: str = ""
    supports_skip_locked: bool = False
    pipelines: bool = False
    positional: str = "?"
    """The driver's positional placeholder (for ``executemany``)."""
    """Whether :meth:`pipelined_append` sends a whole append in one round trip."""
    insert: str = ""
    """Positional insert of one event row, for ``executemany`` of :meth:`insert_rows`."""

    def p(self, name: str) -> str:
        """The placeholder for the named parameter ``name``."""
        raise NotImplementedError

    def literal(self, text: str) -> str:
        """A SQL string literal for text built into a statement (tie-rank types)."""
        return _literal(text)

    def clock(self, name: str) -> str:
        """The transaction's time: a parameter the store stamps, or the server's own."""
        return self.p(name)

    def json_param(self, name: str) -> str:
        """The placeholder for a JSON document given as text."""
        return self.p(name)

    # -- values --------------------------------------------------------------

    def uuid(self, value: UUID) -> Any:
        return value

    def timestamp(self, value: datetime) -> Any:
        return value

    def optional_uuid(self, value: UUID | None) -> Any:
        return None if value is None else self.uuid(value)

    def optional_timestamp(self, value: datetime | None) -> Any:
        return None if value is None else self.timestamp(value)

    def decoder(self, plan_id: UUID | None = None) -> Callable[[Any], RecordedEvent]:
        """A function turning one fetched event row into a :class:`RecordedEvent`.

        ``plan_id``, when every row belongs to that plan, lets a backend skip
        decoding the column. Make one per read: a decoder may cache values that
        repeat within a stream.
        """
        raise NotImplementedError

    def decode_timestamp(self, value: Any) -> datetime:
        raise NotImplementedError

    def decode_uuid(self, value: Any) -> UUID:
        raise NotImplementedError

    def decode_json(self, value: Any) -> Any:
        """JSON text as every SELECT here reads it (:data:`EVENT_SELECT`)."""
        return orjson.loads(value)

    # -- driver work ---------------------------------------------------------

    def lock_step(self, plan_id: UUID) -> Query | None:
        """The statement serializing the plan's writers (None where BEGIN did it)."""
        return None

    def lock_time(self, row: Any) -> datetime:
        """The transaction's time, from :meth:`lock_step`'s row."""
        return datetime.now(UTC)

    def lock_program(self, plan_id: UUID, *, missing_ok: bool = False) -> Program[datetime]:
        """Lock the plan in the caller's write transaction; the transaction's time (UTC).

        Raises:
            UnknownReference: the plan has no row (where the lock is the plan row),
                unless ``missing_ok``: a plan without a row has no writers to wait for.
        """
        step = self.lock_step(plan_id)
        row = None
        if step is not None:
            row = yield step
            if row is None:
                # No plan row, no lock: the insert this lock precedes would fail on
                # the plan's foreign key, so fail the same way before it.
                if not missing_ok:
                    raise UnknownReference.missing_plan()
                row = yield Query(self.clock_sql, (), "one")
        return self.lock_time(row).astimezone(UTC)

    clock_sql: str = "SELECT now()"

    lock_all_sql: str | None = None
    """Locks every listed plan (``plans``) that has a row, in id order (None: BEGIN did)."""

    def lock_all(self, raw: Any, plan_ids: Sequence[UUID]) -> datetime:
        """Lock every plan of ``plan_ids`` that has a row, in one statement, in id
        order (so two such batches cannot deadlock); the transaction's time (UTC).
        A plan without a row has no writers to wait for (``missing_ok``)."""
        if self.lock_all_sql is None:
            return self.lock_time(None).astimezone(UTC)
        row = raw.execute(self.lock_all_sql, {"plans": list(plan_ids)}).fetchone()
        if row is None:
            row = raw.execute(self.clock_sql).fetchone()
        return self.lock_time(row).astimezone(UTC)

    def lock(self, raw: Any, plan_id: UUID, *, missing_ok: bool = False) -> datetime:
        """:meth:`lock_program` on a blocking driver connection."""
        return run(self.lock_program(plan_id, missing_ok=missing_ok), raw)

    def insert_rows(
        self, plan_id: UUID, rows: Iterable[Any], now: datetime
    ) -> list[tuple[Any, ...]]:
        """Parameters of :attr:`insert` for prepared rows (``PreparedEvent``)."""
        raise NotImplementedError

    def fetch(self, raw: Any, sql: str, params: Mapping[str, Any], size: int) -> Iterable[Any]:
        """The rows of one statement, fetched ``size`` at a time as the caller iterates."""
        cursor = raw.execute(sql, params)
        try:
            while rows := cursor.fetchmany(size):
                yield from rows
        finally:
            cursor.close()

    def fetch_prepared(
        self, raw: Any, sql: str, params: Mapping[str, Any], size: int
    ) -> Iterable[Any]:
        """:meth:`fetch` of a statement run often (a load): one the server may
        prepare, its rows turned into Python ``size`` at a time."""
        return self.fetch(raw, sql, params, size)

    def lock_table(self, raw: Any) -> datetime:
        """Hold off every other writer of the event table (bulk import); its time."""
        raise NotImplementedError

    def encode_event(self, event: RecordedEvent) -> tuple[Any, ...]:
        """A whole stored row as driver values, in :data:`EVENT_COLUMNS` order."""
        return (
            self.uuid(event.id),
            self.uuid(event.plan_id),
            event.event_type,
            orjson.dumps(event.payload).decode(),
            event.stage,
            self.optional_uuid(event.actor_user_id),
            self.timestamp(event.occurred_at),
            self.timestamp(event.created_at),
            self.timestamp(event.updated_at),
            self.optional_timestamp(event.deleted_at),
        )

    def bulk_insert(self, raw: Any, events: list[RecordedEvent]) -> None:
        """Insert whole rows (timestamps included), as an import does."""
        marks = ", ".join(self.positional for _ in EVENT_COLUMNS)
        cursor = raw.cursor()
        try:
            cursor.executemany(
                f"INSERT INTO {EVENTS} ({', '.join(EVENT_COLUMNS)}) VALUES ({marks})",
                [self.encode_event(event) for event in events],
            )
        finally:
            cursor.close()

    def append_pipeline(
        self,
        plan_id: UUID,
        rows: list[Any],
        accepted: tuple[int, int],
        bookkeeping: list[tuple[str, dict[str, Any]]],
    ) -> Pipeline:
        """A whole append transaction as one pipeline (where :attr:`pipelines`).

        Its results: the lock's row (second) and the version check's (third).
        """
        raise NotImplementedError

    # -- the stream order ----------------------------------------------------

    @cache  # noqa: B019 - one dialect per store, a handful of shapes each
    def stream(self, ranks: Ranks, valid: bool, known: bool, after: bool) -> str:
        """A plan's live events in stream order: one statement, all pages.

        Parameters: ``plan``; ``valid_at`` with ``valid``; ``known_at`` with
        ``known``; ``after_o``, ``after_c``, ``after_r``, ``after_i`` (a position,
        exclusive) with ``after``.
        """
        conditions = [f"course_designer_plan_id = {self.p('plan')}", *self.live(valid, known)]
        if after:
            conditions.append(self.after_position(rank_sql(ranks, literal=self.literal)))
        return (
            f"SELECT {EVENT_SELECT} FROM {EVENTS} WHERE "
            + " AND ".join(conditions)
            + " ORDER BY "
            + order_by(ranks, literal=self.literal)
        )

    def after_position(
        self,
        rank: str,
        bound: tuple[str, str, str, str] | None = None,
        prefix: str = "",
    ) -> str:
        """Rows strictly after a stream position: the one keyset condition.

        ``bound`` gives the position as SQL (default: the ``after_*``
        parameters); ``prefix`` qualifies the event columns. The plain bound on
        ``occurred_at`` lets the timeline index narrow the scan; the row
        comparison then makes it exact.
        """
        o, c, r, i = bound or (
            self.p("after_o"),
            self.p("after_c"),
            self.p("after_r"),
            self.p("after_i"),
        )
        return (
            f"{prefix}occurred_at >= {o} AND ({prefix}occurred_at, {prefix}created_at, {rank}, "
            f"{prefix}id) > ({o}, {c}, {r}, {i})"
        )

    @cache  # noqa: B019 - one dialect per store, a handful of shapes each
    def load_with_tail(self, ranks: Ranks, valid: bool) -> str:
        """A load in one statement: the plan's snapshot row, then the live events
        after its instant, or all of them without a usable snapshot.

        One statement sees one snapshot of the database on both backends, so a
        load needs no transaction: on PostgreSQL it is one round trip and, run
        often, a prepared statement. Every row has the :data:`EVENT_COLUMNS`, so
        an event decodes as any other. The snapshot row, if there is one, comes
        first and is the only row with a ``deleted_at`` (events here are live):
        it carries the snapshot's columns in the events' places (id: position_id,
        event_type: state_hash, payload: state, stage: projection_version,
        event_count, position_rank and stale as text, occurred_at and created_at:
        the position's, updated_at and deleted_at: updated_at; see
        ``SnapshotRules.decode_load_snapshot``). The position comes in through a
        scalar subquery, evaluated once, so the timeline index seeks straight to
        it (a join would scan the plan). A snapshot that is missing, stale or of
        another ``version`` gives no position, and every live event qualifies.
        Parameters: ``plan``, ``projection``, ``version``; ``valid_at`` with ``valid``.
        """
        plan = self.p("plan")
        usable = (
            f"FROM eventsource_snapshots WHERE plan_id = {plan} "
            f"AND projection = {self.p('projection')}"
        )
        # Strictly after the snapshot's occurred_at, not after its whole position:
        # a usable snapshot has no live event after its position at that same
        # instant. It is saved under the plan's write lock from a whole committed
        # stream, so every event sharing its occurred_at then was folded, and any
        # write since that lands at or before that instant (a backfill to it, a
        # soft delete, a restore) marked it stale (``mark_stale``: position_
        # occurred_at >= the write's earliest). So the timeline index seeks past
        # the position's instant instead of scanning every event that ties with
        # it (all of a plan written in one append). Only the host's own SQL
        # could add an event at exactly that instant, as it could any backfill:
        # reconcile finds both.
        since = (
            f"COALESCE((SELECT position_occurred_at {usable} AND NOT stale "
            f"AND projection_version = {self.p('version')}), {self.min_timestamp})"
        )
        conditions = [
            f"course_designer_plan_id = {plan}",
            "deleted_at IS NULL",
            f"occurred_at > {since}",
        ]
        if valid:
            conditions.append(f"occurred_at <= {self.p('valid_at')}")
        text = "CAST({} AS TEXT)".format
        extras = " || ' ' || ".join(
            (
                text("projection_version"),
                text("event_count"),
                f"COALESCE({text('position_rank')}, '')",
                text("stale"),
            )
        )
        return (
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM ("
            "SELECT position_id AS id, plan_id AS course_designer_plan_id, "
            f"state_hash AS event_type, CAST(state AS TEXT) AS payload, {extras} AS stage, "
            "NULL AS actor_user_id, position_occurred_at AS occurred_at, "
            "position_created_at AS created_at, updated_at, updated_at AS deleted_at, "
            f"0 AS part, 0 AS tie {usable} "
            f"UNION ALL SELECT {EVENT_SELECT}, 1, {rank_sql(ranks, literal=self.literal)} "
            f"FROM {EVENTS} WHERE "
            + " AND ".join(conditions)
            # The snapshot row first; then the stream order.
            + ") AS rows ORDER BY part, occurred_at, created_at, tie, id"
        )

    min_timestamp: str = "'0000-01-01T00:00:00.000000Z'"
    """Before every stored timestamp (SQLite's text sorts as the instants do)."""

    def live(self, valid: bool, known: bool) -> list[str]:
        """Which rows count: live now, or as known at ``known_at``; by ``valid_at``."""
        conditions: list[str] = []
        if valid:
            conditions.append(f"occurred_at <= {self.p('valid_at')}")
        if not known:
            conditions.append("deleted_at IS NULL")
            return conditions
        k = self.p("known_at")
        # Recorded by K and not retracted at K: the current deleted_at covers
        # deletions still in force, eventsource_retractions the restored ones.
        conditions += [
            f"created_at <= {k}",
            f"(deleted_at IS NULL OR deleted_at > {k})",
            "NOT EXISTS (SELECT 1 FROM eventsource_retractions r"
            f" WHERE r.plan_id = {EVENTS}.course_designer_plan_id AND r.event_id = {EVENTS}.id"
            f" AND r.deleted_at <= {k} AND (r.restored_at IS NULL OR r.restored_at > {k}))",
        ]
        return conditions

    def position_params(self, position: Any) -> dict[str, Any]:
        """Parameters of :meth:`after_position` for a ``StreamPosition``."""
        return {
            "after_o": self.timestamp(position.occurred_at),
            "after_c": self.timestamp(position.created_at),
            "after_r": position.rank,
            "after_i": self.uuid(position.id),
        }

    table_names: str = "SELECT name FROM sqlite_master WHERE type = 'table'"
    """The tables visible to the connection (the schema check)."""

    # -- other event reads ---------------------------------------------------

    @property
    def version(self) -> str:
        return f"SELECT count(*) FROM {EVENTS} WHERE course_designer_plan_id = {self.p('plan')}"

    def timeline(self, before: bool) -> str:
        """Newest first: exactly the reverse of the stream order without a tie rank."""
        conditions = [f"course_designer_plan_id = {self.p('plan')}", "deleted_at IS NULL"]
        if before:
            conditions.append(
                f"occurred_at <= {self.p('before_o')} AND (occurred_at, created_at, id) < "
                f"({self.p('before_o')}, {self.p('before_c')}, {self.p('before_i')})"
            )
        return (
            f"SELECT {EVENT_SELECT} FROM {EVENTS} WHERE "
            + " AND ".join(conditions)
            + f" ORDER BY occurred_at DESC, created_at DESC, id DESC LIMIT {self.p('limit')}"
        )

    @property
    def export(self) -> str:
        """Every row of a plan, deleted ones too, in stream order (no tie rank)."""
        return (
            f"SELECT {EVENT_SELECT} FROM {EVENTS} "
            f"WHERE course_designer_plan_id = {self.p('plan')} "
            "ORDER BY occurred_at, created_at, id"
        )

    @property
    def audit(self) -> str:
        return (
            f"SELECT {EVENT_SELECT} FROM {EVENTS} "
            f"WHERE course_designer_plan_id = {self.p('plan')} "
            "ORDER BY created_at, occurred_at, id"
        )

    @property
    def get(self) -> str:
        return f"SELECT {EVENT_SELECT} FROM {EVENTS} WHERE id = {self.p('id')}"

    def by_ids(self, count: int) -> str:
        """The stored rows among ``count`` given ids (``id0`` ... ``idN``)."""
        ids = ", ".join(self.p(f"id{index}") for index in range(count))
        return f"SELECT {EVENT_SELECT} FROM {EVENTS} WHERE id IN ({ids})"

    def ids_params(self, ids: Iterable[UUID]) -> dict[str, Any]:
        return {f"id{index}": self.uuid(ident) for index, ident in enumerate(ids)}

    @property
    def plan_exists(self) -> str:
        return f"SELECT count(*) FROM course_designer_plans WHERE id = {self.p('plan')}"

    def known_users(self, count: int) -> str:
        ids = ", ".join(self.p(f"id{index}") for index in range(count))
        return f"SELECT id FROM users WHERE id IN ({ids})"

    @property
    def table_note(self) -> str:
        """Text a table carries that says who made it (``table``): its comment, or
        its definition where tables have no comments. None when it does not exist."""
        raise NotImplementedError

    @property
    def plan_ids(self) -> str:
        """Every plan with a stored row, in id order (one of the few plan-less reads)."""
        return (
            f"SELECT DISTINCT course_designer_plan_id FROM {EVENTS} "
            f"WHERE course_designer_plan_id > {self.p('after')} "
            f"ORDER BY course_designer_plan_id LIMIT {self.p('limit')}"
        )

    @property
    def first_plan_ids(self) -> str:
        return (
            f"SELECT DISTINCT course_designer_plan_id FROM {EVENTS} "
            f"ORDER BY course_designer_plan_id LIMIT {self.p('limit')}"
        )

    # -- soft delete ---------------------------------------------------------

    @property
    def event_plan(self) -> str:
        return f"SELECT course_designer_plan_id FROM {EVENTS} WHERE id = {self.p('id')}"

    @property
    def event_state(self) -> str:
        return (
            f"SELECT occurred_at, deleted_at FROM {EVENTS} "
            f"WHERE course_designer_plan_id = {self.p('plan')} AND id = {self.p('id')}"
        )

    @property
    def set_deleted(self) -> str:
        """Only ``deleted_at`` changes (the backend may stamp ``updated_at`` too)."""
        return (
            f"UPDATE {EVENTS} SET deleted_at = {self.p('deleted_at')} "
            f"WHERE course_designer_plan_id = {self.p('plan')} AND id = {self.p('id')}"
        )

    def retract(self, deleted: bool) -> str | None:
        """One statement that soft deletes (or restores) an event and writes its
        retraction history at the database's time, returning whether it changed the
        row (parameters ``plan``, ``id``); None where the store runs
        :attr:`set_deleted` and the retraction statements itself."""
        return None

    @property
    def open_retraction(self) -> str:
        return (
            "INSERT INTO eventsource_retractions (plan_id, event_id, deleted_at, restored_at) "
            f"VALUES ({self.p('plan')}, {self.p('id')}, {self.p('deleted_at')}, "
            f"{self.p('restored_at')})"
        )

    @property
    def close_retraction(self) -> str:
        return (
            f"UPDATE eventsource_retractions SET restored_at = {self.p('restored_at')} "
            f"WHERE plan_id = {self.p('plan')} AND event_id = {self.p('id')} "
            "AND restored_at IS NULL"
        )

    # -- the change feed -----------------------------------------------------

    @property
    def record_change(self) -> str:
        return (
            "INSERT INTO eventsource_plan_changes (plan_id, change_seq, changed_at) "
            f"VALUES ({self.p('plan')}, 1, {self.clock('now')}) ON CONFLICT (plan_id) "
            "DO UPDATE SET change_seq = eventsource_plan_changes.change_seq + 1"
        )

    @property
    def claim(self) -> str:
        return (
            "SELECT plan_id, change_seq FROM eventsource_plan_changes "
            f"ORDER BY changed_at, plan_id LIMIT {self.p('limit')}"
        )

    @property
    def clear(self) -> str:
        return (
            "DELETE FROM eventsource_plan_changes "
            f"WHERE plan_id = {self.p('plan')} AND change_seq = {self.p('seq')}"
        )

    # -- snapshots and checkpoints -------------------------------------------

    @property
    def mark_stale(self) -> str:
        """Stale every snapshot of the plan positioned at or after ``earliest``."""
        return (
            "UPDATE eventsource_snapshots SET stale = "
            f"{self.true} WHERE plan_id = {self.p('plan')} AND NOT stale "
            f"AND position_occurred_at >= {self.p('earliest')}"
        )

    true: str = "true"

    @property
    def load_snapshot(self) -> str:
        return (
            f"SELECT {_select_list(SNAPSHOT_COLUMNS)} FROM eventsource_snapshots "
            f"WHERE plan_id = {self.p('plan')} AND projection = {self.p('projection')}"
        )

    @property
    def save_snapshot(self) -> str:
        names = [c for c in SNAPSHOT_COLUMNS if c not in ("stale", "updated_at")]
        values = [self.json_param(c) if c == "state" else self.p(c) for c in names]
        updates = [f"{c} = excluded.{c}" for c in (*names[2:], "stale", "updated_at")]
        return (
            f"INSERT INTO eventsource_snapshots ({', '.join(names)}, stale, updated_at) "
            f"VALUES ({', '.join(values)}, {self.false}, {self.clock('updated_at')}) "
            f"ON CONFLICT (plan_id, projection) DO UPDATE SET {', '.join(updates)}"
        )

    false: str = "false"

    @property
    def progress_done(self) -> str:
        return (
            "INSERT INTO eventsource_replay_progress (run, plan_id, finished_at) "
            f"VALUES ({self.p('run')}, {self.p('plan')}, {self.clock('now')})"
        )

    @property
    def progress_finished(self) -> str:
        return f"SELECT plan_id FROM eventsource_replay_progress WHERE run = {self.p('run')}"

    @property
    def progress_forget(self) -> str:
        return f"DELETE FROM eventsource_replay_progress WHERE run = {self.p('run')}"

    # -- quarantine ------------------------------------------------------------

    @property
    def quarantine(self) -> str:
        """Record (or re-record) a plan a projection cannot fold, with its stream's
        fingerprint taken in the same statement (event count and newest ``updated_at``:
        any insert, soft delete or restore changes one of them)."""
        plan = self.p("plan")
        same = "eventsource_quarantine.projection_version = excluded.projection_version"
        return (
            "INSERT INTO eventsource_quarantine (plan_id, projection, projection_version, "
            "event_id, event_type, error, stream_events, stream_updated_at, first_seen, "
            "last_seen, attempts) "
            f"SELECT {plan}, {self.p('projection')}, {self.p('version')}, {self.p('event')}, "
            f"{self.p('type')}, {self.p('error')}, count(*), max(updated_at), "
            f"{self.clock('now')}, {self.clock('now')}, 1 FROM {EVENTS} "
            f"WHERE course_designer_plan_id = {plan} "
            "ON CONFLICT (plan_id, projection) DO UPDATE SET "
            "projection_version = excluded.projection_version, event_id = excluded.event_id, "
            "event_type = excluded.event_type, error = excluded.error, "
            "stream_events = excluded.stream_events, "
            "stream_updated_at = excluded.stream_updated_at, last_seen = excluded.last_seen, "
            f"first_seen = CASE WHEN {same} THEN eventsource_quarantine.first_seen "
            "ELSE excluded.first_seen END, "
            f"attempts = CASE WHEN {same} THEN eventsource_quarantine.attempts + 1 ELSE 1 END"
        )

    @property
    def release(self) -> str:
        return (
            f"DELETE FROM eventsource_quarantine WHERE plan_id = {self.p('plan')} "
            f"AND projection = {self.p('projection')}"
        )

    def quarantined_among(self, count: int) -> str:
        """The (plan, projection) pairs quarantined among ``count`` plans."""
        plans = ", ".join(self.p(f"p{i}") for i in range(count))
        return f"SELECT plan_id, projection FROM eventsource_quarantine WHERE plan_id IN ({plans})"

    def quarantine_rows(self, by_projection: bool) -> str:
        """Every quarantined plan, with whether its stream is still the one that failed."""
        where = f" WHERE q.projection = {self.p('projection')}" if by_projection else ""
        events = f"FROM {EVENTS} e WHERE e.course_designer_plan_id = q.plan_id"
        newest = f"(SELECT max(e.updated_at) {events})"
        unchanged = (
            f"(q.stream_events = (SELECT count(*) {events}) AND "
            f"(q.stream_updated_at = {newest} OR "
            f"(q.stream_updated_at IS NULL AND {newest} IS NULL)))"
        )
        return (
            "SELECT q.plan_id, q.projection, q.projection_version, q.event_id, q.event_type, "
            f"q.error, q.first_seen, q.last_seen, q.attempts, {unchanged} "
            f"FROM eventsource_quarantine q{where} ORDER BY q.plan_id, q.projection"
        )


__all__ = [
    "EVENTS",
    "EVENT_COLUMNS",
    "SNAPSHOT_COLUMNS",
    "Dialect",
    "Ranks",
    "rank_sql",
]
