"""``eventsource demo``: the main job on the embedded default, end to end."""

from __future__ import annotations

import click
from rich.console import Console

from . import migrate as migrations
from .config import make_engine, resolve_url
from .generate import generate_rows
from .jsonl import dumps_row
from .store import EventStore
from .transfer import import_events


def run_demo(database_url: str | None, *, plans: int, seed: int) -> None:
    console = Console()
    url = resolve_url(database_url)
    engine = make_engine(url)
    before, after = migrations.upgrade(engine)
    console.print(
        f"[bold]1. migrate[/] {url.render_as_string(hide_password=True)}: "
        + ("already current" if before == after else f"{before or 'empty'} -> {after}")
    )
    log = generate_rows(plans, seed)
    store = EventStore(engine)
    result = import_events(store, (dumps_row(row) for row in log.rows), create_parents=True)
    console.print(
        f"[bold]2. import[/] {result.read} generated events of {plans} plans "
        f"(seed {seed}): {result.inserted} new, {result.unchanged} already stored"
    )
    from projections.cli_views import demo_report

    demo_report(store, console)
    click.echo()
