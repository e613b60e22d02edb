"""The change feed: which plans changed, recorded in the writing transaction.

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

from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .tables import plan_changes

__all__ = ["plan_changes", "record_change"]


def record_change(connection: Connection, plan_id: UUID, now: datetime) -> None:
    """Record, in the caller's transaction, that ``plan_id`` changed."""
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    statement = insert(plan_changes).values(plan_id=plan_id, change_seq=1, changed_at=now)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[plan_changes.c.plan_id],
            set_={"change_seq": plan_changes.c.change_seq + 1},
        )
    )
