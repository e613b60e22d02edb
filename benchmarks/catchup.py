"""Worker processes for workload E (catch-up): spawned, warmed up, released together.

Each worker is a separate process (``multiprocessing`` with the ``spawn`` start
method, so nothing of the parent's connections or state is inherited) running
the library's :class:`projections.worker.Worker`, exactly what ``python -m
eventsource worker --once`` runs. Process start-up is kept out of the timing:

1. :meth:`WorkerProcesses.start` spawns the processes; each imports the library,
   opens its engine, checks the schema and folds one plan read-only (warming
   imports, connection pool and statement cache), says it is ready and waits on a
   shared event. ``start`` returns once every worker is ready: the start-up time.
2. :meth:`WorkerProcesses.release_and_wait` sets the event, so every worker
   begins ``Worker.drain()`` at once, and returns when every worker has reported
   and exited. That span is the wall time (``drained_seconds`` is the part until
   the last worker reported, the rest is process exit); each worker also reports
   its own drain time, CPU time and the plans it folded (in order), so the split
   between the workers can be shown and checked.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from typing import Any, Final
from uuid import UUID

__all__ = ["DrainReport", "WorkerFailed", "WorkerProcesses"]

READY_TIMEOUT: Final = 120.0
"""Seconds a worker may take to start up before the run is abandoned."""
DRAIN_TIMEOUT: Final = 1800.0
"""Seconds a drain may take before the run is abandoned."""
GRACE: Final = 5.0
"""Seconds to wait for the message of a worker that has already exited."""


class WorkerFailed(RuntimeError):
    """A worker process failed, died or did not answer in time."""


@dataclass(frozen=True)
class DrainReport:
    """What one worker process did in one timed drain."""

    index: int
    plans: list[UUID]
    """The plans it folded, in the order it folded them."""
    batches: int
    seconds: float
    """Its own ``Worker.drain()`` time (its clock, from release to queue empty)."""
    cpu_seconds: float
    """Its own CPU time during the drain (the client side: Python, SQLAlchemy, driver)."""


@dataclass(frozen=True)
class _Message:
    kind: str  # "ready" | "done" | "failed"
    index: int
    report: DrainReport | None = None
    error: str | None = None


def _worker_main(
    index: int,
    url: str,
    warm_plan: UUID,
    batch_size: int,
    go: Any,
    out: Any,
) -> None:
    """The body of one worker process (module level: ``spawn`` imports it by name)."""
    try:
        from eventsource import EventStore
        from eventsource.config import make_engine
        from projections.course_designer import CourseDesignerPlanProjection
        from projections.worker import Worker

        store = EventStore(make_engine(url))
        store.check_schema()
        projection = CourseDesignerPlanProjection()
        worker = Worker(store, [projection], batch_size=batch_size)
        worker.engine.fold_from_scratch(projection, warm_plan)  # read-only warm-up
    except BaseException:
        out.put(_Message("failed", index, error=traceback.format_exc()))
        return
    out.put(_Message("ready", index))
    if not go.wait(READY_TIMEOUT + DRAIN_TIMEOUT):
        store.close()
        return  # the parent gave up on this run
    try:
        start, start_cpu = time.perf_counter(), time.process_time()
        worker.drain()
        seconds = time.perf_counter() - start
        cpu = time.process_time() - start_cpu
    except BaseException:
        out.put(_Message("failed", index, error=traceback.format_exc()))
        store.close()
        return
    stats = worker.stats
    report = DrainReport(index, list(stats.claimed), stats.batches, seconds, cpu)
    out.put(_Message("done", index, report=report))
    store.close()


@dataclass
class WorkerProcesses:
    """``count`` worker processes on the database at ``url``, for one timed drain.

    Use once: ``start()`` (untimed), ``release_and_wait()`` (timed), and
    ``close()`` in any case (it ends whatever is still running).
    """

    url: str
    count: int
    warm_plan: UUID
    batch_size: int = 20
    startup_seconds: float = 0.0
    drained_seconds: float = 0.0
    """From release until the last worker reported (its exit not included)."""
    _processes: list[SpawnProcess] = field(default_factory=list)
    _go: Any = None
    _out: Any = None

    def start(self) -> float:
        """Spawn the workers and wait until every one is ready; return how long it took.

        Raises:
            WorkerFailed: a worker failed or died while starting.
        """
        context = multiprocessing.get_context("spawn")
        self._go = context.Event()
        self._out = context.Queue()
        begin = time.perf_counter()
        for index in range(self.count):
            process = context.Process(
                target=_worker_main,
                args=(index, self.url, self.warm_plan, self.batch_size, self._go, self._out),
                name=f"catchup-worker-{index}",
                daemon=True,
            )
            process.start()
            self._processes.append(process)
        self._receive("ready", READY_TIMEOUT)
        self.startup_seconds = time.perf_counter() - begin
        return self.startup_seconds

    def release_and_wait(self) -> list[DrainReport]:
        """Let every worker drain at once; return their reports after all have exited.

        Raises:
            WorkerFailed: a worker failed, died or did not finish in time.
        """
        released = time.perf_counter()
        self._go.set()
        messages = self._receive("done", DRAIN_TIMEOUT)
        self.drained_seconds = time.perf_counter() - released
        for process in self._processes:
            process.join(GRACE)
            if process.exitcode is None:
                raise WorkerFailed(f"{process.name} did not exit after reporting")
        reports = [m.report for m in messages if m.report is not None]
        return sorted(reports, key=lambda r: r.index)

    def close(self) -> None:
        """End any worker still running (after a failure) and release the queue."""
        for process in self._processes:
            if process.is_alive():
                process.terminate()
            process.join(GRACE)
            process.close()
        self._processes.clear()
        if self._out is not None:
            self._out.close()
            self._out.join_thread()
            self._out = None

    def _receive(self, kind: str, timeout: float) -> Sequence[_Message]:
        """One ``kind`` message from every worker, watching for workers that died."""
        got: dict[int, _Message] = {}
        deadline = time.monotonic() + timeout
        dead_since: float | None = None
        while len(got) < self.count:
            try:
                message: _Message = self._out.get(timeout=0.1)
            except queue.Empty:
                now = time.monotonic()
                dead = [
                    p.name
                    for i, p in enumerate(self._processes)
                    if i not in got and p.exitcode is not None
                ]
                if dead:
                    dead_since = now if dead_since is None else dead_since
                    if now - dead_since > GRACE:
                        raise WorkerFailed(
                            f"{', '.join(dead)} exited without reporting {kind!r}"
                        ) from None
                if now > deadline:
                    raise WorkerFailed(
                        f"no {kind!r} from every worker in {timeout:.0f} s"
                    ) from None
                continue
            if message.kind == "failed":
                raise WorkerFailed(f"worker {message.index} failed:\n{message.error}")
            if message.kind != kind:
                raise WorkerFailed(f"worker {message.index} said {message.kind!r}, not {kind!r}")
            got[message.index] = message
        return [got[index] for index in sorted(got)]
