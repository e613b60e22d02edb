"""The store's SQL, one module per backend (:mod:`.postgresql`, :mod:`.sqlite`).

:mod:`.base` explains the shape; :func:`dialect_for` picks the engine's.
"""

from __future__ import annotations

from sqlalchemy import Engine

from .base import EVENT_COLUMNS, Dialect, Ranks, rank_sql
from .postgresql import PostgreSQL
from .sqlite import SQLite

_DIALECTS: dict[str, type[Dialect]] = {"postgresql": PostgreSQL, "sqlite": SQLite}


def dialect_for(engine: Engine) -> Dialect:
    """The dialect of an engine from :func:`eventsource.config.make_engine`."""
    return _DIALECTS[engine.dialect.name]()


__all__ = [
    "EVENT_COLUMNS",
    "Dialect",
    "PostgreSQL",
    "Ranks",
    "SQLite",
    "dialect_for",
    "rank_sql",
]
