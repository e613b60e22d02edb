"""An asyncio worker: keeps asynchronous projections' snapshots current in-process.

The same protocol as :class:`~projections.Worker` (see ``eventsource.feed`` for
why a change feed): claim changed plans with ``FOR UPDATE SKIP LOCKED``, re-fold
each, store its snapshot and clear its claim, all in one transaction, so any
number of workers, threads or tasks share one database with no change missed or
folded twice. It wakes on ``LISTEN/NOTIFY`` through psycopg's async connection
and polls as the fallback (and on SQLite). Cancelling the task that runs
:meth:`AsyncWorker.run` lets the batch in hand finish the plan it is folding and
commit, then re-raises the cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg

from eventsource.async_store import AsyncEventStore
from eventsource.errors import FoldFailed

from .async_engine import AsyncProjectionEngine
from .typing import Projection
from .worker import FailedFolds, WorkerStats

log = logging.getLogger(__name__)


class AsyncWorker:
    """Folds changed plans for the given projections, as an asyncio task.

    Args:
        store: the asyncio store.
        projections: the projections this worker maintains.
        batch_size: plans claimed per transaction.
        poll_interval: seconds between polls when no notification arrives.
    """

    def __init__(
        self,
        store: AsyncEventStore,
        projections: Sequence[Projection[Any]],
        *,
        batch_size: int = 20,
        poll_interval: float = 1.0,
    ) -> None:
        self.store = store
        self.engine = AsyncProjectionEngine(store, snapshot_every=None)
        self.projections = list(projections)
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.stats = WorkerStats()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """Ask :meth:`run` to return after the plan in hand."""
        self._stop.set()

    async def run_batch(self) -> int:
        """Claim, fold and clear one batch in one transaction; return plans done.

        As on the blocking face, the claimed feed row (not the plan lock) keeps
        the plan's stream still while it is folded.
        """
        await self.store.check_schema()
        failures = FailedFolds()

        async def attempt() -> list[UUID]:
            done: list[UUID] = []
            failures.claimed.clear()
            async with self.store.transaction(write=True) as conn:
                claims = await self.store.claim(conn, self.batch_size)
                held = await self.store.quarantined_in(conn, [plan for plan, _ in claims])
                for plan_id, change_seq in claims:
                    if self._stop.is_set():
                        break  # commit what is folded; the other claims end with it
                    failures.claimed[plan_id] = change_seq
                    for projection in self.projections:
                        if failures.skips(plan_id, projection.name, change_seq):
                            continue
                        await self.engine.refresh_in(conn, projection, plan_id)
                        if (plan_id, projection.name) in held:
                            await self.store.release_in(conn, plan_id, projection.name)
                    await self.store.clear(conn, plan_id, change_seq)
                    done.append(plan_id)
            return done

        while True:
            try:
                done = await self.store.retrying(attempt)
            except FoldFailed as failure:
                # The batch rolled back: quarantine the plan, fold the batch without it.
                if not failures.set_aside(failure):
                    raise
                await self.store.quarantine_failure(failure)
                self.stats.quarantined += 1
                log.warning("quarantined: %s", failure)
                continue
            break
        if done:
            self.stats.batches += 1
            self.stats.plans += len(done)
            self.stats.claimed.extend(done)
        return len(done)

    async def drain(self) -> int:
        """Run batches until the queue is empty (or stop is requested)."""
        total = 0
        while not self._stop.is_set():
            count = await self._shielded_batch()
            total += count
            if count == 0:
                break
        return total

    async def _shielded_batch(self) -> int:
        # A cancellation does not cut a batch short mid-plan: the batch stops
        # after the plan in hand, commits, and the cancellation goes on.
        batch = asyncio.ensure_future(self.run_batch())
        try:
            return await asyncio.shield(batch)
        except asyncio.CancelledError:
            self.stop()
            with contextlib.suppress(Exception):
                await batch
            raise

    async def run(self) -> None:
        """Drain, then wait for a notification (PostgreSQL) or the poll interval, until stopped."""
        listener: psycopg.AsyncConnection[Any] | None = None
        try:
            while not self._stop.is_set():
                if listener is None:
                    listener = await self.store.listen()
                await self.drain()
                if self._stop.is_set():
                    break
                listener = await self._wait(listener)
        finally:
            if listener is not None:
                await listener.close()

    async def _wait(
        self, listener: psycopg.AsyncConnection[Any] | None
    ) -> psycopg.AsyncConnection[Any] | None:
        """Wait for a notification, the poll interval or stop; the listener, or None if lost."""
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            if listener is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(stop), self.poll_interval)
                return None
            notified = asyncio.ensure_future(_next_notify(listener))
            done, _ = await asyncio.wait(
                {stop, notified}, timeout=self.poll_interval, return_when=asyncio.FIRST_COMPLETED
            )
            if notified not in done:
                notified.cancel()
                with contextlib.suppress(asyncio.CancelledError, psycopg.Error):
                    await notified
            elif notified.exception() is not None:
                log.warning(
                    "LISTEN connection lost (%s); polling until it is back", notified.exception()
                )
                await listener.close()
                return None
            return listener
        finally:
            stop.cancel()


async def _next_notify(listener: psycopg.AsyncConnection[Any]) -> None:
    async for _ in listener.notifies(stop_after=1):
        return


__all__ = ["AsyncWorker"]
