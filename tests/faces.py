"""The asyncio face, driven from blocking tests: one contract suite for both faces.

:class:`BlockingAsyncStore` runs every call of the store contract (append, read,
timeline, audit, version, get, plan_ids, soft_delete, restore) through
:class:`~eventsource.AsyncEventStore` on an event loop of its own, and hands
everything else (the fixtures' setup and inspection: transactions, snapshot
rows) to a blocking store on the same database. :class:`BlockingAsyncEngine` does
the same for :class:`~projections.AsyncProjectionEngine` (load, snapshot, verify).
Write hooks registered the blocking way are registered on the asyncio face as
their asyncio equivalents, so tests that add inline projections test the async
inline path.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import Engine

from eventsource import AsyncEventStore, EventStore, WriteNotice
from projections import (
    AsyncInlineProjections,
    AsyncProjectionEngine,
    InlineProjections,
    ProjectionEngine,
)

T = TypeVar("T")


class _Loop:
    """An event loop in a daemon thread, for blocking callers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class _AsyncHook:
    """A blocking test hook seen from the asyncio face (it may only raise or record)."""

    def __init__(self, hook: Any, face: BlockingAsyncStore) -> None:
        self.hook = hook
        self.face = face

    async def after_write(
        self, store: AsyncEventStore, connection: Any, notice: WriteNotice
    ) -> None:
        self.hook.after_write(self.face, connection, notice)


class _Hooks(list[Any]):
    """``store.hooks``: a blocking hook appended here is registered on the async store."""

    def __init__(self, face: BlockingAsyncStore) -> None:
        super().__init__()
        self.face = face

    def append(self, hook: Any) -> None:
        super().append(hook)
        if isinstance(hook, InlineProjections):
            engine = AsyncProjectionEngine(self.face.async_store, snapshot_every=None)
            self.face.async_store.hooks.append(AsyncInlineProjections(engine, hook.projections))
        else:
            self.face.async_store.hooks.append(_AsyncHook(hook, self.face))


class BlockingAsyncStore:
    """The store contract, run through :class:`AsyncEventStore`."""

    face = "async"

    def __init__(self, engine: Engine, url: str, *, page_size: int | None = None) -> None:
        self.sync = EventStore(engine)
        self.async_store = AsyncEventStore.from_url(url)
        self.page_size = page_size
        self.hooks = _Hooks(self)
        self._loop = _Loop()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sync, name)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._loop.run(coroutine)

    def close(self) -> None:
        self.run(self.async_store.aclose())
        self._loop.close()
        self.sync.close()

    def append(self, plan_id: Any, events: Any, **kwargs: Any) -> Any:
        return self.run(self.async_store.append(plan_id, events, **kwargs))

    def read(self, plan_id: Any, **kwargs: Any) -> Iterator[Any]:
        if self.page_size is not None:
            kwargs.setdefault("page_size", self.page_size)
        if kwargs.pop("connection", None) is not None:
            raise AssertionError("the asyncio face reads on its own connections")

        async def collect() -> list[Any]:
            return [event async for event in self.async_store.read(plan_id, **kwargs)]

        return iter(self.run(collect()))

    def audit(self, plan_id: Any, **kwargs: Any) -> Iterator[Any]:
        async def collect() -> list[Any]:
            return [event async for event in self.async_store.audit(plan_id, **kwargs)]

        return iter(self.run(collect()))

    def plan_ids(self, **kwargs: Any) -> Iterator[UUID]:
        async def collect() -> list[UUID]:
            return [plan async for plan in self.async_store.plan_ids(**kwargs)]

        return iter(self.run(collect()))

    def timeline(self, plan_id: Any, **kwargs: Any) -> Any:
        return self.run(self.async_store.timeline(plan_id, **kwargs))

    def version(self, plan_id: Any, **kwargs: Any) -> int:
        if kwargs.get("connection") is not None:
            return self.sync.version(plan_id, **kwargs)
        return self.run(self.async_store.version(plan_id))

    def get(self, event_id: Any) -> Any:
        return self.run(self.async_store.get(event_id))

    def soft_delete(self, event_id: Any) -> bool:
        return self.run(self.async_store.soft_delete(event_id))

    def restore(self, event_id: Any) -> bool:
        return self.run(self.async_store.restore(event_id))


class BlockingAsyncEngine:
    """The engine contract (load, snapshot, verify), run through the asyncio engine."""

    def __init__(self, store: BlockingAsyncStore, **kwargs: Any) -> None:
        self.face = store
        self.async_engine = AsyncProjectionEngine(store.async_store, **kwargs)
        self.sync = ProjectionEngine(store.sync, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sync, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("snapshot_every", "strict"):
            setattr(self.async_engine, name, value)
            setattr(self.sync, name, value)
            return
        super().__setattr__(name, value)

    def load(self, projection: Any, plan_id: Any, **kwargs: Any) -> Any:
        return self.face.run(self.async_engine.load(projection, plan_id, **kwargs))

    def snapshot(self, projection: Any, plan_id: Any, **kwargs: Any) -> Any:
        return self.face.run(self.async_engine.snapshot(projection, plan_id, **kwargs))

    def verify(self, projection: Any, plan_id: Any) -> Any:
        return self.face.run(self.async_engine.verify(projection, plan_id))


def projection_engine(store: Any, **kwargs: Any) -> Any:
    """The engine for a store of either face (ProjectionEngine's arguments)."""
    if isinstance(store, BlockingAsyncStore):
        return BlockingAsyncEngine(store, **kwargs)
    return ProjectionEngine(store, **kwargs)


__all__ = ["BlockingAsyncEngine", "BlockingAsyncStore", "projection_engine"]
