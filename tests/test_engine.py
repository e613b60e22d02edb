"""The projection engine on both backends: snapshots, staleness, time travel,
inline projections, replay, verify and the golden sample through the store."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text, update

from eventsource import EventStore, Snapshot
from eventsource.errors import ConcurrencyConflict, UnknownPlan
from eventsource.events import NewEvent
from eventsource.tables import snapshots as snapshot_table
from eventsource.transfer import import_file
from projections.course_designer import CourseDesignerPlanProjection
from projections.engine import InlineProjections, ProjectionEngine
from tests.conftest import DATA
from tests.faces import projection_engine

PROJECTION = CourseDesignerPlanProjection()
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)

SCHEDULE: dict[str, Any] = {
    "name": "Databases",
    "stages": [
        {"stage": "Analysis", "planned_starts_on": "2025-04-01", "planned_ends_on": "2025-04-30"},
        {"stage": "Design", "planned_starts_on": "2025-05-01", "planned_ends_on": "2025-05-31"},
        {
            "stage": "Development",
            "planned_starts_on": "2025-06-01",
            "planned_ends_on": "2025-07-31",
        },
        {
            "stage": "Implementation",
            "planned_starts_on": "2025-08-01",
            "planned_ends_on": "2025-08-31",
        },
        {
            "stage": "Evaluation",
            "planned_starts_on": "2025-09-01",
            "planned_ends_on": "2025-09-30",
        },
    ],
}


FINALIZED = {
    "stages": [
        {
            "id": str(uuid.UUID(int=index + 1)),
            "created_at": "2025-03-03T10:00:00.000000Z",
            "updated_at": "2025-03-03T10:00:00.000000Z",
            "stage": stage["stage"],
            "status": "NotStarted",
            "planned_starts_on": stage["planned_starts_on"],
            "planned_ends_on": stage["planned_ends_on"],
            "actual_started_at": None,
            "actual_completed_at": None,
        }
        for index, stage in enumerate(SCHEDULE["stages"])
    ]
}


def workflow(actor: uuid.UUID) -> list[NewEvent]:
    """A plan created, scheduled and started (older service), 3 events apart by an hour."""
    return [
        NewEvent("plan_created", {"name": "Databases"}, actor_user_id=actor, occurred_at=T0),
        NewEvent(
            "schedule_created",
            SCHEDULE,
            actor_user_id=actor,
            occurred_at=T0 + timedelta(hours=1),
        ),
        NewEvent(
            "schedule_finalized",
            FINALIZED,
            actor_user_id=actor,
            occurred_at=T0 + timedelta(hours=2),
        ),
    ]


def renamed(actor: uuid.UUID, name: str, occurred_at: datetime | None = None) -> NewEvent:
    """A schedule saved again under another name (the plan's name follows it)."""
    return NewEvent(
        "schedule_updated", {**SCHEDULE, "name": name}, actor_user_id=actor, occurred_at=occurred_at
    )


def fresh_hash(engine: ProjectionEngine, plan_id: uuid.UUID) -> str:
    return engine.fold_from_scratch(PROJECTION, plan_id).hash


@pytest.fixture
def engine_(store: EventStore) -> ProjectionEngine:
    engine: ProjectionEngine = projection_engine(store, snapshot_every=None)
    return engine


def test_schedule_finalized_older_shape_is_ready_to_start(
    store: EventStore, engine_: ProjectionEngine, plan: tuple[uuid.UUID, uuid.UUID]
) -> None:
    plan_id, actor = plan
    finalized = NewEvent(
        "schedule_finalized",
        FINALIZED,
        actor_user_id=actor,
        occurred_at=T0 + timedelta(hours=2),
    )
    store.append(plan_id, [*workflow(actor)[:2], finalized])
    state = engine_.load(PROJECTION, plan_id).json
    assert isinstance(state, dict)
    assert state["status"] == "ready_to_start"
    assert state["created_by_user_id"] == str(actor)
    assert [s["stage"] for s in state["stages"]] == [
        "analysis",
        "design",
        "development",
        "implementation",
        "evaluation",
    ]


def test_load_uses_snapshot_plus_tail_and_equals_full_fold(
    store: EventStore, engine_: ProjectionEngine, plan: tuple[uuid.UUID, uuid.UUID]
) -> None:
    plan_id, actor = plan
    store.append(plan_id, workflow(actor)[:2])
    engine_.snapshot(PROJECTION, plan_id)
    store.append(plan_id, workflow(actor)[2:])
    loaded = engine_.load(PROJECTION, plan_id)
    assert loaded.from_snapshot
    assert loaded.tail == 1
    assert loaded.event_count == 3
    assert loaded.hash == fresh_hash(engine_, plan_id)


def test_snapshot_of_another_projection_version_is_never_used(
    store: EventStore, engine_: ProjectionEngine, plan: tuple[uuid.UUID, uuid.UUID]
) -> None:
    plan_id, actor = plan
    store.append(plan_id, workflow(actor))
    engine_.snapshot(PROJECTION, plan_id)
    with store.engine.begin() as conn:
        conn.execute(update(snapshot_table).values(projection_version=PROJECTION.version + 1))
    loaded = engine_.load(PROJECTION, plan_id)
    assert not loaded.from_snapshot
    assert loaded.hash == fresh_hash(engine_, plan_id)


def _snapshot_row(store: EventStore, plan_id: uuid.UUID) -> Snapshot:
    with store.read_transaction() as conn:
        row = store.load_snapshot(store.raw(conn), plan_id, PROJECTION.name)
    assert row is not None
    return row


@pytest.mark.parametrize("change", ["backfill", "soft_delete", "restore"])
def test_write_at_or_before_snapshot_position_makes_it_unusable(
    store: EventStore,
    engine_: ProjectionEngine,
    plan: tuple[uuid.UUID, uuid.UUID],
    change: str,
) -> None:
    plan_id, actor = plan
    result = store.append(plan_id, workflow(actor))
    if change == "restore":
        store.soft_delete(result.event_ids[1])
    engine_.snapshot(PROJECTION, plan_id)
    before = _snapshot_row(store, plan_id)
    assert not before.stale
    if change == "backfill":
        store.append(plan_id, [renamed(actor, "Backfilled", T0 + timedelta(minutes=90))])
    elif change == "soft_delete":
        store.soft_delete(result.event_ids[1])
    else:
        store.restore(result.event_ids[1])
    assert _snapshot_row(store, plan_id).stale
    loaded = engine_.load(PROJECTION, plan_id)
    assert not loaded.from_snapshot, "a stale snapshot must never be served"
    assert loaded.hash == fresh_hash(engine_, plan_id)
    assert loaded.hash != before.state_hash
    engine_.snapshot(PROJECTION, plan_id)
    assert engine_.load(PROJECTION, plan_id).from_snapshot


def test_restore_after_snapshot_position_is_folded_from_the_tail(
    store: EventStore, engine_: ProjectionEngine, plan: tuple[uuid.UUID, uuid.UUID]
) -> None:
    plan_id, actor = plan
    result = store.append(plan_id, workflow(actor))
    store.soft_delete(result.event_ids[2])
    engine_.snapshot(PROJECTION, plan_id)
    store.restore(result.event_ids[2])
    loaded = engine_.load(PROJECTION, plan_id)
    assert loaded.from_snapshot
    assert loaded.tail == 1
    assert loaded.hash == fresh_hash(engine_, plan_id)


def test_append_after_snapshot_position_keeps_it_usable(
    store: EventStore, engine_: ProjectionEngine, plan: tuple[uuid.UUID, uuid.UUID]
) -> None:
    plan_id, actor = plan
    store.append(plan_id, workflow(actor)[:2])
    engine_.snapshot(PROJECTION, plan_id)
    store.append(plan_id, workflow(actor)[2:])
    assert not _snapshot_row(store, plan_id).stale


def test_snapshot_of_a_plan_written_in_one_append_reads_only_the_later_events(
    store: EventStore, engine_: ProjectionEngine, plan: tuple[uuid.UUID, uuid.UUID]
) -> None:
    # Every event of one append ties on occurred_at and created_at, so the
    # snapshot's position sits inside a tie group: the tail is read from after
    # that instant, and a later write at exactly that instant stales it.
    plan_id, actor = plan
    renames = [renamed(actor, f"n{i}") for i in range(30)]
    created = NewEvent("plan_created", {"name": "Tied"}, actor_user_id=actor)
    store.append(plan_id, [created, *renames])
    engine_.snapshot(PROJECTION, plan_id)
    instant = _snapshot_row(store, plan_id).position
    assert instant is not None
    store.append(plan_id, [renamed(actor, "later")])
    loaded = engine_.load(PROJECTION, plan_id)
    assert (loaded.from_snapshot, loaded.tail, loaded.event_count) == (True, 1, 32)
    assert loaded.hash == fresh_hash(engine_, plan_id)
    store.append(plan_id, [renamed(actor, "at the snapshot's instant", instant.occurred_at)])
    assert _snapshot_row(store, plan_id).stale
    loaded = engine_.load(PROJECTION, plan_id)
    assert not loaded.from_snapshot
    assert loaded.event_count == 33
    # Folded in stream order: after the tie group, before the later append.
    assert loaded.json["name"] == "later"
    assert loaded.hash == fresh_hash(engine_, plan_id)


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_a_load_is_one_statement_with_or_without_a_snapshot(
    sync_store: EventStore, plan: tuple[uuid.UUID, uuid.UUID]
) -> None:
    # One statement sees one snapshot of the database: no BEGIN, no COMMIT, and
    # on PostgreSQL one round trip (the same SQL; SQLite can show what runs).
    plan_id, actor = plan
    engine = ProjectionEngine(sync_store, snapshot_every=None)
    sync_store.append(plan_id, workflow(actor)[:2])
    seen: list[str] = []
    with sync_store.database.connection() as raw:
        raw.set_trace_callback(seen.append)
    try:
        whole = engine.load(PROJECTION, plan_id)
        assert (whole.from_snapshot, whole.event_count) == (False, 2)
        assert len(seen) == 1, seen
        assert "FROM eventsource_snapshots" in seen[0], seen
        assert "FROM course_designer_plan_events" in seen[0], seen
        engine.snapshot(PROJECTION, plan_id)
        sync_store.append(plan_id, workflow(actor)[2:])
        seen.clear()
        loaded = engine.load(PROJECTION, plan_id)
        assert (loaded.from_snapshot, loaded.tail, loaded.event_count) == (True, 1, 3)
        assert len(seen) == 1, seen
        assert loaded.hash == fresh_hash(engine, plan_id)
    finally:
        with sync_store.database.connection() as raw:
            raw.set_trace_callback(None)


def test_long_loads_with_and_without_a_snapshot_equal_a_fold_from_scratch(
    store: EventStore, engine_: ProjectionEngine, plan: tuple[uuid.UUID, uuid.UUID]
) -> None:
    # Past SHORT_LOAD rows PostgreSQL's load streams instead of reading the result
    # at once: the snapshot row and every event must come through either way.
    plan_id, actor = plan
    store.append(plan_id, workflow(actor)[:2])

    def renames(count: int, start: int) -> list[NewEvent]:
        return [renamed(actor, f"n{start + i}") for i in range(count)]

    store.append(plan_id, renames(700, 0))
    whole = engine_.load(PROJECTION, plan_id)
    assert (whole.from_snapshot, whole.event_count) == (False, 702)
    assert whole.json["name"] == "n699"
    assert whole.hash == fresh_hash(engine_, plan_id)
    engine_.snapshot(PROJECTION, plan_id)
    store.append(plan_id, renames(600, 700))
    loaded = engine_.load(PROJECTION, plan_id)
    assert (loaded.from_snapshot, loaded.tail, loaded.event_count) == (True, 600, 1302)
    assert loaded.json["name"] == "n1299"
    assert loaded.hash == fresh_hash(engine_, plan_id)


def test_snapshot_every_n_events_policy(
    store: EventStore, plan: tuple[uuid.UUID, uuid.UUID]
) -> None:
    plan_id, actor = plan
    engine = projection_engine(store, snapshot_every=3)
    store.append(plan_id, workflow(actor)[:2])
    engine.load(PROJECTION, plan_id)
    with store.read_transaction() as conn:
        assert store.load_snapshot(store.raw(conn), plan_id, PROJECTION.name) is None
    store.append(plan_id, workflow(actor)[2:])
    engine.load(PROJECTION, plan_id)
    assert _snapshot_row(store, plan_id).event_count == 3


def test_inline_projection_is_current_after_each_append(
    store: EventStore, plan: tuple[uuid.UUID, uuid.UUID]
) -> None:
    plan_id, actor = plan
    engine = projection_engine(store, snapshot_every=None)
    store.hooks.append(InlineProjections(engine, [PROJECTION]))
    for event in workflow(actor):
        store.append(plan_id, [event])
        row = _snapshot_row(store, plan_id)
        assert row.state_hash == fresh_hash(engine, plan_id)
    assert _snapshot_row(store, plan_id).state["status"] == "ready_to_start"


def test_inline_projection_rolls_back_with_a_failed_append(
    store: EventStore, plan: tuple[uuid.UUID, uuid.UUID]
) -> None:
    plan_id, actor = plan
    engine = projection_engine(store, snapshot_every=None)
    store.hooks.append(InlineProjections(engine, [PROJECTION]))
    store.append(plan_id, workflow(actor)[:1])
    with pytest.raises(ConcurrencyConflict):
        store.append(plan_id, workflow(actor)[1:], expected_version=0)
    assert _snapshot_row(store, plan_id).event_count == 1


def test_concurrent_inline_appends_never_lose_a_snapshot_update(
    backend_url: str, engine: Engine, plan: tuple[uuid.UUID, uuid.UUID]
) -> None:
    plan_id, actor = plan
    writers = 4
    per_writer = 10
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write() -> None:
        from eventsource.config import make_engine

        own = EventStore(make_engine(backend_url))
        own.hooks.append(InlineProjections(projection_engine(own), [PROJECTION]))
        try:
            barrier.wait()
            for _ in range(per_writer):
                own.append(plan_id, [NewEvent("task_created", {"title": "t"}, actor_user_id=actor)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=write) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    store = EventStore(engine)
    row = _snapshot_row(store, plan_id)
    assert row.event_count == writers * per_writer


def test_time_travel_answers_all_four_questions(
    store: EventStore, engine_: ProjectionEngine, plan: tuple[uuid.UUID, uuid.UUID]
) -> None:
    """A plan whose past was changed by a backfill and a soft delete."""
    plan_id, actor = plan
    # Recorded in the first session: created, scheduled (name "Databases").
    first = store.append(plan_id, workflow(actor)[:2])
    k1 = _now(store)
    # Later: a rename is backfilled into the past (occurred between the two),
    # and the original schedule is retracted as a mistake.
    store.append(plan_id, [renamed(actor, "Backfilled name", T0 + timedelta(minutes=30))])
    store.soft_delete(first.event_ids[1])
    k2 = _now(store)

    def status_name(**kwargs: Any) -> tuple[str, str | None]:
        data = engine_.load(PROJECTION, plan_id, **kwargs).json
        assert isinstance(data, dict)
        return data["status"], data["name"]

    # Valid time between creation and the backfilled rename, as known now.
    assert status_name(as_of=T0 + timedelta(minutes=10)) == ("draft", "Databases")
    # As known now, all of time: the backfill counts, the deleted schedule does not.
    assert status_name() == ("scheduling", "Backfilled name")
    # As known at k1 (before the backfill and the deletion), all of valid time.
    assert status_name(known_at=k1) == ("scheduling", "Databases")
    # Both: known at k1, valid at T0+45min: the schedule (T0+1h) had not occurred.
    assert status_name(known_at=k1, as_of=T0 + timedelta(minutes=45)) == ("draft", "Databases")
    # Known at k2, valid at T0+45min: the backfilled rename counts.
    assert status_name(known_at=k2, as_of=T0 + timedelta(minutes=45)) == (
        "scheduling",
        "Backfilled name",
    )
    # Restoring the schedule changes the present but not what was known at k2.
    store.restore(first.event_ids[1])
    assert status_name() == ("scheduling", "Databases")
    assert status_name(known_at=k2) == ("scheduling", "Backfilled name")


def _now(store: EventStore) -> datetime:
    with store.write_transaction() as conn:
        stamp = store.lock_plan(conn, uuid.UUID(int=1), missing_ok=True)
    return stamp + timedelta(microseconds=1)


def test_unknown_plan_is_an_error(store: EventStore, engine_: ProjectionEngine) -> None:
    with pytest.raises(UnknownPlan):
        engine_.load(PROJECTION, uuid.uuid4())


@pytest.mark.parametrize("batch_size", [1, 5])
def test_replay_rebuilds_and_resumes_after_interruption(
    store: EventStore, engine: Engine, batch_size: int
) -> None:
    import_file(store, str(DATA / "course_designer_events.jsonl"), create_parents=True)
    rebuilder = projection_engine(store, snapshot_every=None)
    plans = sorted(store.plan_ids())[:20]
    seen: list[int] = []

    class Interrupted(Exception):
        pass

    def stop_after_ten(n: int) -> None:
        # Progress is reported per committed batch: stop once ten plans are in.
        seen.append(n)
        if sum(seen) == 10:
            raise Interrupted

    with pytest.raises(Interrupted):
        rebuilder.replay(
            PROJECTION, plans, run="r1", progress=stop_after_ten, batch_size=batch_size
        )
    assert rebuilder.pending_in_run("r1") == 10
    report = rebuilder.replay(PROJECTION, plans, run="r1", batch_size=batch_size)
    assert report.skipped_done == 10
    assert report.rebuilt == 10
    assert rebuilder.pending_in_run("r1") == 0
    for plan_id in plans:
        assert _snapshot_row(store, plan_id).state_hash == fresh_hash(rebuilder, plan_id)


def test_verify_reports_a_snapshot_that_disagrees_with_its_events(
    store: EventStore, engine_: ProjectionEngine, plan: tuple[uuid.UUID, uuid.UUID]
) -> None:
    plan_id, actor = plan
    store.append(plan_id, workflow(actor))
    engine_.snapshot(PROJECTION, plan_id)
    assert engine_.verify(PROJECTION, plan_id).ok
    with store.engine.begin() as conn:
        row = conn.execute(select(snapshot_table.c.state)).scalar_one()
        if isinstance(row, str):
            row = json.loads(row)
        row["name"] = "tampered"
        conn.execute(update(snapshot_table).values(state=row))
    report = engine_.verify(PROJECTION, plan_id)
    assert report.deterministic
    assert report.snapshot_status == "differs"
    assert not report.ok


def test_golden_sample_through_the_store_on_each_backend(store: EventStore) -> None:
    import_file(store, str(DATA / "course_designer_events.jsonl"), create_parents=True)
    expected = json.loads((DATA / "course_designer_states.json").read_text())["plans"]
    rebuilder = projection_engine(store, snapshot_every=None)
    rebuilder.replay(PROJECTION, list(store.plan_ids()))
    actual = {}
    for plan_id in store.plan_ids():
        loaded = rebuilder.load(PROJECTION, plan_id)
        assert loaded.from_snapshot
        actual[str(plan_id)] = loaded.json
    assert len(actual) == 300
    mismatched = [p for p in expected if actual.get(p) != expected[p]]
    assert mismatched == []


def test_host_sql_soft_delete_is_caught_by_reconcile_not_served_stale(
    store: EventStore, engine_: ProjectionEngine, plan: tuple[uuid.UUID, uuid.UUID]
) -> None:
    """Writes outside the library bypass staleness marking: verify exposes them."""
    plan_id, actor = plan
    result = store.append(plan_id, workflow(actor))
    engine_.snapshot(PROJECTION, plan_id)
    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE course_designer_plan_events SET deleted_at = :now WHERE id = :id"),
            {
                "now": datetime.now(UTC)
                if store.dialect == "postgresql"
                else datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "id": result.event_ids[1]
                if store.dialect == "postgresql"
                else str(result.event_ids[1]),
            },
        )
    assert engine_.verify(PROJECTION, plan_id).snapshot_status == "differs"


class AsyncPlans(CourseDesignerPlanProjection):
    """The plan projection, maintained only by workers."""

    name = "course_designer_plan_async"
    asynchronous = True


def test_asynchronous_projection_snapshots_are_written_only_by_workers(
    store: EventStore, plan: tuple[uuid.UUID, uuid.UUID]
) -> None:
    from eventsource.errors import ConfigurationError
    from projections.worker import Worker

    plan_id, actor = plan
    projection = AsyncPlans()
    engine = projection_engine(store, snapshot_every=1)
    with pytest.raises(ConfigurationError, match="asynchronous"):
        InlineProjections(engine, [projection])
    store.append(plan_id, workflow(actor))
    loaded = engine.load(projection, plan_id)
    assert loaded.event_count == 3
    with store.read_transaction() as conn:
        assert store.load_snapshot(store.raw(conn), plan_id, projection.name) is None
    assert Worker(store, [projection]).drain() == 1
    with store.read_transaction() as conn:
        stored = store.load_snapshot(store.raw(conn), plan_id, projection.name)
    assert stored is not None
    assert stored.state_hash == loaded.hash
