"""``python -m benchmarks``: the library against the floor and the peer, in one run.

    python -m benchmarks [--backend sqlite|postgresql|both] [--database-url URL]
                         [--quick] [--peer] [--only NAME] [--repeat N] [--json PATH]

On each backend a scratch database is created, migrated, used and dropped. Each
workload runs through the library and through the raw driver on the same table,
interleaved, ``--repeat`` times; the table prints the best run, events/s and
library/raw. Workload E (``catchup``) instead times 1 and 2 worker processes
draining the change feed (1 on SQLite) against a single-process ``engine.replay``
of the same plans: its ratio is worker events/s over replay events/s, with no
target. ``--quick`` does a tenth of the work (a CI smoke run). Speed is never
asserted: targets print PASS or MISS, and the exit status is non-zero only when
a run produced wrong results (rows missing, states that differ).

``--peer`` runs W1-W4 instead (:mod:`benchmarks.peer`, which needs the ``bench``
extra): the library beside eventsourcing and the floor, on the same payloads,
at each side's default durability and at equal durability. Its table prints,
per comparison, median events/s of each side and the ratios library/peer and
library/floor as medians of the per-round ratios, with their targets. ``--only``
picks among both sets (``--only W3``, ``--only A,W1``).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson
import sqlalchemy

from projections.course_designer import CourseDesignerPlanProjection

from .data import FULL, QUICK, build_dataset, build_peer_dataset
from .library import EventStore, ProjectionEngine
from .measure import Result
from .report import PeerRow, ScaleRow, format_peer_table, format_table, peer_json, to_json
from .scratch import PostgresUnavailable, scratch_database
from .workloads import WORKLOADS, Context, Workload

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["main", "parser"]

DEFAULT_SEED: Final = 20250106


def parser() -> argparse.ArgumentParser:
    names = ", ".join(f"{w.key}/{w.name}" for w in WORKLOADS)
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure the event store and projection engine against the raw "
        "driver doing the same work, on SQLite and PostgreSQL.",
    )
    p.add_argument(
        "--backend",
        choices=("sqlite", "postgresql", "both"),
        default="both",
        help="where to run (default: both; PostgreSQL is skipped with a note if unreachable)",
    )
    p.add_argument(
        "--database-url",
        metavar="URL",
        help="PostgreSQL server/database to create the scratch schema in (default: "
        "EVENTSOURCE_TEST_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/test)",
    )
    p.add_argument("--quick", action="store_true", help="a tenth of the work (CI smoke run)")
    p.add_argument(
        "--peer",
        action="store_true",
        help="run W1-W4: the library beside eventsourcing and the floor (needs the bench "
        "extra); with --only, add them to the chosen workloads",
    )
    p.add_argument(
        "--faces",
        action="store_true",
        help="run only the asyncio face beside the blocking one: append and load latency "
        "p50/p99, 100 concurrent loads (asyncio vs a thread pool)",
    )
    p.add_argument(
        "--only",
        metavar="NAME",
        action="append",
        help=f"run only this workload ({names}, or W1-W4 of --peer); repeatable or comma-separated",
    )
    p.add_argument(
        "--repeat",
        type=int,
        metavar="N",
        help="runs per variant; the best counts (default 3, --quick 2)",
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="data generator seed")
    p.add_argument("--json", metavar="PATH", type=Path, help="also write the results as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def _revision() -> str | None:
    """The git commit measured, with ``+dirty`` for uncommitted changes (None outside git)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}+dirty" if dirty else head


def _load_peer(p: argparse.ArgumentParser) -> ModuleType:
    try:
        from . import peer
    except ImportError as exc:
        p.error(
            f"the peer workloads need eventsourcing ({exc}); install the bench extra: "
            "pip install -e '.[bench]'"
        )
    return peer


def _chosen(
    only: Sequence[str] | None, with_peer: bool, p: argparse.ArgumentParser
) -> tuple[list[Workload], list[Any]]:
    """The A-E workloads and the peer workloads to run."""
    if not only:
        if with_peer:
            return [], list(_load_peer(p).PEER_WORKLOADS)
        return list(WORKLOADS), []
    wanted = {name.strip().lower() for item in only for name in item.split(",") if name.strip()}
    known = {w.key.lower(): w for w in WORKLOADS} | {w.name: w for w in WORKLOADS}
    peer_wanted = {name for name in wanted if name not in known}
    peer_workloads: list[Any] = []
    if peer_wanted or with_peer:
        module = _load_peer(p)
        peer_known = {w.key.lower(): w for w in module.PEER_WORKLOADS} | {
            w.name: w for w in module.PEER_WORKLOADS
        }
        unknown = sorted(peer_wanted - set(peer_known))
        if unknown:
            choices = ", ".join(sorted({*known, *peer_known}))
            p.error(f"unknown workload(s) {', '.join(unknown)}; choose from {choices}")
        peer_workloads = [
            w
            for w in module.PEER_WORKLOADS
            if with_peer or w.key.lower() in wanted or w.name in wanted
        ]
    return [w for w in WORKLOADS if w.key.lower() in wanted or w.name in wanted], peer_workloads


def _faces(args: argparse.Namespace) -> int:
    from . import faces

    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    rounds = args.repeat or (2 if args.quick else 5)
    for backend in backends:
        try:
            with scratch_database(backend, args.database_url) as scratch:
                rows = faces.run(scratch, quick=args.quick, rounds=rounds)
        except PostgresUnavailable as exc:
            print(f"postgresql skipped: {exc}", file=sys.stderr)
            continue
        print(faces.format_rows(backend, rows))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.faces:
        return _faces(args)
    workloads, peer_workloads = _chosen(args.only, args.peer, p)
    sizes = QUICK if args.quick else FULL
    repeat = args.repeat or (2 if args.quick else 3)
    if repeat < 1:
        p.error("--repeat must be at least 1")
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    started = time.perf_counter()

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - started:7.1f}s] {message}", file=sys.stderr, flush=True)

    progress(f"generating data (seed {args.seed})")
    data = build_dataset(sizes, args.seed) if workloads else None
    peer_data = build_peer_dataset(sizes, args.seed) if peer_workloads else None
    results: list[Result] = []
    peer_results: list[Result] = []
    peer_rows: list[PeerRow] = []
    scales: list[ScaleRow] = []
    durability: dict[str, str] = {}
    where: dict[str, str] = {}
    skipped: list[str] = []
    for backend in backends:
        try:
            with scratch_database(backend, args.database_url) as scratch:
                where[backend] = scratch.where
                progress(f"{backend}: {scratch.where}")
                store = EventStore(scratch.engine)
                store.check_schema()
                if data is not None:
                    scratch.raw.create_parents(data.users, data.plans)
                    ctx = Context(
                        backend=backend,
                        store=store,
                        engine=ProjectionEngine(store, snapshot_every=None),
                        projection=CourseDesignerPlanProjection(),
                        raw=scratch.raw,
                        data=data,
                        repeat=repeat,
                        progress=progress,
                    )
                    for workload in workloads:
                        results.extend(workload.run(ctx))
                if peer_data is not None:
                    report, durability[backend] = _load_peer(p).run(
                        scratch, store, peer_data, peer_workloads, repeat, progress
                    )
                    peer_results.extend(report.results)
                    peer_rows.extend(report.rows)
                    scales.extend(report.scales)
        except PostgresUnavailable as exc:
            if args.backend != "both" or os.environ.get("EVENTSOURCE_REQUIRE_POSTGRES") == "1":
                print(f"error: {exc}", file=sys.stderr)
                return 2
            skipped.append(f"postgresql skipped: {exc}")

    label = "quick" if args.quick else "full"
    if results:
        print(
            f"python -m benchmarks: {label} sizes, best of {repeat}; "
            "ratio = library events/s / floor events/s (snapshot row: speed-up over the full "
            "fold; E: workers' events/s / single-process replay's)"
        )
        print(format_table(results, where))
    if peer_rows or scales:
        print(
            f"python -m benchmarks --peer: {label} sizes, {repeat} rounds, order rotated each "
            "round; events/s = median; lib/peer, lib/floor = median of per-round ratios "
            "(library events/s over theirs); peer dflt = eventsourcing at its default "
            "durability, peer eq = at the library's; targets judged at equal durability"
        )
        print(format_peer_table(peer_rows, scales, where, durability))
    for line in skipped:
        print(line)
    if args.json is not None:
        document: dict[str, Any] = {
            "command": ["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)],
            "finished_at": datetime.now(UTC).isoformat(),
            "quick": args.quick,
            "repeat": repeat,
            "seed": args.seed,
            "sizes": asdict(sizes),
            "library_revision": _revision(),
            "python": sys.version,
            "platform": platform.platform(),
            "sqlalchemy": sqlalchemy.__version__,
            "where": where,
            "skipped": skipped,
            "results": [to_json(r) for r in [*results, *peer_results]],
        }
        if peer_workloads:
            from importlib.metadata import version

            document["peer"] = {
                "eventsourcing": version("eventsourcing"),
                "durability": durability,
                **peer_json(peer_rows, scales),
            }
        args.json.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    failed = [r for r in [*results, *peer_results] if r.problems]
    return 1 if failed else 0
