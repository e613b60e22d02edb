"""The benchmark's data, drawn from the seeded generator (no wall clock, no I/O).

Payloads, event types, stages and actors come from :func:`generate_rows`, so the
appends and replays carry the real mix: large ``schedule_finalized`` snapshots,
small ``stage_started`` ones, unknown event types the projection skips, events
with no actor, soft-deleted mistakes. The generated plans' events are laid end to
end in stream order (a *template*) and dealt out 100 at a time to the benchmark's
plans, so each benchmark plan holds several whole workflows in a row. The
long plan of workload C is :func:`generate_long_plan`, as is. Workload E (catch-up)
reuses D's plans and rows.

The peer workloads W1-W4 (:mod:`benchmarks.peer`) get a :class:`PeerDataset` of
their own: plans of their own, and payloads of about 200 bytes (180 to 220 as
JSON) dealt from a seeded pool, the same objects for the library, the peer and
the floor. Those events carry no stage or actor (the peer has no such columns):
an event type and a payload is what every side stores.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

from projections.generate import DEFAULT_START, generate_long_plan, generate_rows

from .library import NewEvent, RecordedEvent

__all__ = [
    "Dataset",
    "LongPlan",
    "PeerDataset",
    "Sizes",
    "TemplateEvent",
    "build_dataset",
    "build_peer_dataset",
]

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
    """C: times the snapshot load is timed (it takes milliseconds); W3: loads per run."""
    template_plans: int = 1000
    """Plans simulated by the generator to draw payloads from."""
    single_plans: int = 500
    """W2: plans the single-event appends are spread over."""
    snapshot_tail: int = 99
    """W3: events after the snapshot in the tail loads."""
    big_plan: int = 100_000
    """W3: events of the one-append plan whose per-event load cost is compared."""

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
    single_plans=50,
    snapshot_tail=99,
    big_plan=10_000,
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


# -- the peer workloads' data -------------------------------------------------------

PEER_EVENT_TYPES: Final = (
    "stage_started",
    "objective_added",
    "activity_drafted",
    "assessment_linked",
    "resource_attached",
    "review_requested",
    "comment_added",
    "schedule_adjusted",
)
PEER_PAYLOAD_POOL: Final = 2000
PEER_PAYLOAD_BYTES: Final = (180, 220)
PEER_START: Final = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
"""The first ``occurred_at`` of the W3 plans whose events have their own timestamps."""


@dataclass(frozen=True)
class LongPlan:
    """A W3 plan: its appends in order, and how many events its snapshot covers.

    ``tied`` plans give no ``occurred_at``, so each append's events share both
    timestamps (the transaction's); the others give every event its own.
    """

    key: str
    plan_id: UUID
    appends: list[list[NewEvent]]
    tied: bool
    snapshot_after: int | None
    """Snapshot taken after this many events (the first append), or None."""

    @property
    def events(self) -> list[NewEvent]:
        return [event for batch in self.appends for event in batch]

    @property
    def expected(self) -> dict[str, Any]:
        """The trivial fold's state after every event: count and last type."""
        events = self.appends[-1]
        return {"count": sum(len(batch) for batch in self.appends), "last": events[-1].event_type}


@dataclass(frozen=True)
class PeerDataset:
    """What W1-W4 write and read: the same ``NewEvent`` objects for every side."""

    sizes: Sizes
    owner: UUID
    plans: list[tuple[UUID, UUID]]
    """(plan id, created by) of every parent plan row the peer workloads use."""
    batches: list[tuple[UUID, list[NewEvent]]]
    """W1: per plan, the events of its one append."""
    singles: list[tuple[UUID, NewEvent]]
    """W2: one append each, over ``sizes.single_plans`` plans."""
    long_plans: dict[str, LongPlan]
    """W3: ``own``, ``tied`` (full fold and 0-tail snapshot), ``own_tail``,
    ``tied_tail`` (snapshot, then the tail) and ``big`` (one append, tied)."""
    replay: list[tuple[UUID, list[NewEvent]]]
    """W4: per plan, its events (one append)."""

    @property
    def batch_event_count(self) -> int:
        return sum(len(events) for _, events in self.batches)

    @property
    def replay_event_count(self) -> int:
        return sum(len(events) for _, events in self.replay)


def _peer_payload(rng: random.Random) -> dict[str, Any]:
    words = ["module", "unit", "lesson", "quiz", "lab", "reading", "project", "review"]
    payload: dict[str, Any] = {
        "title": " ".join(rng.choice(words) for _ in range(3)),
        "minutes": rng.randint(5, 240),
        "order": rng.randint(1, 60),
        "tags": rng.sample(words, 2),
        "done": rng.random() < 0.5,
        "note": "",
    }
    size = rng.randint(*PEER_PAYLOAD_BYTES)
    # orjson writes no spaces: the note's length is what is left to reach ``size``.
    base = len(repr(payload).replace(": ", ":").replace(", ", ",").replace("'", '"'))
    payload["note"] = "".join(rng.choices(string.ascii_lowercase + " ", k=max(0, size - base)))
    return payload


def build_peer_dataset(sizes: Sizes, seed: int) -> PeerDataset:
    """The same data for every backend and every run with this seed."""
    rng = random.Random(seed ^ 0x5EE4)
    pool = [(rng.choice(PEER_EVENT_TYPES), _peer_payload(rng)) for _ in range(PEER_PAYLOAD_POOL)]
    dealt = 0

    def events(count: int, start: datetime | None = None) -> list[NewEvent]:
        nonlocal dealt
        out = []
        for i in range(count):
            event_type, payload = pool[(dealt + i) % len(pool)]
            at = None if start is None else start + timedelta(seconds=i)
            out.append(NewEvent(event_type=event_type, payload=payload, occurred_at=at))
        dealt += count
        return out

    owner = _uuid(rng)
    batches = [(_uuid(rng), events(sizes.batch_events)) for _ in range(sizes.batch_plans)]
    single_plans = [_uuid(rng) for _ in range(sizes.single_plans)]
    singles = [
        (single_plans[k % len(single_plans)], event)
        for k, event in enumerate(events(sizes.singles))
    ]
    n, tail = sizes.long_plan, sizes.snapshot_tail
    later = PEER_START + timedelta(seconds=n - tail)
    long_plans = {
        plan.key: plan
        for plan in (
            LongPlan("own", _uuid(rng), [events(n, PEER_START)], False, n),
            LongPlan("tied", _uuid(rng), [events(n)], True, n),
            LongPlan(
                "own_tail",
                _uuid(rng),
                [events(n - tail, PEER_START), events(tail, later)],
                False,
                n - tail,
            ),
            LongPlan("tied_tail", _uuid(rng), [events(n - tail), events(tail)], True, n - tail),
            LongPlan("big", _uuid(rng), [events(sizes.big_plan)], True, None),
        )
    }
    replay = [(_uuid(rng), events(sizes.replay_events)) for _ in range(sizes.replay_plans)]
    plan_ids = [
        *(p for p, _ in batches),
        *single_plans,
        *(plan.plan_id for plan in long_plans.values()),
        *(p for p, _ in replay),
    ]
    return PeerDataset(
        sizes=sizes,
        owner=owner,
        plans=[(p, owner) for p in plan_ids],
        batches=batches,
        singles=singles,
        long_plans=long_plans,
        replay=replay,
    )
