"""The snapshot and checkpoint tier: the one owner of the engine's state tables.

A snapshot holds, per plan and projection, the folded state, the projection
version, the stream position of the last event covered, the number of events
covered and the state's hash. It is usable only for that projection version and
while it is fresh: every write that lands at or before its position marks it
stale in the writing transaction (the bookkeeping below), so no stale state is
ever served. Replay checkpoints (``eventsource_replay_progress``) record which
plans a named run has finished, written in the same transaction as their
snapshots, so an interrupted run resumes exactly where it stopped.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any, cast
from uuid import UUID

import orjson

from .backend import translated, with_retries
from .database import Raw
from .dialects import Ranks
from .errors import FoldFailed
from .events import RecordedEvent, check_timestamp
from .feed import ChangeFeedStore, FeedRules
from .positions import StreamPosition
from .program import Program, Query
from .streams import DEFAULT_PAGE_SIZE, Bookkeeping


@dataclass(frozen=True, slots=True)
class Snapshot:
    plan_id: UUID
    projection: str
    projection_version: int
    state: Any
    """The state as JSON data (``Projection.to_json``)."""
    state_hash: str
    event_count: int
    """Live events covered: folded plus skipped (unknown types)."""
    position: StreamPosition | None
    """The last event covered, or None for an empty stream."""
    stale: bool
    updated_at: datetime

    def usable_for(self, name: str, version: int) -> bool:
        """Only a fresh snapshot of this exact projection version is ever served."""
        return self.projection == name and self.projection_version == version and not self.stale


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """A plan a projection could not fold, set aside until its stream changes."""

    plan_id: UUID
    projection: str
    projection_version: int
    event_id: UUID | None
    event_type: str | None
    error: str
    first_seen: datetime
    last_seen: datetime
    attempts: int
    unchanged: bool
    """Whether the plan's events are still those that failed (else it is retried)."""

    def holds(self, name: str, version: int) -> bool:
        """Whether the plan stays set aside for this projection version."""
        return self.unchanged and self.projection == name and self.projection_version == version


class SnapshotRules(FeedRules):
    """The snapshot tier's I/O-free half: staleness, statements and row decoding."""

    def _bookkeeping(
        self, plan_id: UUID, earliest: datetime | None, now: datetime | None
    ) -> Bookkeeping:
        # The change-feed upsert and the staleness update must be two statements,
        # in this order. In READ COMMITTED a statement sees the rows committed
        # before it started: the upsert may wait for a worker holding the plan's
        # feed row, and only a statement started after that wait sees the
        # snapshot row the worker just inserted. Folded into one statement (a
        # CTE), the update would miss that row and leave it fresh although this
        # write (a backfill, say) lands before its position. The fault test with
        # four writers and two workers catches exactly that.
        bound = earliest if earliest is not None else now
        stale = (
            self.sql.mark_stale,
            {
                "plan": self.sql.uuid(plan_id),
                "earliest": None if bound is None else self.sql.timestamp(bound),
            },
        )
        return [*super()._bookkeeping(plan_id, earliest, now), stale]

    # -- snapshots -------------------------------------------------------------

    def decode_snapshot(self, row: Any) -> Snapshot:
        sql = self.sql
        (plan, projection, version, state, digest, count, o, c, r, i, stale, updated) = row
        position = (
            None
            if i is None
            else StreamPosition(
                sql.decode_timestamp(o), sql.decode_timestamp(c), int(r), sql.decode_uuid(i)
            )
        )
        return Snapshot(
            plan_id=sql.decode_uuid(plan),
            projection=projection,
            projection_version=int(version),
            state=sql.decode_json(state),
            state_hash=digest.strip(),
            event_count=int(count),
            position=position,
            stale=bool(stale),
            updated_at=sql.decode_timestamp(updated),
        )

    def snapshot_key(self, plan_id: UUID, projection: str) -> dict[str, Any]:
        return {"plan": self.sql.uuid(plan_id), "projection": projection}

    def tail_statement(
        self,
        plan_id: UUID,
        projection: str,
        version: int,
        ranks: Ranks,
        valid_at: datetime | None,
    ) -> tuple[str, dict[str, Any]]:
        """The load statement (``Dialect.load_with_tail``) and its parameters.

        Without a usable snapshot (missing, stale, of another ``version``) it
        returns the whole live stream, so a load is one statement either way.
        """
        sql = self.sql
        params: dict[str, Any] = {**self.snapshot_key(plan_id, projection), "version": version}
        if valid_at is not None:
            params["valid_at"] = sql.timestamp(check_timestamp(valid_at, "as_of"))
        return sql.load_with_tail(ranks, valid_at is not None), params

    def tail_program(
        self,
        plan_id: UUID,
        projection: str,
        version: int,
        ranks: Ranks,
        valid_at: datetime | None,
    ) -> Program[tuple[Snapshot | None, list[RecordedEvent]]]:
        """A load's read as one program: one statement, so one snapshot of the
        database and one round trip. Run outside any transaction, on an
        autocommit connection."""
        statement, params = self.tail_statement(plan_id, projection, version, ranks, valid_at)
        rows = yield Query(statement, params, "all", binary=True)
        return self.decode_tail(plan_id, projection, rows)

    def decode_tail(
        self, plan_id: UUID, projection: str, rows: Sequence[Any]
    ) -> tuple[Snapshot | None, list[RecordedEvent]]:
        """A load's rows as the snapshot row (if any) and the events after it
        (``Dialect.load_with_tail``: the snapshot row is the one with a
        ``deleted_at``, always first)."""
        decode = self.sql.decoder(plan_id)
        if not rows or not self.is_load_snapshot(rows[0]):
            return None, list(map(decode, rows))
        snapshot = self.decode_load_snapshot(projection, rows[0])
        return snapshot, list(map(decode, islice(rows, 1, None)))

    @staticmethod
    def is_load_snapshot(row: Any) -> bool:
        """Whether a load's row is its snapshot row: the one with a ``deleted_at``."""
        return row[9] is not None

    def decode_load_snapshot(self, projection: str, row: Any) -> Snapshot:
        """The snapshot row of a load (``Dialect.load_with_tail`` says which column
        holds what)."""
        position_id, plan, digest, state, extras, _, o, c, updated, _ = row
        version, count, rank, stale = extras.split(" ")
        fresh = stale in ("0", "false")
        position = (o, c, rank or None, position_id)
        return self.decode_snapshot(
            (plan, projection, version, state, digest, count, *position, not fresh, updated)
        )

    def snapshot_params(self, snapshot: Snapshot) -> dict[str, Any]:
        """Parameters of the snapshot upsert (stored fresh)."""
        sql = self.sql
        position = snapshot.position
        return {
            "plan_id": sql.uuid(snapshot.plan_id),
            "projection": snapshot.projection,
            "projection_version": snapshot.projection_version,
            "state": orjson.dumps(snapshot.state).decode(),
            "state_hash": snapshot.state_hash,
            "event_count": snapshot.event_count,
            "position_occurred_at": None
            if position is None
            else sql.timestamp(position.occurred_at),
            "position_created_at": None if position is None else sql.timestamp(position.created_at),
            "position_rank": None if position is None else position.rank,
            "position_id": None if position is None else sql.uuid(position.id),
            "updated_at": sql.timestamp(snapshot.updated_at),
        }

    # -- quarantine ------------------------------------------------------------

    def quarantine_params(self, failure: FoldFailed, now: datetime | None) -> dict[str, Any]:
        """Parameters of the quarantine upsert (the fingerprint is read in SQL)."""
        sql = self.sql
        return {
            "plan": sql.uuid(failure.plan_id),
            "projection": failure.projection,
            "version": failure.projection_version,
            "event": sql.optional_uuid(failure.event_id),
            "type": failure.event_type,
            "error": failure.error[:4000],
            "now": sql.timestamp(now or datetime.now(UTC)),
        }

    def quarantined_statement(self, plan_ids: Sequence[UUID]) -> tuple[str, dict[str, Any]]:
        """The (plan, projection) pairs in quarantine among ``plan_ids``: SQL, parameters."""
        sql = self.sql
        params = {f"p{i}": sql.uuid(plan) for i, plan in enumerate(plan_ids)}
        return sql.quarantined_among(len(plan_ids)), params

    def decode_quarantined(self, rows: Sequence[Any]) -> set[tuple[UUID, str]]:
        return {(self.sql.decode_uuid(plan), projection) for plan, projection in rows}


class SnapshotStore(SnapshotRules, ChangeFeedStore):
    """The change-feed tier plus snapshots and replay checkpoints."""

    def load_snapshot(self, raw: Raw, plan_id: UUID, projection: str) -> Snapshot | None:
        """The plan's snapshot for ``projection``, usable or not, in ``raw``'s transaction."""
        row = raw.execute(self.sql.load_snapshot, self.snapshot_key(plan_id, projection)).fetchone()
        return None if row is None else self.decode_snapshot(row)

    def load_with_tail(
        self,
        plan_id: UUID,
        projection: str,
        version: int,
        ranks: Ranks,
        *,
        valid_at: datetime | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> tuple[Snapshot | None, Iterator[RecordedEvent]]:
        """The plan's snapshot and the live events after it, or all of them without one.

        Both come from one statement, so from one snapshot of the database, in one
        round trip on PostgreSQL. Without a usable snapshot (missing, stale, of
        another ``version``) the events are the whole live stream. They are
        decoded ``page_size`` rows at a time as the caller iterates, so a long
        plan costs no more per event than a short one: iterate them to the end
        or ``close()`` the iterator, which gives the connection back.
        """
        statement, params = self.tail_statement(plan_id, projection, version, ranks, valid_at)
        self.check_schema()
        rows = self._load_rows(statement, params, page_size)
        first = next(rows, None)
        snapshot = None
        if first is not None and self.is_load_snapshot(first):
            snapshot = self.decode_load_snapshot(projection, first)
            first = None
        events = self._load_events(plan_id, first, rows)
        next(events)  # into its try: a close() before the first event still closes rows
        return snapshot, cast(Iterator[RecordedEvent], events)

    def _load_rows(
        self, statement: str, params: dict[str, Any], page_size: int
    ) -> Generator[Any, None, None]:
        with translated(), self.database.connection() as raw:
            yield from self.sql.fetch_prepared(raw, statement, params, page_size)

    def _load_events(
        self, plan_id: UUID, first: Any, rows: Generator[Any, None, None]
    ) -> Iterator[RecordedEvent | None]:
        decode = self.sql.decoder(plan_id)
        try:
            yield None  # primed by load_with_tail, never seen by the caller
            if first is not None:
                yield decode(first)
            yield from map(decode, rows)
        finally:
            rows.close()

    def save_snapshot(self, raw: Raw, snapshot: Snapshot) -> None:
        """Insert or replace the plan's snapshot, fresh, in ``raw``'s transaction."""
        raw.execute(self.sql.save_snapshot, self.snapshot_params(snapshot))

    def save_snapshots(self, raw: Raw, snapshots: Sequence[Snapshot]) -> None:
        """:meth:`save_snapshot` of many plans, in one ``executemany`` (one round
        trip on PostgreSQL, where psycopg pipelines it)."""
        if snapshots:
            cursor = raw.cursor()
            try:
                cursor.executemany(
                    self.sql.save_snapshot, list(map(self.snapshot_params, snapshots))
                )
            finally:
                cursor.close()

    def snapshot_row(self, plan_id: UUID, projection: str) -> Snapshot | None:
        """:meth:`load_snapshot` on its own (for tools and tests)."""
        self.check_schema()
        with translated(), self.database.connection() as raw:
            return self.load_snapshot(raw, plan_id, projection)

    def snapshot_plan_ids(self) -> list[UUID]:
        """Every plan with a snapshot (any projection), in id order."""
        self.check_schema()
        with translated(), self.database.connection() as raw:
            rows = raw.execute(
                "SELECT DISTINCT plan_id FROM eventsource_snapshots ORDER BY plan_id"
            ).fetchall()
        return [self.sql.decode_uuid(plan) for (plan,) in rows]

    # -- replay checkpoints ----------------------------------------------------

    def finished(self, run: str) -> set[UUID]:
        """The plans the named replay run has finished."""
        self.check_schema()
        with translated(), self.database.connection() as raw:
            rows = raw.execute(self.sql.progress_finished, {"run": run}).fetchall()
        return {self.sql.decode_uuid(plan) for (plan,) in rows}

    def mark_finished(self, raw: Raw, run: str, plan_ids: Sequence[UUID], now: datetime) -> None:
        """Record, with the plans' snapshots, that the run has finished them."""
        sql, stamp = self.sql, self.sql.timestamp(now)
        cursor = raw.cursor()
        try:
            cursor.executemany(
                sql.progress_done,
                [{"run": run, "plan": sql.uuid(plan), "now": stamp} for plan in plan_ids],
            )
        finally:
            cursor.close()

    def forget_run(self, run: str) -> None:
        """Drop a run's checkpoints (it finished, or restarts)."""
        self.check_schema()
        with translated(), self.database.transaction(write=True) as raw:
            raw.execute(self.sql.progress_forget, {"run": run})

    # -- quarantine ------------------------------------------------------------

    def quarantine_in(self, raw: Raw, failure: FoldFailed, now: datetime | None = None) -> None:
        """Record that ``failure``'s projection cannot fold its plan, in ``raw``'s
        transaction (again: ``attempts`` counts the tries of this version)."""
        raw.execute(self.sql.quarantine, self.quarantine_params(failure, now))

    def quarantine_failure(self, failure: FoldFailed) -> None:
        """:meth:`quarantine_in` in a transaction of its own."""
        self.check_schema()

        def record() -> None:
            with translated(), self.database.transaction(write=True) as raw:
                self.quarantine_in(raw, failure)

        with_retries(record)

    def release_in(self, raw: Raw, plan_id: UUID, projection: str) -> bool:
        """Take the plan out of quarantine (it folded); whether it was in."""
        cursor = raw.execute(self.sql.release, self.snapshot_key(plan_id, projection))
        return bool(cursor.rowcount)

    def quarantined_in(self, raw: Raw, plan_ids: Sequence[UUID]) -> set[tuple[UUID, str]]:
        """The (plan, projection) pairs in quarantine among ``plan_ids``."""
        if not plan_ids:
            return set()
        statement, params = self.quarantined_statement(plan_ids)
        return self.decode_quarantined(raw.execute(statement, params).fetchall())

    def quarantine(self, projection: str | None = None) -> list[QuarantineEntry]:
        """Every quarantined plan (of one projection), in plan order."""
        self.check_schema()
        sql = self.sql
        params = {} if projection is None else {"projection": projection}
        with translated(), self.database.connection() as raw:
            rows = raw.execute(sql.quarantine_rows(projection is not None), params).fetchall()
        return [
            QuarantineEntry(
                plan_id=sql.decode_uuid(plan),
                projection=name,
                projection_version=int(version),
                event_id=None if event is None else sql.decode_uuid(event),
                event_type=kind,
                error=error,
                first_seen=sql.decode_timestamp(first),
                last_seen=sql.decode_timestamp(last),
                attempts=int(attempts),
                unchanged=bool(unchanged),
            )
            for (plan, name, version, event, kind, error, first, last, attempts, unchanged) in rows
        ]


__all__ = ["QuarantineEntry", "Snapshot", "SnapshotRules", "SnapshotStore"]
