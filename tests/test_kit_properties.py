"""The determinism kit, in memory: its strategies, its properties and their teeth."""

from __future__ import annotations

import datetime
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import given as hypothesis_given
from hypothesis import strategies as st
from pydantic import BaseModel

from eventsource.events import STAGES, RecordedEvent, validate_event_type, validate_payload
from projections.course_designer import CourseDesignerPlanProjection
from projections.testing import (
    EchoProjection,
    PropertyViolation,
    check_all,
    check_backfill_equivalent,
    check_insertion_order_independent,
    check_snapshot_plus_tail,
    check_snapshot_round_trip,
    course_designer_stories,
    course_designer_streams,
    event_streams,
    given,
    live_stream,
    projection_properties,
    regression_test,
    scaled,
)
from projections.testing.profiles import DEV_EXAMPLES, PROFILES, load_profile
from projections.testing.strategies import COURSE_DESIGNER_EVENT_TYPES, PlanPath, Service
from projections.typing import Event, JSONValue, Projection

load_profile()

NO_SHRINK = settings(database=None, max_examples=2000, phases=[Phase.generate])
"""For finding an example of a kind: the first one found will do."""

PLAN_PROJECTION = CourseDesignerPlanProjection()
ECHO_RANKS = {"tagged": -1, "removed": 2}
ECHO = EchoProjection(tie_rank=ECHO_RANKS)
"""Echo with a tie rank, so the simulated order exercises ranks too."""

# --- Every property, for the shipped projections ----------------------------------

TestCourseDesignerPlanProperties = projection_properties(PLAN_PROJECTION, course_designer_streams())
TestEchoProperties = projection_properties(
    ECHO,
    event_streams(),
    importable_as="tests.test_kit_properties:ECHO",
    fresh=lambda: EchoProjection(tie_rank=ECHO_RANKS),  # EchoProjection() has no tie rank
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@hypothesis_given(course_designer_streams())
def test_check_all_passes_for_the_plan_projection_on_workflow_valid_streams(
    events: list[RecordedEvent],
) -> None:
    ids = [e.id for e in events]
    check_all(
        PLAN_PROJECTION,
        events,
        order=list(reversed(range(len(events)))),
        batch_sizes=[2, 1],
        late=ids[::3],
        retract=ids[1::4],
    )


# --- The course-designer strategies follow DOMAIN.md ---------------------------------


@hypothesis_given(course_designer_stories())
def test_every_generated_plan_folds_to_the_state_the_service_would_hold(story: Any) -> None:
    live = live_stream(PLAN_PROJECTION, story.events, story.plan_id)
    given(PLAN_PROJECTION, *live, plan_id=story.plan_id).then(story.expected)


@pytest.mark.parametrize(
    ("service", "path", "status", "active"),
    [
        ("older", "draft", "draft", None),
        ("newer", "draft", "draft", None),
        ("older", "scheduling", "scheduling", None),
        ("newer", "scheduling", "scheduling", None),
        ("older", "ready_to_start", "ready_to_start", None),
        ("older", "in_progress", "in_progress", "design"),
        ("newer", "in_progress", "in_progress", "implementation"),
        ("older", "completed", "completed", None),
        ("newer", "completed", "completed", None),
    ],
)
def test_stories_reach_every_path_of_the_workflow_for_both_services(
    service: Service, path: PlanPath, status: str, active: str | None
) -> None:
    def reaches(story: Any) -> bool:
        return bool(story.expected["active_stage"] == active)

    story = find(
        course_designer_stories(services=[service], paths=[path]),
        reaches,
        settings=NO_SHRINK,
    )
    assert story.expected["status"] == status
    live = live_stream(PLAN_PROJECTION, story.events, story.plan_id)
    given(PLAN_PROJECTION, *live, plan_id=story.plan_id).then(story.expected)


def _finds(strategy: st.SearchStrategy[Any], condition: Callable[[Any], bool]) -> Any:
    return find(strategy, condition, settings=NO_SHRINK)


def test_stories_hold_the_quirks_of_real_logs() -> None:
    stories = course_designer_stories()
    pair = _finds(
        stories,
        lambda s: any(
            a.event_type == "stage_completed"
            and b.event_type in ("stage_started", "plan_completed")
            and (a.occurred_at, a.created_at) == (b.occurred_at, b.created_at)
            for a in s.events
            for b in s.events
        ),
    )
    assert pair.path in ("in_progress", "completed")
    backfilled = _finds(stories, lambda s: any(e.created_at > e.occurred_at for e in s.live))
    assert backfilled.events
    mistake = _finds(stories, lambda s: any(e.deleted_at is not None for e in s.events))
    assert len(mistake.live) < len(mistake.events)
    unknown = _finds(
        stories, lambda s: any(e.event_type not in COURSE_DESIGNER_EVENT_TYPES for e in s.events)
    )
    assert unknown.events
    system = _finds(stories, lambda s: any(e.actor_user_id is None for e in s.events))
    assert system.events


@hypothesis_given(event_streams())
def test_generic_streams_are_rows_the_store_accepts(events: list[RecordedEvent]) -> None:
    assert len({e.id for e in events}) == len(events)
    for before, after in itertools.pairwise(events):
        assert before.created_at <= after.created_at  # the order recorded
    for e in events:
        validate_event_type(e.event_type)
        validate_payload(e.payload)
        assert e.stage is None or e.stage in STAGES
        assert e.occurred_at <= e.created_at <= e.updated_at
        assert e.deleted_at is None or e.deleted_at == e.updated_at > e.created_at
        assert e.occurred_at.tzinfo is not None


def test_generic_streams_hold_ties_backfills_deletes_restores_and_several_plans() -> None:
    streams = event_streams()
    tie = _finds(
        streams,
        lambda es: any(
            a.occurred_at == b.occurred_at and a.created_at != b.created_at
            for a in es
            for b in es
            if a.plan_id == b.plan_id
        ),
    )
    assert len(tie) >= 2
    assert _finds(streams, lambda es: any(e.created_at > e.occurred_at for e in es))
    assert _finds(streams, lambda es: any(e.deleted_at is not None for e in es))
    assert _finds(
        streams, lambda es: any(e.deleted_at is None and e.updated_at > e.created_at for e in es)
    )
    assert _finds(streams, lambda es: len({e.plan_id for e in es}) == 3)


# --- Failing examples paste into a regression test ----------------------------------


@hypothesis_given(course_designer_streams(max_plans=2))
def test_a_generated_stream_repr_is_the_python_that_rebuilds_it(
    events: list[RecordedEvent],
) -> None:
    namespace = {"datetime": datetime, "UUID": UUID, "RecordedEvent": RecordedEvent}
    assert eval(repr(events), namespace) == events


@dataclass(frozen=True)
class Lossy:
    plan_id: UUID
    count: int
    last: str | None


class LossyProjection:
    """Counts events, but its snapshot forgets the last event type."""

    name = "lossy"
    version = 1
    handles: frozenset[str] | None = None
    payload_models: Mapping[str, type[BaseModel]] = MappingProxyType({})
    tie_rank: Mapping[str, int] = MappingProxyType({})

    def initial_state(self, plan_id: UUID) -> Lossy:
        return Lossy(plan_id, 0, None)

    def evolve(self, state: Lossy, event: Event) -> Lossy:
        return Lossy(state.plan_id, state.count + 1, event.event_type)

    def to_json(self, state: Lossy) -> JSONValue:
        return {"plan_id": str(state.plan_id), "count": state.count, "last": state.last}

    def from_json(self, data: JSONValue) -> Lossy:
        return Lossy(UUID(data["plan_id"]), data["count"], None)


class RecordingTimeProjection:
    """Keeps the latest ``created_at``: it depends on when events were recorded."""

    name = "recording_time"
    version = 1
    handles: frozenset[str] | None = None
    payload_models: Mapping[str, type[BaseModel]] = MappingProxyType({})
    tie_rank: Mapping[str, int] = MappingProxyType({})

    def initial_state(self, plan_id: UUID) -> dict[str, Any]:
        return {"plan_id": str(plan_id), "recorded": None}

    def evolve(self, state: dict[str, Any], event: Event) -> dict[str, Any]:
        return {**state, "recorded": event.created_at.isoformat()}

    def to_json(self, state: dict[str, Any]) -> JSONValue:
        return state

    def from_json(self, data: JSONValue) -> dict[str, Any]:
        return dict(data)


def _minimal(check: Callable[[Sequence[RecordedEvent]], None]) -> list[RecordedEvent]:
    def fails(events: list[RecordedEvent]) -> bool:
        try:
            check(events)
        except PropertyViolation:
            return True
        return False

    result: list[RecordedEvent] = find(
        event_streams(deletes=False), fails, settings=settings(database=None, max_examples=1000)
    )
    return result


def test_a_snapshot_that_loses_data_fails_the_round_trip_with_one_event() -> None:
    events = _minimal(lambda es: check_snapshot_round_trip(LossyProjection(), es))
    assert len(events) == 1
    with pytest.raises(PropertyViolation, match=r"last: '.*' != None"):
        check_snapshot_round_trip(LossyProjection(), events)


def test_a_snapshot_that_loses_data_fails_snapshot_plus_tail() -> None:
    events = _minimal(lambda es: check_snapshot_plus_tail(LossyProjection(), es))
    assert len(events) == 1
    # ...and the simulated engine, which serves loads from such snapshots.
    with pytest.raises(PropertyViolation, match="differs from a full fold"):
        check_insertion_order_independent(LossyProjection(), events)


def test_a_projection_reading_created_at_is_not_backfill_safe() -> None:
    projection = RecordingTimeProjection()

    def check(events: Sequence[RecordedEvent]) -> None:
        check_backfill_equivalent(projection, events, late=[e.id for e in events[-1:]])

    events = _minimal(check)
    assert len(events) == 1
    with pytest.raises(PropertyViolation, match="differs from appending in order"):
        check(events)


def test_the_printed_regression_test_reproduces_the_failure() -> None:
    events = _minimal(lambda es: check_snapshot_round_trip(LossyProjection(), es))
    source = regression_test("check_snapshot_round_trip", LossyProjection(), events)
    assert "from tests.test_kit_properties import LossyProjection" in source
    namespace: dict[str, Any] = {}
    exec(compile(source, "<regression>", "exec"), namespace)
    with pytest.raises(PropertyViolation):
        namespace["test_snapshot_round_trip_regression"]()


def test_a_failing_property_notes_the_regression_test_in_hypothesis_output() -> None:
    @settings(database=None, max_examples=200)
    @hypothesis_given(events=event_streams(deletes=False))
    def property_test(events: list[RecordedEvent]) -> None:
        check_snapshot_round_trip(LossyProjection(), events)

    with pytest.raises(PropertyViolation) as failure:
        property_test()
    notes = "\n".join(getattr(failure.value, "__notes__", []))
    assert re.search(r"(Falsifying example|Failing test case): property_test\(", notes)
    assert "RecordedEvent(" in notes
    assert "def test_snapshot_round_trip_regression() -> None:" in notes


# --- given / when / then ----------------------------------------------------------


def test_given_when_then_still_reads_like_a_domain_rule() -> None:
    story = find(
        course_designer_stories(paths=["scheduling"], mistakes=False, unknown_events=False),
        lambda s: True,
        settings=NO_SHRINK,
    )
    created, *rest = live_stream(PLAN_PROJECTION, story.events, story.plan_id)
    scenario = given(PLAN_PROJECTION, created).when(*rest)
    assert scenario.then(story.expected).status == "scheduling"
    with pytest.raises(AssertionError, match=r"state\.status: got 'scheduling', expected 'draft'"):
        scenario.then({**story.expected, "status": "draft"})


# --- Profiles -----------------------------------------------------------------------


def test_the_three_profiles_are_registered_with_growing_example_counts() -> None:
    counts = [settings.get_profile(name).max_examples for name in PROFILES]
    assert counts == sorted(counts)
    assert counts[0] == DEV_EXAMPLES
    ci = settings.get_profile("ci")
    assert ci.derandomize
    assert ci.database is None
    assert ci.print_blob
    assert all(settings.get_profile(name).deadline is None for name in PROFILES)


def test_database_tests_scale_with_the_active_profile() -> None:
    current = settings.get_current_profile_name()
    try:
        settings.load_profile("dev")
        assert scaled(10) == 10
        settings.load_profile("ci")
        assert scaled(10) == 40
        assert scaled(0) == 1
    finally:
        settings.load_profile(current)


def test_the_profile_comes_from_hypothesis_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    current = settings.get_current_profile_name()
    try:
        monkeypatch.setenv("HYPOTHESIS_PROFILE", "nightly")
        assert load_profile() == "nightly"
        assert settings().max_examples == DEV_EXAMPLES * 40
    finally:
        settings.load_profile(current)


def test_projections_used_here_satisfy_the_protocol() -> None:
    for projection in (PLAN_PROJECTION, ECHO, LossyProjection(), RecordingTimeProjection()):
        assert isinstance(projection, Projection)
