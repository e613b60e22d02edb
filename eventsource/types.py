"""Column types that mean the same thing on PostgreSQL and SQLite.

On SQLite, UUIDs are stored as canonical 36-character lowercase text and
timestamps as fixed-width RFC 3339 UTC text with microseconds
(``2025-05-14T03:27:36.133474Z``): both sort as text exactly as PostgreSQL
sorts ``uuid`` and ``timestamptz``, so the stream order is the same everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import String
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

SQLITE_NOW = "(strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))"
"""SQLite's closest ``now()``: millisecond clock, padded to the fixed width."""


class UUIDType(TypeDecorator[UUID]):
    """``uuid`` on PostgreSQL, canonical text on SQLite."""

    impl = String(36)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.UUID(as_uuid=True))
        return dialect.type_descriptor(String(36))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return str(value if isinstance(value, UUID) else UUID(str(value)))

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        # psycopg already returns uuid.UUID: no per-value Python call on the hot path.
        if dialect.name == "postgresql":
            return None
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value: Any, dialect: Dialect) -> UUID | None:
        if value is None or isinstance(value, UUID):
            return value
        return UUID(value)


def format_sqlite_timestamp(value: datetime) -> str:
    # Not strftime: its %Y does not zero-pad years before 1000 on glibc.
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Timestamp(TypeDecorator[datetime]):
    """``timestamp with time zone`` on PostgreSQL, fixed-width UTC text on SQLite.

    Values always come back timezone-aware, in UTC.
    """

    impl = String(27)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        return dialect.type_descriptor(String(27))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return value
        return format_sqlite_timestamp(value)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        # Engines from make_engine run PostgreSQL sessions in UTC, so psycopg
        # already returns aware datetimes in UTC: no per-value Python call.
        if dialect.name == "postgresql":
            return None
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        return datetime.fromisoformat(value)
