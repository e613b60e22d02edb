"""DBAPI connections for the hot paths, taken from the engine's pool.

SQLAlchemy keeps the URL, the pool and the schema; the statements of the hot
paths run on the driver's own connection (``psycopg.Connection`` or
``sqlite3.Connection``). Each thread keeps the pooled connection it last used
(a checkout through the pool costs about as much as a SQLite insert), and a
nested use while that connection is busy, a read inside another read's loop,
say, takes a second one from the pool. PostgreSQL connections held here run in
autocommit, so a read is one statement and one round trip, and a write sends
its own ``BEGIN`` and ``COMMIT`` inside one pipeline.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy import Engine
from sqlalchemy.pool import PoolProxiedConnection

from .backend import translated
from .dialects import Dialect, dialect_for

Raw = Any
"""A driver connection: ``psycopg.Connection`` or ``sqlite3.Connection``."""


class _Held:
    """A pooled connection a thread keeps; back to the pool when the thread ends."""

    def __init__(self, fairy: PoolProxiedConnection) -> None:
        self.fairy: PoolProxiedConnection | None = fairy

    def release(self) -> None:
        fairy, self.fairy = self.fairy, None
        if fairy is None:
            return
        try:
            Database.checkin(fairy)
        except (psycopg.Error, sqlite3.Error):
            with contextlib.suppress(Exception):
                fairy.invalidate()

    def __del__(self) -> None:
        # The thread-local slot is dropped when its thread ends: without this, a
        # pool of short-lived threads would keep every connection checked out.
        # Never raise from the collector (the engine may be disposed already).
        with contextlib.suppress(Exception):
            self.release()


class _Pinned(threading.local):
    held: _Held | None = None
    busy: bool = False


class Database:
    """An engine, its dialect, and the driver connections of the hot paths."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect: Dialect = dialect_for(engine)
        self._pinned = _Pinned()
        self._all: weakref.WeakSet[_Held] = weakref.WeakSet()
        self._lock = threading.Lock()

    def _checkout(self) -> PoolProxiedConnection:
        fairy = self.engine.raw_connection()
        raw = fairy.driver_connection
        if isinstance(raw, psycopg.Connection):
            raw.autocommit = True
        return fairy

    @staticmethod
    def checkin(fairy: PoolProxiedConnection) -> None:
        """Return a connection to the pool as SQLAlchemy expects it (no transaction)."""
        raw = fairy.driver_connection
        if isinstance(raw, psycopg.Connection) and not raw.closed:
            if raw.info.transaction_status != TransactionStatus.IDLE:
                raw.rollback()
            raw.autocommit = False
        fairy.close()

    @contextmanager
    def connection(self) -> Iterator[Raw]:
        """This thread's driver connection (or a fresh one while it is busy).

        A connection that failed at the connection level is invalidated, so the
        next attempt (``with_retries``) gets a new one.
        """
        pinned = self._pinned
        own = not pinned.busy
        held = pinned.held if own else None
        fairy = None if held is None else held.fairy
        if fairy is None:
            with translated():
                fairy = self._checkout()
            if own:
                held = pinned.held = _Held(fairy)
                with self._lock:
                    self._all.add(held)
        if own:
            pinned.busy = True
        try:
            yield fairy.driver_connection
        except BaseException as exc:
            broken = isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) or (
                isinstance(fairy.driver_connection, psycopg.Connection)
                and fairy.driver_connection.closed
            )
            if broken:
                fairy.invalidate(exc if isinstance(exc, Exception) else None)
                if held is not None:
                    held.fairy = None
                    pinned.held = None
            else:
                _reset(fairy.driver_connection)
            if not own and not broken:
                self.checkin(fairy)
            raise
        else:
            if not own:
                self.checkin(fairy)
        finally:
            if own:
                pinned.busy = False

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Raw]:
        """A driver connection inside ``BEGIN`` ... ``COMMIT`` (rolled back on error).

        SQLite writes start with ``BEGIN IMMEDIATE``, taking the write lock up
        front so two writers never both read a version and then both append.
        PostgreSQL reads run in REPEATABLE READ: one snapshot for every statement.
        """
        with self.connection() as raw:
            if isinstance(raw, sqlite3.Connection):
                raw.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            else:
                raw.execute("BEGIN" if write else "BEGIN ISOLATION LEVEL REPEATABLE READ")
            yield raw
            raw.execute("COMMIT")

    def close(self) -> None:
        """Return every held connection; then the engine's pool can be disposed."""
        with self._lock:
            held, self._all = list(self._all), weakref.WeakSet()
        for holder in held:
            holder.release()
        self._pinned = _Pinned()


def _reset(raw: Raw) -> None:
    """Leave no transaction open on a connection that raised mid-transaction."""
    try:
        if isinstance(raw, sqlite3.Connection):
            if raw.in_transaction:
                raw.execute("ROLLBACK")
        elif not raw.closed and raw.info.transaction_status != TransactionStatus.IDLE:
            raw.execute("ROLLBACK")
    except (psycopg.Error, sqlite3.Error):
        pass


__all__ = ["Database", "Raw"]
