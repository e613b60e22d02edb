"""eventsource: the append-only store of ``course_designer_plan_events``.

The public API is re-exported here; everything else is implementation.
"""

from .config import make_engine, resolve_url
from .errors import (
    ConcurrencyConflict,
    ConfigurationError,
    EventSourceError,
    IdempotencyConflict,
    InvalidInput,
    NonDeterministicProjection,
    SchemaMissing,
    StoreUnavailable,
    UnknownEvent,
    UnknownPlan,
    UnknownReference,
)
from .events import STAGES, NewEvent, RecordedEvent
from .store import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    EventStore,
    ExpectedVersion,
    StreamPosition,
    StreamState,
    TimelineCursor,
    TimelinePage,
    WriteHook,
    WriteNotice,
)

__all__ = [
    "ANY",
    "NO_STREAM",
    "STAGES",
    "STREAM_EXISTS",
    "AppendResult",
    "ConcurrencyConflict",
    "ConfigurationError",
    "EventSourceError",
    "EventStore",
    "ExpectedVersion",
    "IdempotencyConflict",
    "InvalidInput",
    "NewEvent",
    "NonDeterministicProjection",
    "RecordedEvent",
    "SchemaMissing",
    "StoreUnavailable",
    "StreamPosition",
    "StreamState",
    "TimelineCursor",
    "TimelinePage",
    "UnknownEvent",
    "UnknownPlan",
    "UnknownReference",
    "WriteHook",
    "WriteNotice",
    "make_engine",
    "resolve_url",
]
