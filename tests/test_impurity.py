"""The kit catches impure reducers, each with a minimal failing example.

Four classic impurities: reading the clock, using randomness, mutating the state
given to ``evolve``, and depending on set iteration order (which changes with
``PYTHONHASHSEED`` from one process to the next). For each, Hypothesis shrinks a
failing stream to the smallest one, and the engine, where it can see the
impurity at run time (folding twice in ``verify``), says so.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any
from uuid import UUID

import pytest
from hypothesis import find, settings
from hypothesis import given as hypothesis_given
from pydantic import BaseModel

from eventsource import EventStore
from eventsource.errors import NonDeterministicProjection
from eventsource.events import NewEvent, RecordedEvent
from projections.engine import ProjectionEngine
from projections.testing import (
    HashSeedCheck,
    PropertyViolation,
    check_evolve_pure,
    check_hash_seed_independence,
    check_replay_deterministic,
    check_snapshot_plus_tail,
    event_streams,
    load_profile,
)
from projections.typing import Event, JSONValue, Projection

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


STREAMS = event_streams(deletes=False, backfills=False)


def minimal_failure(check: Callable[[Sequence[RecordedEvent]], None]) -> list[RecordedEvent]:
    """The smallest generated stream for which ``check`` raises PropertyViolation."""

    def fails(events: list[RecordedEvent]) -> bool:
        try:
            check(events)
        except PropertyViolation:
            return True
        return False

    events: list[RecordedEvent] = find(STREAMS, fails, settings=NO_DATABASE)
    return events


# --- The kit finds each one, with a minimal example ---------------------------------


@pytest.mark.parametrize(
    "projection",
    [ClockProjection(), RandomProjection(), SharedStateProjection()],
    ids=lambda p: type(p).__name__,
)
def test_replaying_twice_catches_clock_randomness_and_shared_state_with_one_event(
    projection: Projection[Any],
) -> None:
    events = minimal_failure(lambda es: check_replay_deterministic(projection, es))
    assert len(events) == 1
    with pytest.raises(PropertyViolation, match="must not read the clock, use randomness"):
        check_replay_deterministic(projection, events)


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
    [ClockProjection(), RandomProjection(), SharedStateProjection()],
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
