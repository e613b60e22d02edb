"""``eventsource quarantine``: the plans a projection cannot fold, and retrying them.

Workers, ``replay``, ``verify``, ``state --all`` and ``reconcile --deep`` set such a
plan aside (``eventsource_quarantine``) and go on with the others. It stays aside
until one of its events changes (a worker or replay then tries it again) or it is
retried here after a fix.
"""

from __future__ import annotations

import sys
from typing import Any

import click
import orjson

from eventsource.cli import (
    EXIT_DIFFERENCES,
    database_option,
    emit_json,
    format_option,
    open_store,
    parse_uuid,
    progress_bar,
)
from eventsource.jsonl import format_timestamp
from eventsource.render import counted, terminal_width, wrapped
from eventsource.snapshots import QuarantineEntry

from .engine import ProjectionEngine
from .registry import discover

WHAT_TO_DO = (
    "Fix the reducer (and bump its version), upcast the payload with a payload model, "
    "or soft-delete the event (eventsource delete EVENT); then retry: "
    "eventsource quarantine --retry PLAN (or --retry-all)."
)


def _record(entry: QuarantineEntry) -> dict[str, Any]:
    return {
        "plan_id": str(entry.plan_id),
        "projection": entry.projection,
        "version": entry.projection_version,
        "event_id": None if entry.event_id is None else str(entry.event_id),
        "event_type": entry.event_type,
        "error": entry.error,
        "first_seen": format_timestamp(entry.first_seen),
        "last_seen": format_timestamp(entry.last_seen),
        "attempts": entry.attempts,
        "events_changed_since": not entry.unchanged,
    }


def _print_entry(entry: QuarantineEntry, width: int | None) -> None:
    tries = "1 attempt" if entry.attempts == 1 else f"{entry.attempts} attempts"
    click.echo(f"{entry.plan_id}  {entry.projection} v{entry.projection_version}")
    click.echo(f"  {tries} since {format_timestamp(entry.first_seen)}")
    event = "no event" if entry.event_id is None else f"event {entry.event_id}"
    click.echo(f"  {event} ({entry.event_type})")
    for line in wrapped(entry.error, width, "  "):
        click.echo(line)
    if not entry.unchanged:
        click.echo("  its events changed since: the next worker or replay tries it again")


@click.command()
@database_option
@format_option
@click.option(
    "--projection",
    default=None,
    help="Only this projection's plans; with --retry, the projection to fold "
    "(default: course_designer_plan).",
)
@click.option(
    "--retry", "retries", multiple=True, metavar="PLAN", help="Fold this plan again (repeatable)."
)
@click.option("--retry-all", is_flag=True, help="Fold every listed plan again.")
def quarantine(
    database_url: str | None,
    output_format: str,
    projection: str | None,
    retries: tuple[str, ...],
    retry_all: bool,
) -> None:
    """List the plans a projection cannot fold, or fold them again after a fix.

    Each names the event that failed and the error. Without --retry it only reads.
    With --retry or --retry-all a plan that now folds gets its snapshot and leaves
    quarantine; one that still fails stays, and the command exits 3.
    """
    store = open_store(database_url)
    registry = discover()
    if not retries and not retry_all:
        entries = store.quarantine(projection)
        if output_format == "json":
            emit_json({"quarantined": [_record(e) for e in entries]})
        elif output_format == "jsonl":
            for entry in entries:
                click.echo(orjson.dumps(_record(entry)).decode())
        else:
            width = terminal_width()
            for entry in entries:
                _print_entry(entry, width)
            if entries:
                plans = "plan" if len(entries) == 1 else "plans"
                click.echo(f"{len(entries)} {plans} in quarantine.")
                for line in wrapped(WHAT_TO_DO, width, ""):
                    click.echo(line)
            else:
                click.echo("no plans in quarantine")
        return
    if retries and retry_all:
        raise click.UsageError("give --retry PLAN or --retry-all, not both")
    chosen = registry.get_projection(projection)
    if retry_all:
        plan_ids = [e.plan_id for e in store.quarantine(chosen.name)]
    else:
        plan_ids = [parse_uuid(plan, "plan") for plan in retries]
    engine = ProjectionEngine(store, snapshot_every=None)
    still = []
    with progress_bar("retrying", len(plan_ids), unit="plans") as advance:
        for plan_id in plan_ids:
            failure = engine.retry_quarantined(chosen, plan_id)
            if failure is not None:
                still.append(failure)
            advance(1)
    if output_format in ("json", "jsonl"):
        records = [
            {
                "plan_id": str(plan_id),
                "folded": plan_id not in {f.plan_id for f in still},
            }
            for plan_id in plan_ids
        ]
        if output_format == "json":
            emit_json({"retried": records})
        else:
            for record in records:
                click.echo(orjson.dumps(record).decode())
    else:
        for failure in still:
            click.echo(f"{failure.plan_id}: still cannot be folded: {failure.error}")
        click.echo(
            f"retried {counted(len(plan_ids), 'plan')} with {chosen.name} v{chosen.version}: "
            f"{len(plan_ids) - len(still)} folded and released, {len(still)} still quarantined"
        )
    if still:
        sys.exit(EXIT_DIFFERENCES)


command = quarantine
