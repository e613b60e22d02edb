"""The four workloads, each timed through the library and through the raw driver.

A  append: plans of 100 events, one transaction (one ``store.append``) per plan.
B  single-event transactions: one ``store.append`` per event.
C  rebuild one long plan from scratch; and the same plan loaded from its snapshot.
D  replay many plans: fold only, and ``engine.replay`` (which stores snapshots).

Every run is checked after the clock stops: the table holds the rows it should,
and every fold, library or raw, ends in the same state hash.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

from eventsource.store import EventStore
from projections.course_designer import CourseDesignerPlanProjection
from projections.engine import ProjectionEngine

from .data import Dataset
from .measure import Result, Variant, run_interleaved
from .raw import PostgresRaw, RawDriver, fold_plan

__all__ = ["WORKLOADS", "Context", "Workload"]

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
        label = f"{self.backend} {workload}"
        timed = run_interleaved(variants, repeat or self.repeat, self.progress, label)
        return {
            name: Result(
                self.backend, workload, title, name, events, seconds, cpu, problems=problems
            )
            for name, (seconds, cpu, problems) in timed.items()
        }


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


def rebuild_long_plan(ctx: Context) -> list[Result]:
    engine, raw, projection = ctx.engine, ctx.raw, ctx.projection
    plan_id, rows = ctx.data.long_plan_id, ctx.data.long_rows
    raw.truncate()
    raw.load_rows(rows)
    raw.analyze()
    title = f"rebuild 1 plan of {len(rows)} events"
    hashes: dict[str, str] = {}
    counts: dict[str, int] = {}

    def library() -> None:
        loaded = engine.fold_from_scratch(projection, plan_id)
        hashes["library"], counts["library"] = loaded.hash, loaded.event_count

    def by_hand() -> None:
        folded = fold_plan(projection, plan_id, raw.read_plan(plan_id, projection))
        hashes["raw"], counts["raw"] = folded.hash, folded.event_count

    def agree() -> str | None:
        if set(hashes) != {"library", "raw"}:
            return None  # the other variant has not run yet
        if hashes["library"] != hashes["raw"]:
            return f"state hash differs: library {hashes['library']}, raw {hashes['raw']}"
        if counts["library"] != len(rows) or counts["raw"] != len(rows):
            return f"folded {counts} events, expected {len(rows)}"
        return None

    library()
    by_hand()
    raw_name = "raw read + orjson + fold"
    results = ctx.measure(
        "C",
        title,
        len(rows),
        [Variant("library fold_from_scratch", library, check=agree), Variant(raw_name, by_hand)],
    )
    full = results["library fold_from_scratch"].compare(results[raw_name], ctx.target())

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
    reference: dict[UUID, str] = {}
    last: dict[str, dict[UUID, str]] = {}

    def library_fold() -> None:
        last["library fold"] = {p: engine.fold_from_scratch(projection, p).hash for p in plan_ids}

    def raw_fold() -> None:
        last["raw fold"] = {
            p: fold_plan(projection, p, raw.read_plan(p, projection)).hash for p in plan_ids
        }

    def library_replay() -> None:
        report = engine.replay(projection, plan_ids, run="benchmark", restart=True)
        last["library replay"] = {p: "" for p in report.plans}

    def raw_replay() -> None:
        last["raw replay"] = {p: raw.fold_and_snapshot(projection, p) for p in plan_ids}

    def same_as_reference(key: str) -> Callable[[], str | None]:
        def check() -> str | None:
            got = last.get(key, {})
            if key == "library replay":
                stored = _stored_hashes(ctx, plan_ids)
                return None if stored == reference else "replayed snapshots differ from the fold"
            return None if got == reference else f"{key}: state hashes differ from the raw fold"

        return check

    raw_fold()
    reference.update(last["raw fold"])
    clear = lambda: raw.truncate(events=False)  # noqa: E731
    names = (
        "library fold_from_scratch per plan",
        "raw read + orjson + fold per plan",
        "library engine.replay (stores snapshots)",
        "raw read + fold + snapshot upsert per plan",
    )
    variants = [
        Variant(names[0], library_fold, check=same_as_reference("library fold")),
        Variant(names[1], raw_fold, check=same_as_reference("raw fold")),
        Variant(names[2], library_replay, setup=clear, check=same_as_reference("library replay")),
        Variant(names[3], raw_replay, setup=clear, check=same_as_reference("raw replay")),
    ]
    results = ctx.measure("D", title, live, variants)
    results[names[0]].compare(results[names[1]], ctx.target())
    results[names[2]].compare(results[names[3]], ctx.target())
    replay, raw_fold_result = results[names[2]], results[names[1]]
    replay.note = f"library replay/raw fold {raw_fold_result.best / replay.best:.2f}"
    return [results[name] for name in names]


def _stored_hashes(ctx: Context, plan_ids: Sequence[UUID]) -> dict[UUID, str]:
    from projections import snapshots

    with ctx.store.read_transaction() as connection:
        found: dict[UUID, str] = {}
        for plan_id in plan_ids:
            snapshot = snapshots.load(connection, plan_id, ctx.projection.name)
            if snapshot is not None:
                found[plan_id] = snapshot.state_hash
        return found


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
)
