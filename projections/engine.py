"""The engine: load, rebuild, snapshot, verify and replay plan states.

Loading a plan is its usable snapshot plus the events after the snapshot's
position; a snapshot is usable only for the same projection version and while no
write has landed at or before its position (the store marks it stale in the
writing transaction). No backfill or delete can slip in between the read that
produced a state and the write that stores it: on-demand snapshots, replays and
inline projections hold the plan's write lock (``EventStore.lock_plan``); workers
hold the plan's change-feed row, on which every writer blocks before it can
commit (see ``projections.worker``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Generic, TypeVar
from uuid import UUID

from sqlalchemy import Connection

from eventsource import (
    ConfigurationError,
    EventSourceError,
    FoldFailed,
    NoEventsAsOf,
    NonDeterministicProjection,
    RecordedEvent,
    Snapshot,
    StreamPosition,
    UnknownPlan,
    WriteNotice,
)
from eventsource.backend import with_retries
from eventsource.typing import ProjectionStore, Raw

from .fold import FoldResult, canonical_json, fold, fold_failed, handles, state_hash, to_event
from .typing import JSONValue, Projection

S = TypeVar("S")
log = logging.getLogger(__name__)

REPLAY_BATCH = 100
"""Plans rebuilt per replay transaction (and per checkpoint)."""


def nothing_to_load(
    plan_id: UUID, version: int, as_of: datetime | None, known_at: datetime | None
) -> UnknownPlan | None:
    """Why a load that found no live events has no state to return, if it has none:
    the plan has no events at all, or time travel went to before its first one (it
    did not exist yet then: no draft state is fabricated)."""
    if version == 0:
        return UnknownPlan(plan_id)
    if as_of is not None or known_at is not None:
        return NoEventsAsOf(plan_id, _moment(as_of, known_at))
    return None


def close_stream(events: Iterable[Any]) -> None:
    """End a streamed read early (a no-op for lists and exhausted streams)."""
    close = getattr(events, "close", None)
    if close is not None:
        close()


def _moment(as_of: datetime | None, known_at: datetime | None) -> str:
    parts = []
    if as_of is not None:
        parts.append(as_of.astimezone(UTC).isoformat().replace("+00:00", "Z"))
    if known_at is not None:
        parts.append(f"known at {known_at.astimezone(UTC).isoformat().replace('+00:00', 'Z')}")
    return ", ".join(parts)


def is_asynchronous(projection: Projection[Any]) -> bool:
    """Whether the projection's snapshots are maintained only by workers.

    A projection opts in with a class attribute ``asynchronous = True``. Loads still
    fold the tail after the worker's snapshot (nothing stale is served), but only
    workers store its snapshots: appends never pay for it.
    """
    return bool(getattr(projection, "asynchronous", False))


@dataclass(frozen=True)
class LoadedState(Generic[S]):
    """A plan's state and how the engine got it."""

    plan_id: UUID
    projection: str
    state: S
    json: JSONValue
    hash: str
    event_count: int
    """Live events covered (folded + skipped)."""
    skipped: dict[str, int]
    """Event types skipped during this load (not those before a snapshot)."""
    position: StreamPosition | None
    from_snapshot: bool
    tail: int
    """Events read after the snapshot (all of them when none was used)."""


@dataclass
class VerifyReport:
    plan_id: UUID
    first_hash: str
    second_hash: str
    snapshot_hash: str | None
    """Hash of snapshot + tail, when a usable snapshot exists."""
    snapshot_status: str  # "ok" | "missing" | "stale" | "other-version" | "differs"
    mutated_event: UUID | None = None
    """An event whose ``evolve`` changed the state it was given (an impure reducer)."""
    failure: FoldFailed | None = None
    """The event the projection cannot fold (status "unfoldable"; the plan is quarantined)."""

    @property
    def deterministic(self) -> bool:
        return self.first_hash == self.second_hash

    @property
    def pure(self) -> bool:
        return self.mutated_event is None

    @property
    def ok(self) -> bool:
        return (
            self.deterministic and self.pure and self.snapshot_status in ("ok", "missing", "stale")
        )


@dataclass
class ReplayReport:
    run: str
    rebuilt: int = 0
    skipped_done: int = 0
    plans: list[UUID] = field(default_factory=list)
    quarantined: list[FoldFailed] = field(default_factory=list)
    """Plans that failed to fold in this run (now in quarantine)."""
    still_quarantined: list[UUID] = field(default_factory=list)
    """Plans skipped: in quarantine, their events unchanged since they failed."""


def starting_point(
    projection: Projection[S], plan_id: UUID, start: Snapshot | None
) -> tuple[FoldResult[S], StreamPosition | None]:
    """Where a fold begins: the snapshot's state and position, or the initial state."""
    if start is not None:
        state = projection.from_json(start.state)
        return FoldResult(state=state, folded=start.event_count), start.position
    return FoldResult(state=projection.initial_state(plan_id)), None


def loaded_state(
    projection: Projection[S],
    plan_id: UUID,
    result: FoldResult[S],
    begin: FoldResult[S],
    after: StreamPosition | None,
    from_snapshot: bool,
) -> LoadedState[S]:
    """The outcome of a fold: state, canonical JSON, hash, counts and position."""
    skipped_total = sum(result.skipped.values())
    position = after if result.last is None else StreamPosition.of(result.last, projection.tie_rank)
    data = projection.to_json(result.state)
    return LoadedState(
        plan_id=plan_id,
        projection=projection.name,
        state=result.state,
        json=data,
        hash=state_hash(canonical_json(data)),
        event_count=result.folded + skipped_total,
        skipped=result.skipped,
        position=position,
        from_snapshot=from_snapshot,
        tail=result.folded - begin.folded + skipped_total,
    )


def snapshot_usable(
    snapshot: Snapshot | None, projection: Projection[Any], as_of: datetime | None
) -> bool:
    """Whether a load may start from ``snapshot``: fresh, this version, inside ``as_of``.

    The snapshot covers only events up to its position: valid for an as-of view
    that includes that whole prefix.
    """
    if snapshot is None or not snapshot.usable_for(projection.name, projection.version):
        return False
    if not snapshot_intact(snapshot):
        return False
    if as_of is None:
        return True
    return snapshot.position is not None and snapshot.position.occurred_at <= as_of


def snapshot_intact(snapshot: Snapshot) -> bool:
    """Whether the stored state still hashes to its ``state_hash``.

    A mismatch (a row altered outside the library, a corrupted page) is never
    served: the load folds the stream instead, a worker's refresh rebuilds the
    snapshot from scratch, and ``reconcile`` reports and queues it.
    """
    if state_hash(canonical_json(snapshot.state)) == snapshot.state_hash:
        return True
    log.warning(
        "snapshot of plan %s (%s v%d) does not match its state_hash: not served, refolded",
        snapshot.plan_id,
        snapshot.projection,
        snapshot.projection_version,
    )
    return False


def tail_is_whole_stream(snapshot: Snapshot | None, projection: Projection[Any]) -> bool:
    """Whether ``load_with_tail`` returned every live event (no usable snapshot to follow)."""
    return snapshot is None or not snapshot.usable_for(projection.name, projection.version)


def should_snapshot(
    snapshot_every: int | None,
    projection: Projection[Any],
    loaded: LoadedState[Any],
    *,
    as_of: datetime | None,
    known_at: datetime | None,
) -> bool:
    """Whether a load folded enough events after its snapshot to store a new one."""
    return (
        known_at is None
        and as_of is None
        and snapshot_every is not None
        and loaded.tail >= snapshot_every
        and not is_asynchronous(projection)
    )


def snapshot_of(projection: Projection[Any], loaded: LoadedState[Any]) -> Snapshot:
    """The snapshot row storing ``loaded``."""
    return Snapshot(
        plan_id=loaded.plan_id,
        projection=projection.name,
        projection_version=projection.version,
        state=loaded.json,
        state_hash=loaded.hash,
        event_count=loaded.event_count,
        position=loaded.position,
        stale=False,
        updated_at=datetime.now(UTC),
    )


def snapshot_status(snapshot: Snapshot | None, projection: Projection[Any]) -> str | None:
    """Why verify cannot compare a snapshot ("missing", ...), or None when it can."""
    if snapshot is None:
        return "missing"
    if snapshot.projection_version != projection.version:
        return "other-version"
    if snapshot.stale:
        return "stale"
    return None


def fresh_instance(projection: Projection[S]) -> Projection[S] | None:
    """A new instance of the projection's class, or None when none is the same projection.

    The class is called with no arguments (as the registry builds an entry point that
    names a class). The result must have the same name, version, handled types, tie
    rank and payload models, and equal values in every other attribute except mutable
    containers (dicts, lists, sets: where an instance keeps what it learns while
    folding, such as a memo). A projection configured through its constructor has no
    such twin. A new instance shares nothing with one that has folded before, except
    what its class or module keeps.
    """
    cls: Any = type(projection)
    try:
        twin: Projection[S] = cls()
    except Exception:  # needs arguments, or refuses to be built twice: no twin
        return None
    if (twin.name, twin.version, twin.handles) != (
        projection.name,
        projection.version,
        projection.handles,
    ) or (dict(twin.tie_rank), dict(twin.payload_models)) != (
        dict(projection.tie_rank),
        dict(projection.payload_models),
    ):
        return None
    mine, its = _settings(projection), _settings(twin)
    try:
        same = mine.keys() == its.keys() and all(
            mine[k] is its[k] or bool(mine[k] == its[k]) for k in mine
        )
    except Exception:  # a setting that cannot say whether it equals another
        same = False
    return twin if same else None


def _settings(projection: Projection[Any]) -> dict[str, Any]:
    """The instance's attributes but its mutable containers."""
    names = set(getattr(projection, "__dict__", {}))
    for cls in type(projection).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        names.update((slots,) if isinstance(slots, str) else slots)
    values = {name: getattr(projection, name, None) for name in names - {"__dict__", "__weakref__"}}
    return {k: v for k, v in values.items() if not isinstance(v, dict | list | set | bytearray)}


def fold_watching_inputs(
    projection: Projection[Any], plan_id: UUID, events: Iterable[RecordedEvent]
) -> tuple[str, UUID | None]:
    """A fold from scratch that notes the first event whose evolve mutated its input.

    The fold runs in a new instance of the projection when one can be built
    (:func:`fresh_instance`), so state the given instance keeps between folds (a
    cache or memo keyed by plan or event id) cannot make the two agree.
    """
    projection = fresh_instance(projection) or projection
    state = projection.initial_state(plan_id)
    mutated: UUID | None = None
    for recorded in events:
        if not handles(projection, recorded.event_type):
            continue
        before = canonical_json(projection.to_json(state))
        try:
            new_state = projection.evolve(state, to_event(projection, recorded))
        except Exception as exc:  # the reducer's, as in ``fold``
            raise fold_failed(projection, recorded, exc) from exc
        if mutated is None and canonical_json(projection.to_json(state)) != before:
            mutated = recorded.id
        state = new_state
    return state_hash(canonical_json(projection.to_json(state))), mutated


class ProjectionEngine:
    """Folds plans through projections, with snapshots.

    Args:
        store: the event store.
        snapshot_every: store a snapshot when a load folded at least this many
            events after the previous one (None: only on demand / inline).
        strict: raise on event types a projection does not handle.
    """

    def __init__(
        self,
        store: ProjectionStore,
        *,
        snapshot_every: int | None = 500,
        strict: bool = False,
    ) -> None:
        self.store = store
        self.snapshot_every = snapshot_every
        self.strict = strict

    # -- folding ------------------------------------------------------------

    def _fold_stream(
        self,
        projection: Projection[S],
        plan_id: UUID,
        *,
        raw: Raw | None = None,
        connection: Connection | None = None,
        start: Snapshot | None = None,
        tail: Iterable[RecordedEvent] | None = None,
        valid_at: datetime | None = None,
        known_at: datetime | None = None,
    ) -> LoadedState[S]:
        """Fold from ``start`` (or the initial state) over ``tail`` or a stream read."""
        begin, after = starting_point(projection, plan_id, start)
        ranks = projection.tie_rank
        if tail is not None:
            events: Iterable[RecordedEvent] = tail
        elif raw is not None:
            events = self.store.read_in(raw, plan_id, after=after, tie_rank=ranks)
        else:
            events = self.store.read(
                plan_id,
                after=after,
                tie_rank=ranks,
                valid_at=valid_at,
                known_at=known_at,
                connection=connection,
            )
        try:
            result = fold(projection, events, begin, strict=self.strict)
        finally:
            # A fold that raised mid-stream must end the read before the caller's
            # transaction does anything else (psycopg holds the connection while a
            # stream is open, so a ROLLBACK would wait on it for ever).
            close_stream(events)
        return loaded_state(projection, plan_id, result, begin, after, start is not None)

    def fold_from_scratch(
        self,
        projection: Projection[S],
        plan_id: UUID,
        *,
        valid_at: datetime | None = None,
        known_at: datetime | None = None,
        connection: Connection | None = None,
    ) -> LoadedState[S]:
        """Fold every live event of the plan, ignoring snapshots."""
        return self._fold_stream(
            projection, plan_id, valid_at=valid_at, known_at=known_at, connection=connection
        )

    def load(
        self,
        projection: Projection[S],
        plan_id: UUID,
        *,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
        use_snapshot: bool = True,
    ) -> LoadedState[S]:
        """The plan's state: snapshot + tail, or a time-travel fold.

        The snapshot and the events after it are read together, from one
        snapshot of the database (one round trip on PostgreSQL); without a
        usable snapshot the whole stream is read as one statement.

        Args:
            as_of: valid time: only events that occurred at or before it.
            known_at: record time: the events recorded by then and not retracted
                at that moment (what the system knew then).

        Raises:
            UnknownPlan: the plan has no events at all.
            NoEventsAsOf: time travel to before the plan's first event (an
                ``UnknownPlan``): it did not exist yet then.
            FoldFailed: the projection cannot fold one of the plan's events (the
                error names it and what to do).
        """
        loaded: LoadedState[S] | None = None
        if known_at is None and use_snapshot:
            ranks = tuple(sorted(projection.tie_rank.items()))
            snapshot, tail = self.store.load_with_tail(
                plan_id, projection.name, projection.version, ranks, valid_at=as_of
            )
            try:
                if snapshot_usable(snapshot, projection, as_of):
                    loaded = self._fold_stream(projection, plan_id, start=snapshot, tail=tail)
                elif tail_is_whole_stream(snapshot, projection):
                    loaded = self._fold_stream(projection, plan_id, tail=tail)
            finally:
                close_stream(tail)  # unread when neither: the stream is read anew
        if loaded is None:
            loaded = self._fold_stream(projection, plan_id, valid_at=as_of, known_at=known_at)
        if (
            should_snapshot(self.snapshot_every, projection, loaded, as_of=as_of, known_at=known_at)
            and use_snapshot
        ):
            self.snapshot(projection, plan_id)
        if loaded.event_count == 0:
            missing = nothing_to_load(plan_id, self.store.version(plan_id), as_of, known_at)
            if missing is not None:
                raise missing
        return loaded

    # -- snapshots ------------------------------------------------------------

    def refresh(
        self,
        connection: Connection,
        projection: Projection[S],
        plan_id: UUID,
        *,
        from_scratch: bool = False,
    ) -> LoadedState[S]:
        """Bring the plan's snapshot up to date inside the caller's write transaction.

        The caller holds the plan's write lock (``EventStore.lock_plan``). With
        ``from_scratch`` the stored snapshot is ignored and replaced.
        """
        return self.refresh_in(
            self.store.raw(connection), projection, plan_id, from_scratch=from_scratch
        )

    def refresh_in(
        self,
        raw: Raw,
        projection: Projection[S],
        plan_id: UUID,
        *,
        from_scratch: bool = False,
    ) -> LoadedState[S]:
        """:meth:`refresh` on the driver connection of the caller's transaction."""
        snapshot = None if from_scratch else self.store.load_snapshot(raw, plan_id, projection.name)
        usable = snapshot_usable(snapshot, projection, None)
        loaded = self._fold_stream(projection, plan_id, raw=raw, start=snapshot if usable else None)
        if usable and snapshot is not None and loaded.tail == 0:
            return loaded
        self.store.save_snapshot(raw, snapshot_of(projection, loaded))
        return loaded

    def snapshot(
        self, projection: Projection[S], plan_id: UUID, *, from_scratch: bool = False
    ) -> LoadedState[S]:
        """Store a fresh snapshot of the plan (on demand)."""

        def run() -> LoadedState[S]:
            with self.store.write_transaction() as connection:
                self.store.lock_plan(connection, plan_id)
                return self.refresh(connection, projection, plan_id, from_scratch=from_scratch)

        return with_retries(run)

    # -- verify and replay -------------------------------------------------

    def verify(self, projection: Projection[Any], plan_id: UUID) -> VerifyReport:
        """Fold from scratch twice and compare with each other and the snapshot.

        The second fold runs in a new instance of the projection (see
        :func:`fresh_instance`), so a reducer that remembers earlier folds (a memo by
        plan or event id serving a soft-deleted event's data) cannot agree with itself;
        it also checks that ``evolve`` leaves the state it was given unchanged (a
        reducer mutating its input can fold identically twice).
        Dependence on hash-seeded set order cannot be seen inside one process: use
        ``projections.testing.HashSeedCheck`` for that.
        """
        try:
            first = self.fold_from_scratch(projection, plan_id)
            second, mutated = self._fold_watching_inputs(projection, plan_id)
        except FoldFailed as failure:
            self.record_failure(failure)
            return VerifyReport(plan_id, "", "", None, "unfoldable", failure=failure)
        snapshot = self.store.snapshot_row(plan_id, projection.name)
        status: str | None = snapshot_status(snapshot, projection)
        snap_hash: str | None = None
        if status is None:
            via = self._fold_stream(projection, plan_id, start=snapshot)
            snap_hash = via.hash
            status = "ok" if via.hash == first.hash else "differs"
        return VerifyReport(plan_id, first.hash, second, snap_hash, status, mutated)

    def retry_quarantined(self, projection: Projection[Any], plan_id: UUID) -> FoldFailed | None:
        """Fold a quarantined plan from scratch again (after a fix): on success store
        its snapshot and release it, all in one transaction; else record the attempt
        and return the failure."""

        def run() -> None:
            with self.store.driver_transaction(write=True) as raw:
                self.store.lock_in(raw, plan_id, missing_ok=True)
                self.refresh_in(raw, projection, plan_id, from_scratch=True)
                self.store.release_in(raw, plan_id, projection.name)

        try:
            with_retries(run)
        except FoldFailed as failure:
            self.store.quarantine_failure(failure)
            return failure
        return None

    def record_failure(self, failure: FoldFailed) -> bool:
        """Quarantine the failing plan from a command that otherwise only reads.

        Best effort: a read-only role or a replica cannot record it, which is logged,
        and the command still reports the plan. Returns whether it was recorded.
        """
        try:
            self.store.quarantine_failure(failure)
        except EventSourceError as exc:
            log.warning("could not quarantine plan %s: %s", failure.plan_id, exc)
            return False
        return True

    def _fold_watching_inputs(
        self, projection: Projection[Any], plan_id: UUID
    ) -> tuple[str, UUID | None]:
        events = self.store.read(plan_id, tie_rank=projection.tie_rank)
        try:
            return fold_watching_inputs(projection, plan_id, events)
        finally:
            close_stream(events)

    def check_deterministic(self, projection: Projection[Any], plan_id: UUID) -> str:
        """Fold twice; return the hash.

        Raises:
            NonDeterministicProjection: the two folds differ.
        """
        report = self.verify(projection, plan_id)
        if not report.deterministic:
            raise NonDeterministicProjection(
                projection.name, plan_id, report.first_hash, report.second_hash
            )
        return report.first_hash

    def replay(
        self,
        projection: Projection[Any],
        plan_ids: Sequence[UUID] | None = None,
        *,
        run: str | None = None,
        restart: bool = False,
        progress: Callable[[int], None] | None = None,
        batch_size: int = REPLAY_BATCH,
    ) -> ReplayReport:
        """Rebuild snapshots from scratch for all plans (or the chosen ones).

        Plans are rebuilt ``batch_size`` to a transaction; each plan's snapshot
        and its checkpoint under the run's name are written in the same
        transaction, so an interrupted replay resumes after the last committed
        batch. A finished run forgets its checkpoints.
        """
        name = run or f"{projection.name}@{projection.version}"
        report = ReplayReport(run=name)
        if restart:
            with_retries(lambda: self.store.forget_run(name))
        done = with_retries(lambda: self.store.finished(name))
        targets: Iterable[UUID] = plan_ids if plan_ids is not None else self.store.plan_ids()
        # Quarantined plans whose events have not changed since they failed are
        # skipped; those whose events changed are tried again.
        entries = with_retries(lambda: self.store.quarantine(projection.name))
        held = {e.plan_id for e in entries if e.holds(projection.name, projection.version)}
        retried = {e.plan_id for e in entries} - held

        def rebuild(batch: list[UUID]) -> None:
            # One statement locks the batch's plans; each plan's stream is read
            # and folded; the snapshots and checkpoints go out together at the
            # end (one executemany each), in the same transaction.
            with self.store.driver_transaction(write=True) as raw:
                now = self.store.lock_all_in(raw, batch)
                fresh = []
                for plan in batch:
                    fresh.append(
                        snapshot_of(projection, self._fold_stream(projection, plan, raw=raw))
                    )
                    if plan in retried:
                        self.store.release_in(raw, plan, projection.name)
                self.store.save_snapshots(raw, fresh)
                self.store.mark_finished(raw, name, batch, now)

        def set_aside(failure: FoldFailed) -> None:
            # The batch rolled back; the failing plan is recorded (and counts as
            # done for this run), the rest of the batch is rebuilt again.
            with self.store.driver_transaction(write=True) as raw:
                now = self.store.lock_in(raw, failure.plan_id, missing_ok=True)
                self.store.quarantine_in(raw, failure, now)
                self.store.mark_finished(raw, name, [failure.plan_id], now)

        def rebuild_around_failures(batch: list[UUID]) -> None:
            while batch:
                try:
                    with_retries(partial(rebuild, batch))
                except FoldFailed as failure:
                    if failure.plan_id not in batch:
                        raise
                    with_retries(partial(set_aside, failure))
                    log.warning("%s", failure)
                    report.quarantined.append(failure)
                    batch = [plan for plan in batch if plan != failure.plan_id]
                    if progress is not None:
                        progress(1)
                    continue
                report.rebuilt += len(batch)
                report.plans.extend(batch)
                if progress is not None:
                    progress(len(batch))
                return

        batch: list[UUID] = []
        for plan_id in [*targets, None]:
            if plan_id is not None and plan_id in done:
                report.skipped_done += 1
                if progress is not None:
                    progress(1)
                continue
            if plan_id is not None and plan_id in held:
                report.still_quarantined.append(plan_id)
                if progress is not None:
                    progress(1)
                continue
            if plan_id is not None:
                batch.append(plan_id)
                if len(batch) < batch_size:
                    continue
            if not batch:
                continue
            rebuild_around_failures(batch)
            batch = []
        with_retries(lambda: self.store.forget_run(name))
        return report

    def pending_in_run(self, run: str) -> int:
        return len(self.store.finished(run))

    # -- history -------------------------------------------------------------

    def changes(
        self,
        projection: Projection[Any],
        plan_id: UUID,
        *,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
    ) -> Iterator[tuple[RecordedEvent, list[FieldChange]]]:
        """Each live event with what it changed in the state, oldest first.

        ``as_of`` and ``known_at`` choose the stream as :meth:`load` reads it.
        """
        state = projection.initial_state(plan_id)
        before = projection.to_json(state)
        events = self.store.read(
            plan_id, tie_rank=projection.tie_rank, valid_at=as_of, known_at=known_at
        )
        for event in events:
            result = fold(projection, [event], FoldResult(state=state), strict=False)
            state = result.state
            after = projection.to_json(state)
            yield event, diff(before, after)
            before = after


@dataclass(frozen=True)
class FieldChange:
    path: str
    before: JSONValue
    after: JSONValue


def diff(before: JSONValue, after: JSONValue, path: str = "") -> list[FieldChange]:
    """Field-by-field differences between two JSON values."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[FieldChange] = []
        for key in sorted(set(before) | set(after)):
            out += diff(before.get(key), after.get(key), f"{path}.{key}" if path else key)
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        out = []
        for index, (b, a) in enumerate(zip(before, after, strict=True)):
            label = a.get("stage", index) if isinstance(a, dict) else index
            out += diff(b, a, f"{path}[{label}]")
        return out
    return [] if before == after else [FieldChange(path, before, after)]


class InlineProjections:
    """A write hook keeping projections' snapshots current in the append's transaction.

    Register with ``EventStore(engine, hooks=[InlineProjections(engine, [...])])``
    (or ``store.hooks.append(...)``): a committed write is then visible in the
    plan's snapshot at once, and because writers to a plan are serialized, two
    concurrent appends never lose an update to its snapshot.
    """

    def __init__(self, engine: ProjectionEngine, projections: Sequence[Projection[Any]]) -> None:
        for projection in projections:
            if is_asynchronous(projection):
                raise ConfigurationError(
                    f"projection {projection.name!r} is asynchronous: its snapshots are "
                    "maintained only by workers (`eventsource worker`), not inline"
                )
        self.engine = engine
        self.projections = list(projections)

    def after_write(self, store: Any, connection: Connection, notice: WriteNotice) -> None:
        for projection in self.projections:
            self.engine.refresh(connection, projection, notice.plan_id)
