"""The payload models writes are checked against: what the projections can read.

Writes through the library refuse a payload that a registered projection cannot
read (DESIGN.md, "Bad data and quarantine"): ``append`` and ``import`` validate the
payload of every event whose type a projection reads with a pydantic model, naming
the field, so such an event never reaches a fold. Types no model reads stay
accepted (real logs hold many). Events the host writes with its own SQL are never
seen here; a plan the projection cannot fold is quarantined instead.

The store cannot import the projections (``projections`` builds on ``eventsource``,
never the reverse), so it learns their models through an entry-point group, as the
command line learns their commands::

    [project.entry-points."eventsource.payload_models"]
    my_package = "my_package.models:payload_models"

The entry point names a mapping, or a function of no arguments returning one, from
a reader's name (a projection's) to its models by event type:
``{"my_projection": {"thing_done": ThingDone}}``. ``projections`` registers one
function that gives the models of every projection in ``eventsource.projections``.
They are loaded the first time a write needs them, never at import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from .errors import ConfigurationError, InvalidEventPayload

GROUP: Final = "eventsource.payload_models"

Models = Mapping[str, type[BaseModel]]
"""A reader's payload models, by event type."""


class PayloadModels:
    """The payload models of every reader, by event type (see the module docstring).

    Args:
        readers: per reader name, its models by event type.
    """

    def __init__(self, readers: Mapping[str, Models] | None = None) -> None:
        self._by_type: dict[str, list[tuple[str, type[BaseModel]]]] = {}
        for reader, models in sorted((readers or {}).items()):
            for event_type, model in models.items():
                if not (isinstance(model, type) and issubclass(model, BaseModel)):
                    raise ConfigurationError(
                        f"the payload model of {event_type!r} for {reader!r} is {model!r}, "
                        "not a pydantic model class"
                    )
                self._by_type.setdefault(event_type, []).append((reader, model))

    @property
    def event_types(self) -> frozenset[str]:
        """The event types some reader has a model for."""
        return frozenset(self._by_type)

    def check(self, event_type: str, payload: Mapping[str, Any]) -> None:
        """Refuse ``payload`` unless every model for ``event_type`` reads it.

        ``payload`` is what the store will hand back (jsonb's form), so a model
        sees here exactly what it will see in a fold.

        Raises:
            InvalidEventPayload: naming the path in the payload, the reader and the
                type (``field`` is ``payload``).
        """
        for reader, model in self._by_type.get(event_type, ()):
            try:
                model.model_validate(payload)
            except ValidationError as exc:
                raise _refusal(reader, event_type, exc) from None


def _refusal(reader: str, event_type: str, exc: ValidationError) -> InvalidEventPayload:
    errors = exc.errors()
    error = errors[0]
    where = "payload" + "".join(
        f"[{step}]" if isinstance(step, int) else f".{step}" for step in error["loc"]
    )
    given = "" if error["type"] == "missing" else f" (got {_short(error.get('input'))})"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return InvalidEventPayload(
        f"{where}: {error['msg']}{given}{more}: projection {reader!r} cannot read this "
        f"{event_type} payload (`eventsource schema --type {event_type}` prints its model); "
        "fix it, or store it anyway with --no-validate-payloads (validate_payloads=False)",
        field="payload",
    )


def _short(value: Any) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."


@cache
def installed(group: str = GROUP) -> PayloadModels:
    """The models every installed package registers in the entry-point ``group``
    (loaded once per process).

    Raises:
        ConfigurationError: an entry point cannot be loaded, or gives no mapping of
            readers to models (the message names it).
    """
    readers: dict[str, Models] = {}
    for entry_point in sorted(entry_points(group=group), key=_entry_name):
        try:
            found = entry_point.load()
            if callable(found) and not isinstance(found, Mapping):
                found = _call(found)
            if not isinstance(found, Mapping):
                raise TypeError(f"{found!r} is not a mapping of readers to models")
            for reader, models in found.items():
                if not isinstance(models, Mapping):
                    raise TypeError(f"the models of {reader!r} are {models!r}, not a mapping")
                readers[str(reader)] = models
        except Exception as exc:
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise ConfigurationError(
                f"the {group} entry point {entry_point.name!r} ({entry_point.value}) is "
                f"broken: {reason}; reinstall or remove the package that provides it"
            ) from exc
    return PayloadModels(readers)


def _call(function: Callable[[], Any]) -> Any:
    return function()


def _entry_name(entry_point: EntryPoint) -> str:
    return entry_point.name


__all__ = ["GROUP", "Models", "PayloadModels", "installed"]
