"""Differential testing: the same generated streams go into SQLite and PostgreSQL.

Both backends must give the identical event order, identical rows, identical
states and identical hashes, for the current state and for time-travel queries,
and both must agree with the in-memory fold of the kit. Streams go in two ways:
imported (every column kept, so the rows are the same to the microsecond) and
through the store's API (appends with explicit ids and ``occurred_at``, soft
deletes, restores), where each backend stamps its own ``created_at``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from eventsource import EventStore, NoEventsAsOf, migrate
from eventsource.config import make_engine
from eventsource.events import STAGES, NewEvent, RecordedEvent, as_jsonb, jsonb_key
from eventsource.jsonl import dumps_row, event_to_row
from eventsource.transfer import import_events
from projections.course_designer import CourseDesignerPlanProjection
from projections.engine import LoadedState, ProjectionEngine
from projections.testing import (
    EchoProjection,
    course_designer_streams,
    event_streams,
    json_objects,
    live_stream,
    load_profile,
    plan_ids,
    replay,
    write_orders,
)
from projections.testing.profiles import database_settings
from projections.typing import Event, JSONValue, Projection
from tests.conftest import create_pg_schema, drop_pg_schema, make_plan, pg_schema_url

load_profile()

pytestmark = pytest.mark.postgres


def _keys(value: Any) -> JSONValue:
    """The keys of every object in ``value``, in the order a reducer iterates them."""
    if isinstance(value, Mapping):
        return [[key, _keys(value[key])] for key in value]
    if isinstance(value, tuple | list):
        return [_keys(item) for item in value]
    return None


class KeyOrderProjection:
    """Folds the order each payload's keys come in, nested objects included: a reducer
    that depends on key order (as no reducer should) folds the same on both backends
    only if the store hands both the same order (jsonb's)."""

    name = "key_order"
    version = 1
    handles: frozenset[str] | None = None
    payload_models: Mapping[str, Any] = MappingProxyType({})
    tie_rank: Mapping[str, int] = MappingProxyType({})

    def initial_state(self, plan_id: UUID) -> tuple[JSONValue, ...]:
        return ()

    def evolve(self, state: tuple[JSONValue, ...], event: Event) -> tuple[JSONValue, ...]:
        return (*state, _keys(event.payload))

    def to_json(self, state: tuple[JSONValue, ...]) -> JSONValue:
        return list(state)

    def from_json(self, data: JSONValue) -> tuple[JSONValue, ...]:
        return tuple(data)


PLAN = CourseDesignerPlanProjection()
ECHO = EchoProjection(tie_rank={"tagged": -1, "stage_completed": 0, "removed": 2})
KEYS = KeyOrderProjection()
PROJECTIONS: tuple[Projection[Any], ...] = (PLAN, ECHO, KEYS)


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EventStore, EventStore]]:
    """A migrated SQLite store and a migrated PostgreSQL store, for the module."""
    schema = create_pg_schema()  # skips (fails in CI) when PostgreSQL is unreachable
    engines: list[Engine] = []
    try:
        path = Path(tmp_path_factory.mktemp("differential")) / "store.sqlite3"
        for url in (f"sqlite:///{path}", pg_schema_url(schema)):
            engine = make_engine(url)
            migrate.upgrade(engine)
            engines.append(engine)
        yield EventStore(engines[0]), EventStore(engines[1])
    finally:
        for engine in engines:
            engine.dispose()
        drop_pg_schema(schema)


def fresh(events: list[RecordedEvent]) -> list[RecordedEvent]:
    """The same stream under new ids, in the same id order (each example is new data).

    Every id (event, plan, actor) gets a random 64-bit prefix for this example and
    its rank among the example's ids, so ties break exactly as in the original.
    """
    prefix = (uuid4().int >> 64) << 64  # not `random`: Hypothesis seeds it per example
    ranks = {
        u: UUID(int=prefix | rank)
        for rank, u in enumerate(
            sorted({u for e in events for u in (e.id, e.plan_id, e.actor_user_id) if u})
        )
    }
    return [
        RecordedEvent(
            id=ranks[e.id],
            plan_id=ranks[e.plan_id],
            event_type=e.event_type,
            payload=e.payload,
            stage=e.stage,
            actor_user_id=None if e.actor_user_id is None else ranks[e.actor_user_id],
            occurred_at=e.occurred_at,
            created_at=e.created_at,
            updated_at=e.updated_at,
            deleted_at=e.deleted_at,
        )
        for e in events
    ]


def _rows(events: list[RecordedEvent]) -> list[bytes]:
    """Rows as canonical bytes: ``1e16 == 10**16`` in Python, but not here."""
    return [orjson.dumps(event_to_row(e), option=orjson.OPT_SORT_KEYS) for e in events]


def _instants(events: list[RecordedEvent], *names: str) -> list[datetime]:
    values = {getattr(e, n) for e in events for n in names if getattr(e, n) is not None}
    around = {v + timedelta(microseconds=d) for v in values for d in (-1, 0)}
    return sorted(around)[:: max(1, len(around) // 6)]


def _at(
    engine: ProjectionEngine, projection: Projection[Any], plan_id: UUID, **when: Any
) -> LoadedState[Any] | None:
    """The state at a time, or None where the plan had no live events then."""
    try:
        return engine.load(projection, plan_id, **when)
    except NoEventsAsOf:
        return None


def assert_backends_agree(
    backends: tuple[EventStore, EventStore], events: list[RecordedEvent], *, exact_rows: bool
) -> None:
    """Order, rows, states and hashes agree on both backends (and, for exact rows,
    with the in-memory fold of ``events``, time travel included)."""
    engines = [ProjectionEngine(store, snapshot_every=None) for store in backends]
    # The in-memory model folds the payloads as the store hands them over: jsonb's form.
    stored = [e._replace(payload=as_jsonb(e.payload)) for e in events]
    for plan_id in plan_ids(events):
        audits = [_rows(list(store.audit(plan_id))) for store in backends]
        assert audits[0] == audits[1], "the rows differ"
        for projection in PROJECTIONS:
            reads = [list(store.read(plan_id, tie_rank=projection.tie_rank)) for store in backends]
            assert _rows(reads[0]) == _rows(reads[1]), "the stream order differs"
            if exact_rows:
                assert [e.id for e in reads[0]] == [
                    e.id for e in live_stream(projection, events, plan_id)
                ], "the stream order differs from the engine's documented order"
            loaded = [engine.load(projection, plan_id) for engine in engines]
            assert orjson.dumps(loaded[0].json, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
                loaded[1].json, option=orjson.OPT_SORT_KEYS
            )
            assert loaded[0].hash == loaded[1].hash
            assert loaded[0].event_count == loaded[1].event_count
            if not exact_rows:
                continue
            assert orjson.loads(replay(projection, stored, plan_id)) == loaded[0].json
            for at in _instants(events, "occurred_at"):
                as_of = [_at(e, projection, plan_id, as_of=at) for e in engines]
                if as_of[0] is None or as_of[1] is None:  # before the plan's first event
                    assert as_of == [None, None], f"as_of={at}"
                    assert not live_stream(projection, events, plan_id, valid_at=at)
                    continue
                assert as_of[0].hash == as_of[1].hash, f"as_of={at}"
                model = orjson.loads(replay(projection, stored, plan_id, valid_at=at))
                assert as_of[0].json == model, f"as_of={at}"
            for at in _instants(events, "created_at", "deleted_at"):
                known = [_at(e, projection, plan_id, known_at=at) for e in engines]
                if known[0] is None or known[1] is None:
                    assert known == [None, None], f"known_at={at}"
                    assert not live_stream(projection, events, plan_id, known_at=at)
                    continue
                assert known[0].hash == known[1].hash, f"known_at={at}"
                model = orjson.loads(replay(projection, stored, plan_id, known_at=at))
                assert known[0].json == model, f"known_at={at}"


@database_settings(10)
@given(
    events=event_streams(min_events=1) | course_designer_streams(max_plans=2),
    data=st.data(),
)
def test_imported_streams_give_identical_order_states_and_hashes_on_both_backends(
    backends: tuple[EventStore, EventStore], events: list[RecordedEvent], data: st.DataObject
) -> None:
    """One backend imports the rows in the order recorded, in one transaction; the
    other in any order, in several imports, snapshotting every touched plan between
    them (so later imports land before snapshots)."""
    rows = fresh(events)
    order, sizes = data.draw(write_orders(rows), label="order, batch sizes")
    shuffled = data.draw(st.sampled_from((0, 1)), label="shuffled backend")
    for index, store in enumerate(backends):
        if index != shuffled:
            import_events(store, [dumps_row(event_to_row(e)) for e in rows], create_parents=True)
            continue
        engine = ProjectionEngine(store, snapshot_every=None)
        rest = [rows[i] for i in order]
        for size in [*sizes, len(rest)]:
            batch, rest = rest[:size], rest[size:]
            if not batch:
                break
            import_events(store, [dumps_row(event_to_row(e)) for e in batch], create_parents=True)
            for plan_id in plan_ids(batch):
                for projection in PROJECTIONS:
                    engine.snapshot(projection, plan_id)
    assert_backends_agree(backends, rows, exact_rows=True)


# --- The same operations through the store's API ------------------------------------

Operation = tuple[str, int, Any]
OPERATIONS: st.SearchStrategy[list[Operation]] = st.lists(
    st.tuples(
        st.just("append"),
        st.integers(0, 1),
        st.lists(
            st.tuples(
                st.sampled_from(("created", "tagged", "removed", "noted")),
                st.none() | st.sampled_from(STAGES),
                json_objects(max_size=2),
                # Minutes after a fixed origin: small ranges make ties common.
                st.integers(0, 5),
            ),
            min_size=1,
            max_size=3,
        ),
    )
    | st.tuples(st.sampled_from(("delete", "restore")), st.integers(0, 50), st.none()),
    min_size=1,
    max_size=10,
)
ORIGIN = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def materialize(operations: list[Operation]) -> list[tuple[str, int, list[NewEvent]]]:
    """Give every event its id once, so both backends receive identical calls."""
    prefix = (uuid4().int >> 64) << 64  # not `random`: Hypothesis seeds it per example
    counter = iter(range(1, 1000))
    steps: list[tuple[str, int, list[NewEvent]]] = []
    for kind, target, batch in operations:
        events = [
            NewEvent(
                t,
                p,
                stage=s,
                occurred_at=ORIGIN + timedelta(minutes=m),
                id=UUID(int=prefix | next(counter)),
            )
            for t, s, p, m in batch or ()
        ]
        steps.append((kind, target, events))
    return steps


def apply(
    store: EventStore, plans: list[UUID], steps: list[tuple[str, int, list[NewEvent]]]
) -> None:
    appended: list[UUID] = []
    for kind, target, events in steps:
        if kind == "append":
            store.append(plans[target], events)
            appended += [e.id for e in events if e.id is not None]
        elif appended and kind == "delete":
            store.soft_delete(appended[target % len(appended)])
        elif appended:
            store.restore(appended[target % len(appended)])


@database_settings(10)
@given(operations=OPERATIONS)
def test_the_same_operations_give_identical_streams_states_and_hashes_on_both_backends(
    backends: tuple[EventStore, EventStore], operations: list[Operation]
) -> None:
    steps = materialize(operations)
    plans = [uuid4(), uuid4()]
    for store in backends:
        for plan_id in plans:
            make_plan(store.engine, plan_id)
        apply(store, plans, steps)
    engines = [ProjectionEngine(store, snapshot_every=None) for store in backends]
    for plan_id in plans:
        for projection in PROJECTIONS:
            reads = [
                _rows_without_times(list(store.read(plan_id, tie_rank=projection.tie_rank)))
                for store in backends
            ]
            assert reads[0] == reads[1], "the stream order or the rows differ"
            if not reads[0]:
                continue
            loaded = [engine.load(projection, plan_id) for engine in engines]
            assert loaded[0].json == loaded[1].json
            assert loaded[0].hash == loaded[1].hash


def _rows_without_times(events: list[RecordedEvent]) -> list[bytes]:
    """Rows as canonical bytes, without the times each backend stamps itself."""
    return [
        orjson.dumps(
            {
                k: v
                for k, v in event_to_row(e).items()
                if k not in ("created_at", "updated_at", "deleted_at")
            },
            option=orjson.OPT_SORT_KEYS,
        )
        for e in events
    ]


# --- Payload numbers -----------------------------------------------------------------


def _read_back(backends: tuple[EventStore, EventStore], payload: dict[str, Any]) -> list[bytes]:
    """The payload as each backend returns it (canonical bytes)."""
    reads = []
    for store in backends:
        plan, _ = make_plan(store.engine)
        store.append(plan, [NewEvent("measured", payload, occurred_at=ORIGIN)])
        reads.append(
            orjson.dumps(next(iter(store.read(plan))).payload, option=orjson.OPT_SORT_KEYS)
        )
    return reads


@database_settings(10)
@given(
    payload=st.dictionaries(
        st.sampled_from("abc"),
        # Any float orjson can still write once jsonb turns it into an integer.
        st.floats(allow_nan=False, allow_infinity=False, min_value=-9e18, max_value=9e18),
        min_size=1,
    )
)
def test_any_float_payload_reads_back_identically_on_both_backends(
    backends: tuple[EventStore, EventStore], payload: dict[str, Any]
) -> None:
    sqlite, postgresql = _read_back(backends, payload)
    assert sqlite == postgresql


def test_floats_jsonb_rewrites_read_back_identically_on_both_backends(
    backends: tuple[EventStore, EventStore],
) -> None:
    sqlite, postgresql = _read_back(backends, {"big": 1e16, "negative_zero": -0.0, "tiny": 5e-324})
    assert sqlite == postgresql == b'{"big":10000000000000000,"negative_zero":0.0,"tiny":5e-324}'


def test_a_float_beyond_64_bit_integers_is_stored_on_both_backends(
    backends: tuple[EventStore, EventStore],
) -> None:
    sqlite, postgresql = _read_back(backends, {"v": 1e20})
    assert sqlite == postgresql


# --- Payload key order -------------------------------------------------------------

ORDERED = {"b": 1, "z": 2, "aa": {"y": [{"c": 2, "dd": 1}], "zz": 1}, "ab": 3, "é": 4}
"""A payload in jsonb's key order: shorter keys first (in UTF-8 bytes: ``é`` is two),
then bytewise; nested objects too."""


def _shuffled(value: Any) -> Any:
    """``value`` with every object's keys reversed (another order, the same content)."""
    if isinstance(value, dict):
        return {key: _shuffled(value[key]) for key in reversed(value)}
    if isinstance(value, list):
        return [_shuffled(item) for item in value]
    return value


def _in_order(payload: Any) -> bytes:
    return orjson.dumps(payload)  # no sorting: the bytes show the order


def test_payload_keys_read_back_in_jsonb_order_on_both_backends_appended_or_imported(
    backends: tuple[EventStore, EventStore],
) -> None:
    given = _shuffled(ORDERED)
    assert list(given) != list(ORDERED)
    for store in backends:
        plan, _ = make_plan(store.engine)
        (appended,) = store.append(plan, [NewEvent("ordered", given, occurred_at=ORIGIN)]).event_ids
        row = event_to_row(next(iter(store.read(plan)))._replace(id=uuid4(), payload=given))
        import_events(store, [orjson.dumps(row)])
        payloads = [e.payload for e in store.read(plan)]
        assert [_in_order(p) for p in payloads] == [_in_order(ORDERED)] * 2, store.dialect
        assert store.get(appended).payload == ORDERED
        loaded = ProjectionEngine(store).load(KEYS, plan).json
        assert loaded == [_keys(ORDERED)] * 2, store.dialect


@database_settings(10)
@given(payload=json_objects(max_size=5))
def test_any_payload_folds_with_the_same_key_order_on_both_backends(
    backends: tuple[EventStore, EventStore], payload: dict[str, Any]
) -> None:
    folds = []
    for store in backends:
        plan, _ = make_plan(store.engine)
        store.append(plan, [NewEvent("measured", payload, occurred_at=ORIGIN)])
        read = next(iter(store.read(plan))).payload
        assert list(read) == sorted(payload, key=jsonb_key)
        folds.append(ProjectionEngine(store).load(KEYS, plan).json)
    assert folds[0] == folds[1]
