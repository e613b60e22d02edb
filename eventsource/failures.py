"""What a failed command tells its user: one line, the cause as the driver or the
operating system gave it, what to do, and a documented exit code.

The command line (``eventsource.cli``) sends every exception that escapes a command
through :func:`describe`; nothing reaches the user as a traceback unless they ask for
one with ``eventsource --debug``. The exit codes are the README's table.
"""

from __future__ import annotations

import errno
import sqlite3
from typing import Final

import psycopg
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from .backend import translate
from .errors import EventSourceError, StoreUnavailable

EXIT_OK: Final = 0
"""Done (also when the reader of a pipe stopped early, as ``head`` does)."""
EXIT_ERROR: Final = 1
"""The command failed; stderr says why in one line."""
EXIT_USAGE: Final = 2
"""The command line itself is wrong: an unknown option, a missing argument."""
EXIT_DIFFERENCES: Final = 3
"""``verify`` found plans that differ."""
EXIT_INTERRUPTED: Final = 130
"""Interrupted with Ctrl-C (128 + SIGINT, as shells report it)."""

_OS_ADVICE: Final = {
    errno.ENOSPC: "free some space or write elsewhere",
    errno.EDQUOT: "free some space or write elsewhere",
    errno.EFBIG: "write elsewhere or in smaller parts",
    errno.EACCES: "check the permissions, or choose another path",
    errno.EPERM: "check the permissions, or choose another path",
    errno.EROFS: "the file system is read-only; choose another path",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "check the path",
    errno.EISDIR: "name a file, not a directory",
    errno.EIO: "the device reported an I/O error; check it",
}


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) as one space."""
    return " ".join(text.split())


def driver_reason(exc: BaseException) -> str | None:
    """The driver's own message for the error behind ``exc``, if one is behind it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.orig is not None:
            current = current.orig
        if isinstance(current, psycopg.Error | sqlite3.Error):
            reason = one_line(str(current))
            return reason.removeprefix("connection failed: ") or type(current).__name__
        current = current.__cause__ or current.__context__
    return None


def is_broken_pipe(exc: BaseException) -> bool:
    """Whether ``exc`` means the reader of our output went away (``| head``)."""
    return isinstance(exc, BrokenPipeError) or (
        isinstance(exc, OSError) and exc.errno == errno.EPIPE
    )


def describe_os_error(exc: OSError, action: str | None = None) -> str:
    """``cannot write /x: No space left on device; free some space or write elsewhere``."""
    reason = exc.strerror or one_line(str(exc)) or type(exc).__name__
    target = exc.filename
    what = action or "file system error"
    if target is not None and action is not None:
        head = f"{action} {target}: {reason}"
    elif target is not None:
        head = f"{what} on {target}: {reason}"
    else:
        head = f"{what}: {reason}"
    advice = _OS_ADVICE.get(exc.errno or 0)
    return f"{head}; {advice}" if advice else head


def describe(exc: BaseException) -> str:
    """One line for any exception a command let escape (without the ``Error: ``)."""
    if isinstance(exc, EventSourceError):
        message = one_line(str(exc))
        reason = driver_reason(exc) if isinstance(exc, StoreUnavailable) else None
        if reason and reason not in message:
            message = f"{message} (the driver said: {reason})"
        return message
    if isinstance(exc, DBAPIError | psycopg.Error | sqlite3.Error):
        return describe(_translated(exc))
    if isinstance(exc, SQLAlchemyError):
        return f"database error: {one_line(str(exc))}"
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    text = one_line(str(exc))
    return (
        f"unexpected {type(exc).__name__}{': ' + text if text else ''}; this is a bug: "
        "rerun with `eventsource --debug ...` for the traceback and report it"
    )


def _translated(exc: DBAPIError | psycopg.Error | sqlite3.Error) -> EventSourceError:
    error = translate(exc)
    error.__cause__ = exc
    return error


__all__ = [
    "EXIT_DIFFERENCES",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "describe",
    "describe_os_error",
    "driver_reason",
    "is_broken_pipe",
    "one_line",
]
