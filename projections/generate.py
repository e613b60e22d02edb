"""Seeded generator of realistic course-designer event logs (``eventsource generate``).

:func:`generate_rows` simulates the workflow of ``DOMAIN.md`` for a number of plans
and returns rows shaped exactly like the lines of the sample fixture, with every
quirk a faithful reader must accept: events of older and newer service versions,
backfilled imports (``created_at`` later than ``occurred_at``), soft-deleted
erroneous events, unknown event types, events with no actor and same-transaction
``stage_completed`` pairs. The live (not deleted) events of each plan always make
a valid workflow, so a correct reducer can rebuild the plan's state from them.

:func:`generate_long_plan` builds one long plan for benchmarks and
:func:`write_jsonl` writes either in the JSON Lines exchange format.

Everything is drawn from ``random.Random(seed)``: the same arguments always give
the same rows (no wall clock, no global randomness).
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Protocol

from eventsource.errors import InvalidInput
from eventsource.events import STAGES, check_timestamp
from eventsource.jsonl import dumps_row, format_timestamp

from .course_designer import add_months

__all__ = [
    "DEFAULT_START",
    "STAGE_NAMES",
    "SUGGESTED_MONTHS",
    "GeneratedLog",
    "generate_long_plan",
    "generate_rows",
    "write_jsonl",
]

STAGE_NAMES: Final = ("Analysis", "Design", "Development", "Implementation", "Evaluation")
"""Stage names as payloads spell them (PascalCase), in ``STAGES`` order."""

SUGGESTED_MONTHS: Final[dict[str, tuple[int, ...]]] = {
    "small": (1, 1, 2, 1, 1),
    "medium": (1, 2, 3, 2, 1),
    "large": (2, 2, 4, 3, 1),
}
"""Whole months per stage of the service's suggested schedules."""

DEFAULT_START: Final = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
"""Default time of the first plan's creation window (no wall clock)."""

PLAN_SPAN: Final = timedelta(days=300)
"""Plans are created at random times within this span after ``start``."""

UNKNOWN_TYPES: Final = (
    "weekly_stage_reminder_sent",
    "task_created",
    "comment_added",
    "member_added",
)

_PLAN_NAMES: Final = (
    "Machine Learning 101",
    "Ohjelmoinnin perusteet",
    "Intro to Databases",
    "Tietorakenteet ja algoritmit",
    "Éléments de statistique",
    "Datenbanken für Einsteiger",
)
_TITLES: Final = ("Draft syllabus", "Review learning outcomes", "Record lecture 1", "Pilot quiz")
_UNICODE_TEXTS: Final = (
    "Ohjelmointi äö ✓",
    "Kurssin suunnittelu – vaihe 2",
    "Übung: Größenordnung",
    "授業計画の見直し",
    "Révision du cours ✓",
)
_ROLES: Final = ("editor", "viewer", "reviewer")


@dataclass(frozen=True)
class GeneratedLog:
    """A generated event log.

    Attributes:
        users: ids of every actor that appears in ``rows`` (for the ``users`` table).
        plan_owners: plan id -> the id of the user who created it.
        rows: one dict a row, keyed by the table's columns, exactly as the JSONL
            format prints them (timestamps via :func:`format_timestamp`).
    """

    users: list[str]
    plan_owners: dict[str, str]
    rows: list[dict[str, Any]]


class _TextSink(Protocol):
    def write(self, text: str, /) -> object: ...


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ts(value: datetime) -> str:
    return format_timestamp(value)


def _gap(rng: random.Random) -> timedelta:
    """Time between two transactions of one plan: minutes to weeks."""
    roll = rng.random()
    if roll < 0.3:
        seconds = rng.randint(60, 3 * 3600)
    elif roll < 0.7:
        seconds = rng.randint(3 * 3600, 3 * 86400)
    else:
        seconds = rng.randint(3 * 86400, 21 * 86400)
    return timedelta(seconds=seconds, microseconds=rng.randrange(1_000_000))


def _suggested_schedule(first: date, size: str) -> list[tuple[date, date]]:
    start = first
    stages = []
    for months in SUGGESTED_MONTHS[size]:
        following = add_months(start, months)
        stages.append((start, following - timedelta(days=1)))
        start = following
    return stages


def _custom_schedule(rng: random.Random, today: date) -> list[tuple[date, date]]:
    start = today + timedelta(days=rng.randint(0, 60))
    stages = []
    for _ in STAGES:
        end = start + timedelta(days=rng.randint(7, 120) - 1)
        stages.append((start, end))
        start = end + timedelta(days=1)
    return stages


def _schedule_payload(name: str | None, stages: list[tuple[date, date]]) -> dict[str, Any]:
    return {
        "name": name,
        "stages": [
            {
                "stage": STAGE_NAMES[index],
                "planned_starts_on": starts.isoformat(),
                "planned_ends_on": ends.isoformat(),
            }
            for index, (starts, ends) in enumerate(stages)
        ],
    }


def _extended(stages: list[tuple[date, date]], index: int, months: int) -> list[tuple[date, date]]:
    """The schedule after extending stage ``index``: later stages shift, keep their length."""
    result = list(stages[:index])
    starts, ends = stages[index]
    result.append((starts, add_months(ends, months)))
    for later_starts, later_ends in stages[index + 1 :]:
        begin = result[-1][1] + timedelta(days=1)
        result.append((begin, begin + (later_ends - later_starts)))
    return result


@dataclass
class _Event:
    event_type: str
    stage: str | None
    payload: dict[str, Any]
    actor: str | None


@dataclass
class _Tx:
    """One upstream transaction: its events share every timestamp."""

    at: datetime
    events: list[_Event]
    deleted_after: timedelta | None = None
    backfilled: bool = False


@dataclass(frozen=True)
class _Profile:
    target: str  # the plan's final status
    stop_stage: int = 0  # active stage at the end, for target in_progress
    older: bool = False  # older service: schedule_finalized v1 + plan_started
    backfill: str = "none"  # "none" | "whole" | "partial"
    duplicate_extension: bool = False
    bogus_schedule: bool = False
    unknown_rate: float = 0.0
    force_unknown: bool = False
    custom_schedule: bool = False


# The first plans get these overrides, so that every status and every quirk is
# present in any log of at least this many plans, whatever the seed.
_FORCED: Final[tuple[dict[str, Any], ...]] = (
    {"target": "completed", "older": True, "backfill": "whole"},
    {
        "target": "in_progress",
        "stop_stage": 2,
        "older": False,
        "duplicate_extension": True,
        "force_unknown": True,
    },
    {"target": "ready_to_start", "older": True, "backfill": "partial"},
    {"target": "draft", "force_unknown": True},
    {"target": "scheduling", "bogus_schedule": True, "custom_schedule": True},
    {
        "target": "in_progress",
        "stop_stage": 0,
        "older": False,
        "bogus_schedule": True,
        "backfill": "partial",
    },
)


def _random_profile(rng: random.Random) -> _Profile:
    target = rng.choices(
        ("draft", "scheduling", "ready_to_start", "in_progress", "completed"),
        weights=(10, 10, 5, 62, 13),
    )[0]
    backfill_roll = rng.random()
    return _Profile(
        target=target,
        stop_stage=rng.randrange(len(STAGES)),
        older=target == "ready_to_start" or rng.random() < 0.35,
        backfill="whole" if backfill_roll < 0.07 else "partial" if backfill_roll < 0.15 else "none",
        duplicate_extension=rng.random() < 0.12,
        bogus_schedule=rng.random() < 0.08,
        unknown_rate=0.0 if rng.random() < 0.6 else rng.uniform(0.1, 0.3),
        custom_schedule=rng.random() < 0.25,
    )


@dataclass
class _PlanSim:
    """Simulates one plan, keeping just enough state to write valid events."""

    rng: random.Random
    plan_id: str
    team: list[str]
    now: datetime
    profile: _Profile
    name: str | None = None
    status: str = "draft"
    active: int | None = None
    stages: list[tuple[date, date]] = field(default_factory=list)
    stage_ids: list[str] = field(default_factory=list)
    stages_created_at: datetime | None = None
    stages_updated_at: datetime | None = None
    txs: list[_Tx] = field(default_factory=list)
    bogus_done: bool = False

    @property
    def owner(self) -> str:
        return self.team[0]

    def actor(self) -> str:
        return self.rng.choice(self.team)

    def commit(self, *events: _Event, deleted_after: timedelta | None = None) -> datetime:
        self.now += _gap(self.rng)
        self.txs.append(_Tx(self.now, list(events), deleted_after))
        return self.now

    def maybe_unknown(self) -> None:
        if self.rng.random() < self.profile.unknown_rate:
            self.unknown()

    # -- unknown event types -------------------------------------------------

    def unknown(self, event_type: str | None = None) -> None:
        rng = self.rng
        if event_type is None:
            event_type = rng.choices(UNKNOWN_TYPES, weights=(4, 2, 2, 1))[0]
        stage = None
        if self.status == "in_progress" and self.active is not None and rng.random() < 0.8:
            stage = STAGES[self.active]
        if event_type == "weekly_stage_reminder_sent":
            payload: dict[str, Any] = {"recipients": rng.randint(1, len(self.team) + 1)}
            self.commit(_Event(event_type, stage, payload, None))
            return
        payload = {
            "title": rng.choice(_TITLES),
            "unicode": rng.choice(_UNICODE_TEXTS),
            "nested": {"k": [1, 2, 3], "labels": ["työ", "✓"], "meta": {"priority": 2}},
        }
        if event_type == "member_added":
            payload["member"] = {"user_id": rng.choice(self.team), "role": rng.choice(_ROLES)}
        self.commit(_Event(event_type, stage, payload, self.actor()))

    # -- schedules -----------------------------------------------------------

    def new_schedule(self) -> list[tuple[date, date]]:
        today = self.now.date()
        if self.profile.custom_schedule and self.rng.random() < 0.7:
            return _custom_schedule(self.rng, today)
        first = add_months(today.replace(day=1), self.rng.randint(0, 3))
        return _suggested_schedule(first, self.rng.choice(tuple(SUGGESTED_MONTHS)))

    def schedule_name(self, version: int) -> str | None:
        roll = self.rng.random()
        if roll < 0.35:
            return None
        if roll < 0.7:
            return self.name
        if roll < 0.85:
            return f"Plan v{version}"
        return "Renamed plan"

    def save_schedule(self, event_type: str, version: int) -> None:
        self.name = self.schedule_name(version)
        self.stages = self.new_schedule()
        payload = _schedule_payload(self.name, self.stages)
        at = self.commit(_Event(event_type, None, payload, self.actor()))
        if event_type == "schedule_created":
            self.stage_ids = [_uuid(self.rng) for _ in STAGES]
            self.stages_created_at = at
        if self.status != "ready_to_start":
            self.status = "scheduling"
        self.stages_updated_at = at
        self.maybe_unknown()

    def bogus_schedule_update(self) -> None:
        """A mistaken schedule save (dates a year off), soft-deleted soon after."""
        if self.bogus_done or not self.stages:
            return
        self.bogus_done = True
        year = timedelta(days=365)
        wrong = [(starts + year, ends + year) for starts, ends in self.stages]
        deleted_after = timedelta(minutes=self.rng.randint(2, 3 * 24 * 60), seconds=1)
        self.commit(
            _Event("schedule_updated", None, _schedule_payload(self.name, wrong), self.actor()),
            deleted_after=deleted_after,
        )

    def snapshot(self, activated_at: datetime | None) -> list[dict[str, Any]]:
        assert self.stages_created_at is not None
        assert self.stages_updated_at is not None
        snapshot = []
        for index, (starts, ends) in enumerate(self.stages):
            started = activated_at if index == 0 else None
            element: dict[str, Any] = {
                "id": self.stage_ids[index],
                "created_at": _ts(self.stages_created_at),
                "updated_at": _ts(started or self.stages_updated_at),
                "stage": STAGE_NAMES[index],
                "status": "InProgress" if started else "NotStarted",
                "planned_starts_on": starts.isoformat(),
                "planned_ends_on": ends.isoformat(),
                "actual_started_at": None if started is None else _ts(started),
                "actual_completed_at": None,
            }
            if activated_at is not None:
                element["workspace_data"] = None
            snapshot.append(element)
        return snapshot

    # -- in progress ---------------------------------------------------------

    def extend(self, months: int, *, deleted_after: timedelta | None = None) -> None:
        assert self.active is not None
        extended = _extended(self.stages, self.active, months)
        payload = {
            "stage_id": self.stage_ids[self.active],
            "months": months,
            "new_ends_on": extended[self.active][1].isoformat(),
        }
        event = _Event("stage_extended", STAGES[self.active], payload, self.actor())
        if deleted_after is not None:
            self.commit(event, deleted_after=deleted_after)
            return
        self.commit(event)
        self.stages = extended
        self.maybe_unknown()

    def duplicate_extension(self, months: int) -> None:
        """A double submit of the same extension, soft-deleted later."""
        minutes = self.rng.randint(10, 5 * 24 * 60)
        self.extend(months, deleted_after=timedelta(minutes=minutes, seconds=7))

    # -- the whole story -----------------------------------------------------

    def run(self) -> None:
        rng, profile = self.rng, self.profile
        self.name = rng.choice((*_PLAN_NAMES, f"Course plan {rng.randint(1, 9999)}", None))
        self.now = self.now.replace(microsecond=0)
        self.txs.append(
            _Tx(self.now, [_Event("plan_created", None, {"name": self.name}, self.owner)])
        )
        if profile.target == "draft":
            self.finish()
            return
        self.save_schedule("schedule_created", 1)
        for version in range(2, 2 + rng.choice((0, 0, 1, 1, 2, 3))):
            self.save_schedule("schedule_updated", version)
        if profile.target == "scheduling":
            self.finish()
            return
        self.finalize()
        if profile.older:
            if rng.random() < 0.3:
                self.save_schedule("schedule_updated", 9)
            if profile.target == "ready_to_start":
                self.finish()
                return
            self.commit(_Event("plan_started", "analysis", {}, self.actor()))
            self.status, self.active = "in_progress", 0
            self.maybe_unknown()
        for index in range(len(STAGES)):
            extensions = rng.choice((0, 0, 0, 1, 1, 2, 3))
            if profile.duplicate_extension and index == 0:
                extensions = max(extensions, 1)
            for number in range(extensions):
                months = rng.randint(1, 6)
                self.extend(months)
                if profile.duplicate_extension and index == 0 and number == 0:
                    self.duplicate_extension(months)
            if profile.target == "in_progress" and index == profile.stop_stage:
                self.finish()
                return
            completed = _Event("stage_completed", STAGES[index], {}, None)
            if index + 1 < len(STAGES):
                following = _Event("stage_started", STAGES[index + 1], {}, None)
            else:
                self.finish()  # mistakes and reminders happen before completion
                following = _Event("plan_completed", None, {}, None)
            completed.actor = following.actor = self.actor()
            self.commit(completed, following)
            if index + 1 < len(STAGES):
                self.active = index + 1
                self.maybe_unknown()
        self.status, self.active = "completed", None

    def finalize(self) -> None:
        if self.profile.older:
            payload: dict[str, Any] = {"stages": self.snapshot(None)}
            self.commit(_Event("schedule_finalized", None, payload, self.actor()))
            self.status = "ready_to_start"
            self.maybe_unknown()
            return
        # The transaction's now() precedes the service's clock read for activated_at.
        at = self.now + _gap(self.rng)
        activated_at = at + timedelta(microseconds=self.rng.randint(300, 5000))
        payload = {
            "stages": self.snapshot(activated_at),
            "active_stage": STAGE_NAMES[0],
            "activated_at": _ts(activated_at),
        }
        self.txs.append(_Tx(at, [_Event("schedule_finalized", "analysis", payload, self.actor())]))
        self.now = at
        self.status, self.active = "in_progress", 0
        self.maybe_unknown()

    def finish(self) -> None:
        if self.profile.bogus_schedule:
            self.bogus_schedule_update()
        if self.profile.force_unknown:
            self.unknown("weekly_stage_reminder_sent")
            self.unknown(self.rng.choice(UNKNOWN_TYPES[1:]))
            self.profile = replace(self.profile, force_unknown=False)

    # -- rows ----------------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        rng, profile = self.rng, self.profile
        candidates = [tx for tx in self.txs if tx.deleted_after is None]
        if profile.backfill == "whole":
            chosen = candidates
        elif profile.backfill == "partial":
            chosen = [tx for tx in candidates if rng.random() < 0.5] or [rng.choice(candidates)]
        else:
            chosen = []
        imported_at = max(tx.at for tx in self.txs) + timedelta(
            days=rng.randint(1, 60), seconds=rng.randrange(86400), microseconds=rng.randrange(10**6)
        )
        for tx in chosen:
            tx.backfilled = True
        rows = []
        for tx in self.txs:
            created = imported_at if tx.backfilled else tx.at
            deleted = None if tx.deleted_after is None else created + tx.deleted_after
            for event in tx.events:
                rows.append(
                    {
                        "actor_user_id": event.actor,
                        "course_designer_plan_id": self.plan_id,
                        "created_at": _ts(created),
                        "deleted_at": None if deleted is None else _ts(deleted),
                        "event_type": event.event_type,
                        "id": _uuid(rng),
                        "occurred_at": _ts(tx.at),
                        "payload": event.payload,
                        "stage": event.stage,
                        "updated_at": _ts(created if deleted is None else deleted),
                    }
                )
        return rows


def _check_start(start: datetime | None) -> datetime:
    return DEFAULT_START if start is None else check_timestamp(start, "start")


def generate_rows(
    plans: int,
    seed: int,
    *,
    start: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> GeneratedLog:
    """Simulate ``plans`` plans; rows in random (seeded) order, like the fixture.

    ``progress`` is called with 1 after each plan is simulated.

    Plans are created within :data:`PLAN_SPAN` after ``start`` (default
    :data:`DEFAULT_START`) and stop at random points of the workflow, so every
    plan status appears. With six plans or more, every status and every quirk is
    present whatever the seed.

    Raises:
        InvalidInput: ``plans`` is negative or ``start`` is naive.
    """
    if plans < 0:
        raise InvalidInput(f"plans must be >= 0, got {plans}", field="plans")
    origin = _check_start(start)
    rng = random.Random(seed)
    pool = [_uuid(rng) for _ in range(max(3, (plans + 6) // 7))]
    plan_owners: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    for number in range(plans):
        profile = _random_profile(rng)
        if number < len(_FORCED):
            profile = replace(profile, **_FORCED[number])
        plan_id = _uuid(rng)
        owner = rng.choice(pool)
        others = [user for user in pool if user != owner]
        team = [owner, *rng.sample(others, min(len(others), rng.randint(0, 3)))]
        created = origin + timedelta(seconds=rng.randrange(int(PLAN_SPAN.total_seconds())))
        sim = _PlanSim(rng, plan_id, team, created, profile)
        sim.run()
        plan_owners[plan_id] = owner
        rows.extend(sim.rows())
        if progress is not None:
            progress(1)
    rng.shuffle(rows)
    used = {row["actor_user_id"] for row in rows} | {
        row["payload"]["member"]["user_id"] for row in rows if row["event_type"] == "member_added"
    }
    return GeneratedLog([user for user in pool if user in used], plan_owners, rows)


def generate_long_plan(events: int, seed: int, *, start: datetime | None = None) -> GeneratedLog:
    """One plan with exactly ``events`` live rows, in chronological order (benchmarks).

    ``plan_created``, ``schedule_created`` (a suggested medium schedule), a newer
    ``schedule_finalized``, then ``stage_extended`` on the analysis stage, one
    month each, until the count is reached. Every row has its own timestamp.

    Each extension pushes the schedule a month later and dates end at year 9999,
    so beyond about 95,000 events the schedule starts in an earlier century
    (planned dates are independent of the event timestamps).

    Raises:
        InvalidInput: ``events`` < 3, or more than about 119,000.
    """
    if events < 3:
        raise InvalidInput(f"a long plan needs at least 3 events, got {events}", field="events")
    origin = _check_start(start)
    rng = random.Random(seed)
    owner, plan_id = _uuid(rng), _uuid(rng)
    extensions = events - 3
    months = SUGGESTED_MONTHS["medium"]
    following = origin.year * 12 + origin.month  # month index of next month's first day
    latest = 9999 * 12 + 11 - extensions - sum(months) - 1
    first_index = min(following, latest)
    if first_index < 12:
        raise InvalidInput(
            f"{events} events would extend the schedule past year 9999 "
            "(each stage_extended adds a month); use fewer events",
            field="events",
        )
    stages = _suggested_schedule(date(first_index // 12, first_index % 12 + 1, 1), "medium")
    stage_ids = [_uuid(rng) for _ in STAGES]
    now = origin.replace(microsecond=0)

    def tick() -> datetime:
        nonlocal now
        now += timedelta(seconds=rng.randint(1, 600), microseconds=rng.randrange(10**6))
        return now

    rows: list[dict[str, Any]] = []

    def add(at: datetime, event_type: str, stage: str | None, payload: dict[str, Any]) -> None:
        rows.append(
            {
                "actor_user_id": owner,
                "course_designer_plan_id": plan_id,
                "created_at": _ts(at),
                "deleted_at": None,
                "event_type": event_type,
                "id": _uuid(rng),
                "occurred_at": _ts(at),
                "payload": payload,
                "stage": stage,
                "updated_at": _ts(at),
            }
        )

    name = "Benchmark plan"
    add(now, "plan_created", None, {"name": name})
    scheduled_at = tick()
    add(scheduled_at, "schedule_created", None, _schedule_payload(name, stages))
    sim = _PlanSim(rng, plan_id, [owner], now, _Profile(target="in_progress"))
    sim.stages, sim.stage_ids = stages, stage_ids
    sim.stages_created_at = sim.stages_updated_at = scheduled_at
    finalized_at = tick()
    activated_at = finalized_at + timedelta(microseconds=rng.randint(300, 5000))
    finalized = {
        "stages": sim.snapshot(activated_at),
        "active_stage": STAGE_NAMES[0],
        "activated_at": _ts(activated_at),
    }
    add(finalized_at, "schedule_finalized", "analysis", finalized)
    for _ in range(extensions):
        stages = _extended(stages, 0, 1)
        payload = {"stage_id": stage_ids[0], "months": 1, "new_ends_on": stages[0][1].isoformat()}
        add(tick(), "stage_extended", "analysis", payload)
    return GeneratedLog([owner], {plan_id: owner}, rows)


def write_jsonl(log: GeneratedLog, path_or_file: str | os.PathLike[str] | _TextSink) -> None:
    """Write ``log.rows`` in the JSON Lines exchange format (UTF-8, ``\\n`` endings)."""
    if isinstance(path_or_file, str | os.PathLike):
        with open(path_or_file, "w", encoding="utf-8", newline="\n") as handle:
            _write_rows(log, handle)
    else:
        _write_rows(log, path_or_file)


def _write_rows(log: GeneratedLog, sink: _TextSink) -> None:
    for row in log.rows:
        sink.write(dumps_row(row) + "\n")
