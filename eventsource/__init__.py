"""eventsource: the append-only store of ``course_designer_plan_events``.

The public API is re-exported here; everything else is implementation.
"""

from .async_store import AsyncEventStore, AsyncWriteHook
from .config import make_engine, resolve_url
from .errors import (
    ConcurrencyConflict,
    ConfigurationError,
    EventSourceError,
    FoldFailed,
    IdempotencyConflict,
    InvalidEventPayload,
    InvalidInput,
    NoEventsAsOf,
    NonDeterministicProjection,
    PermissionDenied,
    SchemaMissing,
    StoreUnavailable,
    UnknownEvent,
    UnknownPlan,
    UnknownReference,
)
from .events import STAGES, NewEvent, RecordedEvent
from .feed import ChangeFeedStore
from .hooks import WriteHook, WriteNotice
from .parents import create_plan, create_user
from .payload_models import PayloadModels
from .positions import StreamPosition, TimelineCursor, TimelinePage
from .snapshots import QuarantineEntry, Snapshot, SnapshotStore
from .store import EventStore
from .streams import AppendResult, StreamStore
from .versions import ANY, NO_STREAM, STREAM_EXISTS, ExpectedVersion, StreamState

__all__ = [
    "ANY",
    "NO_STREAM",
    "STAGES",
    "STREAM_EXISTS",
    "AppendResult",
    "AsyncEventStore",
    "AsyncWriteHook",
    "ChangeFeedStore",
    "ConcurrencyConflict",
    "ConfigurationError",
    "EventSourceError",
    "EventStore",
    "ExpectedVersion",
    "FoldFailed",
    "IdempotencyConflict",
    "InvalidEventPayload",
    "InvalidInput",
    "NewEvent",
    "NoEventsAsOf",
    "NonDeterministicProjection",
    "PayloadModels",
    "PermissionDenied",
    "QuarantineEntry",
    "RecordedEvent",
    "SchemaMissing",
    "Snapshot",
    "SnapshotStore",
    "StoreUnavailable",
    "StreamPosition",
    "StreamState",
    "StreamStore",
    "TimelineCursor",
    "TimelinePage",
    "UnknownEvent",
    "UnknownPlan",
    "UnknownReference",
    "WriteHook",
    "WriteNotice",
    "create_plan",
    "create_user",
    "make_engine",
    "resolve_url",
]
