"""Scratch databases: created for one run, migrated, and dropped afterwards.

PostgreSQL gets a fresh database (``eventsource_bench_<pid>_<random>``) on the
server named by ``--database-url``, else ``EVENTSOURCE_TEST_DATABASE_URL``, else
``postgresql://postgres@127.0.0.1:5432/test`` (the user must be allowed to create
databases); SQLite gets a file in a temporary directory.
Both the library and the raw driver talk to that one scratch database.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import psycopg
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from eventsource import migrate
from eventsource.config import make_engine

from .raw import PostgresRaw, RawDriver, SqliteRaw

__all__ = ["DEFAULT_PG", "PostgresUnavailable", "Scratch", "pg_base_url", "scratch_database"]

DEFAULT_PG: Final = "postgresql://postgres@127.0.0.1:5432/test"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be reached; the message says where and what to set."""


@dataclass
class Scratch:
    backend: str
    where: str
    """Human-readable location (schema and server, or file)."""
    engine: Engine
    raw: RawDriver


def pg_base_url(flag: str | None) -> str:
    return flag or os.environ.get("EVENTSOURCE_TEST_DATABASE_URL") or DEFAULT_PG


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://").replace(
        "postgres://", "postgresql://"
    )


def _hide_password(url: str) -> str:
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return url
    host, port, db = info.get("host", "?"), info.get("port", "5432"), info.get("dbname", "?")
    return f"{info.get('user', '')}@{host}:{port}/{db}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _drop_leftovers(admin: psycopg.Connection[Any]) -> None:
    """Drop scratch databases of benchmark runs that were killed before cleaning up."""
    rows = admin.execute(
        "SELECT datname FROM pg_database WHERE datname ~ '^eventsource_bench_[0-9]+_[0-9a-f]+$'"
    ).fetchall()
    for (name,) in rows:
        pid = int(name.split("_")[2])
        if pid != os.getpid() and not _alive(pid):
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _drop_database(conninfo: str, name: str, attempts: int = 5) -> None:
    """Drop the scratch database, reconnecting if the server dropped our session."""
    for attempt in range(1, attempts + 1):
        try:
            with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except psycopg.OperationalError:
            if attempt == attempts:
                raise
            time.sleep(2.0 * attempt)


def _check_migrated(raw: PostgresRaw) -> None:
    row = raw.conn.execute("SELECT to_regclass('course_designer_plan_events')").fetchone()
    if row is None or row[0] is None:
        raise RuntimeError("the scratch database was not migrated")


@contextmanager
def _postgres(base: str) -> Iterator[Scratch]:
    """A database of its own, not a schema: a schema's ``search_path`` falls back to
    ``public``, and a migrated ``public`` (the default ``test`` database often has
    one) would make the migration a no-op and the benchmark write into ``public``.
    """
    server = make_url(_libpq(base))
    conninfo = server.render_as_string(hide_password=False)
    try:
        admin = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        raise PostgresUnavailable(
            f"PostgreSQL at {_hide_password(conninfo)} is unreachable ({type(exc).__name__}); "
            "pass --database-url or set EVENTSOURCE_TEST_DATABASE_URL"
        ) from exc
    name = f"eventsource_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    scratch_info = server.set(database=name).render_as_string(hide_password=False)
    with admin:
        _drop_leftovers(admin)
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(scratch_info, autocommit=True) as conn:
            conn.execute('CREATE EXTENSION IF NOT EXISTS "uuid-ossp"')
        engine = make_engine(scratch_info)
        try:
            migrate.upgrade(engine)
            raw = PostgresRaw(scratch_info)
            try:
                _check_migrated(raw)
                yield Scratch(
                    "postgresql", f"database {name} on {_hide_password(conninfo)}", engine, raw
                )
            finally:
                raw.close()
        finally:
            engine.dispose()
    finally:
        _drop_database(conninfo, name)


@contextmanager
def _sqlite() -> Iterator[Scratch]:
    directory = Path(tempfile.mkdtemp(prefix="eventsource-bench-"))
    path = directory / "bench.sqlite3"
    try:
        engine = make_engine(f"sqlite:///{path}")
        try:
            migrate.upgrade(engine)
            raw = SqliteRaw(str(path))
            try:
                yield Scratch("sqlite", f"file {path}", engine, raw)
            finally:
                raw.close()
        finally:
            engine.dispose()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def scratch_database(backend: str, database_url: str | None) -> Iterator[Scratch]:
    """A migrated, empty scratch database on ``backend``, removed on exit.

    Raises:
        PostgresUnavailable: PostgreSQL was asked for and cannot be reached.
    """
    if backend == "postgresql":
        with _postgres(pg_base_url(database_url)) as scratch:
            yield scratch
    elif backend == "sqlite":
        with _sqlite() as scratch:
            yield scratch
    else:
        raise ValueError(f"unknown backend {backend!r}")
