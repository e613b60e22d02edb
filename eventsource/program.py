"""Store operations as I/O-free programs, run by a blocking or an asyncio shell.

A write that takes several statements with decisions between them (append,
soft delete, restore) is written once, as a generator: it yields the statement
it needs next and receives the result. :func:`run` drives it on a blocking
driver connection (``sqlite3``, ``psycopg.Connection``); :func:`run_async` on an
asyncio one (``aiosqlite``, ``psycopg.AsyncConnection``). Validation, ordering,
version checks and bookkeeping live in the program, so the two faces cannot
drift apart: only these two small loops differ.

A :class:`Pipeline` step asks for several statements at once, whose results
the program does not need in between: PostgreSQL sends them in one round trip.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import psycopg

T = TypeVar("T")

How = Literal["one", "all", "rowcount", "none"]


@dataclass(frozen=True, slots=True)
class Query:
    """One statement; the program receives its first row, all rows or rowcount."""

    sql: str
    params: Mapping[str, Any] | Sequence[Any] = ()
    how: How = "none"
    binary: bool = False
    """Rows in PostgreSQL's binary format (uuids, timestamps and jsonb decode
    faster); for rows whose every column psycopg loads alike in both formats
    (an enum, say, would come back as bytes). SQLite ignores it."""


@dataclass(frozen=True, slots=True)
class Many:
    """One statement for each parameter set (``executemany``); receives None."""

    sql: str
    params: Sequence[Sequence[Any]]


@dataclass(frozen=True, slots=True)
class Pipeline:
    """Statements sent together; the program receives their results as a list."""

    steps: Sequence[Query | Many]


Step = Query | Many | Pipeline
Program = Generator[Step, Any, T]

DRIVER_ERRORS = (psycopg.Error, sqlite3.Error)
"""Errors a step can fail with; the shells throw them into the program at that step."""


def _result(cursor: Any, how: How) -> Any:
    if how == "one":
        return cursor.fetchone()
    if how == "all":
        return cursor.fetchall()
    if how == "rowcount":
        return cursor.rowcount
    return None


def _execute(raw: Any, step: Query | Many) -> Any:
    cursor = raw.cursor()
    try:
        if isinstance(step, Many):
            cursor.executemany(step.sql, step.params)
            return None
        if step.binary and isinstance(cursor, psycopg.Cursor):
            cursor.execute(step.sql, step.params, binary=True)
        else:
            cursor.execute(step.sql, step.params)
        return _result(cursor, step.how)
    finally:
        cursor.close()


def run(program: Program[T], raw: Any) -> T:
    """Run ``program`` on a blocking driver connection, in the caller's transaction.

    A driver error at a step is thrown into the program there, so the program
    may handle it (a failed version check) or let it propagate.
    """
    try:
        step = next(program)
        while True:
            try:
                outcome = _run_step(raw, step)
            except DRIVER_ERRORS as exc:
                step = program.throw(exc)
            else:
                step = program.send(outcome)
    except StopIteration as done:
        result: T = done.value
        return result


def _cause(failures: list[BaseException]) -> BaseException | None:
    """The error that aborted a pipeline (not the "pipeline aborted" of the statements after)."""
    for failure in failures:
        if not isinstance(failure, psycopg.errors.PipelineAborted):
            return failure
    return failures[0] if failures else None


def _run_step(raw: Any, step: Step) -> Any:
    if isinstance(step, Pipeline):
        if isinstance(raw, psycopg.Connection):
            try:
                return _pipelined(raw, step)
            except DRIVER_ERRORS:
                _forget_prepared(raw)
                raise
        return [_execute(raw, part) for part in step.steps]
    return _execute(raw, step)


def _forget_prepared(raw: psycopg.Connection[Any]) -> None:
    """After a failed pipeline: roll back, and so forget every prepared statement.

    Pipelines run prepared statements (psycopg prepares a statement at its
    sixth use on a connection), which halves the server's work per append. But
    psycopg counts a statement prepared once its PREPARE is queued, and a
    pipeline that fails skips every statement queued after the failure, PREPAREs
    included: the next use of such a statement would name one the server never
    made (SQLSTATE 26000). ``Connection.rollback`` ends the failed transaction
    and makes psycopg drop its record of prepared statements (DEALLOCATE ALL on
    the server), so both sides agree again; a ROLLBACK statement would not.
    """
    with suppress(*DRIVER_ERRORS):
        raw.rollback()


def _pipelined(raw: psycopg.Connection[Any], step: Pipeline) -> Any:
    with raw.pipeline() as pipeline:
        cursors = []
        # The error is taken here, inside the block: raised through the
        # block's exit, psycopg would log the aborted pipeline as well.
        failures: list[BaseException] = []
        try:
            for part in step.steps:
                cursor = raw.cursor()
                if isinstance(part, Many):
                    cursor.executemany(part.sql, part.params)
                else:
                    cursor.execute(part.sql, part.params)
                cursors.append(cursor)
        except DRIVER_ERRORS as exc:
            failures.append(exc)
        try:
            pipeline.sync()
        except DRIVER_ERRORS as exc:
            failures.append(exc)
        failure = _cause(failures)
        if failure is None:
            results = [
                None if isinstance(part, Many) else _result(cursor, part.how)
                for part, cursor in zip(step.steps, cursors, strict=True)
            ]
    if failure is not None:
        raise failure
    return results


async def _execute_async(conn: Any, step: Query | Many) -> Any:
    if isinstance(conn, psycopg.AsyncConnection):
        async with conn.cursor() as cursor:
            if isinstance(step, Many):
                await cursor.executemany(step.sql, step.params)
                return None
            await cursor.execute(step.sql, step.params, binary=step.binary or None)
            return await _result_async(cursor, step.how)
    if isinstance(step, Many):
        await conn.executemany(step.sql, step.params)
        return None
    cursor = await conn.execute(step.sql, step.params)
    try:
        return await _result_async(cursor, step.how)
    finally:
        await cursor.close()


async def _result_async(cursor: Any, how: How) -> Any:
    if how == "one":
        return await cursor.fetchone()
    if how == "all":
        return await cursor.fetchall()
    if how == "rowcount":
        return cursor.rowcount
    return None


async def run_async(program: Program[T], conn: Any) -> T:
    """Run ``program`` on an asyncio driver connection, in the caller's transaction."""
    try:
        step = next(program)
        while True:
            try:
                outcome = await _run_step_async(conn, step)
            except DRIVER_ERRORS as exc:
                step = program.throw(exc)
            else:
                step = program.send(outcome)
    except StopIteration as done:
        result: T = done.value
        return result


async def _run_step_async(conn: Any, step: Step) -> Any:
    if isinstance(step, Pipeline):
        if isinstance(conn, psycopg.AsyncConnection):
            try:
                return await _pipelined_async(conn, step)
            except DRIVER_ERRORS:
                # See _forget_prepared.
                with suppress(*DRIVER_ERRORS):
                    await conn.rollback()
                raise
        return [await _execute_async(conn, part) for part in step.steps]
    return await _execute_async(conn, step)


async def _pipelined_async(conn: psycopg.AsyncConnection[Any], step: Pipeline) -> Any:
    async with conn.pipeline() as pipeline:
        cursors = []
        failures: list[BaseException] = []
        try:
            for part in step.steps:
                cursor = conn.cursor()
                if isinstance(part, Many):
                    await cursor.executemany(part.sql, part.params)
                else:
                    await cursor.execute(part.sql, part.params)
                cursors.append(cursor)
        except DRIVER_ERRORS as exc:
            failures.append(exc)
        try:
            await pipeline.sync()
        except DRIVER_ERRORS as exc:
            failures.append(exc)
        failure = _cause(failures)
        if failure is None:
            results = [
                None if isinstance(part, Many) else await _result_async(cursor, part.how)
                for part, cursor in zip(step.steps, cursors, strict=True)
            ]
    if failure is not None:
        raise failure
    return results


__all__ = ["Many", "Pipeline", "Program", "Query", "Step", "run", "run_async"]
