"""A projection whose state is the stream itself, for testing engines and stores.

Every event, of any type, is appended to the state with its id, type, stage,
actor, ``occurred_at`` and payload, so any difference in which events count, in
their order or in their content shows up in the state and its hash. ``created_at``
is left out: two stores fed the same operations record them at different times.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from eventsource.jsonl import format_timestamp

from ..fold import thaw
from ..typing import Event, JSONValue

__all__ = ["EchoProjection", "EchoState"]


@dataclass(frozen=True, slots=True)
class EchoState:
    plan_id: UUID
    events: tuple[Mapping[str, JSONValue], ...] = ()


class EchoProjection:
    """The stream as a state (see the module docstring).

    Args:
        name: the projection's name (one per snapshot row).
        tie_rank: ranks for same-timestamp events, to exercise the engine's tie order.
        handles: the event types to echo (None: all).
    """

    version: int = 1
    payload_models: Mapping[str, type[BaseModel]] = MappingProxyType({})

    def __init__(
        self,
        *,
        name: str = "echo",
        tie_rank: Mapping[str, int] | None = None,
        handles: frozenset[str] | None = None,
    ) -> None:
        self.name = name
        self.tie_rank: Mapping[str, int] = MappingProxyType(dict(tie_rank or {}))
        self.handles: frozenset[str] | None = handles

    def initial_state(self, plan_id: UUID) -> EchoState:
        return EchoState(plan_id)

    def evolve(self, state: EchoState, event: Event) -> EchoState:
        entry = MappingProxyType(
            {
                "id": str(event.id),
                "event_type": event.event_type,
                "stage": event.stage,
                "actor_user_id": None if event.actor_user_id is None else str(event.actor_user_id),
                "occurred_at": format_timestamp(event.occurred_at),
                "payload": _payload_json(event.payload),
            }
        )
        return EchoState(state.plan_id, (*state.events, entry))

    def to_json(self, state: EchoState) -> JSONValue:
        return {"plan_id": str(state.plan_id), "events": [dict(e) for e in state.events]}

    def from_json(self, data: JSONValue) -> EchoState:
        return EchoState(
            UUID(data["plan_id"]),
            tuple(MappingProxyType(dict(e)) for e in data["events"]),
        )


def _payload_json(payload: BaseModel | Mapping[str, Any]) -> JSONValue:
    if isinstance(payload, BaseModel):
        return payload.model_dump(mode="json")
    return thaw(payload)
