"""The ``eventsource`` command line: the store's commands, and the group others join.

Other packages add commands through the ``eventsource.commands`` entry-point group
(see :class:`CommandGroup`); ``projections`` adds the replay tooling that way, so this
package never imports it. The options, output helpers and :class:`Group` here are
shared with those commands.

Every command takes ``--database-url`` (else ``EVENTSOURCE_DATABASE_URL``, else a
SQLite file ``eventsource.sqlite3`` in the working directory). Output is a table
for people and ``--format json``/``jsonl`` for programs. Errors are one line on
stderr and a non-zero exit.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Final, TypeVar
from uuid import UUID

import click
import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from . import migrate as migrations
from .config import make_engine, resolve_url
from .errors import EventSourceError, InvalidInput
from .events import NewEvent, RecordedEvent, check_timestamp
from .jsonl import dumps_row, event_to_row, format_timestamp
from .positions import TimelineCursor
from .store import EventStore
from .versions import ANY, NO_STREAM, STREAM_EXISTS, ExpectedVersion

F = TypeVar("F", bound=Callable[..., Any])

COMMANDS_GROUP: Final = "eventsource.commands"
"""The entry-point group through which other packages add commands to ``eventsource``."""

FORMATS: Final = ("table", "json", "jsonl")
EXIT_ERROR: Final = 1
EXIT_DIFFERENCES: Final = 3

stderr = Console(stderr=True)


class Group(click.Group):
    """Turns library errors into one clear line and exit code 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EventSourceError as exc:
            raise click.ClickException(str(exc)) from exc
        except KeyboardInterrupt:
            stderr.print("interrupted; work committed so far is kept (rerun to resume)")
            sys.exit(130)


class CommandGroup(Group):
    """The top-level group: the store's commands plus those other packages register.

    A package adds commands with an entry point in the ``eventsource.commands`` group
    naming a function that takes this group and adds its commands to it::

        [project.entry-points."eventsource.commands"]
        my_package = "my_package.cli:register"

        def register(group: click.Group) -> None:
            group.add_command(my_command)

    Entry points are loaded the first time a command is listed or looked up, never at
    import. One that fails to load or to register is a one-line error naming it, and
    leaves the group as it was.
    """

    def __init__(self, *args: Any, entry_point_group: str = COMMANDS_GROUP, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entry_point_group = entry_point_group
        self._discovered = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.discover()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self.discover()
        return super().get_command(ctx, cmd_name)

    def discover(self) -> None:
        """Let every entry point of :attr:`entry_point_group` add its commands (once).

        Raises:
            click.ClickException: an entry point is broken (its package names it wrongly,
                fails to import, or its function raises).
        """
        if self._discovered:
            return
        before = dict(self.commands)
        for entry_point in sorted(entry_points(group=self.entry_point_group), key=_entry_name):
            try:
                register = entry_point.load()
                if isinstance(register, click.Command) or not callable(register):
                    raise TypeError(f"{register!r} is not a function register(group)")
                register(self)
            except Exception as exc:
                self.commands = before
                reason = " ".join(f"{type(exc).__name__}: {exc}".split())
                raise click.ClickException(
                    f"the {self.entry_point_group} entry point {entry_point.name!r} "
                    f"({entry_point.value}) is broken: {reason}; reinstall or remove the "
                    "package that provides it"
                ) from exc
        self._discovered = True


def _entry_name(entry_point: EntryPoint) -> str:
    return entry_point.name


def database_option(function: F) -> F:
    # No click ``envvar``: resolve_url reads EVENTSOURCE_DATABASE_URL itself, so an
    # error names where the bad URL came from (the flag or the variable).
    return click.option(
        "--database-url",
        help="SQLAlchemy URL: postgresql://user@host/db or sqlite:///file. "
        "Else $EVENTSOURCE_DATABASE_URL, else sqlite:///eventsource.sqlite3 in the "
        "working directory.",
    )(function)


def format_option(function: F) -> F:
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="table for people; json (one document) or jsonl (one record a line) for programs.",
    )(function)


def open_store(database_url: str | None) -> EventStore:
    store = EventStore(make_engine(resolve_url(database_url)))
    store.check_schema()
    return store


def parse_uuid(value: str, what: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise InvalidInput(f"{what} {value!r} is not a UUID", field=what) from None


def parse_time(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{what} {value!r} is not an RFC 3339 timestamp like 2025-05-01T12:00:00Z",
            field=what,
        ) from None
    return check_timestamp(parsed, what)


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (hidden when stderr is not a terminal)."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=False,
        disable=not stderr.is_terminal,
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def event_json(event: RecordedEvent) -> dict[str, Any]:
    return event_to_row(event)


def emit_json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())


def events_table(title: str, rows: list[RecordedEvent], *, audit: bool = False) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("occurred_at", no_wrap=True)
    if audit:
        table.add_column("created_at", no_wrap=True)
        table.add_column("deleted_at", no_wrap=True)
    table.add_column("event_type")
    table.add_column("stage")
    table.add_column("actor", no_wrap=True)
    table.add_column("payload", overflow="fold")
    for event in rows:
        cells = [format_timestamp(event.occurred_at)]
        if audit:
            cells.append(format_timestamp(event.created_at))
            cells.append("" if event.deleted_at is None else format_timestamp(event.deleted_at))
        cells += [
            event.event_type,
            event.stage or "",
            "system" if event.actor_user_id is None else str(event.actor_user_id)[:8],
            orjson.dumps(event.payload, option=orjson.OPT_SORT_KEYS).decode()[:120],
        ]
        table.add_row(*cells)
    return table


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="eventsource-course-designer")
def main() -> None:
    """Event store and replay tooling for course-designer plans.

    \b
    Start here:
      eventsource demo                    sample data on SQLite, then a timeline
      eventsource migrate                 create or upgrade the schema
      eventsource import events.jsonl     load events (the table's column names)
      eventsource timeline PLAN           a plan's events, newest first
    """


@main.command()
@database_option
@click.option("--sql", is_flag=True, help="Print the DDL instead of running it (for hosts).")
@click.option(
    "--create-roles",
    is_flag=True,
    help="PostgreSQL: also create the least-privilege roles eventsource_writer "
    "(insert events, set deleted_at only) and eventsource_reader (read only).",
)
def migrate(database_url: str | None, sql: bool, create_roles: bool) -> None:
    """Create or upgrade the schema (safe to run again: it changes nothing)."""
    from . import roles

    url = resolve_url(database_url)
    if create_roles and url.get_backend_name() != "postgresql":
        raise InvalidInput("--create-roles needs PostgreSQL (SQLite has no roles)")
    if sql:
        click.echo(migrations.upgrade_sql(url), nl=False)
        if create_roles:
            click.echo(";\n".join(roles.statements()) + ";")
        return
    engine = make_engine(url)
    before, after = migrations.upgrade(engine)
    if create_roles:
        with engine.begin() as connection:
            roles.create_roles(connection)
        click.echo(f"roles {roles.WRITER} and {roles.READER} are in place")
    where = url.render_as_string(hide_password=True)
    if before == after:
        click.echo(f"{where}: already at revision {after}; nothing to do")
    else:
        click.echo(f"{where}: migrated {before or '(no eventsource schema)'} -> {after}")


@main.command(name="import")
@database_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--create-parents",
    is_flag=True,
    help="Create missing users and plans (minimal rows) in a standalone database.",
)
@click.option(
    "--allow-host-parents",
    is_flag=True,
    help="With --create-parents: also insert into parent tables that are the host "
    "service's own, not eventsource migrate's stand-ins.",
)
def import_(
    database_url: str | None, file: Path, create_parents: bool, allow_host_parents: bool
) -> None:
    """Import FILE.jsonl (one event a line, the table's column names).

    All or nothing: a bad line names its number and nothing of the file is kept.
    Importing the same file again changes nothing.
    """
    from .transfer import import_file

    store = open_store(database_url)
    with file.open("rb") as handle:
        total = sum(1 for line in handle if line.strip())
    with progress_bar(f"importing {file.name}", total) as advance:
        result = import_file(
            store,
            str(file),
            create_parents=create_parents,
            allow_host_parents=allow_host_parents,
            progress=advance,
        )
    click.echo(
        f"read {result.read} events: {result.inserted} inserted, {result.unchanged} "
        f"already stored, {result.plans} plans changed"
        + (
            f"; created {result.users_created} users and {result.plans_created} plans"
            if create_parents
            else ""
        )
    )


@main.command()
@database_option
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
@click.option("--plan", "plans", multiple=True, help="Only this plan (repeatable).")
def export(database_url: str | None, output: Path | None, plans: tuple[str, ...]) -> None:
    """Export every event (deleted ones too) as JSONL, plan by plan in stream order."""
    from .transfer import export_file

    store = open_store(database_url)
    plan_ids = [parse_uuid(p, "plan") for p in plans] or None
    if output is None:
        stream = sys.stdout
        export_file(store, stream, plan_ids)
        return
    tmp = output.with_name(output.name + ".partial")
    with (
        tmp.open("w", encoding="utf-8", newline="\n") as handle,
        progress_bar("exporting plans", None if plan_ids is None else len(plan_ids)) as advance,
    ):
        count = export_file(store, handle, plan_ids, progress=advance)
    tmp.replace(output)
    click.echo(f"wrote {count} events to {output}", err=True)


def parse_expected(value: str) -> ExpectedVersion:
    lowered = value.lower()
    if lowered == "any":
        return ANY
    if lowered in ("no-stream", "no_stream"):
        return NO_STREAM
    if lowered in ("exists", "stream-exists", "stream_exists"):
        return STREAM_EXISTS
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(
            f"--expected-version {value!r} must be any, no-stream, exists or a number",
            field="expected_version",
        ) from None


@main.command()
@database_option
@format_option
@click.argument("plan")
@click.option("--type", "event_type", required=True, help="The event type, e.g. plan_created.")
@click.option("--payload", default="{}", show_default=True, help="The payload, a JSON object.")
@click.option("--stage", help="Workflow stage: analysis, design, development, ...")
@click.option("--actor", help="The acting user's id (omit for system events).")
@click.option("--occurred-at", help="Backfill: when it happened (RFC 3339, with timezone).")
@click.option("--id", "event_id", help="Event id (default: a new time-ordered UUIDv7).")
@click.option(
    "--expected-version",
    default="any",
    show_default=True,
    help="any, no-stream, exists, or the exact number of events the plan must have.",
)
def append(
    database_url: str | None,
    output_format: str,
    plan: str,
    event_type: str,
    payload: str,
    stage: str | None,
    actor: str | None,
    occurred_at: str | None,
    event_id: str | None,
    expected_version: str,
) -> None:
    """Append one event to PLAN."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"--payload is not valid JSON: {exc}", field="payload") from None
    event = NewEvent(
        event_type=event_type,
        payload=data,
        stage=stage,
        actor_user_id=None if actor is None else parse_uuid(actor, "actor"),
        occurred_at=parse_time(occurred_at, "occurred-at"),
        id=None if event_id is None else parse_uuid(event_id, "id"),
    )
    store = open_store(database_url)
    result = store.append(
        parse_uuid(plan, "plan"), [event], expected_version=parse_expected(expected_version)
    )
    if output_format == "table":
        state = "appended" if result.appended else "already stored (idempotent re-send)"
        click.echo(f"{result.event_ids[0]} {state}")
    else:
        emit_json(
            {
                "plan_id": str(result.plan_id),
                "event_ids": [str(i) for i in result.event_ids],
                "appended": result.appended,
                "version": result.version,
            }
        )


@main.command()
@database_option
@format_option
@click.argument("plan")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--before", help="Cursor printed at the end of the previous page.")
def timeline(
    database_url: str | None, output_format: str, plan: str, limit: int, before: str | None
) -> None:
    """A plan's live events, newest first, a page at a time."""
    store = open_store(database_url)
    plan_id = parse_uuid(plan, "plan")
    page = store.timeline(
        plan_id, before=None if before is None else TimelineCursor.decode(before), limit=limit
    )
    if not page.events and before is None and store.version(plan_id) == 0:
        from .errors import UnknownPlan

        raise UnknownPlan(plan_id)
    cursor = None if page.next_cursor is None else page.next_cursor.encode()
    if output_format == "json":
        emit_json({"events": [event_json(e) for e in page.events], "next_cursor": cursor})
    elif output_format == "jsonl":
        for event in page.events:
            click.echo(dumps_row(event_json(event)))
    else:
        Console().print(events_table(f"plan {plan_id}: newest first", list(page.events)))
        if cursor:
            click.echo(f"more: --before '{cursor}'")


@main.command()
@database_option
@format_option
@click.argument("plan")
def audit(database_url: str | None, output_format: str, plan: str) -> None:
    """Every row of PLAN, deleted ones included, with actor and all three timestamps."""
    store = open_store(database_url)
    plan_id = parse_uuid(plan, "plan")
    rows = store.audit(plan_id)
    if output_format == "jsonl":
        count = 0
        for count, event in enumerate(rows, start=1):  # noqa: B007
            click.echo(dumps_row(event_json(event)))
    else:
        materialized = list(rows)
        count = len(materialized)
        if output_format == "json":
            emit_json([event_json(e) for e in materialized])
        else:
            Console().print(events_table(f"plan {plan_id}: audit", materialized, audit=True))
    if count == 0:
        from .errors import UnknownPlan

        raise UnknownPlan(plan_id)


@main.command(name="delete")
@database_option
@click.argument("event_id")
def delete_(database_url: str | None, event_id: str) -> None:
    """Soft-delete an event (sets deleted_at; the row stays for the audit)."""
    changed = open_store(database_url).soft_delete(parse_uuid(event_id, "event"))
    click.echo("deleted" if changed else "already deleted; nothing changed")


@main.command()
@database_option
@click.argument("event_id")
def restore(database_url: str | None, event_id: str) -> None:
    """Restore a soft-deleted event (clears deleted_at)."""
    changed = open_store(database_url).restore(parse_uuid(event_id, "event"))
    click.echo("restored" if changed else "not deleted; nothing changed")


if __name__ == "__main__":  # pragma: no cover
    main()
