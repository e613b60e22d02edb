"""The projection protocol and the event envelope reducers receive.

A projection is the Decider's read half: ``initial_state`` and ``evolve``. The
engine owns ordering, snapshots and I/O; reducers own nothing but the fold.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple, Protocol, TypeVar, runtime_checkable
from uuid import UUID

from pydantic import BaseModel

S = TypeVar("S")

JSONValue = Any
"""A value orjson can serialize: dict, list, str, int, float, bool or None."""


class Event(NamedTuple):
    """An event as a reducer sees it: immutable, payload already validated.

    ``payload`` is the pydantic model the projection declared for this event type
    (frozen, older shapes upcast), or, for a projection without a model for the
    type, a read-only mapping of the raw JSON. A named tuple: the engine builds
    one per event folded, in a tenth of a frozen dataclass's time.
    """

    id: UUID
    plan_id: UUID
    event_type: str
    payload: BaseModel | Mapping[str, Any]
    stage: str | None
    actor_user_id: UUID | None
    occurred_at: datetime
    created_at: datetime


@runtime_checkable
class Projection(Protocol[S]):
    """A pluggable reducer folding one plan's events into a state.

    Attributes:
        name: unique name, used by ``--projection`` and in the snapshot table.
        version: bump it whenever ``evolve`` changes meaning; snapshots of other
            versions are never used, so a bump forces a rebuild.
        handles: the event types ``evolve`` understands, or ``None`` for all. Other
            types are skipped and counted (an error in strict mode).
        payload_models: per event type, a pydantic model validating (and upcasting)
            the payload before ``evolve`` sees it.
        tie_rank: per event type, a rank ordering events with identical
            ``occurred_at`` and ``created_at`` (lower first), applied before ``id``.

    Reducers must be pure: no I/O, no clock, no randomness, and they must never
    change the state they were given (return a new one).
    """

    name: str
    version: int
    handles: frozenset[str] | None
    payload_models: Mapping[str, type[BaseModel]]
    tie_rank: Mapping[str, int]

    def initial_state(self, plan_id: UUID) -> S:
        """The state of a plan before any event."""
        ...

    def evolve(self, state: S, event: Event) -> S:
        """Return the state after ``event``; never modify ``state``."""
        ...

    def to_json(self, state: S) -> JSONValue:
        """The state as plain JSON data (the canonical form that gets hashed)."""
        ...

    def from_json(self, data: JSONValue) -> S:
        """Rebuild a state from :meth:`to_json` output (snapshots)."""
        ...
