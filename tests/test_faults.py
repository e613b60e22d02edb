"""Faults, with real processes on a real PostgreSQL.

- Four writer processes append 20,000 events to 200 overlapping plans while two
  worker processes fold them: every event is stored exactly once and every
  snapshot equals a fresh fold.
- A worker killed with SIGKILL in the middle of a batch: its claims are released,
  nothing it folded was committed, and another worker folds every plan once.
- PostgreSQL stopped and started while a replay and a worker run: both reconnect
  and finish; while it is down, a worker out of retries and the CLI say so clearly.
- Serialization failures and deadlocks, provoked on purpose, are retried.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import Connection

from eventsource import EventStore, WriteNotice
from eventsource.backend import with_retries
from eventsource.errors import EventSourceError, StoreUnavailable, TransientError
from eventsource.tables import events, plan_changes, replay_progress, snapshots
from eventsource.transfer import import_events
from projections.engine import ProjectionEngine
from projections.worker import Worker
from tests.conftest import make_plan
from tests.test_worker import (
    COURSE,
    LEDGER,
    ROOT,
    assert_snapshots_are_fresh_folds,
    expected_states,
    note,
    queued,
    read_until,
    sample_lines,
    start_script,
    subprocess_env,
    wait_until,
)

PG_CLUSTER = ("pg_ctlcluster", "--skip-systemctl-redirect", "15", "main")


def count_rows(store: EventStore, table: Any) -> int:
    with store.read_transaction() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def unclaimed(store: EventStore) -> int:
    """Queued plans no transaction holds a claim on."""
    with store.engine.connect() as connection, connection.begin():
        rows = connection.execute(
            select(plan_changes.c.plan_id).with_for_update(skip_locked=True)
        ).all()
        return len(rows)


def finish(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- concurrent writers and workers -------------------------------------------------

WRITER = """
    import random, sys
    from datetime import UTC, datetime, timedelta
    from uuid import UUID
    from eventsource.events import NewEvent
    from eventsource import EventStore

    url, index, plans_file, total, out = sys.argv[1:]
    index, total = int(index), int(total)
    plans = [UUID(line) for line in open(plans_file).read().split()]
    rng = random.Random(index)
    store = EventStore.from_url(url)
    written, mine, deleted = [], [], []
    past = datetime(2025, 1, 1, tzinfo=UTC)
    while len(written) < total:
        size = min(rng.randint(1, 20), total - len(written))
        batch = [
            NewEvent(
                "note_added",
                {"writer": index, "n": len(written) + k},
                # One event in five is a backfill into the plan's past.
                occurred_at=past + timedelta(seconds=rng.randrange(10**7))
                if rng.random() < 0.2
                else None,
            )
            for k in range(size)
        ]
        result = store.append(rng.choice(plans), batch)
        assert result.appended == size, result
        written.extend(result.event_ids)
        if rng.random() < 0.05:
            victim = rng.choice(result.event_ids)
            assert store.soft_delete(victim)
            deleted.append(victim)
        if deleted and rng.random() < 0.02:
            assert store.restore(deleted.pop(rng.randrange(len(deleted))))
    with open(out, "w") as handle:
        handle.write("\\n".join(map(str, written)))
    print(f"wrote {len(written)}", flush=True)
"""

WORKER = """
    import sys
    from eventsource import EventStore
    from projections.worker import Worker
    from tests.test_worker import LEDGER

    worker = Worker(EventStore.from_url(sys.argv[1]), [LEDGER], batch_size=int(sys.argv[2]),
                    poll_interval=0.5)
    worker.install_signal_handlers()
    print("ready", flush=True)
    worker.run_forever()
    print(f"folded {worker.stats.plans} in {worker.stats.batches} batches", flush=True)
"""


@pytest.mark.slow
@pytest.mark.postgres
def test_four_writers_and_two_workers_store_every_event_once_and_fold_it_once(
    pg: tuple[str, EventStore], tmp_path: Path
) -> None:
    url, store = pg
    plan_ids = [make_plan(store.engine)[0] for _ in range(200)]
    plans_file = tmp_path / "plans.txt"
    plans_file.write_text("\n".join(map(str, plan_ids)))

    workers = [start_script(WORKER, url, size) for size in ("5", "8")]
    writers: list[subprocess.Popen[str]] = []
    try:
        for worker in workers:
            read_until(worker.stdout, lambda line: line.startswith("ready"))
        writers = [
            start_script(WRITER, url, str(i), str(plans_file), "5000", str(tmp_path / f"w{i}"))
            for i in range(4)
        ]
        for writer in writers:
            out, err = finish(writer, timeout=150)
            assert writer.returncode == 0, err
            assert out.strip() == "wrote 5000"
        wait_until(lambda: not queued(store), timeout=60, interval=0.1)
        folded = []
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
            out, err = finish(worker, timeout=30)
            assert worker.returncode == 0, err
            assert "Traceback" not in err
            folded.append(int(out.split("folded ")[1].split()[0]))
    finally:
        for proc in [*workers, *writers]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    written = [UUID(line) for i in range(4) for line in (tmp_path / f"w{i}").read_text().split()]
    assert len(written) == 20_000
    with store.read_transaction() as connection:
        stored = list(connection.execute(select(events.c.id)).scalars())
    assert len(stored) == 20_000
    assert set(stored) == set(written), "every event stored exactly once"
    assert all(n > 0 for n in folded), folded
    assert queued(store) == {}
    assert_snapshots_are_fresh_folds(store, [LEDGER], plan_ids)


# -- a worker killed mid-batch -----------------------------------------------------

HOLDING_WORKER = """
    import sys, time
    from eventsource import EventStore
    from projections.course_designer import CourseDesignerPlanProjection
    from projections.worker import Worker

    folded = []

    def on_plan(plan_id):
        folded.append(plan_id)
        print(f"folded {plan_id}", flush=True)
        if len(folded) == 3:
            print("holding", flush=True)
            time.sleep(300)  # mid-transaction, claims held: SIGKILL lands here

    store = EventStore.from_url(sys.argv[1])
    Worker(store, [CourseDesignerPlanProjection()], batch_size=10, on_plan=on_plan).drain()
"""


@pytest.mark.slow
@pytest.mark.postgres
def test_a_worker_killed_mid_batch_releases_its_claims_and_another_folds_each_plan_once(
    pg: tuple[str, EventStore],
) -> None:
    url, store = pg
    lines, plan_ids = sample_lines(30)
    import_events(store, lines, create_parents=True)
    assert len(queued(store)) == 30

    victim = start_script(HOLDING_WORKER, url)
    try:
        read_until(victim.stdout, lambda line: line.strip() == "holding")
        assert unclaimed(store) == 20, "the victim holds its batch of 10 claims"
        assert count_rows(store, snapshots) == 0, "its folds are not committed"
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    assert victim.returncode == -signal.SIGKILL

    # The server notices the dead client, rolls its transaction back, and the
    # claims are free again; nothing the victim folded survives.
    wait_until(lambda: unclaimed(store) == 30, timeout=10)
    assert count_rows(store, snapshots) == 0

    other = subprocess.run(
        [sys.executable, "-m", "eventsource", "worker", "--once", "--database-url", url],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip() == "folded 30 plans; queue empty"
    assert queued(store) == {}
    assert_snapshots_are_fresh_folds(store, [COURSE], plan_ids)
    expected = expected_states()
    engine = ProjectionEngine(store, snapshot_every=None)
    for plan_id in plan_ids:
        loaded = engine.load(COURSE, plan_id)
        assert loaded.from_snapshot
        assert loaded.tail == 0
        assert loaded.json == expected[str(plan_id)]


# -- PostgreSQL restarted under a replay and a worker -----------------------------

SLOW_WORKER = """
    import logging, sys, time
    from eventsource import EventStore
    from projections.course_designer import CourseDesignerPlanProjection
    from projections.worker import Worker

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    def on_plan(plan_id):
        print(f"folded {plan_id}", flush=True)
        time.sleep(0.02)

    store = EventStore.from_url(sys.argv[1])
    worker = Worker(store, [CourseDesignerPlanProjection()], batch_size=5, on_plan=on_plan)
    print(f"done {worker.drain()}", flush=True)
"""

SLOW_REPLAY = """
    import logging, sys, time
    from eventsource import EventStore
    from projections.course_designer import CourseDesignerPlanProjection
    from projections.engine import ProjectionEngine

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    def progress(n):
        print("rebuilt", flush=True)
        time.sleep(0.02)

    store = EventStore.from_url(sys.argv[1])
    plans = list(store.plan_ids())
    report = ProjectionEngine(store).replay(CourseDesignerPlanProjection(), plans,
                                            progress=progress, batch_size=1)
    print(f"done {report.rebuilt}", flush=True)
"""


def cluster(action: str) -> None:
    subprocess.run(
        [*PG_CLUSTER, action, *(["-m", "fast"] if action == "stop" else [])],
        check=True,
        capture_output=True,
        timeout=60,
    )


def cluster_is_up() -> bool:
    probe = subprocess.run(
        ["pg_isready", "-h", "127.0.0.1", "-p", "5432"], capture_output=True, check=False
    )
    return probe.returncode == 0


RESTART_ALLOWED = os.environ.get("EVENTSOURCE_ALLOW_SERVER_RESTART") == "1"


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(
    not RESTART_ALLOWED,
    reason="restarts the machine's PostgreSQL; set EVENTSOURCE_ALLOW_SERVER_RESTART=1 to run it",
)
def test_postgres_restart_under_a_replay_and_a_worker_both_reconnect_and_finish(
    pg: tuple[str, EventStore],
) -> None:
    url, store = pg
    lines, plan_ids = sample_lines(100)
    import_events(store, lines, create_parents=True)

    worker = start_script(SLOW_WORKER, url)
    replay = start_script(SLOW_REPLAY, url)
    down_worker_error: str | None = None
    try:
        read_until(worker.stdout, lambda line: line.startswith("folded"), timeout=30)
        progress = read_until(replay.stdout, lambda line: line.startswith("rebuilt"), timeout=30)
        assert progress
        try:
            cluster("stop")
            # While it is down: a worker out of retries, and the CLI, say so clearly.
            with pytest.raises(StoreUnavailable) as down:
                Worker(store, [COURSE], retry_attempts=3).drain()
            down_worker_error = str(down.value)
            cli = subprocess.run(
                [sys.executable, "-m", "eventsource", "worker", "--once", "--database-url", url],
                cwd=ROOT,
                env=subprocess_env(),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            cluster("start")
        assert cluster_is_up()
        worker_out, worker_err = finish(worker, timeout=90)
        replay_out, replay_err = finish(replay, timeout=90)
    finally:
        if not cluster_is_up():
            cluster("start")
        for proc in (worker, replay):
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    assert "gave up after 3 attempts" in (down_worker_error or "")
    assert "check that the database is running" in (down_worker_error or "")
    assert cli.returncode == 1
    assert "Error: cannot connect to" in cli.stderr  # the probe, with the driver's reason
    assert "Traceback" not in cli.stderr

    assert worker.returncode == 0, worker_err
    assert replay.returncode == 0, replay_err
    assert "retrying in" in worker_err, "the worker met the outage and retried"
    assert "retrying in" in replay_err, "the replay met the outage and retried"
    assert replay_out.splitlines()[-1] == "done 100"
    assert worker_out.splitlines()[-1].startswith("done ")
    assert "Traceback" not in worker_err + replay_err

    store.engine.dispose()  # connections from before the restart are gone
    assert queued(store) == {}
    assert count_rows(store, replay_progress) == 0, "the finished run forgot its marks"
    assert_snapshots_are_fresh_folds(store, [COURSE], plan_ids)
    expected = expected_states()
    engine = ProjectionEngine(store, snapshot_every=None)
    assert all(engine.load(COURSE, p).json == expected[str(p)] for p in plan_ids)


# -- serialization failures and deadlocks are retried ------------------------------


@pytest.fixture
def counters(pg: tuple[str, EventStore]) -> Engine:
    _, store = pg
    with store.engine.begin() as connection:
        connection.execute(text("CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL)"))
        connection.execute(text("INSERT INTO counters VALUES (1, 0), (2, 0)"))
    return store.engine


def counter_values(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return list(connection.execute(text("SELECT n FROM counters ORDER BY id")).scalars())


@pytest.mark.postgres
def test_a_serialization_failure_is_retried_and_the_rerun_succeeds(counters: Engine) -> None:
    engine = counters
    attempts = 0
    retried: list[EventSourceError] = []

    def increment() -> int:
        nonlocal attempts
        attempts += 1
        with engine.connect() as connection:
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                seen = int(connection.execute(text("SELECT n FROM counters WHERE id = 1")).one()[0])
                if attempts == 1:
                    # Another transaction changes the row after our snapshot was taken.
                    with engine.begin() as other:
                        other.execute(text("UPDATE counters SET n = n + 100 WHERE id = 1"))
                connection.execute(text("UPDATE counters SET n = :n WHERE id = 1"), {"n": seen + 1})
        return seen

    assert with_retries(increment, on_retry=lambda _, exc: retried.append(exc)) == 100
    assert attempts == 2
    assert [type(e) for e in retried] == [TransientError]
    assert "40001" in str(retried[0])
    assert counter_values(engine) == [101, 0]


@pytest.mark.postgres
def test_a_deadlock_is_retried_and_both_transactions_complete(counters: Engine) -> None:
    engine = counters
    barrier = threading.Barrier(2, timeout=10)
    attempts = {"a": 0, "b": 0}
    retried: list[EventSourceError] = []
    failures: list[BaseException] = []

    def cross(label: str, first: int, second: int) -> None:
        attempts[label] += 1
        with engine.begin() as connection:
            connection.execute(text("SET LOCAL deadlock_timeout = '50ms'"))
            bump(connection, first)
            if attempts[label] == 1:
                barrier.wait()  # both hold their first row: a lock cycle follows
            bump(connection, second)

    def run(label: str, first: int, second: int) -> None:
        try:
            with_retries(
                lambda: cross(label, first, second),
                on_retry=lambda _, exc: retried.append(exc),
            )
        except BaseException as exc:
            failures.append(exc)

    threads = [
        threading.Thread(target=run, args=("a", 1, 2)),
        threading.Thread(target=run, args=("b", 2, 1)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert sorted(attempts.values()) == [1, 2], "exactly one of the two was the victim"
    assert len(retried) == 1
    assert "40P01" in str(retried[0])
    assert counter_values(engine) == [2, 2]


def bump(connection: Connection, row: int) -> None:
    connection.execute(text("UPDATE counters SET n = n + 1 WHERE id = :id"), {"id": row})


class ConflictOnce:
    """A write hook that makes the server raise ``sqlstate`` in the first write only."""

    def __init__(self, sqlstate: str) -> None:
        self.sqlstate = sqlstate
        self.calls = 0

    def after_write(self, store: EventStore, connection: Connection, notice: WriteNotice) -> None:
        self.calls += 1
        if self.calls == 1:
            connection.execute(
                text(
                    "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '"
                    + self.sqlstate
                    + "'; END $$"
                )
            )


@pytest.mark.postgres
@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
def test_store_writes_rerun_after_a_conflict_and_store_once(
    pg: tuple[str, EventStore], sqlstate: str
) -> None:
    _, store = pg
    plan_id, _ = make_plan(store.engine)
    first = store.append(plan_id, [note(1)])
    hook = ConflictOnce(sqlstate)
    store.hooks.append(hook)
    result = store.append(plan_id, [note(2), note(3)])
    assert hook.calls == 2, "the append ran twice"
    assert result.appended == 2
    assert store.version(plan_id) == 3
    assert queued(store) == {plan_id: 2}, "queued once per committed write"

    hook.calls = 0
    assert store.soft_delete(first.event_ids[0])
    assert hook.calls == 2
    assert [e.payload for e in store.read(plan_id)] == [{"n": 2}, {"n": 3}]
    assert queued(store) == {plan_id: 3}


@pytest.mark.postgres
def test_a_conflict_that_never_clears_surfaces_after_bounded_retries(
    pg: tuple[str, EventStore],
) -> None:
    _, store = pg
    calls = 0

    def always_conflicts() -> None:
        nonlocal calls
        calls += 1
        with store.engine.begin() as connection:
            connection.execute(
                text("DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40001'; END $$")
            )

    started = time.monotonic()
    with pytest.raises(TransientError, match="40001"):
        with_retries(always_conflicts, attempts=4, first_delay=0.01)
    assert calls == 4
    assert time.monotonic() - started < 5
