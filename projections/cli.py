"""The projection commands of the ``eventsource`` CLI: state, replay, verify, worker,
reconcile, generate, demo, and ``--changes`` for the store's ``timeline``.

:func:`register` adds them to the ``eventsource`` group; ``pyproject.toml`` names it in
the ``eventsource.commands`` entry-point group, so ``eventsource`` finds the engine's
commands without importing the engine.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table

from eventsource.cli import (
    EXIT_DIFFERENCES,
    database_option,
    emit_json,
    format_option,
    open_store,
    parse_time,
    parse_uuid,
    progress_bar,
)
from eventsource.jsonl import dumps_row

from .demo import run_demo
from .engine import ProjectionEngine
from .generate import generate_rows
from .host_drift_cli import command as host_drift
from .registry import discover
from .typing import Projection
from .views import format_value, print_changes


def projection_option(function: Any) -> Any:
    return click.option(
        "--projection",
        default=None,
        help="Projection name (default: course_designer_plan); third-party ones are "
        "found through the 'eventsource.projections' entry-point group.",
    )(function)


def _projection(name: str | None) -> Projection[Any]:
    return discover().get_projection(name)


@click.command()
@database_option
@format_option
@projection_option
@click.argument("plan", required=False)
@click.option("--all", "all_plans", is_flag=True, help="Every plan (jsonl: one state a line).")
@click.option("--as-of", help="Valid time: only events that occurred by then (RFC 3339).")
@click.option(
    "--known-at",
    help="Record time: the stream as recorded by then and not yet retracted (RFC 3339).",
)
def state(
    database_url: str | None,
    output_format: str,
    projection: str | None,
    plan: str | None,
    all_plans: bool,
    as_of: str | None,
    known_at: str | None,
) -> None:
    """A plan's state (snapshot + newer events), optionally as of a time."""
    if (plan is None) == (not all_plans):
        raise click.UsageError("give a PLAN id or --all (not both)")
    store = open_store(database_url)
    chosen = _projection(projection)
    engine = ProjectionEngine(store)
    valid = parse_time(as_of, "as-of")
    known = parse_time(known_at, "known-at")
    plan_ids = list(store.plan_ids()) if all_plans else [parse_uuid(plan or "", "plan")]
    states = (engine.load(chosen, plan_id, as_of=valid, known_at=known) for plan_id in plan_ids)
    if output_format == "jsonl":
        for loaded in states:
            click.echo(orjson.dumps(loaded.json, option=orjson.OPT_SORT_KEYS).decode())
        return
    if output_format == "json":
        if all_plans:
            emit_json([loaded.json for loaded in states])
        else:
            emit_json(next(iter(states)).json)
        return
    console = Console()
    for loaded in states:
        table = Table(
            title=f"plan {loaded.plan_id} ({chosen.name} v{chosen.version}, "
            f"{loaded.event_count} events, hash {loaded.hash[:12]})",
            title_justify="left",
        )
        table.add_column("field")
        table.add_column("value", overflow="fold")
        data = loaded.json if isinstance(loaded.json, dict) else {"state": loaded.json}
        for key, value in sorted(data.items()):
            if key == "stages" and isinstance(value, list):
                for stage in value:
                    table.add_row(
                        f"stage {stage.get('stage')}",
                        f"{stage.get('status')}  planned {stage.get('planned_starts_on')}"
                        f" → {stage.get('planned_ends_on')}  started "
                        f"{format_value(stage.get('actual_started_at'))}  completed "
                        f"{format_value(stage.get('actual_completed_at'))}",
                    )
            else:
                table.add_row(key, format_value(value))
        console.print(table)


@click.command()
@database_option
@projection_option
@click.option("--plan", "plans", multiple=True, help="Only this plan (repeatable).")
@click.option("--run", help="Name of the run to resume (default: projection@version).")
@click.option("--restart", is_flag=True, help="Forget an interrupted run and start over.")
def replay(
    database_url: str | None,
    projection: str | None,
    plans: tuple[str, ...],
    run: str | None,
    restart: bool,
) -> None:
    """Rebuild snapshots from scratch; an interrupted run resumes where it stopped."""
    store = open_store(database_url)
    chosen = _projection(projection)
    engine = ProjectionEngine(store)
    plan_ids = [parse_uuid(p, "plan") for p in plans] or list(store.plan_ids())
    with progress_bar(f"replaying {chosen.name} v{chosen.version}", len(plan_ids)) as advance:
        report = engine.replay(chosen, plan_ids, run=run, restart=restart, progress=advance)
    click.echo(
        f"rebuilt {report.rebuilt} plans"
        + (
            f", {report.skipped_done} already done by run {report.run!r}"
            if report.skipped_done
            else ""
        )
    )


@click.command()
@database_option
@format_option
@projection_option
@click.option("--plan", "plans", multiple=True, help="Only this plan (repeatable).")
def verify(
    database_url: str | None, output_format: str, projection: str | None, plans: tuple[str, ...]
) -> None:
    """Fold every plan twice from scratch; compare the hashes and the stored snapshot.

    Exits 3 and names each plan that differs (a non-deterministic reducer or a
    snapshot that disagrees with its events).
    """
    store = open_store(database_url)
    chosen = _projection(projection)
    engine = ProjectionEngine(store)
    plan_ids = [parse_uuid(p, "plan") for p in plans] or list(store.plan_ids())
    reports = []
    with progress_bar("verifying", len(plan_ids)) as advance:
        for plan_id in plan_ids:
            reports.append(engine.verify(chosen, plan_id))
            advance(1)
    bad = [r for r in reports if not r.ok]
    if output_format in ("json", "jsonl"):
        records = [
            {
                "plan_id": str(r.plan_id),
                "deterministic": r.deterministic,
                "first_hash": r.first_hash,
                "second_hash": r.second_hash,
                "snapshot": r.snapshot_status,
                "pure": r.pure,
                "ok": r.ok,
            }
            for r in (reports if output_format == "jsonl" else bad)
        ]
        if output_format == "json":
            emit_json({"plans": len(reports), "differing": records})
        else:
            for record in records:
                click.echo(orjson.dumps(record).decode())
    else:
        for r in bad:
            if not r.deterministic:
                reason = (
                    "NOT DETERMINISTIC (the reducer reads the clock, randomness, mutable "
                    "shared data or iteration order)"
                )
            elif not r.pure:
                reason = f"IMPURE: evolve changed the state it was given at event {r.mutated_event}"
            else:
                reason = f"snapshot {r.snapshot_status}"
            click.echo(f"{r.plan_id}: {reason}")
        click.echo(
            f"verified {len(reports)} plans with {chosen.name} v{chosen.version}: "
            + ("all deterministic and consistent" if not bad else f"{len(bad)} differ")
        )
    if bad:
        sys.exit(EXIT_DIFFERENCES)


@click.command()
@database_option
@projection_option
@click.option("--once", is_flag=True, help="Drain the queue, then exit.")
@click.option("--batch-size", default=20, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--poll-interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="Seconds between polls (PostgreSQL also wakes on LISTEN/NOTIFY).",
)
def worker(
    database_url: str | None,
    projection: str | None,
    once: bool,
    batch_size: int,
    poll_interval: float,
) -> None:
    """Fold changed plans in the background (any number of workers on PostgreSQL).

    Claims plans from the change feed with FOR UPDATE SKIP LOCKED, re-folds them,
    stores the snapshots and clears the claims in one transaction. SIGTERM
    finishes the batch in hand and exits cleanly.
    """
    from .worker import Worker

    store = open_store(database_url)
    chosen = _projection(projection)
    runner = Worker(store, [chosen], batch_size=batch_size, poll_interval=poll_interval)
    runner.install_signal_handlers()
    if once:
        count = runner.drain()
        if runner.stopping:
            click.echo(f"folded {count} plans; stopped before the queue was empty")
        else:
            click.echo(f"folded {count} plans; queue empty")
        return
    click.echo(
        f"worker for {chosen.name} v{chosen.version}: waiting for changes (Ctrl-C to stop)",
        err=True,
    )
    runner.run_forever()
    click.echo(f"stopped after folding {runner.stats.plans} plans", err=True)


@click.command()
@database_option
@format_option
@projection_option
@click.option("--plan", "plans", multiple=True, help="Only this plan (repeatable).")
@click.option(
    "--deep",
    is_flag=True,
    help="Also fold every plan from scratch and compare with its snapshot "
    "(finds any difference; reads every event).",
)
def reconcile(
    database_url: str | None,
    output_format: str,
    projection: str | None,
    plans: tuple[str, ...],
    deep: bool,
) -> None:
    """Find plans whose snapshots disagree with their events and queue them.

    Catches writes made outside the library (the host's own SQL). Run a worker
    (or `replay`) afterwards to fold what was queued.
    """
    from .worker import reconcile as run_reconcile
    from .worker import reconcile_targets

    store = open_store(database_url)
    chosen = _projection(projection)
    plan_ids = [parse_uuid(p, "plan") for p in plans] or list(reconcile_targets(store))
    with progress_bar("reconciling", len(plan_ids)) as advance:
        findings = run_reconcile(store, [chosen], plan_ids=plan_ids, deep=deep, progress=advance)
    if output_format in ("json", "jsonl"):
        records = [
            {"plan_id": str(f.plan_id), "projection": f.projection, "reason": f.reason}
            for f in findings
        ]
        if output_format == "json":
            emit_json({"plans": len(plan_ids), "queued": records})
        else:
            for record in records:
                click.echo(orjson.dumps(record).decode())
        return
    for finding in findings:
        click.echo(f"{finding.plan_id}: {finding.reason}")
    click.echo(f"checked {len(plan_ids)} plans; queued {len(findings)} for the workers")


@click.command()
@click.option("--plans", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
def generate(plans: int, seed: int, output: Path | None) -> None:
    """Write a realistic sample event log (JSONL) by simulating the plan workflow.

    Includes older and newer service versions, same-transaction pairs, backfilled
    imports, soft-deleted mistakes, unknown event types and events with no actor.
    The same --plans and --seed always give the same file.
    """
    log = generate_rows(plans, seed)
    if output is None:
        out = sys.stdout
        for row in log.rows:
            out.write(dumps_row(row) + "\n")
        return
    with output.open("w", encoding="utf-8", newline="\n") as handle:
        for row in log.rows:
            handle.write(dumps_row(row) + "\n")
    click.echo(f"wrote {len(log.rows)} events of {plans} plans to {output}", err=True)


@click.command()
@database_option
@click.option("--plans", default=60, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=7, show_default=True, type=int)
def demo(database_url: str | None, plans: int, seed: int) -> None:
    """Migrate, load a generated sample, rebuild every plan, show one plan's story."""
    run_demo(database_url, plans=plans, seed=seed)


_CHANGES_OPTIONS: tuple[click.Option, ...] = (
    click.Option(
        ["--changes"],
        is_flag=True,
        help="Show what each event changed in the plan state, field by field.",
    ),
    click.Option(["--projection"], default=None, help="Projection for --changes."),
)


def with_changes(timeline: click.Command) -> click.Command:
    """The store's ``timeline`` command plus ``--changes`` (which folds with a projection)."""
    extended = copy.copy(timeline)
    extended.params = [*timeline.params, *_CHANGES_OPTIONS]

    def show(changes: bool, projection: str | None, **options: Any) -> None:
        if not changes:
            click.get_current_context().invoke(timeline, **options)
            return
        store = open_store(options["database_url"])
        plan_id = parse_uuid(options["plan"], "plan")
        print_changes(
            store, plan_id, _projection(projection), options["output_format"], options["limit"]
        )

    extended.callback = show
    return extended


def register(group: click.Group) -> None:
    """Add the projection commands to ``group`` (the ``eventsource.commands`` entry point)."""
    for command in (state, replay, verify, worker, reconcile, generate, demo):
        group.add_command(command)
    group.add_command(host_drift)
    timeline = group.commands.get("timeline")
    if timeline is not None:
        group.add_command(with_changes(timeline))
