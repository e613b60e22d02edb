"""The event store: every tier in one object.

:class:`~eventsource.streams.StreamStore` appends and reads streams;
:class:`~eventsource.feed.ChangeFeedStore` adds the change feed;
:class:`~eventsource.snapshots.SnapshotStore` adds snapshots and replay
checkpoints. :class:`EventStore` is the top tier, the one most callers want.
The projection engine depends only on the small interfaces in
:mod:`eventsource.typing`, not on this class.
"""

from __future__ import annotations

from typing import Any

from .snapshots import SnapshotStore


class EventStore(SnapshotStore):
    """The store of ``course_designer_plan_events`` with all its tiers.

    Args:
        engine: a SQLAlchemy engine from :func:`eventsource.make_engine`.
        max_payload_bytes: the largest payload (as JSON) an append accepts.
        hooks: write hooks run inside every write transaction.
    """

    @classmethod
    def from_url(cls, url: str | None = None, **kwargs: Any) -> EventStore:
        """A store for ``url`` (else ``EVENTSOURCE_DATABASE_URL``, else the default)."""
        store: EventStore = super().from_url(url, **kwargs)
        return store


__all__ = ["EventStore"]
