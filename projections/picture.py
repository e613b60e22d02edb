"""A picture of a plan's timeline: planned against actual, every event, as known at any time.

``timeline PLAN --html FILE`` writes one self-contained page (inline SVG, CSS and a
small script; nothing is fetched) and ``--svg FILE`` the chart alone, for the plan's
current state. The page can also travel in time, and this is the part worth reading
before changing anything here:

Every state the page can show is the engine's own answer, computed when the page is
written: ``ProjectionEngine.load(projection, plan, as_of=T, known_at=K)`` for each pair
of a valid time T and a record time K, the same call ``state --as-of T --known-at K``
makes. The page's script only switches between those pre-drawn pictures (and maps a
time named in its address to a position); it folds nothing, so the picture and
``state`` agree.

Which times: a plan's state changes in valid time only at an ``occurred_at`` of one
of its events, and in record time only where something was recorded (``created_at``)
or retracted or restored (``deleted_at``, and the store's retraction history). Between
two such instants it is constant, so those instants are all the page needs: the
valid-time axis is every distinct ``occurred_at`` (deleted events included) and
"latest", the record-time axis every distinct ``created_at``/``deleted_at``/restore
time and "now", each after a first position a microsecond before its first instant
(the plan before anything happened, or before anything was recorded). Each axis
keeps at most :data:`MAX_AXIS_POINTS` of them and the pair of axes at most
:data:`MAX_VIEWS` combinations; a plan with more keeps evenly spaced ones (the first,
the last, and "now"/"latest" always) and the page says so. A time asked for in the
page's address (``#known_at=...&as_of=...``) shows the state at the
latest kept instant at or before it, and the labels name that instant.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from copy import copy
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, cast
from uuid import UUID

import click
import orjson
from rich.console import Console
from sqlalchemy import select

from eventsource import STAGES, EventStore, RecordedEvent, UnknownPlan
from eventsource.cli import open_store, parse_uuid
from eventsource.jsonl import format_timestamp
from eventsource.render import counted
from eventsource.tables import retractions
from eventsource.typing import ProjectionStore

from .drawing import (
    TimeScale,
    asset,
    day_end,
    day_start,
    esc,
    lateness,
    num,
    parse_day,
    parse_instant,
    short_time,
)
from .engine import FieldChange, ProjectionEngine
from .fold import canonical_json, handles, sort_key, state_hash
from .registry import discover
from .typing import JSONValue, Projection

MAX_AXIS_POINTS: Final = 200
"""Instants kept on each time axis of the page's time-travel control."""
MAX_VIEWS: Final = 1000
"""(as of, known at) pairs the page holds a picture for."""
_BEFORE: Final = timedelta(microseconds=1)
BACKFILL_AFTER: Final = timedelta(seconds=1)
"""An event recorded this much later than it occurred is flagged as backfilled."""

# --- The picture: everything the page shows, from the engine -----------------


@dataclass(frozen=True)
class Extension:
    """A ``stage_extended`` in force: the planned end it moved, from and to."""

    event_id: UUID
    stage: str
    months: int | None
    before: str
    after: str


@dataclass(frozen=True)
class View:
    """The plan at one (as of, known at) pair, as the engine serves it."""

    as_of: datetime | None
    known_at: datetime | None
    state: dict[str, Any]
    hash: str
    event_count: int
    marks: str
    """One letter per event of :attr:`PlanPicture.events`: ``l`` in this state,
    ``x`` retracted at ``known_at``, ``u`` not recorded yet, ``f`` occurs after ``as_of``."""
    extensions: tuple[Extension, ...]
    baselines: Mapping[str, tuple[str, str]]
    """Per stage moved by an extension, its planned dates before the first such move."""

    @property
    def present(self) -> datetime | None:
        """The view's "now", the earlier of its two times (None: the page's now).

        In-progress stages are drawn up to it: as far as the view knows, no further."""
        times = [t for t in (self.as_of, self.known_at) if t is not None]
        return min(times) if times else None


@dataclass(frozen=True)
class EventEntry:
    """One row of the plan (deleted ones too) and what the page says of it."""

    event: RecordedEvent
    known_type: bool
    changes: tuple[FieldChange, ...] | None
    """What it changed when last in force (None: never in force)."""
    changes_known_at: datetime | None
    """The record time those changes were computed at (None: now)."""
    retracted: tuple[tuple[datetime, datetime | None], ...]
    """(deleted, restored) intervals, oldest first."""

    @property
    def backfilled(self) -> bool:
        return self.event.created_at - self.event.occurred_at > BACKFILL_AFTER

    @property
    def lane(self) -> str:
        if not self.known_type:
            return "other"
        return self.event.stage if self.event.stage in STAGES else "plan"


@dataclass(frozen=True)
class PlanPicture:
    """Everything a plan's page shows, computed before anything is drawn."""

    plan_id: UUID
    projection: str
    projection_version: int
    now: datetime
    events: tuple[EventEntry, ...]
    """In stream order (occurred, recorded, tie rank, id)."""
    valid_axis: tuple[datetime | None, ...]
    record_axis: tuple[datetime | None, ...]
    views: Mapping[tuple[int, int], View]
    """Keyed by (record-axis index, valid-axis index); the last of each is "now"/"latest"."""
    thinned: bool
    times_total: tuple[int, int]
    """Distinct instants before thinning: (valid, record)."""

    @property
    def current(self) -> View:
        return self.views[(len(self.record_axis) - 1, len(self.valid_axis) - 1)]


def _thin(points: Sequence[datetime], keep: int) -> list[datetime]:
    if len(points) <= keep:
        return list(points)
    if keep <= 1:
        return [points[-1]]
    step = (len(points) - 1) / (keep - 1)
    return sorted({points[round(i * step)] for i in range(keep)})


def record_instants(
    rows: Sequence[RecordedEvent], restores: Iterable[tuple[datetime, datetime | None]]
) -> set[datetime]:
    """Where the plan's record-time history can change: recorded, retracted, restored."""
    found = {row.created_at for row in rows}
    found |= {row.deleted_at for row in rows if row.deleted_at is not None}
    for deleted, restored in restores:
        found.add(deleted)
        if restored is not None:
            found.add(restored)
    return found


def time_axes(
    rows: Sequence[RecordedEvent],
    restores: Iterable[tuple[datetime, datetime | None]],
    *,
    max_points: int = MAX_AXIS_POINTS,
    max_views: int = MAX_VIEWS,
) -> tuple[list[datetime], list[datetime]]:
    """The valid-time and record-time instants where the plan's state can change, as many
    as the page keeps (it adds a "before" position to each axis, and "latest"/"now")."""
    valid = sorted({row.occurred_at for row in rows})
    record = sorted(record_instants(rows, restores))
    valid, record = _thin(valid, max_points), _thin(record, max_points)
    while (len(valid) + 2) * (len(record) + 2) > max_views:  # with "before" and "now"
        if len(valid) >= len(record):
            valid = _thin(valid, max(1, int(len(valid) * 0.8)))
        else:
            record = _thin(record, max(1, int(len(record) * 0.8)))
    return valid, record


def _retraction_history(
    store: ProjectionStore, plan_id: UUID
) -> dict[UUID, list[tuple[datetime, datetime | None]]]:
    """The store's record of soft deletes (so a restored event's past is known too)."""
    engine = cast(Any, store).engine
    query = select(retractions.c.event_id, retractions.c.deleted_at, retractions.c.restored_at)
    query = query.where(retractions.c.plan_id == plan_id).order_by(retractions.c.deleted_at)
    history: dict[UUID, list[tuple[datetime, datetime | None]]] = {}
    with engine.connect() as connection:
        for event_id, deleted, restored in connection.execute(query):
            history.setdefault(event_id, []).append((_utc(deleted), _utc(restored)))
    return history


def _utc(value: datetime | None) -> Any:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _extensions(
    history: Sequence[tuple[RecordedEvent, list[FieldChange]]],
) -> tuple[tuple[Extension, ...], dict[str, tuple[str, str]]]:
    extensions: list[Extension] = []
    baselines: dict[str, list[str]] = {}
    for event, changes in history:
        if event.event_type != "stage_extended":
            continue
        for change in changes:
            stage, _, part = change.path.removeprefix("stages[").partition("].")
            if part not in ("planned_starts_on", "planned_ends_on"):
                continue
            if not isinstance(change.before, str) or not isinstance(change.after, str):
                continue
            if part == "planned_ends_on" and stage == event.stage:
                months = event.payload.get("months")
                extensions.append(
                    Extension(
                        event.id,
                        stage,
                        months if isinstance(months, int) else None,
                        change.before,
                        change.after,
                    )
                )
            dates = baselines.setdefault(stage, ["", ""])
            index = 0 if part == "planned_starts_on" else 1
            if not dates[index]:
                dates[index] = change.before
    return tuple(extensions), {stage: (d[0], d[1]) for stage, d in baselines.items()}


def build_picture(
    store: ProjectionStore,
    projection: Projection[Any],
    plan_id: UUID,
    *,
    now: datetime | None = None,
    max_points: int = MAX_AXIS_POINTS,
    max_views: int = MAX_VIEWS,
) -> PlanPicture:
    """Everything the plan's page shows, each state from ``ProjectionEngine.load``.

    Raises:
        UnknownPlan: the plan has no events at all.
    """
    rows = list(cast(EventStore, store).audit(plan_id))
    if not rows:
        raise UnknownPlan(plan_id)
    rows.sort(key=sort_key(projection))
    history_of = _retraction_history(store, plan_id)
    restores = [span for spans in history_of.values() for span in spans]
    valid, record = time_axes(rows, restores, max_points=max_points, max_views=max_views)
    valid_total = len({row.occurred_at for row in rows})
    record_total = len(record_instants(rows, restores))
    engine = ProjectionEngine(store, snapshot_every=None)
    record_axis: list[datetime | None] = [record[0] - _BEFORE, *record, None]
    valid_axis: list[datetime | None] = [valid[0] - _BEFORE, *valid, None]
    index_of = {row.id: i for i, row in enumerate(rows)}
    last_changes: dict[UUID, tuple[tuple[FieldChange, ...], datetime | None]] = {}
    views: dict[tuple[int, int], View] = {}
    for k, known_at in enumerate(record_axis):
        history = list(engine.changes(projection, plan_id, known_at=known_at))
        live = {event.id for event, _ in history}
        for event, changes in history:
            last_changes[event.id] = (tuple(changes), known_at)
        for v, as_of in enumerate(valid_axis):
            prefix = [
                (event, changes)
                for event, changes in history
                if as_of is None or event.occurred_at <= as_of
            ]
            in_view = {event.id for event, _ in prefix}
            marks = [""] * len(rows)
            for row in rows:
                if row.id in in_view:
                    mark = "l"
                elif known_at is not None and row.created_at > known_at:
                    mark = "u"
                elif row.id not in live:
                    mark = "x"
                else:
                    mark = "f"
                marks[index_of[row.id]] = mark
            try:
                loaded = engine.load(projection, plan_id, as_of=as_of, known_at=known_at)
                data, digest, count = loaded.json, loaded.hash, loaded.event_count
            except UnknownPlan:  # no events then (NoEventsAsOf), or all retracted: as before any
                data = projection.to_json(projection.initial_state(plan_id))
                digest, count = state_hash(canonical_json(data)), 0
            extensions, baselines = _extensions(prefix)
            views[(k, v)] = View(
                as_of,
                known_at,
                data if isinstance(data, dict) else {"state": data},
                digest,
                count,
                "".join(marks),
                extensions,
                baselines,
            )
    entries = tuple(
        EventEntry(
            row,
            handles(projection, row.event_type),
            last_changes[row.id][0] if row.id in last_changes else None,
            last_changes[row.id][1] if row.id in last_changes else None,
            tuple(
                history_of.get(row.id)
                or ([(row.deleted_at, None)] if row.deleted_at is not None else [])
            ),
        )
        for row in rows
    )
    return PlanPicture(
        plan_id=plan_id,
        projection=projection.name,
        projection_version=projection.version,
        now=now or datetime.now(UTC),
        events=entries,
        valid_axis=tuple(valid_axis),
        record_axis=tuple(record_axis),
        views=views,
        thinned=len(valid) < valid_total or len(record) < record_total,
        times_total=(valid_total, record_total),
    )


# --- Drawing the chart --------------------------------------------------------
# One SVG in user units WIDTH wide: a label column, then the plot. Lanes top to
# bottom: plan-level events, one row per stage (planned bar, actual bar, that
# stage's events), and events of types the projection does not know, set apart.
# What depends on the (as of, known at) pair is drawn into one group, #view; the
# axis, lanes and event markers are the same in every view (markers change only
# their data-deleted / data-view attributes).

WIDTH: Final = 1000
PLOT_LEFT: Final = 168.0
PLOT_RIGHT: Final = 982.0
AXIS_TOP: Final = 8.0
AXIS_HEIGHT: Final = 26.0
MARK_STEP: Final = 13.0
MARK_GAP: Final = 11.0
MAX_SUBROWS: Final = 3
LINE_LABELS: Final = 30.0
"""The band under the lanes that names the vertical lines (now, as of, known at)."""
LEGEND_ITEM: Final = 162.0

# event type -> (symbol, legend label)
KINDS: Final[Mapping[str, tuple[str, str]]] = {
    "plan_created": ("created", "plan created"),
    "schedule_created": ("schedule", "schedule created"),
    "schedule_updated": ("schedule-updated", "schedule updated"),
    "schedule_finalized": ("finalized", "schedule finalized"),
    "plan_started": ("plan-started", "plan started"),
    "stage_started": ("started", "stage started"),
    "stage_extended": ("extended", "stage extended"),
    "stage_completed": ("completed", "stage completed"),
    "plan_completed": ("plan-completed", "plan completed"),
}
_SYMBOLS: Final = (
    '<g id="m-created"><circle r="5"/></g>'
    '<g id="m-schedule"><rect x="-4.5" y="-4.5" width="9" height="9"/></g>'
    '<g id="m-schedule-updated"><rect x="-4" y="-4" width="8" height="8"/></g>'
    '<g id="m-finalized"><path d="M0-5.5 5.5 4.5H-5.5Z"/></g>'
    '<g id="m-plan-started"><path d="M-5-5H-3V5H-5ZM-1.5-5 5.5 0-1.5 5Z"/></g>'
    '<g id="m-started"><path d="M-4-5.5 5 0-4 5.5Z"/></g>'
    '<g id="m-extended"><path d="M-5-4.5 0 0-5 4.5M0-4.5 5 0 0 4.5"/></g>'
    '<g id="m-completed"><path d="M0-6 6 0 0 6-6 0Z"/></g>'
    '<g id="m-plan-completed"><path d="M0-6 1.8-1.9 6-1.9 2.6 0.8 3.8 5.2 0 2.6-3.8 5.2'
    '-2.6 0.8-6-1.9-1.8-1.9Z"/></g>'
    '<g id="m-generic"><path d="M-5 0-2.5-4.5H2.5L5 0 2.5 4.5H-2.5Z"/></g>'
    '<g id="m-unknown"><circle r="4.5"/></g>'
    '<pattern id="hatch-ext" width="5" height="5" patternUnits="userSpaceOnUse"'
    ' patternTransform="rotate(45)"><rect width="5" height="5" fill="#fed7aa"/>'
    '<rect width="2.2" height="5" fill="#ea580c"/></pattern>'
    '<pattern id="hatch-late" width="5" height="5" patternUnits="userSpaceOnUse"'
    ' patternTransform="rotate(-45)"><rect width="2.2" height="5" fill="#dc2626"/></pattern>'
)


def _kind(entry: EventEntry) -> tuple[str, str]:
    if not entry.known_type:
        return "unknown", "unknown type (skipped)"
    return KINDS.get(entry.event.event_type, ("generic", "other known type"))


@dataclass(frozen=True)
class _Layout:
    scale: TimeScale
    lanes: tuple[tuple[str, float, float], ...]
    """(lane, top, height)."""
    markers: tuple[tuple[float, float], ...]
    """Per event of the picture: (x, y)."""
    height: float
    legend_top: float

    def lane(self, name: str) -> tuple[float, float]:
        for lane, top, height in self.lanes:
            if lane == name:
                return top, height
        raise KeyError(name)


def _instants(view: View) -> Iterable[datetime]:
    for stage in view.state.get("stages") or ():
        if not isinstance(stage, dict):
            continue
        for key in ("planned_starts_on", "planned_ends_on"):
            if isinstance(stage.get(key), str):
                yield day_start(parse_day(stage[key]))
        yield from (
            parse_instant(stage[key])
            for key in ("actual_started_at", "actual_completed_at")
            if isinstance(stage.get(key), str)
        )
    for start, end in view.baselines.values():
        if start:
            yield day_start(parse_day(start))
        if end:
            yield day_end(parse_day(end))
    for extension in view.extensions:
        yield day_end(parse_day(extension.before))


def _subrows(xs: Sequence[float]) -> list[int]:
    """Greedy rows for markers closer than MARK_GAP (the last row takes any overlap)."""
    last: list[float] = []
    rows = []
    for x in xs:
        for row, previous in enumerate(last):
            if x - previous >= MARK_GAP:
                last[row] = x
                rows.append(row)
                break
        else:
            if len(last) < MAX_SUBROWS:
                last.append(x)
                rows.append(len(last) - 1)
            else:
                row = min(range(len(last)), key=last.__getitem__)
                last[row] = x
                rows.append(row)
    return rows


def _layout(picture: PlanPicture, top: float) -> _Layout:
    instants = [picture.now, *(entry.event.occurred_at for entry in picture.events)]
    for view in picture.views.values():
        instants += _instants(view)
    scale = TimeScale.spanning(instants, PLOT_LEFT, PLOT_RIGHT)
    names = ["plan", *STAGES]
    if any(not entry.known_type for entry in picture.events):
        names.append("other")
    xs = [scale.x(entry.event.occurred_at) for entry in picture.events]
    by_lane: dict[str, list[int]] = {}
    for index, entry in enumerate(picture.events):
        by_lane.setdefault(entry.lane, []).append(index)
    subrow = [0] * len(picture.events)
    depth: dict[str, int] = {}
    for lane, indexes in by_lane.items():
        ordered = sorted(indexes, key=xs.__getitem__)
        for index, row in zip(ordered, _subrows([xs[i] for i in ordered]), strict=True):
            subrow[index] = row
        depth[lane] = 1 + max(subrow[i] for i in indexes)
    lanes = []
    y = top + AXIS_TOP + AXIS_HEIGHT
    marks_at: dict[str, float] = {}
    for name in names:
        rows = max(1, depth.get(name, 1))
        bars = 36.0 if name in STAGES else 6.0
        height = max(bars + MARK_STEP * rows + 6, 44.0 if name in STAGES else 36.0)
        lanes.append((name, y, height))
        marks_at[name] = y + bars + 8
        y += height
    markers = tuple(
        (xs[i], marks_at[entry.lane] + MARK_STEP * subrow[i])
        for i, entry in enumerate(picture.events)
    )
    return _Layout(scale, tuple(lanes), markers, y, y + LINE_LABELS + 6)


def _bar(
    classes: str, x0: float, x1: float, y: float, h: float, attrs: str = "", title: str = ""
) -> str:
    width = max(x1 - x0, 1.5)
    inner = f"<title>{esc(title)}</title>" if title else ""
    return (
        f'<rect class="{classes}" x="{num(x0)}" y="{num(y)}" width="{num(width)}" '
        f'height="{num(h)}"{attrs}>{inner}</rect>'
    )


def _status_text(stage: Mapping[str, Any], present: datetime) -> str:
    status = str(stage.get("status", "")).replace("_", " ")
    late = lateness(stage, present)
    return f"{status} · {late}" if late else status


def view_pieces(picture: PlanPicture, layout: _Layout, view: View) -> list[str]:
    """The parts of the chart that depend on the view: each stage's bars and status, and
    each time line. Pieces, because most of them recur from view to view (the page
    stores each once)."""
    scale = layout.scale
    present = min(view.present or picture.now, picture.now)
    parts: list[str] = []
    extensions: dict[str, list[Extension]] = {}
    for extension in view.extensions:
        extensions.setdefault(extension.stage, []).append(extension)
    for stage in view.state.get("stages") or ():
        if not isinstance(stage, dict) or stage.get("stage") not in STAGES:
            continue
        name = str(stage["stage"])
        piece: list[str] = []
        top, _ = layout.lane(name)
        piece.append(
            f'<text class="stage-status" x="12" y="{num(top + 33)}" {_SMALL}>'
            f"{esc(_status_text(stage, present))}</text>"
        )
        starts, ends = str(stage["planned_starts_on"]), str(stage["planned_ends_on"])
        baseline = view.baselines.get(name)
        if baseline is not None:
            old_start, old_end = baseline[0] or starts, baseline[1] or ends
            if (old_start, old_end) != (starts, ends):
                piece.append(
                    _bar(
                        "baseline",
                        scale.x(day_start(parse_day(old_start))),
                        scale.x(day_end(parse_day(old_end))),
                        top + 5,
                        12,
                        title=f"{name} as first planned: {old_start} → {old_end}",
                    )
                )
        x0, x1 = scale.x(day_start(parse_day(starts))), scale.x(day_end(parse_day(ends)))
        piece.append(
            _bar(
                "bar planned",
                x0,
                x1,
                top + 6,
                10,
                f' data-stage="{esc(name)}" data-bar="planned" data-start="{esc(starts)}"'
                f' data-end="{esc(ends)}"',
                f"{name} planned {starts} → {ends}",
            )
        )
        for extension in extensions.get(name, ()):
            months = f" by {extension.months} months" if extension.months else ""
            piece.append(
                _bar(
                    "extension",
                    scale.x(day_end(parse_day(extension.before))),
                    scale.x(day_end(parse_day(extension.after))),
                    top + 6,
                    10,
                    f' data-extension-of="{esc(extension.event_id)}"',
                    f"{name} extended{months}: planned end {extension.before} → {extension.after}",
                )
            )
        started = stage.get("actual_started_at")
        if isinstance(started, str):
            begin = parse_instant(started)
            completed = stage.get("actual_completed_at")
            finish = parse_instant(completed) if isinstance(completed, str) else present
            state = "done" if isinstance(completed, str) else "open"
            ax0, ax1 = scale.x(begin), scale.x(max(finish, begin))
            until = short_time(finish) if isinstance(completed, str) else "in progress"
            piece.append(
                _bar(
                    f"bar actual {state}",
                    ax0,
                    ax1,
                    top + 20,
                    10,
                    f' data-stage="{esc(name)}" data-bar="actual" data-start="{esc(started)}"'
                    f' data-end="{esc(completed if isinstance(completed, str) else "")}"',
                    f"{name} actual {short_time(begin)} → {until}",
                )
            )
            late = lateness(stage, present)
            if late and finish > day_end(parse_day(ends)):
                piece.append(
                    _bar(
                        f"overrun {late}",
                        max(ax0, x1),
                        ax1,
                        top + 20,
                        10,
                        title=f"{name} {late}: past its planned end {ends}",
                    )
                )
        parts.append("".join(piece))
    lines = ((view.known_at, "known at", "known-line", 12), (view.as_of, "as of", "asof-line", 25))
    for when, label, classes, dy in lines:
        if when is None:
            continue
        x = scale.x(when)
        parts.append(
            f'<g class="{classes}"><line x1="{num(x)}" x2="{num(x)}" y1="{num(layout.lanes[0][1])}"'
            f' y2="{num(layout.height + dy - 9)}"/><text x="{num(x + 3)}" '
            f'y="{num(layout.height + dy)}">{esc(label)}</text>'
            f"<title>{esc(label)} {esc(format_timestamp(when))}</title></g>"
        )
    return parts


def _marker(
    picture: PlanPicture, index: int, at: tuple[float, float], view: View, linked: bool
) -> str:
    entry = picture.events[index]
    event = entry.event
    symbol = _kind(entry)[0]
    mark = view.marks[index]
    attrs = [
        f'class="ev k-{symbol}"',
        f'data-event-id="{esc(event.id)}"',
        f'data-type="{esc(event.event_type)}"',
        f'data-occurred-at="{esc(format_timestamp(event.occurred_at))}"',
        f'transform="translate({num(at[0])} {num(at[1])})"',
    ]
    if mark == "x":
        attrs.append('data-deleted="true"')
    if mark in ("u", "f"):
        attrs.append(f'data-view="{"unrecorded" if mark == "u" else "later"}"')
    if entry.backfilled:
        attrs.append('data-backfilled="true"')
    if not entry.known_type:
        attrs.append('data-unknown-type="true"')
    text = _event_summary(entry)
    tag = "a" if linked else "g"
    if linked:
        attrs.append(f'href="#ev-{esc(event.id)}" aria-label="{esc(text)}"')
    badge = '<circle class="bf" cx="5.5" cy="-5.5" r="2.6"/>' if entry.backfilled else ""
    return (
        f"<{tag} {' '.join(attrs)}><title>{esc(text)}</title>"
        f'<use href="#m-{symbol}"/>{badge}<line class="strike" x1="-7" y1="6" x2="7" y2="-6"/>'
        f"</{tag}>"
    )


def _actor(event: RecordedEvent) -> str:
    return "system (no actor)" if event.actor_user_id is None else str(event.actor_user_id)


def _event_summary(entry: EventEntry) -> str:
    event = entry.event
    parts = [event.event_type]
    if event.stage:
        parts[0] += f" ({event.stage})"
    if not entry.known_type:
        parts.append("unknown type, skipped by the projection")
    parts.append(f"occurred {short_time(event.occurred_at)}")
    recorded = f"recorded {short_time(event.created_at)}"
    if entry.backfilled:
        recorded += " (backfilled)"
    parts.append(recorded)
    parts.append(f"actor {_actor(event)}")
    if event.deleted_at is not None:
        parts.append(f"soft-deleted {short_time(event.deleted_at)}")
    if entry.changes:
        shown = "; ".join(_change_text(c) for c in entry.changes[:3])
        more = f" and {len(entry.changes) - 3} more" if len(entry.changes) > 3 else ""
        parts.append(f"changed {shown}{more}")
    return " · ".join(parts)


def _change_text(change: FieldChange) -> str:
    return f"{change.path}: {_value(change.before)} → {_value(change.after)}"


def _value(value: JSONValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, dict) and "stage" in v for v in value)
    ):
        # A whole schedule: its planned dates.
        return ", ".join(
            f"{v['stage']} {v.get('planned_starts_on')}–{v.get('planned_ends_on')}" for v in value
        )
    text = orjson.dumps(value).decode()
    return text if len(text) <= 160 else text[:159] + "…"


def _legend_items(picture: PlanPicture) -> list[tuple[str, str]]:
    """Each legend entry: a swatch 16 wide around y=0, and its label."""
    items: list[tuple[str, str]] = []

    def swatch(markup: str, label: str) -> None:
        items.append((markup, label))

    swatch('<rect class="bar planned" x="0" y="-4" width="16" height="9"/>', "planned")
    swatch('<rect class="bar actual done" x="0" y="-4" width="16" height="9"/>', "actual")
    swatch(
        '<rect class="bar actual open" x="0" y="-4" width="16" height="9"/>', "actual, in progress"
    )
    if any(view.extensions for view in picture.views.values()):
        swatch('<rect class="extension" x="0" y="-4" width="16" height="9"/>', "extension")
        swatch('<rect class="baseline" x="0" y="-5" width="16" height="11"/>', "as first planned")
    swatch('<rect class="overrun overdue" x="0" y="-4" width="16" height="9"/>', "overdue / late")
    swatch('<line class="now-line" x1="8" x2="8" y1="-7" y2="7"/>', "now")
    seen: dict[str, str] = {}
    for entry in picture.events:
        symbol, label = _kind(entry)
        seen.setdefault(symbol, label)
    for symbol, label in seen.items():
        swatch(
            f'<g class="ev k-{symbol}" transform="translate(8 0)"><use href="#m-{symbol}"/></g>',
            label,
        )
    if any(entry.event.deleted_at is not None for entry in picture.events):
        swatch(
            '<g class="ev k-generic" data-deleted="true" transform="translate(8 0)">'
            '<use href="#m-generic"/><line class="strike" x1="-7" y1="6" x2="7" y2="-6"/></g>',
            "soft-deleted",
        )
    if any(entry.backfilled for entry in picture.events):
        swatch(
            '<g class="ev k-generic" transform="translate(8 0)"><use href="#m-generic"/>'
            '<circle class="bf" cx="5.5" cy="-5.5" r="2.6"/></g>',
            "backfilled",
        )
    return items


def _legend(picture: PlanPicture, top: float) -> tuple[str, float]:
    items = _legend_items(picture)
    per_row = int((WIDTH - 24) // LEGEND_ITEM)
    placed = []
    for i, (markup, label) in enumerate(items):
        item = f'{markup}<text x="22" y="4">{esc(label)}</text>'
        x = 12 + LEGEND_ITEM * (i % per_row)
        y = top + 10 + 20 * (i // per_row)
        placed.append(f'<g transform="translate({num(x)} {num(y)})">{item}</g>')
    rows = (len(items) + per_row - 1) // per_row
    return f'<g class="legend">{"".join(placed)}</g>', top + 20 * rows + 8


# The label column also carries its look as attributes: the sticky copy of it
# (``<use>``) is a clone that the page's selectors do not reach.
_LABEL: Final = 'fill="#374151"'
_STAGE_LABEL: Final = 'font-size="13" font-weight="600" fill="#111827"'
_SMALL: Final = 'font-size="10.5" fill="#6b7280"'
_LANE_LABELS: Final[Mapping[str, tuple[str, str]]] = {
    "plan": ("plan", "plan-level events"),
    "other": ("other events", "types the projection skips"),
}


def plan_name(state: Mapping[str, Any]) -> str:
    name = state.get("name")
    return name if isinstance(name, str) and name else "(unnamed plan)"


def render_svg(picture: PlanPicture) -> str:
    """The chart of the plan's current state, as a file of its own."""
    return _chart(picture, standalone=True)[0]


def _chart(picture: PlanPicture, *, standalone: bool) -> tuple[str, _Layout]:
    """The chart of the current state, and its layout (which every view shares).

    In the page (not ``standalone``) markers are links to their rows in the events
    table, and #view is what the time-travel control redraws.
    """
    view = picture.current
    state = view.state
    top = 48.0 if standalone else 0.0
    layout = _layout(picture, top)
    legend, height = _legend(picture, layout.legend_top) if standalone else ("", layout.legend_top)
    scale = layout.scale
    out: list[str] = []
    name = plan_name(state)
    summary = (
        f"status {state.get('status')} · active stage {state.get('active_stage') or 'none'} · "
        f"{counted(len(picture.events), 'event')}"
    )
    out.append(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plan-chart" '
        f'viewBox="0 0 {WIDTH} {num(height)}" width="{WIDTH}" height="{num(height)}" '
        f'role="group" aria-labelledby="chart-title chart-desc" data-plan-id="{picture.plan_id}" '
        f'data-known-at="now" data-as-of="latest" data-state-hash="{view.hash}">'
        f'<title id="chart-title">Timeline of {esc(name)}</title>'
        f'<desc id="chart-desc">Planned against actual span of each stage, and every event '
        f"of plan {picture.plan_id} at the time it occurred ({esc(summary)}). The events "
        "table lists the same events as text.</desc>"
    )
    if standalone:
        out.append(f"<style>{asset('chart.css')}</style>")
    out.append(f"<defs>{_SYMBOLS}</defs>")
    if standalone:
        out.append(
            f'<text class="head-name" x="12" y="22">{esc(name)}</text>'
            f'<text class="head-facts" x="12" y="40">{esc(summary)} · plan {picture.plan_id}'
            f" · drawn {esc(short_time(picture.now))}</text>"
        )
    lanes_top, bottom = layout.lanes[0][1], layout.height
    out.append('<g class="lanes" id="lanes">')
    for i, (lane, lane_top, lane_height) in enumerate(layout.lanes):
        out.append(
            f'<rect class="lane{" odd" if i % 2 else ""}" x="0" y="{num(lane_top)}" '
            f'width="{WIDTH}" height="{num(lane_height)}" fill="{"#f6f7f9" if i % 2 else "#fff"}"/>'
        )
        title, note = _LANE_LABELS.get(lane, (lane, ""))
        out.append(
            f'<text class="lane-label{" stage" if lane in STAGES else ""}" x="12" '
            f'y="{num(lane_top + 17)}" {_STAGE_LABEL if lane in STAGES else _LABEL}>'
            f"{esc(title)}</text>"
        )
        if note:
            out.append(
                f'<text class="lane-note" x="12" y="{num(lane_top + 29)}" {_SMALL}>'
                f"{esc(note)}</text>"
            )
    out.append('</g><g class="axis">')
    for tick in scale.ticks():
        x = scale.x(tick.at)
        out.append(
            f'<line class="tick{" major" if tick.major else ""}" x1="{num(x)}" x2="{num(x)}" '
            f'y1="{num(lanes_top - 4)}" y2="{num(bottom)}"/>'
            f'<text class="tick-label" x="{num(x + 3)}" y="{num(top + AXIS_TOP + 14)}">'
            f"{esc(tick.label)}</text>"
        )
    out.append("</g>")
    out.append(f'<g class="view" id="view">{"".join(view_pieces(picture, layout, view))}</g>')
    now_x = scale.x(picture.now)
    out.append(
        f'<g class="now"><line class="now-line" x1="{num(now_x)}" x2="{num(now_x)}" '
        f'y1="{num(lanes_top - 6)}" y2="{num(bottom + 4)}"/><text class="now-label" '
        f'x="{num(now_x - 3)}" y="{num(bottom + 12)}" text-anchor="end">now</text>'
        f"<title>now: {esc(format_timestamp(picture.now))} (when this was drawn)</title></g>"
    )
    out.append('<g class="events">')
    for index, at in enumerate(layout.markers):
        out.append(_marker(picture, index, at, view, linked=not standalone))
    out.append("</g>")
    out.append(legend)
    out.append("</svg>")
    return "".join(out), layout


# --- The page -------------------------------------------------------------------


def _stage_table(picture: PlanPicture, view: View) -> str:
    """The view's stages as a table: the chart's text alternative."""
    stages = [s for s in view.state.get("stages") or () if isinstance(s, dict)]
    if not stages:
        return '<p class="empty">No schedule yet: the plan has no stages in this state.</p>'
    present = min(view.present or picture.now, picture.now)
    extended: dict[str, list[Extension]] = {}
    for extension in view.extensions:
        extended.setdefault(extension.stage, []).append(extension)
    rows = []
    for stage in stages:
        name = str(stage.get("stage"))
        started, completed = stage.get("actual_started_at"), stage.get("actual_completed_at")
        actual = "—"
        if isinstance(started, str):
            actual = (
                short_time(parse_instant(started))
                + " → "
                + (
                    short_time(parse_instant(completed))
                    if isinstance(completed, str)
                    else "in progress"
                )
            )
        moves = "; ".join(
            f"{e.before} → {e.after}" + (f" (+{e.months} mo)" if e.months else "")
            for e in extended.get(name, ())
        )
        late = lateness(stage, present)
        rows.append(
            f'<tr class="{esc(late)}"><th scope="row">{esc(name)}</th>'
            f'<td data-label="status">{esc(str(stage.get("status", "")).replace("_", " "))}'
            f"{f' <b class=flag>{esc(late)}</b>' if late else ''}</td>"
            f'<td data-label="planned">{esc(stage.get("planned_starts_on"))} → '
            f"{esc(stage.get('planned_ends_on'))}</td>"
            f'<td data-label="actual">{esc(actual)}</td>'
            f'<td data-label="extensions">{esc(moves) or "—"}</td></tr>'
        )
    return (
        '<table class="stages"><thead><tr><th scope="col">stage</th><th scope="col">status</th>'
        '<th scope="col">planned</th><th scope="col">actual</th><th scope="col">extensions</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _head(view: View) -> list[Any]:
    state = view.state
    return [
        plan_name(state),
        state.get("status"),
        state.get("active_stage") or "none",
        view.event_count,
        view.hash,
    ]


def _event_rows(picture: PlanPicture) -> str:
    rows = []
    for entry in picture.events:
        event = entry.event
        symbol, _ = _kind(entry)
        notes = []
        classes = []
        if not entry.known_type:
            classes.append("unknown")
            notes.append(f"unknown type: {picture.projection} skips it")
        if entry.backfilled:
            classes.append("backfilled")
            lag = event.created_at - event.occurred_at
            notes.append(f"backfilled: recorded {_duration(lag)} after it occurred")
        for deleted, restored in entry.retracted:
            classes.append("deleted" if restored is None else "restored")
            notes.append(
                f"soft-deleted {short_time(deleted)}"
                + (f", restored {short_time(restored)}" if restored is not None else "")
            )
        if entry.changes is None:
            changed = "never in force"
        elif not entry.changes:
            changed = "no change to the plan state"
        else:
            changed = "<ul>" + "".join(f"<li>{esc(_change_text(c))}</li>" for c in entry.changes)
            changed += "</ul>"
            if entry.changes_known_at is not None:
                changed = (
                    f"<p>when last in force (known at {esc(short_time(entry.changes_known_at))}):"
                    f"</p>{changed}"
                )
        payload = orjson.dumps(event.payload, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
        rows.append(
            f'<tr id="ev-{event.id}" class="{" ".join(classes)}">'
            f'<td data-label="occurred">{_stamp(event.occurred_at)}</td>'
            f'<td data-label="recorded">{_stamp(event.created_at)}</td>'
            f'<td data-label="type"><svg class="sym plan-chart" viewBox="-7 -7 14 14" width="14" '
            f'height="14" aria-hidden="true"><g class="ev k-{symbol}"><use href="#m-{symbol}"/>'
            f'</g></svg> <span class="type">{esc(event.event_type)}</span></td>'
            f'<td data-label="stage">{esc(event.stage or "—")}</td>'
            f'<td data-label="actor" data-full="{esc(_actor(event))}">'
            f'<code title="{esc(_actor(event))}">{esc(_actor(event)[:8])}</code></td>'
            f'<td data-label="what it changed">{changed}'
            f"{''.join(f'<p class=note>{esc(n)}</p>' for n in notes)}</td>"
            f'<td data-label="payload"><details><summary>payload</summary>'
            f"<pre>{esc(payload.decode())}</pre></details></td></tr>"
        )
    return "".join(rows)


def _stamp(when: datetime) -> str:
    """A full timestamp that wraps, if it must, between the date and the time."""
    day, _, clock = format_timestamp(when).partition("T")
    return f'<span class="nw">{esc(day)}</span> <span class="nw">{esc(clock)}</span>'


def _duration(span: timedelta) -> str:
    seconds = span.total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def _script_json(data: Any) -> str:
    """JSON safe inside a <script> element."""
    text = orjson.dumps(data).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _micros(when: datetime) -> int:
    return int(when.timestamp()) * 1_000_000 + when.microsecond


def travel_data(picture: PlanPicture, layout: _Layout) -> dict[str, Any]:
    """What the page's script switches between: each view drawn, deduplicated."""
    pieces: dict[str, int] = {}
    tables: dict[str, int] = {}
    heads: dict[str, int] = {}
    marks: dict[str, int] = {}
    combos: dict[tuple[tuple[int, ...], int, int, int], int] = {}
    grid = []

    def intern(table: dict[str, int], value: str) -> int:
        return table.setdefault(value, len(table))

    for k in range(len(picture.record_axis)):
        for v in range(len(picture.valid_axis)):
            view = picture.views[(k, v)]
            combo = (
                tuple(intern(pieces, p) for p in view_pieces(picture, layout, view)),
                intern(tables, _stage_table(picture, view)),
                intern(heads, orjson.dumps(_head(view)).decode()),
                intern(marks, view.marks),
            )
            grid.append(combos.setdefault(combo, len(combos)))
    return {
        "valid": [None if t is None else format_timestamp(t) for t in picture.valid_axis],
        "record": [None if t is None else format_timestamp(t) for t in picture.record_axis],
        "validUs": [None if t is None else _micros(t) for t in picture.valid_axis],
        "recordUs": [None if t is None else _micros(t) for t in picture.record_axis],
        "grid": grid,
        "views": list(combos),
        "pieces": list(pieces),
        "tables": list(tables),
        "heads": [orjson.loads(h) for h in heads],
        "marks": list(marks),
        "events": [str(entry.event.id) for entry in picture.events],
    }


def _html_legend(picture: PlanPicture) -> str:
    entries = "".join(
        '<li><svg class="plan-chart sym" viewBox="-2 -8 20 16" width="20" height="16" '
        f'aria-hidden="true">{markup}</svg> {esc(label)}</li>'
        for markup, label in _legend_items(picture)
    )
    return f'<ul class="legend" aria-label="legend">{entries}</ul>'


def _sticky_labels(layout: _Layout) -> str:
    """The label column again, kept in sight while a narrow screen scrolls the chart.

    It shows the chart's own lanes and view (``<use>``), so it changes with the view.
    """
    width = PLOT_LEFT - 8
    return (
        f'<svg class="sticky-labels plan-chart" aria-hidden="true" viewBox="0 0 {num(width)} '
        f'{num(layout.legend_top)}"><rect width="{num(width)}" height="{num(layout.legend_top)}" '
        'fill="#fff"/><use href="#lanes"/><use href="#view"/></svg>'
    )


def render_html(picture: PlanPicture) -> str:
    """The plan's page: header, time-travel control, chart, stages and events tables."""
    chart, layout = _chart(picture, standalone=False)
    view = picture.current
    name, status, active, count, digest = _head(view)
    valid_total, record_total = picture.times_total
    thinned = (
        f'<p class="note">This plan has {valid_total} distinct event times and '
        f"{record_total} record times; the control keeps {len(picture.valid_axis) - 1} and "
        f"{len(picture.record_axis) - 1} of them, evenly spaced.</p>"
        if picture.thinned
        else ""
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(name)}: plan timeline</title>"
        f"<style>{asset('chart.css')}{asset('plan.css')}</style></head><body>"
        '<header class="plan-head">'
        f'<h1 id="plan-name">{esc(name)}</h1>'
        f'<p class="facts"><span class="badge status-{esc(status)}" id="plan-status">'
        f'{esc(status)}</span> active stage <b id="plan-active">{esc(active)}</b>'
        f' · <span id="plan-events">{count}</span> events folded'
        f' · state <code id="plan-hash" title="{esc(digest)}">{esc(digest[:12])}</code></p>'
        f'<p class="meta">plan <code>{picture.plan_id}</code> · {esc(picture.projection)} '
        f"v{picture.projection_version} · {counted(len(picture.events), 'event')} stored · drawn "
        f"{esc(short_time(picture.now))}</p>"
        '<p class="viewing" id="viewing" aria-live="polite">Current state: as known now, '
        "latest valid time.</p></header>"
        '<form class="travel" id="travel" hidden><fieldset><legend>Time travel</legend>'
        '<div class="slider"><label for="known">As known at <small>(record time)</small></label>'
        f'<input type="range" id="known" min="0" max="{len(picture.record_axis) - 1}" '
        f'value="{len(picture.record_axis) - 1}" step="1">'
        '<output id="known-label" for="known">now</output></div>'
        '<div class="slider"><label for="asof">As of <small>(valid time)</small></label>'
        f'<input type="range" id="asof" min="0" max="{len(picture.valid_axis) - 1}" '
        f'value="{len(picture.valid_axis) - 1}" step="1">'
        '<output id="asof-label" for="asof">latest</output></div>'
        '<button type="button" id="reset">Back to now</button>'
        '<p class="hint">Each position is an instant where the plan\'s history changed; '
        "every picture is the engine's state for it, the same as <code>eventsource state "
        "--as-of … --known-at …</code>. The address keeps the position "
        "(<code>#known_at=…&amp;as_of=…</code>).</p>"
        f"{thinned}</fieldset></form>"
        f'<div class="chart-wrap"><div class="chart-inner">{chart}{_sticky_labels(layout)}'
        "</div></div>"
        '<p class="scroll-hint">Scroll the chart sideways to see all of it.</p>'
        f"{_html_legend(picture)}"
        '<div class="details" id="details" role="tooltip" hidden></div>'
        '<section><h2>Stages</h2><div id="stage-table">'
        f"{_stage_table(picture, view)}</div></section>"
        '<section><h2>Events</h2><p class="note">Every stored event of the plan in stream '
        "order, soft-deleted ones included. Select a marker in the chart to jump here.</p>"
        '<table class="events"><thead><tr><th scope="col">occurred</th>'
        '<th scope="col">recorded</th><th scope="col">type</th><th scope="col">stage</th>'
        '<th scope="col">actor</th><th scope="col">what it changed</th>'
        '<th scope="col">payload</th></tr></thead>'
        f"<tbody>{_event_rows(picture)}</tbody></table></section>"
        f'<script type="application/json" id="travel-data">'
        f"{_script_json(travel_data(picture, layout))}</script>"
        f"<script>{asset('plan.js')}</script></body></html>"
    )


# --- Commands -------------------------------------------------------------------


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a half-written page is worse).

    Raises:
        click.FileError: the file cannot be written (one line, with the reason).
    """
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text, encoding="utf-8", newline="\n")
        partial.replace(path)
    except OSError as exc:
        with suppress(OSError):
            partial.unlink(missing_ok=True)
        raise click.FileError(str(path), hint=exc.strerror or str(exc)) from exc


_PICTURE_OPTIONS: Final = (
    click.Option(
        ["--html", "html_file"],
        type=click.Path(dir_okay=False, path_type=Path),
        help="Draw the plan's timeline as one self-contained HTML page (with time travel).",
    ),
    click.Option(
        ["--svg", "svg_file"],
        type=click.Path(dir_okay=False, path_type=Path),
        help="Draw the chart of the plan's current state as a static SVG file.",
    ),
)


def with_picture(timeline: click.Command) -> click.Command:
    """``timeline`` plus ``--html FILE`` and ``--svg FILE`` (which draw instead of listing)."""
    extended = copy(timeline)
    extended.params = [*timeline.params, *_PICTURE_OPTIONS]
    listing = cast(Callable[..., Any], timeline.callback)

    def draw(html_file: Path | None, svg_file: Path | None, **options: Any) -> None:
        if html_file is None and svg_file is None:
            click.get_current_context().invoke(listing, **options)
            return
        store = open_store(options["database_url"])
        plan_id = parse_uuid(options["plan"], "plan")
        projection = discover().get_projection(options.get("projection"))
        picture = build_picture(store, projection, plan_id)
        for path, render, what in (
            (html_file, render_html, "page"),
            (svg_file, render_svg, "chart"),
        ):
            if path is not None:
                write_text(path, render(picture))
                click.echo(
                    f"wrote the {what} of plan {plan_id} ({counted(len(picture.events), 'event')}, "
                    f"{len(picture.views)} time-travel states) to {path}"
                    if what == "page"
                    else f"wrote the chart of plan {plan_id} to {path}"
                )

    extended.callback = draw
    return extended


def write_demo_picture(store: EventStore, plan_id: UUID, console: Console) -> Path:
    """``demo``'s last step: the plan's page, beside the SQLite file (else here)."""
    url = store.engine.url
    folder = Path.cwd()
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        folder = Path(str(url.database)).resolve().parent
    path = folder / f"plan-{plan_id}.html"
    projection = discover().get_projection(None)
    write_text(path, render_html(build_picture(store, projection, plan_id)))
    console.print(f"[bold]5. picture[/] of plan {plan_id}, open it in a browser: {path}")
    return path
