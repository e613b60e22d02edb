"""One error tree for the whole library.

Every error the library raises derives from :class:`EventSourceError`. Each
subclass says what went wrong and, in its message, what to do about it. Driver
errors are translated at the store boundary by SQLSTATE (PostgreSQL) or by
SQLite's extended result code, never by matching message text.

This module imports nothing of the library, so every module can raise its errors.
"""

from __future__ import annotations

from typing import Protocol
from uuid import UUID


class _EventRef(Protocol):
    """What an error needs of an event (a ``RecordedEvent`` has both)."""

    @property
    def id(self) -> UUID: ...

    @property
    def event_type(self) -> str: ...


class EventSourceError(Exception):
    """Root of every error raised by ``eventsource`` and ``projections``."""


class InvalidInput(EventSourceError, ValueError):
    """Input that can never be stored: fix the data and try again.

    Attributes:
        field: the offending field (``"payload"``, ``"event_type"``, ...), when known.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownReference(InvalidInput):
    """An event names a plan or actor that does not exist (a foreign key failed)."""

    @classmethod
    def missing_plan(cls) -> UnknownReference:
        """The error of a write to a plan that has no ``course_designer_plans`` row."""
        return cls(
            "course_designer_plan_id names a plan that does not exist; create the plan "
            "first or import with --create-parents",
            field="course_designer_plan_id",
        )


class HostParentsRefused(UnknownReference):
    """``--create-parents`` would insert into a parent table that is the host's own.

    Attributes:
        table: the host's table (``users`` or ``course_designer_plans``).
    """

    def __init__(self, message: str, *, table: str, field: str) -> None:
        super().__init__(message, field=field)
        self.table = table


class InvalidEventPayload(InvalidInput):
    """A stored payload does not match the projection's model for its type.

    Attributes:
        reason: what is wrong, without naming the event (``FoldFailed`` names it).
    """

    def __init__(self, message: str, *, field: str | None = None, reason: str | None = None):
        super().__init__(message, field=field)
        self.reason = reason or message


class UnknownPlan(EventSourceError, LookupError):
    """The plan has no events (or does not exist)."""

    def __init__(self, plan_id: UUID) -> None:
        super().__init__(f"plan {plan_id} has no events; check the plan id")
        self.plan_id = plan_id


class UnknownEvent(EventSourceError, LookupError):
    """No event has this id."""

    def __init__(self, event_id: UUID) -> None:
        super().__init__(f"no event with id {event_id}; check the event id")
        self.event_id = event_id


class ConcurrencyConflict(EventSourceError):
    """The plan's stream was not at the version the writer expected.

    Re-read the plan, decide again, and append with the new version.
    """

    def __init__(self, plan_id: UUID, expected: object, actual: int) -> None:
        super().__init__(
            f"plan {plan_id}: expected version {expected}, but the stream is at version "
            f"{actual}; re-read the plan and retry with the current version"
        )
        self.plan_id = plan_id
        self.expected = expected
        self.actual = actual


class IdempotencyConflict(EventSourceError):
    """An event id was re-sent with different content than the stored event."""

    def __init__(self, event_id: UUID, fields: list[str]) -> None:
        super().__init__(
            f"event {event_id} already exists with different {', '.join(fields)}; "
            "re-sending an id is only allowed with identical content, use a new id"
        )
        self.event_id = event_id
        self.fields = fields


class SchemaMissing(EventSourceError):
    """The database was never migrated (or is behind)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"{detail}; run `eventsource migrate` against this database first")


class HostTablesMissing(EventSourceError):
    """An audit against the host service's tables found none to compare with."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(
            f"the database has no {', '.join(missing)} table; host-drift compares rebuilt "
            "plans with the host service's own tables: point it at the host's database"
        )
        self.missing = missing


class TransientError(EventSourceError):
    """A failure that rerunning the whole transaction may cure (retried internally)."""


class PermissionDenied(EventSourceError, PermissionError):
    """The database role may not do this (least-privilege roles at work)."""


class StoreUnavailable(EventSourceError, ConnectionError):
    """The database cannot be reached (after bounded retries)."""


class NonDeterministicProjection(EventSourceError):
    """Folding the same events twice gave different states: the reducer is impure."""

    def __init__(self, projection: str, plan_id: UUID, first: str, second: str) -> None:
        super().__init__(
            f"projection {projection!r} is not deterministic: plan {plan_id} folded to "
            f"hash {first[:12]} then {second[:12]}; a reducer must not read the clock, use "
            "randomness, mutate its input, or depend on set/dict iteration order"
        )
        self.projection = projection
        self.plan_id = plan_id
        self.first = first
        self.second = second


class UnknownEventType(EventSourceError):
    """Strict mode met an event type the projection does not handle."""

    def __init__(self, projection: str, event: _EventRef) -> None:
        super().__init__(
            f"projection {projection!r} does not handle event type {event.event_type!r} "
            f"(event {event.id}); add it to the projection or fold without strict mode"
        )
        self.event_type = event.event_type
        self.event_id = event.id


class FoldFailed(EventSourceError):
    """A projection could not fold one of a plan's events: its reducer raised, or the
    payload does not fit the projection's model.

    Workers, ``replay``, ``verify`` and ``state --all`` quarantine the plan (see
    ``eventsource quarantine``) and go on with every other plan; a load of the plan
    raises this. The message names the plan, the event and what to do.

    Attributes:
        plan_id, projection, projection_version, event_id, event_type: where it failed.
        error: the reducer's error, as ``Type: message``.
    """

    def __init__(
        self,
        *,
        plan_id: UUID,
        projection: str,
        projection_version: int,
        event_id: UUID | None,
        event_type: str | None,
        error: str,
    ) -> None:
        where = "" if event_id is None else f" at event {event_id} ({event_type})"
        super().__init__(
            f"projection {projection!r} (version {projection_version}) cannot fold plan "
            f"{plan_id}{where}: {error}. Fix the reducer, upcast the payload (a payload "
            f"model), or soft-delete the event (eventsource delete {event_id or 'EVENT'}); "
            f"then retry it with: eventsource quarantine --retry {plan_id}"
        )
        self.plan_id = plan_id
        self.projection = projection
        self.projection_version = projection_version
        self.event_id = event_id
        self.event_type = event_type
        self.error = error


class NoEventsAsOf(UnknownPlan):
    """Time travel to before the plan's first event: it did not exist yet then."""

    def __init__(self, plan_id: UUID, moment: str) -> None:
        LookupError.__init__(self, f"plan {plan_id} has no events as of {moment}")
        self.plan_id = plan_id
        self.moment = moment


class ConfigurationError(EventSourceError, ValueError):
    """The configuration (database URL, projection name, ...) is unusable."""


class DuplicateProjection(ConfigurationError):
    """Two projections were registered under one name."""


class UnusableFile(EventSourceError, OSError):
    """A file a command reads or writes cannot be used: missing, unreadable, on a full
    disk, in a directory that does not exist, ...; the message names the file and the
    operating system's reason.

    Attributes:
        path: the file, when there is one (None for stdin and stdout).
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class RefusedOutput(UnusableFile):
    """An output path that is not a regular file (a symbolic link, a device, a
    directory): it is never replaced; write to stdout and redirect instead."""
