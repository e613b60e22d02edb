"""The error tree: every error of both packages lives in ``eventsource.errors``, under
one root."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import orjson

import eventsource
import projections
from eventsource import errors
from eventsource.jsonl import row_to_event
from projections.testing import PropertyViolation
from tests.conftest import DATA

NOT_LIBRARY_ERRORS = {PropertyViolation}
"""The test kit's failed property: an ``AssertionError`` for pytest, not a library error."""


def exception_classes(package: ModuleType) -> dict[str, type[BaseException]]:
    """The exception classes defined in the package's modules (``__main__`` runs; skipped)."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
        if info.name.endswith(".__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_error_is_defined_in_errors_py_under_the_root() -> None:
    defined = {**exception_classes(eventsource), **exception_classes(projections)}
    elsewhere = [
        name
        for name, cls in defined.items()
        if cls not in NOT_LIBRARY_ERRORS and cls.__module__ != errors.__name__
    ]
    assert elsewhere == []
    in_errors = [cls for cls in defined.values() if cls.__module__ == errors.__name__]
    assert errors.UnknownEventType in in_errors
    assert errors.TransientError in in_errors
    assert all(issubclass(cls, errors.EventSourceError) for cls in in_errors)


def test_unknown_event_type_names_the_projection_the_type_and_the_event() -> None:
    line = (DATA / "course_designer_events.jsonl").read_text(encoding="utf-8").splitlines()[0]
    event = row_to_event(orjson.loads(line))
    error = errors.UnknownEventType("course_designer_plan", event)
    assert (error.event_type, error.event_id) == (event.event_type, event.id)
    assert f"{event.event_type!r} (event {event.id})" in str(error)
    assert isinstance(errors.InvalidEventPayload("bad"), ValueError)
