"""The kit catches impure reducers, each with a minimal failing example.

Twelve faulty reducers, written by hand: reading the clock, using randomness, a
module-level counter, ``id()``, mutating a state shared between folds, mutating
the state given to ``evolve``, depending on set iteration order (which changes
with ``PYTHONHASHSEED`` from one process to the next), a memo by plan id, a memo
by event id, a cache on the class, a memo on the class, and reading
``os.environ``. For each, the test names the check that catches it and Hypothesis
shrinks a failing stream to the smallest one; the engine, where it can see the
impurity at run time (``verify`` folds twice, the second time in a new instance),
says so. The last two no check inside one process can see: the tests show that,
and the README says why.
"""

from __future__ import annotations

import functools
import itertools
import os
import random
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, ClassVar
from uuid import UUID

import orjson
import pytest
from hypothesis import find, settings
from hypothesis import given as hypothesis_given
from pydantic import BaseModel

from eventsource import EventStore
from eventsource.errors import NonDeterministicProjection
from eventsource.events import NewEvent, RecordedEvent
from projections.engine import ProjectionEngine, fresh_instance
from projections.testing import (
    EchoProjection,
    HashSeedCheck,
    PropertyViolation,
    check_all,
    check_backfill_equivalent,
    check_delete_restore_noop,
    check_evolve_pure,
    check_hash_seed_independence,
    check_insertion_order_independent,
    check_no_hidden_state,
    check_replay_deterministic,
    check_snapshot_plus_tail,
    check_snapshot_round_trip,
    event_streams,
    live_stream,
    load_profile,
    projection_properties,
    replay,
)
from projections.typing import Event, JSONValue, Projection
from tests.faces import projection_engine

load_profile()

State = dict[str, Any]
NO_DATABASE = settings(database=None, max_examples=500)
"""``find`` settings: the same minimal example every time, nothing remembered."""


class _DictProjection:
    """A projection whose state is a plain JSON dict; subclasses bring ``evolve``."""

    version = 1
    handles: frozenset[str] | None = None
    payload_models: Mapping[str, type[BaseModel]] = MappingProxyType({})
    tie_rank: Mapping[str, int] = MappingProxyType({})

    def initial_state(self, plan_id: UUID) -> State:
        return {"plan_id": str(plan_id), "count": 0, "types": []}

    def to_json(self, state: State) -> JSONValue:
        return state

    def from_json(self, data: JSONValue) -> State:
        return {**data, "types": list(data["types"])}


class ClockProjection(_DictProjection):
    """Stamps the state with the time of the fold."""

    name = "impure_clock"

    def evolve(self, state: State, event: Event) -> State:
        return {**state, "count": state["count"] + 1, "seen_at": datetime.now(UTC).isoformat()}


class RandomProjection(_DictProjection):
    """Draws a random nonce for every event."""

    name = "impure_random"

    def evolve(self, state: State, event: Event) -> State:
        return {**state, "count": state["count"] + 1, "nonce": random.random()}


class MutatingProjection(_DictProjection):
    """Appends to the list inside the state it was given, and returns that state."""

    name = "impure_mutating"

    def evolve(self, state: State, event: Event) -> State:
        state["types"].append(event.event_type)
        state["count"] += 1
        return state


_SHARED: State = {"plan_id": None, "count": 0, "types": []}


class SharedStateProjection(MutatingProjection):
    """Mutates in place, from an initial state shared by every fold."""

    name = "impure_shared"

    def initial_state(self, plan_id: UUID) -> State:
        return _SHARED


_SERIALS = itertools.count()


class CounterProjection(_DictProjection):
    """Numbers the events it folds from a module-level counter."""

    name = "impure_counter"

    def evolve(self, state: State, event: Event) -> State:
        return {**state, "count": state["count"] + 1, "serial": next(_SERIALS)}


class IdentityProjection(_DictProjection):
    """Records the address of the state it was given (``id()``), as a cheap token."""

    name = "impure_identity"

    def evolve(self, state: State, event: Event) -> State:
        return {**state, "count": state["count"] + 1, "token": id(state)}


class MemoByPlanProjection(_DictProjection):
    """Remembers per plan id the event that opened the plan: the first it ever folded."""

    name = "impure_memo_by_plan"

    def __init__(self) -> None:
        self._opened_by: dict[UUID, str] = {}

    def evolve(self, state: State, event: Event) -> State:
        opened_by = self._opened_by.setdefault(event.plan_id, str(event.id))
        return {**state, "count": state["count"] + 1, "opened_by": opened_by}


class MemoByEventProjection(_DictProjection):
    """Never folds an event twice: returns the state that event gave the last time."""

    name = "impure_memo_by_event"

    def __init__(self) -> None:
        self._after: dict[UUID, State] = {}

    def evolve(self, state: State, event: Event) -> State:
        if event.id not in self._after:
            types = [*state["types"], event.event_type]
            self._after[event.id] = {**state, "count": state["count"] + 1, "types": types}
        return self._after[event.id]


class ClassCacheProjection(_DictProjection):
    """Collects each plan's event types in a dict on the class, shared by every instance."""

    name = "impure_class_cache"
    seen: ClassVar[dict[UUID, set[str]]] = {}

    def evolve(self, state: State, event: Event) -> State:
        types = self.seen.setdefault(event.plan_id, set())
        types.add(event.event_type)
        return {**state, "count": state["count"] + 1, "types": sorted(types)}


class ClassMemoProjection(_DictProjection):
    """Remembers per plan id, in a dict on the class, the event that opened the plan."""

    name = "impure_class_memo"
    opened_by: ClassVar[dict[UUID, str]] = {}

    def evolve(self, state: State, event: Event) -> State:
        opened_by = self.opened_by.setdefault(event.plan_id, str(event.id))
        return {**state, "count": state["count"] + 1, "opened_by": opened_by}


REGION = "IMPURITY_TEST_REGION"


class EnvironmentProjection(_DictProjection):
    """Labels the state with a setting read from the environment at every event."""

    name = "impure_environment"

    def evolve(self, state: State, event: Event) -> State:
        region = os.environ.get(REGION, "eu")
        return {**state, "count": state["count"] + 1, "region": region}


class SetOrderProjection(_DictProjection):
    """Keeps the distinct event types, in set iteration order (hash-seed dependent)."""

    name = "impure_set_order"

    def evolve(self, state: State, event: Event) -> State:
        types = set(state["types"]) | {event.event_type}
        return {**state, "count": state["count"] + 1, "types": list(types)}


class ClockFreeTypes(_DictProjection):
    """The sorted distinct event types: order-independent, hence seed-independent."""

    name = "pure_types"

    def evolve(self, state: State, event: Event) -> State:
        types = sorted(set(state["types"]) | {event.event_type})
        return {**state, "count": state["count"] + 1, "types": types}


class LabelledTypes(ClockFreeTypes):
    """Pure, and configured: the label comes from its constructor."""

    name = "pure_labelled_types"

    def __init__(self, label: str = "en") -> None:
        self.label = label

    def evolve(self, state: State, event: Event) -> State:
        return {**super().evolve(state, event), "label": self.label}


STREAMS = event_streams(deletes=False, backfills=False)


def minimal_failure(
    check: Callable[[Sequence[RecordedEvent]], None],
    *,
    before_each: Callable[[], None] = lambda: None,
) -> list[RecordedEvent]:
    """The smallest generated stream for which ``check`` raises PropertyViolation."""

    def fails(events: list[RecordedEvent]) -> bool:
        before_each()
        try:
            check(events)
        except PropertyViolation:
            return True
        return False

    events: list[RecordedEvent] = find(STREAMS, fails, settings=NO_DATABASE)
    return events


@functools.cache
def hidden_state_example(make: Callable[[], Projection[Any]]) -> list[RecordedEvent]:
    """The minimal stream ``check_no_hidden_state`` fails on, found once per session."""
    return minimal_failure(lambda es: check_no_hidden_state(make(), es))


def every_other_check_passes(projection: Projection[Any], events: list[RecordedEvent]) -> None:
    """Every in-memory check but ``check_no_hidden_state``, trying each event as retracted."""
    ids = [e.id for e in events]
    check_evolve_pure(projection, events)
    check_replay_deterministic(projection, events, runs=3)
    check_snapshot_round_trip(projection, events)
    check_snapshot_plus_tail(projection, events)
    check_insertion_order_independent(projection, events, order=list(reversed(range(len(ids)))))
    for event_id in ids:
        check_backfill_equivalent(projection, events, late=[event_id])
        check_delete_restore_noop(projection, events, retract=[event_id])


# --- The kit finds each one, with a minimal example ---------------------------------


FOLDS_DIFFERENTLY = [
    ClockProjection(),
    RandomProjection(),
    CounterProjection(),
    IdentityProjection(),
    SharedStateProjection(),
]
"""Reducers whose second fold differs from the first, in one instance."""


@pytest.mark.parametrize("projection", FOLDS_DIFFERENTLY, ids=lambda p: type(p).__name__)
def test_replaying_twice_catches_clock_randomness_counters_ids_and_shared_state_with_one_event(
    projection: Projection[Any],
) -> None:
    events = minimal_failure(lambda es: check_replay_deterministic(projection, es))
    assert len(events) == 1
    # Three replays: a freed object's address is now and then reused by the next fold.
    with pytest.raises(PropertyViolation, match="must not read the clock, use randomness"):
        check_replay_deterministic(projection, events, runs=3)


@pytest.mark.parametrize(
    "make", [MemoByPlanProjection, MemoByEventProjection], ids=lambda m: m.__name__
)
def test_a_memo_by_plan_or_event_id_is_caught_after_a_soft_delete_with_two_events(
    make: Callable[[], Projection[Any]],
) -> None:
    events = hidden_state_example(make)
    assert len(events) == 2
    assert len({e.plan_id for e in events}) == 1
    first = live_stream(make(), events, events[0].plan_id)[0]
    # The first event deleted, the memo still serves it.
    with pytest.raises(
        PropertyViolation, match=rf"but event 0 \([^,]+, {first.id}, soft-deleted\) .* a new"
    ):
        check_no_hidden_state(make(), events)
    # Every instance agrees with itself, so every other property passes.
    every_other_check_passes(make(), events)


def test_a_cache_on_the_class_is_caught_by_folding_a_prefix_again() -> None:
    # New instances share the class's cache, so only the comparison with what the
    # first fold passed through sees it. A new process starts with an empty cache:
    # so does every example here.
    events = minimal_failure(
        lambda es: check_no_hidden_state(ClassCacheProjection(), es),
        before_each=ClassCacheProjection.seen.clear,
    )
    assert len(events) == 2
    assert len({e.event_type for e in events}) == 2
    ClassCacheProjection.seen.clear()
    with pytest.raises(PropertyViolation, match=r"the first 1 event\(s\) .* after 1 event"):
        check_no_hidden_state(ClassCacheProjection(), events)
    ClassCacheProjection.seen.clear()
    every_other_check_passes(ClassCacheProjection(), events)


def test_no_check_in_one_process_can_catch_a_class_memo_that_keeps_the_first_value() -> None:
    # Whichever instance folds a plan first sets the memo; every later fold, by any
    # instance, agrees with it, so nothing inside the process has a truth to compare.
    events = find(
        STREAMS,
        lambda es: len(es) == 2 and len({e.plan_id for e in es}) == 1,
        settings=NO_DATABASE,
    )
    ClassMemoProjection.opened_by.clear()
    ids = [e.id for e in events]
    check_all(ClassMemoProjection(), events, order=[1, 0], late=ids, retract=ids)
    every_other_check_passes(ClassMemoProjection(), events)
    check_hash_seed_independence("tests.test_impurity:ClassMemoProjection", events, seeds=(1, 2))
    # Yet a new instance serves the data of a soft-deleted event.
    first, second = live_stream(ClassMemoProjection(), events, events[0].plan_id)
    after_delete = [second]
    state = orjson.loads(replay(ClassMemoProjection(), after_delete, second.plan_id))
    assert state["opened_by"] == str(first.id)


def test_a_reducer_mutating_its_input_is_caught_with_one_event() -> None:
    projection = MutatingProjection()
    events = minimal_failure(lambda es: check_evolve_pure(projection, es))
    assert len(events) == 1
    with pytest.raises(PropertyViolation, match=r"evolve changed the state it was given"):
        check_evolve_pure(projection, events)


def test_a_reducer_mutating_a_fresh_state_passes_replay_so_purity_is_checked_apart() -> None:
    # Each fold starts from a new initial state, so folding twice agrees; only
    # comparing the state before and after evolve shows the mutation.
    events = minimal_failure(lambda es: check_evolve_pure(MutatingProjection(), es))
    check_replay_deterministic(MutatingProjection(), events)
    check_snapshot_plus_tail(MutatingProjection(), events)


def test_set_iteration_order_is_caught_across_hash_seeds_with_two_events() -> None:
    with HashSeedCheck("tests.test_impurity:SetOrderProjection", seeds=(1, 2, 3, 4)) as seeds:
        events = minimal_failure(seeds.check)
        assert len(events) == 2
        assert len({e.event_type for e in events}) == 2
        assert len({e.plan_id for e in events}) == 1
        with pytest.raises(PropertyViolation, match=r"PYTHONHASHSEED=\d+ and =\d+"):
            seeds.check(events)
    # One process has one hash seed: every in-process check passes.
    check_replay_deterministic(SetOrderProjection(), events)
    check_evolve_pure(SetOrderProjection(), events)
    check_snapshot_plus_tail(SetOrderProjection(), events)


def test_no_check_in_one_environment_can_catch_a_reducer_reading_os_environ(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(REGION, raising=False)
    projection = EnvironmentProjection()
    events = find(STREAMS, lambda es: len(es) >= 2, settings=NO_DATABASE)
    ids = [e.id for e in events]
    # Every fold in this process, and every hash-seed worker (which inherits the
    # environment), reads the same value: every check passes...
    check_all(projection, events, order=list(reversed(range(len(ids)))), late=ids, retract=ids)
    check_hash_seed_independence("tests.test_impurity:EnvironmentProjection", events, seeds=(1, 2))
    # ...yet the state depends on something that is not an event.
    plan_id = events[0].plan_id
    here = replay(projection, events, plan_id)
    monkeypatch.setenv(REGION, "us")
    assert replay(projection, events, plan_id) != here


def test_the_one_shot_hash_seed_check_accepts_a_pure_reducer() -> None:
    events = minimal_failure(lambda es: check_evolve_pure(MutatingProjection(), es))
    check_hash_seed_independence(ClockFreeTypes(), events, seeds=(1, 2))


def test_a_projection_defined_in_a_function_is_refused_with_what_to_do() -> None:
    class Local(ClockFreeTypes):
        pass

    with pytest.raises(ValueError, match="not importable from another process"):
        HashSeedCheck(Local())


def test_the_failing_example_prints_as_a_pasteable_regression_test() -> None:
    @settings(database=None, max_examples=100)
    @hypothesis_given(events=STREAMS)
    def replay_is_deterministic(events: list[RecordedEvent]) -> None:
        check_replay_deterministic(ClockProjection(), events)

    with pytest.raises(PropertyViolation) as failure:
        replay_is_deterministic()
    notes = "\n".join(getattr(failure.value, "__notes__", []))
    printed = notes.split("Regression test")[0]
    assert re.search(r"(Falsifying example|Failing test case): replay_is_deterministic\(", notes)
    assert printed.count("RecordedEvent(") == 1
    assert "check_replay_deterministic(ClockProjection(), events)" in notes
    assert "from tests.test_impurity import ClockProjection" in notes


def test_the_three_line_suite_catches_a_memo_and_prints_a_regression_test_that_fails() -> None:
    suite = projection_properties(MemoByEventProjection(), STREAMS, hash_seeds=None)
    test = settings(database=None, max_examples=200)(
        suite.test_folding_other_streams_first_never_changes_a_state  # type: ignore[attr-defined]
    )
    with pytest.raises(PropertyViolation) as failure:
        test(suite())
    notes: list[str] = getattr(failure.value, "__notes__", [])
    (source,) = [note for note in notes if note.startswith("# Regression test")]
    printed = "\n".join(notes[: notes.index(source)])
    assert re.search(r"(Falsifying example|Failing test case): test_folding_other_streams", printed)
    assert printed.count("RecordedEvent(") == 2
    assert "check_no_hidden_state(MemoByEventProjection(), events)" in source
    namespace: dict[str, Any] = {}
    exec(compile(source, "<regression>", "exec"), namespace)
    with pytest.raises(PropertyViolation, match="differs from a new instance's fold"):
        namespace["test_no_hidden_state_regression"]()


def test_a_projection_built_with_arguments_needs_fresh_and_then_is_checked() -> None:
    class Configured(ClockFreeTypes):
        def __init__(self, name: str) -> None:
            self.name = name

    events = minimal_failure(lambda es: check_evolve_pure(MutatingProjection(), es))
    with pytest.raises(ValueError, match=r"pass fresh=, a function returning one"):
        check_no_hidden_state(Configured("types"), events)
    check_no_hidden_state(Configured("types"), events, fresh=lambda: Configured("types"))
    suite = projection_properties(Configured("types"), STREAMS, hash_seeds=None)
    with pytest.raises(ValueError, match="pass fresh="):
        suite().test_folding_other_streams_first_never_changes_a_state()


# --- The engine says so, where it can see it at run time -----------------------------


def _store_events(store: EventStore, plan_id: UUID, events: Sequence[RecordedEvent]) -> None:
    store.append(
        plan_id,
        [
            NewEvent(e.event_type, e.payload, stage=e.stage, occurred_at=e.occurred_at)
            for e in events
        ],
    )


@pytest.mark.parametrize(
    "projection",
    FOLDS_DIFFERENTLY,
    ids=lambda p: type(p).__name__,
)
def test_verify_reports_a_reducer_that_folds_differently_twice(
    store: EventStore, plan: tuple[UUID, UUID], projection: Projection[Any]
) -> None:
    events = minimal_failure(lambda es: check_replay_deterministic(projection, es))
    _store_events(store, plan[0], events)
    engine = ProjectionEngine(store, snapshot_every=None)
    report = engine.verify(projection, plan[0])
    assert not report.deterministic
    assert not report.ok
    with pytest.raises(NonDeterministicProjection, match="read the clock, use randomness"):
        engine.check_deterministic(projection, plan[0])


def test_verify_reports_a_reducer_that_mutates_the_state_it_was_given(
    store: EventStore, plan: tuple[UUID, UUID]
) -> None:
    events = minimal_failure(lambda es: check_evolve_pure(MutatingProjection(), es))
    _store_events(store, plan[0], events)
    report = ProjectionEngine(store, snapshot_every=None).verify(MutatingProjection(), plan[0])
    assert not report.ok


def test_verify_passes_the_pure_projections(store: EventStore, plan: tuple[UUID, UUID]) -> None:
    events = minimal_failure(lambda es: check_evolve_pure(MutatingProjection(), es))
    _store_events(store, plan[0], events)
    engine = ProjectionEngine(store, snapshot_every=None)
    assert engine.verify(ClockFreeTypes(), plan[0]).ok
    engine.check_deterministic(ClockFreeTypes(), plan[0])
    # LabelledTypes() would fold "en": verify folds "fi" in the given instance twice.
    assert engine.verify(LabelledTypes("fi"), plan[0]).ok


@pytest.mark.parametrize(
    "make", [MemoByPlanProjection, MemoByEventProjection], ids=lambda m: m.__name__
)
def test_verify_in_the_serving_process_reports_a_memo_serving_a_deleted_event(
    store: EventStore, plan: tuple[UUID, UUID], make: Callable[[], Projection[Any]]
) -> None:
    events = hidden_state_example(make)
    _store_events(store, plan[0], events)
    engine = projection_engine(store, snapshot_every=None)
    serving = make()  # one instance for the life of the process, as a service keeps it
    engine.load(serving, plan[0])
    store.soft_delete(next(iter(store.read(plan[0]))).id)
    # The bug, as the adversarial tester saw it: the deleted event's data is served...
    assert engine.load(serving, plan[0]).hash != engine.load(make(), plan[0]).hash
    # ...and verify, folding the second time in a new instance, says so.
    report = engine.verify(serving, plan[0])
    assert not report.deterministic
    assert not report.ok
    with pytest.raises(NonDeterministicProjection):
        engine.check_deterministic(serving, plan[0])
    assert engine.verify(make(), plan[0]).ok


@pytest.mark.parametrize(
    "make", [MemoByPlanProjection, MemoByEventProjection], ids=lambda m: m.__name__
)
def test_verify_in_another_process_reports_the_snapshot_a_memo_stored(
    store: EventStore, plan: tuple[UUID, UUID], make: Callable[[], Projection[Any]]
) -> None:
    events = hidden_state_example(make)
    _store_events(store, plan[0], events)
    engine = projection_engine(store, snapshot_every=None)
    serving = make()
    engine.load(serving, plan[0])
    store.soft_delete(next(iter(store.read(plan[0]))).id)
    engine.snapshot(serving, plan[0])  # stale data, stored
    # `eventsource verify` builds its own instance: both folds agree, the snapshot not.
    report = engine.verify(make(), plan[0])
    assert report.deterministic
    assert report.snapshot_status == "differs"
    assert not report.ok


def test_verify_folds_the_second_time_in_a_new_instance_only_when_one_is_the_same() -> None:
    assert isinstance(fresh_instance(MemoByPlanProjection()), MemoByPlanProjection)
    memo = MemoByPlanProjection()
    memo.evolve(memo.initial_state(UUID(int=1)), _event())  # what it learns: a dict
    twin = fresh_instance(memo)
    assert isinstance(twin, MemoByPlanProjection)
    assert twin is not memo
    assert twin.evolve(twin.initial_state(UUID(int=1)), _event(2))["opened_by"] == str(UUID(int=2))
    # Configured through its constructor: LabelledTypes() is another projection.
    assert isinstance(fresh_instance(LabelledTypes()), LabelledTypes)
    assert fresh_instance(LabelledTypes("fi")) is None
    # Built with arguments that change it: no twin (verify folds in the given instance).
    assert fresh_instance(EchoProjection(tie_rank={"a": 1})) is None
    assert fresh_instance(EchoProjection(name="other")) is None
    assert isinstance(fresh_instance(EchoProjection()), EchoProjection)


def _event(number: int = 1) -> Event:
    at = datetime(2024, 1, 1, tzinfo=UTC)
    return Event(UUID(int=number), UUID(int=1), "created", {}, None, None, at, at)
