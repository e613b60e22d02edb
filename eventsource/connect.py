"""Opening the database a command names, with a clear word when it cannot be opened.

Two things the drivers do not do for a person at a terminal:

* SQLite creates a database file on first connect. Only ``migrate`` (and ``demo``)
  should ever do that: every other command on a path with no file says the database
  is not migrated and leaves the directory as it was.
* A connection failure deep inside a command arrives after the store's bounded
  retries (about nine seconds), as a generic "connection failed". One probe before
  the command starts fails at once, with the driver's own reason (a refused port, a
  database or role that does not exist, a directory that is not writable).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from .config import make_engine
from .errors import SchemaMissing, StoreUnavailable, UnusableFile
from .failures import driver_reason, one_line

SQLITE_CANTOPEN: Final = 14
SQLITE_READONLY: Final = 8
CONNECT_TIMEOUT_SECONDS: Final = 10


def where(url: URL) -> str:
    """The URL as a person wrote it, safe to print (no password, no driver name)."""
    shown = url.set(drivername=url.get_backend_name()).difference_update_query(["connect_timeout"])
    return shown.render_as_string(hide_password=True)


def sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL; None for memory databases, non-SQLite and URI forms."""
    if url.get_backend_name() != "sqlite":
        return None
    if url.database in (None, "", ":memory:") or url.query.get("uri"):
        return None
    return Path(url.database)


def require_existing(url: URL) -> None:
    """Refuse a SQLite path with no database file (never create one).

    Raises:
        SchemaMissing: no file at the path (so never migrated).
        UnusableFile: the path names something that is not a file.
    """
    path = sqlite_file(url)
    if path is None:
        return
    if not path.exists():
        raise SchemaMissing(f"there is no SQLite database at {path} (no such file)")
    if not path.is_file():
        raise UnusableFile(
            f"the SQLite database path {path} is not a file; check the --database-url",
            path=str(path),
        )


def check_creatable(url: URL) -> None:
    """Before ``migrate`` creates a SQLite file: its directory must exist and be writable.

    Raises:
        UnusableFile: naming the directory and what is wrong with it.
    """
    path = sqlite_file(url)
    if path is None:
        return
    if path.exists():
        if not path.is_file():
            raise UnusableFile(
                f"the SQLite database path {path} is not a file; check the --database-url",
                path=str(path),
            )
        return
    directory = path.parent
    if not directory.exists():
        raise UnusableFile(
            f"cannot create the SQLite database {path}: the directory {directory} does not "
            f"exist; create it first (mkdir -p {directory}) or choose another path",
            path=str(path),
        )
    if not directory.is_dir():
        raise UnusableFile(
            f"cannot create the SQLite database {path}: {directory} is not a directory",
            path=str(path),
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UnusableFile(
            f"cannot create the SQLite database {path}: the directory {directory} is not "
            "writable (Permission denied); choose another path or fix its permissions",
            path=str(path),
        )


def sqlite_diagnosis(path: Path) -> str | None:
    """What the file system says about a SQLite file the driver could not open."""
    directory = path.parent
    if not directory.exists():
        return f"the directory {directory} does not exist"
    if path.exists() and not os.access(path, os.R_OK):
        return f"{path} is not readable (Permission denied)"
    if not os.access(directory, os.W_OK | os.X_OK):
        # WAL mode keeps -wal and -shm files beside the database, even for readers.
        return (
            f"the directory {directory} is not writable (Permission denied); SQLite keeps "
            "its -wal and -shm files beside the database, even to read it"
        )
    if path.exists() and not os.access(path, os.W_OK):
        return f"{path} is not writable (Permission denied)"
    return None


def probe(engine: Engine) -> None:
    """Open one connection, once, and say plainly why it failed.

    Raises:
        StoreUnavailable: the driver's reason and what to check.
    """
    url = engine.url
    try:
        with engine.connect():
            pass
    except DBAPIError as exc:
        raise unreachable(url, exc) from exc


def unreachable(url: URL, exc: BaseException) -> StoreUnavailable:
    """The error for a database that cannot be opened, naming the driver's reason."""
    reason = driver_reason(exc) or one_line(str(exc))
    path = sqlite_file(url)
    if path is not None:
        orig = getattr(exc, "orig", exc)
        code = getattr(orig, "sqlite_errorcode", None) if isinstance(orig, sqlite3.Error) else None
        found = (
            sqlite_diagnosis(path)
            if code is None
            or code & 0xFF
            in (
                SQLITE_CANTOPEN,
                SQLITE_READONLY,
            )
            else None
        )
        detail = f"{reason}: {found}" if found else reason
        return StoreUnavailable(
            f"cannot open the SQLite database {path}: {detail}; check the path and its permissions"
        )
    return StoreUnavailable(
        f"cannot connect to {where(url)}: {reason}; check that the server is running and "
        "that the URL's host, port, database and user are right (a missing database is "
        "created with `createdb`)"
    )


def open_engine(url: URL, *, create: bool = False) -> Engine:
    """An engine for a command, after the file checks and one connection probe.

    Args:
        create: the command may create the database (``migrate``, ``demo``); every
            other command refuses a SQLite path with no file.

    Raises:
        SchemaMissing: no SQLite file at the path (without ``create``).
        UnusableFile: the path or its directory cannot be used.
        StoreUnavailable: the database cannot be opened (the driver's reason).
    """
    if create:
        check_creatable(url)
    else:
        require_existing(url)
    engine = make_engine(url)
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        # libpq waits forever for a host that drops packets; a person should not.
        # Set per connection, not in the URL: the URL is also used as it is by
        # others (the change feed's LISTEN connection passes its own timeout).
        @event.listens_for(engine, "do_connect")
        def _timeout(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
            cparams.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)

    probe(engine)
    return engine


__all__ = [
    "check_creatable",
    "open_engine",
    "probe",
    "require_existing",
    "sqlite_diagnosis",
    "sqlite_file",
    "unreachable",
    "where",
]
