"""One event a projection cannot fold stops nobody: the plan is quarantined.

Workers, ``replay``, ``verify``, ``state --all`` and ``reconcile --deep`` fold
every other plan and record the failing one (plan, projection and version, event,
error, first and last seen, attempts) in ``eventsource_quarantine``; it is skipped
until one of its events changes or it is retried, and a load of it raises
``FoldFailed`` naming the event. Also here: time travel to before a plan existed.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, ClassVar
from uuid import UUID

import pytest
from pydantic import BaseModel
from sqlalchemy import Engine, text

from eventsource import AsyncEventStore, EventStore, FoldFailed, NewEvent, NoEventsAsOf, UnknownPlan
from eventsource.transfer import import_events
from projections import AsyncProjectionEngine, CourseDesignerPlanProjection, ProjectionEngine
from projections.async_worker import AsyncWorker
from projections.typing import Event, JSONValue
from projections.worker import Worker, reconcile
from tests.clirun import run_cli
from tests.conftest import DATA, make_plan

COURSE = CourseDesignerPlanProjection()
FIXTURE = DATA / "course_designer_events.jsonl"
State = dict[str, Any]


class Fragile:
    """Counts events; raises on a payload ``{"boom": true}`` unless ``fixed``."""

    name = "fragile"
    version = 1
    handles: frozenset[str] | None = None
    payload_models: Mapping[str, type[BaseModel]] = MappingProxyType({})
    tie_rank: Mapping[str, int] = MappingProxyType({})
    fixed: ClassVar[bool] = False

    def initial_state(self, plan_id: UUID) -> State:
        return {"count": 0}

    def evolve(self, state: State, event: Event) -> State:
        assert isinstance(event.payload, Mapping)
        if event.payload.get("boom") and not type(self).fixed:
            raise ValueError("boom is not a valid note")
        return {"count": state["count"] + 1}

    def to_json(self, state: State) -> JSONValue:
        return state

    def from_json(self, data: JSONValue) -> State:
        assert isinstance(data, dict)
        return dict(data)


class Fixed(Fragile):
    fixed = True


class Counting(Fragile):
    """Another projection of the same plans, which folds everything."""

    name = "counting"
    fixed = True


def note(boom: bool = False, at: datetime | None = None) -> NewEvent:
    return NewEvent("note_added", {"boom": True} if boom else {"text": "ok"}, occurred_at=at)


def three_plans(engine: Engine, store: EventStore) -> tuple[UUID, UUID, UUID, UUID]:
    """Plans good, bad, good2 (two notes each; bad's second is the boom); bad's event."""
    plans = [make_plan(engine)[0] for _ in range(3)]
    for plan in plans:
        store.append(plan, [note()])
    store.append(plans[0], [note()])
    bad = store.append(plans[1], [note(boom=True)]).event_ids[0]
    store.append(plans[2], [note()])
    return plans[0], plans[1], plans[2], bad


def snapshot_count(store: EventStore, plan: UUID, projection: str = "fragile") -> int | None:
    row = store.snapshot_row(plan, projection)
    return None if row is None else int(row.state["count"])


def test_a_worker_quarantines_the_plan_it_cannot_fold_and_folds_every_other(
    engine: Engine, sync_store: EventStore
) -> None:
    store = sync_store
    good, bad, good2, event = three_plans(engine, store)
    worker = Worker(store, [Fragile()], batch_size=10)
    assert worker.drain() == 3
    assert worker.stats.quarantined == 1
    assert snapshot_count(store, good) == 2
    assert snapshot_count(store, good2) == 2
    assert snapshot_count(store, bad) is None
    assert store.queued() == 0  # not left in the feed to fail again
    (entry,) = store.quarantine()
    assert (entry.plan_id, entry.projection, entry.projection_version) == (bad, "fragile", 1)
    assert (entry.event_id, entry.event_type) == (event, "note_added")
    assert "ValueError: boom is not a valid note" in entry.error
    assert entry.attempts == 1
    assert entry.unchanged
    assert entry.first_seen <= entry.last_seen

    # No crash loop: nothing is queued, nothing fails.
    again = Worker(store, [Fragile()])
    assert again.drain() == 0
    assert again.stats.quarantined == 0

    # A write to the plan is a change: the worker tries again, fails again, counts it.
    store.append(bad, [note()])
    assert not store.quarantine()[0].unchanged
    third = Worker(store, [Fragile()])
    third.drain()
    assert third.stats.quarantined == 1
    (entry,) = store.quarantine()
    assert entry.attempts == 2
    assert entry.unchanged

    # Soft-deleting the bad event fixes the stream: folded and released.
    assert store.soft_delete(event)
    fourth = Worker(store, [Fragile()])
    assert fourth.drain() == 1
    assert fourth.stats.quarantined == 0
    assert snapshot_count(store, bad) == 2
    assert store.quarantine() == []


def test_the_asyncio_worker_quarantines_the_plan_and_folds_every_other(
    engine: Engine, sync_store: EventStore, backend_url: str
) -> None:
    store = sync_store
    good, bad, good2, event = three_plans(engine, store)

    async def drain() -> tuple[int, int]:
        async with AsyncEventStore.from_url(backend_url) as async_store:
            worker = AsyncWorker(async_store, [Fragile(), Counting()], batch_size=10)
            return await worker.drain(), worker.stats.quarantined

    assert asyncio.run(drain()) == (3, 1)
    assert snapshot_count(store, good) == 2
    assert snapshot_count(store, good2) == 2
    assert snapshot_count(store, bad) is None
    assert snapshot_count(store, bad, "counting") == 2
    (entry,) = store.quarantine()
    assert (entry.plan_id, entry.event_id) == (bad, event)
    assert store.queued() == 0
    store.soft_delete(event)
    assert asyncio.run(drain()) == (1, 0)
    assert snapshot_count(store, bad) == 1  # the first note; the boom is deleted
    assert store.quarantine() == []


def test_the_other_projections_of_a_failing_plan_still_fold(
    engine: Engine, sync_store: EventStore
) -> None:
    store = sync_store
    _, bad, _, _ = three_plans(engine, store)
    worker = Worker(store, [Fragile(), Counting()], batch_size=2)
    worker.drain()
    assert snapshot_count(store, bad, "counting") == 2
    assert snapshot_count(store, bad, "fragile") is None
    assert [(e.plan_id, e.projection) for e in store.quarantine()] == [(bad, "fragile")]


def test_replay_rebuilds_every_other_plan_and_skips_the_quarantined_until_it_changes(
    engine: Engine, sync_store: EventStore
) -> None:
    store = sync_store
    good, bad, good2, event = three_plans(engine, store)
    projections = ProjectionEngine(store, snapshot_every=None)
    report = projections.replay(Fragile(), batch_size=2)
    assert report.rebuilt == 2
    assert sorted(report.plans) == sorted([good, good2])
    assert [f.plan_id for f in report.quarantined] == [bad]
    assert report.quarantined[0].event_id == event
    assert snapshot_count(store, good) == 2
    assert snapshot_count(store, good2) == 2
    assert store.finished(report.run) == set()  # the run finished: checkpoints gone

    second = projections.replay(Fragile())
    assert second.still_quarantined == [bad]
    assert second.quarantined == []
    assert second.rebuilt == 2
    assert store.quarantine()[0].attempts == 1  # skipped, not tried again

    store.soft_delete(event)
    third = projections.replay(Fragile())
    assert third.quarantined == []
    assert third.still_quarantined == []
    assert snapshot_count(store, bad) == 1
    assert store.quarantine() == []


def test_a_new_projection_version_tries_the_plan_again(
    engine: Engine, sync_store: EventStore
) -> None:
    store = sync_store
    _, bad, _, _ = three_plans(engine, store)
    projections = ProjectionEngine(store, snapshot_every=None)
    projections.replay(Fragile())

    class FixedV2(Fixed):
        version = 2

    report = projections.replay(FixedV2())
    assert report.still_quarantined == []
    assert report.rebuilt == 3
    assert snapshot_count(store, bad) == 2
    assert store.quarantine() == []


def test_verify_names_the_unfoldable_plan_and_records_it(
    engine: Engine, sync_store: EventStore
) -> None:
    store = sync_store
    good, bad, _, event = three_plans(engine, store)
    projections = ProjectionEngine(store, snapshot_every=None)
    assert projections.verify(Fragile(), good).ok
    report = projections.verify(Fragile(), bad)
    assert not report.ok
    assert report.snapshot_status == "unfoldable"
    assert report.failure is not None
    assert report.failure.event_id == event
    assert [e.plan_id for e in store.quarantine()] == [bad]


def test_the_asyncio_verify_records_the_unfoldable_plan_too(
    engine: Engine, sync_store: EventStore, backend_url: str
) -> None:
    store = sync_store
    good, bad, _, event = three_plans(engine, store)

    async def verify() -> tuple[bool, str, UUID | None]:
        async with AsyncEventStore.from_url(backend_url) as async_store:
            projections = AsyncProjectionEngine(async_store, snapshot_every=None)
            assert (await projections.verify(Fragile(), good)).ok
            report = await projections.verify(Fragile(), bad)
            failed = None if report.failure is None else report.failure.event_id
            return report.ok, report.snapshot_status, failed

    assert asyncio.run(verify()) == (False, "unfoldable", event)
    (entry,) = store.quarantine()
    assert (entry.plan_id, entry.event_id, entry.projection) == (bad, event, "fragile")


def test_loading_the_plan_raises_an_error_naming_the_event_and_what_to_do(
    engine: Engine, store: EventStore
) -> None:
    from tests.faces import projection_engine

    _, bad, _, event = three_plans(engine, store)
    with pytest.raises(FoldFailed) as caught:
        projection_engine(store).load(Fragile(), bad)
    failure = caught.value
    assert (failure.plan_id, failure.event_id, failure.event_type) == (bad, event, "note_added")
    message = str(failure)
    assert str(event) in message
    assert str(bad) in message
    assert "soft-delete the event" in message
    assert "eventsource quarantine --retry" in message
    assert isinstance(failure.__cause__, ValueError)


def test_retry_after_a_fix_folds_and_releases_and_a_failing_retry_counts(
    engine: Engine, sync_store: EventStore
) -> None:
    store = sync_store
    _, bad, _, _ = three_plans(engine, store)
    projections = ProjectionEngine(store, snapshot_every=None)
    projections.replay(Fragile())
    failure = projections.retry_quarantined(Fragile(), bad)
    assert failure is not None
    assert failure.plan_id == bad
    assert store.quarantine()[0].attempts == 2
    assert projections.retry_quarantined(Fixed(), bad) is None
    assert snapshot_count(store, bad) == 2
    assert store.quarantine() == []


def test_reconcile_deep_records_an_unfoldable_plan_and_never_requeues_it_unchanged(
    engine: Engine, sync_store: EventStore
) -> None:
    store = sync_store
    _, bad, _, _ = three_plans(engine, store)
    Worker(store, [Fixed()]).drain()  # snapshots of every plan, the boom folded
    deep = reconcile(store, [Fragile()], deep=True)  # now the reducer refuses it
    assert [(f.plan_id, f.queued) for f in deep] == [(bad, False)]
    assert deep[0].reason.startswith("quarantined: ")
    assert [e.plan_id for e in store.quarantine()] == [bad]
    assert store.queued() == 0
    with store.write_transaction() as connection:
        connection.execute(text("UPDATE eventsource_snapshots SET stale = true"))
    quick = reconcile(store, [Fragile()])
    assert bad not in {f.plan_id for f in quick}  # unchanged: not queued to fail again
    assert len(quick) == 2


# -- the command line, on the course-designer projection ------------------------


def host_insert(url_engine: Engine, plan: UUID, event_type: str, payload: dict[str, Any]) -> UUID:
    """An event written by the host's own SQL: never validated by the library."""
    event = uuid.uuid4()
    with url_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO course_designer_plan_events "
                "(id, course_designer_plan_id, event_type, payload) VALUES (:i, :p, :t, :j)"
            ),
            {"i": str(event), "p": str(plan), "t": event_type, "j": json.dumps(payload)},
        )
    return event


def sample(plans: int) -> list[str]:
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()
    chosen = sorted({json.loads(line)["course_designer_plan_id"] for line in lines})[:plans]
    return [line for line in lines if json.loads(line)["course_designer_plan_id"] in chosen]


def test_the_cli_sets_a_bad_plan_aside_names_it_and_retries_it_after_a_soft_delete(
    engine: Engine, sync_store: EventStore, backend_url: str
) -> None:
    store = sync_store
    import_events(store, sample(4), create_parents=True)
    plans = sorted(store.plan_ids())
    bad = plans[1]
    event = host_insert(engine, bad, "plan_created", {"name": 5})
    db = ("--database-url", backend_url)

    queued = run_cli("reconcile", *db)
    assert queued.returncode == 0, queued.stderr
    worker = run_cli("worker", "--once", "--batch-size", "1", *db)
    assert worker.returncode == 0, worker.stderr
    assert "folded 4 plans (1 plan quarantined: see eventsource quarantine)" in worker.stdout
    assert "Traceback" not in worker.stderr

    verify = run_cli("verify", *db)
    assert verify.returncode == 3, verify.stderr
    assert f"{bad}: CANNOT BE FOLDED at event {event} (plan_created)" in verify.stdout
    assert str(event) in verify.stdout
    assert "1 differ" in verify.stdout

    states = run_cli("state", "--all", "--format", "jsonl", *db)
    assert states.returncode == 3
    assert len(states.stdout.splitlines()) == 3  # every other plan printed
    assert str(bad) in states.stderr
    assert str(event) in states.stderr

    one = run_cli("state", str(bad), *db)
    assert one.returncode == 1
    assert str(event) in one.stderr
    assert "Traceback" not in one.stderr

    replay = run_cli("replay", *db)
    assert replay.returncode == 0, replay.stderr
    assert "rebuilt 3 plans" in replay.stdout
    assert "skipped 1 quarantined plans whose events have not changed" in replay.stdout

    listing = run_cli("quarantine", "--format", "json", *db)
    assert listing.returncode == 0, listing.stderr
    (entry,) = json.loads(listing.stdout)["quarantined"]
    assert entry["plan_id"] == str(bad)
    assert entry["event_id"] == str(event)
    assert entry["event_type"] == "plan_created"
    assert entry["attempts"] >= 1
    table = run_cli("quarantine", *db)
    assert str(bad) in table.stdout
    assert "soft-delete the event" in table.stdout

    still = run_cli("quarantine", "--retry", str(bad), *db)
    assert still.returncode == 3
    assert "still cannot be folded" in still.stdout

    assert run_cli("delete", str(event), *db).returncode == 0
    retried = run_cli("quarantine", "--retry-all", *db)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "1 folded and released, 0 still quarantined" in retried.stdout
    assert json.loads(run_cli("quarantine", "--format", "json", *db).stdout) == {"quarantined": []}
    assert run_cli("verify", *db).returncode == 0


# -- time travel before a plan existed -------------------------------------------


def test_time_travel_before_the_first_event_says_the_plan_had_no_events_then(
    engine: Engine, store: EventStore, backend_url: str
) -> None:
    from tests.faces import projection_engine

    plan, _ = make_plan(engine)
    now = datetime.now(UTC)
    store.append(plan, [NewEvent("plan_created", {"name": "Late"}, occurred_at=now)])
    before = now - timedelta(days=30)
    loads = projection_engine(store, snapshot_every=None)
    for options in ({"as_of": before}, {"known_at": before}):
        with pytest.raises(NoEventsAsOf) as caught:
            loads.load(COURSE, plan, **options)
        assert isinstance(caught.value, UnknownPlan)
        assert "has no events as of" in str(caught.value)
    assert loads.load(COURSE, plan, as_of=now + timedelta(seconds=1)).event_count == 1

    stamp = before.isoformat()
    one = run_cli("state", str(plan), "--as-of", stamp, "--database-url", backend_url)
    assert one.returncode == 1
    assert f"plan {plan} has no events as of" in one.stderr
    assert "Traceback" not in one.stderr

    other, _ = make_plan(engine)
    store.append(other, [NewEvent("plan_created", {"name": "Early"}, occurred_at=before)])
    for flag in ("--as-of", "--known-at"):
        moment = (before + timedelta(days=1)).isoformat()
        listed = run_cli(
            "state", "--all", flag, moment, "--format", "jsonl", "--database-url", backend_url
        )
        assert listed.returncode == 0, listed.stderr
        names = [json.loads(line)["name"] for line in listed.stdout.splitlines()]
        assert names == (["Early"] if flag == "--as-of" else [])
