"""The peer: eventsourcing 9.5 on W1-W4, beside the library and the floor, in one run.

Every workload runs three sides on the same ``NewEvent`` objects (an event type
and a ~200-byte payload, see :func:`benchmarks.data.build_peer_dataset`), in one
interleaved run whose order rotates each round (:mod:`benchmarks.measure`):

* the library, through its public API (``EventStore.append``/``read``/``version``,
  ``ProjectionEngine.load``/``snapshot``/``replay``), folding :class:`CountProjection`;
* the peer, ``eventsourcing`` at the recorder level (below);
* the floor, :mod:`benchmarks.raw`: plain inserts, or fetch + orjson + the fold.

Every side folds the same trivial reducer, :func:`benchmarks.raw.count_fold`
(count the events, keep the last event type), so the ratios are the price of the
stores, not of a reducer.

W1  1,000 plans x 100 events, one append per plan. Library: ``expected_version=
    NO_STREAM`` and, unchecked, ``ANY``. Peer: ``insert_events`` of the plan's
    events at versions 1..100 (its optimistic-concurrency check is the
    ``(originator_id, originator_version)`` primary key). Floor: ``executemany``
    per plan (pipeline mode on PostgreSQL), unchecked.
W2  5,000 single-event appends over 500 plans, version-checked: the library's
    ``expected_version=<int>``, the peer's event at the next version; the floor's
    single INSERT + COMMIT.
W3  Full folds of one 10,000-event plan whose events have their own timestamps
    (``occurred_at`` one second apart), of one whose 10,000 events were written in
    ONE append (``occurred_at`` and ``created_at`` tie for all of them; the plan
    that exposes a read path whose cost grows with the square of the events), and
    of a 100,000-event one-append plan (10,000 with ``--quick``), whose per-event
    cost must stay within 1.3x the 10,000-event tied plan's. Then loads from a
    snapshot with 0 and with 99 tail events, for both kinds of plan. Library:
    ``engine.snapshot``, then ``engine.load``. Peer: see *snapshots* below. Floor:
    the library's snapshot row, then the events after its position.
W4  100,000 events of 1,000 plans: ``engine.load`` per plan beside the peer's
    ``select_events`` + fold per aggregate and the floor's fetch + fold; and
    ``engine.replay`` (a snapshot stored per plan) beside the peer folding each
    aggregate and inserting its snapshot, and the floor's fold + snapshot upsert.

Choices made for fairness:

* Recorder level, not ``Application``. The library stores events whose
  payloads are plain JSON and folds them with a reducer; eventsourcing's
  equivalent is its application recorder (``SQLiteApplicationRecorder`` /
  ``PostgresApplicationRecorder``, what an ``Application`` writes through, with
  its notification log, as the library keeps a change feed) fed ``StoredEvent``
  objects: topic = the event type, state = ``orjson.dumps(payload)``. The
  ``Application`` level would add its domain-event classes, its mapper and its
  stdlib-json transcoder on top: slower, so the recorder level is the strongest
  peer a Python user could pick for this job. Recorders come from
  ``SQLiteFactory`` / ``PostgresFactory`` with their default settings, so the peer
  runs its defaults: on PostgreSQL a 5-connection pool, each insert one pipelined
  transaction that takes ``LOCK TABLE ... IN EXCLUSIVE MODE`` (its notification
  order) and sends ``NOTIFY``; on SQLite ``BEGIN`` (deferred) and one INSERT per
  event.
* Snapshots: what ``Repository.get`` does with snapshotting enabled, at the
  recorder level: the snapshot store is ``factory.aggregate_recorder("snapshots")``
  (the table ``Application`` uses); a load is ``select_events(id, desc=True,
  limit=1)`` there, then ``select_events(id, gt=<its version>)`` on the events,
  folded onto the snapshot's state (orjson both ways, as the library's).
* Durability. SQLite: the library runs WAL with ``synchronous = NORMAL``
  (``eventsource.config``); eventsourcing switches to WAL and leaves
  ``synchronous`` at SQLite's default, ``FULL`` (``eventsourcing/sqlite.py``,
  ``SQLiteConnectionPool._create_connection``), so it pays an fsync per commit
  that the library does not. Both are measured in the same run: the peer at its
  default (``FULL``) and at the library's durability (``NORMAL``, set on each of
  its connections by :class:`_NormalSyncPool`); the targets are judged at equal
  durability. The peer gets a file of its own beside the library's in the
  scratch directory. PostgreSQL: neither side sets ``synchronous_commit``, so both
  run the server's setting (printed with the table): the default is the equal
  durability there, and one peer run serves both columns. Reads commit nothing,
  so they run the default peer only.
* Versions: the caller tracks each plan's version for both sides (as a writer
  holding the aggregate would); neither side reads it before writing.
* Checks (untimed, after every run): row counts on every side, and sample plans
  read back through each side's own read API equal to what was written; every
  fold, on every side, ends in the expected count and last event type.

Import this module only when the peer runs: it needs the ``bench`` extra.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final
from uuid import UUID

import orjson
import psycopg

# Without the ``bench`` extra (CI type-checks with ``.[test]`` only) these imports
# are missing: the ignores keep mypy quiet there and unused where it is installed.
from eventsourcing.persistence import (  # type: ignore[import-not-found, unused-ignore]
    AggregateRecorder,
    ApplicationRecorder,
    StoredEvent,
)
from eventsourcing.postgres import PostgresFactory  # type: ignore[import-not-found, unused-ignore]
from eventsourcing.sqlite import (  # type: ignore[import-not-found, unused-ignore]
    SQLiteAggregateRecorder,
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteDatastore,
    SQLiteFactory,
)

from .data import LongPlan, PeerDataset
from .library import ANY, NO_STREAM, EventStore, NewEvent, ProjectionEngine
from .measure import Result, Variant, measure
from .raw import RawDriver, count_fold, initial_count_state
from .report import PeerRow, ScaleRow
from .scratch import Scratch

__all__ = ["PEER_WORKLOADS", "CountProjection", "PeerReport", "open_peer", "run"]

PEER_TARGET: Final = 1.2
"""Every workload: library events/s at least this times the peer's (equal durability)."""
FOLD_TARGET: Final = 2.0
"""W3's full folds and snapshot loads."""
FLOOR_TARGET: Final = 0.8
"""Appends: library events/s at least this times the floor's."""
SCALE_TARGET: Final = 1.3
"""W3: the long plan's per-event load cost at most this times the shorter plan's."""
FLOOR_PROJECTION: Final = "benchmark_floor"
SNAPSHOT_TOPIC: Final = "benchmark_count_snapshot"
SETUP_CHUNK: Final = 10_000
"""Untimed setup writes the peer's long plans in inserts of this many events."""
SAMPLE_PLANS: Final = 3
WARMUP_PLANS: Final = 5

State = dict[str, Any]
PeerFold = tuple[State, int]
"""The peer's fold: the state and the last version read."""


class CountProjection:
    """The trivial fold as a library projection: count the events, keep the last type."""

    name = "benchmark_count"
    version = 1
    handles: frozenset[str] | None = None
    payload_models: Mapping[str, Any] = MappingProxyType({})
    tie_rank: Mapping[str, int] = MappingProxyType({})

    def initial_state(self, plan_id: UUID) -> State:
        return initial_count_state()

    def evolve(self, state: State, event: Any) -> State:
        return count_fold(state, event.event_type)

    def to_json(self, state: State) -> State:
        return state

    def from_json(self, data: Any) -> State:
        return dict(data)


# -- the peer's side ------------------------------------------------------------------


class _NormalSyncPool(SQLiteConnectionPool):  # type: ignore[misc, unused-ignore]
    """eventsourcing's SQLite pool with each connection at ``synchronous = NORMAL``."""

    def _create_connection(self) -> SQLiteConnection:
        connection = super()._create_connection()
        connection._sqlite_conn.execute("PRAGMA synchronous = NORMAL")
        return connection


@dataclass(eq=False)
class PeerSide:
    """One configuration of the peer: its application recorder and snapshot store."""

    label: str
    events: ApplicationRecorder
    snapshots: AggregateRecorder
    setting: Callable[[], str]
    """The durability setting its connections run (read from the database)."""
    closer: Callable[[], None]

    def append(self, plan_id: UUID, events: Sequence[NewEvent], first_version: int) -> None:
        dumps = orjson.dumps
        self.events.insert_events(
            [
                StoredEvent(plan_id, version, e.event_type, dumps(e.payload))
                for version, e in enumerate(events, first_version)
            ]
        )

    def _fold(self, state: State, version: int, stored: Iterable[Any]) -> PeerFold:
        loads = orjson.loads
        for s in stored:
            loads(s.state)
            state, version = count_fold(state, s.topic), s.originator_version
        return state, version

    def fold(self, plan_id: UUID) -> PeerFold:
        return self._fold(initial_count_state(), 0, self.events.select_events(plan_id))

    def store_snapshot(self, plan_id: UUID, state: State, version: int) -> None:
        snapshot = StoredEvent(plan_id, version, SNAPSHOT_TOPIC, orjson.dumps(state))
        self.snapshots.insert_events([snapshot])

    def load(self, plan_id: UUID) -> PeerFold:
        """``Repository.get`` with snapshotting: the latest snapshot, then the events after it."""
        found = self.snapshots.select_events(plan_id, desc=True, limit=1)
        if not found:
            return self.fold(plan_id)
        start: State = orjson.loads(found[0].state)
        version: int = found[0].originator_version
        return self._fold(start, version, self.events.select_events(plan_id, gt=version))

    def fold_and_snapshot(self, plan_id: UUID) -> PeerFold:
        state, version = self.fold(plan_id)
        self.store_snapshot(plan_id, state, version)
        return state, version

    def read_back(self, plan_id: UUID) -> list[tuple[str, Any]]:
        stored = self.events.select_events(plan_id)
        if [s.originator_version for s in stored] != list(range(1, len(stored) + 1)):
            return [("versions are not 1..n", None)]
        return [(str(s.topic), orjson.loads(s.state)) for s in stored]


@dataclass
class Peer:
    """The peer on one backend: at its default durability and at the library's."""

    backend: str
    default: PeerSide
    equal: PeerSide
    """The same object where the default already is the library's durability."""
    truncate: Callable[[], None]
    """Empty the peer's tables (both configurations share them) and checkpoint."""
    truncate_snapshots: Callable[[], None]
    count: Callable[[], int]
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


_SQLITE_SYNC: Final = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def _sqlite_setting(datastore: SQLiteDatastore) -> Callable[[], str]:
    def setting() -> str:
        with datastore.transaction(commit=False) as cursor:
            cursor.execute("PRAGMA journal_mode")
            journal = str(cursor.fetchone()[0]).upper()
            cursor.execute("PRAGMA synchronous")
            level = int(cursor.fetchone()[0])
        return f"{journal} synchronous={_SQLITE_SYNC.get(level, str(level))}"

    return setting


def _sqlite_peer(library_file: Path) -> Peer:
    path = str(library_file.parent / "peer.sqlite3")
    factory = SQLiteFactory({"SQLITE_DBNAME": path})
    default = PeerSide(
        "eventsourcing (default)",
        factory.application_recorder(),
        factory.aggregate_recorder("snapshots"),
        _sqlite_setting(factory.datastore),
        factory.close,
    )
    datastore = SQLiteDatastore(db_name=path)
    datastore.pool.close()
    datastore.pool = _NormalSyncPool(db_name=path)
    events = SQLiteApplicationRecorder(datastore)
    snapshots = SQLiteAggregateRecorder(datastore, "stored_snapshots")
    events.create_table()
    snapshots.create_table()
    equal = PeerSide(
        "eventsourcing (synchronous=NORMAL)",
        events,
        snapshots,
        _sqlite_setting(datastore),
        datastore.close,
    )
    admin = sqlite3.connect(path, isolation_level=None)

    def truncate() -> None:
        admin.execute("DELETE FROM stored_events")
        admin.execute("DELETE FROM stored_snapshots")
        admin.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def truncate_snapshots() -> None:
        admin.execute("DELETE FROM stored_snapshots")

    def count() -> int:
        return int(admin.execute("SELECT count(*) FROM stored_events").fetchone()[0])

    closers = [admin.close, default.closer, equal.closer]
    return Peer("sqlite", default, equal, truncate, truncate_snapshots, count, closers)


def _postgres_peer(scratch: Scratch) -> Peer:
    url = scratch.engine.url
    factory = PostgresFactory(
        {
            "POSTGRES_DBNAME": str(url.database),
            "POSTGRES_HOST": url.host or "127.0.0.1",
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": url.username or "postgres",
            "POSTGRES_PASSWORD": url.password or "",
        }
    )
    datastore = factory.datastore

    def setting() -> str:
        with datastore.get_connection() as conn:
            row = conn.execute("SHOW synchronous_commit").fetchone()
        assert row is not None
        return f"synchronous_commit={row['synchronous_commit']}"

    side = PeerSide(
        "eventsourcing",
        factory.application_recorder(),
        factory.aggregate_recorder("snapshots"),
        setting,
        factory.close,
    )
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = psycopg.connect(conninfo, autocommit=True)

    def truncate() -> None:
        admin.execute("TRUNCATE stored_events, stored_snapshots")
        with suppress(psycopg.errors.InsufficientPrivilege):
            admin.execute("CHECKPOINT")

    def truncate_snapshots() -> None:
        admin.execute("TRUNCATE stored_snapshots")

    def count() -> int:
        row = admin.execute("SELECT count(*) FROM stored_events").fetchone()
        return 0 if row is None else int(row[0])

    closers = [admin.close, side.closer]
    return Peer("postgresql", side, side, truncate, truncate_snapshots, count, closers)


def open_peer(scratch: Scratch) -> Peer:
    """The peer's recorders in ``scratch``: its own file on SQLite, its own tables on PG."""
    if scratch.backend == "sqlite":
        database = scratch.engine.url.database
        assert database is not None
        return _sqlite_peer(Path(database))
    return _postgres_peer(scratch)


def library_setting(store: EventStore) -> str:
    with store.engine.connect() as connection:
        if store.engine.dialect.name == "sqlite":
            journal = str(connection.exec_driver_sql("PRAGMA journal_mode").scalar()).upper()
            level = int(connection.exec_driver_sql("PRAGMA synchronous").scalar() or 0)
            return f"{journal} synchronous={_SQLITE_SYNC.get(level, str(level))}"
        value = connection.exec_driver_sql("SHOW synchronous_commit").scalar()
        return f"synchronous_commit={value}"


# -- the workloads ----------------------------------------------------------------------


@dataclass
class PeerContext:
    backend: str
    store: EventStore
    engine: ProjectionEngine
    projection: CountProjection
    raw: RawDriver
    peer: Peer
    data: PeerDataset
    repeat: int
    progress: Callable[[str], None]

    def measure(
        self, workload: str, title: str, events: int, variants: Sequence[Variant], repeat: int = 0
    ) -> dict[str, Result]:
        return measure(
            self.backend, workload, title, events, variants, repeat or self.repeat, self.progress
        )

    def reset(self) -> None:
        """Untimed: every side's tables empty, the databases checkpointed."""
        self.raw.truncate()
        self.peer.truncate()

    @property
    def peers(self) -> list[PeerSide]:
        """Each distinct peer configuration (two on SQLite, one on PostgreSQL)."""
        return list(dict.fromkeys([self.peer.default, self.peer.equal]))


@dataclass
class PeerReport:
    results: list[Result] = field(default_factory=list)
    rows: list[PeerRow] = field(default_factory=list)
    scales: list[ScaleRow] = field(default_factory=list)

    def extend(self, other: PeerReport) -> None:
        self.results.extend(other.results)
        self.rows.extend(other.rows)
        self.scales.extend(other.scales)


def _expected(events: Sequence[NewEvent]) -> State:
    return {"count": len(events), "last": events[-1].event_type}


def _written(events: Sequence[NewEvent]) -> list[tuple[str, Any]]:
    return [(e.event_type, orjson.loads(orjson.dumps(e.payload))) for e in events]


def _sample(plans: Sequence[tuple[UUID, list[NewEvent]]]) -> list[tuple[UUID, list[NewEvent]]]:
    step = max(1, len(plans) // SAMPLE_PLANS)
    return [*plans[::step][:SAMPLE_PLANS], plans[-1]]


def _library_check(
    ctx: PeerContext, total: int, sample: Sequence[tuple[UUID, list[NewEvent]]]
) -> Callable[[], str | None]:
    """Rows counted, and sample plans read back through ``store.read``/``version``."""

    def check() -> str | None:
        found = ctx.raw.count_events()
        if found != total:
            return f"expected {total} rows, found {found}"
        for plan_id, events in sample:
            got = [(e.event_type, dict(e.payload)) for e in ctx.store.read(plan_id)]
            if got != _written(events) or ctx.store.version(plan_id) != len(events):
                return f"plan {plan_id} reads back other events than were appended"
        return None

    return check


def _peer_check(
    ctx: PeerContext, side: PeerSide, total: int, sample: Sequence[tuple[UUID, list[NewEvent]]]
) -> Callable[[], str | None]:
    def check() -> str | None:
        found = ctx.peer.count()
        if found != total:
            return f"expected {total} stored events, found {found}"
        for plan_id, events in sample:
            if side.read_back(plan_id) != _written(events):
                return f"aggregate {plan_id} reads back other events than were inserted"
        return None

    return check


def _floor_check(ctx: PeerContext, total: int) -> Callable[[], str | None]:
    def check() -> str | None:
        found = ctx.raw.count_events()
        return None if found == total else f"expected {total} rows, found {found}"

    return check


def _by_plan(pairs: Sequence[tuple[UUID, NewEvent]]) -> list[tuple[UUID, list[NewEvent]]]:
    grouped: dict[UUID, list[NewEvent]] = {}
    for plan_id, event in pairs:
        grouped.setdefault(plan_id, []).append(event)
    return list(grouped.items())


def _warm_up(ctx: PeerContext, runs: Sequence[Callable[[], object]]) -> None:
    for work in runs:
        ctx.reset()
        work()
    ctx.reset()


def _rows(
    ctx: PeerContext,
    workload: str,
    title: str,
    results: Mapping[str, Result],
    library: str,
    floor: str | None,
    peer_target: float,
    floor_target: float | None = None,
    note: str = "",
) -> PeerRow:
    default = results[ctx.peer.default.label]
    equal = results.get(ctx.peer.equal.label, default)
    return PeerRow(
        ctx.backend,
        workload,
        title,
        results[library],
        default,
        equal,
        None if floor is None else results[floor],
        peer_target,
        floor_target,
        note,
    )


def w1_append(ctx: PeerContext) -> PeerReport:
    store, raw, batches = ctx.store, ctx.raw, ctx.data.batches
    total = ctx.data.batch_event_count
    sample = _sample(batches)
    title = f"append {len(batches)} plans x {ctx.data.sizes.batch_events}"

    def library(expected: Any, chosen: Sequence[tuple[UUID, list[NewEvent]]] = batches) -> None:
        for plan_id, events in chosen:
            store.append(plan_id, events, expected_version=expected)

    def peer(side: PeerSide, chosen: Sequence[tuple[UUID, list[NewEvent]]] = batches) -> None:
        for plan_id, events in chosen:
            side.append(plan_id, events, 1)

    warm = batches[:WARMUP_PLANS]
    _warm_up(
        ctx,
        [
            lambda: library(NO_STREAM, warm),
            lambda: library(ANY, warm),
            *(partial(peer, side, warm) for side in ctx.peers),
            lambda: raw.append_batches(warm),
        ],
    )
    checked, unchecked = "library append NO_STREAM", "library append ANY"
    floor = "floor executemany per plan"
    lib_check = _library_check(ctx, total, sample)
    variants = [
        Variant(checked, lambda: library(NO_STREAM), setup=ctx.reset, check=lib_check),
        Variant(unchecked, lambda: library(ANY), setup=ctx.reset, check=lib_check),
        *(
            Variant(
                side.label,
                partial(peer, side),
                setup=ctx.reset,
                check=_peer_check(ctx, side, total, sample),
            )
            for side in ctx.peers
        ),
        Variant(
            floor,
            lambda: raw.append_batches(batches),
            setup=ctx.reset,
            check=_floor_check(ctx, total),
        ),
    ]
    results = ctx.measure("W1", title, total, variants)
    return PeerReport(
        list(results.values()),
        [
            _rows(
                ctx, "W1", f"{title}, NO_STREAM", results, checked, floor, PEER_TARGET, FLOOR_TARGET
            ),
            _rows(
                ctx,
                "W1",
                f"{title}, ANY (unchecked)",
                results,
                unchecked,
                floor,
                PEER_TARGET,
                FLOOR_TARGET,
            ),
        ],
    )


def w2_singles(ctx: PeerContext) -> PeerReport:
    store, raw, singles = ctx.store, ctx.raw, ctx.data.singles
    total = len(singles)
    plans = _by_plan(singles)
    sample = _sample(plans)
    title = f"{total} single appends over {len(plans)} plans, expected=n"

    def library(chosen: Sequence[tuple[UUID, NewEvent]] = singles) -> None:
        versions: dict[UUID, int] = {}
        for plan_id, event in chosen:
            version = versions.get(plan_id, 0)
            store.append(plan_id, [event], expected_version=version)
            versions[plan_id] = version + 1

    def peer(side: PeerSide, chosen: Sequence[tuple[UUID, NewEvent]] = singles) -> None:
        versions: dict[UUID, int] = {}
        for plan_id, event in chosen:
            version = versions.get(plan_id, 0) + 1
            side.append(plan_id, [event], version)
            versions[plan_id] = version

    warm = singles[:20]
    _warm_up(
        ctx,
        [
            lambda: library(warm),
            *(partial(peer, side, warm) for side in ctx.peers),
            lambda: raw.append_singles(warm),
        ],
    )
    name, floor = "library append expected_version=n", "floor INSERT + COMMIT per event"
    variants = [
        Variant(name, library, setup=ctx.reset, check=_library_check(ctx, total, sample)),
        *(
            Variant(
                side.label,
                partial(peer, side),
                setup=ctx.reset,
                check=_peer_check(ctx, side, total, sample),
            )
            for side in ctx.peers
        ),
        Variant(
            floor,
            lambda: raw.append_singles(singles),
            setup=ctx.reset,
            check=_floor_check(ctx, total),
        ),
    ]
    results = ctx.measure("W2", title, total, variants)
    return PeerReport(
        list(results.values()),
        [_rows(ctx, "W2", title, results, name, floor, PEER_TARGET, FLOOR_TARGET)],
    )


def _write_long_plan(ctx: PeerContext, plan: LongPlan) -> None:
    """Untimed: the plan's appends on the library and the peer, snapshotting in between."""
    version = 0
    for index, batch in enumerate(plan.appends):
        ctx.store.append(plan.plan_id, batch)
        for start in range(0, len(batch), SETUP_CHUNK):
            chunk = batch[start : start + SETUP_CHUNK]
            ctx.peer.default.append(plan.plan_id, chunk, version + start + 1)
        version += len(batch)
        if index == 0 and plan.snapshot_after == version and len(plan.appends) > 1:
            _snapshot_both(ctx, plan, _expected(batch), version)


def _snapshot_both(ctx: PeerContext, plan: LongPlan, state: State, version: int) -> None:
    loaded = ctx.engine.snapshot(ctx.projection, plan.plan_id)
    if loaded.state != state:
        raise RuntimeError(f"{plan.key}: the library's snapshot holds {loaded.state}")
    ctx.peer.default.store_snapshot(plan.plan_id, state, version)


def _state_check(
    name: str, outputs: list[tuple[State, Any]], expected: State, last: Any = None
) -> Callable[[], str | None]:
    def check() -> str | None:
        if not outputs:
            return f"{name}: nothing folded"
        for state, at in outputs:
            if state != expected or (last is not None and at != last):
                return f"{name}: folded {state} (at {at}), expected {expected}"
        outputs.clear()
        return None

    return check


def _fold_variants(
    ctx: PeerContext,
    plan: LongPlan,
    *,
    loads: int,
    snapshot: bool,
) -> list[Variant]:
    """Library, peer and floor each loading ``plan`` ``loads`` times, checked after each run."""
    engine, projection, raw, plan_id = ctx.engine, ctx.projection, ctx.raw, plan.plan_id
    expected = plan.expected
    tail = expected["count"] - (plan.snapshot_after or 0) if snapshot else expected["count"]
    library_out: list[tuple[State, Any]] = []
    peer_out: list[tuple[State, Any]] = []
    floor_out: list[tuple[State, Any]] = []

    def library() -> None:
        for _ in range(loads):
            loaded = engine.load(projection, plan_id)
            library_out.append((loaded.state, (loaded.from_snapshot, loaded.tail)))

    def peer() -> None:
        side = ctx.peer.default
        run = side.load if snapshot else side.fold
        for _ in range(loads):
            peer_out.append(run(plan_id))

    def floor() -> None:
        for _ in range(loads):
            if snapshot:
                got = raw.load_snapshot_fold(plan_id, projection.name)
                floor_out.append(got if got is not None else ({}, None))
            else:
                floor_out.append(raw.read_fold(plan_id, projection.tie_rank))

    how = "engine.load (snapshot + tail)" if snapshot else "engine.load (full fold)"
    peer_how = "snapshot + select_events(gt)" if snapshot else "select_events + fold"
    floor_how = "snapshot row + tail fetch" if snapshot else "fetch + orjson + fold"
    return [
        Variant(
            f"library {how}",
            library,
            check=_state_check("library", library_out, expected, (snapshot, tail)),
        ),
        Variant(
            f"{ctx.peer.default.label} {peer_how}",
            peer,
            check=_state_check("peer", peer_out, expected, expected["count"]),
        ),
        Variant(f"floor {floor_how}", floor, check=_state_check("floor", floor_out, expected)),
    ]


def _fold_row(
    ctx: PeerContext,
    workload: str,
    title: str,
    results: Mapping[str, Result],
    variants: Sequence[Variant],
    target: float,
) -> PeerRow:
    library, peer, floor = (results[v.name] for v in variants)
    return PeerRow(ctx.backend, workload, title, library, peer, peer, floor, target)


def w3_rebuild(ctx: PeerContext) -> PeerReport:
    plans = ctx.data.long_plans
    ctx.reset()
    ctx.progress(f"{ctx.backend} W3: writing the long plans (untimed)")
    for plan in plans.values():
        _write_long_plan(ctx, plan)
    ctx.raw.analyze()
    report = PeerReport()
    kinds = {
        "own": "own timestamps",
        "tied": "tied (1 append)",
        "big": "tied (1 append)",
    }
    folds: dict[str, list[Result]] = {}
    for key in ("own", "tied", "big"):
        plan = plans[key]
        events = plan.expected["count"]
        variants = _fold_variants(ctx, plan, loads=1, snapshot=False)
        for variant in variants:  # warm-up, and a first check
            variant.run()
            if (problem := variant.check()) is not None:
                raise RuntimeError(f"{plan.key}: {problem}")
        title = f"rebuild a plan of {events}, {kinds[key]}"
        results = ctx.measure("W3", title, events, variants)
        report.results.extend(results.values())
        folds[key] = [results[v.name] for v in variants]
        report.rows.append(_fold_row(ctx, "W3", title, results, variants, FOLD_TARGET))
    long, short = folds["big"], folds["tied"]
    report.scales.append(
        ScaleRow(
            ctx.backend,
            "W3",
            f"per-event full-fold cost, {long[0].events} vs {short[0].events} tied events",
            dict(zip(("library", "peer", "floor"), long, strict=True)),
            dict(zip(("library", "peer", "floor"), short, strict=True)),
            SCALE_TARGET,
        )
    )
    for key in ("own", "tied"):
        plan = plans[key]
        _snapshot_both(ctx, plan, plan.expected, plan.expected["count"])
    loads = ctx.data.sizes.snapshot_loads
    for key, kind in (
        ("own", "own timestamps"),
        ("tied", "tied"),
        ("own_tail", "own timestamps"),
        ("tied_tail", "tied"),
    ):
        plan = plans[key]
        events = plan.expected["count"]
        tail = events - (plan.snapshot_after or 0)
        variants = _fold_variants(ctx, plan, loads=loads, snapshot=True)
        for variant in variants:
            variant.run()
            if (problem := variant.check()) is not None:
                raise RuntimeError(f"{plan.key}: {problem}")
        title = f"snapshot +{tail} of {events}, {kind} (x{loads})"
        results = ctx.measure("W3", title, events * loads, variants)
        report.results.extend(results.values())
        report.rows.append(_fold_row(ctx, "W3", title, results, variants, FOLD_TARGET))
    return report


def w4_replay(ctx: PeerContext) -> PeerReport:
    engine, projection, raw = ctx.engine, ctx.projection, ctx.raw
    plans = ctx.data.replay
    plan_ids = [p for p, _ in plans]
    total = ctx.data.replay_event_count
    ctx.reset()
    ctx.progress(f"{ctx.backend} W4: writing {len(plans)} plans (untimed)")
    for plan_id, events in plans:
        ctx.store.append(plan_id, events)
        ctx.peer.default.append(plan_id, events, 1)
    raw.analyze()
    expected = {p: _expected(events) for p, events in plans}
    sample = [p for p, _ in _sample(plans)]
    outputs: dict[str, dict[UUID, State]] = {}

    def same(key: str) -> Callable[[], str | None]:
        def check() -> str | None:
            got = outputs.pop(key, {})
            wrong = sum(1 for p in plan_ids if got.get(p) != expected[p])
            return f"{key}: {wrong} plans folded to other states" if wrong else None

        return check

    def library_load() -> None:
        outputs["library"] = {p: engine.load(projection, p).state for p in plan_ids}

    def peer_fold(side: PeerSide, key: str, snapshot: bool) -> Callable[[], None]:
        run = side.fold_and_snapshot if snapshot else side.fold

        def work() -> None:
            outputs[key] = {p: run(p)[0] for p in plan_ids}

        return work

    def floor_fold() -> None:
        outputs["floor"] = {p: raw.read_fold(p, projection.tie_rank)[0] for p in plan_ids}

    title = f"load {len(plans)} plans, {total} events, 1 load/plan"
    load_variants = [
        Variant("library engine.load per plan", library_load, check=same("library")),
        Variant(
            f"{ctx.peer.default.label} select_events + fold",
            peer_fold(ctx.peer.default, "peer", snapshot=False),
            check=same("peer"),
        ),
        Variant("floor fetch + orjson + fold per plan", floor_fold, check=same("floor")),
    ]
    for variant in load_variants:
        variant.run()
        if (problem := variant.check()) is not None:
            raise RuntimeError(problem)
    results = ctx.measure("W4", title, total, load_variants)
    report = PeerReport(list(results.values()))
    report.rows.append(_fold_row(ctx, "W4", title, results, load_variants, PEER_TARGET))

    def clear() -> None:
        raw.truncate(events=False)
        ctx.peer.truncate_snapshots()

    def library_replay() -> None:
        engine.replay(projection, plan_ids, run="benchmark", restart=True)

    def library_replayed() -> str | None:
        for p in sample:
            loaded = engine.load(projection, p)
            if not loaded.from_snapshot or loaded.tail or loaded.state != expected[p]:
                return f"plan {p}: no fresh snapshot of the expected state after the replay"
        return None

    def peer_replayed(side: PeerSide, key: str) -> Callable[[], str | None]:
        folded = same(key)

        def check() -> str | None:
            problem = folded()
            if problem is not None:
                return problem
            for p in sample:
                if side.load(p) != (expected[p], expected[p]["count"]):
                    return f"aggregate {p}: the stored snapshot is not the expected state"
            return None

        return check

    def floor_replay() -> None:
        outputs["floor"] = {
            p: raw.fold_and_snapshot(p, projection.tie_rank, FLOOR_PROJECTION)[0] for p in plan_ids
        }

    replay_title = f"replay {len(plans)} plans, {total} events (snapshots)"
    library_name = "library engine.replay"
    floor_name = "floor fold + snapshot upsert per plan"
    variants = [
        Variant(library_name, library_replay, setup=clear, check=library_replayed),
        *(
            Variant(
                f"{side.label} fold + snapshot insert",
                peer_fold(side, side.label, snapshot=True),
                setup=clear,
                check=peer_replayed(side, side.label),
            )
            for side in ctx.peers
        ),
        Variant(floor_name, floor_replay, setup=clear, check=same("floor")),
    ]
    results = ctx.measure("W4", replay_title, total, variants)
    report.results.extend(results.values())
    by_label = {side.label: results[f"{side.label} fold + snapshot insert"] for side in ctx.peers}
    default = by_label[ctx.peer.default.label]
    report.rows.append(
        PeerRow(
            ctx.backend,
            "W4",
            replay_title,
            results[library_name],
            default,
            by_label.get(ctx.peer.equal.label, default),
            results[floor_name],
            PEER_TARGET,
        )
    )
    return report


@dataclass(frozen=True)
class PeerWorkload:
    key: str
    name: str
    run: Callable[[PeerContext], PeerReport]


PEER_WORKLOADS: Final = (
    PeerWorkload("W1", "peer-append", w1_append),
    PeerWorkload("W2", "peer-single", w2_singles),
    PeerWorkload("W3", "peer-rebuild", w3_rebuild),
    PeerWorkload("W4", "peer-replay", w4_replay),
)


def run(
    scratch: Scratch,
    store: EventStore,
    data: PeerDataset,
    workloads: Sequence[PeerWorkload],
    repeat: int,
    progress: Callable[[str], None],
) -> tuple[PeerReport, str]:
    """Run ``workloads`` on one scratch database; the report and the durability line."""
    scratch.raw.create_parents([data.owner], data.plans)
    peer = open_peer(scratch)
    try:
        ctx = PeerContext(
            backend=scratch.backend,
            store=store,
            engine=ProjectionEngine(store, snapshot_every=None),
            projection=CountProjection(),
            raw=scratch.raw,
            peer=peer,
            data=data,
            repeat=repeat,
            progress=progress,
        )
        ctx.reset()
        durability = _durability(ctx)
        progress(f"{scratch.backend}: {durability}")
        report = PeerReport()
        for workload in workloads:
            report.extend(workload.run(ctx))
        return report, durability
    finally:
        peer.close()


def _durability(ctx: PeerContext) -> str:
    library = library_setting(ctx.store)
    default = ctx.peer.default.setting()
    if ctx.peer.equal is ctx.peer.default:
        return (
            f"library {library}; eventsourcing {default} (neither sets it: its default "
            "is the equal durability, one peer run)"
        )
    equal = ctx.peer.equal.setting()
    return (
        f"library {library}; eventsourcing default {default}; at equal durability {equal}"
        " (reads: the default peer)"
    )
