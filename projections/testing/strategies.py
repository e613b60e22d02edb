"""Hypothesis strategies for event streams.

Two families:

* :func:`event_streams`: rows for *any* projection, arbitrary event types and JSON
  payloads, with ties in ``occurred_at``, backfills (``created_at`` later than
  ``occurred_at``), soft-deleted rows, restored rows and several plans interleaved.
* :func:`course_designer_stories` / :func:`course_designer_plans` /
  :func:`course_designer_streams`: workflow-valid course-designer plans along every
  path of ``spec/DOMAIN.md`` (draft, scheduling, ready to start, in progress at any
  stage, completed), written by the older or the newer service, with the
  same-transaction pairs, backfilled imports, soft-deleted mistakes and unknown
  event types of real logs, and (``overlaps=True``) double-clicked advances whose
  second transaction began before the first and committed after it. A story also
  carries the state the service's own tables would hold, so a projection can be
  checked against it.

Every stream is a ``list`` of :class:`~eventsource.events.RecordedEvent` in the order
the rows were recorded (``created_at`` never decreases), exactly as the store would
hold them; the engine's stream order is recomputed from the columns
(:func:`projections.testing.properties.live_stream`). Their ``repr`` is a
constructor call, so Hypothesis prints failing examples that paste straight into a
regression test (``import datetime`` and ``from uuid import UUID`` are all they
need).
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any, Final, Literal, TypeAlias
from uuid import UUID

from hypothesis import strategies as st

from eventsource.events import STAGES, RecordedEvent, is_blank
from eventsource.jsonl import format_timestamp

from ..typing import JSONValue

__all__ = [
    "COURSE_DESIGNER_EVENT_TYPES",
    "MAX_LOCK_WAIT",
    "FloatPolicy",
    "PlanPath",
    "PlanStory",
    "Service",
    "course_designer_plans",
    "course_designer_stories",
    "course_designer_streams",
    "event_streams",
    "event_types",
    "json_objects",
    "json_values",
    "timestamps",
]

EARLIEST: Final = datetime(2000, 1, 1)
LATEST: Final = datetime(2099, 12, 31)

FloatPolicy: TypeAlias = Literal["portable", "all", "none"]
"""Which floats JSON payloads may hold.

``"portable"``: only floats the store gives back unchanged. The store keeps
payloads in PostgreSQL ``jsonb``'s number form on every backend, so a float orjson
writes with an exponent (``1e+16``) reads back as the integer
``10000000000000000`` and ``-0.0`` as ``0.0``; streams compared with what a store
returns must leave those out. ``"all"``: any finite float. ``"none"``: no floats.
"""

COURSE_DESIGNER_EVENT_TYPES: Final = (
    "plan_created",
    "schedule_created",
    "schedule_updated",
    "schedule_finalized",
    "plan_started",
    "stage_extended",
    "stage_completed",
    "stage_started",
    "plan_completed",
)
UNKNOWN_EVENT_TYPES: Final = (
    "weekly_stage_reminder_sent",
    "task_created",
    "comment_added",
    "member_added",
)
GENERIC_EVENT_TYPES: Final = ("created", "renamed", "tagged", "counted", "removed")

# Text the store accepts everywhere: no NUL (jsonb refuses it), no lone surrogates.
_TEXT_CHARS: Final = st.characters(codec="utf-8", exclude_characters="\x00")
_STAGE_OR_NONE: Final = st.none() | st.sampled_from(STAGES)


def timestamps(
    min_value: datetime = EARLIEST, max_value: datetime = LATEST
) -> st.SearchStrategy[datetime]:
    """Timezone-aware UTC instants with microseconds (naive bounds, read as UTC)."""
    return st.datetimes(min_value=min_value, max_value=max_value, timezones=st.just(UTC))


def _floats(policy: FloatPolicy) -> st.SearchStrategy[float]:
    if policy == "all":
        return st.floats(allow_nan=False, allow_infinity=False)
    # Below 1e16 orjson writes no positive exponent, so jsonb keeps a float; and
    # x + 0.0 turns -0.0 into 0.0 (jsonb has no negative zero).
    return st.floats(min_value=-(10.0**16) + 2, max_value=10.0**16 - 2).map(lambda x: x + 0.0)


@cache
def json_values(
    *, floats: FloatPolicy = "portable", max_leaves: int = 6
) -> st.SearchStrategy[JSONValue]:
    """JSON values every backend stores and returns unchanged (see :data:`FloatPolicy`)."""
    scalars: st.SearchStrategy[JSONValue] = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**63), max_value=2**63 - 1)
        | st.text(_TEXT_CHARS, max_size=12)
    )
    if floats != "none":
        scalars = scalars | _floats(floats)
    keys = st.text(_TEXT_CHARS, max_size=8)
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3)
        ),
        max_leaves=max_leaves,
    )


@cache
def json_objects(
    *, floats: FloatPolicy = "portable", max_size: int = 3
) -> st.SearchStrategy[dict[str, JSONValue]]:
    """Event payloads: JSON objects of :func:`json_values`."""
    return st.dictionaries(
        st.text(_TEXT_CHARS, max_size=8), json_values(floats=floats), max_size=max_size
    )


def event_types(known: Sequence[str] = GENERIC_EVENT_TYPES) -> st.SearchStrategy[str]:
    """Mostly ``known`` types (so streams repeat them), sometimes arbitrary text."""
    arbitrary = st.text(_TEXT_CHARS, min_size=1, max_size=40).filter(lambda s: not is_blank(s))
    if not known:
        return arbitrary
    return st.sampled_from(tuple(known)) | arbitrary


# --- Generic streams -----------------------------------------------------------

_TX_GAPS: Final = st.timedeltas(timedelta(0), timedelta(days=3))
_WHEN: Final = st.sampled_from(("now", "tie", "past"))
_BACKFILL_DEPTHS: Final = st.timedeltas(timedelta(microseconds=1), timedelta(days=30))
_FATES: Final = st.sampled_from(("live", "deleted", "restored"))
_LATER: Final = st.timedeltas(timedelta(microseconds=1), timedelta(days=3))


@st.composite
def event_streams(
    draw: st.DrawFn,
    /,
    *,
    min_events: int = 0,
    max_events: int = 12,
    max_plans: int = 3,
    types: st.SearchStrategy[str] | None = None,
    payloads: st.SearchStrategy[Mapping[str, JSONValue]] | None = None,
    deletes: bool = True,
    backfills: bool = True,
    start: st.SearchStrategy[datetime] | None = None,
) -> list[RecordedEvent]:
    """Rows of up to ``max_plans`` interleaved plans, in the order they were recorded.

    Events are written in transactions of one to three events sharing
    ``created_at``. Each event's ``occurred_at`` is its transaction's time (so a
    transaction's events tie, as upstream), or, for a backfill, an earlier moment:
    often exactly another event's ``occurred_at`` (a tie across transactions).
    Some rows are soft-deleted (``deleted_at`` after ``created_at``), some were
    deleted and restored (``updated_at`` after ``created_at``, no ``deleted_at``).

    Args:
        types: event types (default :func:`event_types`).
        payloads: payloads (default :func:`json_objects`, portable floats).
        deletes: allow soft-deleted and restored rows.
        backfills: allow ``occurred_at`` earlier than ``created_at``.
        start: the first transaction's time.
    """
    type_strategy = types if types is not None else event_types()
    payload_strategy = payloads if payloads is not None else json_objects()
    plan_count = draw(st.integers(1, max(1, max_plans)), label="plans")
    plan_ids = draw(st.lists(st.uuids(), min_size=plan_count, max_size=plan_count, unique=True))
    actors = draw(st.lists(st.uuids(), min_size=1, max_size=2, unique=True))
    now = draw(start if start is not None else timestamps())
    total = draw(st.integers(min_events, max_events), label="events")
    ids = draw(st.lists(st.uuids(), min_size=total, max_size=total, unique=True))
    occurred_seen: list[datetime] = []
    rows: list[RecordedEvent] = []
    while len(rows) < total:
        size = min(total - len(rows), draw(st.integers(1, 3)))
        plan = draw(st.sampled_from(plan_ids))
        # Zero gaps happen: two plans' transactions can start in the same microsecond.
        now += draw(_TX_GAPS)
        when = draw(_WHEN if backfills else st.just("now"))
        occurred = now
        if when == "tie" and occurred_seen:
            occurred = draw(st.sampled_from(occurred_seen))
        elif when == "past":
            occurred = now - draw(_BACKFILL_DEPTHS)
        for _ in range(size):
            event_id = ids[len(rows)]
            deleted_at: datetime | None = None
            updated_at = now
            fate = draw(
                st.sampled_from(("live", "deleted", "restored")) if deletes else st.just("")
            )
            if fate in ("deleted", "restored"):
                later = now + draw(st.timedeltas(timedelta(microseconds=1), timedelta(days=3)))
                updated_at = later
                deleted_at = later if fate == "deleted" else None
            rows.append(
                RecordedEvent(
                    id=event_id,
                    plan_id=plan,
                    event_type=draw(type_strategy),
                    payload=dict(draw(payload_strategy)),
                    stage=draw(_STAGE_OR_NONE),
                    actor_user_id=draw(st.none() | st.sampled_from(actors)),
                    occurred_at=occurred,
                    created_at=now,
                    updated_at=updated_at,
                    deleted_at=deleted_at,
                )
            )
        occurred_seen.append(occurred)
    return rows


# --- Course-designer plans ------------------------------------------------------

Service: TypeAlias = Literal["older", "newer"]
"""Which service version wrote the plan: older ones finalize to ``ready_to_start``
and start with ``plan_started``; newer ones finalize and start analysis at once."""

PlanPath: TypeAlias = Literal["draft", "scheduling", "ready_to_start", "in_progress", "completed"]
"""Where along the workflow of ``DOMAIN.md`` the plan stops."""

_PATHS: Final[tuple[PlanPath, ...]] = (
    "draft",
    "scheduling",
    "ready_to_start",
    "in_progress",
    "completed",
)
_PAYLOAD_STAGES: Final = tuple(s.capitalize() for s in STAGES)
_UNKNOWN_TYPES: Final = st.sampled_from(UNKNOWN_EVENT_TYPES) | st.text(
    _TEXT_CHARS, min_size=1, max_size=40
).filter(lambda t: not is_blank(t) and t not in COURSE_DESIGNER_EVENT_TYPES)
_GAPS: Final = st.timedeltas(timedelta(seconds=1), timedelta(days=21))
_RETRACTION_DELAYS: Final = st.timedeltas(timedelta(seconds=1), timedelta(days=3))
_SUGGESTED: Final = ((1, 1, 2, 1, 1), (1, 2, 3, 2, 1), (2, 2, 4, 3, 1))
_ONE_DAY: Final = timedelta(days=1)
MAX_LOCK_WAIT: Final = timedelta(milliseconds=900)
"""The longest a double-clicked advance waits for the plan row in generated plans
(and the longest it began before the first); below the one-second gap between
other writes, so a double click overlaps only its own pair."""
_OVERLAP: Final = st.timedeltas(timedelta(microseconds=1), MAX_LOCK_WAIT)


@dataclass(frozen=True)
class PlanStory:
    """One generated plan: its rows and the state the service would hold.

    Attributes:
        plan_id: the plan.
        service: the service version that wrote it.
        path: where the workflow stopped.
        events: every row (deleted mistakes included), in the order recorded.
        expected: the plan state JSON of ``DOMAIN.md`` that the service's rows hold
            and the live events must fold to. After a double click (see
            ``double_clicks``) the stage times the later-committed advance wrote are
            its own clock, read after it waited for the first: later than anything
            its events record, by less than :data:`MAX_LOCK_WAIT`.
        double_clicks: how many pairs of overlapping advances the plan had.
    """

    plan_id: UUID
    service: Service
    path: PlanPath
    events: tuple[RecordedEvent, ...]
    expected: dict[str, JSONValue]
    double_clicks: int = 0

    @property
    def live(self) -> tuple[RecordedEvent, ...]:
        """The rows that count (not soft-deleted)."""
        return tuple(e for e in self.events if e.deleted_at is None)


def _add_months(day: date, months: int) -> date:
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass
class _Tx:
    at: datetime
    events: list[tuple[str, str | None, dict[str, Any], UUID | None]]
    deleted_after: timedelta | None = None
    created_at: datetime | None = None


@dataclass
class _Stage:
    starts: date
    ends: date
    status: str = "not_started"
    started: datetime | None = None
    completed: datetime | None = None


@dataclass
class _PlanBuilder:
    draw: st.DrawFn
    plan_id: UUID
    owner: UUID
    members: list[UUID]
    now: datetime
    txs: list[_Tx] = field(default_factory=list)
    name: str | None = None
    created_by: UUID | None = None
    status: str = "draft"
    active: int | None = None
    stages: list[_Stage] = field(default_factory=list)
    stage_ids: list[str] = field(default_factory=list)
    stages_created_at: datetime | None = None

    def tick(self) -> datetime:
        self.now += self.draw(st.timedeltas(timedelta(seconds=1), timedelta(days=21)), label="gap")
        return self.now

    def actor(self, *, system: bool = True) -> UUID | None:
        choices: list[UUID | None] = [self.owner, *self.members]
        if system:
            choices.append(None)
        return self.draw(st.sampled_from(choices))

    def commit(self, *events: tuple[str, str | None, dict[str, Any]], deleted: bool = False) -> _Tx:
        actor = self.actor()
        deleted_after = self.draw(_RETRACTION_DELAYS) if deleted else None
        tx = _Tx(self.tick(), [(t, s, p, actor) for t, s, p in events], deleted_after)
        self.txs.append(tx)
        return tx

    def schedule(self) -> list[tuple[date, date]]:
        draw = self.draw
        first = draw(st.dates(date(2024, 1, 1), date(2027, 12, 31)), label="schedule start")
        if draw(st.booleans(), label="suggested"):
            start = first.replace(day=1)
            result = []
            for months in draw(st.sampled_from(_SUGGESTED)):
                following = _add_months(start, months)
                result.append((start, following - _ONE_DAY))
                start = following
            return result
        result = []
        start = first
        for length in draw(st.lists(st.integers(1, 120), min_size=5, max_size=5)):
            result.append((start, start + timedelta(days=length - 1)))
            start += timedelta(days=length)
        return result

    def save(self, event_type: str, *, deleted: bool = False) -> None:
        planned = self.schedule()
        name = self.draw(_names())
        payload = {
            "name": name,
            "stages": [
                {
                    "stage": _PAYLOAD_STAGES[i],
                    "planned_starts_on": starts.isoformat(),
                    "planned_ends_on": ends.isoformat(),
                }
                for i, (starts, ends) in enumerate(planned)
            ],
        }
        tx = self.commit((event_type, None, payload), deleted=deleted)
        if deleted:
            return
        if not self.stages:
            self.stages_created_at = tx.at
            self.stage_ids = [str(u) for u in self.draw(_unique_uuids(5))]
            self.stages = [_Stage(s, e) for s, e in planned]
        else:
            for stage, (s, e) in zip(self.stages, planned, strict=True):
                stage.starts, stage.ends = s, e
        self.name = name
        if event_type == "schedule_created" or self.status != "ready_to_start":
            self.status = "scheduling"

    def stage_rows(self, activated_at: datetime | None) -> list[dict[str, Any]]:
        assert self.stages_created_at is not None
        created = format_timestamp(self.stages_created_at)
        rows = []
        for i, stage in enumerate(self.stages):
            started = activated_at if i == 0 else None
            row: dict[str, Any] = {
                "id": self.stage_ids[i],
                "created_at": created,
                "updated_at": created if started is None else format_timestamp(started),
                "stage": _PAYLOAD_STAGES[i],
                "status": "NotStarted" if started is None else "InProgress",
                "planned_starts_on": stage.starts.isoformat(),
                "planned_ends_on": stage.ends.isoformat(),
                "actual_started_at": None if started is None else format_timestamp(started),
                "actual_completed_at": None,
            }
            if activated_at is not None:
                row["workspace_data"] = None
            rows.append(row)
        return rows

    def start(self, index: int, at: datetime) -> None:
        stage = self.stages[index]
        stage.status, stage.started = "in_progress", at
        self.active = index

    def advance(self, index: int, tx: _Tx | None = None, clock: datetime | None = None) -> _Tx:
        """Complete stage ``index`` and start the next (or complete the plan), as one
        transaction: ``tx`` (committed now) or a new one; the rows get ``clock``,
        the service's time, else the transaction's."""
        # stage_completed and what follows share a transaction, hence timestamps.
        following: tuple[str, str | None, dict[str, Any]] = (
            ("stage_started", STAGES[index + 1], {})
            if index + 1 < len(STAGES)
            else ("plan_completed", None, {})
        )
        completed: tuple[str, str | None, dict[str, Any]] = ("stage_completed", STAGES[index], {})
        if tx is None:
            tx = self.commit(completed, following)
        else:
            actor = self.actor()
            tx.events = [(t, s, p, actor) for t, s, p in (completed, following)]
            self.txs.append(tx)
        at = tx.at if clock is None else clock
        self.stages[index].status, self.stages[index].completed = "completed", at
        if index + 1 < len(STAGES):
            self.start(index + 1, at)
        else:
            self.status, self.active = "completed", None
        return tx

    def double_click(self, index: int) -> None:
        """Two advance requests at once: the one that began second takes the plan's
        lock first and commits; the other, which began earlier (its events'
        ``occurred_at``), then advances the stage after, with the service's clock
        read once it has the lock."""
        first = self.advance(index)
        began = first.at - self.draw(_OVERLAP, label="began earlier by")
        clock = first.at + self.draw(_OVERLAP, label="waited for the lock")
        self.advance(index + 1, _Tx(began, []), clock)
        self.now = max(self.now, clock)

    def extend(self, *, deleted: bool = False) -> None:
        assert self.active is not None
        index = self.active
        months = self.draw(st.integers(1, 6), label="months")
        new_ends = _add_months(self.stages[index].ends, months)
        payload = {
            "stage_id": self.stage_ids[index],
            "months": months,
            "new_ends_on": str(new_ends),
        }
        self.commit(("stage_extended", STAGES[index], payload), deleted=deleted)
        if deleted:
            return
        self.stages[index].ends = new_ends
        previous = new_ends
        for stage in self.stages[index + 1 :]:
            length = stage.ends - stage.starts
            stage.starts = previous + _ONE_DAY
            stage.ends = previous = stage.starts + length

    def unknown(self) -> None:
        event_type = self.draw(_UNKNOWN_TYPES)
        self.commit((event_type, self.draw(_STAGE_OR_NONE), self.draw(json_objects())))

    def maybe_unknown(self, allowed: bool) -> None:
        if allowed and self.draw(st.integers(0, 4), label="unknown") == 0:
            self.unknown()

    def expected(self) -> dict[str, JSONValue]:
        def ts(value: datetime | None) -> str | None:
            return None if value is None else format_timestamp(value)

        return {
            "plan_id": str(self.plan_id),
            "name": self.name,
            "status": self.status,
            "active_stage": None if self.active is None else STAGES[self.active],
            "created_by_user_id": None if self.created_by is None else str(self.created_by),
            "stages": [
                {
                    "stage": STAGES[i],
                    "status": s.status,
                    "planned_starts_on": s.starts.isoformat(),
                    "planned_ends_on": s.ends.isoformat(),
                    "actual_started_at": ts(s.started),
                    "actual_completed_at": ts(s.completed),
                }
                for i, s in enumerate(self.stages)
            ],
        }


@cache
def _names() -> st.SearchStrategy[str | None]:
    return st.none() | st.text(_TEXT_CHARS, max_size=20)


@cache
def _unique_uuids(count: int) -> st.SearchStrategy[list[UUID]]:
    return st.lists(st.uuids(), min_size=count, max_size=count, unique=True)


@st.composite
def course_designer_stories(
    draw: st.DrawFn,
    /,
    *,
    services: Sequence[Service] = ("older", "newer"),
    paths: Sequence[PlanPath] = _PATHS,
    mistakes: bool = True,
    unknown_events: bool = True,
    backfills: bool = True,
    overlaps: bool = False,
    plan_id: UUID | None = None,
    start: st.SearchStrategy[datetime] | None = None,
) -> PlanStory:
    """A workflow-valid course-designer plan and the state it must fold to.

    Args:
        services: service versions to draw from.
        paths: workflow endings to draw from (``ready_to_start`` exists only for
            the older service; a newer plan drawn there goes on to ``in_progress``).
        mistakes: allow soft-deleted mistakes (a schedule save with wrong dates, a
            double-submitted extension).
        unknown_events: allow event types the plan projection does not know.
        backfills: allow backfilled imports (whole transactions recorded later,
            ``created_at`` after ``occurred_at``).
        overlaps: allow double-clicked advances (two advances on one plan whose
            transactions overlap: the later commit has the earlier ``occurred_at``).
        plan_id: the plan's id (drawn when None).
        start: when the plan is created.
    """
    service: Service = draw(st.sampled_from(tuple(services)), label="service")
    path: PlanPath = draw(st.sampled_from(tuple(paths)), label="path")
    if path == "ready_to_start" and service == "newer":
        path = "in_progress"
    ident = plan_id if plan_id is not None else draw(st.uuids(), label="plan_id")
    people = draw(_unique_uuids(draw(st.integers(1, 3))))
    plan = _PlanBuilder(
        draw,
        ident,
        people[0],
        people[1:],
        draw(
            start if start is not None else timestamps(datetime(2024, 1, 1), datetime(2027, 1, 1))
        ),
    )
    mistake_at = draw(st.none() | st.integers(0, 20)) if mistakes else None
    steps = 0

    def step() -> None:
        nonlocal steps, mistake_at
        steps += 1
        plan.maybe_unknown(unknown_events)
        if mistake_at is not None and steps >= mistake_at and plan.stages:
            mistake_at = None
            if plan.active is not None and plan.status == "in_progress" and draw(st.booleans()):
                plan.extend(deleted=True)  # a double submit, retracted
            else:
                plan.save("schedule_updated", deleted=True)  # dates a year off, retracted

    # plan_created: upstream always has the caller as actor; a system job may not.
    name = draw(_names())
    creator = plan.actor(system=draw(st.integers(0, 9)) == 0)
    plan.txs.append(_Tx(plan.now, [("plan_created", None, {"name": name}, creator)]))
    plan.name, plan.created_by = name, creator
    step()
    if path != "draft":
        plan.save("schedule_created")
        step()
        for _ in range(draw(st.integers(0, 2), label="updates")):
            plan.save("schedule_updated")
            step()
    if path in ("ready_to_start", "in_progress", "completed"):
        if service == "older":
            plan.commit(("schedule_finalized", None, {"stages": plan.stage_rows(None)}))
            plan.status = "ready_to_start"
            step()
            if draw(st.integers(0, 3), label="update when ready") == 0:
                plan.save("schedule_updated")
                step()
            if path != "ready_to_start":
                tx = plan.commit(("plan_started", "analysis", {}))
                plan.status = "in_progress"
                plan.start(0, tx.at)
                step()
        else:
            at = plan.tick()
            activated = at + timedelta(microseconds=draw(st.integers(300, 5000)))
            payload = {
                "stages": plan.stage_rows(activated),
                "active_stage": "Analysis",
                "activated_at": format_timestamp(activated),
            }
            plan.txs.append(_Tx(at, [("schedule_finalized", "analysis", payload, plan.actor())]))
            plan.status = "in_progress"
            plan.start(0, activated)
            step()
    double_clicks = 0
    if path in ("in_progress", "completed"):
        stop = draw(st.integers(0, 4), label="stop at stage") if path == "in_progress" else None
        last = len(STAGES) if stop is None else stop  # the stage the plan ends in (5: done)
        index = 0
        while index < last:
            for _ in range(draw(st.integers(0, 2), label="extensions")):
                plan.extend()
                step()
            if overlaps and index + 2 <= last and draw(st.booleans(), label="double click"):
                plan.double_click(index)
                double_clicks += 1
                index += 2
            else:
                plan.advance(index)
                index += 1
            step()
        if stop is not None:
            for _ in range(draw(st.integers(0, 2), label="extensions")):
                plan.extend()
                step()
    return PlanStory(
        ident, service, path, _rows(draw, plan, backfills), plan.expected(), double_clicks
    )


def _rows(draw: st.DrawFn, plan: _PlanBuilder, backfills: bool) -> tuple[RecordedEvent, ...]:
    if backfills:
        live = [tx for tx in plan.txs if tx.deleted_after is None]
        mask = draw(
            st.lists(st.booleans(), min_size=len(live), max_size=len(live)), label="backfilled"
        )
        if any(mask):
            # One import transaction records them all, some time after the last event.
            imported_at = plan.now + draw(st.timedeltas(timedelta(seconds=1), timedelta(days=60)))
            for tx, late in zip(live, mask, strict=True):
                if late:
                    tx.created_at = imported_at
    count = sum(len(tx.events) for tx in plan.txs)
    ids = iter(draw(_unique_uuids(count), label="event ids"))
    rows: list[RecordedEvent] = []
    for tx in plan.txs:
        created = tx.created_at or tx.at
        deleted = None if tx.deleted_after is None else created + tx.deleted_after
        for event_type, stage, payload, actor in tx.events:
            rows.append(
                RecordedEvent(
                    id=next(ids),
                    plan_id=plan.plan_id,
                    event_type=event_type,
                    payload=payload,
                    stage=stage,
                    actor_user_id=actor,
                    occurred_at=tx.at,
                    created_at=created,
                    updated_at=created if deleted is None else deleted,
                    deleted_at=deleted,
                )
            )
    rows.sort(key=lambda e: e.created_at)  # stable: the order of recording
    return tuple(rows)


def course_designer_plans(**kwargs: Any) -> st.SearchStrategy[list[RecordedEvent]]:
    """The rows of one workflow-valid plan (see :func:`course_designer_stories`)."""
    return course_designer_stories(**kwargs).map(lambda story: list(story.events))


@st.composite
def course_designer_streams(
    draw: st.DrawFn, /, *, max_plans: int = 3, **kwargs: Any
) -> list[RecordedEvent]:
    """Rows of several workflow-valid plans, interleaved in the order recorded."""
    count = draw(st.integers(1, max(1, max_plans)), label="plans")
    plan_ids = draw(_unique_uuids(count), label="plan ids")
    stories = [draw(course_designer_stories(plan_id=p, **kwargs)) for p in plan_ids]
    rows = [e for story in stories for e in story.events]
    # Ids unique across plans (each story only keeps its own apart).
    ids = draw(_unique_uuids(len(rows)), label="event ids")
    rows = [e._replace(id=i) for e, i in zip(rows, ids, strict=True)]
    rows.sort(key=lambda e: e.created_at)
    return rows
