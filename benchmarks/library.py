"""The library as the benchmarks use it: its public API, imported in this one place.

Everything comes from the top-level packages' ``__all__``.
"""

from __future__ import annotations

from eventsource import ANY, NO_STREAM, EventStore, NewEvent, RecordedEvent
from projections import LoadedState, ProjectionEngine

__all__ = [
    "ANY",
    "NO_STREAM",
    "EventStore",
    "LoadedState",
    "NewEvent",
    "ProjectionEngine",
    "RecordedEvent",
]
