"""The course-designer plan projection: a plan's state rebuilt from its events.

``spec/DOMAIN.md`` is the contract: its event catalogue says what each event does,
its "Plan state, as JSON" section what :meth:`CourseDesignerPlanProjection.to_json`
prints. Payloads are read as the upstream service writes them (PascalCase stage
names and statuses, two shapes of ``schedule_finalized``); everything inside the
state is the snake_case vocabulary of the ``course_designer_stage`` enum.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal, TypeAlias, TypeVar, get_args
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from eventsource.errors import InvalidInput
from eventsource.jsonl import format_timestamp

from .typing import Event, JSONValue

__all__ = [
    "CourseDesignerPlanProjection",
    "PlanCompleted",
    "PlanCreated",
    "PlanStarted",
    "PlanState",
    "PlanStatus",
    "PlannedStage",
    "ScheduleCreated",
    "ScheduleFinalized",
    "ScheduleUpdated",
    "StageCompleted",
    "StageExtended",
    "StageName",
    "StageSnapshot",
    "StageStarted",
    "StageState",
    "StageStatus",
    "add_months",
]

StageName: TypeAlias = Literal["analysis", "design", "development", "implementation", "evaluation"]
PlanStatus: TypeAlias = Literal[
    "draft", "scheduling", "ready_to_start", "in_progress", "completed", "archived"
]
StageStatus: TypeAlias = Literal["not_started", "in_progress", "completed"]

PayloadStage: TypeAlias = Literal[
    "Analysis", "Design", "Development", "Implementation", "Evaluation"
]
"""A stage name as payloads spell it (the stage *column* is snake_case)."""
PayloadStageStatus: TypeAlias = Literal["NotStarted", "InProgress", "Completed"]

_STAGES: Final[tuple[StageName, ...]] = get_args(StageName)
_STAGE_INDEX: Final[Mapping[str, int]] = MappingProxyType({s: i for i, s in enumerate(_STAGES)})
_PLAN_RANK: Final[Mapping[str, int]] = MappingProxyType(
    {s: i for i, s in enumerate(get_args(PlanStatus))}
)
_STAGE_STATUS_RANK: Final[Mapping[str, int]] = MappingProxyType(
    {s: i for i, s in enumerate(get_args(StageStatus))}
)
_PAYLOAD_STAGE_INDEX: Final[Mapping[str, int]] = MappingProxyType(
    {s.capitalize(): i for i, s in enumerate(_STAGES)}
)
_ONE_DAY: Final = timedelta(days=1)


def add_months(day: date, months: int) -> date:
    """``day`` plus whole months, the day clamped to the month's length.

    The service's rule for suggested schedules and extensions: Jan 31 + 1 month
    is Feb 28 (Feb 29 in a leap year), never Mar 3.

    >>> add_months(date(2025, 1, 31), 1)
    datetime.date(2025, 2, 28)
    """
    year, month0 = divmod(day.year * 12 + day.month - 1 + months, 12)
    if not 1 <= year <= 9999:
        raise InvalidInput(f"{day.isoformat()} + {months} months is outside years 1-9999")
    return date(year, month0 + 1, min(day.day, calendar.monthrange(year, month0 + 1)[1]))


# --- Payloads -----------------------------------------------------------------


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class PlanCreated(_Payload):
    """``plan_created``: ``{"name": str or null}``."""

    name: str | None = None


class PlannedStage(_Payload):
    """One stage of a schedule save."""

    stage: PayloadStage
    planned_starts_on: date
    planned_ends_on: date


def _check_five_stages(stages: tuple[Any, ...]) -> tuple[Any, ...]:
    # The reducer relies on this (the service enforces it): the five stages, in order.
    names = tuple(s.stage for s in stages)
    if names != tuple(_PAYLOAD_STAGE_INDEX):
        raise ValueError(
            f"a schedule lists the five stages in order ({', '.join(_PAYLOAD_STAGE_INDEX)}), "
            f"got {', '.join(names) or 'none'}"
        )
    return stages


class _ScheduleSaved(_Payload):
    name: str | None = None
    stages: tuple[PlannedStage, ...]

    _five_stages = field_validator("stages")(_check_five_stages)


class ScheduleCreated(_ScheduleSaved):
    """``schedule_created``: ``{"name", "stages": [{stage, planned_*_on} x5]}``."""


class ScheduleUpdated(_ScheduleSaved):
    """``schedule_updated``: the same shape as ``schedule_created``."""


class StageSnapshot(_Payload):
    """A ``course_designer_plan_stages`` row as ``schedule_finalized`` embeds it.

    Newer services add ``workspace_data``; it is ignored (not part of plan state).
    """

    id: UUID
    created_at: AwareDatetime
    updated_at: AwareDatetime
    stage: PayloadStage
    status: PayloadStageStatus
    planned_starts_on: date
    planned_ends_on: date
    actual_started_at: AwareDatetime | None = None
    actual_completed_at: AwareDatetime | None = None


class ScheduleFinalized(_Payload):
    """``schedule_finalized``, both service versions.

    Older services write ``{"stages"}`` only and start the plan later with
    ``plan_started``; they upcast to this model with ``active_stage`` and
    ``activated_at`` None. Newer services finalize and start analysis at once.
    """

    stages: tuple[StageSnapshot, ...]
    active_stage: PayloadStage | None = None
    activated_at: AwareDatetime | None = None

    _five_stages = field_validator("stages")(_check_five_stages)

    @model_validator(mode="after")
    def _activation_is_whole(self) -> ScheduleFinalized:
        if (self.active_stage is None) != (self.activated_at is None):
            raise ValueError("active_stage and activated_at come together (newer services)")
        return self

    @property
    def starts_plan(self) -> bool:
        """True for the newer shape, which also starts the active stage."""
        return self.active_stage is not None


class PlanStarted(_Payload):
    """``plan_started`` (older services): ``{}``; the stage column says which stage."""


class StageExtended(_Payload):
    """``stage_extended``: the stage column names the stage, ``new_ends_on`` its new end.

    ``months`` is how the user asked for it (``new_ends_on`` is the old end plus that
    many months, clamped); ``stage_id`` is the stage row's id.
    """

    stage_id: UUID
    months: Annotated[int, Field(strict=True, ge=1)]
    new_ends_on: date


class StageCompleted(_Payload):
    """``stage_completed``: ``{}``; the stage column says which stage."""


class StageStarted(_Payload):
    """``stage_started``: ``{}``; the stage column says which stage."""


class PlanCompleted(_Payload):
    """``plan_completed``: ``{}``."""


# --- State --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StageState:
    """One stage of a plan, as the state JSON lists it."""

    stage: StageName
    status: StageStatus
    planned_starts_on: date
    planned_ends_on: date
    actual_started_at: AwareDatetime | None = None
    actual_completed_at: AwareDatetime | None = None


@dataclass(frozen=True, slots=True)
class PlanState:
    """A plan's state: immutable, so reducers share every part they do not change.

    ``stages`` is empty until a schedule exists, then holds all five in stage order.
    """

    plan_id: UUID
    name: str | None = None
    status: PlanStatus = "draft"
    active_stage: StageName | None = None
    created_by_user_id: UUID | None = None
    stages: tuple[StageState, ...] = ()


_STATE_ADAPTER: Final = TypeAdapter(PlanState)


# --- Reducers -----------------------------------------------------------------
# Each takes the state and the event and returns a new state, sharing the untouched
# parts (stage tuples, stage values) with the old one. They build values with the
# constructors rather than ``dataclasses.replace``, which costs several times more
# and sits on the replay hot path.
#
# ``stage_completed`` touches only its stage; ``stage_started`` its stage and
# ``active_stage``; ``plan_completed`` ``status`` and ``active_stage``. So the
# same-transaction pairs (completed + started, completed + plan_completed) write
# disjoint fields and commute: the result does not depend on which comes first.
#
# Write order. ``occurred_at`` is a transaction's start, and the service's writers
# queue on the plan row: two requests on one plan (a double-clicked "advance") can
# commit in the opposite order of their starts, so the stream lists the one that
# committed second first. The service's rows follow commit order, and in that order
# nothing ever goes back. So the reducers only move things forward, which makes
# overlapping transactions fold to the service's rows in either order:
#
# * a plan's status and a stage's status only move forward (a plan in
#   ``ready_to_start`` stays there on a schedule save, a completed plan stays
#   completed, a completed stage is never in progress again);
# * the active stage is the furthest stage started, none once the plan completed;
# * stage times never go backwards along the workflow (each stage starts no
#   earlier than the one before it started, and completes no earlier than it
#   started): a transaction that completed a stage ran after the one that started
#   it, whatever their starts say. The times themselves are the closest the events
#   record (``activated_at``, else ``occurred_at``), not the service's clock.

M = TypeVar("M", bound=BaseModel)


def _payload(event: Event, model: type[M]) -> M:
    payload = event.payload
    if isinstance(payload, model):
        return payload
    # A raw mapping (an engine that did not validate, or a hand-built event).
    return model.model_validate(dict(payload) if isinstance(payload, Mapping) else payload)


def _stage_index(event: Event) -> int:
    index = _STAGE_INDEX.get(event.stage) if event.stage is not None else None
    if index is None:
        raise InvalidInput(
            f"event {event.id} ({event.event_type}) needs the stage column set to one of "
            f"{', '.join(_STAGES)}, got {event.stage!r}",
            field="stage",
        )
    return index


def _forward(current: PlanStatus, proposed: PlanStatus) -> PlanStatus:
    """The later of two plan statuses: a plan's status never goes back."""
    return proposed if _PLAN_RANK[proposed] >= _PLAN_RANK[current] else current


def _plan(
    state: PlanState,
    status: PlanStatus,
    active_stage: StageName | None,
    stages: tuple[StageState, ...],
) -> PlanState:
    status = _forward(state.status, status)
    return PlanState(
        plan_id=state.plan_id,
        name=state.name,
        status=status,
        active_stage=None if status == "completed" else active_stage,
        created_by_user_id=state.created_by_user_id,
        stages=stages,
    )


def _furthest(active: StageName | None, index: int) -> StageName:
    """The active stage once stage ``index`` started: the furthest started."""
    if active is not None and _STAGE_INDEX[active] > index:
        return active
    return _STAGES[index]


def _in_workflow_order(stages: tuple[StageState, ...]) -> tuple[StageState, ...]:
    """``stages`` with every time raised to the latest time before it in the
    workflow (each start, then each completion, stage by stage): no stage starts
    before the previous one started, nor completes before it started itself."""
    floor: datetime | None = None
    out: list[StageState] | None = None
    for i, s in enumerate(stages):
        started, completed = s.actual_started_at, s.actual_completed_at
        if started is not None:
            if floor is not None and started < floor:
                started = floor
            floor = started
        if completed is not None:
            if floor is not None and completed < floor:
                completed = floor
            floor = completed
        if started is not s.actual_started_at or completed is not s.actual_completed_at:
            if out is None:
                out = list(stages)
            out[i] = StageState(
                stage=s.stage,
                status=s.status,
                planned_starts_on=s.planned_starts_on,
                planned_ends_on=s.planned_ends_on,
                actual_started_at=started,
                actual_completed_at=completed,
            )
    return stages if out is None else tuple(out)


def _stage_moved(
    stages: tuple[StageState, ...],
    index: int,
    status: StageStatus,
    started: datetime | None = None,
    completed: datetime | None = None,
) -> tuple[StageState, ...]:
    """Stage ``index`` moved to ``status`` (never back) at the given times."""
    # Without a schedule there is no stage row to change (the service never lets that
    # happen); the plan-level part of the event still applies.
    if not stages:
        return stages
    s = stages[index]
    moved = StageState(
        stage=s.stage,
        status=status if _STAGE_STATUS_RANK[status] >= _STAGE_STATUS_RANK[s.status] else s.status,
        planned_starts_on=s.planned_starts_on,
        planned_ends_on=s.planned_ends_on,
        actual_started_at=s.actual_started_at if started is None else started,
        actual_completed_at=s.actual_completed_at if completed is None else completed,
    )
    return _in_workflow_order((*stages[:index], moved, *stages[index + 1 :]))


def _started(stages: tuple[StageState, ...], index: int, at: datetime) -> tuple[StageState, ...]:
    return _stage_moved(stages, index, "in_progress", started=at)


def _on_plan_created(state: PlanState, event: Event) -> PlanState:
    payload = _payload(event, PlanCreated)
    return PlanState(
        plan_id=state.plan_id,
        name=payload.name,
        status=state.status,  # draft, unless listed after later writes
        active_stage=state.active_stage,
        created_by_user_id=event.actor_user_id,
        stages=state.stages,
    )


def _saved_schedule(state: PlanState, payload: _ScheduleSaved, status: PlanStatus) -> PlanState:
    # A schedule save replaces the planned dates only: statuses and actual times stay
    # (the service forbids saving once a stage has started, so they are all unset).
    old = state.stages or (None,) * len(_STAGES)
    stages = tuple(
        StageState(
            stage=_STAGES[i],
            status="not_started" if s is None else s.status,
            planned_starts_on=p.planned_starts_on,
            planned_ends_on=p.planned_ends_on,
            actual_started_at=None if s is None else s.actual_started_at,
            actual_completed_at=None if s is None else s.actual_completed_at,
        )
        for i, (s, p) in enumerate(zip(old, payload.stages, strict=True))
    )
    # A save always writes the name column: null clears it, absent keeps it.
    return PlanState(
        plan_id=state.plan_id,
        name=payload.name if "name" in payload.model_fields_set else state.name,
        status=_forward(state.status, status),
        active_stage=state.active_stage,
        created_by_user_id=state.created_by_user_id,
        stages=stages,
    )


def _on_schedule_created(state: PlanState, event: Event) -> PlanState:
    return _saved_schedule(state, _payload(event, ScheduleCreated), "scheduling")


def _on_schedule_updated(state: PlanState, event: Event) -> PlanState:
    # A plan in ready_to_start stays there (older services): the forward rule.
    return _saved_schedule(state, _payload(event, ScheduleUpdated), "scheduling")


def _on_schedule_finalized(state: PlanState, event: Event) -> PlanState:
    payload = _payload(event, ScheduleFinalized)
    if payload.active_stage is None or payload.activated_at is None:
        return _plan(state, "ready_to_start", state.active_stage, state.stages)
    # The service's own clock, read after the lock: closer than occurred_at.
    index = _PAYLOAD_STAGE_INDEX[payload.active_stage]
    return _plan(
        state,
        "in_progress",
        _furthest(state.active_stage, index),
        _started(state.stages, index, payload.activated_at),
    )


def _on_plan_started(state: PlanState, event: Event) -> PlanState:
    _payload(event, PlanStarted)
    index = _stage_index(event)
    return _plan(
        state,
        "in_progress",
        _furthest(state.active_stage, index),
        _started(state.stages, index, event.occurred_at),
    )


def _on_stage_extended(state: PlanState, event: Event) -> PlanState:
    payload = _payload(event, StageExtended)
    index = _stage_index(event)
    if not state.stages:
        return state
    stages = list(state.stages)
    s = stages[index]
    stages[index] = StageState(
        stage=s.stage,
        status=s.status,
        planned_starts_on=s.planned_starts_on,
        planned_ends_on=payload.new_ends_on,
        actual_started_at=s.actual_started_at,
        actual_completed_at=s.actual_completed_at,
    )
    # Each later stage starts the day after the previous one ends and keeps its
    # length in days.
    previous_end = payload.new_ends_on
    for i in range(index + 1, len(stages)):
        s = stages[i]
        starts = previous_end + _ONE_DAY
        previous_end = starts + (s.planned_ends_on - s.planned_starts_on)
        stages[i] = StageState(
            stage=s.stage,
            status=s.status,
            planned_starts_on=starts,
            planned_ends_on=previous_end,
            actual_started_at=s.actual_started_at,
            actual_completed_at=s.actual_completed_at,
        )
    return _plan(state, state.status, state.active_stage, tuple(stages))


def _on_stage_completed(state: PlanState, event: Event) -> PlanState:
    _payload(event, StageCompleted)
    index = _stage_index(event)
    if not state.stages:
        return state
    stages = _stage_moved(state.stages, index, "completed", completed=event.occurred_at)
    return _plan(state, state.status, state.active_stage, stages)


def _on_stage_started(state: PlanState, event: Event) -> PlanState:
    _payload(event, StageStarted)
    index = _stage_index(event)
    return _plan(
        state,
        state.status,
        _furthest(state.active_stage, index),
        _started(state.stages, index, event.occurred_at),
    )


def _on_plan_completed(state: PlanState, event: Event) -> PlanState:
    _payload(event, PlanCompleted)
    return _plan(state, "completed", None, state.stages)


_Reducer: TypeAlias = Callable[[PlanState, Event], PlanState]

_REDUCERS: Final[Mapping[str, _Reducer]] = MappingProxyType(
    {
        "plan_created": _on_plan_created,
        "schedule_created": _on_schedule_created,
        "schedule_updated": _on_schedule_updated,
        "schedule_finalized": _on_schedule_finalized,
        "plan_started": _on_plan_started,
        "stage_extended": _on_stage_extended,
        "stage_completed": _on_stage_completed,
        "stage_started": _on_stage_started,
        "plan_completed": _on_plan_completed,
    }
)

_PAYLOAD_MODELS: Final[Mapping[str, type[BaseModel]]] = MappingProxyType(
    {
        "plan_created": PlanCreated,
        "schedule_created": ScheduleCreated,
        "schedule_updated": ScheduleUpdated,
        "schedule_finalized": ScheduleFinalized,
        "plan_started": PlanStarted,
        "stage_extended": StageExtended,
        "stage_completed": StageCompleted,
        "stage_started": StageStarted,
        "plan_completed": PlanCompleted,
    }
)


def _stage_to_json(stage: StageState) -> dict[str, JSONValue]:
    started, completed = stage.actual_started_at, stage.actual_completed_at
    return {
        "stage": stage.stage,
        "status": stage.status,
        "planned_starts_on": stage.planned_starts_on.isoformat(),
        "planned_ends_on": stage.planned_ends_on.isoformat(),
        "actual_started_at": None if started is None else format_timestamp(started),
        "actual_completed_at": None if completed is None else format_timestamp(completed),
    }


class CourseDesignerPlanProjection:
    """The plan state of ``spec/DOMAIN.md``, folded from a plan's events."""

    name: str = "course_designer_plan"
    version: int = 2
    """2: statuses, the active stage and stage times only move forward (overlapping
    transactions fold to the service's rows in either order)."""
    handles: frozenset[str] | None = frozenset(_REDUCERS)
    payload_models: Mapping[str, type[BaseModel]] = _PAYLOAD_MODELS
    # Same-transaction pairs share both timestamps; ranking stage_completed first
    # only makes timelines read naturally. The reducers do not depend on it.
    tie_rank: Mapping[str, int] = MappingProxyType(
        {"stage_completed": 0, "stage_started": 1, "plan_completed": 1}
    )

    def initial_state(self, plan_id: UUID) -> PlanState:
        return PlanState(plan_id=plan_id)

    def evolve(self, state: PlanState, event: Event) -> PlanState:
        reducer = _REDUCERS.get(event.event_type)
        return state if reducer is None else reducer(state, event)

    def to_json(self, state: PlanState) -> JSONValue:
        return {
            "plan_id": str(state.plan_id),
            "name": state.name,
            "status": state.status,
            "active_stage": state.active_stage,
            "created_by_user_id": None
            if state.created_by_user_id is None
            else str(state.created_by_user_id),
            "stages": [_stage_to_json(s) for s in state.stages],
        }

    def from_json(self, data: JSONValue) -> PlanState:
        """Rebuild a state from :meth:`to_json` output.

        Raises:
            InvalidInput: ``data`` is not a plan state (the message says where).
        """
        try:
            state = _STATE_ADAPTER.validate_python(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"]) or "state"
            raise InvalidInput(
                f"not a {self.name} state: {error['msg']} at {where}", field=where
            ) from exc
        if state.stages and tuple(s.stage for s in state.stages) != _STAGES:
            raise InvalidInput(
                f"not a {self.name} state: stages must be empty or the five stages in order",
                field="stages",
            )
        return state
