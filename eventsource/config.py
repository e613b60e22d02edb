"""One database URL: ``--database-url``, else ``EVENTSOURCE_DATABASE_URL``, else the
embedded default, a SQLite file in the working directory."""

from __future__ import annotations

import os
from typing import Any, Final

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool

from .errors import ConfigurationError

ENV_VAR: Final = "EVENTSOURCE_DATABASE_URL"
DEFAULT_URL: Final = "sqlite:///eventsource.sqlite3"
SQLITE_BUSY_TIMEOUT_MS: Final = 30_000
SQLITE_CACHE_KIB: Final = 65_536
"""Page cache per SQLite connection (64 MiB; SQLite's default is 2 MiB, which a
single long plan outgrows). SQLite takes the memory only as pages are read."""


def sqlite_pragmas(*, file: bool) -> tuple[str, ...]:
    """What every library connection to SQLite runs first, on either face.

    Foreign keys on, a busy timeout, a page cache the size of a working set and
    sorts in memory; for a file also WAL with ``synchronous = NORMAL`` (a commit
    survives a crash of the process, and is durable at the next checkpoint).
    """
    common = (
        "PRAGMA foreign_keys = ON",
        f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}",
        f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}",
        "PRAGMA temp_store = MEMORY",
    )
    if not file:
        return common
    return (*common, "PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL")


def resolve_url(flag: str | None = None) -> URL:
    """The database URL to use, normalized for the drivers this library ships.

    ``postgresql://`` and ``postgres://`` mean psycopg 3.

    Raises:
        ConfigurationError: the URL cannot be parsed or names an unsupported database.
    """
    raw = flag or os.environ.get(ENV_VAR) or DEFAULT_URL
    source = "--database-url" if flag else (ENV_VAR if os.environ.get(ENV_VAR) else "the default")
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigurationError(
            f"the database URL from {source} cannot be parsed: {raw!r}; use e.g. "
            "postgresql://user@host:5432/db or sqlite:///path/to/file.sqlite3"
        ) from None
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return url.set(drivername="sqlite+pysqlite")
    raise ConfigurationError(
        f"the database URL from {source} names {backend!r}; this library supports "
        "PostgreSQL (postgresql://...) and SQLite (sqlite:///file)"
    )


def _json_serializer(value: Any) -> str:
    return orjson.dumps(value).decode()


def make_engine(url: URL | str | None = None, **kwargs: Any) -> Engine:
    """An engine configured for the store: orjson, UTC, and SQLite write locking.

    On SQLite every connection enforces foreign keys and uses WAL; transactions
    opened with the ``eventsource_write`` execution option start with
    ``BEGIN IMMEDIATE``, which takes the write lock up front so two writers never
    both read a version and then both append.
    """
    resolved = url if isinstance(url, URL) else resolve_url(url)
    if resolved.get_backend_name() == "sqlite":
        engine = create_engine(
            resolved,
            json_serializer=_json_serializer,
            json_deserializer=orjson.loads,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            poolclass=NullPool if resolved.database in (None, "", ":memory:") else None,
            **kwargs,
        )
        _configure_sqlite(engine)
        return engine
    # Sessions run in UTC; libpq ``options`` given in the URL (a search_path, say)
    # are kept alongside.
    extra = resolved.query.get("options", "")
    options = " ".join(["-c timezone=UTC", *([extra] if isinstance(extra, str) else extra)])
    return create_engine(
        resolved.difference_update_query(["options"]),
        json_serializer=_json_serializer,
        json_deserializer=orjson.loads,
        # No pre-ping round trip per checkout: every operation already runs under
        # with_retries, and a dead pooled connection is invalidated on first use.
        connect_args={"options": options.strip()},
        **kwargs,
    )


def libpq_params(url: URL) -> dict[str, Any]:
    """psycopg connection parameters of a PostgreSQL URL, sessions in UTC.

    The URL's own query parameters (sslmode, a socket host, ``options`` with a
    search_path, ...) are kept; ``-c timezone=UTC`` joins its options, as on the
    engine's connections, so timestamps come back in UTC.
    """
    params: dict[str, Any] = url.translate_connect_args(username="user", database="dbname")
    params.update(url.query)
    extra = params.pop("options", "")
    options = " ".join(["-c timezone=UTC", *([extra] if isinstance(extra, str) else extra)])
    params["options"] = options.strip()
    return params


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in sqlite_pragmas(file=engine.url.database not in (None, "", ":memory:")):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        if connection.get_execution_options().get("eventsource_write"):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")
