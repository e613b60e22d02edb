"""Write hooks: code that runs inside every write transaction (inline projections)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from sqlalchemy import Connection

from .events import RecordedEvent


@dataclass(frozen=True, slots=True)
class WriteNotice:
    """What a write did to one plan, for write hooks (inline projections).

    ``earliest`` is the smallest ``occurred_at`` the write touched; snapshots
    positioned at or after it were marked stale in this transaction.
    """

    plan_id: UUID
    kind: str  # "append" | "soft_delete" | "restore" | "import"
    earliest: datetime
    appended: tuple[RecordedEvent, ...] = ()


class WriteHook(Protocol):
    """Runs inside every write transaction, after the rows are written.

    Inline projections implement it to update their snapshots atomically with
    the events. It must only use ``connection`` and must not commit; raising
    rolls the whole write back. ``store`` is the :class:`~eventsource.EventStore`
    that writes (typed loosely here, so this module stays below the store's).
    """

    def after_write(self, store: Any, connection: Connection, notice: WriteNotice) -> None: ...


__all__ = ["WriteHook", "WriteNotice"]
