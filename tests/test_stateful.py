"""A state machine against a real store: the engine never serves a stale state.

Appends, backfills (ties included), idempotent re-sends, soft deletes, restores,
snapshots, replays, verifies and time-travel queries run interleaved against
SQLite and PostgreSQL. After every step, and in every query rule, each state the
engine serves must equal a fresh in-memory fold of the events that should count:
the model keeps the rows the store recorded and decides on its own which of them
count and in which order (``projections.testing.live_stream``).

Time travel by record time (``known_at``) is checked at instants read from the
database clock between steps, when the model knows exactly which rows had been
recorded and which were deleted.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar, cast
from uuid import UUID

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, text

from eventsource import EventStore, StreamPosition
from eventsource.errors import NoEventsAsOf, UnknownPlan
from eventsource.events import STAGES, NewEvent, RecordedEvent
from eventsource.jsonl import format_timestamp
from projections.course_designer import CourseDesignerPlanProjection
from projections.engine import InlineProjections, LoadedState, ProjectionEngine, diff
from projections.fold import FoldResult, canonical_json, fold, state_hash
from projections.testing import EchoProjection, json_objects, live_stream, load_profile
from projections.testing.profiles import database_settings
from projections.typing import Projection
from tests.conftest import make_plan
from tests.faces import BlockingAsyncEngine, BlockingAsyncStore

load_profile()

PLAN = CourseDesignerPlanProjection()
"""Kept current inline, in every write's transaction."""
ECHO = EchoProjection(name="echo", tie_rank={"zeta": -1, "stage_completed": 1, "alpha": 2})
"""Snapshotted on demand; its state is the stream, so any order slip shows."""
PROJECTIONS: tuple[Projection[Any], ...] = (PLAN, ECHO)


class PagedStore(EventStore):
    """Reads in pages of two events, so folds cross keyset-page boundaries."""

    def read(
        self, plan_id: UUID | str, *, page_size: int = 2, **kwargs: Any
    ) -> Iterator[RecordedEvent]:
        return super().read(plan_id, page_size=page_size, **kwargs)


# --- Events to append ---------------------------------------------------------------

Spec = tuple[str, str | None, dict[str, Any]]


def _schedule(first: date) -> list[dict[str, str]]:
    stages = []
    for index, name in enumerate(STAGES):
        starts = first + timedelta(days=30 * index)
        stages.append(
            {
                "stage": name.capitalize(),
                "planned_starts_on": starts.isoformat(),
                "planned_ends_on": (starts + timedelta(days=29)).isoformat(),
            }
        )
    return stages


def _finalized(activated: datetime | None) -> dict[str, Any]:
    stamp = format_timestamp(datetime(2025, 1, 1, tzinfo=UTC))
    rows = [
        {
            "id": str(UUID(int=index + 1)),
            "created_at": stamp,
            "updated_at": stamp,
            "status": "InProgress" if activated and index == 0 else "NotStarted",
            "actual_started_at": format_timestamp(activated) if activated and index == 0 else None,
            "actual_completed_at": None,
            **planned,
        }
        for index, planned in enumerate(_schedule(date(2025, 2, 1)))
    ]
    if activated is None:
        return {"stages": rows}
    return {"stages": rows, "active_stage": "Analysis", "activated_at": format_timestamp(activated)}


PLAN_EVENTS: tuple[Spec, ...] = (
    ("plan_created", None, {"name": "Databases 101"}),
    ("schedule_created", None, {"name": "Databases", "stages": _schedule(date(2025, 2, 1))}),
    ("schedule_updated", None, {"name": None, "stages": _schedule(date(2025, 3, 3))}),
    ("schedule_finalized", None, _finalized(None)),
    ("schedule_finalized", "analysis", _finalized(datetime(2025, 1, 9, 8, 0, 0, 1234, UTC))),
    ("plan_started", "analysis", {}),
    (
        "stage_extended",
        "analysis",
        {"stage_id": str(UUID(int=1)), "months": 1, "new_ends_on": "2025-03-31"},
    ),
    *((t, s, {}) for s in STAGES for t in ("stage_completed", "stage_started")),
    ("plan_completed", None, {}),
)
"""Valid course-designer events: they fold in any order and any subset."""

SPECS: st.SearchStrategy[Spec] = st.sampled_from(PLAN_EVENTS) | st.tuples(
    st.sampled_from(("alpha", "beta", "zeta", "reminder_sent")),
    st.none() | st.sampled_from(STAGES),
    json_objects(max_size=2),
)
BATCHES = st.lists(SPECS, min_size=1, max_size=3)
PLAN_INDEX = st.integers(0, 1)
PROJECTION_INDEX = st.integers(0, len(PROJECTIONS) - 1)


# --- The machine --------------------------------------------------------------------


class EngineMachine(RuleBasedStateMachine):
    """One store and engine, two fresh plans per run, and the model of their rows."""

    sql: ClassVar[Engine]
    url: ClassVar[str]
    face: ClassVar[str] = "sync"

    def __init__(self) -> None:
        super().__init__()
        self.face_store: BlockingAsyncStore | None = None
        if self.face == "async":
            # The same rules through the asyncio face: reads in pages of two there too.
            self.face_store = BlockingAsyncStore(self.sql, self.url, page_size=2)
            self.store = cast(EventStore, self.face_store)
            self.engine = cast(
                ProjectionEngine, BlockingAsyncEngine(self.face_store, snapshot_every=None)
            )
        else:
            self.store = PagedStore(self.sql)
            self.engine = ProjectionEngine(self.store, snapshot_every=None)
        self.store.hooks.append(InlineProjections(self.engine, [PLAN]))
        self.plans = [make_plan(self.sql) for _ in range(2)]
        self.rows: dict[UUID, RecordedEvent] = {}
        self.ticks: list[tuple[datetime, dict[UUID, RecordedEvent]]] = []

    events = Bundle("events")

    def teardown(self) -> None:
        # Every run's store gives its connections back at once: left to the garbage
        # collector (the inline hook makes a cycle), a few dozen runs exhaust the pool.
        if self.face_store is not None:
            self.face_store.close()
        else:
            self.store.close()

    # -- the model -------------------------------------------------------------

    def tick(self) -> None:
        """Read the database clock after a write: the model's rows are the truth then."""
        if self.sql.dialect.name == "postgresql":
            with self.sql.connect() as connection:
                now: datetime = connection.execute(text("SELECT clock_timestamp()")).scalar_one()
        else:
            now = datetime.now(UTC)
        self.ticks.append((now.astimezone(UTC), dict(self.rows)))

    def expect(
        self,
        loaded: LoadedState[Any],
        projection: Projection[Any],
        plan_id: UUID,
        *,
        valid_at: datetime | None = None,
        tick: int | None = None,
    ) -> None:
        rows = self.rows if tick is None else self.ticks[tick][1]
        stream = live_stream(projection, rows.values(), plan_id, valid_at=valid_at)
        start = FoldResult(state=projection.initial_state(plan_id))
        expected_json = projection.to_json(fold(projection, stream, start).state)
        expected = canonical_json(expected_json)
        where = f"{projection.name}, plan {plan_id}, valid_at={valid_at}, tick={tick}"
        assert canonical_json(loaded.json) == expected, (where, diff(expected_json, loaded.json))
        assert canonical_json(projection.to_json(loaded.state)) == expected, where
        assert loaded.hash == state_hash(expected), where
        assert loaded.event_count == len(stream), where
        if stream:
            assert loaded.position == StreamPosition.of(stream[-1], projection.tie_rank), where

    def existed(
        self,
        projection: Projection[Any],
        plan_id: UUID,
        *,
        valid_at: datetime | None = None,
        tick: int | None = None,
    ) -> bool:
        """Whether time travel finds live events (else it raises ``NoEventsAsOf``)."""
        rows = self.rows if tick is None else self.ticks[tick][1]
        return bool(live_stream(projection, rows.values(), plan_id, valid_at=valid_at))

    def has_rows(self, plan_id: UUID) -> bool:
        return any(e.plan_id == plan_id for e in self.rows.values())

    def record(self, ids: tuple[UUID, ...]) -> None:
        for event_id in ids:
            self.rows[event_id] = self.store.get(event_id)
        self.tick()

    # -- writes ----------------------------------------------------------------

    @initialize(every=st.sampled_from((None, 1, 3)))
    def snapshot_policy(self, every: int | None) -> None:
        """Automatic snapshots on load: never, after every event, after three."""
        self.engine.snapshot_every = every

    def _append(self, plan_id: UUID, user: UUID, batch: list[Spec], at: datetime | None) -> Any:
        new = [
            NewEvent(t, p, stage=s, actor_user_id=user if i % 2 == 0 else None, occurred_at=at)
            for i, (t, s, p) in enumerate(batch)
        ]
        result = self.store.append(plan_id, new)
        assert result.appended == len(batch)
        self.record(result.event_ids)
        return multiple(*result.event_ids)

    @rule(target=events, plan=PLAN_INDEX, batch=BATCHES)
    def append(self, plan: int, batch: list[Spec]) -> Any:
        plan_id, user = self.plans[plan]
        return self._append(plan_id, user, batch, None)

    @rule(
        target=events,
        anchor=events,
        batch=BATCHES,
        earlier=st.sampled_from((timedelta(0), timedelta(microseconds=1)))
        | st.timedeltas(timedelta(0), timedelta(days=2)),
    )
    def backfill(self, anchor: UUID, batch: list[Spec], earlier: timedelta) -> Any:
        """Events that occurred at (a tie) or before an existing event of its plan."""
        row = self.rows[anchor]
        user = dict(self.plans)[row.plan_id]
        return self._append(row.plan_id, user, batch, row.occurred_at - earlier)

    @rule(event=events)
    def resend(self, event: UUID) -> None:
        """Re-sending a stored event with the same content is a no-op."""
        row = self.rows[event]
        again = NewEvent(
            row.event_type,
            row.payload,
            stage=row.stage,
            actor_user_id=row.actor_user_id,
            occurred_at=row.occurred_at,
            id=row.id,
        )
        assert self.store.append(row.plan_id, [again]).appended == 0

    @rule(event=events)
    def soft_delete(self, event: UUID) -> None:
        assert self.store.soft_delete(event) == (self.rows[event].deleted_at is None)
        self.record((event,))

    @rule(event=events)
    def restore(self, event: UUID) -> None:
        assert self.store.restore(event) == (self.rows[event].deleted_at is not None)
        self.record((event,))

    # -- snapshots and rebuilds ----------------------------------------------------

    @rule(plan=PLAN_INDEX, projection=PROJECTION_INDEX, from_scratch=st.booleans())
    def snapshot(self, plan: int, projection: int, from_scratch: bool) -> None:
        plan_id = self.plans[plan][0]
        chosen = PROJECTIONS[projection]
        loaded = self.engine.snapshot(chosen, plan_id, from_scratch=from_scratch)
        self.expect(loaded, chosen, plan_id)

    @rule(projection=PROJECTION_INDEX)
    def replay(self, projection: int) -> None:
        chosen = PROJECTIONS[projection]
        report = self.engine.replay(chosen, [p for p, _ in self.plans])
        assert report.rebuilt == len(self.plans)
        for plan_id, _ in self.plans:
            assert self.engine.verify(chosen, plan_id).snapshot_status == "ok"

    # -- what the engine serves ------------------------------------------------------

    @invariant()
    def every_load_is_a_fresh_fold(self) -> None:
        for plan_id, _ in self.plans:
            for projection in PROJECTIONS:
                if not self.has_rows(plan_id):
                    with pytest.raises(UnknownPlan):
                        self.engine.load(projection, plan_id)
                    continue
                self.expect(self.engine.load(projection, plan_id), projection, plan_id)

    @precondition(lambda self: bool(self.rows))
    @rule(
        plan=PLAN_INDEX,
        projection=PROJECTION_INDEX,
        anchor=events,
        shift=st.sampled_from((-1, 0, 1)),
        use_snapshot=st.booleans(),
    )
    def as_of(
        self, plan: int, projection: int, anchor: UUID, shift: int, use_snapshot: bool
    ) -> None:
        """Valid time: the events that occurred by T (T at, just before, just after one)."""
        plan_id, chosen = self.plans[plan][0], PROJECTIONS[projection]
        at = self.rows[anchor].occurred_at + timedelta(microseconds=shift)
        if self.has_rows(plan_id) and self.existed(chosen, plan_id, valid_at=at):
            loaded = self.engine.load(chosen, plan_id, as_of=at, use_snapshot=use_snapshot)
            self.expect(loaded, chosen, plan_id, valid_at=at)
        elif self.has_rows(plan_id):
            with pytest.raises(NoEventsAsOf):
                self.engine.load(chosen, plan_id, as_of=at, use_snapshot=use_snapshot)

    @precondition(lambda self: bool(self.ticks))
    @rule(
        plan=PLAN_INDEX,
        projection=PROJECTION_INDEX,
        pick=st.integers(0, 10**6),
        anchor=st.none() | events,
    )
    def known_at(self, plan: int, projection: int, pick: int, anchor: UUID | None) -> None:
        """Record time (and optionally valid time too): what the system knew then."""
        plan_id, chosen = self.plans[plan][0], PROJECTIONS[projection]
        index = pick % len(self.ticks)
        at = None if anchor is None else self.rows[anchor].occurred_at
        known = self.ticks[index][0]
        if self.has_rows(plan_id) and self.existed(chosen, plan_id, valid_at=at, tick=index):
            loaded = self.engine.load(chosen, plan_id, known_at=known, as_of=at)
            self.expect(loaded, chosen, plan_id, valid_at=at, tick=index)
        elif self.has_rows(plan_id):
            with pytest.raises(NoEventsAsOf):
                self.engine.load(chosen, plan_id, known_at=known, as_of=at)

    @rule(plan=PLAN_INDEX, projection=PROJECTION_INDEX)
    def verify(self, plan: int, projection: int) -> None:
        plan_id, chosen = self.plans[plan][0], PROJECTIONS[projection]
        report = self.engine.verify(chosen, plan_id)
        scratch = self.engine.fold_from_scratch(chosen, plan_id)
        self.expect(scratch, chosen, plan_id)
        assert report.deterministic
        assert report.first_hash == scratch.hash
        assert report.ok, report
        if chosen is PLAN and self.has_rows(plan_id):
            # Inline: every write refreshed the snapshot in its own transaction.
            assert report.snapshot_status == "ok", report


@pytest.mark.parametrize("face", ["sync", "async"])
def test_every_state_the_engine_serves_equals_a_fresh_fold(
    engine: Engine, backend_url: str, face: str
) -> None:
    machine = type(
        "EngineMachineOn" + engine.dialect.name.title() + face.title(),
        (EngineMachine,),
        {"sql": engine, "url": backend_url, "face": face},
    )
    run_state_machine_as_test(
        machine,
        settings=database_settings(8),
    )
