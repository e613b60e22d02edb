"""Fixtures: one contract suite, every backend.

``backend_url`` is parametrized over SQLite and PostgreSQL. PostgreSQL comes from
``EVENTSOURCE_TEST_DATABASE_URL``, else ``postgresql://postgres@127.0.0.1:5432/test``.
Each test gets its own schema there (its own file on SQLite), migrated fresh.
With no PostgreSQL reachable its tests skip with one line saying why, unless
``EVENTSOURCE_REQUIRE_POSTGRES=1`` (CI), when they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import cast

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from eventsource import EventStore, migrate
from eventsource.config import make_engine
from projections.testing import load_profile
from tests.faces import BlockingAsyncStore

load_profile()  # HYPOTHESIS_PROFILE=dev (default) | ci | nightly

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
DATA = Path(__file__).parent / "data"


def pg_base_url() -> str:
    return os.environ.get("EVENTSOURCE_TEST_DATABASE_URL", DEFAULT_PG)


@cache
def pg_unreachable_reason() -> str | None:
    url = pg_base_url().replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return (
            f"PostgreSQL at {url} is unreachable ({type(exc).__name__}); "
            "set EVENTSOURCE_TEST_DATABASE_URL"
        )
    return None


def _server_url() -> str:
    return pg_base_url().replace("postgresql+psycopg://", "postgresql://")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@cache
def session_database_url() -> str:
    """A database of this test session's own, created on first use.

    Test schemas live in it with ``search_path = <schema>, public``; its
    ``public`` holds only the uuid-ossp extension, so nothing a test does can
    resolve to another test's tables (or to tables left in the server's
    default database).
    """
    name = f"eventsource_test_{os.getpid()}"
    with psycopg.connect(_server_url(), autocommit=True) as conn:
        # Databases of sessions that were killed before they could drop theirs.
        leftovers = conn.execute(
            "SELECT datname FROM pg_database WHERE datname ~ '^eventsource_test_[0-9]+$'"
        ).fetchall()
        for (old,) in leftovers:
            pid = int(old.rsplit("_", 1)[1])
            if pid != os.getpid() and not _alive(pid):
                conn.execute(f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)')
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(_server_url()).set(database=name)
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute('CREATE EXTENSION IF NOT EXISTS "uuid-ossp"')
    return url.render_as_string(hide_password=False)


@pytest.hookimpl(trylast=True)  # after pytest's own, which tears the last fixtures down
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session_database_url.cache_info().currsize:
        name = f"eventsource_test_{os.getpid()}"
        with psycopg.connect(_server_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def require_postgres() -> str:
    """This session's PostgreSQL database URL, or skip (fail in CI) with the reason."""
    reason = pg_unreachable_reason()
    if reason is not None:
        if os.environ.get("EVENTSOURCE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"EVENTSOURCE_REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return session_database_url()


def pg_schema_url(schema: str) -> str:
    base = require_postgres()
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema},public"


def create_pg_schema() -> str:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(require_postgres(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema


def drop_pg_schema(schema: str) -> None:
    with psycopg.connect(require_postgres(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def pg_database() -> Iterator[tuple[str, EventStore]]:
    """A migrated PostgreSQL schema of its own: (url, store); skips without PostgreSQL."""
    schema = create_pg_schema()
    url = pg_schema_url(schema)
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        yield url, EventStore(engine)
    finally:
        engine.dispose()
        drop_pg_schema(schema)


@pytest.fixture
def pg() -> Iterator[tuple[str, EventStore]]:
    """(url, store) of a migrated PostgreSQL schema (PostgreSQL-only tests)."""
    with pg_database() as database:
        yield database


@pytest.fixture
def pg_engine(pg: tuple[str, EventStore]) -> Engine:
    """A migrated PostgreSQL engine only (PostgreSQL-only tests)."""
    return pg[1].engine


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, unmigrated database URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite3'}"
        return
    schema = create_pg_schema()
    try:
        yield pg_schema_url(schema)
    finally:
        drop_pg_schema(schema)


@pytest.fixture
def engine(backend_url: str) -> Iterator[Engine]:
    """A migrated engine on each backend."""
    eng = make_engine(backend_url)
    migrate.upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sync_store(engine: Engine) -> EventStore:
    """The blocking store only, for tests of blocking machinery (workers, the CLI)."""
    return EventStore(engine)


@pytest.fixture(params=["sync", "async"])
def store(request: pytest.FixtureRequest, engine: Engine, backend_url: str) -> Iterator[EventStore]:
    """The store on each backend, through each face: blocking, and asyncio (``faces``)."""
    if request.param == "sync":
        yield EventStore(engine)
        return
    face = BlockingAsyncStore(engine, backend_url)
    try:
        # Duck-typed: the asyncio face behind the blocking store's methods.
        yield cast(EventStore, face)
    finally:
        face.close()


def make_plan(engine: Engine, plan_id: uuid.UUID | None = None) -> tuple[uuid.UUID, uuid.UUID]:
    """A user and a plan created by them (the host's parent rows)."""
    user, plan = uuid.uuid4(), plan_id or uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id) VALUES (:u)"), {"u": str(user)})
        conn.execute(
            text("INSERT INTO course_designer_plans (id, created_by_user_id) VALUES (:p, :u)"),
            {"p": str(plan), "u": str(user)},
        )
    return plan, user


@pytest.fixture
def plan(engine: Engine) -> tuple[uuid.UUID, uuid.UUID]:
    """(plan_id, user_id) of a fresh plan."""
    return make_plan(engine)
