"""Folding: the pure core of the engine.

``fold`` applies a projection to events already in stream order. Everything here
is I/O-free; the engine (``projections.engine``) feeds it pages from the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from eventsource.errors import EventSourceError, FoldFailed, InvalidEventPayload, UnknownEventType
from eventsource.events import RecordedEvent

from .typing import Event, JSONValue, Projection

S = TypeVar("S")


class FrozenMapping(Mapping[str, Any]):
    """A read-only view of decoded JSON, frozen level by level as it is read.

    Wrapping costs one small object per event, whatever the payload's size: a
    reducer that never looks at a payload never pays for freezing it. Nested
    objects come back as views too, arrays as tuples.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return freeze(self._data[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"FrozenMapping({self._data!r})"


def freeze(value: Any) -> Any:
    """A read-only view of decoded JSON (mappings as views, arrays as tuples)."""
    if isinstance(value, dict):
        return FrozenMapping(value)
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, FrozenMapping):
        return _thaw(value._data)
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_thaw(v) for v in value]
    return value


def canonical_json(data: JSONValue) -> bytes:
    """Canonical bytes: orjson, sorted keys, no whitespace."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def state_hash(canonical: bytes) -> str:
    return hashlib.sha256(canonical).hexdigest()


_new_event: Final = tuple.__new__


def to_event(projection: Projection[Any], recorded: RecordedEvent) -> Event:
    """Wrap a stored row for a reducer: validated (and upcast) payload, immutable."""
    model = projection.payload_models.get(recorded.event_type)
    payload: BaseModel | Mapping[str, Any]
    if model is not None:
        try:
            payload = model.model_validate(recorded.payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "the payload"
            reason = f"the payload does not fit the model: {first['msg']} at {where}"
            raise InvalidEventPayload(
                f"event {recorded.id} ({recorded.event_type}) has a payload the projection "
                f"{projection.name!r} cannot read: {first['msg']} at {where}",
                field="payload",
                reason=reason,
            ) from exc
    else:
        payload = FrozenMapping(recorded.payload)
    return _new_event(
        Event,
        (
            recorded.id,
            recorded.plan_id,
            recorded.event_type,
            payload,
            recorded.stage,
            recorded.actor_user_id,
            recorded.occurred_at,
            recorded.created_at,
        ),
    )


def handles(projection: Projection[Any], event_type: str) -> bool:
    return projection.handles is None or event_type in projection.handles


@dataclass
class FoldResult(Generic[S]):
    """A state and how it was reached."""

    state: S
    folded: int = 0
    """Events applied by ``evolve`` (plus those of the snapshot it started from)."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Event types the projection does not handle, with their counts."""
    last: RecordedEvent | None = None
    """The last event read (folded or skipped), the snapshot position."""


def fold(
    projection: Projection[S],
    events: Iterable[RecordedEvent],
    start: FoldResult[S],
    *,
    strict: bool = False,
) -> FoldResult[S]:
    """Fold ``events`` (already in stream order, live rows only) onto ``start``.

    Raises:
        UnknownEventType: in strict mode, for an event type the projection does
            not handle.
        FoldFailed: ``evolve`` raised, or a payload fails the projection's model
            (``InvalidEventPayload``, its cause); it names the plan and the event.
    """
    state = start.state
    folded = start.folded
    skipped = dict(start.skipped)
    last = start.last
    evolve = projection.evolve
    handled = projection.handles
    models = projection.payload_models
    new, frozen = _new_event, FrozenMapping
    for recorded in events:
        last = recorded
        kind = recorded[2]
        if handled is not None and kind not in handled:
            if strict:
                raise UnknownEventType(projection.name, recorded)
            skipped[kind] = skipped.get(kind, 0) + 1
            continue
        try:
            if kind in models:
                event = to_event(projection, recorded)
            else:
                # The common case inline (the envelope is the row's first eight
                # fields, the payload a read-only view): no call, no copy.
                ident, plan, _, payload, stage, actor, occurred, created, _, _ = recorded
                event = new(
                    Event, (ident, plan, kind, frozen(payload), stage, actor, occurred, created)
                )
            state = evolve(state, event)
        except Exception as exc:  # the reducer's: any error at all is one event's
            raise fold_failed(projection, recorded, exc) from exc
        folded += 1
    return FoldResult(state=state, folded=folded, skipped=skipped, last=last)


def fold_failed(projection: Projection[Any], recorded: RecordedEvent, exc: Exception) -> FoldFailed:
    """The error of one event a projection could not fold (see ``FoldFailed``)."""
    if isinstance(exc, FoldFailed):
        return exc
    if isinstance(exc, InvalidEventPayload):
        detail = exc.reason
    elif isinstance(exc, EventSourceError):
        detail = str(exc)
    else:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return FoldFailed(
        plan_id=recorded.plan_id,
        projection=projection.name,
        projection_version=projection.version,
        event_id=recorded.id,
        event_type=recorded.event_type,
        error=detail,
    )


def fold_from_scratch(
    projection: Projection[S],
    plan_id: Any,
    events: Iterable[RecordedEvent],
    *,
    strict: bool = False,
) -> FoldResult[S]:
    """Fold a plan's whole stream starting from ``initial_state``."""
    return fold(
        projection,
        events,
        FoldResult(state=projection.initial_state(plan_id)),
        strict=strict,
    )


def sort_key(projection: Projection[Any]) -> Any:
    """The canonical stream order of DESIGN.md, for events held in memory.

    ``occurred_at``, then ``created_at``, then the projection's tie rank, then ``id``.
    """
    ranks = projection.tie_rank

    def key(event: RecordedEvent) -> tuple[Any, ...]:
        return (event.occurred_at, event.created_at, ranks.get(event.event_type, 0), event.id)

    return key


def encode_state(projection: Projection[S], state: S) -> bytes:
    return canonical_json(projection.to_json(state))


def thaw(value: Any) -> Any:
    """Plain dict/list copy of a frozen mapping (for serializing payloads)."""
    return _thaw(value)
