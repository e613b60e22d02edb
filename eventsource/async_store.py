"""The asyncio face of the store, for services that must not block their event loop.

It is a thin shell: the statements, parameters, validation, write programs,
row decoding and bookkeeping are the tiers' I/O-free rules (``StreamRules``,
``FeedRules``, ``SnapshotRules``), the very code the blocking store runs; this
module only awaits them on asyncio drivers. PostgreSQL goes through psycopg's
``AsyncConnection`` and its pool (autocommit connections, so a read is one
statement and an append one pipelined round trip, as on the blocking face).
SQLite goes through aiosqlite, which runs each connection's calls in a thread of
its own; writers still serialize with ``BEGIN IMMEDIATE``, waiting in that thread
(``busy_timeout``), never in the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Final, Protocol, TypeVar
from uuid import UUID

import aiosqlite
import orjson
import psycopg
import psycopg_pool
from psycopg.pq import TransactionStatus
from psycopg.types.json import set_json_loads

from .backend import RetryPolicy, translate
from .config import SQLITE_BUSY_TIMEOUT_MS, libpq_params, resolve_url, sqlite_pragmas
from .dialects import Dialect, PostgreSQL, SQLite
from .errors import FoldFailed, SchemaMissing, StoreUnavailable, TransientError, UnknownEvent
from .events import DEFAULT_MAX_PAYLOAD_BYTES, NewEvent, RecordedEvent
from .feed import CHANNEL
from .hooks import WriteNotice
from .payload_models import PayloadModels
from .positions import StreamPosition, TimelineCursor, TimelinePage
from .program import DRIVER_ERRORS, run_async
from .snapshots import Snapshot, SnapshotRules
from .streams import DEFAULT_PAGE_SIZE, REQUIRED_TABLES, AppendResult, as_uuid
from .versions import ANY, ExpectedVersion

T = TypeVar("T")
AsyncRaw = Any
"""An asyncio driver connection: ``psycopg.AsyncConnection`` or ``aiosqlite.Connection``."""

DEFAULT_POOL_SIZE: Final = 10


class AsyncWriteHook(Protocol):
    """The asyncio twin of ``WriteHook``: awaited inside every write transaction.

    It must only use ``connection`` and must not commit; raising rolls the whole
    write back.
    """

    async def after_write(
        self, store: AsyncEventStore, connection: AsyncRaw, notice: WriteNotice
    ) -> None: ...


class _SQLitePool:
    """A few aiosqlite connections, configured as the blocking engine's are."""

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.size = size
        self._idle: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all: list[aiosqlite.Connection] = []
        self._lock = asyncio.Lock()

    async def _open(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(
            self.path, isolation_level=None, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000
        )
        for pragma in sqlite_pragmas(file=self.path not in ("", ":memory:")):
            await conn.execute(pragma)
        return conn

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            if self._idle.empty() and len(self._all) < self.size:
                conn = await self._open()
                self._all.append(conn)
                self._idle.put_nowait(conn)
        conn = await self._idle.get()
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                await conn.rollback()
            raise
        finally:
            self._idle.put_nowait(conn)

    async def close(self) -> None:
        for conn in self._all:
            await conn.close()
        self._all.clear()


class AsyncEventStore:
    """The store of ``course_designer_plan_events`` for asyncio code.

    Create it with :meth:`from_url` (no I/O until first use); use it as
    ``async with AsyncEventStore.from_url(url) as store:`` or close it with
    :meth:`aclose`. It raises the same errors as :class:`~eventsource.EventStore`
    and returns the same values.

    Args:
        url: the database URL (else ``EVENTSOURCE_DATABASE_URL``, else the default).
        max_payload_bytes: the largest payload (as JSON) an append accepts.
        hooks: asyncio write hooks, awaited inside every write transaction.
        pool_size: connections at most (PostgreSQL pool; SQLite connections).
        validate_payloads, payload_models: as :class:`~eventsource.EventStore`'s.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        hooks: Sequence[AsyncWriteHook] = (),
        pool_size: int = DEFAULT_POOL_SIZE,
        validate_payloads: bool = True,
        payload_models: PayloadModels | None = None,
    ) -> None:
        self.url = resolve_url(url)
        dialect: Dialect = PostgreSQL() if self.url.get_backend_name() == "postgresql" else SQLite()
        self.rules = SnapshotRules(
            dialect,
            max_payload_bytes,
            validate_payloads=validate_payloads,
            payload_models=payload_models,
        )
        self.sql = dialect
        self.dialect: str = dialect.name
        self.hooks: list[AsyncWriteHook] = list(hooks)
        self.pool_size = pool_size
        self._pg: psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._sqlite: _SQLitePool | None = None
        self._schema_ok = False

    @classmethod
    def from_url(cls, url: str | None = None, **kwargs: Any) -> AsyncEventStore:
        """A store for ``url``; nothing is connected until the first call."""
        return cls(url, **kwargs)

    async def __aenter__(self) -> AsyncEventStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every connection (the store can be used again: it reconnects)."""
        if self._pg is not None:
            pool, self._pg = self._pg, None
            await pool.close()
        if self._sqlite is not None:
            sqlite_pool, self._sqlite = self._sqlite, None
            await sqlite_pool.close()

    # -- connections -----------------------------------------------------------

    async def _pool(self) -> psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        if self._pg is None:

            async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
                set_json_loads(orjson.loads, conn)

            pool: psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]] = (
                psycopg_pool.AsyncConnectionPool(
                    kwargs={**libpq_params(self.url), "autocommit": True},
                    min_size=1,
                    max_size=self.pool_size,
                    open=False,
                    configure=configure,
                    timeout=30,
                )
            )
            self._pg = pool
            await pool.open(wait=False)
        return self._pg

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncRaw]:
        """A pooled driver connection (autocommit on PostgreSQL)."""
        try:
            if self.dialect == "postgresql":
                pool = await self._pool()
                async with pool.connection() as conn:
                    try:
                        yield conn
                    finally:
                        if conn.info.transaction_status == TransactionStatus.INERROR:
                            await conn.execute("ROLLBACK")
            else:
                if self._sqlite is None:
                    self._sqlite = _SQLitePool(self.url.database or ":memory:", self.pool_size)
                async with self._sqlite.connection() as conn:
                    yield conn
        except psycopg_pool.PoolTimeout as exc:
            raise StoreUnavailable(
                f"no database connection within the pool's timeout ({exc}); check that the "
                "database is running and the URL is right"
            ) from exc

    @asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[AsyncRaw]:
        """A driver connection inside ``BEGIN`` ... ``COMMIT``, rolled back on error.

        SQLite writes start with ``BEGIN IMMEDIATE``; PostgreSQL reads run in
        REPEATABLE READ, as on the blocking face.
        """
        async with self.connection() as conn:
            if isinstance(conn, psycopg.AsyncConnection):
                begin = "BEGIN" if write else "BEGIN ISOLATION LEVEL REPEATABLE READ"
            else:
                begin = "BEGIN IMMEDIATE" if write else "BEGIN"
            await conn.execute(begin)
            try:
                yield conn
            except BaseException:
                # A broken connection cannot roll back; the pool discards it.
                with contextlib.suppress(*DRIVER_ERRORS):
                    await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    async def retrying(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run a whole transaction, again on transient failures (as ``with_retries``)."""
        policy = RetryPolicy()
        for attempt in policy.attempts():
            try:
                try:
                    return await operation()
                except DRIVER_ERRORS as exc:
                    raise translate(exc) from exc
            except (TransientError, StoreUnavailable) as exc:
                await asyncio.sleep(policy.after_failure(attempt, exc))
        raise AssertionError("unreachable")

    async def check_schema(self) -> None:
        """Fail early, with what to do, if the database was never migrated.

        Raises:
            SchemaMissing: the event table or the engine's tables are missing.
        """
        if self._schema_ok:
            return

        async def look() -> set[str]:
            async with self.connection() as conn:
                cursor = await conn.execute(self.sql.table_names)
                rows = await cursor.fetchall()
            return {name for (name,) in rows}

        missing = sorted(REQUIRED_TABLES - await self.retrying(look))
        if missing:
            raise SchemaMissing(f"the database lacks table(s) {', '.join(missing)}")
        self._schema_ok = True

    # -- the stream tier -----------------------------------------------------------

    async def append(
        self,
        plan_id: UUID | str,
        new_events: Sequence[NewEvent],
        *,
        expected_version: ExpectedVersion = ANY,
        validate_payloads: bool | None = None,
    ) -> AppendResult:
        """Append a batch to a plan's stream in one transaction (see ``EventStore.append``).

        Raises:
            InvalidInput: a bad event (nothing of the batch is written).
            InvalidEventPayload: a projection's payload model refuses a payload.
            UnknownReference: the plan or an actor does not exist.
            ConcurrencyConflict: the plan is not at ``expected_version``.
            IdempotencyConflict: an id was re-sent with different content.
            SchemaMissing: the database was never migrated.
            StoreUnavailable: the database cannot be reached (after retries).
        """
        plan, rows, given_ids, expected = self.rules.prepare_batch(
            plan_id, new_events, expected_version, validate_payloads
        )
        await self.check_schema()
        pipelined = self.sql.pipelines and not self.hooks and not given_ids

        async def attempt() -> AppendResult:
            program = self.rules.append_program(
                plan, rows, given_ids, expected, pipelined=pipelined
            )
            if pipelined:
                async with self.connection() as conn:
                    return (await run_async(program, conn))[0]
            async with self.transaction(write=True) as conn:
                result, notice = await run_async(program, conn)
                if notice is not None:
                    for hook in self.hooks:
                        await hook.after_write(self, conn, notice)
                return result

        return await self.retrying(attempt)

    async def version(self, plan_id: UUID | str) -> int:
        """The plan's version: how many rows it has stored (deleted ones included)."""
        plan = as_uuid(plan_id, "plan_id")
        await self.check_schema()

        async def look() -> int:
            async with self.connection() as conn:
                return await self._count(conn, plan)

        return await self.retrying(look)

    async def _count(self, conn: AsyncRaw, plan_id: UUID) -> int:
        cursor = await conn.execute(self.sql.version, {"plan": self.sql.uuid(plan_id)})
        (count,) = await cursor.fetchone()
        return int(count)

    async def read(
        self,
        plan_id: UUID | str,
        *,
        after: StreamPosition | None = None,
        tie_rank: Mapping[str, int] | None = None,
        valid_at: datetime | None = None,
        known_at: datetime | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> AsyncGenerator[RecordedEvent, None]:
        """A plan's live events in stream order: one statement, fetched as you go.

        Close it early with ``contextlib.aclosing`` to return its connection at once.
        """
        plan = as_uuid(plan_id, "plan_id")
        sql, params = self.rules.stream_query(
            plan, after=after, tie_rank=tie_rank, valid_at=valid_at, known_at=known_at
        )
        await self.check_schema()
        decode = self.sql.decoder(plan)
        try:
            async with self.connection() as conn:
                async for chunk in self._fetch(conn, sql, params, page_size):
                    for row in chunk:
                        yield decode(row)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def _fetch(
        self, conn: AsyncRaw, sql: str, params: Mapping[str, Any], size: int
    ) -> AsyncIterator[list[Any]]:
        """The rows of one statement, ``size`` at a time (psycopg streams them)."""
        if isinstance(conn, psycopg.AsyncConnection):
            async with conn.cursor() as cursor:
                chunk: list[Any] = []
                async for row in cursor.stream(sql, params, size=size):
                    chunk.append(row)
                    if len(chunk) >= size:
                        yield chunk
                        chunk = []
                if chunk:
                    yield chunk
            return
        cursor = await conn.execute(sql, params)
        try:
            while rows := await cursor.fetchmany(size):
                yield list(rows)
        finally:
            await cursor.close()

    async def read_chunks(
        self,
        conn: AsyncRaw,
        plan_id: UUID,
        *,
        after: StreamPosition | None = None,
        tie_rank: Mapping[str, int] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> AsyncGenerator[list[RecordedEvent], None]:
        """A stream read inside the caller's transaction, chunk by chunk (for folds)."""
        sql, params = self.rules.stream_query(plan_id, after=after, tie_rank=tie_rank)
        decode = self.sql.decoder(plan_id)
        async for chunk in self._fetch(conn, sql, params, page_size):
            yield list(map(decode, chunk))

    async def timeline(
        self, plan_id: UUID | str, *, before: TimelineCursor | None = None, limit: int = 50
    ) -> TimelinePage:
        """One page of a plan's live events, newest first."""
        plan = as_uuid(plan_id, "plan_id")
        params = self.rules.timeline_params(plan, before, limit)
        await self.check_schema()

        async def look() -> list[Any]:
            async with self.connection() as conn:
                cursor = await conn.execute(self.sql.timeline(before is not None), params)
                rows: list[Any] = list(await cursor.fetchall())
                return rows

        return self.rules.timeline_page(plan, await self.retrying(look), limit)

    async def audit(
        self, plan_id: UUID | str, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> AsyncIterator[RecordedEvent]:
        """Every row of a plan, deleted ones included, in the order they were recorded."""
        plan = as_uuid(plan_id, "plan_id")
        await self.check_schema()
        decode = self.sql.decoder(plan)
        try:
            async with self.connection() as conn:
                params = {"plan": self.sql.uuid(plan)}
                async for chunk in self._fetch(conn, self.sql.audit, params, page_size):
                    for row in chunk:
                        yield decode(row)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def get(self, event_id: UUID | str) -> RecordedEvent:
        """One event by id, deleted or not.

        Raises:
            UnknownEvent: no event has this id.
        """
        ident = as_uuid(event_id, "event_id")
        await self.check_schema()

        async def look() -> Any:
            async with self.connection() as conn:
                cursor = await conn.execute(self.sql.get, {"id": self.sql.uuid(ident)})
                return await cursor.fetchone()

        row = await self.retrying(look)
        if row is None:
            raise UnknownEvent(ident)
        return self.sql.decoder()(row)

    async def plan_ids(self, *, page_size: int = 1000) -> AsyncIterator[UUID]:
        """Every plan with at least one stored row, in id order, page by page."""
        await self.check_schema()
        last: UUID | None = None
        while True:

            async def page_after(after: UUID | None = last) -> list[UUID]:
                async with self.connection() as conn:
                    if after is None:
                        cursor = await conn.execute(self.sql.first_plan_ids, {"limit": page_size})
                    else:
                        cursor = await conn.execute(
                            self.sql.plan_ids, {"after": self.sql.uuid(after), "limit": page_size}
                        )
                    rows = await cursor.fetchall()
                return [self.sql.decode_uuid(value) for (value,) in rows]

            page = await self.retrying(page_after)
            for plan in page:
                yield plan
            if len(page) < page_size:
                return
            last = page[-1]

    async def soft_delete(self, event_id: UUID | str) -> bool:
        """Retract an event: set its ``deleted_at``. Returns False if it already was.

        Raises:
            UnknownEvent: no event has this id.
        """
        return await self._set_deleted(as_uuid(event_id, "event_id"), deleted=True)

    async def restore(self, event_id: UUID | str) -> bool:
        """Undo a soft delete: clear ``deleted_at``. Returns False if it was live.

        Raises:
            UnknownEvent: no event has this id.
        """
        return await self._set_deleted(as_uuid(event_id, "event_id"), deleted=False)

    async def _set_deleted(self, event_id: UUID, *, deleted: bool) -> bool:
        await self.check_schema()

        async def attempt() -> bool:
            async with self.transaction(write=True) as conn:
                changed, notice = await run_async(
                    self.rules.set_deleted_program(event_id, deleted), conn
                )
                if notice is not None:
                    for hook in self.hooks:
                        await hook.after_write(self, conn, notice)
                return changed

        return await self.retrying(attempt)

    async def lock_in(self, conn: AsyncRaw, plan_id: UUID, *, missing_ok: bool = False) -> datetime:
        """Serialize the plan's writers in the caller's write transaction; its time."""
        return await run_async(self.sql.lock_program(plan_id, missing_ok=missing_ok), conn)

    # -- the change-feed tier ----------------------------------------------------

    async def claim(self, conn: AsyncRaw, limit: int) -> list[tuple[UUID, int]]:
        """Claim up to ``limit`` changed plans in the caller's transaction (SKIP LOCKED)."""
        cursor = await conn.execute(self.sql.claim, {"limit": limit})
        return self.rules.decode_claims(await cursor.fetchall())

    async def clear(self, conn: AsyncRaw, plan_id: UUID, change_seq: int) -> bool:
        """Drop a claimed change, unless a write re-queued the plan since the claim."""
        cursor = await conn.execute(
            self.sql.clear, {"plan": self.sql.uuid(plan_id), "seq": change_seq}
        )
        return bool(cursor.rowcount)

    async def listen(self) -> psycopg.AsyncConnection[Any] | None:
        """An async connection LISTENing on the feed's channel (PostgreSQL), else None."""
        if self.dialect != "postgresql":
            return None
        try:
            params = {"connect_timeout": 5, **libpq_params(self.url)}  # the URL's wins
            conn = await psycopg.AsyncConnection.connect(autocommit=True, **params)
        except psycopg.Error:
            return None
        try:
            await conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error:
            await conn.close()
            return None
        return conn

    # -- the snapshot tier ---------------------------------------------------------

    async def load_with_tail(
        self,
        plan_id: UUID,
        projection: str,
        version: int,
        ranks: tuple[tuple[str, int], ...],
        *,
        valid_at: datetime | None = None,
    ) -> tuple[Snapshot | None, list[RecordedEvent]]:
        """The plan's snapshot and the live events after it, from one snapshot."""
        await self.check_schema()

        async def look() -> tuple[Snapshot | None, list[RecordedEvent]]:
            program = self.rules.tail_program(plan_id, projection, version, ranks, valid_at)
            async with self.connection() as conn:
                return await run_async(program, conn)

        return await self.retrying(look)

    async def load_snapshot(
        self, conn: AsyncRaw, plan_id: UUID, projection: str
    ) -> Snapshot | None:
        """The plan's snapshot for ``projection`` in the caller's transaction."""
        cursor = await conn.execute(
            self.sql.load_snapshot, self.rules.snapshot_key(plan_id, projection)
        )
        row = await cursor.fetchone()
        return None if row is None else self.rules.decode_snapshot(row)

    async def snapshot_row(self, plan_id: UUID, projection: str) -> Snapshot | None:
        """:meth:`load_snapshot` on its own."""
        await self.check_schema()

        async def look() -> Snapshot | None:
            async with self.connection() as conn:
                return await self.load_snapshot(conn, plan_id, projection)

        return await self.retrying(look)

    async def save_snapshot(self, conn: AsyncRaw, snapshot: Snapshot) -> None:
        """Insert or replace the plan's snapshot, fresh, in the caller's transaction."""
        await conn.execute(self.sql.save_snapshot, self.rules.snapshot_params(snapshot))

    # -- quarantine (see SnapshotStore) -------------------------------------------

    async def quarantine_in(self, conn: AsyncRaw, failure: FoldFailed) -> None:
        """Record that ``failure``'s projection cannot fold its plan, in ``conn``'s transaction."""
        await conn.execute(self.sql.quarantine, self.rules.quarantine_params(failure, None))

    async def quarantine_failure(self, failure: FoldFailed) -> None:
        """:meth:`quarantine_in` in a transaction of its own."""

        async def record() -> None:
            async with self.transaction(write=True) as conn:
                await self.quarantine_in(conn, failure)

        await self.retrying(record)

    async def release_in(self, conn: AsyncRaw, plan_id: UUID, projection: str) -> bool:
        """Take the plan out of quarantine (it folded); whether it was in."""
        cursor = await conn.execute(self.sql.release, self.rules.snapshot_key(plan_id, projection))
        return bool(cursor.rowcount)

    async def quarantined_in(
        self, conn: AsyncRaw, plan_ids: Sequence[UUID]
    ) -> set[tuple[UUID, str]]:
        """The (plan, projection) pairs in quarantine among ``plan_ids``."""
        if not plan_ids:
            return set()
        statement, params = self.rules.quarantined_statement(plan_ids)
        cursor = await conn.execute(statement, params)
        return self.rules.decode_quarantined(await cursor.fetchall())


__all__ = ["AsyncEventStore", "AsyncRaw", "AsyncWriteHook"]
