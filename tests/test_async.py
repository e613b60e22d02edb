"""The asyncio face: what the shared contract suite cannot show from blocking code.

The store contract, the engine tests and the stateful machine already run
through the asyncio face (``tests/faces.py``). These tests add what only real
concurrency shows: byte-identical folds on both faces, 100 tasks on one pool
without loop stalls or lost writes, the asyncio worker (claims, LISTEN, clean
cancellation), and the FastAPI example.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import Engine, text

from eventsource import (
    NO_STREAM,
    AsyncEventStore,
    ConcurrencyConflict,
    EventStore,
    NewEvent,
    UnknownPlan,
)
from eventsource.transfer import import_file
from examples.fastapi_app import create_app
from projections import (
    AsyncProjectionEngine,
    AsyncWorker,
    CourseDesignerPlanProjection,
    ProjectionEngine,
    canonical_json,
)
from tests.conftest import DATA, make_plan, pg_database

PROJECTION = CourseDesignerPlanProjection()


class Ledger:
    """An asynchronous projection: only workers store its snapshots."""

    name = "async_ledger"
    version = 1
    handles: frozenset[str] | None = None
    payload_models: Mapping[str, type[BaseModel]] = MappingProxyType({})
    tie_rank: Mapping[str, int] = MappingProxyType({})
    asynchronous = True

    def initial_state(self, plan_id: uuid.UUID) -> dict[str, Any]:
        return {"count": 0, "types": []}

    def evolve(self, state: dict[str, Any], event: Any) -> dict[str, Any]:
        return {"count": state["count"] + 1, "types": [*state["types"], event.event_type]}

    def to_json(self, state: dict[str, Any]) -> Any:
        return state

    def from_json(self, data: Any) -> dict[str, Any]:
        return dict(data)


LEDGER = Ledger()


class CountingLedger(Ledger):
    """The same fold, its snapshots stored by loads (not only by workers)."""

    name = "counting_ledger"
    asynchronous = False


COUNTING = CountingLedger()


@pytest.fixture
def url(engine: Engine, backend_url: str) -> str:
    """A migrated database on each backend (``engine`` migrates it)."""
    return backend_url


def test_sync_and_async_folds_of_the_sample_give_identical_bytes(engine: Engine, url: str) -> None:
    store = EventStore(engine)
    import_file(store, str(DATA / "course_designer_events.jsonl"), create_parents=True)
    plans = sorted(store.plan_ids())
    blocking = ProjectionEngine(store, snapshot_every=None)
    expected = {plan: canonical_json(blocking.load(PROJECTION, plan).json) for plan in plans}

    async def fold_all() -> dict[uuid.UUID, bytes]:
        async with AsyncEventStore.from_url(url) as async_store:
            engine_ = AsyncProjectionEngine(async_store, snapshot_every=None)
            loaded = await asyncio.gather(*(engine_.load(PROJECTION, plan) for plan in plans))
            return {item.plan_id: canonical_json(item.json) for item in loaded}

    assert len(plans) == 300
    assert asyncio.run(fold_all()) == expected


def test_100_concurrent_tasks_on_one_pool_lose_nothing_and_never_stall_the_loop(
    engine: Engine, url: str
) -> None:
    """Appends to overlapping plans with expected versions, loads and timelines, at once.

    The stall bound: a task's synchronous slices are small (validating a batch,
    decoding and folding one chunk of a short plan, a few hundred microseconds);
    the drivers wait off the loop (psycopg in the loop's I/O, aiosqlite in its
    threads). A heartbeat every 5 ms that is late by more than 250 ms would mean a
    call blocked the loop: 250 ms leaves room for a loaded two-core CI machine
    (GIL hand-offs to the SQLite threads, the OS scheduler) and is still far below
    one blocking database round trip under that load.
    """
    plans = [make_plan(engine)[0] for _ in range(10)]
    tasks_per_plan = 10
    max_late = 0.0

    async def scenario() -> tuple[dict[uuid.UUID, int], int]:
        nonlocal max_late
        async with AsyncEventStore.from_url(url, pool_size=10) as store:
            engine_ = AsyncProjectionEngine(store, snapshot_every=None)
            appended: dict[uuid.UUID, int] = dict.fromkeys(plans, 0)
            conflicts = 0
            stop = asyncio.Event()

            async def heartbeat() -> None:
                nonlocal max_late
                while not stop.is_set():
                    before = time.perf_counter()
                    await asyncio.sleep(0.005)
                    max_late = max(max_late, time.perf_counter() - before - 0.005)

            async def writer(plan: uuid.UUID, number: int) -> None:
                nonlocal conflicts
                for attempt in range(200):
                    version = await store.version(plan)
                    event = NewEvent("counted", {"task": number, "attempt": attempt})
                    try:
                        await store.append(plan, [event], expected_version=version)
                    except ConcurrencyConflict:
                        conflicts += 1
                        await asyncio.sleep(random.random() / 100)
                        continue
                    appended[plan] += 1
                    return
                raise AssertionError(f"task {number} never got its append in")

            async def reader(plan: uuid.UUID) -> None:
                for _ in range(3):
                    with contextlib.suppress(UnknownPlan):  # a plan no writer reached yet
                        await engine_.load(LEDGER, plan, use_snapshot=False)
                    await store.timeline(plan, limit=5)

            beat = asyncio.create_task(heartbeat())
            work = [writer(plan, n) for plan in plans for n in range(tasks_per_plan - 3)]
            work += [reader(plan) for plan in plans for _ in range(3)]
            assert len(work) == 100
            await asyncio.gather(*work)
            stop.set()
            await beat
            stored = {plan: await store.version(plan) for plan in plans}
            assert stored == appended
            return stored, conflicts

    stored, conflicts = asyncio.run(scenario())
    assert all(count == tasks_per_plan - 3 for count in stored.values())
    # Every task read a version then appended against it: overlapping tasks must
    # have met conflicts, or the check was not exercised.
    assert conflicts > 0
    assert max_late < 0.25, f"the loop stalled for {max_late * 1000:.0f} ms"


def test_async_worker_folds_every_queued_plan_once_and_skips_locked_claims(
    engine: Engine, url: str
) -> None:
    store = EventStore(engine)
    plans = [make_plan(engine)[0] for _ in range(12)]
    for index, plan in enumerate(plans):
        store.append(plan, [NewEvent("e", {"n": n}) for n in range(index + 1)])

    async def work() -> list[uuid.UUID]:
        async with AsyncEventStore.from_url(url) as async_store:
            workers = [AsyncWorker(async_store, [LEDGER], batch_size=3) for _ in range(3)]
            await asyncio.gather(*(worker.drain() for worker in workers))
            return [plan for worker in workers for plan in worker.stats.claimed]

    claimed = asyncio.run(work())
    assert sorted(claimed) == sorted(plans)  # each plan folded exactly once
    for index, plan in enumerate(plans):
        snapshot = store.snapshot_row(plan, LEDGER.name)
        assert snapshot is not None
        assert snapshot.state["count"] == index + 1
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM eventsource_plan_changes")).scalar() == 0


def test_async_worker_wakes_on_a_change_and_a_cancel_finishes_the_plan_in_hand(
    engine: Engine, url: str
) -> None:
    store = EventStore(engine)
    plan, _ = make_plan(engine)

    async def scenario() -> dict[str, Any]:
        async with AsyncEventStore.from_url(url) as async_store:
            worker = AsyncWorker(async_store, [LEDGER], poll_interval=0.2)
            task = asyncio.create_task(worker.run())
            await asyncio.sleep(0.3)  # idle: listening (PostgreSQL) or polling (SQLite)
            await async_store.append(plan, [NewEvent("woken", {})], expected_version=NO_STREAM)
            for _ in range(100):
                await asyncio.sleep(0.05)
                if worker.stats.plans:
                    break
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            snapshot = await async_store.snapshot_row(plan, LEDGER.name)
            assert snapshot is not None
            return dict(snapshot.state)

    state = asyncio.run(scenario())
    assert state == {"count": 1, "types": ["woken"]}
    assert store.version(plan) == 1


def test_async_loads_use_and_refresh_snapshots_like_the_blocking_engine(
    engine: Engine, url: str
) -> None:
    plan, _ = make_plan(engine)

    async def scenario() -> None:
        async with AsyncEventStore.from_url(url) as store:
            engine_ = AsyncProjectionEngine(store, snapshot_every=3)
            await store.append(plan, [NewEvent("e", {"n": n}) for n in range(4)])
            first = await engine_.load(COUNTING, plan)  # folds 4 >= 3: stores a snapshot
            assert (first.from_snapshot, first.tail) == (False, 4)
            again = await engine_.load(COUNTING, plan)
            assert (again.from_snapshot, again.tail) == (True, 0)
            assert again.hash == first.hash
            await store.append(plan, [NewEvent("e", {"n": 4})])
            tail = await engine_.load(COUNTING, plan)
            assert (tail.from_snapshot, tail.tail, tail.state["count"]) == (True, 1, 5)
            report = await engine_.verify(COUNTING, plan)
            assert report.ok
            with pytest.raises(UnknownPlan):
                await engine_.load(COUNTING, uuid.uuid4())

    asyncio.run(scenario())


@pytest.fixture
def client(engine: Engine, url: str) -> Iterator[TestClient]:
    with TestClient(create_app(url)) as test_client:
        yield test_client


def test_fastapi_example_appends_with_if_match_loads_and_pages_the_timeline(
    client: TestClient, engine: Engine
) -> None:
    plan, user = make_plan(engine)
    created = {"event_type": "plan_created", "payload": {"name": "Databases"}}
    created["actor_user_id"] = str(user)
    first = client.post(f"/plans/{plan}/events", json={"events": [created]})
    assert first.status_code == 201
    assert first.json()["version"] == 1

    state = client.get(f"/plans/{plan}")
    assert state.status_code == 200
    assert state.json()["name"] == "Databases"
    assert state.json()["status"] == "draft"
    assert state.headers["etag"] == '"1"'

    stale = client.post(
        f"/plans/{plan}/events",
        json={"events": [{"event_type": "note", "payload": {}}]},
        headers={"If-Match": '"0"'},
    )
    assert stale.status_code == 412
    assert stale.json()["detail"]["actual_version"] == 1
    fresh = client.post(
        f"/plans/{plan}/events",
        json={"events": [{"event_type": "note", "payload": {"n": 1}}]},
        headers={"If-Match": state.headers["etag"]},
    )
    assert fresh.status_code == 201
    assert fresh.json()["version"] == 2

    page = client.get(f"/plans/{plan}/timeline", params={"limit": 1})
    assert page.status_code == 200
    body = page.json()
    assert [event["event_type"] for event in body["events"]] == ["note"]
    older = client.get(f"/plans/{plan}/timeline", params={"limit": 1, "before": body["next"]})
    assert [event["event_type"] for event in older.json()["events"]] == ["plan_created"]
    assert older.json()["next"] is None

    assert client.get(f"/plans/{uuid.uuid4()}").status_code == 404
    bad = client.post(f"/plans/{plan}/events", json={"events": [{"event_type": " "}]})
    assert bad.status_code == 422
    assert json.loads(bad.text)["field"] == "event_type"


@pytest.mark.postgres
def test_listen_keeps_a_connect_timeout_given_in_the_url_on_both_faces() -> None:
    with pg_database() as (url, _store):
        timed = url + ("&" if "?" in url else "?") + "connect_timeout=3"
        listener = EventStore.from_url(timed).listen()
        assert listener is not None
        assert listener.info.get_parameters().get("connect_timeout") == "3"
        listener.close()

        async def listen() -> str | None:
            async with AsyncEventStore.from_url(timed) as async_store:
                conn = await async_store.listen()
                assert conn is not None
                value = conn.info.get_parameters().get("connect_timeout")
                await conn.close()
                return value

        assert asyncio.run(listen()) == "3"
