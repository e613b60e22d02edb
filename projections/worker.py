"""Asynchronous projections: workers draining the change feed, and reconcile.

A worker claims changed plans from ``eventsource_plan_changes`` with
``FOR UPDATE SKIP LOCKED``, re-folds each (snapshot + tail, or from scratch when
the snapshot is stale), stores the snapshots and deletes the claimed rows, all
in one transaction. ``eventsource.feed`` explains why that misses nothing; in
short: a claimed row stays locked until the worker commits, a writer to that
plan blocks on the row before it can commit, so the fold sees a stable stream,
and the writer's change re-queues the plan afterwards. A worker that dies
(SIGKILL, lost connection) holds no claims: its transaction rolls back, the
rows unlock, and another worker folds the plans, never twice into a snapshot
because the first fold's snapshot write was rolled back with it.

On PostgreSQL a trigger on the change table NOTIFYs ``eventsource_plan_changes``
at commit, waking idle workers at once; polling remains the fallback.
"""

from __future__ import annotations

import heapq
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from types import FrameType
from typing import Any, Final
from uuid import UUID

import psycopg
from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    case,
    func,
    literal,
    select,
    tuple_,
    update,
)

from eventsource.backend import with_retries
from eventsource.errors import EventSourceError, FoldFailed
from eventsource.events import same_json
from eventsource.feed import CHANNEL
from eventsource.render import counted
from eventsource.status import FeedLag, feed_lag
from eventsource.tables import events, snapshots
from eventsource.typing import WorkerStore

from .engine import ProjectionEngine, snapshot_intact
from .typing import Projection

STOP_CHECK_SECONDS: Final = 0.25
"""How often a worker waiting on LISTEN looks whether it was asked to stop."""
RECENT_PLANS: Final = 10_000
log = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    plans: int = 0
    batches: int = 0
    quarantined: int = 0
    """Plans set aside because a projection could not fold them (``FoldFailed``)."""
    claimed: deque[UUID] = field(default_factory=lambda: deque(maxlen=RECENT_PLANS))
    """The plans folded most recently, oldest first (bounded: workers run for months)."""


class FailedFolds:
    """One batch's folds that failed, so its retry skips them and goes on.

    Keyed by (plan, projection), each remembers the change it failed on: while that
    change is still the plan's newest the retried batch skips that projection (and
    still folds the plan's others); a newer change is tried again. I/O-free, shared
    by both workers.
    """

    def __init__(self) -> None:
        self.failed: dict[tuple[UUID, str], int] = {}
        self.claimed: dict[UUID, int] = {}

    def skips(self, plan_id: UUID, projection: str, change_seq: int) -> bool:
        return self.failed.get((plan_id, projection)) == change_seq

    def set_aside(self, failure: FoldFailed) -> bool:
        """Note the failure; False when the batch cannot go on without it (re-raise)."""
        seq = self.claimed.get(failure.plan_id)
        key = (failure.plan_id, failure.projection)
        if seq is None or self.failed.get(key) == seq:
            return False
        self.failed[key] = seq
        return True


class Worker:
    """Folds changed plans for the given (asynchronous) projections.

    Args:
        store: the event store.
        projections: the projections this worker maintains.
        batch_size: plans claimed per transaction.
        poll_interval: seconds between polls when no notification arrives.
        retry_attempts: reconnect attempts (with backoff) before giving up with
            :class:`~eventsource.errors.StoreUnavailable`.
    """

    def __init__(
        self,
        store: WorkerStore,
        projections: Sequence[Projection[Any]],
        *,
        batch_size: int = 20,
        poll_interval: float = 1.0,
        retry_attempts: int = 12,
        on_plan: Callable[[UUID], None] | None = None,
    ) -> None:
        self.store = store
        self.engine = ProjectionEngine(store, snapshot_every=None)
        self.projections = list(projections)
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.retry_attempts = retry_attempts
        self.on_plan = on_plan
        self.stats = WorkerStats()
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the worker to exit after the plan in hand (SIGTERM does this).

        The plans folded so far in the batch are committed; the rest of the batch
        stays queued for another worker.
        """
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def install_signal_handlers(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            log.info("signal %s: finishing the plan in hand, then exiting", signum)
            self.stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run_batch(self) -> int:
        """Claim, fold and clear one batch in one transaction; return plans done.

        The claimed change-feed row, not ``EventStore.lock_plan``, is what keeps
        the plan's stream still while it is folded: every library write upserts
        that row before it commits, so it waits for the claim. Taking the plan's
        lock (its ``course_designer_plans`` row) here as well would deadlock: a
        writer holds it while it waits for the row, and the worker would hold the
        row while it waited.
        """

        started = time.monotonic()
        folded = [0]  # events read per attempt, for the batch's log line
        failures = FailedFolds()

        def attempt() -> list[UUID]:
            done: list[UUID] = []
            folded[0] = 0
            failures.claimed.clear()
            with self.store.driver_transaction(write=True) as raw:
                claims = self.store.claim(raw, self.batch_size)
                held = self.store.quarantined_in(raw, [plan for plan, _ in claims])
                for plan_id, change_seq in claims:
                    if self.stopping:
                        # Commit what is folded; the unfolded claims end with it.
                        break
                    failures.claimed[plan_id] = change_seq
                    for projection in self.projections:
                        if failures.skips(plan_id, projection.name, change_seq):
                            continue
                        folded[0] += self.engine.refresh_in(raw, projection, plan_id).tail
                        if (plan_id, projection.name) in held:
                            self.store.release_in(raw, plan_id, projection.name)
                    self.store.clear(raw, plan_id, change_seq)
                    done.append(plan_id)
                    if self.on_plan is not None:
                        self.on_plan(plan_id)
            return done

        while True:
            try:
                done = with_retries(attempt, attempts=self.retry_attempts, max_delay=5.0)
            except FoldFailed as failure:
                # One plan's data must stop nobody: the batch rolled back; record
                # the plan in quarantine and fold the batch again without it.
                if not failures.set_aside(failure):
                    raise
                with_retries(
                    partial(self.store.quarantine_failure, failure),
                    attempts=self.retry_attempts,
                    max_delay=5.0,
                )
                self.stats.quarantined += 1
                log.warning(
                    "quarantined: %s",
                    failure,
                    extra={"plan_id": str(failure.plan_id), "event_id": str(failure.event_id)},
                )
                continue
            break
        if done:
            self.stats.batches += 1
            self.stats.plans += len(done)
            self.stats.claimed.extend(done)
            if log.isEnabledFor(logging.INFO):
                seconds = time.monotonic() - started
                try:
                    lag: FeedLag | None = feed_lag(self.store)
                except EventSourceError:  # the next batch retries; the log goes on
                    lag = None
                queued = None if lag is None else lag.queued
                lag_seconds = None if lag is None else lag.age_seconds(datetime.now(UTC))
                log.info(
                    "batch: folded %d plans (%d events) in %.3fs; %s plans queued, "
                    "oldest change %s",
                    len(done),
                    folded[0],
                    seconds,
                    "?" if queued is None else queued,
                    "none" if lag_seconds is None else f"{lag_seconds:.1f}s old",
                    extra={
                        "plans": len(done),
                        "events": folded[0],
                        "seconds": round(seconds, 6),
                        "queued": queued,
                        "lag_seconds": None if lag_seconds is None else round(lag_seconds, 3),
                    },
                )
        return len(done)

    def drain(self) -> int:
        """Run batches until the queue is empty (or stop is requested)."""
        total = 0
        batches = 0
        started = time.monotonic()
        while not self.stopping:
            count = self.run_batch()
            total += count
            batches += 1 if count else 0
            if count == 0:
                break
        if total:
            log.info(
                "drained: folded %d plans in %d batches in %.3fs%s",
                total,
                batches,
                time.monotonic() - started,
                "; stopped before the queue was empty" if self.stopping else "",
                extra={
                    "plans": total,
                    "batches": batches,
                    "seconds": round(time.monotonic() - started, 6),
                    "stopped": self.stopping,
                },
            )
        return total

    def run_forever(self) -> None:
        """Drain, then wait for a notification (PostgreSQL) or the poll interval.

        The worker LISTENs before it drains, so a change committed while it drains
        still wakes it. A lost LISTEN connection (a database restart) is opened
        again on the next round; until then the worker polls.
        """
        listener: psycopg.Connection[Any] | None = None
        try:
            while not self.stopping:
                if listener is None:
                    listener = self._listener()
                self.drain()
                if self.stopping:
                    break
                listener = self._wait(listener)
        finally:
            if listener is not None:
                listener.close()

    def _wait(self, listener: psycopg.Connection[Any] | None) -> psycopg.Connection[Any] | None:
        """Wait for a notification, the poll interval or a stop request.

        Waits in short slices: a signal handler only sets a flag, and psycopg
        resumes its wait after the handler, so one long wait would keep a
        SIGTERM waiting for the whole poll interval. Returns the listener, or
        None when its connection was lost.
        """
        if listener is None:
            self._stop.wait(self.poll_interval)
            return None
        deadline = time.monotonic() + self.poll_interval
        while not self.stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            woken = False
            try:
                for _ in listener.notifies(
                    timeout=min(remaining, STOP_CHECK_SECONDS), stop_after=1
                ):
                    woken = True
            except psycopg.Error as exc:
                log.warning("LISTEN connection lost (%s); polling until it is back", exc)
                listener.close()
                return None
            if woken:
                break
        return listener

    def _listener(self) -> psycopg.Connection[Any] | None:
        return self.store.listen()


@dataclass(frozen=True)
class Finding:
    plan_id: UUID
    projection: str
    reason: str
    queued: bool = True
    """False for a plan set aside in quarantine instead (it cannot be folded)."""


def reconcile(
    store: WorkerStore,
    projections: Sequence[Projection[Any]],
    *,
    plan_ids: Sequence[UUID] | None = None,
    deep: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[Finding]:
    """Queue plans whose snapshots disagree with their events; return what was found.

    Catches writes made outside the library (the host's own SQL), which bypass
    the change feed: a snapshot that is missing, stale, of another version,
    behind its events, or whose covered events changed (count or ``updated_at``).

    The ``updated_at`` comparison cannot see a host UPDATE whose transaction
    started before the snapshot was stored and committed after it (``now()`` is
    the transaction's start), nor one that sets ``updated_at`` itself on
    SQLite. ``deep`` also folds every plan from scratch and compares the result
    with its snapshot: it finds any difference, at the cost of reading every
    event.
    """
    findings: list[Finding] = []
    targets = plan_ids if plan_ids is not None else reconcile_targets(store)
    engine = ProjectionEngine(store, snapshot_every=None) if deep else None
    # A quarantined plan whose events have not changed would only fail again: it
    # is not queued (``eventsource quarantine`` lists and retries it).
    held = {
        (entry.plan_id, entry.projection)
        for projection in projections
        for entry in with_retries(partial(store.quarantine, projection.name))
        if entry.holds(projection.name, projection.version)
    }
    for plan_id in targets:
        reasons: dict[str, str] = {}
        with store.read_transaction() as connection:
            for projection in projections:
                if (plan_id, projection.name) in held:
                    continue
                try:
                    reason = _check(store, connection, projection, plan_id, engine)
                except FoldFailed as failure:
                    assert engine is not None  # only a deep check folds
                    engine.record_failure(failure)
                    findings.append(
                        Finding(plan_id, projection.name, f"quarantined: {failure}", queued=False)
                    )
                    continue
                if reason is not None:
                    reasons[projection.name] = reason
        if reasons:
            with_retries(partial(_queue, store, plan_id, list(reasons)))
            findings.extend(Finding(plan_id, name, why) for name, why in reasons.items())
        if progress is not None:
            progress(1)
    return findings


def reconcile_targets(store: WorkerStore, *, page_size: int = 1000) -> Iterator[UUID]:
    """Every plan with events or with a snapshot, in id order.

    A plan whose rows the host deleted outright has no events left but may
    still have a snapshot, which would be served: it must be checked too.
    """
    previous: UUID | None = None
    for plan_id in heapq.merge(store.plan_ids(page_size=page_size), _snapshot_plans(store)):
        if plan_id != previous:
            yield plan_id
            previous = plan_id


def _snapshot_plans(store: WorkerStore) -> Iterator[UUID]:
    yield from store.snapshot_plan_ids()


def _queue(store: WorkerStore, plan_id: UUID, projections: list[str]) -> None:
    with store.write_transaction() as connection:
        # A plan the host deleted outright has no row left to lock, nor writers.
        now = store.lock_plan(connection, plan_id, missing_ok=True)
        store.record_change(store.raw(connection), plan_id, now)
        # A snapshot whose covered events changed behind the library's back
        # must be re-folded from scratch, not extended.
        connection.execute(
            update(snapshots)
            .where(snapshots.c.plan_id == plan_id, snapshots.c.projection.in_(projections))
            .values(stale=True)
        )


def _rank_expression(tie_rank: Mapping[str, int]) -> ColumnElement[int]:
    """SQL for a projection's tie rank by event type (0 for unranked types)."""
    if not tie_rank:
        return literal(0)
    return case(dict(sorted(tie_rank.items())), value=events.c.event_type, else_=0)


def _check(
    store: WorkerStore,
    connection: Connection,
    projection: Projection[Any],
    plan_id: UUID,
    engine: ProjectionEngine | None = None,
) -> str | None:
    snapshot = store.load_snapshot(store.raw(connection), plan_id, projection.name)
    if snapshot is None:
        return "no snapshot"
    if snapshot.projection_version != projection.version:
        return f"snapshot of version {snapshot.projection_version}"
    if snapshot.stale:
        return "snapshot stale"
    if not snapshot_intact(snapshot):
        return "snapshot state does not match its state_hash (altered outside the library)"
    rank = _rank_expression(projection.tie_rank)
    position = snapshot.position
    covered: ColumnElement[bool]
    if position is None:
        covered = literal(False)
    else:
        covered = tuple_(events.c.occurred_at, events.c.created_at, rank, events.c.id) <= tuple_(
            literal(position.occurred_at, events.c.occurred_at.type),
            literal(position.created_at, events.c.created_at.type),
            literal(position.rank),
            literal(position.id, events.c.id.type),
        )
    live = events.c.deleted_at.is_(None)
    row = connection.execute(
        select(
            func.count().filter(and_(live, covered)),
            func.count().filter(and_(live, ~covered)),
            func.max(events.c.updated_at).filter(covered),
        ).where(events.c.course_designer_plan_id == plan_id)
    ).one()
    covered_count, after_count, last_update = row
    if covered_count != snapshot.event_count:
        return (
            f"snapshot covers {counted(snapshot.event_count, 'event')} but "
            f"{covered_count} are stored "
            "at or before its position (written outside the library)"
        )
    if after_count:
        return f"{counted(after_count, 'event')} after the snapshot"
    if last_update is not None and last_update > snapshot.updated_at:
        return "an event the snapshot covers was updated after it (outside the library)"
    if engine is not None:
        fresh = engine.fold_from_scratch(projection, plan_id, connection=connection)
        # By value, as jsonb keeps numbers (1e16 comes back as an integer).
        if fresh.hash != snapshot.state_hash or not same_json(fresh.json, snapshot.state):
            return "snapshot differs from a fresh fold of its events"
    return None


__all__ = [
    "CHANNEL",
    "FailedFolds",
    "Finding",
    "Worker",
    "WorkerStats",
    "reconcile",
    "reconcile_targets",
]
