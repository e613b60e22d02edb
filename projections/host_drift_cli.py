"""The ``host-drift`` command: :func:`projections.host_drift.host_drift` for people
(a table per drifting plan) and programs (``--format json``/``jsonl``); exit 3 on drift.
"""

from __future__ import annotations

from datetime import timedelta

import click
import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from eventsource.cli import (
    EXIT_DIFFERENCES,
    database_option,
    emit_json,
    format_option,
    open_store,
    parse_uuid,
    progress_bar,
)
from eventsource.render import counted

from .host_drift import DEFAULT_TOLERANCE, audit_targets, check_host_tables, host_drift
from .typing import JSONValue

__all__ = ["command"]


def _cell(value: JSONValue) -> str:
    return "null" if value is None else escape(str(value))


@click.command(name="host-drift")
@database_option
@format_option
@click.option("--plan", "plans", multiple=True, help="Only this plan (repeatable).")
@click.option(
    "--tolerance",
    default=DEFAULT_TOLERANCE.total_seconds(),
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds two stage times may be apart (the service stamps them with its own "
    "clock, which the events do not carry).",
)
def command(
    database_url: str | None, output_format: str, plans: tuple[str, ...], tolerance: float
) -> None:
    """Compare each plan's rebuilt state with the host's own plan and stage rows.

    Reads only (SELECT on course_designer_plans, course_designer_plan_stages and
    the events). Exits 3 and lists each field that differs when any plan drifts.
    """
    store = open_store(database_url)
    check_host_tables(store)
    plan_ids = [parse_uuid(p, "plan") for p in plans] or list(audit_targets(store))
    with progress_bar("auditing against the host's tables", len(plan_ids)) as advance:
        report = host_drift(
            store, plan_ids, tolerance=timedelta(seconds=tolerance), progress=advance
        )
    drifting = report.drifting
    if output_format == "json":
        emit_json(
            {
                "plans": len(report.plans),
                "drifting": len(drifting),
                "tolerance_seconds": tolerance,
                "drift": [p.to_json() for p in drifting],
            }
        )
    elif output_format == "jsonl":
        for plan in report.plans:
            click.echo(orjson.dumps(plan.to_json()).decode())
    else:
        console = Console()
        for plan in drifting:
            click.echo(f"plan {plan.plan_id}: " + (plan.reason or "drifts from the host's rows"))
            if not plan.differences:
                continue
            table = Table(title_justify="left")
            table.add_column("host row", no_wrap=True)
            for column in ("field", "host", "rebuilt", "apart"):
                table.add_column(column, overflow="fold")
            for d in plan.differences:
                table.add_row(
                    "plan" if d.stage is None else f"stage {d.stage}",
                    d.field,
                    _cell(d.host),
                    _cell(d.rebuilt),
                    "" if d.seconds is None else f"{d.seconds:+.3f}s",
                )
            console.print(table)
        deleted = sum(1 for p in report.plans if p.host_deleted_at is not None)
        click.echo(
            f"checked {counted(len(report.plans), 'plan')} against the host's tables "
            f"(times within {tolerance:g}s"
            + (f"; {deleted} deleted by the host" if deleted else "")
            + "): "
            + ("every field agrees" if not drifting else f"{len(drifting)} drift")
        )
    if drifting:
        raise SystemExit(EXIT_DIFFERENCES)
