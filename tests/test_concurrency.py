"""Concurrent writers: the expected-version check cannot be raced.

Each writer is a thread with its own engine and EventStore on the same database
(SQLite file or PostgreSQL schema); a ``threading.Barrier`` lines them up so
they append at the same moment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar
from uuid import UUID, uuid4

import pytest
from sqlalchemy import Engine

from eventsource import ANY, NO_STREAM, AppendResult, EventStore, ExpectedVersion
from eventsource.config import make_engine
from eventsource.errors import ConcurrencyConflict
from eventsource.events import NewEvent
from tests.conftest import make_plan

T = TypeVar("T")
ROUNDS = 5
TIMEOUT = 60.0


@dataclass
class Outcomes:
    results: list[AppendResult] = field(default_factory=list)
    conflicts: list[ConcurrencyConflict] = field(default_factory=list)
    other: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def writers(backend_url: str, count: int) -> Iterator[list[EventStore]]:
    """``count`` independent stores (own engine, own connection pool) on one database."""
    stores = [EventStore(make_engine(backend_url)) for _ in range(count)]
    try:
        yield stores
    finally:
        for store in stores:
            store.close()


def race(stores: list[EventStore], work: Callable[[int, EventStore], T]) -> Outcomes:
    """Run ``work`` on every store at once, released together by a barrier."""
    barrier = threading.Barrier(len(stores), timeout=TIMEOUT)
    outcomes = Outcomes()

    def run(index: int, store: EventStore) -> None:
        try:
            barrier.wait()
            result = work(index, store)
        except ConcurrencyConflict as exc:
            with outcomes.lock:
                outcomes.conflicts.append(exc)
        except BaseException as exc:
            with outcomes.lock:
                outcomes.other.append(exc)
        else:
            if isinstance(result, AppendResult):
                with outcomes.lock:
                    outcomes.results.append(result)

    threads = [
        threading.Thread(target=run, args=(index, store), daemon=True)
        for index, store in enumerate(stores)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "a writer hung"
    assert outcomes.other == [], outcomes.other
    return outcomes


def test_two_writers_expecting_the_same_version_exactly_one_wins_every_round(
    backend_url: str, engine: Engine
) -> None:
    plan_id, _ = make_plan(engine)
    with writers(backend_url, 2) as stores:
        for round_number in range(ROUNDS):
            version = stores[0].version(plan_id)
            assert version == round_number

            def append(index: int, store: EventStore, version: int = version) -> AppendResult:
                event = NewEvent(f"writer_{index}", {"round": version})
                return store.append(plan_id, [event], expected_version=version)

            outcome = race(stores, append)
            assert len(outcome.results) == 1
            assert len(outcome.conflicts) == 1
            assert outcome.results[0].version == version + 1
            conflict = outcome.conflicts[0]
            assert conflict.plan_id == plan_id
            assert conflict.expected == version
            assert conflict.actual == version + 1
        final = list(stores[0].read(plan_id))
    assert len(final) == ROUNDS
    assert [e.payload["round"] for e in final] == list(range(ROUNDS))


@pytest.mark.parametrize("writers_count", [2, 4])
def test_many_writers_racing_to_create_a_stream_only_one_succeeds(
    backend_url: str, engine: Engine, writers_count: int
) -> None:
    plan_id, _ = make_plan(engine)
    expected: ExpectedVersion = NO_STREAM
    with writers(backend_url, writers_count) as stores:
        outcome = race(
            stores,
            lambda index, store: store.append(
                plan_id, [NewEvent("plan_created", {"by": index})], expected_version=expected
            ),
        )
        assert len(outcome.results) == 1
        assert len(outcome.conflicts) == writers_count - 1
        assert all(c.expected == "no_stream" and c.actual == 1 for c in outcome.conflicts)
        assert stores[0].version(plan_id) == 1


def test_concurrent_any_appends_to_one_plan_all_land_each_batch_in_order(
    backend_url: str, engine: Engine
) -> None:
    plan_id, _ = make_plan(engine)
    threads, batches, size = 6, 4, 3
    with writers(backend_url, threads) as stores:

        def append_batches(index: int, store: EventStore) -> None:
            for batch in range(batches):
                store.append(
                    plan_id,
                    [NewEvent("e", {"w": index, "b": batch, "i": i}) for i in range(size)],
                    expected_version=ANY,
                )

        race(stores, append_batches)
        stored = list(stores[0].read(plan_id))
        assert stores[0].version(plan_id) == threads * batches * size
    assert len(stored) == threads * batches * size
    assert len({e.id for e in stored}) == len(stored)
    keys = [(e.payload["w"], e.payload["b"], e.payload["i"]) for e in stored]
    assert sorted(keys) == [
        (w, b, i) for w in range(threads) for b in range(batches) for i in range(size)
    ]
    for writer in range(threads):
        # Each writer's events keep their order: its batches one after another, and
        # every batch in the order it was given.
        mine = [(b, i) for w, b, i in keys if w == writer]
        assert mine == sorted(mine)


def test_concurrent_resends_of_the_same_batch_store_it_once(
    backend_url: str, engine: Engine
) -> None:
    plan_id, _ = make_plan(engine)
    batch = [NewEvent("e", {"i": i}, id=uuid4()) for i in range(3)]
    with writers(backend_url, 4) as stores:
        outcome = race(stores, lambda index, store: store.append(plan_id, batch))
        assert sorted(r.appended for r in outcome.results) == [0, 0, 0, 3]
        assert all(r.event_ids == tuple(e.id for e in batch) for r in outcome.results)
        assert stores[0].version(plan_id) == 3


def test_writers_to_different_plans_do_not_conflict(backend_url: str, engine: Engine) -> None:
    plans: list[UUID] = [make_plan(engine)[0] for _ in range(4)]
    with writers(backend_url, 4) as stores:
        outcome = race(
            stores,
            lambda index, store: store.append(
                plans[index], [NewEvent("e", {})], expected_version=NO_STREAM
            ),
        )
        assert len(outcome.results) == 4
        assert outcome.conflicts == []
        assert [stores[0].version(p) for p in plans] == [1, 1, 1, 1]
