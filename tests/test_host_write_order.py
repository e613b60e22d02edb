"""Write order that cannot fool the fold: overlapping transactions on one plan.

The service serializes a plan's writers on its plan row, and ``occurred_at`` is a
transaction's start: two advances clicked at once can commit in the opposite order
of their starts, so the log lists the one that committed second first. The
service's rows follow commit order. The plan projection only moves forward, so it
folds such a log to the statuses and active stage the rows hold, in whichever order
the log lists the two; stage times keep the gap the events cannot close (the
later-committed advance's clock is not in its events).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from hypothesis import Phase, find, settings
from hypothesis import given as hypothesis_given
from hypothesis import strategies as st

from eventsource.events import STAGES, RecordedEvent
from eventsource.jsonl import parse_timestamp
from projections.course_designer import CourseDesignerPlanProjection
from projections.testing import PlanStory, course_designer_stories, given, live_stream, scaled
from projections.testing.strategies import MAX_LOCK_WAIT
from projections.typing import JSONValue

PROJECTION = CourseDesignerPlanProjection()
PLAN = UUID("00000000-0000-4000-8000-00000000b001")
ALICE = UUID("00000000-0000-4000-8000-0000000000a1")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TIMES = ("actual_started_at", "actual_completed_at")

_ids = itertools.count(1)


def fold(events: list[RecordedEvent], plan_id: UUID) -> dict[str, Any]:
    live = live_stream(PROJECTION, events, plan_id)
    state = given(PROJECTION, *live, plan_id=plan_id).state
    data = PROJECTION.to_json(state)
    assert isinstance(data, dict)
    return data


def without_times(state: dict[str, Any]) -> dict[str, Any]:
    return {
        **state,
        "stages": [{k: v for k, v in s.items() if k not in TIMES} for s in state["stages"]],
    }


def instant(value: JSONValue) -> datetime | None:
    return None if value is None else parse_timestamp(str(value), "stage time")


def assert_times_within_the_gap(folded: dict[str, Any], rows: dict[str, Any]) -> None:
    """Each rebuilt stage time is at or before the service's, by less than one lock
    wait, and no rebuilt stage starts after it completed or before the one before it
    started (the service's own CHECK and its workflow)."""
    previous: datetime | None = None
    for rebuilt, held in zip(folded["stages"], rows["stages"], strict=True):
        for key in TIMES:
            ours, theirs = instant(rebuilt[key]), instant(held[key])
            assert (ours is None) == (theirs is None), (rebuilt["stage"], key)
            if ours is None or theirs is None:
                continue
            assert ours <= theirs <= ours + MAX_LOCK_WAIT, (rebuilt["stage"], key, ours, theirs)
            if previous is not None:
                assert previous <= ours, (rebuilt["stage"], key)
            previous = ours


OVERLAPPING = course_designer_stories(overlaps=True, paths=["in_progress", "completed"])


@settings(max_examples=scaled(100))
@hypothesis_given(OVERLAPPING)
def test_overlapping_advances_fold_to_the_statuses_and_active_stage_the_service_holds(
    story: PlanStory,
) -> None:
    folded = fold(list(story.events), story.plan_id)
    assert without_times(folded) == without_times(story.expected)
    if story.double_clicks == 0:
        assert folded == story.expected
    assert_times_within_the_gap(folded, story.expected)


@settings(max_examples=scaled(100))
@hypothesis_given(OVERLAPPING, st.randoms(use_true_random=False))
def test_the_fold_does_not_depend_on_how_the_log_lists_overlapping_transactions(
    story: PlanStory, random: Any
) -> None:
    # Relist the events with each transaction's start shuffled among the starts of
    # the plan's double-clicked pairs: the log may list them either way round.
    folded = fold(list(story.events), story.plan_id)
    swapped = _swap_overlapping_starts(list(story.events), random)
    assert without_times(fold(swapped, story.plan_id)) == without_times(folded)


def _swap_overlapping_starts(events: list[RecordedEvent], random: Any) -> list[RecordedEvent]:
    """Events with the starts of transactions less than a lock wait apart exchanged
    at random (same-transaction events keep sharing their start). Only overlapping
    transactions start that close together in generated plans (others are at least
    a second apart), so every relisting is one the service could have written."""
    starts = sorted({e.occurred_at for e in events})
    mapping: dict[datetime, datetime] = {}
    for a, b in itertools.pairwise(starts):
        if b - a < MAX_LOCK_WAIT and a not in mapping and random.random() < 0.5:
            mapping[a], mapping[b] = b, a
    return [e._replace(occurred_at=mapping.get(e.occurred_at, e.occurred_at)) for e in events]


def test_the_generator_makes_double_clicks_whose_later_commit_began_first() -> None:
    story = find(
        OVERLAPPING,
        lambda s: s.double_clicks >= 1,
        settings=settings(database=None, max_examples=2000, phases=[Phase.generate]),
    )
    # In stream order a pair's second-committed transaction comes first (it began
    # first), yet in the service's rows its stage moved last.
    stream = live_stream(PROJECTION, story.events, story.plan_id)
    completions = [e for e in stream if e.event_type == "stage_completed"]
    inverted = [
        (a, b)
        for a, b in itertools.pairwise(completions)
        if STAGES.index(a.stage or "") > STAGES.index(b.stage or "")
    ]
    assert inverted
    for later_stage, earlier_stage in inverted:
        assert later_stage.occurred_at < earlier_stage.occurred_at


# --- The double click of the issue, event by event ------------------------------------


def event(event_type: str, stage: str | None, at: datetime) -> RecordedEvent:
    ident = UUID(int=next(_ids))
    return RecordedEvent(ident, PLAN, event_type, {}, stage, ALICE, at, at, at, None)


def started_at_analysis(at: datetime) -> list[RecordedEvent]:
    stages = [
        {"stage": s.capitalize(), "planned_starts_on": f"2026-0{i + 1}-01"}
        for i, s in enumerate(STAGES)
    ]
    planned = {
        "name": "Double click",
        "stages": [{**s, "planned_ends_on": f"2026-0{i + 1}-28"} for i, s in enumerate(stages)],
    }
    finalize_rows = [
        {
            "id": str(UUID(int=100 + i)),
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "stage": s.capitalize(),
            "status": "InProgress" if i == 0 else "NotStarted",
            "planned_starts_on": f"2026-0{i + 1}-01",
            "planned_ends_on": f"2026-0{i + 1}-28",
            "actual_started_at": "2026-03-02T08:00:00.000300Z" if i == 0 else None,
            "actual_completed_at": None,
            "workspace_data": None,
        }
        for i, s in enumerate(STAGES)
    ]
    return [
        RecordedEvent(
            UUID(int=next(_ids)), PLAN, "plan_created", {"name": "Double click"}, None, ALICE,
            at - timedelta(hours=3), at - timedelta(hours=3), at - timedelta(hours=3), None,
        ),
        RecordedEvent(
            UUID(int=next(_ids)), PLAN, "schedule_created", planned, None, ALICE,
            at - timedelta(hours=2), at - timedelta(hours=2), at - timedelta(hours=2), None,
        ),
        RecordedEvent(
            UUID(int=next(_ids)), PLAN, "schedule_finalized",
            {
                "stages": finalize_rows,
                "active_stage": "Analysis",
                "activated_at": "2026-03-02T08:00:00.000300Z",
            },
            "analysis", ALICE,
            at - timedelta(hours=1), at - timedelta(hours=1), at - timedelta(hours=1), None,
        ),
    ]  # fmt: skip


def test_a_double_clicked_advance_folds_to_development_with_design_completed() -> None:
    # Request A began first (t1) but waited for the plan row; B (t2) advanced
    # analysis -> design and committed; then A advanced design -> development.
    t1, t2 = T0, T0 + timedelta(microseconds=250)
    a = [event("stage_completed", "design", t1), event("stage_started", "development", t1)]
    b = [event("stage_completed", "analysis", t2), event("stage_started", "design", t2)]
    history = started_at_analysis(T0)
    for listed in (history + a + b, history + b + a, history + a[::-1] + b[::-1]):
        state = fold(listed, PLAN)
        assert state["status"] == "in_progress"
        assert state["active_stage"] == "development"
        statuses = {s["stage"]: s["status"] for s in state["stages"]}
        assert statuses == {
            "analysis": "completed",
            "design": "completed",
            "development": "in_progress",
            "implementation": "not_started",
            "evaluation": "not_started",
        }
        design = next(s for s in state["stages"] if s["stage"] == "design")
        started, completed = (instant(design[key]) for key in TIMES)
        assert started is not None
        assert completed is not None
        assert started <= completed  # the service's CHECK holds for the rebuilt stage


def test_a_double_click_on_the_last_advance_leaves_the_plan_completed() -> None:
    t1, t2 = T0, T0 + timedelta(microseconds=400)
    history = started_at_analysis(T0 - timedelta(days=1))
    walk: list[RecordedEvent] = []
    for day, (previous, following) in enumerate(itertools.pairwise(STAGES[:4]), start=1):
        handover = T0 - timedelta(days=1) + timedelta(hours=day)
        walk += [event("stage_completed", previous, handover)]
        walk += [event("stage_started", following, handover)]
    # B (t2) completes implementation and starts evaluation; A (t1, committed last)
    # completes evaluation and the plan.
    a = [event("stage_completed", "evaluation", t1), event("plan_completed", None, t1)]
    b = [event("stage_completed", "implementation", t2), event("stage_started", "evaluation", t2)]
    state = fold(history + walk + a + b, PLAN)
    assert (state["status"], state["active_stage"]) == ("completed", None)
    assert {s["status"] for s in state["stages"]} == {"completed"}
