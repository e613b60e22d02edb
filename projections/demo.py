"""``eventsource demo``: the main job on the embedded default, end to end."""

from __future__ import annotations

from uuid import UUID

import click
from rich.console import Console
from rich.table import Table

from eventsource import EventStore
from eventsource import migrate as migrations
from eventsource.cli import command_name, progress_bar
from eventsource.config import resolve_url
from eventsource.connect import open_engine, where
from eventsource.jsonl import dumps_row
from eventsource.render import counted
from eventsource.transfer import import_events

from .engine import ProjectionEngine
from .generate import generate_rows
from .picture import write_demo_picture
from .registry import discover
from .views import print_changes


def run_demo(database_url: str | None, *, plans: int, seed: int) -> None:
    console = Console()
    url = resolve_url(database_url)
    engine = open_engine(url, create=True)
    before, after = migrations.upgrade(engine)
    console.print(
        f"[bold]1. migrate[/] {where(url)}: "
        + ("already current" if before == after else f"{before or 'empty'} -> {after}")
    )
    log = generate_rows(plans, seed)
    store = EventStore(engine)
    result = import_events(store, (dumps_row(row) for row in log.rows), create_parents=True)
    console.print(
        f"[bold]2. import[/] {result.read} generated events of {counted(plans, 'plan')} "
        f"(seed {seed}): {result.inserted} new, {result.unchanged} already stored"
    )
    demo_report(store, console)
    click.echo()


def demo_report(store: EventStore, console: Console) -> None:
    """Rebuild every plan, summarize, and tell one plan's story."""
    projection = discover().get_projection(None)
    engine = ProjectionEngine(store)
    plan_ids = list(store.plan_ids())
    with progress_bar("rebuilding plan states", len(plan_ids)) as advance:
        report = engine.replay(projection, plan_ids, progress=advance)
    statuses: dict[str, int] = {}
    richest: tuple[int, UUID] | None = None
    for plan_id in plan_ids:
        loaded = engine.load(projection, plan_id)
        status = str(loaded.json["status"]) if isinstance(loaded.json, dict) else "?"
        statuses[status] = statuses.get(status, 0) + 1
        if richest is None or loaded.event_count > richest[0]:
            richest = (loaded.event_count, plan_id)
    console.print(
        f"[bold]3. replay[/] rebuilt {report.rebuilt} plan snapshots with "
        f"{projection.name} v{projection.version}"
    )
    summary = Table(title="plans by status", title_justify="left")
    summary.add_column("status")
    summary.add_column("plans", justify="right")
    for status, count in sorted(statuses.items()):
        summary.add_row(status, str(count))
    console.print(summary)
    if richest is None:
        return
    plan_id = richest[1]
    console.print(f"[bold]4. timeline with changes[/] of plan {plan_id}:")
    print_changes(store, plan_id, projection, "table", 20)
    write_demo_picture(store, plan_id, console)
    program = command_name()
    console.print("next:", highlight=False)
    for hint in (
        f"{program} state {plan_id} --format json",
        f"{program} timeline {plan_id}",
        f"{program} verify",
    ):
        console.print(f"  {hint}", highlight=False, soft_wrap=True)
