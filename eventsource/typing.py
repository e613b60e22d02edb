"""The small interfaces of the store's tiers, for the code built on them.

The projection engine and its workers depend on these protocols, not on
:class:`~eventsource.EventStore`: each names the few methods of one tier that a
caller needs, so another store (a test double, a replica reader) can stand in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import psycopg
from sqlalchemy import Connection

from .errors import FoldFailed
from .events import RecordedEvent
from .positions import StreamPosition
from .snapshots import QuarantineEntry, Snapshot

Raw = Any
"""A driver connection (``psycopg.Connection`` or ``sqlite3.Connection``) in a transaction."""


class StreamTier(Protocol):
    """Reading streams, and the transactions and locks that writers share."""

    def read(
        self,
        plan_id: UUID | str,
        *,
        after: StreamPosition | None = None,
        tie_rank: Mapping[str, int] | None = None,
        valid_at: datetime | None = None,
        known_at: datetime | None = None,
        page_size: int = ...,
        connection: Connection | None = None,
    ) -> Iterator[RecordedEvent]:
        """A plan's live events in stream order (see ``StreamStore.read``)."""
        ...

    def read_in(
        self,
        raw: Raw,
        plan_id: UUID,
        *,
        after: StreamPosition | None = None,
        tie_rank: Mapping[str, int] | None = None,
        page_size: int = ...,
    ) -> Iterator[RecordedEvent]:
        """:meth:`read` inside the caller's driver transaction."""
        ...

    def version(self, plan_id: UUID | str, *, connection: Connection | None = None) -> int:
        """How many rows the plan has stored, deleted ones included."""
        ...

    def plan_ids(self, *, page_size: int = ...) -> Iterator[UUID]:
        """Every plan with a stored row, in id order."""
        ...

    def raw(self, connection: Connection) -> Raw:
        """The driver connection under a SQLAlchemy one."""
        ...

    def write_transaction(self) -> AbstractContextManager[Connection]:
        """A SQLAlchemy connection in a write transaction."""
        ...

    def read_transaction(self) -> AbstractContextManager[Connection]:
        """A SQLAlchemy connection in a read transaction (one snapshot)."""
        ...

    def driver_transaction(self, *, write: bool) -> AbstractContextManager[Raw]:
        """A driver connection in a transaction."""
        ...

    def lock_plan(
        self, connection: Connection, plan_id: UUID, *, missing_ok: bool = ...
    ) -> datetime:
        """Serialize the plan's writers in the caller's transaction (the plan row on
        PostgreSQL, the host's lock; ``missing_ok`` tolerates a plan with no row)."""
        ...

    def lock_all_in(self, raw: Raw, plan_ids: Sequence[UUID]) -> datetime:
        """Lock every listed plan that has a row (replay's batch); the transaction's time."""
        ...

    def lock_in(self, raw: Raw, plan_id: UUID, *, missing_ok: bool = ...) -> datetime:
        """:meth:`lock_plan` on a driver connection."""
        ...


class FeedTier(Protocol):
    """The change feed: which plans changed, claimed by workers."""

    def record_change(self, raw: Raw, plan_id: UUID, now: datetime) -> None: ...

    def claim(self, raw: Raw, limit: int) -> list[tuple[UUID, int]]: ...

    def clear(self, raw: Raw, plan_id: UUID, change_seq: int) -> bool: ...

    def listen(self) -> psycopg.Connection[Any] | None:
        """A LISTENing connection, or None where the backend has none (poll)."""
        ...


class SnapshotTier(Protocol):
    """Snapshots and replay checkpoints."""

    def load_snapshot(self, raw: Raw, plan_id: UUID, projection: str) -> Snapshot | None: ...

    def snapshot_row(self, plan_id: UUID, projection: str) -> Snapshot | None: ...

    def load_with_tail(
        self,
        plan_id: UUID,
        projection: str,
        version: int,
        ranks: tuple[tuple[str, int], ...],
        *,
        valid_at: datetime | None = None,
    ) -> tuple[Snapshot | None, Iterator[RecordedEvent]]:
        """The snapshot, then its tail as a stream: consume it or ``close()`` it."""
        ...

    def save_snapshot(self, raw: Raw, snapshot: Snapshot) -> None: ...

    def save_snapshots(self, raw: Raw, snapshots: Sequence[Snapshot]) -> None: ...

    def snapshot_plan_ids(self) -> list[UUID]: ...

    def finished(self, run: str) -> set[UUID]: ...

    def mark_finished(
        self, raw: Raw, run: str, plan_ids: Sequence[UUID], now: datetime
    ) -> None: ...

    def forget_run(self, run: str) -> None: ...

    def quarantine_in(self, raw: Raw, failure: FoldFailed, now: datetime | None = None) -> None: ...

    def quarantine_failure(self, failure: FoldFailed) -> None: ...

    def release_in(self, raw: Raw, plan_id: UUID, projection: str) -> bool: ...

    def quarantined_in(self, raw: Raw, plan_ids: Sequence[UUID]) -> set[tuple[UUID, str]]: ...

    def quarantine(self, projection: str | None = None) -> list[QuarantineEntry]: ...


class ProjectionStore(StreamTier, SnapshotTier, Protocol):
    """What the projection engine needs: streams and snapshots."""


class WorkerStore(ProjectionStore, FeedTier, Protocol):
    """What a worker needs: the engine's tiers and the change feed."""


__all__ = ["FeedTier", "ProjectionStore", "Raw", "SnapshotTier", "StreamTier", "WorkerStore"]
