"""``eventsource report --html FILE``: every plan as one compact row on one time axis.

Each row is the plan's name, status and active stage and one small inline SVG: the
stages' planned spans above their actual spans, overdue stages (not completed, planned
end passed) in red, and a "now" tick. Rows carry no script and no per-row styles, so a
page of 10,000 plans stays a few megabytes and the browser lays out only the rows in
sight (``content-visibility``). Each row links to the plan's own page when there is one
(``--pages DIR`` writes them, ``--link`` points elsewhere).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, get_args
from uuid import UUID

import click

from eventsource.cli import database_option, open_store, progress_bar
from eventsource.jsonl import format_timestamp
from eventsource.render import counted

from .course_designer import PlanStatus
from .drawing import (
    TimeScale,
    asset,
    day_end,
    day_start,
    esc,
    lateness,
    parse_day,
    parse_instant,
    short_time,
)
from .engine import ProjectionEngine
from .picture import build_picture, plan_name, render_html, write_text
from .registry import discover

STATUSES: Final[tuple[str, ...]] = get_args(PlanStatus)
_ORDER: Final = {
    status: i
    for i, status in enumerate(
        ("in_progress", "ready_to_start", "scheduling", "draft", "completed", "archived")
    )
}
"""Rows from the plans that need attention most to those that need it least."""
ROW_WIDTH: Final = 1000
"""The rows' SVG user units across (stretched to the column's width)."""


@dataclass(frozen=True)
class PlanRow:
    plan_id: UUID
    state: Mapping[str, Any]

    @property
    def stages(self) -> list[Mapping[str, Any]]:
        return [s for s in self.state.get("stages") or () if isinstance(s, dict)]


def _instants(rows: Iterable[PlanRow]) -> Iterable[datetime]:
    for row in rows:
        for stage in row.stages:
            yield day_start(parse_day(stage["planned_starts_on"]))
            yield day_end(parse_day(stage["planned_ends_on"]))
            for key in ("actual_started_at", "actual_completed_at"):
                if isinstance(stage.get(key), str):
                    yield parse_instant(stage[key])


def _rect(x0: float, x1: float, y: int, h: int) -> str:
    left = round(x0)
    width = max(round(x1) - left - 1, 1)  # a unit's gap between neighbouring stages
    return f"M{left} {y}h{width}v{h}h-{width}z"


def _mini_chart(row: PlanRow, scale: TimeScale, now: datetime, now_x: int) -> tuple[str, int]:
    """The row's SVG, and how many of its stages are overdue."""
    paths: dict[str, list[str]] = {}
    overdue = 0
    for index, stage in enumerate(row.stages):
        start = scale.x(day_start(parse_day(stage["planned_starts_on"])))
        end = scale.x(day_end(parse_day(stage["planned_ends_on"])))
        late = lateness(stage, now) == "overdue"
        overdue += late
        planned = "o" if late else f"p{index % 2}"
        paths.setdefault(planned, []).append(_rect(start, end, 1, 6))
        started = stage.get("actual_started_at")
        if isinstance(started, str):
            completed = stage.get("actual_completed_at")
            finish = parse_instant(completed) if isinstance(completed, str) else now
            kind = f"a{index % 2}" if isinstance(completed, str) else "i"
            paths.setdefault(kind, []).append(
                _rect(scale.x(parse_instant(started)), scale.x(finish) + 1, 8, 5)
            )
    drawn = "".join(f'<path class="{kind}" d="{"".join(d)}"/>' for kind, d in sorted(paths.items()))
    return (
        f'<svg viewBox="0 0 {ROW_WIDTH} 14" preserveAspectRatio="none" aria-hidden="true">'
        f'{drawn}<path class="n" d="M{now_x} 0v14"/></svg>',
        overdue,
    )


def _row(
    row: PlanRow, scale: TimeScale, now: datetime, now_x: int, link: str | None
) -> tuple[str, int]:
    """The row's markup, and how many of its stages are overdue."""
    state = row.state
    status = str(state.get("status"))
    chart, overdue = _mini_chart(row, scale, now, now_x)
    name = esc(plan_name(state))
    title = f' title="{row.plan_id}"'
    label = (
        f'<a href="{esc(link.format(plan_id=row.plan_id))}"{title}>{name}</a>'
        if link
        else f"<span{title}>{name}</span>"
    )
    stages = row.stages
    summary = (
        f"{sum(1 for s in stages if s.get('status') == 'completed')}/{len(stages)} stages done"
        if stages
        else "no schedule"
    )
    flag = f"<em>{overdue} overdue</em>" if overdue else ""
    return (
        f'<li class="s-{esc(status)}{" od" if overdue else ""}">{label}'
        f"<b>{esc(status.replace('_', ' '))}</b><i>{esc(state.get('active_stage') or '—')}</i>"
        f"{chart}<small>{summary}</small>{flag}</li>",
        overdue,
    )


def render_report(
    rows: Sequence[PlanRow],
    *,
    now: datetime,
    link: str | None = None,
    statuses: Sequence[str] = (),
) -> str:
    """The portfolio page: a summary, a time axis, and one row per plan.

    ``link``: a template with ``{plan_id}`` for each row's link (none without it).
    """
    scale = TimeScale.spanning([now, *_instants(rows)], 0, ROW_WIDTH)
    now_x = round(scale.x(now))
    drawn = sorted(
        ((row, *_row(row, scale, now, now_x, link)) for row in rows),
        key=lambda drawn_row: (
            _ORDER.get(str(drawn_row[0].state.get("status")), len(_ORDER)),
            -drawn_row[2],
            min((s["planned_starts_on"] for s in drawn_row[0].stages), default="9999"),
            str(drawn_row[0].plan_id),
        ),
    )
    ordered = [row for row, _, _ in drawn]
    body = [markup for _, markup, _ in drawn]
    overdue_plans = sum(1 for _, _, overdue in drawn if overdue)
    counts: dict[str, int] = {}
    for row in ordered:
        counts[str(row.state.get("status"))] = counts.get(str(row.state.get("status")), 0) + 1
    chips = "".join(
        f'<span class="chip s-{esc(status)}">{esc(status.replace("_", " "))} {count}</span>'
        for status, count in sorted(counts.items(), key=lambda kv: _ORDER.get(kv[0], 99))
    )
    ticks = "".join(
        f'<span style="left:{scale.x(t.at) / ROW_WIDTH * 100:.2f}%"'
        f"{' class=major' if t.major else ''}>{esc(t.label)}</span>"
        for t in scale.ticks()
    )
    chosen = f" with status {', '.join(statuses)}" if statuses else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Plans: {len(ordered)}</title><style>{asset('report.css')}</style></head><body>"
        f"<header><h1>{counted(len(ordered), 'plan')}{esc(chosen)}</h1>"
        f'<p class="chips">{chips}<span class="chip od">{overdue_plans} with overdue stages'
        "</span></p>"
        f'<p class="meta">Drawn {esc(short_time(now))} from each plan\'s current state. '
        "Each row: stages planned (upper bar) against actual (lower bar); red: a stage "
        "past its planned end and not completed; blue: in progress; the red line is now."
        "</p></header>"
        f'<div class="axis" aria-hidden="true"><div class="ticks">{ticks}'
        f'<span class="now" style="left:{now_x / ROW_WIDTH * 100:.2f}%">now</span></div></div>'
        f'<ol class="plans" data-count="{len(ordered)}" '
        f'data-drawn-at="{esc(format_timestamp(now))}">{"".join(body)}</ol></body></html>'
    )


def collect_rows(store: Any, statuses: Sequence[str], progress: Any = None) -> Iterable[PlanRow]:
    projection = discover().get_projection(None)
    engine = ProjectionEngine(store, snapshot_every=None)
    for plan_id in store.plan_ids():
        loaded = engine.load(projection, plan_id)
        state = loaded.json if isinstance(loaded.json, dict) else {"state": loaded.json}
        if progress is not None:
            progress(1)
        if not statuses or state.get("status") in statuses:
            yield PlanRow(plan_id, state)


@click.command()
@database_option
@click.option(
    "--html",
    "html_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the page here.",
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUSES),
    help="Only plans with this status (repeatable).",
)
@click.option(
    "--pages",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write each listed plan's own page into this folder and link the rows to "
    "them (a few plans a second: for a selection, not for thousands).",
)
@click.option(
    "--link",
    help="Link each row to this address instead, with {plan_id} in it "
    "(e.g. 'plans/{plan_id}.html').",
)
def report(
    database_url: str | None,
    html_file: Path,
    statuses: tuple[str, ...],
    pages: Path | None,
    link: str | None,
) -> None:
    """Draw every plan (or those with --status) as one row: planned against actual.

    Overdue stages are highlighted; each row links to the plan's own page with
    --pages or --link.
    """
    if link is not None:
        try:
            link.format(plan_id=UUID(int=0))
        except (KeyError, IndexError, ValueError) as exc:
            raise click.BadParameter(
                f"{link!r} is not a link template; write {{plan_id}} where the plan's id goes",
                param_hint="--link",
            ) from exc
    store = open_store(database_url)
    now = datetime.now(UTC)
    total = sum(1 for _ in store.plan_ids())
    with progress_bar("reading plan states", total) as advance:
        rows = list(collect_rows(store, statuses, advance))
    if pages is not None:
        pages.mkdir(parents=True, exist_ok=True)
        projection = discover().get_projection(None)
        with progress_bar("drawing plan pages", len(rows)) as advance:
            for row in rows:
                page = build_picture(store, projection, row.plan_id, now=now)
                write_text(pages / f"{row.plan_id}.html", render_html(page))
                advance(1)
        link = (Path(_relative(pages, html_file.parent)) / "{plan_id}.html").as_posix()
    write_text(html_file, render_report(rows, now=now, link=link, statuses=statuses))
    click.echo(
        f"wrote {counted(len(rows), 'plan')} to {html_file}"
        + (f" and their pages to {pages}" if pages is not None else "")
    )


def _relative(target: Path, start: Path) -> str:
    return os.path.relpath(target.resolve(), start.resolve())
