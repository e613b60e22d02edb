"""The library as the benchmarks use it: its public API, imported in this one place.

Everything comes from the top-level packages. ``projections`` does not export its
engine yet, so :class:`ProjectionEngine` (and the :class:`LoadedState` it returns)
come from ``projections.engine`` here, and only here: when ``projections`` exports
them, change the one import below.
"""

from __future__ import annotations

from eventsource import ANY, NO_STREAM, EventStore, NewEvent, RecordedEvent
from projections.engine import LoadedState, ProjectionEngine

__all__ = [
    "ANY",
    "NO_STREAM",
    "EventStore",
    "LoadedState",
    "NewEvent",
    "ProjectionEngine",
    "RecordedEvent",
]
