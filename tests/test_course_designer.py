"""The course-designer plan projection: the rules of spec/DOMAIN.md, and the golden data."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import FrozenInstanceError
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from pydantic import ValidationError

from eventsource.errors import FoldFailed, InvalidInput
from eventsource.events import STAGES, RecordedEvent
from eventsource.jsonl import format_timestamp, parse_timestamp, row_to_event
from projections.course_designer import (
    CourseDesignerPlanProjection,
    PlanState,
    ScheduleFinalized,
    ScheduleUpdated,
    StageExtended,
    StageSnapshot,
    add_months,
)
from projections.fold import encode_state, fold_from_scratch, sort_key, to_event
from projections.testing import given
from projections.typing import JSONValue, Projection

DATA = Path(__file__).parent / "data"
PROJECTION = CourseDesignerPlanProjection()

PLAN = UUID("00000000-0000-4000-8000-00000000a001")
ALICE = UUID("00000000-0000-4000-8000-0000000000a1")
T0 = datetime(2024, 12, 2, 9, 0, tzinfo=UTC)

_ids = itertools.count(1)


def at(days: float) -> datetime:
    """A moment ``days`` after T0 (the test clock)."""
    return T0 + timedelta(days=days)


# --- Events, as the upstream service writes them --------------------------------


def event(
    event_type: str,
    payload: dict[str, Any] | None = None,
    *,
    stage: str | None = None,
    occurred_at: datetime = T0,
    actor: UUID | None = ALICE,
) -> RecordedEvent:
    return RecordedEvent(
        id=UUID(int=next(_ids)),
        plan_id=PLAN,
        event_type=event_type,
        payload={} if payload is None else payload,
        stage=stage,
        actor_user_id=actor,
        occurred_at=occurred_at,
        created_at=occurred_at,
        updated_at=occurred_at,
        deleted_at=None,
    )


# A small suggested schedule from January 2025: [1, 1, 2, 1, 1] whole months.
SMALL = {
    "analysis": ("2025-01-01", "2025-01-31"),
    "design": ("2025-02-01", "2025-02-28"),
    "development": ("2025-03-01", "2025-04-30"),
    "implementation": ("2025-05-01", "2025-05-31"),
    "evaluation": ("2025-06-01", "2025-06-30"),
}
# The same schedule a month later: [1, 1, 2, 1, 1] from February.
LATER = {
    "analysis": ("2025-02-01", "2025-02-28"),
    "design": ("2025-03-01", "2025-03-31"),
    "development": ("2025-04-01", "2025-05-31"),
    "implementation": ("2025-06-01", "2025-06-30"),
    "evaluation": ("2025-07-01", "2025-07-31"),
}
Schedule = dict[str, tuple[str, str]]


def schedule_payload(name: str | None, schedule: Schedule) -> dict[str, Any]:
    return {
        "name": name,
        "stages": [
            {"stage": s.capitalize(), "planned_starts_on": a, "planned_ends_on": b}
            for s, (a, b) in schedule.items()
        ],
    }


def snapshot(schedule: Schedule, activated_at: datetime | None = None) -> list[dict[str, Any]]:
    """The stage rows as ``schedule_finalized`` embeds them."""
    stamp = format_timestamp(T0)
    rows = []
    for i, (s, (a, b)) in enumerate(schedule.items()):
        started = None if activated_at is None or i > 0 else format_timestamp(activated_at)
        rows.append(
            {
                "id": str(UUID(int=1000 + i)),
                "created_at": stamp,
                "updated_at": stamp,
                "stage": s.capitalize(),
                "status": "NotStarted" if started is None else "InProgress",
                "planned_starts_on": a,
                "planned_ends_on": b,
                "actual_started_at": started,
                "actual_completed_at": None,
            }
        )
    return rows


def plan_created(
    name: str | None = "Intro to Databases", actor: UUID | None = ALICE
) -> RecordedEvent:
    return event("plan_created", {"name": name}, occurred_at=at(0), actor=actor)


def schedule_created(
    name: str | None = "Intro to Databases", schedule: Schedule = SMALL
) -> RecordedEvent:
    return event("schedule_created", schedule_payload(name, schedule), occurred_at=at(1))


def schedule_updated(
    name: str | None = "Databases, revised", schedule: Schedule = LATER
) -> RecordedEvent:
    return event("schedule_updated", schedule_payload(name, schedule), occurred_at=at(2))


def finalized_by_older_service(schedule: Schedule = SMALL) -> RecordedEvent:
    return event("schedule_finalized", {"stages": snapshot(schedule)}, occurred_at=at(3))


def finalized_by_newer_service(activated_at: datetime, schedule: Schedule = SMALL) -> RecordedEvent:
    payload = {
        "stages": [{**row, "workspace_data": None} for row in snapshot(schedule, activated_at)],
        "active_stage": "Analysis",
        "activated_at": format_timestamp(activated_at),
    }
    return event("schedule_finalized", payload, stage="analysis", occurred_at=at(3))


def plan_started(occurred_at: datetime) -> RecordedEvent:
    return event("plan_started", stage="analysis", occurred_at=occurred_at)


def stage_extended(
    stage: str, months: int, new_ends_on: str, occurred_at: datetime
) -> RecordedEvent:
    payload = {"stage_id": str(UUID(int=1000)), "months": months, "new_ends_on": new_ends_on}
    return event("stage_extended", payload, stage=stage, occurred_at=occurred_at)


def stage_completed(stage: str, occurred_at: datetime) -> RecordedEvent:
    return event("stage_completed", stage=stage, occurred_at=occurred_at)


def stage_started(stage: str, occurred_at: datetime) -> RecordedEvent:
    return event("stage_started", stage=stage, occurred_at=occurred_at)


def plan_completed(occurred_at: datetime) -> RecordedEvent:
    return event("plan_completed", occurred_at=occurred_at)


def started_plan() -> tuple[RecordedEvent, ...]:
    """A plan finalized by a newer service: in progress, analysis active since at(3)."""
    return plan_created(), schedule_created(), finalized_by_newer_service(activated_at=at(3))


# --- Expected state JSON ----------------------------------------------------------


def stages_json(
    schedule: Schedule = SMALL,
    *,
    started: dict[str, datetime] | None = None,
    completed: dict[str, datetime] | None = None,
) -> list[JSONValue]:
    started = started or {}
    completed = completed or {}
    rows: list[JSONValue] = []
    for s, (a, b) in schedule.items():
        status = "completed" if s in completed else "in_progress" if s in started else "not_started"
        rows.append(
            {
                "stage": s,
                "status": status,
                "planned_starts_on": a,
                "planned_ends_on": b,
                "actual_started_at": format_timestamp(started[s]) if s in started else None,
                "actual_completed_at": format_timestamp(completed[s]) if s in completed else None,
            }
        )
    return rows


def plan_json(
    status: str,
    *,
    name: str | None = "Intro to Databases",
    active_stage: str | None = None,
    created_by: UUID | None = ALICE,
    stages: list[JSONValue] | None = None,
) -> JSONValue:
    return {
        "plan_id": str(PLAN),
        "name": name,
        "status": status,
        "active_stage": active_stage,
        "created_by_user_id": None if created_by is None else str(created_by),
        "stages": [] if stages is None else stages,
    }


# --- The projection's contract ------------------------------------------------------


def test_the_projection_satisfies_the_protocol() -> None:
    assert isinstance(PROJECTION, Projection)
    assert PROJECTION.name == "course_designer_plan"
    assert PROJECTION.version == 2


def test_it_handles_exactly_the_event_catalogue() -> None:
    catalogue = {
        "plan_created",
        "schedule_created",
        "schedule_updated",
        "schedule_finalized",
        "plan_started",
        "stage_extended",
        "stage_completed",
        "stage_started",
        "plan_completed",
    }
    assert PROJECTION.handles == frozenset(catalogue)
    assert set(PROJECTION.payload_models) == catalogue


def test_its_stages_are_the_stage_enum_in_order() -> None:
    state = given(PROJECTION, plan_created(), schedule_created()).state
    assert tuple(s.stage for s in state.stages) == STAGES


def test_a_plan_before_any_event_is_an_empty_draft() -> None:
    given(PROJECTION, plan_id=PLAN).then(plan_json("draft", name=None, created_by=None))


# --- Each event's effect ------------------------------------------------------------


def test_plan_created_makes_a_named_draft_created_by_the_actor() -> None:
    given(PROJECTION, plan_created("Intro to Databases")).then(plan_json("draft"))


def test_plan_created_by_a_system_job_has_no_creator() -> None:
    given(PROJECTION, plan_created(actor=None)).then(plan_json("draft", created_by=None))


def test_schedule_created_lists_five_unstarted_stages_and_starts_scheduling() -> None:
    given(PROJECTION, plan_created("Untitled"), schedule_created("Intro to Databases")).then(
        plan_json("scheduling", stages=stages_json(SMALL))
    )


def test_a_schedule_saved_without_a_name_clears_it() -> None:
    # The service writes the plans row's name on every schedule save, null included.
    given(PROJECTION, plan_created("Intro"), schedule_created(name=None)).then(
        plan_json("scheduling", name=None, stages=stages_json(SMALL))
    )


def test_schedule_updated_replaces_the_dates_and_the_name() -> None:
    given(PROJECTION, plan_created(), schedule_created()).when(
        schedule_updated("Databases, revised", LATER)
    ).then(plan_json("scheduling", name="Databases, revised", stages=stages_json(LATER)))


def test_schedule_updated_keeps_a_ready_plan_ready() -> None:
    given(PROJECTION, plan_created(), schedule_created(), finalized_by_older_service()).when(
        schedule_updated("Databases, revised", LATER)
    ).then(plan_json("ready_to_start", name="Databases, revised", stages=stages_json(LATER)))


def test_older_services_finalize_to_ready_then_start_with_plan_started() -> None:
    ready = given(PROJECTION, plan_created(), schedule_created(), finalized_by_older_service())
    ready.then(plan_json("ready_to_start", stages=stages_json(SMALL)))

    ready.when(plan_started(occurred_at=at(10))).then(
        plan_json(
            "in_progress",
            active_stage="analysis",
            stages=stages_json(SMALL, started={"analysis": at(10)}),
        )
    )


def test_newer_services_finalize_and_start_analysis_at_activated_at() -> None:
    activated = at(3) + timedelta(seconds=1, microseconds=5)  # not the event's occurred_at
    given(
        PROJECTION, plan_created(), schedule_created(), finalized_by_newer_service(activated)
    ).then(
        plan_json(
            "in_progress",
            active_stage="analysis",
            stages=stages_json(SMALL, started={"analysis": activated}),
        )
    )


def test_stage_completed_completes_that_stage_at_occurred_at() -> None:
    given(PROJECTION, *started_plan()).when(stage_completed("analysis", at(30))).then(
        plan_json(
            "in_progress",
            active_stage="analysis",
            stages=stages_json(SMALL, started={"analysis": at(3)}, completed={"analysis": at(30)}),
        )
    )


def test_stage_started_starts_that_stage_and_makes_it_active() -> None:
    given(PROJECTION, *started_plan()).when(
        stage_completed("analysis", at(30)), stage_started("design", at(30))
    ).then(
        plan_json(
            "in_progress",
            active_stage="design",
            stages=stages_json(
                SMALL,
                started={"analysis": at(3), "design": at(30)},
                completed={"analysis": at(30)},
            ),
        )
    )


def test_plan_completed_completes_the_plan_and_leaves_no_active_stage() -> None:
    through: list[RecordedEvent] = []
    started = {"analysis": at(3)}
    completed: dict[str, datetime] = {}
    for month, (previous, following) in enumerate(itertools.pairwise(STAGES), start=1):
        handover = at(30 * month)
        through += [stage_completed(previous, handover), stage_started(following, handover)]
        completed[previous] = started[following] = handover
    through.append(stage_completed("evaluation", at(200)))
    through.append(plan_completed(at(200)))
    completed["evaluation"] = at(200)

    given(PROJECTION, *started_plan()).when(*through).then(
        plan_json("completed", stages=stages_json(SMALL, started=started, completed=completed))
    )


# --- Extensions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2025, 1, 31), 1, date(2025, 2, 28)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2025, 3, 31), 1, date(2025, 4, 30)),
        (date(2025, 8, 31), 6, date(2026, 2, 28)),
        (date(2025, 11, 30), 2, date(2026, 1, 30)),
        (date(2025, 1, 15), 12, date(2026, 1, 15)),
    ],
)
def test_adding_months_clamps_the_day_to_the_months_length(
    day: date, months: int, expected: date
) -> None:
    assert add_months(day, months) == expected


def test_extending_a_stage_shifts_every_later_stage_keeping_its_length_in_days() -> None:
    # Analysis ends Jan 31; one more month clamps to Feb 28 (not Mar 3).
    new_end = add_months(date(2025, 1, 31), 1)
    assert new_end == date(2025, 2, 28)
    shifted = {
        "analysis": ("2025-01-01", "2025-02-28"),
        "design": ("2025-03-01", "2025-03-28"),  # 28 days, as Feb 1-28
        "development": ("2025-03-29", "2025-05-28"),  # 61 days, as Mar 1-Apr 30
        "implementation": ("2025-05-29", "2025-06-28"),  # 31 days
        "evaluation": ("2025-06-29", "2025-07-28"),  # 30 days
    }
    given(PROJECTION, *started_plan()).when(
        stage_extended("analysis", 1, new_end.isoformat(), at(20))
    ).then(
        plan_json(
            "in_progress",
            active_stage="analysis",
            stages=stages_json(shifted, started={"analysis": at(3)}),
        )
    )


def test_extending_a_later_stage_leaves_the_earlier_ones_alone() -> None:
    new_end = add_months(date(2025, 4, 30), 2)  # development: Apr 30 + 2 months = Jun 30
    shifted = {
        **SMALL,
        "development": ("2025-03-01", "2025-06-30"),
        "implementation": ("2025-07-01", "2025-07-31"),
        "evaluation": ("2025-08-01", "2025-08-30"),
    }
    stream = (
        stage_completed("analysis", at(30)),
        stage_started("design", at(30)),
        stage_completed("design", at(60)),
        stage_started("development", at(60)),
        stage_extended("development", 2, new_end.isoformat(), at(70)),
    )
    given(PROJECTION, *started_plan()).when(*stream).then(
        plan_json(
            "in_progress",
            active_stage="development",
            stages=stages_json(
                shifted,
                started={"analysis": at(3), "design": at(30), "development": at(60)},
                completed={"analysis": at(30), "design": at(60)},
            ),
        )
    )


# --- Same-transaction pairs ----------------------------------------------------------


@pytest.mark.parametrize(
    "pair",
    [
        pytest.param(
            (stage_completed("analysis", at(30)), stage_started("design", at(30))),
            id="stage_completed+stage_started",
        ),
        pytest.param(
            (stage_completed("analysis", at(30)), plan_completed(at(30))),
            id="stage_completed+plan_completed",
        ),
    ],
)
def test_a_same_transaction_pair_gives_one_state_whichever_comes_first(
    pair: tuple[RecordedEvent, RecordedEvent],
) -> None:
    first, second = pair
    in_order = given(PROJECTION, *started_plan()).when(first, second).state
    reversed_ = given(PROJECTION, *started_plan()).when(second, first).state

    assert in_order == reversed_
    assert encode_state(PROJECTION, in_order) == encode_state(PROJECTION, reversed_)


def test_the_tie_rank_puts_stage_completed_first_in_a_transaction() -> None:
    started, completed = stage_started("design", at(30)), stage_completed("analysis", at(30))
    assert sorted([started, completed], key=sort_key(PROJECTION)) == [completed, started]


# --- Purity and serialization --------------------------------------------------------


def _every_prefix_state() -> Iterator[tuple[PlanState, RecordedEvent]]:
    stream = [
        *started_plan(),
        stage_extended("analysis", 1, "2025-02-28", at(20)),
        stage_completed("analysis", at(30)),
        stage_started("design", at(30)),
    ]
    state = PROJECTION.initial_state(PLAN)
    for recorded in [plan_created(), schedule_created(), schedule_updated(), *stream]:
        yield state, recorded
        state = PROJECTION.evolve(state, to_event(PROJECTION, recorded))


def test_evolve_never_changes_the_state_it_was_given() -> None:
    for state, recorded in _every_prefix_state():
        before = encode_state(PROJECTION, state)
        stages_before = state.stages
        after = PROJECTION.evolve(state, to_event(PROJECTION, recorded))

        assert encode_state(PROJECTION, state) == before
        assert state.stages is stages_before
        assert after is not state


def test_states_are_immutable_values() -> None:
    state = given(PROJECTION, *started_plan()).state
    with pytest.raises(FrozenInstanceError):
        state.status = "completed"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        state.stages[0].status = "completed"  # type: ignore[misc]


def test_to_json_and_from_json_round_trip() -> None:
    for state, _ in _every_prefix_state():
        data = PROJECTION.to_json(state)
        assert PROJECTION.from_json(data) == state
        assert PROJECTION.to_json(PROJECTION.from_json(data)) == data


def test_to_json_and_from_json_round_trip_every_golden_state() -> None:
    for data in _golden_states().values():
        assert PROJECTION.to_json(PROJECTION.from_json(data)) == data


DRAFT_JSON = {"plan_id": str(PLAN), "status": "draft", "stages": []}


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param({**DRAFT_JSON, "plan_id": "not a uuid"}, id="plan_id"),
        pytest.param({**DRAFT_JSON, "status": "paused"}, id="status"),
        pytest.param({**DRAFT_JSON, "stages": [{"stage": "analysis"}]}, id="incomplete stage"),
        pytest.param(
            {**DRAFT_JSON, "stages": list(reversed(stages_json(SMALL)))}, id="stages out of order"
        ),
    ],
)
def test_from_json_rejects_what_is_not_a_plan_state(broken: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="not a course_designer_plan state"):
        PROJECTION.from_json(broken)


def test_unknown_event_types_are_not_handled_and_change_nothing() -> None:
    reminder = event("weekly_stage_reminder_sent", {"recipients": 2}, stage="analysis", actor=None)
    assert PROJECTION.handles is not None
    assert "weekly_stage_reminder_sent" not in PROJECTION.handles

    scenario = given(PROJECTION, *started_plan()).when(reminder)
    assert scenario.result.skipped == {"weekly_stage_reminder_sent": 1}
    assert scenario.state == given(PROJECTION, *started_plan()).state

    state = scenario.state
    assert PROJECTION.evolve(state, to_event(PROJECTION, reminder)) is state


# --- Payloads, as the service writes them --------------------------------------------


def test_both_finalize_shapes_validate_into_one_model() -> None:
    older = ScheduleFinalized.model_validate(finalized_by_older_service().payload)
    newer = ScheduleFinalized.model_validate(finalized_by_newer_service(at(3)).payload)

    assert (older.active_stage, older.activated_at) == (None, None)
    assert not older.starts_plan
    assert (newer.active_stage, newer.activated_at) == ("Analysis", at(3))
    assert newer.starts_plan
    assert [s.stage for s in older.stages] == [s.stage for s in newer.stages]
    assert newer.stages[0].status == "InProgress"


def test_payload_models_are_frozen() -> None:
    payload = StageExtended.model_validate(
        {"stage_id": str(UUID(int=1)), "months": 1, "new_ends_on": "2025-02-28"}
    )
    with pytest.raises(ValidationError):
        payload.months = 2


@pytest.mark.parametrize(
    ("model", "payload"),
    [
        pytest.param(
            ScheduleUpdated,
            {**schedule_payload("x", SMALL), "stages": schedule_payload("x", SMALL)["stages"][:4]},
            id="four stages",
        ),
        pytest.param(
            ScheduleUpdated,
            {"name": "x", "stages": list(reversed(schedule_payload("x", SMALL)["stages"]))},
            id="stages out of order",
        ),
        pytest.param(
            ScheduleUpdated,
            {
                "name": "x",
                "stages": [
                    {**s, "stage": s["stage"].lower()}
                    for s in schedule_payload("x", SMALL)["stages"]
                ],
            },
            id="snake_case stage in a payload",
        ),
        pytest.param(
            StageSnapshot,
            {**snapshot(SMALL)[0], "status": "not_started"},
            id="snake_case stage status in a payload",
        ),
        pytest.param(
            ScheduleFinalized,
            {"stages": snapshot(SMALL), "active_stage": "Analysis"},
            id="active_stage without activated_at",
        ),
        pytest.param(
            StageExtended,
            {"stage_id": str(UUID(int=1)), "months": 0, "new_ends_on": "2025-02-28"},
            id="extension by zero months",
        ),
    ],
)
def test_payloads_the_service_never_writes_are_rejected(
    model: type[Any], payload: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(payload)


def test_an_invalid_stored_payload_fails_the_fold_loudly() -> None:
    bad = event("stage_extended", {"months": "many"}, stage="analysis", occurred_at=at(20))
    with pytest.raises(FoldFailed, match="stage_extended") as caught:
        given(PROJECTION, *started_plan()).when(bad).state  # noqa: B018
    assert caught.value.event_id == bad.id
    assert isinstance(caught.value.__cause__, InvalidInput)


def test_a_stage_event_without_its_stage_column_fails_loudly() -> None:
    no_stage = event("stage_completed", stage=None, occurred_at=at(30))
    with pytest.raises(FoldFailed, match="stage column") as caught:
        given(PROJECTION, *started_plan()).when(no_stage).state  # noqa: B018
    assert isinstance(caught.value.__cause__, InvalidInput)


# --- The golden test: the service's own tables, rebuilt from its events ---------------


def _golden_states() -> dict[str, Any]:
    with (DATA / "course_designer_states.json").open(encoding="utf-8") as f:
        plans: dict[str, Any] = json.load(f)["plans"]
    return plans


def _same_instant_spelling(state: Any) -> Any:
    """The state with every timestamp spelt one way (they compare as instants)."""
    stages = [
        {
            **s,
            **{
                k: None if s[k] is None else format_timestamp(parse_timestamp(s[k], k))
                for k in ("actual_started_at", "actual_completed_at")
            },
        }
        for s in state["stages"]
    ]
    return {**state, "stages": stages}


def test_replaying_the_sample_events_rebuilds_every_plan_the_service_stored() -> None:
    streams: dict[UUID, list[RecordedEvent]] = defaultdict(list)
    with (DATA / "course_designer_events.jsonl").open(encoding="utf-8") as f:
        for line in f:
            recorded = row_to_event(json.loads(line))
            if recorded.deleted_at is None:  # the engine excludes soft-deleted rows
                streams[recorded.plan_id].append(recorded)
    expected = _golden_states()
    assert {str(p) for p in streams} == set(expected)

    differing = []
    for plan_id, events in streams.items():
        ordered = sorted(events, key=sort_key(PROJECTION))
        state = fold_from_scratch(PROJECTION, plan_id, ordered).state
        actual = _same_instant_spelling(PROJECTION.to_json(state))
        if actual != _same_instant_spelling(expected[str(plan_id)]):
            differing.append(str(plan_id))

    assert not differing, f"{len(differing)}/{len(expected)} plans differ: {differing[:10]}"
