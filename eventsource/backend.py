"""The store boundary: driver errors become library errors, by SQLSTATE or code.

PostgreSQL errors are classified by ``sqlstate``; SQLite errors by the extended
result code (``sqlite_errorcode``). Messages are never parsed.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final, TypeVar

import psycopg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from .errors import (
    EventSourceError,
    InvalidInput,
    PermissionDenied,
    SchemaMissing,
    StoreUnavailable,
    TransientError,
    UnknownReference,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

# SQLite extended result codes (https://sqlite.org/rescode.html).
SQLITE_BUSY: Final = 5
SQLITE_LOCKED: Final = 6
SQLITE_CANTOPEN: Final = 14
SQLITE_CONSTRAINT_CHECK: Final = 275
SQLITE_CONSTRAINT_FOREIGNKEY: Final = 787
SQLITE_CONSTRAINT_NOTNULL: Final = 1299
SQLITE_CONSTRAINT_PRIMARYKEY: Final = 1555
SQLITE_CONSTRAINT_UNIQUE: Final = 2067
SQLITE_TOOBIG: Final = 18

RETRYABLE_SQLSTATES: Final = frozenset({"40001", "40P01"})
"""serialization_failure and deadlock_detected: the transaction can simply rerun."""

UNAVAILABLE_SQLSTATES: Final = frozenset({"57P01", "57P02", "57P03", "53300"})
"""admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections."""


def _sqlstate(orig: BaseException) -> str | None:
    state = getattr(orig, "sqlstate", None)
    return state if isinstance(state, str) else None


def _constraint(orig: BaseException) -> str | None:
    diag = getattr(orig, "diag", None)
    name = getattr(diag, "constraint_name", None) if diag is not None else None
    return name if isinstance(name, str) else None


DRIVER_ERRORS: Final = (psycopg.Error, sqlite3.Error)
"""What the drivers raise when the hot paths run their statements directly."""


def translate(exc: DBAPIError | psycopg.Error | sqlite3.Error) -> EventSourceError:
    """Map a driver error (raw, or in SQLAlchemy's wrapper) to the library's error tree."""
    if isinstance(exc, DBAPIError):
        orig: BaseException = exc.orig if exc.orig is not None else exc
        lost = isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated
    else:
        orig = exc
        lost = isinstance(
            exc, psycopg.OperationalError | psycopg.InterfaceError | sqlite3.OperationalError
        )
    state = _sqlstate(orig)
    if state is not None:
        if state == "23503":
            constraint = _constraint(orig) or ""
            if "actor_user_id" in constraint:
                return UnknownReference(
                    "actor_user_id names a user that does not exist; create the user first "
                    "or import with --create-parents",
                    field="actor_user_id",
                )
            return UnknownReference.missing_plan()
        if state == "23505":
            return _duplicate_id()
        if state.startswith("22") or state in ("23514", "23502", "54000"):
            return InvalidInput(
                f"the database refused the value (SQLSTATE {state}): "
                f"{getattr(getattr(orig, 'diag', None), 'message_primary', '')}"
            )
        if state in ("42P01", "42703", "42704", "3F000"):
            return SchemaMissing("the event store's tables are missing")
        if state == "42501":
            return PermissionDenied(
                "the database role lacks the privilege for this (SQLSTATE 42501); "
                "the writer role may only insert events and set deleted_at"
            )
        if state in RETRYABLE_SQLSTATES:
            return TransientError(f"transaction conflict (SQLSTATE {state}); retry")
        if state.startswith("08") or state in UNAVAILABLE_SQLSTATES:
            return StoreUnavailable(
                f"the database is unavailable (SQLSTATE {state}); check that it is running"
            )
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        if code == SQLITE_CONSTRAINT_FOREIGNKEY:
            return UnknownReference(
                "course_designer_plan_id or actor_user_id names a row that does not exist; "
                "create the plan and user first or import with --create-parents"
            )
        if code in (SQLITE_CONSTRAINT_CHECK, SQLITE_CONSTRAINT_NOTNULL, SQLITE_TOOBIG):
            return InvalidInput(f"the database refused the value ({orig.sqlite_errorname})")
        if code in (SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE):
            return _duplicate_id()
        if code in (SQLITE_BUSY, SQLITE_LOCKED):
            return TransientError("the SQLite database is locked by another writer; retry")
        if code == SQLITE_CANTOPEN:
            return StoreUnavailable(
                "the SQLite database file cannot be opened; check the path and permissions"
            )
    if lost:
        return StoreUnavailable(
            f"the database connection failed ({type(orig).__name__}); check that the "
            "database is running and the URL is right"
        )
    return EventSourceError(f"database error ({type(orig).__name__}): {orig}")


def _duplicate_id() -> EventSourceError:
    # Reached only when another transaction inserted the same id between our
    # idempotency check and our insert (ids of other plans are not locked by us).
    return TransientError("an event with this id was written concurrently; retry")


@contextmanager
def translated() -> Iterator[None]:
    """Run a block, turning driver errors into library errors."""
    try:
        yield
    except (DBAPIError, *DRIVER_ERRORS) as exc:
        raise translate(exc) from exc


class RetryPolicy:
    """When to rerun a failed transaction and how long to wait: shared by both faces.

    :func:`with_retries` sleeps between attempts, ``AsyncEventStore`` awaits.
    """

    def __init__(
        self,
        attempts: int = 10,
        first_delay: float = 0.05,
        max_delay: float = 2.0,
        on_retry: Callable[[int, EventSourceError], None] | None = None,
    ) -> None:
        self.attempts_allowed = attempts
        self.delay = first_delay
        self.max_delay = max_delay
        self.on_retry = on_retry
        self.started = time.monotonic()

    def attempts(self) -> range:
        return range(1, self.attempts_allowed + 1)

    def after_failure(self, attempt: int, exc: TransientError | StoreUnavailable) -> float:
        """The delay before the next attempt; raises when this was the last one."""
        if attempt == self.attempts_allowed:
            if isinstance(exc, StoreUnavailable):
                raise StoreUnavailable(
                    f"{exc} (gave up after {attempt} attempts in "
                    f"{time.monotonic() - self.started:.1f}s)"
                ) from exc
            raise exc
        delay = self.delay
        log.log(
            logging.WARNING if isinstance(exc, StoreUnavailable) else logging.INFO,
            "%s; retrying in %.2fs (attempt %d of %d)",
            exc,
            delay,
            attempt + 1,
            self.attempts_allowed,
        )
        if self.on_retry is not None:
            self.on_retry(attempt, exc)
        self.delay = min(delay * 2, self.max_delay)
        return delay


def with_retries(
    operation: Callable[[], T],
    *,
    attempts: int = 10,
    first_delay: float = 0.05,
    max_delay: float = 2.0,
    on_retry: Callable[[int, EventSourceError], None] | None = None,
) -> T:
    """Run ``operation`` (a whole transaction), rerunning it on transient failures.

    Serialization failures, deadlocks, a locked SQLite file and lost connections are
    retried with exponential backoff; after ``attempts`` the last error is raised.
    The defaults wait about nine seconds in all: enough to ride out a database
    restart, short enough to say so clearly when the database stays down.
    Operations must be safe to rerun: every write is one transaction and appends
    carry their ids from before the first attempt, so a retry after an ambiguous
    commit is an idempotent no-op.

    Raises:
        StoreUnavailable: the database stayed unreachable through every attempt.
        TransientError: every attempt hit a conflict.
    """
    policy = RetryPolicy(attempts, first_delay, max_delay, on_retry)
    for attempt in policy.attempts():
        try:
            with translated():
                return operation()
        except (TransientError, StoreUnavailable) as exc:
            time.sleep(policy.after_failure(attempt, exc))
    raise AssertionError("unreachable")
