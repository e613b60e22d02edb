"""Served state is verified: a snapshot whose state no longer hashes to its
``state_hash`` (a row altered outside the library) is never served. A load folds
the events instead, a worker's refresh rebuilds it, and ``reconcile`` (quick mode
too) reports and queues it."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Engine, update

from eventsource import EventStore, NewEvent
from eventsource.tables import snapshots
from projections import CourseDesignerPlanProjection, ProjectionEngine
from projections.fold import canonical_json, state_hash
from projections.worker import Worker, reconcile
from tests.conftest import make_plan
from tests.faces import projection_engine

COURSE = CourseDesignerPlanProjection()


def forge(store: EventStore, plan: UUID, state: Any) -> None:
    with store.write_transaction() as connection:
        connection.execute(
            update(snapshots)
            .where(snapshots.c.plan_id == plan, snapshots.c.projection == COURSE.name)
            .values(state=state)
        )


def planned(engine: Engine, store: EventStore) -> UUID:
    plan, _ = make_plan(engine)
    store.append(plan, [NewEvent("plan_created", {"name": "Real name"})])
    ProjectionEngine(store).snapshot(COURSE, plan)
    return plan


def test_a_forged_snapshot_is_never_served_and_the_load_says_so(
    engine: Engine, store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    plan = planned(engine, store)
    honest = projection_engine(store).load(COURSE, plan)
    assert honest.from_snapshot
    row = store.snapshot_row(plan, COURSE.name)
    assert row is not None
    forged = {**row.state, "name": "Forged"}
    forge(store, plan, forged)
    with caplog.at_level(logging.WARNING, logger="projections.engine"):
        served = projection_engine(store).load(COURSE, plan)
    assert served.json == honest.json
    assert served.hash == honest.hash
    assert not served.from_snapshot
    assert "does not match its state_hash" in caplog.text


def test_reconcile_reports_the_forged_snapshot_and_a_worker_rebuilds_it(
    engine: Engine, sync_store: EventStore
) -> None:
    store = sync_store
    plan = planned(engine, store)
    other = planned(engine, store)
    Worker(store, [COURSE]).drain()  # the appends' changes: the feed is empty now
    row = store.snapshot_row(plan, COURSE.name)
    assert row is not None
    forge(store, plan, {**row.state, "name": "Forged"})
    findings = reconcile(store, [COURSE])  # quick mode: no fold
    assert [(f.plan_id, f.queued) for f in findings] == [(plan, True)]
    assert "does not match its state_hash" in findings[0].reason
    assert other not in {f.plan_id for f in findings}
    Worker(store, [COURSE]).drain()
    repaired = store.snapshot_row(plan, COURSE.name)
    assert repaired is not None
    assert repaired.state["name"] == "Real name"
    assert state_hash(canonical_json(repaired.state)) == repaired.state_hash
    assert reconcile(store, [COURSE]) == []


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
def test_a_load_that_refolds_gives_its_connection_back_first(
    engine: Engine, sync_store: EventStore
) -> None:
    # The load's own stream, left unread when its snapshot is refused, is closed
    # before the refold reads again: the refold runs on the same connection
    # (SQLite's trace on it sees both statements), not on a second one.
    plan = planned(engine, sync_store)
    row = sync_store.snapshot_row(plan, COURSE.name)
    assert row is not None
    forge(sync_store, plan, {**row.state, "name": "Forged"})
    seen: list[str] = []
    with sync_store.database.connection() as raw:
        raw.set_trace_callback(seen.append)
    try:
        served = ProjectionEngine(sync_store, snapshot_every=None).load(COURSE, plan)
    finally:
        with sync_store.database.connection() as raw:
            raw.set_trace_callback(None)
    assert not served.from_snapshot
    assert served.json["name"] == "Real name"
    reads = [sql for sql in seen if "FROM course_designer_plan_events" in sql]
    assert len(reads) == 2, seen
