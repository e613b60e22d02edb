"""The asyncio face of the projection engine: load, snapshot, verify, inline projections.

A thin shell over the same core as :class:`~projections.ProjectionEngine`: the
fold (:func:`~projections.fold`, resumable chunk by chunk), the snapshot rules
(:func:`~projections.engine.snapshot_usable`, :func:`~projections.engine.snapshot_of`),
the state's canonical JSON and hash. Only the waiting differs, so a sync and an
async load of the same events give identical bytes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsource import ConfigurationError, EventSourceError, FoldFailed, WriteNotice
from eventsource.async_store import AsyncEventStore, AsyncRaw

from .engine import (
    LoadedState,
    VerifyReport,
    fold_watching_inputs,
    is_asynchronous,
    loaded_state,
    nothing_to_load,
    should_snapshot,
    snapshot_of,
    snapshot_status,
    snapshot_usable,
    starting_point,
    tail_is_whole_stream,
)
from .fold import fold
from .typing import Projection

S = TypeVar("S")

log = logging.getLogger(__name__)


class AsyncProjectionEngine:
    """Folds plans through projections, with snapshots, without blocking the loop.

    Args:
        store: the asyncio store.
        snapshot_every: store a snapshot when a load folded at least this many
            events after the previous one (None: only on demand / inline).
        strict: raise on event types a projection does not handle.
    """

    def __init__(
        self,
        store: AsyncEventStore,
        *,
        snapshot_every: int | None = 500,
        strict: bool = False,
    ) -> None:
        self.store = store
        self.snapshot_every = snapshot_every
        self.strict = strict

    async def _fold(
        self,
        projection: Projection[S],
        plan_id: UUID,
        *,
        conn: AsyncRaw | None = None,
        start: Any = None,
        tail: Sequence[Any] | None = None,
        valid_at: datetime | None = None,
        known_at: datetime | None = None,
    ) -> LoadedState[S]:
        begin, after = starting_point(projection, plan_id, start)
        result = begin
        if tail is not None:
            result = fold(projection, tail, result, strict=self.strict)
        elif conn is not None:
            # aclosing: a fold that raises ends the stream before the transaction
            # rolls back (an open stream holds the connection).
            chunks = self.store.read_chunks(
                conn, plan_id, after=after, tie_rank=projection.tie_rank
            )
            async with contextlib.aclosing(chunks):
                async for events in chunks:
                    result = fold(projection, events, result, strict=self.strict)
        else:
            chunk: list[Any] = []
            stream = self.store.read(
                plan_id,
                after=after,
                tie_rank=projection.tie_rank,
                valid_at=valid_at,
                known_at=known_at,
            )
            async with contextlib.aclosing(stream):
                async for event in stream:
                    chunk.append(event)
                    if len(chunk) >= 500:
                        result = fold(projection, chunk, result, strict=self.strict)
                        chunk = []
            result = fold(projection, chunk, result, strict=self.strict)
        return loaded_state(projection, plan_id, result, begin, after, start is not None)

    async def load(
        self,
        projection: Projection[S],
        plan_id: UUID,
        *,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
        use_snapshot: bool = True,
    ) -> LoadedState[S]:
        """The plan's state: snapshot + tail, or a time-travel fold (see ``ProjectionEngine``).

        Raises:
            UnknownPlan: the plan has no events at all.
        """
        loaded: LoadedState[S] | None = None
        if known_at is None and use_snapshot:
            ranks = tuple(sorted(projection.tie_rank.items()))
            snapshot, tail = await self.store.load_with_tail(
                plan_id, projection.name, projection.version, ranks, valid_at=as_of
            )
            if snapshot_usable(snapshot, projection, as_of):
                loaded = await self._fold(projection, plan_id, start=snapshot, tail=tail)
            elif tail_is_whole_stream(snapshot, projection):
                loaded = await self._fold(projection, plan_id, tail=tail)
        if loaded is None:
            loaded = await self._fold(projection, plan_id, valid_at=as_of, known_at=known_at)
        if use_snapshot and should_snapshot(
            self.snapshot_every, projection, loaded, as_of=as_of, known_at=known_at
        ):
            await self.snapshot(projection, plan_id)
        if loaded.event_count == 0:
            missing = nothing_to_load(plan_id, await self.store.version(plan_id), as_of, known_at)
            if missing is not None:
                raise missing
        return loaded

    async def refresh_in(
        self,
        conn: AsyncRaw,
        projection: Projection[S],
        plan_id: UUID,
        *,
        from_scratch: bool = False,
    ) -> LoadedState[S]:
        """Bring the plan's snapshot up to date inside the caller's write transaction."""
        snapshot = (
            None if from_scratch else await self.store.load_snapshot(conn, plan_id, projection.name)
        )
        usable = snapshot_usable(snapshot, projection, None)
        loaded = await self._fold(
            projection, plan_id, conn=conn, start=snapshot if usable else None
        )
        if usable and loaded.tail == 0:
            return loaded
        await self.store.save_snapshot(conn, snapshot_of(projection, loaded))
        return loaded

    async def snapshot(
        self, projection: Projection[S], plan_id: UUID, *, from_scratch: bool = False
    ) -> LoadedState[S]:
        """Store a fresh snapshot of the plan (on demand), under the plan's write lock."""

        async def attempt() -> LoadedState[S]:
            async with self.store.transaction(write=True) as conn:
                await self.store.lock_in(conn, plan_id)
                return await self.refresh_in(conn, projection, plan_id, from_scratch=from_scratch)

        await self.store.check_schema()
        return await self.store.retrying(attempt)

    async def verify(self, projection: Projection[Any], plan_id: UUID) -> VerifyReport:
        """Fold from scratch twice and compare with each other and the snapshot."""
        try:
            first = await self._fold(projection, plan_id)
            events = [e async for e in self.store.read(plan_id, tie_rank=projection.tie_rank)]
            second, mutated = fold_watching_inputs(projection, plan_id, events)
        except FoldFailed as failure:
            await self.record_failure(failure)
            return VerifyReport(plan_id, "", "", None, "unfoldable", failure=failure)
        snapshot = await self.store.snapshot_row(plan_id, projection.name)
        status = snapshot_status(snapshot, projection)
        snap_hash: str | None = None
        if status is None:
            via = await self._fold(projection, plan_id, start=snapshot)
            snap_hash = via.hash
            status = "ok" if via.hash == first.hash else "differs"
        return VerifyReport(plan_id, first.hash, second, snap_hash, status, mutated)

    async def record_failure(self, failure: FoldFailed) -> bool:
        """Quarantine the failing plan from a command that otherwise only reads
        (``ProjectionEngine.record_failure``): best effort, logged where the role
        cannot write; whether it was recorded."""
        try:
            await self.store.quarantine_failure(failure)
        except EventSourceError as exc:
            log.warning("could not quarantine plan %s: %s", failure.plan_id, exc)
            return False
        return True


class AsyncInlineProjections:
    """An asyncio write hook keeping snapshots current in the append's own transaction.

    ``AsyncEventStore(url, hooks=[AsyncInlineProjections(engine, [...])])``, or
    ``store.hooks.append(...)``: a committed write is visible in the plan's
    snapshot at once, as with ``InlineProjections`` on the blocking face.
    """

    def __init__(
        self, engine: AsyncProjectionEngine, projections: Sequence[Projection[Any]]
    ) -> None:
        for projection in projections:
            if is_asynchronous(projection):
                raise ConfigurationError(
                    f"projection {projection.name!r} is asynchronous: its snapshots are "
                    "maintained only by workers, not inline"
                )
        self.engine = engine
        self.projections = list(projections)

    async def after_write(
        self, store: AsyncEventStore, connection: AsyncRaw, notice: WriteNotice
    ) -> None:
        for projection in self.projections:
            await self.engine.refresh_in(connection, projection, notice.plan_id)


__all__ = ["AsyncInlineProjections", "AsyncProjectionEngine"]
