"""The audit against the host's own tables: does the rebuilt plan agree with them?

``verify`` compares the library with itself. This compares each plan's state,
folded from scratch from its events, with the rows the host service keeps for
it: ``course_designer_plans`` (name, status, active stage, creator) and the live
``course_designer_plan_stages`` rows (status, planned dates, actual times), field
by field. Stage times are compared within a tolerance (one second by default):
the service stamps them with its own clock after it took the plan's lock, which
the events do not record (README, "Beside the host").

It only reads, inside one read-only transaction per page of plans, so a plan's
rows and its events are seen at one moment even while the service writes. It
needs ``SELECT`` on ``course_designer_plans``, ``course_designer_plan_stages`` and
the event table, nothing else.

What it reports for a plan:

* every field that differs, with both values (and how far apart, for times);
* a plan the host has no row for, or whose row it soft-deleted (``deleted_at``:
  reported beside the fields, which are still compared: the rows are what the
  service last held);
* a host plan with no events (its history is missing from the log);
* stage rows the host soft-deleted are left out (they are not the plan's stages);
  a stage missing on either side is a difference.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from itertools import islice
from typing import Any, Final
from uuid import UUID

from sqlalchemy import Connection, bindparam, inspect, text

from eventsource import EventStore, PermissionDenied
from eventsource.backend import translated, with_retries
from eventsource.errors import HostTablesMissing
from eventsource.jsonl import format_timestamp, parse_timestamp

from .course_designer import CourseDesignerPlanProjection
from .engine import ProjectionEngine
from .typing import JSONValue, Projection

__all__ = [
    "DEFAULT_TOLERANCE",
    "DriftReport",
    "FieldDrift",
    "PlanDrift",
    "audit_targets",
    "check_host_tables",
    "host_drift",
    "host_plan_ids",
]

DEFAULT_TOLERANCE: Final = timedelta(seconds=1)
PAGE: Final = 200
"""Plans audited per read transaction."""

PLANS: Final = "course_designer_plans"
STAGES: Final = "course_designer_plan_stages"
HOST_TABLES: Final = (PLANS, STAGES)
PLAN_FIELDS: Final = ("name", "status", "active_stage", "created_by_user_id")
STAGE_FIELDS: Final = ("status", "planned_starts_on", "planned_ends_on")
STAGE_TIMES: Final = ("actual_started_at", "actual_completed_at")

_PLAN_ROWS: Final = text(
    "SELECT id, name, CAST(status AS TEXT), CAST(active_stage AS TEXT), created_by_user_id,"
    " deleted_at FROM course_designer_plans WHERE id IN :plans"
).bindparams(bindparam("plans", expanding=True))
_STAGE_ROWS: Final = text(
    "SELECT course_designer_plan_id, CAST(stage AS TEXT), CAST(status AS TEXT),"
    " planned_starts_on, planned_ends_on, actual_started_at, actual_completed_at, deleted_at"
    " FROM course_designer_plan_stages WHERE course_designer_plan_id IN :plans"
).bindparams(bindparam("plans", expanding=True))
_HOST_PLAN_IDS: Final = text(
    "SELECT id FROM course_designer_plans WHERE id > :after ORDER BY id LIMIT :limit"
)
_FIRST_HOST_PLAN_IDS: Final = text("SELECT id FROM course_designer_plans ORDER BY id LIMIT :limit")


@dataclass(frozen=True)
class FieldDrift:
    """One field on which the host's row and the rebuilt state differ.

    ``table`` is the host's table; ``stage`` names the stage row (None for the
    plan's own row); ``field`` is the column (``row`` when a stage row is missing
    on one side). Values are as the state JSON spells them; ``seconds`` is host
    minus rebuilt, for times.
    """

    table: str
    field: str
    host: JSONValue
    rebuilt: JSONValue
    stage: str | None = None
    seconds: float | None = None

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "table": self.table,
            "stage": self.stage,
            "field": self.field,
            "host": self.host,
            "rebuilt": self.rebuilt,
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class PlanDrift:
    """One plan's audit: what differs (nothing, when it agrees)."""

    plan_id: UUID
    events: int
    """Live events folded."""
    host_row: bool
    """Whether the host has a ``course_designer_plans`` row for it."""
    host_deleted_at: datetime | None
    deleted_stage_rows: int
    """Stage rows the host soft-deleted (left out of the comparison)."""
    differences: tuple[FieldDrift, ...]
    reason: str | None = None
    """Why the plan could not be compared field by field (no events, no host row)."""

    @property
    def drifts(self) -> bool:
        return bool(self.differences) or self.reason is not None

    def to_json(self) -> dict[str, JSONValue]:
        deleted = self.host_deleted_at
        return {
            "plan_id": str(self.plan_id),
            "drifts": self.drifts,
            "events": self.events,
            "host_row": self.host_row,
            "host_deleted_at": None if deleted is None else format_timestamp(deleted),
            "deleted_stage_rows": self.deleted_stage_rows,
            "reason": self.reason,
            "differences": [d.to_json() for d in self.differences],
        }


@dataclass
class DriftReport:
    tolerance: timedelta
    plans: list[PlanDrift] = field(default_factory=list)

    @property
    def drifting(self) -> list[PlanDrift]:
        return [p for p in self.plans if p.drifts]


def host_plan_ids(store: EventStore, *, page_size: int = 1000) -> Iterator[UUID]:
    """Every plan the host has a row for, in id order, page by page."""
    last: UUID | None = None
    while True:
        with store.read_transaction() as connection:
            if last is None:
                rows = connection.execute(_FIRST_HOST_PLAN_IDS, {"limit": page_size})
            else:
                after = store.sql.uuid(last)
                rows = connection.execute(_HOST_PLAN_IDS, {"after": after, "limit": page_size})
            page = [_uuid(value) for (value,) in rows]
        yield from page
        if len(page) < page_size:
            return
        last = page[-1]


def audit_targets(store: EventStore) -> Iterator[UUID]:
    """Every plan with events or with a host row, in id order, each once."""
    previous: UUID | None = None
    for plan_id in heapq.merge(store.plan_ids(), host_plan_ids(store)):
        if plan_id != previous:
            yield plan_id
            previous = plan_id


def host_drift(
    store: EventStore,
    plan_ids: Iterable[UUID] | None = None,
    *,
    projection: Projection[Any] | None = None,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    progress: Callable[[int], None] | None = None,
) -> DriftReport:
    """Compare each plan's rebuilt state with the host's rows (read only).

    Args:
        plan_ids: the plans to audit (default: every plan with events or a host row).
        projection: the plan projection (default: the course-designer plan's).
        tolerance: how far apart a stage time may be on both sides.
        progress: called with the number of plans just audited.

    Raises:
        HostTablesMissing: the database has no host tables to compare with.
        PermissionDenied: the role may not read the host's tables or the events.
    """
    check_host_tables(store)
    chosen = projection or CourseDesignerPlanProjection()
    engine = ProjectionEngine(store, snapshot_every=None)
    report = DriftReport(tolerance=tolerance)
    targets = audit_targets(store) if plan_ids is None else iter(plan_ids)
    while page := list(islice(targets, PAGE)):
        try:
            audited = with_retries(partial(_audit_page, store, engine, chosen, page, tolerance))
        except PermissionDenied as exc:
            raise PermissionDenied(
                f"host-drift needs SELECT on {PLANS}, {STAGES} and "
                "course_designer_plan_events (SQLSTATE 42501)"
            ) from exc
        report.plans.extend(audited)
        if progress is not None:
            progress(len(audited))
    return report


def check_host_tables(store: EventStore) -> None:
    """Raises :class:`HostTablesMissing` unless the host's tables are there."""
    store.check_schema()
    with translated(), store.engine.connect() as connection:
        names = set(inspect(connection).get_table_names())
    missing = [table for table in HOST_TABLES if table not in names]
    if missing:
        raise HostTablesMissing(missing)


def _audit_page(
    store: EventStore,
    engine: ProjectionEngine,
    projection: Projection[Any],
    page: Sequence[UUID],
    tolerance: timedelta,
) -> list[PlanDrift]:
    with store.read_transaction() as connection:
        if store.dialect == "postgresql":
            # Before any read: the page (one snapshot) can write nothing.
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        ids = {"plans": [store.sql.uuid(plan) for plan in page]}
        plans = {_uuid(row[0]): row for row in connection.execute(_PLAN_ROWS, ids)}
        stages: dict[UUID, list[Any]] = {}
        for row in connection.execute(_STAGE_ROWS, ids):
            stages.setdefault(_uuid(row[0]), []).append(row)
        return [
            _audit_plan(connection, engine, projection, plan, plans, stages, tolerance)
            for plan in page
        ]


def _audit_plan(
    connection: Connection,
    engine: ProjectionEngine,
    projection: Projection[Any],
    plan_id: UUID,
    plans: dict[UUID, Any],
    stages: dict[UUID, list[Any]],
    tolerance: timedelta,
) -> PlanDrift:
    loaded = engine.fold_from_scratch(projection, plan_id, connection=connection)
    rebuilt = loaded.json if isinstance(loaded.json, dict) else {}
    row = plans.get(plan_id)
    stage_rows = stages.get(plan_id, [])
    live = {r[1]: r for r in stage_rows if r[7] is None}
    differences: list[FieldDrift] = []
    reason: str | None = None
    if loaded.event_count == 0 and row is None:
        reason = "unknown plan: no events and no host row"
    elif loaded.event_count == 0:
        reason = "no events: the log holds none of this plan's history"
    elif row is None:
        reason = "no host row: the host has no plan with this id"
    else:
        host = dict(zip(PLAN_FIELDS, (row[1], row[2], row[3], _text(row[4])), strict=True))
        differences += [
            FieldDrift(PLANS, name, host[name], rebuilt.get(name))
            for name in PLAN_FIELDS
            if host[name] != rebuilt.get(name)
        ]
        found = rebuilt.get("stages", [])
        rebuilt_stages = {s["stage"]: s for s in found if isinstance(s, dict)}
        for stage in sorted({*live, *rebuilt_stages}, key=_stage_order):
            differences += _stage_differences(
                stage, live.get(stage), rebuilt_stages.get(stage), tolerance
            )
    return PlanDrift(
        plan_id=plan_id,
        events=loaded.event_count,
        host_row=row is not None,
        host_deleted_at=None if row is None else _instant(row[5]),
        deleted_stage_rows=sum(1 for r in stage_rows if r[7] is not None),
        differences=tuple(differences),
        reason=reason,
    )


def _stage_differences(
    stage: str, row: Any, rebuilt: dict[str, Any] | None, tolerance: timedelta
) -> list[FieldDrift]:
    if row is None or rebuilt is None:
        return [
            FieldDrift(
                STAGES,
                "row",
                None if row is None else "present",
                None if rebuilt is None else "present",
                stage,
            )
        ]
    host: dict[str, Any] = {
        "status": row[2],
        "planned_starts_on": _text(row[3]),
        "planned_ends_on": _text(row[4]),
    }
    out = [
        FieldDrift(STAGES, name, host[name], rebuilt.get(name), stage)
        for name in STAGE_FIELDS
        if host[name] != rebuilt.get(name)
    ]
    for name, held in zip(STAGE_TIMES, (row[5], row[6]), strict=True):
        ours = rebuilt.get(name)
        if held is None and ours is None:
            continue
        if held is None or ours is None:
            out.append(FieldDrift(STAGES, name, _text(held), ours, stage))
            continue
        seconds = (_instant(held) - parse_timestamp(ours, name)).total_seconds()
        if abs(seconds) > tolerance.total_seconds():
            out.append(FieldDrift(STAGES, name, _text(held), ours, stage, seconds))
    return out


_STAGE_NAMES: Final = ("analysis", "design", "development", "implementation", "evaluation")


def _stage_order(stage: str) -> tuple[int, str]:
    return (_STAGE_NAMES.index(stage) if stage in _STAGE_NAMES else len(_STAGE_NAMES), stage)


def _instant(value: Any) -> Any:
    """A host timestamp as a datetime (SQLite stores text)."""
    if value is None or isinstance(value, datetime):
        return value
    return parse_timestamp(value, "timestamp")


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def _text(value: Any) -> str | None:
    """A host value as the state JSON spells it."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
