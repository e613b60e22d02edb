"""An operator's view of a store: read-only queries behind ``eventsource status``.

What a person running workers asks: how many plans wait in the change feed and how
old the oldest change is (the workers' lag), how many snapshots each projection
version has fresh, stale or missing, which replay runs are in progress or were
interrupted, and (once quarantine exists) which plans are quarantined. Every query
runs in one read transaction, so the numbers agree with each other; nothing is
written. These are cold-path queries over the Core tables, the same on both
backends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, func, select

from .tables import events, plan_changes, quarantine, replay_progress, snapshots
from .typing import StreamTier


@dataclass(frozen=True, slots=True)
class FeedLag:
    """The change feed: plans waiting for the workers and the oldest change's age."""

    queued: int
    oldest_change_at: datetime | None

    def age_seconds(self, now: datetime) -> float | None:
        """How long the oldest queued change has waited (None when the queue is empty)."""
        if self.oldest_change_at is None:
            return None
        return max(0.0, (now - self.oldest_change_at).total_seconds())


@dataclass(frozen=True, slots=True)
class ProjectionSnapshots:
    """Snapshots of one projection against its current version, over plans with events."""

    projection: str
    version: int
    fresh: int
    """Of this version and not stale: served as they are."""
    stale: int
    """Of this version, marked stale by a write at or before their position."""
    other_version: int
    """Of another version of the projection: never served, refolded on load."""
    missing: int
    """Plans with events but no snapshot of this projection at all."""


@dataclass(frozen=True, slots=True)
class StoredSnapshots:
    """What is stored per projection and version, whatever is installed."""

    projection: str
    version: int
    fresh: int
    stale: int


@dataclass(frozen=True, slots=True)
class QuarantinedPlan:
    """A plan in quarantine: which projection failed on which event, and how often."""

    plan_id: Any
    projection: str
    projection_version: int
    event_id: Any
    event_type: str | None
    error: str
    attempts: int
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class ReplayRun:
    """A replay run with checkpoints: in progress, or interrupted (rerun to resume).

    A run that finishes forgets its checkpoints, so finished runs are not listed.
    """

    run: str
    plans_done: int
    first_finished_at: datetime
    last_finished_at: datetime


@dataclass(frozen=True, slots=True)
class StoreStatus:
    checked_at: datetime
    plans: int
    """Plans with at least one stored event."""
    feed: FeedLag
    projections: tuple[ProjectionSnapshots, ...]
    stored: tuple[StoredSnapshots, ...]
    replay_runs: tuple[ReplayRun, ...]
    quarantined: tuple[QuarantinedPlan, ...]
    """Plans a projection cannot fold, set aside (``eventsource quarantine``)."""


def feed_lag(store: StreamTier, connection: Connection | None = None) -> FeedLag:
    """The change feed's depth and its oldest change (one indexed query)."""
    if connection is None:
        with store.read_transaction() as own:
            return feed_lag(store, own)
    queued, oldest = connection.execute(
        select(func.count(), func.min(plan_changes.c.changed_at))
    ).one()
    return FeedLag(int(queued), oldest)


def _plans(connection: Connection) -> int:
    return int(
        connection.execute(
            select(func.count(func.distinct(events.c.course_designer_plan_id)))
        ).scalar_one()
    )


def _projection(connection: Connection, name: str, version: int) -> ProjectionSnapshots:
    with_events = select(events.c.course_designer_plan_id.label("plan_id")).distinct().subquery()
    mine = and_(snapshots.c.plan_id == with_events.c.plan_id, snapshots.c.projection == name)
    current = snapshots.c.projection_version == version
    fresh, stale, other, missing = connection.execute(
        select(
            func.count().filter(and_(current, snapshots.c.stale.is_(False))),
            func.count().filter(and_(current, snapshots.c.stale.is_(True))),
            func.count().filter(and_(snapshots.c.plan_id.is_not(None), ~current)),
            func.count().filter(snapshots.c.plan_id.is_(None)),
        ).select_from(with_events.outerjoin(snapshots, mine))
    ).one()
    return ProjectionSnapshots(name, version, int(fresh), int(stale), int(other), int(missing))


def _stored(connection: Connection) -> tuple[StoredSnapshots, ...]:
    rows = connection.execute(
        select(
            snapshots.c.projection,
            snapshots.c.projection_version,
            func.count().filter(snapshots.c.stale.is_(False)),
            func.count().filter(snapshots.c.stale.is_(True)),
        )
        .group_by(snapshots.c.projection, snapshots.c.projection_version)
        .order_by(snapshots.c.projection, snapshots.c.projection_version)
    ).all()
    return tuple(StoredSnapshots(p, int(v), int(f), int(s)) for p, v, f, s in rows)


def _runs(connection: Connection, limit: int) -> tuple[ReplayRun, ...]:
    last = func.max(replay_progress.c.finished_at)
    rows = connection.execute(
        select(
            replay_progress.c.run,
            func.count(),
            func.min(replay_progress.c.finished_at),
            last,
        )
        .group_by(replay_progress.c.run)
        .order_by(last.desc())
        .limit(limit)
    ).all()
    return tuple(ReplayRun(run, int(n), first, latest) for run, n, first, latest in rows)


def quarantined(connection: Connection) -> tuple[QuarantinedPlan, ...]:
    """Plans set aside by quarantine, in plan order."""
    q = quarantine.c
    rows = connection.execute(
        select(
            q.plan_id,
            q.projection,
            q.projection_version,
            q.event_id,
            q.event_type,
            q.error,
            q.attempts,
            q.last_seen,
        ).order_by(q.plan_id, q.projection)
    ).all()
    return tuple(QuarantinedPlan(*row) for row in rows)


def store_status(
    store: StreamTier, projections: Sequence[tuple[str, int]], *, runs: int = 10
) -> StoreStatus:
    """Everything ``eventsource status`` shows, from one read transaction.

    Args:
        projections: ``(name, version)`` of the projections installed now.
        runs: how many replay runs to list, most recent first.
    """
    with store.read_transaction() as connection:
        return StoreStatus(
            checked_at=datetime.now(UTC),
            plans=_plans(connection),
            feed=feed_lag(store, connection),
            projections=tuple(_projection(connection, n, v) for n, v in projections),
            stored=_stored(connection),
            replay_runs=_runs(connection, runs),
            quarantined=quarantined(connection),
        )


__all__ = [
    "FeedLag",
    "ProjectionSnapshots",
    "QuarantinedPlan",
    "ReplayRun",
    "StoreStatus",
    "StoredSnapshots",
    "feed_lag",
    "quarantined",
    "store_status",
]
