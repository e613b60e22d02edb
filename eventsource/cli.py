"""The ``eventsource`` command line: the store's commands, and the group others join.

Other packages add commands through the ``eventsource.commands`` entry-point group
(see :class:`CommandGroup`); ``projections`` adds the replay tooling that way, so this
package never imports it. The options, output helpers and :class:`Group` here are
shared with those commands.

Every command takes ``--database-url`` (else ``EVENTSOURCE_DATABASE_URL``, else a
SQLite file ``eventsource.sqlite3`` in the working directory). Output is a table
for people and ``--format json``/``jsonl`` for programs.

Failures. Whatever escapes a command (a library error, a driver or file-system
error, a bad argument) is one line on stderr, ``Error: ...``, with an exit code from
``eventsource.failures`` (1 failed, 2 usage, 3 verify found differences, 130
interrupted); ``eventsource --debug`` adds the traceback. A reader that closes the
pipe early (``| head``) ends the command quietly with 0, as Unix tools do. Ctrl-C
says what the interrupted command leaves behind: each command states it with
:func:`on_interrupt` (commands that do not say anything claim nothing).
"""

from __future__ import annotations

import os
import shutil
import sys
import traceback
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import datetime
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Final, TypeVar
from uuid import UUID

import click
import orjson

from . import migrate as migrations
from .config import resolve_url
from .connect import open_engine, where
from .errors import EventSourceError, InvalidInput, UnknownPlan
from .events import STAGES, NewEvent, RecordedEvent, check_timestamp, parse_json
from .failures import (
    EXIT_DIFFERENCES,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    describe,
    describe_os_error,
    is_broken_pipe,
    one_line,
)
from .jsonl import dumps_row, event_to_row
from .outputs import output
from .progress import progress_bar, progress_display, stderr
from .render import counted, event_blocks, terminal_width
from .store import EventStore
from .timeline_order import decode_cursor, encode_cursor, newest_first
from .versions import ANY, NO_STREAM, STREAM_EXISTS, ExpectedVersion

F = TypeVar("F", bound=Callable[..., Any])

COMMANDS_GROUP: Final = "eventsource.commands"
"""The entry-point group through which other packages add commands to ``eventsource``."""

FORMATS: Final = ("table", "json", "jsonl")
DEBUG_ENV: Final = "EVENTSOURCE_DEBUG"
"""``EVENTSOURCE_DEBUG=1`` is ``eventsource --debug``: tracebacks with the error line."""
INTERRUPT_NOTE: Final = "eventsource.interrupt_note"
"""``ctx.meta`` key: what Ctrl-C leaves behind in the running command."""
TIE_RANK: Final = "eventsource.tie_rank"
"""``ctx.meta`` key: the tie rank ``timeline`` orders same-timestamp events by (a
projection's, set by the command that wraps ``timeline``; none by default)."""

READ_ONLY: Final = "nothing was changed (this command only reads)"

__all__ = [
    "COMMANDS_GROUP",
    "EXIT_DIFFERENCES",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "FORMATS",
    "READ_ONLY",
    "TIE_RANK",
    "CommandGroup",
    "Group",
    "check_plans",
    "command_name",
    "database_option",
    "emit_json",
    "format_option",
    "main",
    "on_interrupt",
    "open_store",
    "parse_time",
    "parse_uuid",
    "progress_bar",
    "progress_display",
    "summary",
]


def on_interrupt(note: str) -> None:
    """Say, for the running command, what Ctrl-C leaves behind (printed if it comes)."""
    click.get_current_context().meta[INTERRUPT_NOTE] = note


def _silence_stdout() -> None:
    # The reader is gone: point stdout at /dev/null so the interpreter's last
    # flush does not fail again on the closed pipe.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _say(line: str) -> None:
    with suppress(OSError):
        click.echo(line, err=True)


class Group(click.Group):
    """A command group whose failures are one line and an exit code, never a traceback.

    :meth:`main` runs the command line and turns whatever escapes into one line on
    stderr (see ``eventsource.failures``); :meth:`invoke` turns Ctrl-C into what the
    running command said it leaves behind.
    """

    debug: bool = False
    """Print tracebacks too (``--debug`` or ``EVENTSOURCE_DEBUG=1``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            note = ctx.meta.get(INTERRUPT_NOTE)
            _say("interrupted" + (f"; {note}" if note else ""))
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except OSError as exc:
            # Here, not in main: click itself turns a broken pipe into exit code 1.
            if not is_broken_pipe(exc):
                raise
            _silence_stdout()
            raise click.exceptions.Exit(EXIT_OK) from None

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        sys.exit(self._run(args, prog_name, complete_var, extra))

    def _run(
        self,
        args: Sequence[str] | None,
        prog_name: str | None,
        complete_var: str | None,
        extra: dict[str, Any],
    ) -> int:
        self.debug = os.environ.get(DEBUG_ENV) == "1"
        try:
            try:
                result = super().main(args, prog_name, complete_var, False, **extra)
            finally:
                sys.stdout.flush()
        except SystemExit:
            raise
        except BaseException as exc:
            return self._failed(exc)
        return result if isinstance(result, int) else EXIT_OK

    def _failed(self, exc: BaseException) -> int:
        if is_broken_pipe(exc):
            _silence_stdout()
            return EXIT_OK
        if isinstance(exc, KeyboardInterrupt | click.exceptions.Abort):
            _say("interrupted")
            return EXIT_INTERRUPTED
        if not isinstance(exc, Exception):
            raise exc
        if isinstance(exc, click.exceptions.NoArgsIsHelpError) and exc.ctx is not None:
            click.echo(exc.ctx.get_help())  # no command at all: show what there is
            return EXIT_OK
        if self.debug:
            traceback.print_exception(exc, file=sys.stderr)
        if isinstance(exc, click.UsageError):
            hint = "" if exc.ctx is None else f" (see '{exc.ctx.command_path} --help')"
            _say(f"Error: {one_line(exc.format_message())}{hint}")
            return EXIT_USAGE
        if isinstance(exc, click.ClickException):
            _say(f"Error: {one_line(exc.format_message())}")
            return exc.exit_code
        if isinstance(exc, OSError) and not isinstance(exc, EventSourceError):
            # Files the commands open are named in their errors (outputs, transfer);
            # an OSError without a file name is a write to stdout that failed.
            action = "cannot write to standard output" if exc.filename is None else None
            _say(f"Error: {describe_os_error(exc, action)}")
            return EXIT_ERROR
        _say(f"Error: {describe(exc)}")
        return EXIT_ERROR


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


def validate_payloads_option(function: F) -> F:
    return click.option(
        "--validate-payloads/--no-validate-payloads",
        default=True,
        show_default=True,
        help="Refuse payloads of the event types projections read that their payload "
        "models cannot read (`schema` prints them); --no-validate-payloads stores them "
        "anyway (the projections then quarantine the plan).",
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
    """The store for a command that needs a migrated database (it never creates one).

    Raises:
        SchemaMissing: no SQLite file at the path, or the schema is missing.
        StoreUnavailable: the database cannot be reached (the driver's reason).
    """
    store = EventStore(open_engine(resolve_url(database_url)))
    store.check_schema()
    return store


def check_plans(store: EventStore, plans: Sequence[str]) -> list[UUID]:
    """The ``--plan`` ids, each checked to have events, before anything is written.

    Raises:
        InvalidInput: one is not a UUID.
        UnknownPlan: one has no events.
    """
    plan_ids = [parse_uuid(p, "plan") for p in plans]
    for plan_id in plan_ids:
        if store.version(plan_id) == 0:
            raise UnknownPlan(plan_id)
    return plan_ids


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


def command_name() -> str:
    """How the user ran this program, for hints they can paste back.

    ``eventsource`` when that is what they typed (or that name on PATH is this very
    program), else the path they typed (``.venv/bin/eventsource``), or
    ``python -m eventsource``.
    """
    invoked = sys.argv[0] if sys.argv and sys.argv[0] else "eventsource"
    if Path(invoked).name == "__main__.py":
        return f"{Path(sys.executable).name} -m eventsource"
    if os.sep not in invoked:
        return invoked
    on_path = shutil.which(Path(invoked).name)
    if on_path is not None and Path(on_path).resolve() == Path(invoked).resolve():
        return Path(invoked).name
    return invoked


def summary(text: str, *, data_on_stdout: bool) -> None:
    """A command's final summary line.

    With data on stdout (JSON, an export) it goes to stderr, and only to a person
    watching a terminal; otherwise it ends the human output on stdout.
    """
    if not data_on_stdout:
        click.echo(text)
    elif stderr.is_terminal:
        click.echo(text, err=True)


def event_json(event: RecordedEvent) -> dict[str, Any]:
    return event_to_row(event)


def emit_json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())


def print_events(title: str, events: Sequence[RecordedEvent], *, audit: bool = False) -> None:
    click.echo(title)
    for line in event_blocks(events, audit=audit, width=terminal_width()):
        click.echo(line)


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and isinstance(ctx.command, Group):
        ctx.command.debug = True


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="eventsource-course-designer")
@click.option(
    "--debug",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_set_debug,
    help="Print the traceback with an error (also EVENTSOURCE_DEBUG=1).",
)
def main() -> None:
    """Event store and replay tooling for course-designer plans.

    \b
    Start here:
      eventsource demo                    sample data on SQLite, then a timeline
      eventsource migrate                 create or upgrade the schema
      eventsource import events.jsonl     load events (the table's column names)
      eventsource timeline PLAN           a plan's events, newest first
      eventsource status                  queue, snapshots and replays at a glance

    \b
    Exit codes: 0 done, 1 failed (one line on stderr says why), 2 bad usage,
    3 verify found differences, 130 interrupted.
    """


@main.command()
@database_option
@click.option("--sql", is_flag=True, help="Print the DDL instead of running it (for hosts).")
@click.option(
    "--create-roles",
    is_flag=True,
    help="PostgreSQL: also create the least-privilege roles eventsource_writer "
    "(append, soft delete, restore), eventsource_importer (import), "
    "eventsource_projector (snapshots, workers, replay) and eventsource_reader (read only).",
)
def migrate(database_url: str | None, sql: bool, create_roles: bool) -> None:
    """Create or upgrade the schema (safe to run again: it changes nothing)."""
    from . import roles

    url = resolve_url(database_url)
    if create_roles and url.get_backend_name() != "postgresql":
        raise InvalidInput("--create-roles needs PostgreSQL (SQLite has no roles)")
    if sql:
        on_interrupt(READ_ONLY)
        click.echo(migrations.upgrade_sql(url), nl=False)
        if create_roles:
            click.echo(";\n".join(roles.statements()) + ";")
        return
    on_interrupt(
        "the migration in progress was rolled back (it runs in one transaction); rerun migrate"
    )
    engine = open_engine(url, create=True)
    before, after = migrations.upgrade(engine)
    if create_roles:
        with engine.begin() as connection:
            roles.create_roles(connection)
        click.echo(f"roles {', '.join(roles.ROLES)} are in place")
    if before == after:
        click.echo(f"{where(url)}: already at revision {after}; nothing to do")
    else:
        click.echo(f"{where(url)}: migrated {before or '(no eventsource schema)'} -> {after}")


@main.command(name="import")
@database_option
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
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
@validate_payloads_option
def import_(
    database_url: str | None,
    file: str,
    create_parents: bool,
    allow_host_parents: bool,
    validate_payloads: bool,
) -> None:
    """Import FILE.jsonl (one event a line, the table's column names); - reads stdin.

    FILE may be a pipe or a process substitution (<(...)): it is read once, as it
    streams. All or nothing: a bad line names its number and nothing of the file
    is kept. Importing the same file again changes nothing.
    """
    from .transfer import import_events, open_source, source_lines

    on_interrupt("nothing was imported (an import is all or nothing); rerun it")
    store = open_store(database_url)
    with open_source(file) as source, progress_display() as display:
        advance = display.task(f"reading {Path(source.label).name}", source.size, unit="bytes")
        result = import_events(
            store,
            source_lines(source, advance),
            create_parents=create_parents,
            allow_host_parents=allow_host_parents,
            validate_payloads=validate_payloads,
            phase=lambda name, total: display.task(
                name, total, unit="" if total is None else "plans"
            ),
        )
    click.echo(
        f"read {counted(result.read, 'event')}: {result.inserted} inserted, {result.unchanged} "
        f"already stored, {counted(result.plans, 'plan')} changed"
        + (
            f"; created {counted(result.users_created, 'user')} "
            f"and {counted(result.plans_created, 'plan')}"
            if create_parents
            else ""
        )
    )


@main.command()
@database_option
@click.option(
    "-o",
    "--output",
    "target",
    type=click.Path(path_type=Path, allow_dash=True),
    help="Write to this regular file, replaced atomically once complete (default: "
    "stdout). A symlink, device or directory is refused: redirect stdout instead.",
)
@click.option("--plan", "plans", multiple=True, help="Only this plan (repeatable).")
def export(database_url: str | None, target: Path | None, plans: tuple[str, ...]) -> None:
    """Export every event (deleted ones too) as JSONL, plan by plan in stream order."""
    from .transfer import export_file

    to_file = target is not None and str(target) != "-"
    on_interrupt(
        f"{target} was left as it was (the partial output was removed)"
        if to_file
        else "nothing was changed; the output stops where it was interrupted"
    )
    store = open_store(database_url)
    plan_ids = check_plans(store, plans) if plans else list(store.plan_ids())
    with (
        output(target) as handle,
        progress_bar("exporting", len(plan_ids), unit="plans") as advance,
    ):
        count = export_file(store, handle, plan_ids, progress=advance)
    line = f"wrote {counted(count, 'event')} of {counted(len(plan_ids), 'plan')}"
    if to_file:
        click.echo(f"{line} to {target}", err=True)
    else:
        summary(line, data_on_stdout=True)


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


def parse_stage(value: str | None) -> str | None:
    """The stage column's value; ``Design`` (a payload's spelling) is named as such."""
    if value is None or value in STAGES:
        return value
    if value.lower() in STAGES:
        raise InvalidInput(
            f"--stage {value!r}: the stage column is snake_case, use {value.lower()!r} "
            f"(payloads spell stages {value.capitalize()!r}); one of {', '.join(STAGES)}",
            field="stage",
        )
    return value  # the store's own check names the allowed values


@main.command()
@database_option
@format_option
@click.argument("plan")
@click.option("--type", "event_type", required=True, help="The event type, e.g. plan_created.")
@click.option("--payload", default="{}", show_default=True, help="The payload, a JSON object.")
@click.option(
    "--stage",
    help="The stage column: analysis, design, development, implementation or evaluation "
    "(snake_case; inside payloads stages are spelt Analysis, Design, ...).",
)
@click.option("--actor", help="The acting user's id (omit for system events).")
@click.option("--occurred-at", help="Backfill: when it happened (RFC 3339, with timezone).")
@click.option("--id", "event_id", help="Event id (default: a new time-ordered UUIDv7).")
@click.option(
    "--expected-version",
    default="any",
    show_default=True,
    help="any, no-stream, exists, or the exact number of events the plan must have.",
)
@validate_payloads_option
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
    validate_payloads: bool,
) -> None:
    """Append one event to PLAN."""
    try:
        data = parse_json(payload)  # every digit of an integer, the nesting bounded
    except InvalidInput as exc:
        text = str(exc)
        where = "--payload is " if text.startswith("not valid") else "--payload: "
        raise InvalidInput(where + text, field="payload") from None
    event = NewEvent(
        event_type=event_type,
        payload=data,
        stage=parse_stage(stage),
        actor_user_id=None if actor is None else parse_uuid(actor, "actor"),
        occurred_at=parse_time(occurred_at, "occurred-at"),
        id=None if event_id is None else parse_uuid(event_id, "id"),
    )
    plan_id = parse_uuid(plan, "plan")
    on_interrupt(
        "the append either committed or not; re-sending the same --id stores it once"
        if event_id
        else f"the append either committed or not; check with `{command_name()} timeline "
        f"{plan_id}` before sending it again"
    )
    store = open_store(database_url)
    result = store.append(
        plan_id,
        [event],
        expected_version=parse_expected(expected_version),
        validate_payloads=validate_payloads,
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
    """A plan's live events, newest first (the stream order reversed), a page at a time."""
    on_interrupt(READ_ONLY)
    plan_id = parse_uuid(plan, "plan")
    cursor_in = None if before is None else decode_cursor(before)
    store = open_store(database_url)
    tie_rank = click.get_current_context().meta.get(TIE_RANK, {})
    page = newest_first(store, plan_id, tie_rank, before=cursor_in, limit=limit)
    if not page.events and before is None and store.version(plan_id) == 0:
        raise UnknownPlan(plan_id)
    cursor = None if page.next_cursor is None else encode_cursor(page.next_cursor)
    if output_format == "json":
        emit_json({"events": [event_json(e) for e in page.events], "next_cursor": cursor})
    elif output_format == "jsonl":
        for event in page.events:
            click.echo(dumps_row(event_json(event)))
    else:
        print_events(f"plan {plan_id}: newest first", page.events)
        if cursor:
            click.echo(f"more: --before '{cursor}'")


@main.command()
@database_option
@format_option
@click.argument("plan")
def audit(database_url: str | None, output_format: str, plan: str) -> None:
    """Every row of PLAN, deleted ones included, with actor and all three timestamps."""
    on_interrupt(READ_ONLY)
    plan_id = parse_uuid(plan, "plan")
    store = open_store(database_url)
    if store.version(plan_id) == 0:
        raise UnknownPlan(plan_id)
    rows = store.audit(plan_id)
    if output_format == "jsonl":
        for event in rows:
            click.echo(dumps_row(event_json(event)))
    elif output_format == "json":
        emit_json([event_json(e) for e in rows])
    else:
        title = f"plan {plan_id}: audit, every row in the order recorded"
        print_events(title, list(rows), audit=True)


@main.command(name="delete")
@database_option
@click.argument("event_id")
def delete_(database_url: str | None, event_id: str) -> None:
    """Soft-delete an event (sets deleted_at; the row stays for the audit)."""
    ident = parse_uuid(event_id, "event")
    on_interrupt("the delete either committed or not; rerun it (it is idempotent)")
    changed = open_store(database_url).soft_delete(ident)
    click.echo("deleted" if changed else "already deleted; nothing changed")


@main.command()
@database_option
@click.argument("event_id")
def restore(database_url: str | None, event_id: str) -> None:
    """Restore a soft-deleted event (clears deleted_at)."""
    ident = parse_uuid(event_id, "event")
    on_interrupt("the restore either committed or not; rerun it (it is idempotent)")
    changed = open_store(database_url).restore(ident)
    click.echo("restored" if changed else "not deleted; nothing changed")


if __name__ == "__main__":  # pragma: no cover
    main()
