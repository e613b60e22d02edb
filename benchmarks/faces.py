"""The asyncio face beside the blocking one, in the same run (``python -m benchmarks --faces``).

- Latency of one version-checked single-event append and of one load of a typical
  plan (30 events, no snapshot), p50 and p99 over many calls, each face in turn.
- Throughput of 100 concurrent loads of typical plans: ``asyncio.gather`` over
  one :class:`~eventsource.AsyncEventStore` pool against a thread pool of the
  blocking API (as many threads as the async pool has connections), rotating
  which runs first each round.

Both faces run the same SQL, programs and folds; what this measures is only the
shell: awaiting drivers against blocking on them.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsource import AsyncEventStore, EventStore, NewEvent, create_plan, create_user
from projections import AsyncProjectionEngine, ProjectionEngine

from .peer import CountProjection
from .scratch import Scratch

TYPICAL = 30
"""Events in a typical plan (a whole course-designer lifecycle is 12 to 40)."""
POOL = 10


@dataclass
class FaceRow:
    workload: str
    blocking: str
    asyncio: str
    note: str = ""


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered), p99


def _ms(pair: tuple[float, float]) -> str:
    return f"p50 {pair[0] * 1000:.2f} ms, p99 {pair[1] * 1000:.2f} ms"


def run(scratch: Scratch, *, quick: bool, rounds: int) -> list[FaceRow]:
    """Every face workload on ``scratch``; the rows of the table."""
    url = scratch.engine.url.render_as_string(hide_password=False)
    store = EventStore(scratch.engine)
    user = create_user(store)
    calls = 100 if quick else 300
    plans = [create_plan(store, created_by_user_id=user) for _ in range(100 + calls)]
    payload = {"note": "x" * 150, "n": 1}
    for plan in plans[:100]:
        store.append(plan, [NewEvent("e", payload) for _ in range(TYPICAL)])
    fresh = plans[100:]
    projection = CountProjection()
    blocking_engine = ProjectionEngine(store, snapshot_every=None)

    async def async_main() -> dict[str, Any]:
        async with AsyncEventStore.from_url(url, pool_size=POOL) as async_store:
            engine = AsyncProjectionEngine(async_store, snapshot_every=None)
            await engine.load(projection, plans[0])  # open the pool
            out: dict[str, Any] = {"append": [], "load": [], "gather": []}
            versions: dict[UUID, int] = {p: await async_store.version(p) for p in fresh}
            for plan in fresh:
                started = time.perf_counter()
                result = await async_store.append(
                    plan, [NewEvent("e", payload)], expected_version=versions[plan]
                )
                out["append"].append(time.perf_counter() - started)
                versions[plan] = result.version
            for index in range(calls):
                started = time.perf_counter()
                await engine.load(projection, plans[index % 100])
                out["load"].append(time.perf_counter() - started)
            for _ in range(rounds):
                started = time.perf_counter()
                await asyncio.gather(*(engine.load(projection, plan) for plan in plans[:100]))
                out["gather"].append(time.perf_counter() - started)
            return out

    def blocking_main() -> dict[str, Any]:
        out: dict[str, Any] = {"append": [], "load": [], "threads": []}
        versions = {plan: store.version(plan) for plan in fresh}
        for plan in fresh:
            started = time.perf_counter()
            result = store.append(plan, [NewEvent("e", payload)], expected_version=versions[plan])
            out["append"].append(time.perf_counter() - started)
            versions[plan] = result.version
        for index in range(calls):
            started = time.perf_counter()
            blocking_engine.load(projection, plans[index % 100])
            out["load"].append(time.perf_counter() - started)
        with ThreadPoolExecutor(POOL) as pool:
            list(pool.map(lambda p: blocking_engine.load(projection, p), plans[:10]))  # warm
            for _ in range(rounds):
                started = time.perf_counter()
                list(pool.map(lambda p: blocking_engine.load(projection, p), plans[:100]))
                out["threads"].append(time.perf_counter() - started)
        return out

    sides: list[Callable[[], dict[str, Any]]] = [
        lambda: _run_async(async_main()),
        blocking_main,
    ]
    results: dict[str, dict[str, Any]] = {}
    for turn in range(2):  # rotate which face runs first
        order = sides if turn % 2 == 0 else list(reversed(sides))
        for side in order:
            found = side()
            key = "asyncio" if "gather" in found else "blocking"
            for name, samples in found.items():
                results.setdefault(key, {}).setdefault(name, []).extend(samples)
    sync, aio = results["blocking"], results["asyncio"]
    per_second = [100 / t for t in sync["threads"]], [100 / t for t in aio["gather"]]
    threads, gathered = statistics.median(per_second[0]), statistics.median(per_second[1])
    return [
        FaceRow(
            "append 1 event, expected_version=n",
            _ms(_percentiles(sync["append"])),
            _ms(_percentiles(aio["append"])),
        ),
        FaceRow(
            f"load a {TYPICAL}-event plan",
            _ms(_percentiles(sync["load"])),
            _ms(_percentiles(aio["load"])),
        ),
        FaceRow(
            "100 concurrent loads (loads/s, median)",
            f"{threads:,.0f} ({POOL} threads)",
            f"{gathered:,.0f} (gather, pool of {POOL})",
            f"asyncio/threads {gathered / threads:.2f}",
        ),
    ]


def _run_async(coroutine: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    return asyncio.run(coroutine)


def format_rows(backend: str, rows: list[FaceRow]) -> str:
    width = max(len(row.workload) for row in rows)
    lines = [f"== {backend}: the asyncio face beside the blocking one"]
    lines.append(f"  {'workload':<{width}}  {'blocking':<34}  asyncio")
    for row in rows:
        note = f"   {row.note}" if row.note else ""
        lines.append(f"  {row.workload:<{width}}  {row.blocking:<34}  {row.asyncio}{note}")
    return "\n".join(lines)


__all__ = ["FaceRow", "format_rows", "run"]
