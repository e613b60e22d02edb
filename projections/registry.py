"""Finding projections: built-ins plus third-party ones from an entry-point group.

A package registers a projection in its ``pyproject.toml``::

    [project.entry-points."eventsource.projections"]
    my_projection = "my_package.module:MyProjection"

The value may be a projection class (instantiated with no arguments), a factory
function, or an instance. Two projections with one name are an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from importlib.metadata import entry_points
from typing import Any, Final

from pydantic import BaseModel

from eventsource.errors import ConfigurationError, DuplicateProjection

from .typing import Projection

GROUP: Final = "eventsource.projections"
DEFAULT_PROJECTION: Final = "course_designer_plan"


class Registry(Mapping[str, Projection[Any]]):
    """Projections by name."""

    def __init__(self, projections: Iterable[Projection[Any]] = ()) -> None:
        self._by_name: dict[str, Projection[Any]] = {}
        for projection in projections:
            self.register(projection)

    def register(self, projection: Projection[Any]) -> None:
        """Add a projection.

        Raises:
            DuplicateProjection: a different projection already has this name.
            ConfigurationError: the object is not a projection.
        """
        if not isinstance(projection, Projection):
            raise ConfigurationError(
                f"{projection!r} is not a projection: it needs name, version, handles, "
                "payload_models, tie_rank, initial_state, evolve, to_json and from_json"
            )
        existing = self._by_name.get(projection.name)
        if existing is not None and type(existing) is not type(projection):
            raise DuplicateProjection(
                f"two projections are named {projection.name!r} "
                f"({type(existing).__qualname__} and {type(projection).__qualname__}); "
                "rename one of them"
            )
        self._by_name[projection.name] = projection

    def get_projection(self, name: str | None) -> Projection[Any]:
        """The projection called ``name`` (the default when None).

        Raises:
            ConfigurationError: no projection has this name.
        """
        key = name or DEFAULT_PROJECTION
        try:
            return self._by_name[key]
        except KeyError:
            known = ", ".join(sorted(self._by_name)) or "none"
            raise ConfigurationError(f"no projection named {key!r}; installed: {known}") from None

    def __getitem__(self, name: str) -> Projection[Any]:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)


def _instantiate(obj: Any) -> Projection[Any]:
    if isinstance(obj, type) or (callable(obj) and not isinstance(obj, Projection)):
        obj = obj()
    return obj  # type: ignore[no-any-return]


def discover(group: str = GROUP) -> Registry:
    """All projections registered in the entry-point group.

    Raises:
        DuplicateProjection: two entry points provide the same projection name.
    """
    registry = Registry()
    for entry in sorted(entry_points(group=group), key=lambda e: (e.name, e.value)):
        try:
            loaded = entry.load()
        except Exception as exc:
            raise ConfigurationError(
                f"entry point {entry.name} = {entry.value} in {group} cannot be loaded: {exc}"
            ) from exc
        registry.register(_instantiate(loaded))
    if DEFAULT_PROJECTION not in registry:
        from .course_designer import CourseDesignerPlanProjection

        registry.register(CourseDesignerPlanProjection())
    return registry


def payload_models() -> dict[str, Mapping[str, type[BaseModel]]]:
    """Per registered projection, the payload models of the event types it handles.

    This package's ``eventsource.payload_models`` entry point: the store checks
    appended and imported payloads against these (see ``eventsource.payload_models``).
    """
    return {
        name: {
            event_type: model
            for event_type, model in projection.payload_models.items()
            if projection.handles is None or event_type in projection.handles
        }
        for name, projection in discover().items()
    }
