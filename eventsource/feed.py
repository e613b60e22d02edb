"""The change-feed tier: record, claim, clear, requeue and listen.

Why not poll the event table? ``created_at`` and ``updated_at`` are ``now()``,
the *start* of the writing transaction, and the spec'd table has no sequence
column. Transactions commit in an order unrelated to their start times: a
transaction that started at 10:00:00 and commits at 10:00:05 becomes visible
after one that started at 10:00:01 and committed at once. A consumer that
remembers "the newest created_at I have seen" (10:00:01) and asks for rows newer
than that never sees the 10:00:00 row: it is lost for good. Soft deletes and
restores are worse still, as they change rows the consumer already passed. A
database sequence has the same hole (values are taken at insert, not commit).

So every write through the store (append, backfill, soft delete, restore,
import) upserts the plan's row in ``eventsource_plan_changes`` inside its own
transaction, bumping ``change_seq``. The row becomes visible exactly when the
events do, and it names the plan rather than a point in time, so there is no
cursor to run past anything. A worker claims rows with ``FOR UPDATE SKIP
LOCKED`` (other workers skip claimed plans instead of waiting), re-folds the
plan, stores the snapshot and deletes the row only if ``change_seq`` is still
the one it claimed, all in one transaction. A write that lands while the plan is
being folded either committed before the claim (its change is in the fold) or
blocks on the claimed row and re-queues the plan once the worker commits: no
change is missed, and a crashed worker's claim dies with its transaction.
Writes made outside the library (the host's own SQL) bypass this table;
``reconcile`` finds them by comparing each plan's events with its snapshots.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

import psycopg

from .backend import translated, with_retries
from .config import libpq_params
from .database import Raw
from .streams import Bookkeeping, StreamRules, StreamStore

log = logging.getLogger(__name__)

CHANNEL: Final = "eventsource_plan_changes"
"""On PostgreSQL a trigger on the change table NOTIFYs this channel."""


class FeedRules(StreamRules):
    """The change feed's I/O-free half: every write also records its plan."""

    def _bookkeeping(
        self, plan_id: UUID, earliest: datetime | None, now: datetime | None
    ) -> Bookkeeping:
        # Before the snapshot tier's staleness update: see SnapshotRules._bookkeeping.
        record = (self.sql.record_change, self._change_params(plan_id, now))
        return [*super()._bookkeeping(plan_id, earliest, now), record]

    def _change_params(self, plan_id: UUID, now: datetime | None) -> dict[str, Any]:
        stamp = now or datetime.now(UTC)
        return {"plan": self.sql.uuid(plan_id), "now": self.sql.timestamp(stamp)}

    def decode_claims(self, rows: Iterable[Any]) -> list[tuple[UUID, int]]:
        return [(self.sql.decode_uuid(plan), int(seq)) for plan, seq in rows]


class ChangeFeedStore(FeedRules, StreamStore):
    """The stream tier plus the change feed: record, claim, clear, requeue, listen."""

    def record_change(self, raw: Raw, plan_id: UUID, now: datetime) -> None:
        """Record, in the caller's transaction, that ``plan_id`` changed."""
        raw.execute(self.sql.record_change, self._change_params(plan_id, now))

    def requeue(self, plan_ids: Iterable[UUID]) -> int:
        """Queue plans for the workers again (each in its own write transaction)."""
        count = 0
        for plan_id in plan_ids:

            def one(plan: UUID = plan_id) -> None:
                with self.write_transaction() as connection:
                    now = self.lock_plan(connection, plan, missing_ok=True)
                    self.record_change(self.raw(connection), plan, now)

            with_retries(one)
            count += 1
        return count

    def claim(self, raw: Raw, limit: int) -> list[tuple[UUID, int]]:
        """Claim up to ``limit`` changed plans, oldest change first, in ``raw``'s transaction.

        On PostgreSQL the rows stay locked (``FOR UPDATE SKIP LOCKED``) until the
        transaction ends: other workers skip them, writers wait for them.
        """
        return self.decode_claims(raw.execute(self.sql.claim, {"limit": limit}).fetchall())

    def clear(self, raw: Raw, plan_id: UUID, change_seq: int) -> bool:
        """Drop a claimed change, unless a write re-queued the plan since the claim."""
        cursor = raw.execute(self.sql.clear, {"plan": self.sql.uuid(plan_id), "seq": change_seq})
        return bool(cursor.rowcount)

    def queued(self) -> int:
        """How many plans wait in the feed."""
        with translated(), self.database.connection() as raw:
            (count,) = raw.execute("SELECT count(*) FROM eventsource_plan_changes").fetchone()
        return int(count)

    def listen(self) -> psycopg.Connection[Any] | None:
        """A connection LISTENing on the feed's channel (PostgreSQL), else None.

        Callers poll when this is None, and open it again when it is lost.
        """
        if not self.sql.supports_skip_locked:
            return None
        # The engine's own connection parameters; LISTEN channels are per database.
        params = {"connect_timeout": 5, **libpq_params(self.engine.url)}  # the URL's wins
        try:
            conn = psycopg.connect(autocommit=True, **params)
        except psycopg.Error as exc:
            log.warning("LISTEN unavailable (%s); polling instead", exc)
            return None
        try:
            conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            conn.close()
            log.warning("LISTEN failed (%s); polling instead", exc)
            return None
        return conn


__all__ = ["CHANNEL", "ChangeFeedStore", "FeedRules"]
