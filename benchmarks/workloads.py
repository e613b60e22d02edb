"""The five workloads: A to D through the library and beside the floor, E by workers.

A  append: plans of 100 events, one transaction (one ``store.append``) per plan.
B  single-event transactions: one ``store.append`` per event.
C  rebuild one long plan from scratch; and the same plan loaded from its snapshot.
D  replay many plans: fold only, and ``engine.replay`` (which stores snapshots).
E  catch-up: D's plans all queued in the change feed, drained by 1 and by 2
   worker processes (``Worker.drain``) beside a single-process ``engine.replay``
   of the same plans, the yardstick here (there is no raw counterpart). SQLite has
   one writer, so it runs 1 worker only. Worker start-up is not timed (see
   :mod:`benchmarks.catchup`); the CPU column of a worker row is the workers' own.

The floor (:mod:`benchmarks.raw`) writes with plain driver calls and reads with
fetch, orjson and a count fold, so C and D's library/floor ratios include the
course-designer reducer's cost, and carry no target (the peer workloads in
:mod:`benchmarks.peer` fold the same trivial reducer on every side).

Every run is checked after the clock stops: the table holds the rows it should,
every library fold ends in the same state hash, and the floor saw the same number
of live events, ending at the same event, as the library. After E's runs the
queue is empty, every plan has exactly one fresh snapshot whose hash is a fresh
fold's, and no plan was folded by two workers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

from sqlalchemy import func, select

from eventsource.tables import plan_changes, snapshots
from projections.course_designer import CourseDesignerPlanProjection

from .catchup import DrainReport, WorkerFailed, WorkerProcesses
from .data import Dataset
from .library import EventStore, LoadedState, ProjectionEngine
from .measure import Result, Variant, measure
from .raw import FloorFold, PostgresRaw, RawDriver

__all__ = ["WORKLOADS", "Context", "Workload"]

CATCHUP_BATCH_SIZE: Final = 20
"""E: plans a worker claims per transaction (the ``eventsource worker`` default)."""
RATIO_TARGET: Final = 0.8
SNAPSHOT_TARGET: Final = 50.0
SNAPSHOT_TARGET_EVENTS: Final = 10_000
WARMUP_PLANS: Final = 5


@dataclass
class Context:
    backend: str
    store: EventStore
    engine: ProjectionEngine
    projection: CourseDesignerPlanProjection
    raw: RawDriver
    data: Dataset
    repeat: int
    progress: Callable[[str], None]

    def target(self) -> float | None:
        """The library/raw targets hold on PostgreSQL; SQLite is reported only."""
        return RATIO_TARGET if self.backend == "postgresql" else None

    def measure(
        self, workload: str, title: str, events: int, variants: Sequence[Variant], repeat: int = 0
    ) -> dict[str, Result]:
        return measure(
            self.backend, workload, title, events, variants, repeat or self.repeat, self.progress
        )


def _row_count(ctx: Context, expected: int) -> Callable[[], str | None]:
    def check() -> str | None:
        found = ctx.raw.count_events()
        return None if found == expected else f"expected {expected} rows, found {found}"

    return check


# -- A: batched appends --------------------------------------------------------


def append_batches(ctx: Context) -> list[Result]:
    store, raw, batches = ctx.store, ctx.raw, ctx.data.batches
    events = ctx.data.batch_event_count
    title = f"append {len(batches)} plans x {ctx.data.sizes.batch_events} events, 1 tx/plan"

    def library(chosen: Sequence[tuple[UUID, Any]] = batches) -> None:
        for plan_id, plan_events in chosen:
            store.append(plan_id, plan_events)

    warm = batches[:WARMUP_PLANS]
    on_pg = ctx.backend == "postgresql"
    raw_name = "raw psycopg executemany (pipeline)" if on_pg else "raw sqlite3 executemany"
    variants = [
        Variant("library store.append", library),
        Variant(raw_name, lambda: raw.append_batches(batches)),
    ]
    warmups: list[Callable[[], object]] = [
        lambda: library(warm),
        lambda: raw.append_batches(warm),
    ]
    if isinstance(raw, PostgresRaw):
        pg = raw
        variants.append(Variant("raw psycopg COPY", lambda: pg.append_copy(batches)))
        warmups.append(lambda: pg.append_copy(warm))
    for warmup in warmups:
        raw.truncate()
        warmup()
    variants = [
        Variant(v.name, v.run, setup=raw.truncate, check=_row_count(ctx, events)) for v in variants
    ]
    results = ctx.measure("A", title, events, variants)
    lib, reference = results["library store.append"], results[raw_name]
    lib.compare(reference, ctx.target())
    if "raw psycopg COPY" in results:
        copy = results["raw psycopg COPY"]
        lib.note = f"library/COPY {copy.best / lib.best:.2f}"
        copy.note = f"executemany/COPY {copy.best / reference.best:.2f}"
    return list(results.values())


# -- B: single-event transactions ----------------------------------------------


def append_singles(ctx: Context) -> list[Result]:
    store, raw, singles = ctx.store, ctx.raw, ctx.data.singles
    title = f"{len(singles)} single-event transactions"

    def library(chosen: Sequence[tuple[UUID, Any]] = singles) -> None:
        for plan_id, event in chosen:
            store.append(plan_id, [event])

    raw_name = "raw INSERT + COMMIT per event"
    warmups: tuple[Callable[[], object], ...] = (
        lambda: library(singles[:20]),
        lambda: raw.append_singles(singles[:20]),
    )
    for warmup in warmups:
        raw.truncate()
        warmup()
    check = _row_count(ctx, len(singles))
    variants = [
        Variant("library store.append", library, setup=raw.truncate, check=check),
        Variant(raw_name, lambda: raw.append_singles(singles), setup=raw.truncate, check=check),
    ]
    results = ctx.measure("B", title, len(singles), variants)
    results["library store.append"].compare(results[raw_name])
    return list(results.values())


# -- C: one long plan ---------------------------------------------------------------


FLOOR_PROJECTION: Final = "benchmark_floor"
"""The projection name of the snapshot rows the floor's replay writes."""


def _floor_problem(name: str, got: FloorFold, expected: tuple[int, UUID | None]) -> str | None:
    """Whether the floor saw the events the library folded (count and the last one)."""
    state, last = got
    count, last_id = expected
    if state["count"] != count or last != (None if last_id is None else str(last_id)):
        return (
            f"{name}: folded {state['count']} events ending at {last}, "
            f"expected {count} at {last_id}"
        )
    return None


def _covered(loaded: LoadedState[Any]) -> tuple[int, UUID | None]:
    return loaded.event_count, None if loaded.position is None else loaded.position.id


def rebuild_long_plan(ctx: Context) -> list[Result]:
    engine, raw, projection = ctx.engine, ctx.raw, ctx.projection
    plan_id, rows = ctx.data.long_plan_id, ctx.data.long_rows
    raw.truncate()
    raw.load_rows(rows)
    raw.analyze()
    title = f"rebuild 1 plan of {len(rows)} events"
    hashes: dict[str, str] = {}
    covered: dict[str, tuple[int, UUID | None]] = {}
    floors: list[FloorFold] = []

    def library() -> None:
        loaded = engine.fold_from_scratch(projection, plan_id)
        hashes["library"], covered["library"] = loaded.hash, _covered(loaded)

    def floor() -> None:
        floors.append(raw.read_fold(plan_id, projection.tie_rank))

    def library_ok() -> str | None:
        if covered["library"][0] != len(rows):
            return f"library folded {covered['library'][0]} events, expected {len(rows)}"
        return None

    library()
    reference = covered["library"]
    floor()
    if (problem := _floor_problem("floor", floors[-1], reference)) is not None:
        raise RuntimeError(problem)
    raw_name = "floor: fetch + orjson + count"
    results = ctx.measure(
        "C",
        title,
        len(rows),
        [
            Variant("library fold_from_scratch", library, check=library_ok),
            Variant(raw_name, floor, check=lambda: _floor_problem(raw_name, floors[-1], reference)),
        ],
    )
    full = results["library fold_from_scratch"].compare(results[raw_name])
    full.note = "library folds the course-designer reducer, the floor only counts"

    engine.snapshot(projection, plan_id)
    seen: list[tuple[bool, int, str]] = []

    def load() -> None:
        loaded = engine.load(projection, plan_id)
        seen.append((loaded.from_snapshot, loaded.tail, loaded.hash))

    def from_snapshot() -> str | None:
        used, tail, digest = seen[-1]
        if not used or tail:
            return f"load did not come from the snapshot (from_snapshot={used}, tail={tail})"
        if digest != hashes["library"]:
            return "snapshot load's hash differs from the full fold's"
        return None

    load()
    snap = ctx.measure(
        "C",
        f"load that plan from its snapshot ({ctx.data.sizes.snapshot_loads} runs)",
        len(rows),
        [Variant("library load (snapshot)", load, check=from_snapshot)],
        repeat=ctx.data.sizes.snapshot_loads,
    )["library load (snapshot)"]
    # The target is set for the full run's 10,000-event plan: a snapshot load costs
    # about the same at any length, a full fold grows with it.
    sized = len(rows) >= SNAPSHOT_TARGET_EVENTS
    snap.compare(full, SNAPSHOT_TARGET if sized else None)
    snap.baseline = "speed-up over library fold_from_scratch"
    if not sized:
        snap.note = f"target applies to a {SNAPSHOT_TARGET_EVENTS}-event plan (full run)"
    return [full, results[raw_name], snap]


# -- D: replay many plans -----------------------------------------------------------


def replay_plans(ctx: Context) -> list[Result]:
    engine, raw, projection = ctx.engine, ctx.raw, ctx.projection
    plan_ids, rows = ctx.data.replay_plan_ids, ctx.data.replay_rows
    raw.truncate()
    raw.load_rows(rows)
    raw.analyze()
    live = ctx.data.replay_live_count
    title = f"replay {len(plan_ids)} plans, {live} live of {len(rows)} events"
    ranks = projection.tie_rank
    folded = {p: engine.fold_from_scratch(projection, p) for p in plan_ids}
    reference = {p: loaded.hash for p, loaded in folded.items()}
    expected = {p: _covered(loaded) for p, loaded in folded.items()}
    last_hashes: list[dict[UUID, str]] = []
    last_floor: dict[str, dict[UUID, FloorFold]] = {}

    def library_fold() -> None:
        last_hashes.append({p: engine.fold_from_scratch(projection, p).hash for p in plan_ids})

    def floor_fold() -> None:
        last_floor["fold"] = {p: raw.read_fold(p, ranks) for p in plan_ids}

    def library_replay() -> None:
        engine.replay(projection, plan_ids, run="benchmark", restart=True)

    def floor_replay() -> None:
        last_floor["replay"] = {
            p: raw.fold_and_snapshot(p, ranks, FLOOR_PROJECTION) for p in plan_ids
        }

    def library_fold_ok() -> str | None:
        return None if last_hashes[-1] == reference else "library fold: state hashes differ"

    def library_replay_ok() -> str | None:
        stored = _stored_hashes(ctx, plan_ids)
        return None if stored == reference else "replayed snapshots differ from the fold"

    def floor_ok(key: str) -> Callable[[], str | None]:
        def check() -> str | None:
            got = last_floor[key]
            wrong = [p for p in plan_ids if _floor_problem(key, got[p], expected[p]) is not None]
            return f"floor {key}: {len(wrong)} plans differ from the library's" if wrong else None

        return check

    clear = lambda: raw.truncate(events=False)  # noqa: E731
    names = (
        "library fold_from_scratch per plan",
        "floor: fetch + orjson + count per plan",
        "library engine.replay (stores snapshots)",
        "floor: fold + snapshot upsert per plan",
    )
    variants = [
        Variant(names[0], library_fold, check=library_fold_ok),
        Variant(names[1], floor_fold, check=floor_ok("fold")),
        Variant(names[2], library_replay, setup=clear, check=library_replay_ok),
        Variant(names[3], floor_replay, setup=clear, check=floor_ok("replay")),
    ]
    results = ctx.measure("D", title, live, variants)
    results[names[0]].compare(results[names[1]])
    results[names[2]].compare(results[names[3]])
    replay, floor_result = results[names[2]], results[names[1]]
    replay.note = f"library replay/floor fold {floor_result.best / replay.best:.2f}"
    results[names[0]].note = "library folds the course-designer reducer, the floor only counts"
    return [results[name] for name in names]


def _stored_hashes(ctx: Context, plan_ids: Sequence[UUID]) -> dict[UUID, str]:
    found: dict[UUID, str] = {}
    for plan_id in plan_ids:
        snapshot = ctx.store.snapshot_row(plan_id, ctx.projection.name)
        if snapshot is not None:
            found[plan_id] = snapshot.state_hash
    return found


# -- E: catch-up by worker processes ---------------------------------------------------


@dataclass
class _CatchUpRun:
    """One timed drain: what the workers reported, or what went wrong."""

    startup: float
    drained: float = float("nan")
    """From release until the last worker reported (the timed run adds their exit)."""
    reports: list[DrainReport] = field(default_factory=list)
    error: str | None = None


def catch_up(ctx: Context) -> list[Result]:
    store, engine, raw, projection = ctx.store, ctx.engine, ctx.raw, ctx.projection
    plan_ids, rows = ctx.data.replay_plan_ids, ctx.data.replay_rows
    raw.truncate()
    raw.load_rows(rows)
    raw.analyze()
    live = ctx.data.replay_live_count
    url = store.engine.url.render_as_string(hide_password=False)
    counts = (1, 2) if ctx.backend == "postgresql" else (1,)
    title = (
        f"catch-up: {len(plan_ids)} queued plans, {live} live of {len(rows)} events, "
        f"batch {CATCHUP_BATCH_SIZE}"
    )
    ctx.progress(f"{ctx.backend} E: folding every plan once for the reference hashes")
    reference = {p: engine.fold_from_scratch(projection, p).hash for p in plan_ids}

    def clear() -> None:
        raw.truncate(events=False)  # snapshots, change feed, replay marks

    def queue_every_plan() -> None:
        """Untimed: no snapshots, and every plan queued as a write would queue it."""
        clear()
        with store.write_transaction() as connection:
            now = datetime.now(UTC)
            for plan_id in plan_ids:
                store.record_change(store.raw(connection), plan_id, now)
        queued = _queued(ctx)
        if queued != len(plan_ids):
            raise RuntimeError(f"queued {queued} plans, expected {len(plan_ids)}")

    def library_replay() -> None:
        engine.replay(projection, plan_ids, run="benchmark", restart=True)

    runs: dict[int, list[_CatchUpRun]] = {n: [] for n in counts}

    def workers(n: int) -> Variant:
        held: list[WorkerProcesses] = []

        def setup() -> None:
            queue_every_plan()
            processes = WorkerProcesses(url, n, plan_ids[0], CATCHUP_BATCH_SIZE)
            held.append(processes)
            try:
                runs[n].append(_CatchUpRun(processes.start()))
            except WorkerFailed as exc:
                runs[n].append(_CatchUpRun(float("nan"), error=str(exc)))

        def run() -> None:
            processes, current = held[-1], runs[n][-1]
            if current.error is not None:
                return
            try:
                current.reports = processes.release_and_wait()
                current.drained = processes.drained_seconds
            except WorkerFailed as exc:
                current.error = str(exc)

        def check() -> str | None:
            held.pop().close()
            current = runs[n][-1]
            if current.error is not None:
                return current.error
            folded = Counter(p for r in current.reports for p in r.plans)
            twice = sum(1 for times in folded.values() if times > 1)
            if twice:
                return f"{twice} plans folded by more than one worker"
            if set(folded) != set(plan_ids):
                return f"workers folded {len(folded)} plans, expected {len(plan_ids)}"
            return _catch_up_problem(ctx, reference)

        name = "1 worker process" if n == 1 else f"{n} worker processes at once"
        return Variant(f"{name} (Worker.drain)", run, setup=setup, check=check)

    replay_name = "library engine.replay, 1 process"
    variants = [
        Variant(
            replay_name,
            library_replay,
            setup=clear,
            check=lambda: _catch_up_problem(ctx, reference),
        ),
        *(workers(n) for n in counts),
    ]
    results = ctx.measure("E", title, live, variants)
    replay = results[replay_name]
    out = [replay]
    one_worker: Result | None = None
    for n, variant in zip(counts, variants[1:], strict=True):
        result = results[variant.name]
        done = runs[n]
        # The workers' own CPU time (this process only waits for them).
        result.cpu_seconds = [sum(r.cpu_seconds for r in run.reports) for run in done]
        result.compare(replay)
        best = done[min(range(len(done)), key=lambda i: result.seconds[i])]
        notes = [f"start-up {best.startup:.2f} s untimed"]
        if best.reports:
            drains = "/".join(f"{r.seconds:.2f}" for r in best.reports)
            notes.append(f"last report {best.drained:.2f} s, own drain {drains} s")
        if n > 1:
            splits = ", ".join(
                "/".join(str(len(r.plans)) for r in run.reports) for run in done if run.reports
            )
            batches = "/".join(str(r.batches) for r in best.reports)
            notes.append(f"plans split {splits} (best run batches {batches})")
            if one_worker is not None:
                notes.append(f"x{one_worker.best / result.best:.2f} of 1 worker")
        elif ctx.backend == "sqlite":
            notes.append("SQLite has one writer: 1 worker only")
        result.note = "; ".join(notes)
        if n == 1:
            one_worker = result
        out.append(result)
    return out


def _queued(ctx: Context) -> int:
    with ctx.store.read_transaction() as connection:
        return int(connection.execute(select(func.count()).select_from(plan_changes)).scalar_one())


def _catch_up_problem(ctx: Context, reference: dict[UUID, str]) -> str | None:
    """What is wrong after a catch-up: queue left, snapshots missing, extra or different."""
    queued = _queued(ctx)
    if queued:
        return f"{queued} plans still queued"
    with ctx.store.read_transaction() as connection:
        stored = connection.execute(
            select(snapshots.c.plan_id, snapshots.c.state_hash, snapshots.c.stale).where(
                snapshots.c.projection == ctx.projection.name
            )
        ).all()
    per_plan = Counter(plan_id for plan_id, _, _ in stored)
    if set(per_plan) != set(reference) or any(n != 1 for n in per_plan.values()):
        return f"{len(stored)} snapshots of {len(per_plan)} plans, expected one per plan"
    differ = sum(1 for plan_id, digest, _ in stored if digest != reference[plan_id])
    stale = sum(1 for _, _, is_stale in stored if is_stale)
    if differ or stale:
        return f"{differ} snapshots differ from a fresh fold, {stale} stale"
    return None


@dataclass(frozen=True)
class Workload:
    key: str
    name: str
    run: Callable[[Context], list[Result]]


WORKLOADS: Final = (
    Workload("A", "append", append_batches),
    Workload("B", "single", append_singles),
    Workload("C", "rebuild", rebuild_long_plan),
    Workload("D", "replay", replay_plans),
    Workload("E", "catchup", catch_up),
)
