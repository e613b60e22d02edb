"""One lock with the host: library writes and the service's writes queue on the plan row.

The service locks a plan's ``course_designer_plans`` row ``FOR UPDATE`` before each
write; so does the library (PostgreSQL). Here the service's transactions run with
its SQL shapes on the host-schema fixture, beside library appends that use
``expected_version``, soft deletes and restores, workers and rebuilds, all as a
role that owns only the library's objects and holds what a host grants it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final
from uuid import UUID, uuid4

import psycopg
import pytest
from sqlalchemy import text

from eventsource import EventStore, migrate
from eventsource.config import make_engine
from eventsource.errors import ConcurrencyConflict, UnknownReference
from eventsource.events import NewEvent
from projections.course_designer import CourseDesignerPlanProjection
from projections.engine import ProjectionEngine
from projections.worker import Worker, reconcile
from tests.conftest import make_plan
from tests.host import (
    LOCK_PLAN,
    HostPlan,
    Upstream,
    five_lifecycles,
    grant_runtime,
    host_database,
    library_role,
)
from tests.test_schema import libpq_url

pytestmark = pytest.mark.postgres

COURSE: Final = CourseDesignerPlanProjection()
TIMEOUT: Final = 60.0
HOST_WRITERS: Final = 3
LIBRARY_WRITERS: Final = 3
WRITES_EACH: Final = 12


@dataclass
class Beside:
    """The host's database, its writer, and the library's store as its own role."""

    url: str
    role_url: str
    upstream: Upstream
    store: EventStore


@pytest.fixture
def beside() -> Iterator[Beside]:
    with host_database() as url, library_role(url) as role_url:
        engine = make_engine(role_url)
        migrate.upgrade(engine)
        grant_runtime(url, role_url)
        upstream = Upstream(url)
        store = EventStore(engine)
        try:
            yield Beside(url, role_url, upstream, store)
        finally:
            store.close()
            upstream.close()


def a_plan(beside: Beside) -> HostPlan:
    owner = beside.upstream.create_user()
    return beside.upstream.create_plan(owner, "Beside")


def host_write(conn: psycopg.Connection[Any], plan: HostPlan, pause: float = 0.0) -> int:
    """One service-style transaction: lock the plan row, look, insert, commit.

    The event records how many events the plan had when the lock was held: with
    one lock for everybody, no two events can record the same number.
    """
    with conn.transaction():
        conn.execute(LOCK_PLAN, {"plan": plan.plan_id, "user": plan.owner}).fetchone()
        (count,) = conn.execute(
            "SELECT count(*) FROM course_designer_plan_events WHERE course_designer_plan_id = %s",
            (plan.plan_id,),
        ).fetchone() or (0,)
        if pause:
            time.sleep(pause)
        Upstream.event(conn, plan.plan_id, plan.owner, "host_note", None, {"seen": count})
    return int(count)


def library_write(store: EventStore, plan: HostPlan, rng: random.Random) -> tuple[int, int]:
    """Append with the version just read as ``expected_version`` until it lands.

    Returns (the version it landed at, the conflicts on the way).
    """
    conflicts = 0
    while True:
        seen = store.version(plan.plan_id)
        # Half of them with a caller id: the non-pipelined path (idempotency lookup).
        ident = uuid4() if rng.random() < 0.5 else None
        try:
            store.append(
                plan.plan_id,
                [NewEvent("library_note", {"seen": seen}, id=ident, actor_user_id=plan.owner)],
                expected_version=seen,
            )
        except ConcurrencyConflict as conflict:
            if conflict.actual <= seen:
                raise AssertionError(f"conflict at {conflict.actual} after {seen}") from conflict
            conflicts += 1
        else:
            return seen, conflicts


@dataclass
class Run:
    errors: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def thread(self, work: Callable[[], None]) -> threading.Thread:
        def guarded() -> None:
            try:
                work()
            except BaseException as exc:
                with self.lock:
                    self.errors.append(exc)

        return threading.Thread(target=guarded, daemon=True)


def test_service_transactions_and_library_appends_share_one_lock(
    beside: Beside, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="eventsource.backend")
    plan = a_plan(beside)
    toggled = beside.store.append(plan.plan_id, [NewEvent("library_note", {"seen": 1})])
    run = Run()
    host_seen: list[int] = []
    library_seen: list[int] = []
    start = threading.Barrier(HOST_WRITERS + LIBRARY_WRITERS + 1, timeout=TIMEOUT)

    def host(seed: int) -> None:
        rng = random.Random(seed)
        with beside.upstream.connect() as conn:
            start.wait()
            for _ in range(WRITES_EACH):
                host_seen.append(host_write(conn, plan, pause=rng.random() * 0.004))

    def library(seed: int) -> None:
        rng = random.Random(seed)
        store = EventStore(make_engine(beside.role_url))
        try:
            start.wait()
            for _ in range(WRITES_EACH):
                library_seen.append(library_write(store, plan, rng)[0])
        finally:
            store.close()

    def toggler() -> None:
        store = EventStore(make_engine(beside.role_url))
        try:
            start.wait()
            for _ in range(WRITES_EACH):
                assert store.soft_delete(toggled.event_ids[0])
                assert store.restore(toggled.event_ids[0])
        finally:
            store.close()

    threads = [run.thread(partial(host, s)) for s in range(HOST_WRITERS)]
    threads += [run.thread(partial(library, 100 + s)) for s in range(LIBRARY_WRITERS)]
    threads.append(run.thread(toggler))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "a writer hung (a deadlock, or a lock never released)"
    assert run.errors == [], run.errors

    # Every writer saw a different count under the lock (no check was raced) and
    # every write is there (none lost): the counts are exactly 0 .. total - 1.
    with psycopg.connect(libpq_url(beside.url)) as conn:
        seen = [
            int(n)
            for (n,) in conn.execute(
                "SELECT (payload->>'seen')::int FROM course_designer_plan_events"
                " WHERE course_designer_plan_id = %s AND event_type IN ('host_note',"
                " 'library_note')",
                (plan.plan_id,),
            )
        ]
    total = 1 + 1 + HOST_WRITERS * WRITES_EACH + LIBRARY_WRITERS * WRITES_EACH
    assert beside.store.version(plan.plan_id) == total
    assert sorted(seen) == list(range(1, total))
    assert sorted([1, *host_seen, *library_seen]) == sorted(seen)
    assert "40P01" not in caplog.text  # no deadlock was retried away
    assert "deadlock" not in caplog.text


def test_a_library_append_waits_for_the_service_and_then_sees_its_event(beside: Beside) -> None:
    plan = a_plan(beside)
    before = beside.store.version(plan.plan_id)
    for ident in (None, uuid4()):  # the pipelined append, and the one with a caller id
        outcome: list[BaseException | None] = []

        def append(
            ident: UUID | None = ident,
            expected: int = before,
            outcome: list[BaseException | None] = outcome,
        ) -> None:
            try:
                beside.store.append(
                    plan.plan_id,
                    [NewEvent("library_note", {}, id=ident)],
                    expected_version=expected,
                )
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        with beside.upstream.connect() as conn, conn.transaction():
            conn.execute(LOCK_PLAN, {"plan": plan.plan_id, "user": plan.owner}).fetchone()
            Upstream.event(conn, plan.plan_id, plan.owner, "host_note", None, {})
            waiting = threading.Thread(target=append, daemon=True)
            waiting.start()
            waiting.join(0.5)
            assert waiting.is_alive(), "the append did not wait for the service's lock"
        waiting.join(TIMEOUT)
        (error,) = outcome
        assert isinstance(error, ConcurrencyConflict), error
        assert (error.expected, error.actual) == (before, before + 1)
        before += 1


def test_soft_delete_and_restore_wait_for_the_service(beside: Beside) -> None:
    plan = a_plan(beside)
    (event_id,) = beside.store.append(plan.plan_id, [NewEvent("library_note", {})]).event_ids
    for change in (beside.store.soft_delete, beside.store.restore):
        done = threading.Event()

        def act(change: Callable[[UUID], bool] = change, done: threading.Event = done) -> None:
            assert change(event_id)
            done.set()

        with beside.upstream.connect() as conn, conn.transaction():
            conn.execute(LOCK_PLAN, {"plan": plan.plan_id, "user": plan.owner}).fetchone()
            thread = threading.Thread(target=act, daemon=True)
            thread.start()
            assert not done.wait(0.5), "it did not wait for the service's lock"
        assert done.wait(TIMEOUT)
        thread.join(TIMEOUT)


def test_the_service_waits_for_a_library_write(beside: Beside) -> None:
    plan = a_plan(beside)
    with beside.store.write_transaction() as connection, beside.upstream.connect() as conn:
        beside.store.lock_plan(connection, plan.plan_id)
        conn.execute("SET lock_timeout = '300ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            conn.execute(LOCK_PLAN, {"plan": plan.plan_id, "user": plan.owner})
        connection.execute(text("SELECT 1"))


def test_workers_never_wait_for_the_plan_lock(beside: Beside) -> None:
    plan = a_plan(beside)
    beside.store.append(plan.plan_id, [NewEvent("library_note", {})])
    finished = threading.Event()
    folded: list[int] = []

    def drain() -> None:
        folded.append(Worker(beside.store, [COURSE]).drain())
        finished.set()

    with beside.upstream.connect() as conn, conn.transaction():
        conn.execute(LOCK_PLAN, {"plan": plan.plan_id, "user": plan.owner}).fetchone()
        worker = threading.Thread(target=drain, daemon=True)
        worker.start()
        assert finished.wait(TIMEOUT), "the worker waited for the plan row"
    assert folded == [1]


def test_a_plan_without_a_row_is_the_inserts_unknown_reference(beside: Beside) -> None:
    missing = uuid4()
    checks: tuple[dict[str, Any], ...] = ({}, {"expected_version": 2}, {"expected_version": 0})
    for kwargs in checks:
        for ident in (None, uuid4()):
            with pytest.raises(UnknownReference) as info:
                beside.store.append(missing, [NewEvent("library_note", {}, id=ident)], **kwargs)
            assert info.value.field == "course_designer_plan_id"
    with beside.store.write_transaction() as connection, pytest.raises(UnknownReference):
        beside.store.lock_plan(connection, missing)
    with beside.store.write_transaction() as connection:
        assert beside.store.lock_plan(connection, missing, missing_ok=True) is not None


def test_rebuilds_snapshots_reconcile_and_workers_work_beside_the_service(beside: Beside) -> None:
    plans = five_lifecycles(beside.upstream)
    store = beside.store
    # The service's writes bypass the change feed: reconcile finds every plan.
    findings = reconcile(store, [COURSE])
    assert {f.plan_id for f in findings} == {p.plan_id for p in plans}
    assert Worker(store, [COURSE]).drain() == len(plans)
    assert reconcile(store, [COURSE]) == []
    engine = ProjectionEngine(store)
    assert engine.replay(COURSE).rebuilt == len(plans)
    for plan in plans:
        snapshot = engine.snapshot(COURSE, plan.plan_id)
        assert snapshot.hash == engine.fold_from_scratch(COURSE, plan.plan_id).hash

    # The host removes a plan outright (its rows, then the plan row): reconcile still
    # queues it for its stale snapshot, with no plan row left to lock.
    gone = plans[0].plan_id
    with psycopg.connect(libpq_url(beside.url)) as conn:
        for table in ("course_designer_plan_events", "course_designer_plan_members"):
            conn.execute(f"DELETE FROM {table} WHERE course_designer_plan_id = %s", (gone,))  # noqa: S608
        conn.execute("DELETE FROM course_designer_plans WHERE id = %s", (gone,))
    findings = reconcile(store, [COURSE])
    assert [f.plan_id for f in findings] == [gone]
    Worker(store, [COURSE]).drain()
    assert engine.replay(COURSE, [gone]).rebuilt == 1


def test_appends_after_refused_version_checks_reuse_the_connection_cleanly(
    pg: tuple[str, EventStore],
) -> None:
    """A refused version check aborts the rest of the append's pipeline, the Parse of
    any statement the driver meant to prepare there included: the connection must
    not go on believing it prepared it (``prepared statement ... does not exist``).
    Under contention with the host's writers, refusals come in runs like these."""
    _, store = pg
    plan_id, _ = make_plan(store.engine)
    for _ in range(10):
        for _ in range(2):
            with pytest.raises(ConcurrencyConflict):
                store.append(plan_id, [NewEvent("library_note", {})], expected_version=10_000)
        store.append(plan_id, [NewEvent("library_note", {})])
    assert store.version(plan_id) == 10


def test_replay_waits_for_the_hosts_lock_on_any_plan_of_its_batch(
    pg: tuple[str, EventStore],
) -> None:
    """Replay locks a whole batch of plans in one statement: a plan the host holds
    keeps the batch (and so its snapshots and checkpoints) waiting, and the
    rebuild then sees the host's event."""
    url, store = pg
    plans = [make_plan(store.engine)[0] for _ in range(4)]
    for plan_id in plans:
        store.append(plan_id, [NewEvent("library_note", {})])
    engine = ProjectionEngine(store, snapshot_every=None)
    held = plans[2]
    finished = threading.Event()
    with psycopg.connect(libpq_url(url)) as host:
        host.execute("SELECT 1 FROM course_designer_plans WHERE id = %s FOR UPDATE", (held,))
        host.execute(
            "INSERT INTO course_designer_plan_events (course_designer_plan_id, event_type) "
            "VALUES (%s, 'host_note')",
            (held,),
        )

        def replay() -> None:
            engine.replay(COURSE, plans)
            finished.set()

        worker = threading.Thread(target=replay, daemon=True)
        worker.start()
        assert not finished.wait(0.5), "replay went past a plan the host holds"
        assert store.snapshot_row(held, COURSE.name) is None
    worker.join(timeout=30)
    assert finished.is_set()
    snapshot = store.snapshot_row(held, COURSE.name)
    assert snapshot is not None
    assert snapshot.event_count == 2
