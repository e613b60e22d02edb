"""Asynchronous projections on both backends: the change feed, workers, reconcile.

Every library write (append, backfill, soft delete, restore, import) queues its
plan in ``eventsource_plan_changes`` inside its own transaction; a worker drains
the queue and leaves snapshots equal to fresh folds; LISTEN/NOTIFY wakes an idle
worker on PostgreSQL; SIGTERM ends a worker cleanly after the plan in hand;
reconcile finds what the host's own SQL changed behind the library's back.
"""

from __future__ import annotations

import hashlib
import json
import os
import select as io_select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any
from uuid import UUID, uuid4

import orjson
import pytest
from click.testing import CliRunner
from pydantic import BaseModel
from sqlalchemy import Engine, delete, func, select, update

from eventsource import EventStore, WriteNotice, migrate
from eventsource.cli import main
from eventsource.config import make_engine
from eventsource.events import NewEvent
from eventsource.tables import events, plan_changes, snapshots
from eventsource.transfer import import_events
from projections.course_designer import CourseDesignerPlanProjection
from projections.engine import ProjectionEngine
from projections.fold import canonical_json, state_hash, thaw
from projections.typing import Event, Projection
from projections.worker import Worker, reconcile
from tests.conftest import DATA, make_plan

ROOT = Path(__file__).resolve().parent.parent
Plan = tuple[UUID, UUID]
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
COURSE = CourseDesignerPlanProjection()


# -- a projection that notices every miss, repeat and reordering ---------------


class Ledger:
    """Counts events and chains a hash over their ids, types and payloads, in order.

    Folding an event twice, missing one, or folding two out of stream order all
    give another state, so a snapshot equal to a fresh fold proves the worker
    folded each live event exactly once, in order.
    """

    name = "ledger"
    version = 1
    handles: frozenset[str] | None = None
    payload_models: Mapping[str, type[BaseModel]] = MappingProxyType({})
    tie_rank: Mapping[str, int] = MappingProxyType({})

    def initial_state(self, plan_id: UUID) -> dict[str, Any]:
        return {"count": 0, "chain": ""}

    def evolve(self, state: dict[str, Any], event: Event) -> dict[str, Any]:
        link = f"{state['chain']}|{event.id}|{event.event_type}|".encode()
        chain = hashlib.sha256(link + canonical_json(thaw(event.payload))).hexdigest()
        return {"count": state["count"] + 1, "chain": chain}

    def to_json(self, state: dict[str, Any]) -> Any:
        return dict(state)

    def from_json(self, data: Any) -> dict[str, Any]:
        return dict(data)


LEDGER = Ledger()
BOTH: tuple[Projection[Any], ...] = (COURSE, LEDGER)


# -- helpers shared with test_faults and test_security -------------------------


def queued(store: EventStore) -> dict[UUID, int]:
    """The change feed: plan id -> change_seq."""
    with store.read_transaction() as connection:
        rows = connection.execute(select(plan_changes.c.plan_id, plan_changes.c.change_seq))
        return {row.plan_id: row.change_seq for row in rows}


def live_count(store: EventStore, plan_id: UUID) -> int:
    with store.read_transaction() as connection:
        return int(
            connection.execute(
                select(func.count())
                .select_from(events)
                .where(events.c.course_designer_plan_id == plan_id, events.c.deleted_at.is_(None))
            ).scalar_one()
        )


@pytest.fixture
def store(sync_store: EventStore) -> EventStore:
    """The blocking Worker's tests use the blocking store (AsyncWorker: test_async)."""
    return sync_store


def assert_snapshots_are_fresh_folds(
    store: EventStore, projections: Sequence[Projection[Any]], plan_ids: Sequence[UUID]
) -> None:
    """Every plan's snapshot exists, is usable and equals a fold from scratch."""
    engine = ProjectionEngine(store, snapshot_every=None)
    differing = []
    with store.read_transaction() as connection:
        for plan_id in plan_ids:
            for projection in projections:
                snap = store.load_snapshot(store.raw(connection), plan_id, projection.name)
                fresh = engine.fold_from_scratch(projection, plan_id, connection=connection)
                if (
                    snap is None
                    or not snap.usable_for(projection.name, projection.version)
                    or snap.event_count != fresh.event_count
                    or snap.state_hash != fresh.hash
                    or snap.position != fresh.position
                ):
                    differing.append((plan_id, projection.name, snap, fresh.event_count))
    assert differing == []


def note(n: int, **fields: Any) -> NewEvent:
    return NewEvent("note_added", {"n": n}, **fields)


def sample_lines(plans: int) -> tuple[list[bytes], list[UUID]]:
    """The sample's lines of its first ``plans`` plans (whole streams)."""
    lines = (DATA / "course_designer_events.jsonl").read_bytes().splitlines()
    chosen: list[UUID] = []
    for line in lines:
        plan_id = UUID(orjson.loads(line)["course_designer_plan_id"])
        if plan_id not in chosen:
            chosen.append(plan_id)
        if len(chosen) == plans:
            break
    wanted = {str(p) for p in chosen}
    kept = [line for line in lines if orjson.loads(line)["course_designer_plan_id"] in wanted]
    return kept, chosen


def expected_states() -> dict[str, Any]:
    states: dict[str, Any] = json.loads((DATA / "course_designer_states.json").read_text())["plans"]
    return states


def subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTSOURCE_")}
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_script(source: str, *args: str) -> subprocess.Popen[str]:
    """Run a small Python script in a process of its own (stdout/stderr piped)."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(source), *args],
        cwd=ROOT,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_until(
    stream: IO[str] | None, done: Callable[[str], bool], timeout: float = 30.0
) -> list[str]:
    """Lines read from a child's pipe until one satisfies ``done`` (or fail at the deadline).

    Reads the file descriptor directly: ``select`` cannot see lines that a text
    stream's buffer already holds, so two lines arriving together would hang.
    """
    assert stream is not None
    fd = stream.fileno()
    lines: list[str] = []
    pending = b""
    deadline = time.monotonic() + timeout
    while True:
        while b"\n" in pending:
            raw, pending = pending.split(b"\n", 1)
            line = raw.decode() + "\n"
            lines.append(line)
            if done(line):
                return lines
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"no expected line within {timeout}s; got {lines!r}")
        ready, _, _ = io_select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            pytest.fail(f"the process closed its output; got {lines!r}")
        pending += chunk


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.02) -> float:
    """Seconds until ``condition()`` held (fails at the deadline)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)
    return time.monotonic() - start


# -- fixtures ------------------------------------------------------------------


# -- the change feed: every library write queues its plan ----------------------


class FeedProbe:
    """A write hook that, inside the write's transaction, looks at the change feed
    from the writing connection and from a second one."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seen: list[tuple[str, int | None, int | None]] = []

    def after_write(self, store: EventStore, connection: Any, notice: WriteNotice) -> None:
        query = select(plan_changes.c.change_seq).where(plan_changes.c.plan_id == notice.plan_id)
        inside = connection.execute(query).scalar_one_or_none()
        with self.engine.connect() as other:
            outside = other.execute(query).scalar_one_or_none()
            other.rollback()
        self.seen.append((notice.kind, inside, outside))


def test_every_library_write_kind_queues_its_plan_inside_its_own_transaction(
    store: EventStore, engine: Engine, plan: Plan
) -> None:
    plan_id, actor = plan
    probe = FeedProbe(engine)
    store.hooks.append(probe)

    def clear() -> None:
        with engine.begin() as connection:
            connection.execute(delete(plan_changes))

    first = store.append(plan_id, [note(1, actor_user_id=actor), note(2)])
    assert queued(store) == {plan_id: 1}
    clear()
    store.append(plan_id, [note(0, occurred_at=T0)])  # a backfill
    assert queued(store) == {plan_id: 1}
    clear()
    assert store.soft_delete(first.event_ids[0])
    assert queued(store) == {plan_id: 1}
    assert store.restore(first.event_ids[0])
    assert queued(store) == {plan_id: 2}, "a second change bumps change_seq"
    clear()
    lines, imported = sample_lines(2)
    import_events(store, lines, create_parents=True)
    assert queued(store) == dict.fromkeys(imported, 1)

    # Each write sees its own change; everyone else sees it only once it commits.
    assert probe.seen == [
        ("append", 1, None),
        ("append", 1, None),
        ("soft_delete", 1, None),
        ("restore", 2, 1),
        ("import", 1, None),
        ("import", 1, None),
    ]


class Boom(RuntimeError):
    pass


class FailingHook:
    def after_write(self, store: EventStore, connection: Any, notice: WriteNotice) -> None:
        raise Boom("the host's hook failed")


def test_a_rolled_back_write_queues_nothing(store: EventStore, plan: Plan) -> None:
    plan_id, _ = plan
    kept = store.append(plan_id, [note(1)])
    with store.engine.begin() as connection:
        connection.execute(delete(plan_changes))
    store.hooks.append(FailingHook())
    with pytest.raises(Boom):
        store.append(plan_id, [note(2)])
    with pytest.raises(Boom):
        store.soft_delete(kept.event_ids[0])
    assert queued(store) == {}
    assert store.version(plan_id) == 1
    assert live_count(store, plan_id) == 1


def test_a_refused_append_queues_nothing(store: EventStore, plan: Plan) -> None:
    plan_id, _ = plan
    from eventsource.errors import ConcurrencyConflict, InvalidInput, UnknownReference

    with pytest.raises(InvalidInput):
        store.append(plan_id, [note(1), NewEvent("", {})])
    with pytest.raises(ConcurrencyConflict):
        store.append(plan_id, [note(1)], expected_version=3)
    with pytest.raises(UnknownReference):
        store.append(uuid4(), [note(1)])
    assert queued(store) == {}


# -- workers --------------------------------------------------------------------


def test_worker_drain_folds_every_queued_plan_into_snapshots_equal_to_fresh_folds(
    store: EventStore,
) -> None:
    lines, plan_ids = sample_lines(12)
    import_events(store, lines, create_parents=True)
    assert set(queued(store)) == set(plan_ids)

    worker = Worker(store, BOTH, batch_size=5)
    assert worker.drain() == 12
    assert worker.stats.batches == 3
    assert sorted(worker.stats.claimed) == sorted(plan_ids)
    assert queued(store) == {}
    assert_snapshots_are_fresh_folds(store, BOTH, plan_ids)
    expected = expected_states()
    engine = ProjectionEngine(store, snapshot_every=None)
    for plan_id in plan_ids:
        loaded = engine.load(COURSE, plan_id)
        assert loaded.from_snapshot
        assert loaded.tail == 0
        assert loaded.json == expected[str(plan_id)]
    assert worker.drain() == 0, "an empty queue is a no-op"

    # Appends, a backfill, a soft delete and a restore queue the plans again.
    first, second, third = plan_ids[:3]
    store.append(first, [note(1), note(2)])
    store.append(second, [note(3, occurred_at=T0 - timedelta(days=400))])
    victim = next(store.read(third))
    store.soft_delete(victim.id)
    assert set(queued(store)) == {first, second, third}
    assert worker.drain() == 3
    assert_snapshots_are_fresh_folds(store, BOTH, plan_ids)
    store.restore(victim.id)
    assert worker.drain() == 1
    assert queued(store) == {}
    assert_snapshots_are_fresh_folds(store, BOTH, plan_ids)


def test_a_write_landing_while_its_plan_is_claimed_waits_and_requeues_the_plan(
    store: EventStore, plan: Plan
) -> None:
    """The feed's promise: the fold sees a stable stream and the late write is not lost."""
    plan_id, _ = plan
    store.append(plan_id, [note(1), note(2)])
    late: list[Any] = []

    def write_late() -> None:
        late.append(store.append(plan_id, [note(3)]))

    writer = threading.Thread(target=write_late)

    def on_plan(claimed: UUID) -> None:
        writer.start()
        time.sleep(0.5)
        assert writer.is_alive(), "the writer must wait for the claim to be released"

    worker = Worker(store, [LEDGER], on_plan=on_plan)
    assert worker.run_batch() == 1
    writer.join(timeout=30)
    assert late, "the late append committed after the worker"
    assert queued(store) == {plan_id: 1}, "the late append re-queued the plan"
    with store.read_transaction() as connection:
        snap = store.load_snapshot(store.raw(connection), plan_id, LEDGER.name)
    assert snap is not None
    assert snap.event_count == 2, "the fold did not see the late write"
    assert Worker(store, [LEDGER]).drain() == 1
    assert_snapshots_are_fresh_folds(store, [LEDGER], [plan_id])


def test_a_stop_request_finishes_the_plan_in_hand_and_leaves_the_rest_queued(
    store: EventStore, engine: Engine
) -> None:
    plan_ids = [make_plan(engine)[0] for _ in range(5)]
    for plan_id in plan_ids:
        store.append(plan_id, [note(1)])

    def on_plan(claimed: UUID) -> None:
        worker.stop()  # what SIGTERM's handler does

    worker = Worker(store, [LEDGER], batch_size=5, on_plan=on_plan)
    assert worker.drain() == 1
    assert len(queued(store)) == 4
    assert_snapshots_are_fresh_folds(store, [LEDGER], worker.stats.claimed)
    assert Worker(store, [LEDGER]).drain() == 4
    assert_snapshots_are_fresh_folds(store, [LEDGER], plan_ids)


@pytest.mark.postgres
def test_concurrent_workers_claim_disjoint_plans(pg: tuple[str, EventStore]) -> None:
    _, store = pg
    plan_ids = [make_plan(store.engine)[0] for _ in range(30)]
    for plan_id in plan_ids:
        store.append(plan_id, [note(1), note(2)])
    workers = [
        Worker(store, [LEDGER], batch_size=3, on_plan=lambda _: time.sleep(0.01)) for _ in range(3)
    ]
    threads = [threading.Thread(target=w.drain) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    claimed = [plan_id for w in workers for plan_id in w.stats.claimed]
    assert sorted(claimed) == sorted(plan_ids), "each plan folded by exactly one worker"
    assert sum(1 for w in workers if w.stats.plans) >= 2, "SKIP LOCKED let them work at once"
    assert queued(store) == {}
    assert_snapshots_are_fresh_folds(store, [LEDGER], plan_ids)


class ObservedWorker(Worker):
    """Tells the test when it has drained and gone back to waiting."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.drained = threading.Event()

    def drain(self) -> int:
        count = super().drain()
        self.drained.set()
        return count


@pytest.mark.postgres
def test_listen_notify_wakes_a_waiting_worker_at_once(pg: tuple[str, EventStore]) -> None:
    _, store = pg
    plan_id, _ = make_plan(store.engine)
    worker = ObservedWorker(store, [LEDGER], poll_interval=30)
    thread = threading.Thread(target=worker.run_forever)
    thread.start()
    try:
        assert worker.drained.wait(10)
        time.sleep(0.2)  # now waiting on LISTEN, 30 s from its next poll
        worker.drained.clear()
        store.append(plan_id, [note(1)])
        took = wait_until(lambda: worker.stats.plans == 1, timeout=10)
        assert took < 2.0, f"woken after {took:.2f}s: not by NOTIFY"
        assert_snapshots_are_fresh_folds(store, [LEDGER], [plan_id])
    finally:
        worker.stop()
        stopped = time.monotonic()
        thread.join(timeout=35)
    assert not thread.is_alive()
    assert time.monotonic() - stopped < 3.0, "stop() must not wait out the poll interval"


def test_on_sqlite_an_idle_worker_polls(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'poll.sqlite3'}")
    migrate.upgrade(engine)
    store = EventStore(engine)
    plan_id, _ = make_plan(engine)
    worker = ObservedWorker(store, [LEDGER], poll_interval=0.05)
    thread = threading.Thread(target=worker.run_forever)
    thread.start()
    try:
        assert worker.drained.wait(10)
        store.append(plan_id, [note(1)])
        wait_until(lambda: worker.stats.plans == 1, timeout=10)
    finally:
        worker.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert_snapshots_are_fresh_folds(store, [LEDGER], [plan_id])
    engine.dispose()


def test_sigterm_stops_an_idle_cli_worker_cleanly(
    backend_url: str, store: EventStore, plan: Plan
) -> None:
    plan_id, _ = plan
    store.append(plan_id, [note(1)])
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "eventsource",
            "worker",
            "--database-url",
            backend_url,
            "--poll-interval",
            "30",
        ],
        cwd=ROOT,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        read_until(proc.stderr, lambda line: "waiting for changes" in line)
        wait_until(lambda: not queued(store), timeout=20)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "stopped after folding 1 plan" in err
    assert "Traceback" not in err
    assert_snapshots_are_fresh_folds(store, [COURSE], [plan_id])


SIGTERM_IN_BATCH = """
    import os, signal, sys
    from eventsource import EventStore
    from projections.worker import Worker
    from tests.test_worker import LEDGER

    def on_plan(plan_id):
        print(f"folded {plan_id}", flush=True)
        os.kill(os.getpid(), signal.SIGTERM)

    worker = Worker(EventStore.from_url(sys.argv[1]), [LEDGER], batch_size=10, on_plan=on_plan)
    worker.install_signal_handlers()
    worker.run_forever()
    print(f"stopped after {worker.stats.plans}", flush=True)
"""


def test_sigterm_mid_batch_commits_the_plan_in_hand_and_exits_zero(
    backend_url: str, store: EventStore, engine: Engine
) -> None:
    plan_ids = [make_plan(engine)[0] for _ in range(6)]
    for plan_id in plan_ids:
        store.append(plan_id, [note(1), note(2)])
    proc = start_script(SIGTERM_IN_BATCH, backend_url)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    folded = [UUID(line.split()[1]) for line in out.splitlines() if line.startswith("folded")]
    assert len(folded) == 1
    assert "stopped after 1" in out
    assert set(queued(store)) == set(plan_ids) - set(folded)
    assert_snapshots_are_fresh_folds(store, [LEDGER], folded)


# -- reconcile -------------------------------------------------------------------


def _host_insert(engine: Engine, plan_id: UUID, occurred_at: datetime) -> UUID:
    """An event written by the host's own SQL (no library, no change feed)."""
    event_id = uuid4()
    with engine.begin() as connection:
        connection.execute(
            events.insert().values(
                id=event_id,
                course_designer_plan_id=plan_id,
                event_type="note_added",
                payload={"n": "host"},
                occurred_at=occurred_at,
            )
        )
    return event_id


def test_reconcile_finds_host_sql_writes_and_a_worker_then_makes_verify_clean(
    store: EventStore, engine: Engine
) -> None:
    plans = [make_plan(engine)[0] for _ in range(6)]
    untouched, backfilled, appended, edited, retracted, erased = plans
    for plan_id in plans:
        store.append(plan_id, [note(1, occurred_at=T0), note(2, occurred_at=T0 + timedelta(1))])
    Worker(store, [LEDGER]).drain()
    assert reconcile(store, [LEDGER]) == []

    time.sleep(0.01)  # the host writes strictly after the snapshots
    _host_insert(engine, backfilled, T0 - timedelta(days=1))
    _host_insert(engine, appended, T0 + timedelta(days=9))
    first = {p: next(store.read(p)).id for p in plans}
    with engine.begin() as connection:
        connection.execute(
            update(events).where(events.c.id == first[edited]).values(payload={"n": "edited"})
        )
        connection.execute(
            update(events)
            .where(events.c.id == first[retracted])
            .values(deleted_at=datetime.now(UTC))
        )
        connection.execute(delete(events).where(events.c.course_designer_plan_id == erased))
    assert queued(store) == {}, "host SQL bypasses the change feed"

    engine_ = ProjectionEngine(store, snapshot_every=None)
    findings = reconcile(store, [LEDGER])
    found = {f.plan_id: f.reason for f in findings}
    assert set(found) == {backfilled, appended, edited, retracted, erased}, found
    assert all(f.projection == LEDGER.name for f in findings)
    assert "after the snapshot" in found[appended]
    assert "updated after" in found[edited]
    assert set(queued(store)) == set(found)
    assert untouched not in found

    assert Worker(store, [LEDGER]).drain() == 5
    assert reconcile(store, [LEDGER]) == []
    assert_snapshots_are_fresh_folds(store, [LEDGER], plans)
    for plan_id in plans:
        assert engine_.verify(LEDGER, plan_id).snapshot_status == "ok"
    with store.read_transaction() as connection:
        gone = store.load_snapshot(store.raw(connection), erased, LEDGER.name)
    assert gone is not None
    assert gone.event_count == 0
    assert gone.position is None


def test_reconcile_queues_missing_stale_and_other_version_snapshots(
    store: EventStore, engine: Engine
) -> None:
    plans = [make_plan(engine)[0] for _ in range(3)]
    for plan_id in plans:
        store.append(plan_id, [note(1)])
    Worker(store, [LEDGER]).drain()
    missing, stale, old = plans
    with engine.begin() as connection:
        connection.execute(delete(snapshots).where(snapshots.c.plan_id == missing))
        connection.execute(update(snapshots).where(snapshots.c.plan_id == stale).values(stale=True))
        connection.execute(
            update(snapshots).where(snapshots.c.plan_id == old).values(projection_version=0)
        )
    found = {f.plan_id: f.reason for f in reconcile(store, [LEDGER])}
    assert found == {
        missing: "no snapshot",
        stale: "snapshot stale",
        old: "snapshot of version 0",
    }
    assert Worker(store, [LEDGER]).drain() == 3
    assert reconcile(store, [LEDGER]) == []


@pytest.mark.postgres
def test_deep_reconcile_finds_a_host_update_whose_transaction_began_before_the_snapshot(
    pg: tuple[str, EventStore],
) -> None:
    _, store = pg
    plan_id, _ = make_plan(store.engine)
    first = store.append(plan_id, [note(1), note(2)]).event_ids[0]
    with store.engine.connect() as host, host.begin():
        host.execute(select(func.now()))  # the host's transaction has begun: now() is fixed
        assert Worker(store, [LEDGER]).drain() == 1  # the snapshot is stored meanwhile
        host.execute(update(events).where(events.c.id == first).values(payload={"n": "edited"}))
    # updated_at is the host transaction's start, older than the snapshot: the
    # cheap pass cannot tell; folding can.
    assert reconcile(store, [LEDGER]) == []
    found = reconcile(store, [LEDGER], deep=True)
    assert [(f.plan_id, f.reason) for f in found] == [
        (plan_id, "snapshot differs from a fresh fold of its events")
    ]
    assert Worker(store, [LEDGER]).drain() == 1
    assert reconcile(store, [LEDGER], deep=True) == []
    assert_snapshots_are_fresh_folds(store, [LEDGER], [plan_id])


def test_deep_reconcile_finds_a_tampered_snapshot(
    backend_url: str, store: EventStore, engine: Engine
) -> None:
    lines, plan_ids = sample_lines(3)
    import_events(store, lines, create_parents=True)
    Worker(store, [COURSE]).drain()
    tampered = plan_ids[2]
    with engine.begin() as connection:
        connection.execute(
            update(snapshots)
            .where(snapshots.c.plan_id == tampered)
            .values(state={"status": "completed"})
        )
    runner = CliRunner()
    # The quick check hashes the stored state: an edit that leaves state_hash behind
    # is found without folding.
    result = runner.invoke(main, ["reconcile", "--database-url", backend_url])
    assert result.output.splitlines() == [
        f"{tampered}: snapshot state does not match its state_hash (altered outside the library)",
        "checked 3 plans; queued 1 for the workers",
    ]
    Worker(store, [COURSE]).drain()
    # An edit that keeps state and hash consistent is found only by folding (--deep).
    forged = {"status": "completed"}
    with engine.begin() as connection:
        connection.execute(
            update(snapshots)
            .where(snapshots.c.plan_id == tampered)
            .values(state=forged, state_hash=state_hash(canonical_json(forged)))
        )
    result = runner.invoke(main, ["reconcile", "--database-url", backend_url])
    assert result.output.strip() == "checked 3 plans; queued 0 for the workers"
    result = runner.invoke(main, ["reconcile", "--deep", "--database-url", backend_url])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{tampered}: snapshot differs from a fresh fold of its events",
        "checked 3 plans; queued 1 for the workers",
    ]
    assert set(queued(store)) == {tampered}
    assert Worker(store, [COURSE]).drain() == 1
    assert_snapshots_are_fresh_folds(store, [COURSE], plan_ids)


# -- the CLI ----------------------------------------------------------------------


def test_cli_worker_once_and_reconcile_report_what_they_did(
    backend_url: str, store: EventStore, engine: Engine
) -> None:
    runner = CliRunner()
    lines, plan_ids = sample_lines(3)
    import_events(store, lines, create_parents=True)

    result = runner.invoke(main, ["worker", "--once", "--database-url", backend_url])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "folded 3 plans; queue empty"
    result = runner.invoke(main, ["worker", "--once", "--database-url", backend_url])
    assert result.stdout.strip() == "folded 0 plans; queue empty"

    result = runner.invoke(main, ["reconcile", "--database-url", backend_url])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "checked 3 plans; queued 0 for the workers"

    edited = plan_ids[1]
    _host_insert(engine, edited, T0 - timedelta(days=3650))
    result = runner.invoke(main, ["reconcile", "--database-url", backend_url])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{edited}: snapshot covers {live_count(store, edited) - 1} events but "
        f"{live_count(store, edited)} are stored at or before its position "
        "(written outside the library)",
        "checked 3 plans; queued 1 for the workers",
    ]
    result = runner.invoke(main, ["reconcile", "--database-url", backend_url, "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["plans"] == 3
    assert [(r["plan_id"], r["projection"]) for r in report["queued"]] == [
        (str(edited), COURSE.name)
    ]
    result = runner.invoke(
        main,
        ["reconcile", "--database-url", backend_url, "--format", "jsonl", "--plan", str(edited)],
    )
    assert [json.loads(line)["plan_id"] for line in result.output.splitlines()] == [str(edited)]

    result = runner.invoke(main, ["worker", "--once", "--database-url", backend_url])
    assert result.stdout.strip() == "folded 1 plan; queue empty"
    result = runner.invoke(main, ["verify", "--database-url", backend_url])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["reconcile", "--database-url", backend_url])
    assert result.output.strip() == "checked 3 plans; queued 0 for the workers"


def test_cli_worker_once_stopped_by_a_signal_does_not_claim_the_queue_is_empty(
    backend_url: str, store: EventStore, plan: Plan, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.append(plan[0], [note(1)])

    def interrupted_drain(self: Worker) -> int:
        self.stop()  # SIGTERM arriving before the first batch
        return 0

    monkeypatch.setattr(Worker, "drain", interrupted_drain)
    result = CliRunner().invoke(main, ["worker", "--once", "--database-url", backend_url])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "folded 0 plans; stopped before the queue was empty"
    assert set(queued(store)) == {plan[0]}


def test_cli_reconcile_refuses_a_plan_that_is_not_a_uuid(
    backend_url: str, store: EventStore
) -> None:
    result = CliRunner().invoke(
        main, ["reconcile", "--database-url", backend_url, "--plan", "not-a-plan"]
    )
    assert result.exit_code == 1
    assert "plan 'not-a-plan' is not a UUID" in result.output
