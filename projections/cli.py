"""The projection commands of the ``eventsource`` CLI: state, replay, verify, worker,
reconcile, status, schema, generate, demo, and ``--changes`` for the store's
``timeline``.

:func:`register` adds them to the ``eventsource`` group; ``pyproject.toml`` names it in
the ``eventsource.commands`` entry-point group, so ``eventsource`` finds the engine's
commands without importing the engine.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import click
import orjson

from eventsource.cli import (
    EXIT_DIFFERENCES,
    READ_ONLY,
    TIE_RANK,
    check_plans,
    database_option,
    emit_json,
    format_option,
    on_interrupt,
    open_store,
    parse_time,
    parse_uuid,
    progress_bar,
    progress_display,
    summary,
)
from eventsource.connect import where
from eventsource.errors import FoldFailed, InvalidInput, NoEventsAsOf, UnknownPlan
from eventsource.jsonl import dumps_row, format_timestamp
from eventsource.logformat import LOG_FORMATS, configure_logging
from eventsource.outputs import check_replaceable, output
from eventsource.render import counted, terminal_width, wrapped
from eventsource.status import StoreStatus, store_status

from .demo import run_demo
from .engine import LoadedState, ProjectionEngine
from .generate import generate_rows
from .host_drift_cli import command as host_drift
from .picture import with_picture
from .portfolio import report
from .quarantine_cli import command as quarantine
from .registry import discover
from .typing import Projection
from .views import format_value, print_changes, stage_line

WRITE_CHUNK = 1000
"""Rows written between progress updates."""


def projection_option(function: Any) -> Any:
    return click.option(
        "--projection",
        default=None,
        help="Projection name (default: course_designer_plan); third-party ones are "
        "found through the 'eventsource.projections' entry-point group.",
    )(function)


def _projection(name: str | None) -> Projection[Any]:
    return discover().get_projection(name)


def _seconds(started: float) -> str:
    return f"{time.monotonic() - started:.1f}s"


def _print_state(loaded: LoadedState[Any], projection: Projection[Any]) -> None:
    click.echo(
        f"plan {loaded.plan_id} ({projection.name} v{projection.version}, "
        f"{counted(loaded.event_count, 'event')}, hash {loaded.hash[:12]})"
    )
    data = loaded.json if isinstance(loaded.json, dict) else {"state": loaded.json}
    keys = max((len(key) for key in data), default=5) + 2
    width = terminal_width()
    for key, value in sorted(data.items()):
        if key == "stages" and isinstance(value, list):
            click.echo(f"  {key}:" + ("" if value else " none"))
            for stage in value:
                text = stage_line(stage) if isinstance(stage, dict) else format_value(stage)
                for line in wrapped(text, width, "    "):
                    click.echo(line)
        else:
            for line in wrapped(f"{key.ljust(keys)}{format_value(value)}", width, "  "):
                click.echo(line)


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
    """A plan's state (snapshot + newer events), optionally as of a time. Only reads."""
    if (plan is None) == (not all_plans):
        raise click.UsageError("give a PLAN id or --all (not both)")
    on_interrupt(READ_ONLY)
    valid = parse_time(as_of, "as-of")
    known = parse_time(known_at, "known-at")
    single = None if plan is None else parse_uuid(plan, "plan")
    store = open_store(database_url)
    chosen = _projection(projection)
    # No snapshots stored on the way: state only reads (and may run on a replica).
    engine = ProjectionEngine(store, snapshot_every=None)
    plan_ids = list(store.plan_ids()) if single is None else [single]
    started = time.monotonic()
    bar = (
        progress_bar(f"folding {chosen.name}", len(plan_ids), unit="plans")
        if all_plans
        else nullcontext(lambda _n: None)
    )
    failures: list[FoldFailed] = []
    absent = 0
    with bar as advance:

        def states() -> Iterator[LoadedState[Any]]:
            nonlocal absent
            for plan_id in plan_ids:
                try:
                    loaded = engine.load(chosen, plan_id, as_of=valid, known_at=known)
                except FoldFailed as failure:
                    if single is not None:
                        raise
                    # One plan's bad event stops nobody: name it, set it aside, go on.
                    engine.record_failure(failure)
                    failures.append(failure)
                    click.echo(f"Error: {failure}", err=True)
                    advance(1)
                    continue
                except NoEventsAsOf:
                    if single is not None:
                        raise
                    absent += 1  # it did not exist yet then: left out
                    advance(1)
                    continue
                yield loaded
                advance(1)

        if output_format == "jsonl":
            for loaded in states():
                click.echo(orjson.dumps(loaded.json, option=orjson.OPT_SORT_KEYS).decode())
        elif output_format == "json":
            if all_plans:
                emit_json([loaded.json for loaded in states()])
            else:
                emit_json(next(states()).json)
        else:
            for index, loaded in enumerate(states()):
                if index:
                    click.echo()
                _print_state(loaded, chosen)
    if all_plans:
        folded = len(plan_ids) - len(failures) - absent
        summary(
            f"folded {counted(folded, 'plan')} with {chosen.name} v{chosen.version} in "
            f"{_seconds(started)}"
            + (f"; {absent} had no events yet then" if absent else "")
            + (
                f"; {len(failures)} cannot be folded (quarantined: see eventsource quarantine)"
                if failures
                else ""
            ),
            data_on_stdout=output_format != "table",
        )
    if failures:
        sys.exit(EXIT_DIFFERENCES)


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
    """Rebuild snapshots from scratch; an interrupted run resumes where it stopped.

    Replay writes (snapshots and checkpoints): run it against the primary.
    """
    store = open_store(database_url)
    chosen = _projection(projection)
    engine = ProjectionEngine(store)
    plan_ids = check_plans(store, plans) if plans else list(store.plan_ids())
    name = run or f"{chosen.name}@{chosen.version}"
    on_interrupt(
        "plans rebuilt so far are kept (they commit in batches); rerun with the same "
        f"--run {name!r} to resume"
    )
    # Plans an interrupted run already finished count as done from the start, so
    # the rate (and the ETA) is that of the plans being rebuilt now.
    done = set() if restart else store.finished(name)
    remaining = [plan_id for plan_id in plan_ids if plan_id not in done]
    skipped = len(plan_ids) - len(remaining)
    started = time.monotonic()
    with progress_bar(
        f"replaying {chosen.name} v{chosen.version}",
        len(plan_ids),
        unit="plans",
        completed=skipped,
    ) as advance:
        report = engine.replay(chosen, remaining, run=name, restart=restart, progress=advance)
    for failure in report.quarantined:
        click.echo(f"quarantined {failure.plan_id}: {failure}", err=True)
    unchanged = len(report.still_quarantined)
    click.echo(
        f"rebuilt {counted(report.rebuilt, 'plan')}"
        + (f", {skipped} already done by run {name!r}" if skipped else "")
        + f" with {chosen.name} v{chosen.version} in {_seconds(started)}"
        + _quarantined_note(len(report.quarantined))
        + (
            f"; skipped {unchanged} quarantined plans whose events have not changed"
            if unchanged
            else ""
        )
    )
    if report.quarantined:
        sys.exit(EXIT_DIFFERENCES)


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
    snapshot that disagrees with its events). Only reads.
    """
    on_interrupt(READ_ONLY)
    store = open_store(database_url)
    chosen = _projection(projection)
    engine = ProjectionEngine(store, snapshot_every=None)
    plan_ids = check_plans(store, plans) if plans else list(store.plan_ids())
    reports = []
    with progress_bar("verifying", len(plan_ids), unit="plans") as advance:
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
                **_failure_json(r.failure),
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
            if r.failure is not None:
                reason = (
                    f"CANNOT BE FOLDED at event {r.failure.event_id} ({r.failure.event_type}): "
                    f"{r.failure.error}; quarantined (see eventsource quarantine)"
                )
            elif not r.deterministic:
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
            f"verified {counted(len(reports), 'plan')} with {chosen.name} v{chosen.version}: "
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
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="text",
    show_default=True,
    help="Logs on stderr, one line a batch: text for people, json for log collectors.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="info logs every batch; warning only problems (a lost connection, retries).",
)
def worker(
    database_url: str | None,
    projection: str | None,
    once: bool,
    batch_size: int,
    poll_interval: float,
    log_format: str,
    log_level: str,
) -> None:
    """Fold changed plans in the background (any number of workers on PostgreSQL).

    Claims plans from the change feed with FOR UPDATE SKIP LOCKED, re-folds them,
    stores the snapshots and clears the claims in one transaction. Each batch is
    logged (plans, events, seconds, queue depth, age of the oldest change). SIGTERM
    or Ctrl-C finishes the plan in hand and exits cleanly.
    """
    from .worker import Worker

    configure_logging(log_format, log_level.upper())
    on_interrupt("claims of the batch in hand were rolled back; nothing is lost")
    store = open_store(database_url)
    chosen = _projection(projection)
    runner = Worker(store, [chosen], batch_size=batch_size, poll_interval=poll_interval)
    runner.install_signal_handlers()
    if once:
        count = runner.drain()
        set_aside = _quarantined_note(runner.stats.quarantined)
        if runner.stopping:
            click.echo(
                f"folded {counted(count, 'plan')}{set_aside}; stopped before the queue was empty"
            )
        else:
            click.echo(f"folded {counted(count, 'plan')}{set_aside}; queue empty")
        return
    click.echo(
        f"worker for {chosen.name} v{chosen.version}: waiting for changes (Ctrl-C to stop)",
        err=True,
    )
    runner.run_forever()
    click.echo(
        f"stopped after folding {counted(runner.stats.plans, 'plan')}"
        f"{_quarantined_note(runner.stats.quarantined)}",
        err=True,
    )


def _failure_json(failure: FoldFailed | None) -> dict[str, Any]:
    if failure is None:
        return {}
    return {
        "event_id": None if failure.event_id is None else str(failure.event_id),
        "event_type": failure.event_type,
        "error": failure.error,
    }


def _quarantined_note(count: int) -> str:
    if not count:
        return ""
    return f" ({counted(count, 'plan')} quarantined: see eventsource quarantine)"


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

    on_interrupt("plans queued so far stay queued; rerun to check the rest")
    store = open_store(database_url)
    chosen = _projection(projection)
    if plans:
        plan_ids = [parse_uuid(p, "plan") for p in plans]
        with_snapshots = set(store.snapshot_plan_ids())
        for plan_id in plan_ids:
            # A plan whose rows the host deleted still has a snapshot to check.
            if plan_id not in with_snapshots and store.version(plan_id) == 0:
                raise UnknownPlan(plan_id)
    else:
        plan_ids = list(reconcile_targets(store))
    with progress_bar("reconciling", len(plan_ids), unit="plans") as advance:
        findings = run_reconcile(store, [chosen], plan_ids=plan_ids, deep=deep, progress=advance)
    if output_format in ("json", "jsonl"):
        records = [
            {
                "plan_id": str(f.plan_id),
                "projection": f.projection,
                "reason": f.reason,
                "queued": f.queued,
            }
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
    queued = sum(1 for finding in findings if finding.queued)
    click.echo(
        f"checked {counted(len(plan_ids), 'plan')}; queued {queued} for the workers"
        + _quarantined_note(len(findings) - queued)
    )


def _status_json(report: StoreStatus, database: str) -> dict[str, Any]:
    age = report.feed.age_seconds(report.checked_at)
    oldest = report.feed.oldest_change_at
    return {
        "database": database,
        "checked_at": format_timestamp(report.checked_at),
        "plans": report.plans,
        "queue": {
            "plans": report.feed.queued,
            "oldest_change_at": None if oldest is None else format_timestamp(oldest),
            "oldest_change_age_seconds": None if age is None else round(age, 3),
        },
        "projections": [
            {
                "projection": p.projection,
                "version": p.version,
                "fresh": p.fresh,
                "stale": p.stale,
                "other_version": p.other_version,
                "missing": p.missing,
            }
            for p in report.projections
        ],
        "stored_snapshots": [
            {"projection": s.projection, "version": s.version, "fresh": s.fresh, "stale": s.stale}
            for s in report.stored
        ],
        "quarantined": [
            {
                "plan_id": str(q.plan_id),
                "projection": q.projection,
                "version": q.projection_version,
                "event_id": None if q.event_id is None else str(q.event_id),
                "event_type": q.event_type,
                "error": q.error,
                "attempts": q.attempts,
                "last_seen": format_timestamp(q.last_seen),
            }
            for q in report.quarantined
        ],
        "replay_runs": [
            {
                "run": r.run,
                "plans_done": r.plans_done,
                "first_checkpoint_at": format_timestamp(r.first_finished_at),
                "last_checkpoint_at": format_timestamp(r.last_finished_at),
            }
            for r in report.replay_runs
        ],
    }


def _print_status(report: StoreStatus, database: str) -> None:
    age = report.feed.age_seconds(report.checked_at)
    click.echo(f"{database} at {format_timestamp(report.checked_at)}")
    click.echo(f"plans with events   {report.plans}")
    if report.feed.queued and report.feed.oldest_change_at is not None and age is not None:
        click.echo(
            f"change feed         {counted(report.feed.queued, 'plan')} queued; "
            "the oldest change is "
            f"{age:.1f}s old ({format_timestamp(report.feed.oldest_change_at)})"
        )
    else:
        click.echo("change feed         empty: the workers are caught up")
    click.echo("snapshots           (of the installed projections, over plans with events)")
    for p in report.projections:
        click.echo(
            f"  {p.projection} v{p.version}: {p.fresh} fresh, {p.stale} stale, "
            f"{p.other_version} of another version, {p.missing} missing"
        )
    others = [
        s
        for s in report.stored
        if (s.projection, s.version) not in {(p.projection, p.version) for p in report.projections}
    ]
    for s in others:
        click.echo(
            f"  {s.projection} v{s.version} (not installed): {s.fresh} fresh, {s.stale} stale"
        )
    if not report.quarantined:
        click.echo("quarantined plans   none")
    else:
        click.echo(
            f"quarantined plans   {len(report.quarantined)} (eventsource quarantine "
            "says why and retries them)"
        )
        for item in report.quarantined[:10]:
            click.echo(
                f"  {item.plan_id}  {item.projection} v{item.projection_version}  "
                f"event {item.event_id} ({item.event_type})"
            )
        if len(report.quarantined) > 10:
            click.echo(f"  ... and {len(report.quarantined) - 10} more")
    if not report.replay_runs:
        click.echo("replay runs         none in progress or interrupted")
    else:
        click.echo("replay runs         in progress or interrupted (rerun with --run to resume):")
        for r in report.replay_runs:
            click.echo(
                f"  {r.run}: {counted(r.plans_done, 'plan')} done, last checkpoint "
                f"{format_timestamp(r.last_finished_at)}"
            )


@click.command()
@database_option
@format_option
@click.option(
    "--runs", default=10, show_default=True, type=click.IntRange(min=0), help="Replay runs shown."
)
def status(database_url: str | None, output_format: str, runs: int) -> None:
    """What a person running workers needs: queue, lag, snapshots, replay runs. Only reads.

    The change feed's depth and the age of its oldest change (the workers' lag),
    snapshots per installed projection and version (fresh, stale, of another
    version, missing), and replay runs in progress or interrupted. --format json
    for monitoring.
    """
    on_interrupt(READ_ONLY)
    store = open_store(database_url)
    installed = [(p.name, p.version) for p in discover().values()]
    report = store_status(store, installed, runs=runs)
    database = where(store.engine.url)
    if output_format == "table":
        _print_status(report, database)
    elif output_format == "json":
        emit_json(_status_json(report, database))
    else:
        click.echo(orjson.dumps(_status_json(report, database), option=orjson.OPT_SORT_KEYS))


@click.command()
@projection_option
@click.option("--type", "event_type", help="Only this event type's payload schema.")
def schema(projection: str | None, event_type: str | None) -> None:
    """Print the JSON Schema of a projection's payload models, by event type.

    What each event type's payload must look like for the projection to read it
    (stage names inside payloads are spelt Analysis, Design, ...; the stage column
    is snake_case).
    """
    chosen = _projection(projection)
    models = dict(chosen.payload_models)
    if event_type is not None:
        if event_type not in models:
            raise InvalidInput(
                f"projection {chosen.name!r} has no payload model for {event_type!r}; it has "
                f"{', '.join(sorted(models)) or 'none'}",
                field="type",
            )
        models = {event_type: models[event_type]}
    emit_json(
        {
            "projection": chosen.name,
            "version": chosen.version,
            "payloads": {name: model.model_json_schema() for name, model in sorted(models.items())},
        }
    )


@click.command()
@click.option("--plans", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "-o",
    "--output",
    "target",
    type=click.Path(path_type=Path, allow_dash=True),
    help="Write to this regular file, replaced atomically once complete (default: "
    "stdout). A symlink, device or directory is refused: redirect stdout instead.",
)
def generate(plans: int, seed: int, target: Path | None) -> None:
    """Write a realistic sample event log (JSONL) by simulating the plan workflow.

    Includes older and newer service versions, same-transaction pairs, backfilled
    imports, soft-deleted mistakes, unknown event types and events with no actor.
    The same --plans and --seed always give the same file.
    """
    to_file = target is not None and str(target) != "-"
    if to_file and target is not None:
        check_replaceable(target)  # before the simulation, not after it
    on_interrupt(
        f"{target} was left as it was" if to_file else "the output stops where it was interrupted"
    )
    started = time.monotonic()
    with progress_display() as display:
        log = generate_rows(plans, seed, progress=display.task("simulating", plans, unit="plans"))
        write = display.task("writing", len(log.rows), unit="events")
        with output(target) as handle:
            for start in range(0, len(log.rows), WRITE_CHUNK):
                chunk = log.rows[start : start + WRITE_CHUNK]
                handle.write("".join(dumps_row(row) + "\n" for row in chunk))
                write(len(chunk))
    line = f"wrote {counted(len(log.rows), 'event')} of {counted(plans, 'plan')}"
    if to_file:
        click.echo(f"{line} to {target} in {_seconds(started)}", err=True)
    else:
        summary(line, data_on_stdout=True)


@click.command()
@database_option
@click.option("--plans", default=60, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=7, show_default=True, type=int)
def demo(database_url: str | None, plans: int, seed: int) -> None:
    """Migrate, load a generated sample, rebuild every plan, show one plan's story."""
    on_interrupt("rerun demo to finish: migrate and import are idempotent")
    run_demo(database_url, plans=plans, seed=seed)


_CHANGES_OPTIONS: tuple[click.Option, ...] = (
    click.Option(
        ["--changes"],
        is_flag=True,
        help="Show what each event changed in the plan state, field by field.",
    ),
    click.Option(
        ["--projection"],
        default=None,
        help="Projection whose tie rank orders same-timestamp events (and which folds "
        "--changes); default course_designer_plan.",
    ),
)


def with_changes(timeline: click.Command) -> click.Command:
    """The store's ``timeline`` command plus ``--changes`` (which folds with a projection).

    Both views order events as the projection's stream order reversed, tie rank
    included, so a stage never seems to start before the previous one completed.
    """
    extended = copy.copy(timeline)
    extended.params = [*timeline.params, *_CHANGES_OPTIONS]

    def show(changes: bool, projection: str | None, **options: Any) -> None:
        chosen = _projection(projection)
        if not changes:
            context = click.get_current_context()
            context.meta[TIE_RANK] = dict(chosen.tie_rank)
            context.invoke(timeline, **options)
            return
        on_interrupt(READ_ONLY)
        plan_id = parse_uuid(options["plan"], "plan")
        store = open_store(options["database_url"])
        print_changes(
            store,
            plan_id,
            chosen,
            options["output_format"],
            options["limit"],
            before=options.get("before"),
        )

    extended.callback = show
    return extended


def register(group: click.Group) -> None:
    """Add the projection commands to ``group`` (the ``eventsource.commands`` entry point)."""
    for command in (
        state,
        replay,
        verify,
        worker,
        reconcile,
        status,
        schema,
        generate,
        demo,
        report,
    ):
        group.add_command(command)
    group.add_command(host_drift)
    group.add_command(quarantine)
    timeline = group.commands.get("timeline")
    if timeline is not None:
        group.add_command(with_picture(with_changes(timeline)))
