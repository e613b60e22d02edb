"""Reusable determinism properties: each takes any projection and a list of rows.

The rows are :class:`~eventsource.events.RecordedEvent` values as the store holds
them (deleted ones included, in any order). Everything here runs in memory: the
engine's stream order is simulated with :func:`live_stream` (``occurred_at``, then
``created_at``, then the projection's tie rank, then ``id``, live rows only), and
its snapshots with a small model (:class:`IncrementalModel`) that, like the
engine, keeps a snapshot per plan, folds only the tail after it, and refolds from
scratch when a write lands at or before the snapshot's position.

:func:`check_no_hidden_state` also needs new instances of the projection: by
default its class called with no arguments; pass ``fresh`` (a function returning
one) for a projection built with arguments.

Each ``check_*`` raises :class:`PropertyViolation` (an ``AssertionError``) saying
what differed and where. Inside a Hypothesis test it also records, with
``hypothesis.note``, a regression test for the failing example that can be pasted
into a test module as it is.

A reducer that depends on the iteration order of sets of strings is invisible to
in-process checks (one process has one hash seed): see
:mod:`projections.testing.hashseed`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NoReturn
from uuid import UUID

import orjson
from hypothesis import note
from hypothesis.control import currently_in_test_context

from eventsource.events import RecordedEvent

from ..engine import diff, fresh_instance
from ..fold import FoldResult, canonical_json, fold, sort_key, to_event
from ..typing import Projection

__all__ = [
    "IncrementalModel",
    "PropertyViolation",
    "check_all",
    "check_backfill_equivalent",
    "check_delete_restore_noop",
    "check_evolve_pure",
    "check_insertion_order_independent",
    "check_no_hidden_state",
    "check_replay_deterministic",
    "check_snapshot_plus_tail",
    "check_snapshot_round_trip",
    "instance_factory",
    "live_stream",
    "plan_ids",
    "regression_test",
    "replay",
    "round_trip",
]


class PropertyViolation(AssertionError):
    """A determinism property does not hold for this projection and these events.

    Attributes:
        check: the name of the check that failed.
    """

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check


# --- The engine's order and fold, in memory ----------------------------------------


def plan_ids(events: Iterable[RecordedEvent]) -> list[UUID]:
    """The plans the rows belong to, in id order."""
    return sorted({e.plan_id for e in events})


def live_stream(
    projection: Projection[Any],
    events: Iterable[RecordedEvent],
    plan_id: UUID,
    *,
    valid_at: datetime | None = None,
    known_at: datetime | None = None,
) -> list[RecordedEvent]:
    """The plan's events that count, in the engine's stream order.

    Args:
        valid_at: only events that occurred at or before it.
        known_at: the events recorded by then and not deleted at that moment, as far
            as the rows tell (a row holds only its current ``deleted_at``, so a
            deletion that was later restored is not seen).
    """
    rows = [e for e in events if e.plan_id == plan_id]
    if known_at is None:
        rows = [e for e in rows if e.deleted_at is None]
    else:
        rows = [
            e
            for e in rows
            if e.created_at <= known_at and (e.deleted_at is None or e.deleted_at > known_at)
        ]
    if valid_at is not None:
        rows = [e for e in rows if e.occurred_at <= valid_at]
    return sorted(rows, key=sort_key(projection))


def _encode(projection: Projection[Any], state: Any) -> bytes:
    return canonical_json(projection.to_json(state))


def replay(
    projection: Projection[Any],
    events: Iterable[RecordedEvent],
    plan_id: UUID,
    *,
    valid_at: datetime | None = None,
    known_at: datetime | None = None,
) -> bytes:
    """The canonical JSON of a fold from scratch of the plan's live stream."""
    stream = live_stream(projection, events, plan_id, valid_at=valid_at, known_at=known_at)
    start = FoldResult(state=projection.initial_state(plan_id))
    return _encode(projection, fold(projection, stream, start).state)


def round_trip(projection: Projection[Any], state: Any) -> Any:
    """A state through a snapshot: ``to_json``, canonical bytes, parse, ``from_json``."""
    return projection.from_json(orjson.loads(_encode(projection, state)))


# --- Failure reports ----------------------------------------------------------


def regression_test(
    check: str,
    projection: Projection[Any] | str,
    events: Sequence[RecordedEvent],
    **arguments: Any,
) -> str:
    """Python source of a test that reproduces a failing check, ready to paste.

    ``projection`` is the projection (built in the test as ``ItsClass()``) or, for
    checks that take one, its ``"module:attribute"`` path.
    """
    lines = [
        "# Regression test for this failure (paste into a test module):",
        "import datetime",
        "from uuid import UUID",
        "",
        "from eventsource.events import RecordedEvent",
        f"from projections.testing import {check}",
    ]
    if isinstance(projection, str):
        built = repr(projection)
    else:
        cls = type(projection)
        top = cls.__qualname__.split(".")[0]
        local = (
            "  # defined in a function: build it as the test does"
            if "<locals>" in cls.__qualname__
            else ""
        )
        lines.append(f"from {cls.__module__} import {top}{local}")
        built = f"{cls.__qualname__}()"
    lines += [
        "",
        "",
        f"def test_{check.removeprefix('check_')}_regression() -> None:",
        "    events = [",
        *(f"        {event!r}," for event in events),
        "    ]",
    ]
    extra = "".join(f", {name}={value!r}" for name, value in arguments.items())
    lines.append(f"    {check}({built}, events{extra})")
    return "\n".join(lines)


def _fail(
    check: str,
    projection: Projection[Any] | str,
    events: Sequence[RecordedEvent],
    message: str,
    **arguments: Any,
) -> NoReturn:
    if currently_in_test_context():
        note(regression_test(check, projection, events, **arguments))
    raise PropertyViolation(check, message)


def _differences(first: bytes, second: bytes) -> str:
    changes = diff(orjson.loads(first), orjson.loads(second))
    shown = "; ".join(f"{c.path or 'state'}: {c.before!r} != {c.after!r}" for c in changes[:3])
    more = f" (and {len(changes) - 3} more)" if len(changes) > 3 else ""
    return (shown or f"{first[:200]!r} != {second[:200]!r}") + more


# --- The properties -------------------------------------------------------------


def check_replay_deterministic(
    projection: Projection[Any], events: Sequence[RecordedEvent], *, runs: int = 2
) -> None:
    """Replaying the same events gives identical bytes, every time.

    Catches reducers that read the clock, use randomness, or mutate state shared
    between folds (a module-level initial state, say).

    Raises:
        PropertyViolation: two replays of a plan differ.
    """
    for plan_id in plan_ids(events):
        first = replay(projection, events, plan_id)
        for run in range(1, runs):
            again = replay(projection, events, plan_id)
            if again != first:
                _fail(
                    "check_replay_deterministic",
                    projection,
                    events,
                    f"replay {run + 1} of plan {plan_id} differs from replay 1: "
                    f"{_differences(first, again)}. A reducer must not read the "
                    "clock, use randomness, or change state that outlives a fold",
                )


def instance_factory(
    projection: Projection[Any], fresh: Callable[[], Projection[Any]] | None = None
) -> Callable[[], Projection[Any]]:
    """A function returning a new instance of ``projection`` at every call.

    ``fresh`` when given; otherwise the projection's class called with no arguments,
    provided that builds the same projection (see
    :func:`projections.engine.fresh_instance`: the same name, version, handled
    types, tie rank, payload models and other settings).

    Raises:
        ValueError: no ``fresh``, and the class cannot build the same projection.
    """
    if fresh is not None:
        return fresh
    if fresh_instance(projection) is None:
        name = type(projection).__qualname__
        raise ValueError(
            f"{name}() does not build the projection given (it needs arguments, or its "
            "name, version, handles, tie rank, payload models or other settings differ), "
            "so no new instance can be made: pass fresh=, a function returning one "
            f"(fresh=lambda: {name}(...))"
        )

    # Checked once: later, the given instance may have learned things the new ones
    # have not (that is what the hidden-state check is for).
    cls: Callable[[], Projection[Any]] = type(projection)
    return cls


def check_no_hidden_state(
    projection: Projection[Any],
    events: Sequence[RecordedEvent],
    *,
    fresh: Callable[[], Projection[Any]] | None = None,
) -> None:
    """A state depends on its plan's events only, never on what the instance folded before.

    One instance folds every plan's live stream; then, for each plan, the stream with
    each of its events soft-deleted in turn, and each of its shorter prefixes (the
    plan as it was earlier); then every full stream again. Each state must equal the
    state a new instance folds from the same events, and a prefix's state the one the
    first fold had after those events.

    Catches reducers that keep something outside the state they return: a memo or
    cache by plan id or event id (after a soft delete it serves the deleted event's
    data), or by anything another plan's events set. A cache on the class or in a
    module is shared by the new instances too: only the prefix comparison sees it,
    and only what it accumulates. It also outlives the example, so Hypothesis may
    find it flaky, and a regression test reproduces it in a new process.

    Args:
        fresh: returns a new instance of the projection (default: its class, called
            with no arguments; see :func:`instance_factory`).

    Raises:
        PropertyViolation: a state differs.
        ValueError: no ``fresh``, and the class cannot build the same projection.
    """
    make = instance_factory(projection, fresh)
    used = make()
    history: list[str] = []

    def fold_on(instance: Projection[Any], stream: Sequence[RecordedEvent], plan_id: UUID) -> bytes:
        start = FoldResult(state=instance.initial_state(plan_id))
        return _encode(instance, fold(instance, stream, start).state)

    def step_by_step(stream: Sequence[RecordedEvent], plan_id: UUID) -> list[bytes]:
        state = used.initial_state(plan_id)
        states = [_encode(used, state)]
        for recorded in stream:
            state = fold(used, [recorded], FoldResult(state=state)).state
            states.append(_encode(used, state))
        return states

    def expect(plan_id: UUID, what: str, got: bytes, expected: bytes, baseline: str) -> None:
        if got != expected:
            before = "; ".join(history[-3:]) or "nothing"
            if len(history) > 3:
                before = f"{len(history) - 3} earlier fold(s); {before}"
            _fail(
                "check_no_hidden_state",
                projection,
                events,
                f"plan {plan_id}: folding {what} on an instance that had folded [{before}] "
                f"gives a state that differs from {baseline}: {_differences(expected, got)}. "
                "A reducer must keep nothing between folds (no memo or cache by plan or "
                "event id, on the instance, its class or its module): the state it returns "
                "is all it may remember",
            )
        history.append(f"{what} of plan {plan_id}")

    streams = {plan_id: live_stream(projection, events, plan_id) for plan_id in plan_ids(events)}
    first: dict[UUID, list[bytes]] = {}
    for plan_id, stream in streams.items():
        first[plan_id] = step_by_step(stream, plan_id)
        expect(
            plan_id,
            f"the {len(stream)} event(s)",
            first[plan_id][-1],
            fold_on(make(), stream, plan_id),
            "a new instance's fold",
        )
    for plan_id, stream in streams.items():
        for index, deleted in enumerate(stream):
            rest = [*stream[:index], *stream[index + 1 :]]
            expect(
                plan_id,
                f"the events but event {index} ({deleted.event_type}, {deleted.id}, soft-deleted)",
                fold_on(used, rest, plan_id),
                fold_on(make(), rest, plan_id),
                "a new instance's fold",
            )
        for cut in range(len(stream)):
            expect(
                plan_id,
                f"the first {cut} event(s)",
                fold_on(used, stream[:cut], plan_id),
                first[plan_id][cut],
                f"the state its first fold had after {cut} event(s)",
            )
    for plan_id, stream in streams.items():
        expect(
            plan_id,
            f"the {len(stream)} event(s) again",
            fold_on(used, stream, plan_id),
            first[plan_id][-1],
            "its first fold",
        )


def check_snapshot_round_trip(projection: Projection[Any], events: Sequence[RecordedEvent]) -> None:
    """Every state the fold passes through survives its JSON round trip unchanged.

    Raises:
        PropertyViolation: ``from_json(to_json(state))`` encodes differently.
    """
    for plan_id in plan_ids(events):
        state = projection.initial_state(plan_id)
        stream = live_stream(projection, events, plan_id)
        for index in range(len(stream) + 1):
            encoded = _encode(projection, state)
            again = _encode(projection, round_trip(projection, state))
            if again != encoded:
                _fail(
                    "check_snapshot_round_trip",
                    projection,
                    events,
                    f"plan {plan_id}, after {index} event(s): the state changes through "
                    f"to_json/from_json: {_differences(encoded, again)}",
                )
            if index < len(stream):
                state = fold(projection, [stream[index]], FoldResult(state=state)).state


def check_snapshot_plus_tail(projection: Projection[Any], events: Sequence[RecordedEvent]) -> None:
    """A snapshot taken at any cut, plus the events after it, equals a full fold.

    Raises:
        PropertyViolation: some cut gives a different state.
    """
    for plan_id in plan_ids(events):
        stream = live_stream(projection, events, plan_id)
        full = replay(projection, events, plan_id)
        state = projection.initial_state(plan_id)
        for cut in range(len(stream) + 1):
            resumed = fold(
                projection, stream[cut:], FoldResult(state=round_trip(projection, state))
            )
            got = _encode(projection, resumed.state)
            if got != full:
                _fail(
                    "check_snapshot_plus_tail",
                    projection,
                    events,
                    f"plan {plan_id}: a snapshot after {cut} of {len(stream)} event(s) plus "
                    f"the tail differs from a full fold: {_differences(full, got)}",
                )
            if cut < len(stream):
                state = fold(projection, [stream[cut]], FoldResult(state=state)).state


def check_evolve_pure(projection: Projection[Any], events: Sequence[RecordedEvent]) -> None:
    """``evolve`` never changes the state it was given.

    Raises:
        PropertyViolation: a state's JSON changed when ``evolve`` was applied to it.
    """
    for plan_id in plan_ids(events):
        state = projection.initial_state(plan_id)
        for index, recorded in enumerate(live_stream(projection, events, plan_id)):
            if projection.handles is not None and recorded.event_type not in projection.handles:
                continue
            before = _encode(projection, state)
            following = projection.evolve(state, to_event(projection, recorded))
            after = _encode(projection, state)
            if after != before:
                _fail(
                    "check_evolve_pure",
                    projection,
                    events,
                    f"plan {plan_id}: evolve changed the state it was given at event {index} "
                    f"({recorded.event_type}, {recorded.id}): "
                    f"{_differences(before, after)}; return a new state instead",
                )
            state = following


@dataclass
class _PlanModel:
    snapshot: bytes | None = None
    position: tuple[Any, ...] | None = None


@dataclass
class IncrementalModel:
    """The engine's snapshot logic, in memory, for one projection.

    Rows are written in batches; after each write every touched plan is loaded
    like ``ProjectionEngine.load`` with inline snapshots: from its snapshot plus
    the tail when the snapshot is still usable, from scratch when a write landed
    at or before the snapshot's position; then the snapshot is replaced. Snapshots
    are kept as canonical JSON bytes, so every load also goes through the round trip.
    """

    projection: Projection[Any]
    rows: dict[UUID, RecordedEvent] = field(default_factory=dict)
    plans: dict[UUID, _PlanModel] = field(default_factory=dict)
    refolds: int = 0
    """Loads that found their snapshot stale and folded from scratch."""

    def _key(self, event: RecordedEvent) -> tuple[Any, ...]:
        return tuple(sort_key(self.projection)(event))

    def _touch(self, plan_id: UUID, keys: Iterable[tuple[Any, ...]]) -> None:
        model = self.plans.setdefault(plan_id, _PlanModel())
        if model.position is not None and any(k <= model.position for k in keys):
            model.snapshot = model.position = None  # stale
            self.refolds += 1
        self.load(plan_id)

    def write(self, batch: Iterable[RecordedEvent]) -> None:
        """Insert rows (or replace rows with the same id: deletes, restores)."""
        touched: dict[UUID, list[tuple[Any, ...]]] = {}
        for event in batch:
            previous = self.rows.get(event.id)
            self.rows[event.id] = event
            keys = touched.setdefault(event.plan_id, [])
            if event.deleted_at is None or (previous is not None and previous.deleted_at is None):
                keys.append(self._key(event))
        for plan_id, keys in touched.items():
            self._touch(plan_id, keys)

    def load(self, plan_id: UUID) -> bytes:
        """The plan's state as the model serves it (and the new snapshot)."""
        model = self.plans.setdefault(plan_id, _PlanModel())
        stream = live_stream(self.projection, self.rows.values(), plan_id)
        if model.snapshot is not None and model.position is not None:
            state = self.projection.from_json(orjson.loads(model.snapshot))
            tail = [e for e in stream if self._key(e) > model.position]
        else:
            state = self.projection.initial_state(plan_id)
            tail = stream
        state = fold(self.projection, tail, FoldResult(state=state)).state
        model.snapshot = _encode(self.projection, state)
        if stream:
            model.position = self._key(stream[-1])
        return model.snapshot


def _reordered(events: Sequence[RecordedEvent], order: Sequence[int] | None) -> list[RecordedEvent]:
    if order is None:
        return list(events)
    if sorted(order) != list(range(len(events))):
        raise ValueError(f"order must be a permutation of range({len(events)}), got {order!r}")
    return [events[i] for i in order]


def _batches(events: list[RecordedEvent], sizes: Sequence[int]) -> list[list[RecordedEvent]]:
    batches, rest = [], events
    for size in sizes:
        if size < 1:
            raise ValueError(f"batch sizes must be at least 1, got {size}")
        if rest:
            batches.append(rest[:size])
            rest = rest[size:]
    if rest:
        batches.append(rest)
    return batches


def check_insertion_order_independent(
    projection: Projection[Any],
    events: Sequence[RecordedEvent],
    *,
    order: Sequence[int] | None = None,
    batch_sizes: Sequence[int] = (),
) -> None:
    """Rows written in any order, in any batches, give the state of a full fold.

    The rows keep their columns (``created_at`` included, as an import keeps
    them); only the order and grouping of the writes change. After each batch the
    :class:`IncrementalModel` serves every touched plan from its snapshot when it
    can, so this also checks that snapshot + tail agrees with a refold.

    Args:
        order: a permutation of ``range(len(events))``: the write order.
        batch_sizes: sizes of the first batches; the rest is one last batch.

    Raises:
        PropertyViolation: a plan's final state differs from a full fold.
        ValueError: ``order`` is not a permutation or a size is below 1.
    """
    model = IncrementalModel(projection)
    for batch in _batches(_reordered(events, order), batch_sizes):
        model.write(batch)
    for plan_id in plan_ids(events):
        full = replay(projection, events, plan_id)
        got = model.load(plan_id)
        if got != full:
            _fail(
                "check_insertion_order_independent",
                projection,
                events,
                f"plan {plan_id}: written in order {list(order or range(len(events)))} in "
                f"batches {list(batch_sizes)}, the state differs from a full fold: "
                f"{_differences(full, got)}",
                order=None if order is None else list(order),
                batch_sizes=list(batch_sizes),
            )


def check_backfill_equivalent(
    projection: Projection[Any], events: Sequence[RecordedEvent], *, late: Collection[UUID]
) -> None:
    """Events recorded late (a backfill) give the state of having appended them in order.

    ``events`` are the rows as appended in order. The rows named in ``late`` are
    instead recorded by one later import (``created_at`` after every other row,
    ``occurred_at`` kept), written after all the others through the
    :class:`IncrementalModel`, whose snapshots they land before. The result must
    equal a full fold of the backfilled rows, and, whenever the backfill leaves the
    stream order unchanged (no ``occurred_at`` tie with an earlier-recorded row),
    the in-order state.

    Raises:
        PropertyViolation: either comparison fails.
    """
    if not events:
        return
    imported_at = max(e.created_at for e in events) + timedelta(seconds=1)

    def backfilled(event: RecordedEvent) -> RecordedEvent:
        shift = imported_at - event.created_at
        return event._replace(
            created_at=imported_at,
            updated_at=event.updated_at + shift,
            deleted_at=None if event.deleted_at is None else event.deleted_at + shift,
        )

    on_time = [e for e in events if e.id not in late]
    recorded_late = [backfilled(e) for e in events if e.id in late]
    rows = on_time + recorded_late
    model = IncrementalModel(projection)
    for event in sorted(on_time, key=lambda e: e.created_at):
        model.write([event])
    model.write(recorded_late)
    for plan_id in plan_ids(events):
        got = model.load(plan_id)
        full = replay(projection, rows, plan_id)
        same_order = [e.id for e in live_stream(projection, rows, plan_id)] == [
            e.id for e in live_stream(projection, events, plan_id)
        ]
        comparisons = [(full, "a full fold")]
        if same_order:
            comparisons.append((replay(projection, events, plan_id), "appending in order"))
        for expected, what in comparisons:
            if got != expected:
                _fail(
                    "check_backfill_equivalent",
                    projection,
                    events,
                    f"plan {plan_id}: backfilling {len(recorded_late)} event(s) differs from "
                    f"{what}: {_differences(expected, got)}",
                    late=sorted(late),
                )


def check_delete_restore_noop(
    projection: Projection[Any], events: Sequence[RecordedEvent], *, retract: Collection[UUID]
) -> None:
    """Soft-deleting live events and restoring them changes nothing.

    Through the :class:`IncrementalModel`: all rows, then the ``retract`` events
    deleted (their plans' snapshots become stale), then restored. The state while
    deleted must equal a fold without them, and after the restore the original
    bytes. Ids of rows that are not live are ignored.

    Raises:
        PropertyViolation: a state differs.
    """
    by_id = {e.id: e for e in events}
    targets = [by_id[i] for i in retract if i in by_id and by_id[i].deleted_at is None]
    if not targets:
        return
    model = IncrementalModel(projection)
    model.write(sorted(events, key=lambda e: e.created_at))
    before = {plan_id: model.load(plan_id) for plan_id in plan_ids(events)}
    at = max(e.updated_at for e in events) + timedelta(seconds=1)
    deleted = [e._replace(deleted_at=at, updated_at=at) for e in targets]
    model.write(deleted)
    restored = [e._replace(deleted_at=None, updated_at=at + timedelta(seconds=1)) for e in targets]
    without = [e for e in events if e.id not in {t.id for t in targets}]
    for plan_id in plan_ids(deleted):
        expected, got = replay(projection, without, plan_id), model.load(plan_id)
        if got != expected:
            _fail(
                "check_delete_restore_noop",
                projection,
                events,
                f"plan {plan_id}: with {len(targets)} event(s) deleted the state differs from "
                f"a fold without them: {_differences(expected, got)}",
                retract=sorted(retract),
            )
    model.write(restored)
    for plan_id, original in before.items():
        got = model.load(plan_id)
        if got != original:
            _fail(
                "check_delete_restore_noop",
                projection,
                events,
                f"plan {plan_id}: deleting then restoring changed the state: "
                f"{_differences(original, got)}",
                retract=sorted(retract),
            )


def check_all(
    projection: Projection[Any],
    events: Sequence[RecordedEvent],
    *,
    order: Sequence[int] | None = None,
    batch_sizes: Sequence[int] = (),
    late: Collection[UUID] = (),
    retract: Collection[UUID] = (),
    fresh: Callable[[], Projection[Any]] | None = None,
) -> None:
    """Every in-memory property of this module, for one stream.

    ``fresh`` is for :func:`check_no_hidden_state`.

    Raises:
        PropertyViolation: the first property that fails.
        ValueError: no ``fresh``, and the projection's class cannot build it.
    """
    check_evolve_pure(projection, events)
    check_replay_deterministic(projection, events)
    check_no_hidden_state(projection, events, fresh=fresh)
    check_snapshot_round_trip(projection, events)
    check_snapshot_plus_tail(projection, events)
    check_insertion_order_independent(projection, events, order=order, batch_sizes=batch_sizes)
    check_backfill_equivalent(projection, events, late=late)
    check_delete_restore_noop(projection, events, retract=retract)
