"""The benchmark's data, drawn from the seeded generator (no wall clock, no I/O).

Payloads, event types, stages and actors come from :func:`generate_rows`, so the
appends and replays carry the real mix: large ``schedule_finalized`` snapshots,
small ``stage_started`` ones, unknown event types the projection skips, events
with no actor, soft-deleted mistakes. The generated plans' events are laid end to
end in stream order (a *template*) and dealt out 100 at a time to the benchmark's
plans, so each benchmark plan holds several whole workflows in a row. The
long plan of workload C is :func:`generate_long_plan`, as is. Workload E (catch-up)
reuses D's plans and rows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID

from eventsource.events import NewEvent, RecordedEvent
from projections.generate import DEFAULT_START, generate_long_plan, generate_rows

__all__ = ["Dataset", "Sizes", "TemplateEvent", "build_dataset"]

REPLAY_DELETE_DELAY: Final = timedelta(minutes=5)


@dataclass(frozen=True)
class Sizes:
    """How much work each workload does."""

    batch_plans: int = 1000
    """A: plans appended, one transaction each."""
    batch_events: int = 100
    """A: events per plan (per transaction)."""
    singles: int = 5000
    """B: single-event transactions."""
    long_plan: int = 10_000
    """C: events of the one long plan rebuilt from scratch."""
    replay_plans: int = 1000
    """D: plans replayed (E: plans queued for the workers)."""
    replay_events: int = 100
    """D and E: events per plan."""
    snapshot_loads: int = 20
    """C: times the snapshot load is timed (it takes milliseconds)."""
    template_plans: int = 1000
    """Plans simulated by the generator to draw payloads from."""

    @property
    def plans(self) -> int:
        return max(self.batch_plans, self.replay_plans)


FULL: Final = Sizes()
QUICK: Final = Sizes(
    batch_plans=100,
    batch_events=100,
    singles=500,
    long_plan=1000,
    replay_plans=100,
    replay_events=100,
    snapshot_loads=10,
    template_plans=200,
)


@dataclass(frozen=True, slots=True)
class TemplateEvent:
    event_type: str
    stage: str | None
    payload: dict[str, Any]
    actor: UUID | None
    deleted: bool


@dataclass(frozen=True)
class Dataset:
    """Everything the workloads write or read, built once for every backend."""

    sizes: Sizes
    users: list[UUID]
    plans: list[tuple[UUID, UUID]]
    """(plan id, created by) of every parent plan row, the long plan's included."""
    batches: list[tuple[UUID, list[NewEvent]]]
    """A: per plan, the events of its one append."""
    singles: list[tuple[UUID, NewEvent]]
    """B: one append each."""
    long_plan_id: UUID
    long_rows: list[RecordedEvent]
    """C: the long plan's rows, with their ids and timestamps."""
    replay_plan_ids: list[UUID]
    replay_rows: list[RecordedEvent]
    """D and E: every replayed plan's rows, some soft-deleted."""

    @property
    def batch_event_count(self) -> int:
        return sum(len(events) for _, events in self.batches)

    @property
    def replay_live_count(self) -> int:
        return sum(1 for row in self.replay_rows if row.deleted_at is None)


def _uuid(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)


def _template(plans: int, seed: int) -> tuple[list[UUID], list[TemplateEvent]]:
    log = generate_rows(plans, seed)
    rows = sorted(
        log.rows,
        key=lambda r: (r["course_designer_plan_id"], r["occurred_at"], r["created_at"], r["id"]),
    )
    template = [
        TemplateEvent(
            event_type=r["event_type"],
            stage=r["stage"],
            payload=r["payload"],
            actor=None if r["actor_user_id"] is None else UUID(r["actor_user_id"]),
            deleted=r["deleted_at"] is not None,
        )
        for r in rows
    ]
    return [UUID(user) for user in log.users], template


def _recorded(row: dict[str, Any]) -> RecordedEvent:
    def ts(value: str | None) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value)

    occurred, created, updated = (ts(row[k]) for k in ("occurred_at", "created_at", "updated_at"))
    assert occurred is not None
    assert created is not None
    assert updated is not None
    return RecordedEvent(
        id=UUID(row["id"]),
        plan_id=UUID(row["course_designer_plan_id"]),
        event_type=row["event_type"],
        payload=row["payload"],
        stage=row["stage"],
        actor_user_id=None if row["actor_user_id"] is None else UUID(row["actor_user_id"]),
        occurred_at=occurred,
        created_at=created,
        updated_at=updated,
        deleted_at=ts(row["deleted_at"]),
    )


def build_dataset(sizes: Sizes, seed: int) -> Dataset:
    """The same data for every backend and every run with this seed."""
    rng = random.Random(seed)
    users, template = _template(sizes.template_plans, seed)
    plans = [(_uuid(rng), rng.choice(users)) for _ in range(sizes.plans)]

    def dealt(index: int) -> TemplateEvent:
        return template[index % len(template)]

    def new_event(t: TemplateEvent) -> NewEvent:
        return NewEvent(
            event_type=t.event_type, payload=t.payload, stage=t.stage, actor_user_id=t.actor
        )

    batches = [
        (
            plans[p][0],
            [new_event(dealt(p * sizes.batch_events + j)) for j in range(sizes.batch_events)],
        )
        for p in range(sizes.batch_plans)
    ]
    singles = [(plans[k % len(plans)][0], new_event(dealt(k))) for k in range(sizes.singles)]

    replay_plan_ids = [plan for plan, _ in plans[: sizes.replay_plans]]
    replay_rows: list[RecordedEvent] = []
    offset = len(template) // 2  # another slice of the template than A's
    for p, plan_id in enumerate(replay_plan_ids):
        first = DEFAULT_START + timedelta(seconds=p)
        for j in range(sizes.replay_events):
            t = dealt(offset + p * sizes.replay_events + j)
            at = first + timedelta(hours=j)
            replay_rows.append(
                RecordedEvent(
                    id=_uuid(rng),
                    plan_id=plan_id,
                    event_type=t.event_type,
                    payload=t.payload,
                    stage=t.stage,
                    actor_user_id=t.actor,
                    occurred_at=at,
                    created_at=at,
                    updated_at=at + REPLAY_DELETE_DELAY if t.deleted else at,
                    deleted_at=at + REPLAY_DELETE_DELAY if t.deleted else None,
                )
            )

    long_log = generate_long_plan(sizes.long_plan, seed)
    long_plan_id, long_owner = (UUID(v) for v in next(iter(long_log.plan_owners.items())))
    long_rows = [_recorded(row) for row in long_log.rows]

    return Dataset(
        sizes=sizes,
        users=list(dict.fromkeys([*users, long_owner])),
        plans=[*plans, (long_plan_id, long_owner)],
        batches=batches,
        singles=singles,
        long_plan_id=long_plan_id,
        long_rows=long_rows,
        replay_plan_ids=replay_plan_ids,
        replay_rows=replay_rows,
    )
