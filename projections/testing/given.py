"""Given / when / then for projections, so reducer tests read like domain rules.

    given(projection, plan_created, schedule_created).when(finalized).then(expected)

Events are folded in the order written (the test chooses the stream order; nothing
is sorted), through :func:`projections.fold.fold_from_scratch`, so payloads are
validated exactly as the engine validates them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar
from uuid import UUID

from eventsource.events import RecordedEvent

from ..fold import FoldResult, fold_from_scratch
from ..typing import JSONValue, Projection

S = TypeVar("S")


@dataclass(frozen=True)
class Scenario(Generic[S]):
    """A projection and the events of one plan's stream, in stream order."""

    projection: Projection[S]
    plan_id: UUID
    events: tuple[RecordedEvent, ...]

    def when(self, *events: RecordedEvent) -> Scenario[S]:
        """The same scenario with ``events`` appended to the stream."""
        return Scenario(self.projection, self.plan_id, self.events + events)

    @property
    def result(self) -> FoldResult[S]:
        """The fold of the stream (unknown event types skipped and counted)."""
        return fold_from_scratch(self.projection, self.plan_id, self.events)

    @property
    def state(self) -> S:
        return self.result.state

    def then(self, expected: JSONValue) -> S:
        """Check the state's JSON equals ``expected``; return the state.

        Raises:
            AssertionError: the JSON differs (the message lists the differing keys).
        """
        state = self.state
        actual = self.projection.to_json(state)
        if actual != expected:
            raise AssertionError(_describe(actual, expected))
        return state


def given(
    projection: Projection[S], *events: RecordedEvent, plan_id: UUID | None = None
) -> Scenario[S]:
    """Start a scenario; ``plan_id`` defaults to the events' plan.

    Raises:
        ValueError: no events and no ``plan_id``, or events of several plans.
    """
    plan_ids = {e.plan_id for e in events} | ({plan_id} if plan_id is not None else set())
    if len(plan_ids) != 1:
        raise ValueError(
            "a scenario is one plan's stream: pass plan_id= for an empty stream, "
            f"and events of one plan only (got {len(plan_ids)} plan ids)"
        )
    return Scenario(projection, plan_ids.pop(), events)


def _describe(actual: JSONValue, expected: JSONValue, path: str = "state") -> str:
    if isinstance(actual, dict) and isinstance(expected, dict):
        return "\n".join(
            _describe(actual.get(k), expected.get(k), f"{path}.{k}")
            for k in sorted(set(actual) | set(expected))
            if actual.get(k) != expected.get(k) or (k in actual) != (k in expected)
        )
    if isinstance(actual, list) and isinstance(expected, list) and len(actual) == len(expected):
        return "\n".join(
            _describe(a, e, f"{path}[{i}]")
            for i, (a, e) in enumerate(zip(actual, expected, strict=True))
            if a != e
        )
    return f"{path}: got {actual!r}, expected {expected!r}"
