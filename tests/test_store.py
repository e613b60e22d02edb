"""The store's contract: append, read, timeline, audit, soft delete and restore.

Every test runs on SQLite and PostgreSQL through the ``store``/``plan`` fixtures.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import Connection, Engine, func, select, text

from eventsource import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    EventStore,
    ExpectedVersion,
    StreamPosition,
    TimelineCursor,
    WriteNotice,
)
from eventsource.errors import (
    ConcurrencyConflict,
    IdempotencyConflict,
    InvalidInput,
    UnknownEvent,
    UnknownReference,
)
from eventsource.events import NewEvent, RecordedEvent
from eventsource.tables import events, retractions
from tests.conftest import make_plan

Plan = tuple[UUID, UUID]
T0 = datetime(2025, 3, 1, 9, 0, 0, 123456, tzinfo=UTC)
US = timedelta(microseconds=1)


# -- helpers -------------------------------------------------------------------


def new(event_type: str = "note_added", **fields: Any) -> NewEvent:
    payload = fields.pop("payload", {"n": event_type})
    return NewEvent(event_type=event_type, payload=payload, **fields)


def row_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(events)).scalar_one())


def raw_row(engine: Engine, event_id: UUID) -> dict[str, Any]:
    """Every column of one stored row, as the table holds it."""
    with engine.connect() as conn:
        row = conn.execute(select(events).where(events.c.id == event_id)).one()
    return dict(row._mapping)


def insert_rows(engine: Engine, rows: Sequence[dict[str, Any]]) -> None:
    """Rows written by the host's own SQL, with timestamps of our choosing."""
    full = [
        {
            "payload": {},
            "stage": None,
            "actor_user_id": None,
            "deleted_at": None,
            "updated_at": row["created_at"],
            **row,
        }
        for row in rows
    ]
    with engine.begin() as conn:
        conn.execute(events.insert(), full)


def ids(items: Sequence[RecordedEvent]) -> list[UUID]:
    return [item.id for item in items]


def read_ids(store: EventStore, plan_id: UUID, **kwargs: Any) -> list[UUID]:
    return ids(list(store.read(plan_id, **kwargs)))


def retraction_rows(engine: Engine, event_id: UUID) -> list[tuple[datetime, datetime | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(retractions.c.deleted_at, retractions.c.restored_at)
            .where(retractions.c.event_id == event_id)
            .order_by(retractions.c.deleted_at)
        ).all()
    return [(row.deleted_at, row.restored_at) for row in rows]


# -- append --------------------------------------------------------------------


def test_append_stores_a_batch_and_returns_its_ids_in_the_given_order(
    store: EventStore, plan: Plan
) -> None:
    plan_id, user = plan
    result = store.append(plan_id, [new("a", actor_user_id=user), new("b"), new("c")])
    assert result.plan_id == plan_id
    assert result.appended == 3
    assert result.version == 3
    stored = list(store.read(plan_id))
    assert ids(stored) == list(result.event_ids)
    assert [e.event_type for e in stored] == ["a", "b", "c"]
    assert stored[0].actor_user_id == user
    assert stored[1].actor_user_id is None
    assert [e.payload for e in stored] == [{"n": "a"}, {"n": "b"}, {"n": "c"}]


def test_a_batch_is_one_transaction_sharing_its_timestamps(store: EventStore, plan: Plan) -> None:
    plan_id, _ = plan
    store.append(plan_id, [new("a"), new("b"), new("c")])
    stored = list(store.read(plan_id))
    assert len({e.created_at for e in stored}) == 1
    assert len({e.occurred_at for e in stored}) == 1
    assert all(e.updated_at == e.created_at for e in stored)
    assert all(e.deleted_at is None for e in stored)


def test_generated_ids_are_uuid7_so_read_order_is_the_given_order(
    store: EventStore, plan: Plan
) -> None:
    plan_id, _ = plan
    types = ["zeta", "alpha", "mu", "beta", "omega", "gamma", "delta", "kappa"]
    result = store.append(plan_id, [new(t) for t in types])
    assert all(event_id.version == 7 for event_id in result.event_ids)
    assert list(result.event_ids) == sorted(result.event_ids)
    assert [e.event_type for e in store.read(plan_id)] == types
    again = store.append(plan_id, [new(t) for t in reversed(types)])
    assert min(again.event_ids) > max(result.event_ids)
    assert [e.event_type for e in store.read(plan_id)] == types + list(reversed(types))


def test_caller_given_ids_are_kept(store: EventStore, plan: Plan) -> None:
    plan_id, _ = plan
    given = [uuid4(), uuid4()]
    result = store.append(plan_id, [new("a", id=given[0]), new("b", id=given[1])])
    assert list(result.event_ids) == given
    assert {e.id for e in store.read(plan_id)} == set(given)
    assert store.get(given[0]).event_type == "a"


def test_occurred_at_defaults_to_the_transaction_time(store: EventStore, plan: Plan) -> None:
    plan_id, _ = plan
    before = datetime.now(UTC)
    store.append(plan_id, [new("a")])
    (event,) = store.read(plan_id)
    assert event.occurred_at == event.created_at
    assert event.occurred_at.tzinfo is not None
    assert abs(event.occurred_at - before) < timedelta(minutes=1)


def test_a_backfilled_occurred_at_is_kept_exactly_and_orders_the_stream(
    store: EventStore, plan: Plan
) -> None:
    plan_id, _ = plan
    store.append(plan_id, [new("later")])
    past = datetime(2020, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=-5)))
    store.append(plan_id, [new("earlier", occurred_at=past)])
    stored = list(store.read(plan_id))
    assert [e.event_type for e in stored] == ["earlier", "later"]
    assert stored[0].occurred_at == past
    assert stored[0].occurred_at.utcoffset() == timedelta(0)
    assert stored[0].created_at > stored[0].occurred_at
    assert stored[0].created_at >= stored[1].created_at


def test_no_stream_accepts_an_empty_plan_and_reports_the_new_version(
    store: EventStore, plan: Plan
) -> None:
    plan_id, _ = plan
    result = store.append(plan_id, [new("a"), new("b")], expected_version=NO_STREAM)
    assert result.version == 2
    assert store.version(plan_id) == 2


def test_a_wrong_expected_version_raises_a_conflict_naming_plan_expected_and_actual(
    store: EventStore, plan: Plan
) -> None:
    plan_id, _ = plan
    store.append(plan_id, [new("a"), new("b")])
    wrong: list[tuple[ExpectedVersion, str]] = [(NO_STREAM, "no_stream"), (0, "0"), (1, "1")]
    for expected, label in [*wrong, (5, "5")]:
        with pytest.raises(ConcurrencyConflict) as info:
            store.append(plan_id, [new("c")], expected_version=expected)
        conflict = info.value
        assert conflict.plan_id == plan_id
        assert conflict.actual == 2
        assert str(conflict.expected) == label
        message = str(conflict)
        assert str(plan_id) in message
        assert f"expected version {label}" in message
        assert "at version 2" in message
        assert store.version(plan_id) == 2
    assert [e.event_type for e in store.read(plan_id)] == ["a", "b"]


def test_appends_and_failed_appends_interleaved_past_the_prepare_threshold(
    store: EventStore, plan: Plan
) -> None:
    # On PostgreSQL an append is one pipeline of prepared statements. A failed
    # append (a conflict, an unknown actor) aborts it, so the statements queued
    # after the failure are skipped, their PREPAREs too: every later append on
    # that connection must still find each statement it uses (SQLSTATE 26000 if
    # not). psycopg prepares a statement at its sixth use on a connection; these
    # counts put a failure at every step of that count, twice.
    plan_id, _ = plan
    version = 0
    for successes in (5, 0, 1, 2, 3, 4, 5, 6, 7) * 2:
        for _ in range(successes):
            store.append(plan_id, [new("a")], expected_version=version)
            version += 1
        with pytest.raises(ConcurrencyConflict):
            store.append(plan_id, [new("lost")], expected_version=version - 1)
        stranger = NewEvent("lost", {}, actor_user_id=uuid4())
        with pytest.raises(UnknownReference):
            store.append(plan_id, [stranger], expected_version=version)
    store.append(plan_id, [new("b"), new("c")], expected_version=version)
    assert store.version(plan_id) == version + 2
    assert {e.event_type for e in store.read(plan_id)} == {"a", "b", "c"}


def test_stream_exists_refuses_an_empty_plan(store: EventStore, plan: Plan) -> None:
    plan_id, _ = plan
    with pytest.raises(ConcurrencyConflict) as info:
        store.append(plan_id, [new("a")], expected_version=STREAM_EXISTS)
    assert info.value.expected == "stream_exists"
    assert info.value.actual == 0
    assert store.version(plan_id) == 0


def test_stream_exists_and_an_exact_version_accept_the_current_stream(
    store: EventStore, plan: Plan
) -> None:
    plan_id, _ = plan
    store.append(plan_id, [new("a")])
    assert store.append(plan_id, [new("b")], expected_version=STREAM_EXISTS).version == 2
    assert store.append(plan_id, [new("c"), new("d")], expected_version=2).version == 4
    assert store.append(plan_id, [new("e")], expected_version=ANY).version == 5
    assert store.version(plan_id) == 5


def test_the_version_counts_soft_deleted_rows(store: EventStore, plan: Plan) -> None:
    plan_id, _ = plan
    first = store.append(plan_id, [new("a"), new("b")]).event_ids[0]
    store.soft_delete(first)
    assert store.version(plan_id) == 2
    assert store.append(plan_id, [new("c")], expected_version=2).version == 3
    with pytest.raises(ConcurrencyConflict):
        store.append(plan_id, [new("d")], expected_version=2)


def test_resending_an_id_with_the_same_content_is_a_no_op(store: EventStore, plan: Plan) -> None:
    plan_id, user = plan
    batch = [
        new("a", id=uuid4(), actor_user_id=user, stage="design", payload={"x": [1, 2]}),
        new("b", id=uuid4(), occurred_at=T0, payload={"k": {"z": 1, "a": 2}}),
    ]
    first = store.append(plan_id, batch)
    before = list(store.audit(plan_id))
    again = store.append(plan_id, batch, expected_version=2)
    assert again.appended == 0
    assert again.event_ids == first.event_ids
    assert list(store.audit(plan_id)) == before
    assert store.version(plan_id) == 2
    assert row_count(store.engine) == 2


def test_a_resent_payload_with_other_key_order_is_the_same_content(
    store: EventStore, plan: Plan
) -> None:
    plan_id, _ = plan
    event_id = uuid4()
    store.append(plan_id, [new("a", id=event_id, payload={"a": 1, "b": {"c": 2, "d": 3}})])
    result = store.append(plan_id, [new("a", id=event_id, payload={"b": {"d": 3, "c": 2}, "a": 1})])
    assert result.appended == 0
    assert store.version(plan_id) == 1


def test_a_partly_resent_batch_appends_only_the_new_events(store: EventStore, plan: Plan) -> None:
    plan_id, _ = plan
    old = new("a", id=uuid4())
    store.append(plan_id, [old])
    result = store.append(plan_id, [old, new("b"), new("c")])
    assert result.appended == 2
    assert result.event_ids[0] == old.id
    assert [e.event_type for e in store.read(plan_id)] == ["a", "b", "c"]


def test_resending_an_id_with_other_content_raises_idempotency_conflict(
    store: EventStore, plan: Plan
) -> None:
    plan_id, _ = plan
    event_id = uuid4()
    original: dict[str, Any] = {
        "event_type": "a",
        "payload": {"n": "a"},
        "stage": "design",
        "occurred_at": T0,
    }
    store.append(plan_id, [NewEvent(id=event_id, **original)])
    changes: list[tuple[str, Any]] = [
        ("payload", {"n": "other"}),
        ("payload", {"n": "a", "extra": None}),
        ("event_type", "renamed"),
        ("stage", "evaluation"),
        ("stage", None),
        ("occurred_at", T0 + US),
    ]
    for field, value in changes:
        with pytest.raises(IdempotencyConflict) as info:
            store.append(
                plan_id,
                [new("fresh"), NewEvent(id=event_id, **{**original, field: value}), new("x")],
            )
        assert info.value.event_id == event_id
        assert info.value.fields == [field]
        assert str(event_id) in str(info.value)
        assert field in str(info.value)
    assert [e.event_type for e in store.read(plan_id)] == ["a"]
    assert store.get(event_id).payload == {"n": "a"}


def test_resending_an_id_to_another_plan_is_an_idempotency_conflict(
    store: EventStore, engine: Engine, plan: Plan
) -> None:
    plan_id, _ = plan
    other, _ = make_plan(engine)
    event_id = uuid4()
    store.append(plan_id, [new("a", id=event_id)])
    with pytest.raises(IdempotencyConflict) as info:
        store.append(other, [new("a", id=event_id)])
    assert "plan_id" in info.value.fields
    assert store.version(other) == 0


def test_a_failing_write_hook_rolls_the_whole_append_back(engine: Engine, plan: Plan) -> None:
    class Boom(RuntimeError):
        pass

    class FailingHook:
        def after_write(
            self, store: EventStore, connection: Connection, notice: WriteNotice
        ) -> None:
            assert notice.kind == "append"
            assert len(notice.appended) == 2
            raise Boom

    store = EventStore(engine, hooks=[FailingHook()])
    with pytest.raises(Boom):
        store.append(plan[0], [new("a"), new("b")])
    assert store.version(plan[0]) == 0


# -- read ----------------------------------------------------------------------


def test_read_orders_by_occurred_at_then_created_at_then_id(
    store: EventStore, engine: Engine, plan: Plan
) -> None:
    plan_id, _ = plan
    id_low, id_high = sorted([uuid4(), uuid4()])
    rows = [
        # Inserted in an order that is neither the stream order nor id order.
        {"id": uuid4(), "occurred_at": T0 + 2 * US, "created_at": T0},
        {"id": id_high, "occurred_at": T0, "created_at": T0 + US},
        {"id": uuid4(), "occurred_at": T0, "created_at": T0 + 2 * US},
        {"id": id_low, "occurred_at": T0, "created_at": T0 + US},
        {"id": uuid4(), "occurred_at": T0 - timedelta(days=1), "created_at": T0 + 3 * US},
    ]
    insert_rows(
        engine,
        [
            {**row, "course_designer_plan_id": plan_id, "event_type": f"e{i}"}
            for i, row in enumerate(rows)
        ],
    )
    expected = [rows[4]["id"], id_low, id_high, rows[2]["id"], rows[0]["id"]]
    assert read_ids(store, plan_id) == expected
    assert read_ids(store, plan_id, page_size=1) == expected


def test_a_tie_rank_orders_same_timestamp_events_before_id(
    store: EventStore, engine: Engine, plan: Plan
) -> None:
    plan_id, _ = plan
    first, second, third, fourth = sorted(uuid4() for _ in range(4))
    base = {"course_designer_plan_id": plan_id, "occurred_at": T0, "created_at": T0}
    insert_rows(
        engine,
        [
            {**base, "id": first, "event_type": "stage_started"},
            {**base, "id": second, "event_type": "stage_completed"},
            {**base, "id": third, "event_type": "unranked"},
            # Ranked last, but recorded earlier: created_at still comes first.
            {**base, "id": fourth, "event_type": "stage_started", "created_at": T0 - US},
        ],
    )
    assert read_ids(store, plan_id) == [fourth, first, second, third]
    tie_rank = {"stage_completed": 1, "stage_started": 2}
    assert read_ids(store, plan_id, tie_rank=tie_rank) == [fourth, third, second, first]
    assert read_ids(store, plan_id, tie_rank=tie_rank, page_size=1) == [
        fourth,
        third,
        second,
        first,
    ]


def test_read_excludes_soft_deleted_events_until_restored(store: EventStore, plan: Plan) -> None:
    plan_id, _ = plan
    a, b, c = store.append(plan_id, [new("a"), new("b"), new("c")]).event_ids
    assert store.soft_delete(b)
    assert read_ids(store, plan_id) == [a, c]
    assert store.restore(b)
    assert read_ids(store, plan_id) == [a, b, c]


def _ties_and_batches(store: EventStore, plan_id: UUID) -> None:
    """Events in several same-timestamp batches, some backfilled into the past."""
    for batch in range(5):
        occurred = None if batch % 2 else T0 + timedelta(seconds=batch // 2)
        store.append(
            plan_id,
            [
                new(("stage_completed", "stage_started", "other")[i % 3], occurred_at=occurred)
                for i in range(5)
            ],
        )


TIE_RANKS: list[dict[str, int] | None] = [None, {"stage_completed": 0, "stage_started": -1}]


def test_small_pages_give_the_same_sequence_as_one_big_page(store: EventStore, plan: Plan) -> None:
    plan_id, _ = plan
    _ties_and_batches(store, plan_id)
    orders = []
    for tie_rank in TIE_RANKS:
        whole = read_ids(store, plan_id, tie_rank=tie_rank, page_size=10_000)
        assert len(whole) == 25
        assert len(set(whole)) == 25
        for page_size in (1, 2, 3, 5, 7, 24, 25, 26):
            assert read_ids(store, plan_id, tie_rank=tie_rank, page_size=page_size) == whole
        orders.append(whole)
    assert orders[0] != orders[1]  # the tie rank matters here


def test_read_after_a_stream_position_resumes_right_after_it(store: EventStore, plan: Plan) -> None:
    plan_id, _ = plan
    _ties_and_batches(store, plan_id)
    for tie_rank in TIE_RANKS:
        whole = list(store.read(plan_id, tie_rank=tie_rank))
        for index, event in enumerate(whole):
            position = StreamPosition.of(event, tie_rank)
            resumed = store.read(plan_id, after=position, tie_rank=tie_rank, page_size=2)
            assert ids(list(resumed)) == ids(whole[index + 1 :])


def test_stream_positions_sort_like_the_stream(store: EventStore, plan: Plan) -> None:
    plan_id, _ = plan
    _ties_and_batches(store, plan_id)
    tie_rank = {"stage_started": -1}
    whole = list(store.read(plan_id, tie_rank=tie_rank))
    positions = [StreamPosition.of(e, tie_rank) for e in whole]
    assert positions == sorted(positions)


def test_valid_at_keeps_events_that_occurred_by_then(store: EventStore, plan: Plan) -> None:
    plan_id, _ = plan
    a, b, c = store.append(
        plan_id,
        [
            new("a", occurred_at=T0),
            new("b", occurred_at=T0 + timedelta(hours=1)),
            new("c", occurred_at=T0 + timedelta(hours=2)),
        ],
    ).event_ids
    assert read_ids(store, plan_id, valid_at=T0 - US) == []
    assert read_ids(store, plan_id, valid_at=T0) == [a]
    assert read_ids(store, plan_id, valid_at=T0 + timedelta(hours=1)) == [a, b]
    assert read_ids(store, plan_id, valid_at=T0 + timedelta(days=1)) == [a, b, c]


def test_known_at_keeps_only_events_recorded_by_then(
    store: EventStore, engine: Engine, plan: Plan
) -> None:
    plan_id, _ = plan
    insert_rows(
        engine,
        [
            {
                "id": event_id,
                "course_designer_plan_id": plan_id,
                "event_type": name,
                "occurred_at": T0,
                "created_at": created,
            }
            for event_id, name, created in [
                (UUID(int=1), "first", T0),
                (UUID(int=2), "backfill", T0 + timedelta(days=3)),
            ]
        ],
    )
    assert read_ids(store, plan_id, known_at=T0 - US) == []
    assert read_ids(store, plan_id, known_at=T0) == [UUID(int=1)]
    assert read_ids(store, plan_id, known_at=T0 + timedelta(days=3) - US) == [UUID(int=1)]
    assert read_ids(store, plan_id, known_at=T0 + timedelta(days=3)) == [UUID(int=1), UUID(int=2)]
    # valid time and record time combine.
    assert read_ids(store, plan_id, valid_at=T0 - US, known_at=T0 + timedelta(days=9)) == []


def test_known_at_is_exact_across_a_delete_a_restore_and_a_second_delete(
    store: EventStore, engine: Engine, plan: Plan
) -> None:
    plan_id, _ = plan
    keep, flip = store.append(plan_id, [new("keep"), new("flip")]).event_ids
    recorded = store.get(flip).created_at
    store.soft_delete(flip)
    deleted = store.get(flip).deleted_at
    assert deleted is not None
    store.restore(flip)
    assert store.get(flip).deleted_at is None
    store.soft_delete(flip)
    history = retraction_rows(engine, flip)
    assert len(history) == 2
    (first_deleted, restored), (second_deleted, still) = history
    assert first_deleted == deleted
    assert restored is not None
    assert still is None
    assert recorded < first_deleted < restored <= second_deleted

    def known(at: datetime) -> list[UUID]:
        return read_ids(store, plan_id, known_at=at)

    assert known(recorded) == [keep, flip]
    assert known(first_deleted - US) == [keep, flip]
    assert known(first_deleted) == [keep]
    assert known(restored - US) == [keep]
    if restored < second_deleted:
        assert known(restored) == [keep, flip]
        assert known(second_deleted - US) == [keep, flip]
    assert known(second_deleted) == [keep]
    assert known(second_deleted + timedelta(days=1)) == [keep]
    assert read_ids(store, plan_id) == [keep]


def test_known_at_covers_a_row_deleted_outside_the_library_then_restored(
    store: EventStore, engine: Engine, plan: Plan
) -> None:
    plan_id, _ = plan
    gone = T0 + timedelta(days=1)
    insert_rows(
        engine,
        [
            {
                "id": UUID(int=7),
                "course_designer_plan_id": plan_id,
                "event_type": "host_deleted",
                "occurred_at": T0,
                "created_at": T0,
                "deleted_at": gone,
                "updated_at": gone,
            }
        ],
    )
    assert read_ids(store, plan_id, known_at=gone - US) == [UUID(int=7)]
    assert read_ids(store, plan_id, known_at=gone) == []
    assert store.restore(UUID(int=7))
    ((deleted, restored),) = retraction_rows(engine, UUID(int=7))
    assert deleted == gone
    assert restored is not None
    assert read_ids(store, plan_id, known_at=gone + US) == []
    assert read_ids(store, plan_id, known_at=restored) == [UUID(int=7)]
    assert read_ids(store, plan_id) == [UUID(int=7)]


def test_reading_a_plan_without_events_yields_nothing(store: EventStore, plan: Plan) -> None:
    assert list(store.read(plan[0])) == []
    assert list(store.read(uuid4())) == []


def test_read_accepts_a_plan_id_string_and_refuses_a_non_uuid(
    store: EventStore, plan: Plan
) -> None:
    plan_id, _ = plan
    store.append(plan_id, [new("a")])
    assert len(list(store.read(str(plan_id)))) == 1
    with pytest.raises(InvalidInput, match="plan_id"):
        list(store.read("not-a-plan"))


def test_plan_ids_lists_every_plan_with_rows_in_id_order(store: EventStore, engine: Engine) -> None:
    plans = [make_plan(engine)[0] for _ in range(5)]
    for plan_id in plans[:4]:
        store.append(plan_id, [new("a")])
    store.soft_delete(next(iter(store.read(plans[0]))).id)
    assert list(store.plan_ids(page_size=1)) == sorted(plans[:4])
    assert list(store.plan_ids()) == sorted(plans[:4])


# -- timeline ------------------------------------------------------------------


def _timeline_fixture(store: EventStore, plan_id: UUID, count: int) -> list[RecordedEvent]:
    """``count`` events, some sharing timestamps, in newest-first order."""
    for index in range(count):
        occurred = T0 + timedelta(minutes=index // 3)  # groups of three tie on occurred_at
        store.append(plan_id, [new(f"e{index}", occurred_at=occurred)])
    everything = list(store.read(plan_id))
    return sorted(everything, key=lambda e: (e.occurred_at, e.created_at, e.id), reverse=True)


def test_timeline_is_newest_first_without_deleted_events(store: EventStore, plan: Plan) -> None:
    plan_id, _ = plan
    newest_first = _timeline_fixture(store, plan_id, 7)
    store.soft_delete(newest_first[1].id)
    page = store.timeline(plan_id, limit=100)
    assert ids(list(page.events)) == ids([newest_first[0], *newest_first[2:]])
    assert page.next_cursor is None


def test_timeline_pages_chained_by_cursor_cover_every_event_once(
    store: EventStore, engine: Engine
) -> None:
    for count, limit in [(10, 3), (9, 3), (4, 1), (5, 5)]:
        plan_id, _ = make_plan(engine)
        newest_first = _timeline_fixture(store, plan_id, count)
        seen: list[RecordedEvent] = []
        cursor: TimelineCursor | None = None
        pages = 0
        while True:
            page = store.timeline(plan_id, before=cursor, limit=limit)
            pages += 1
            assert 1 <= len(page.events) <= limit
            seen.extend(page.events)
            if page.next_cursor is None:
                break
            assert len(page.events) == limit
            # The cursor survives a round trip through its printed form.
            cursor = TimelineCursor.decode(page.next_cursor.encode())
            assert cursor == page.next_cursor
        assert ids(seen) == ids(newest_first), (count, limit)
        assert pages == -(-count // limit), (count, limit)


def test_a_timeline_cursor_round_trips_through_its_text() -> None:
    cursor = TimelineCursor(T0, T0 + timedelta(days=1, microseconds=5), uuid4())
    text_form = cursor.encode()
    assert TimelineCursor.decode(text_form) == cursor
    shifted = TimelineCursor(
        T0.astimezone(timezone(timedelta(hours=2))), T0.astimezone(UTC), cursor.id
    )
    assert TimelineCursor.decode(shifted.encode()).occurred_at == T0


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        "2025-01-01T00:00:00|x|y",
        f"2025-01-01T00:00:00|2025-01-01T00:00:00|{uuid4()}",
    ],
    ids=["empty", "garbage", "bad-parts", "naive"],
)
def test_a_malformed_timeline_cursor_is_invalid_input_naming_the_cursor(value: str) -> None:
    with pytest.raises(InvalidInput) as info:
        TimelineCursor.decode(value)
    assert info.value.field == "cursor"
    assert "cursor" in str(info.value)


def test_a_timeline_limit_below_one_is_invalid(store: EventStore, plan: Plan) -> None:
    with pytest.raises(InvalidInput) as info:
        store.timeline(plan[0], limit=0)
    assert info.value.field == "limit"


@pytest.mark.postgres
def test_the_timeline_query_uses_the_timeline_index_on_postgresql(pg_engine: Engine) -> None:
    engine = pg_engine
    store = EventStore(engine)
    plan_id, user = make_plan(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO course_designer_plans (id, created_by_user_id) "
                "SELECT uuid_generate_v4(), :u FROM generate_series(1, 200)"
            ),
            {"u": user},
        )
        conn.execute(
            text(
                "INSERT INTO course_designer_plan_events "
                "(course_designer_plan_id, event_type, occurred_at) "
                "SELECT p.id, 'filler', now() - make_interval(secs => g) "
                "FROM course_designer_plans p, generate_series(1, 100) g"
            )
        )
        conn.execute(text("ANALYZE course_designer_plan_events"))
    store.append(plan_id, [new("a"), new("b")])
    sql = store.timeline_query_sql(plan_id)
    assert str(plan_id) in sql
    with engine.connect() as conn:
        (plan_json,) = conn.execute(text(f"EXPLAIN (FORMAT JSON) {sql}")).one()
        natural = json.dumps(plan_json)
        conn.execute(text("SET enable_seqscan = off"))
        (forced_json,) = conn.execute(text(f"EXPLAIN (FORMAT JSON) {sql}")).one()
    # With many plans and fresh statistics the planner picks the index by itself.
    assert "course_designer_plan_events_timeline_idx" in natural
    assert '"Node Type": "Seq Scan"' not in natural
    assert "course_designer_plan_events_timeline_idx" in json.dumps(forced_json)


# -- audit, soft delete, restore -----------------------------------------------


def test_audit_lists_every_row_including_deleted_with_actor_and_timestamps(
    store: EventStore, plan: Plan
) -> None:
    plan_id, user = plan
    a, b = store.append(plan_id, [new("a", actor_user_id=user), new("b")]).event_ids
    (c,) = store.append(plan_id, [new("c", occurred_at=T0, actor_user_id=user)]).event_ids
    store.soft_delete(b)
    rows = list(store.audit(plan_id))
    assert ids(rows) == [a, b, c]  # the order they were recorded in
    by_id = {row.id: row for row in rows}
    assert by_id[a].actor_user_id == user
    assert by_id[b].actor_user_id is None
    assert by_id[b].deleted_at is not None
    assert by_id[a].deleted_at is None
    assert by_id[c].occurred_at == T0
    assert by_id[c].created_at > T0
    assert by_id[a].created_at <= by_id[c].created_at
    assert ids(list(store.audit(plan_id, page_size=1))) == [a, b, c]
    assert list(store.audit(uuid4())) == []


def test_soft_delete_sets_deleted_at_only(store: EventStore, engine: Engine, plan: Plan) -> None:
    plan_id, user = plan
    (event_id,) = store.append(
        plan_id, [new("a", actor_user_id=user, stage="analysis", payload={"k": [1, "v"]})]
    ).event_ids
    before = raw_row(engine, event_id)
    time.sleep(0.005)  # SQLite's trigger stamps updated_at with a millisecond clock
    assert store.soft_delete(event_id) is True
    after = raw_row(engine, event_id)
    assert after["deleted_at"] is not None
    assert after["deleted_at"] > before["created_at"]
    assert after["updated_at"] > before["updated_at"]
    if store.dialect == "postgresql":
        # set_timestamp stamps now(), the deleting transaction's time.
        assert after["updated_at"] == after["deleted_at"]
    unchanged = set(before) - {"deleted_at", "updated_at"}
    assert {k: after[k] for k in unchanged} == {k: before[k] for k in unchanged}
    assert store.get(event_id).deleted_at == after["deleted_at"]


def test_restore_clears_deleted_at_only(store: EventStore, engine: Engine, plan: Plan) -> None:
    plan_id, user = plan
    (event_id,) = store.append(plan_id, [new("a", actor_user_id=user, occurred_at=T0)]).event_ids
    store.soft_delete(event_id)
    before = raw_row(engine, event_id)
    time.sleep(0.005)
    assert store.restore(event_id) is True
    after = raw_row(engine, event_id)
    assert after["deleted_at"] is None
    assert after["updated_at"] > before["updated_at"]
    unchanged = set(before) - {"deleted_at", "updated_at"}
    assert {k: after[k] for k in unchanged} == {k: before[k] for k in unchanged}


def test_deleting_twice_or_restoring_a_live_event_changes_nothing(
    store: EventStore, engine: Engine, plan: Plan
) -> None:
    plan_id, _ = plan
    (event_id,) = store.append(plan_id, [new("a")]).event_ids
    live = raw_row(engine, event_id)
    assert store.restore(event_id) is False
    assert raw_row(engine, event_id) == live
    assert store.soft_delete(event_id) is True
    deleted = raw_row(engine, event_id)
    assert store.soft_delete(event_id) is False
    assert raw_row(engine, event_id) == deleted
    assert len(retraction_rows(engine, event_id)) == 1


def test_an_unknown_event_id_raises_unknown_event(store: EventStore, plan: Plan) -> None:
    store.append(plan[0], [new("a")])
    for operation in (store.get, store.soft_delete, store.restore):
        missing = uuid4()
        with pytest.raises(UnknownEvent) as info:
            operation(missing)
        assert info.value.event_id == missing
        assert str(missing) in str(info.value)
    assert len(list(store.read(plan[0]))) == 1


def test_get_returns_a_deleted_event_too(store: EventStore, plan: Plan) -> None:
    plan_id, _ = plan
    (event_id,) = store.append(plan_id, [new("a")]).event_ids
    store.soft_delete(event_id)
    event = store.get(str(event_id))
    assert event.id == event_id
    assert event.deleted_at is not None


def test_no_operation_ever_removes_a_row(store: EventStore, engine: Engine, plan: Plan) -> None:
    plan_id, _ = plan
    counts = [row_count(engine)]

    def step() -> None:
        counts.append(row_count(engine))

    batch = [new("a", id=uuid4()), new("b", id=uuid4())]
    store.append(plan_id, batch)
    step()
    store.soft_delete(batch[0].id or uuid4())
    step()
    store.restore(batch[0].id or uuid4())
    step()
    store.soft_delete(batch[1].id or uuid4())
    step()
    store.append(plan_id, batch)  # an idempotent re-send
    step()
    with pytest.raises(ConcurrencyConflict):
        store.append(plan_id, [new("c")], expected_version=0)
    step()
    with pytest.raises(InvalidInput):
        store.append(plan_id, [new("")])
    step()
    store.append(plan_id, [new("d")])
    step()
    assert counts == sorted(counts)
    assert counts[-1] == 3
    assert len(list(store.audit(plan_id))) == 3
