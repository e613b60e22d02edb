"""The ``eventsource`` CLI's store commands, on a SQLite file and on PostgreSQL.

Commands run in-process through click's ``CliRunner``; errors must be one line
on stderr with a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from functools import cache
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import click
import pytest
from click.testing import CliRunner, Result

from eventsource import EventStore, cli, migrate
from eventsource.cli import CommandGroup, main
from eventsource.transfer import import_events
from projections.course_designer import CourseDesignerPlanProjection
from tests.conftest import DATA

FIXTURE = DATA / "course_designer_events.jsonl"
ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> Result:
    # A wide console, so table cells are not elided to fit 80 columns.
    return CliRunner(env={"COLUMNS": "400"}).invoke(main, list(args))


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exception is None, result.output
    assert result.exit_code == 0, result.output
    return result


def one_line_error(result: Result) -> str:
    """The single stderr line of a failed command (and proof there is no traceback)."""
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


def fixture_rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]


def busiest_plan_with_a_deletion() -> tuple[str, int, int]:
    """(plan id, rows, live rows) of the fixture plan with most rows and a deleted one."""
    rows = fixture_rows()
    total = Counter(r["course_designer_plan_id"] for r in rows)
    live = Counter(r["course_designer_plan_id"] for r in rows if r["deleted_at"] is None)
    deleted = {r["course_designer_plan_id"] for r in rows if r["deleted_at"] is not None}
    plan = max(deleted, key=lambda p: (total[p], p))
    return plan, total[plan], live[plan]


@cache
def sample_lines() -> tuple[str, ...]:
    """The fixture lines of three plans (the busiest with a deletion first): small
    enough to load for every test, varied enough to page, audit and export."""
    busiest, _, _ = busiest_plan_with_a_deletion()
    plans = sorted({r["course_designer_plan_id"] for r in fixture_rows()} - {busiest})[:2]
    chosen = {busiest, *plans}
    return tuple(
        line
        for line in FIXTURE.read_text(encoding="utf-8").splitlines()
        if json.loads(line)["course_designer_plan_id"] in chosen
    )


@pytest.fixture
def loaded(store: EventStore, backend_url: str) -> str:
    """The database URL of a migrated store holding :func:`sample_lines`."""
    import_events(store, sample_lines(), create_parents=True)
    return backend_url


# -- migrate and import --------------------------------------------------------


def test_migrate_creates_the_schema_and_a_second_run_changes_nothing(backend_url: str) -> None:
    head = migrate.head_revision()
    first = ok("migrate", "--database-url", backend_url)
    assert re.search(rf": migrated .+ -> {head}$", first.output.strip())
    second = ok("migrate", "--database-url", backend_url)
    assert second.output.strip().endswith(f": already at revision {head}; nothing to do")
    # The schema is there: an unknown plan is now the only complaint.
    line = one_line_error(run("audit", "--database-url", backend_url, str(uuid4())))
    assert "has no events" in line


def test_import_with_create_parents_then_again_inserts_nothing(
    backend_url: str, tmp_path: Path
) -> None:
    sample = tmp_path / "sample.jsonl"
    sample.write_text("\n".join(sample_lines()) + "\n", encoding="utf-8")
    rows = [json.loads(line) for line in sample_lines()]
    users = {r["actor_user_id"] for r in rows} - {None}
    n = len(rows)
    ok("migrate", "--database-url", backend_url)
    first = ok("import", "--database-url", backend_url, "--create-parents", str(sample))
    assert f"read {n} events: {n} inserted, 0 already stored, 3 plans changed" in first.output
    assert f"created {len(users)} users and 3 plans" in first.output
    second = ok("import", "--database-url", backend_url, "--create-parents", str(sample))
    assert f"read {n} events: 0 inserted, {n} already stored, 0 plans changed" in second.output


def test_import_without_create_parents_into_an_empty_database_fails_naming_the_line(
    backend_url: str,
) -> None:
    ok("migrate", "--database-url", backend_url)
    line = one_line_error(run("import", "--database-url", backend_url, str(FIXTURE)))
    assert re.match(r"Error: line \d+: (actor_user_id|course_designer_plan_id) ", line)
    assert "--create-parents" in line


def test_import_of_a_bad_line_fails_naming_it(backend_url: str, tmp_path: Path) -> None:
    ok("migrate", "--database-url", backend_url)
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()[:6]
    lines[4] = "{oops"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    line = one_line_error(
        run("import", "--database-url", backend_url, "--create-parents", str(bad))
    )
    assert line.startswith("Error: line 5: not valid JSON")


# -- timeline ------------------------------------------------------------------


def _timeline_json(url: str, plan: str, *extra: str) -> dict[str, Any]:
    result = ok("timeline", "--database-url", url, plan, "--format", "json", *extra)
    document: dict[str, Any] = json.loads(result.output)
    return document


def test_timeline_json_is_newest_first_without_deleted_events(loaded: str) -> None:
    plan, _, live = busiest_plan_with_a_deletion()
    document = _timeline_json(loaded, plan, "--limit", "1000")
    events = document["events"]
    assert document["next_cursor"] is None
    assert len(events) == live
    assert all(e["deleted_at"] is None for e in events)
    # The stream order reversed, the plan projection's tie rank included.
    ranks = CourseDesignerPlanProjection().tie_rank
    keys = [
        (e["occurred_at"], e["created_at"], ranks.get(e["event_type"], 0), e["id"]) for e in events
    ]
    assert keys == sorted(keys, reverse=True)
    expected = {
        json.dumps(r, sort_keys=True)
        for r in fixture_rows()
        if r["course_designer_plan_id"] == plan and r["deleted_at"] is None
    }
    assert {json.dumps(e, sort_keys=True) for e in events} == expected


def test_timeline_pages_with_limit_and_before_cover_the_plan_once(loaded: str) -> None:
    plan, _, live = busiest_plan_with_a_deletion()
    everything = [e["id"] for e in _timeline_json(loaded, plan, "--limit", "1000")["events"]]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        extra = ["--limit", "2"] + ([] if cursor is None else ["--before", cursor])
        document = _timeline_json(loaded, plan, *extra)
        pages += 1
        assert 1 <= len(document["events"]) <= 2
        seen += [e["id"] for e in document["events"]]
        cursor = document["next_cursor"]
        if cursor is None:
            break
    assert seen == everything
    assert pages == -(-live // 2)


def test_timeline_table_prints_the_events_and_a_before_option_for_the_next_page(
    loaded: str,
) -> None:
    plan, _, live = busiest_plan_with_a_deletion()
    first = ok("timeline", "--database-url", loaded, plan, "--limit", "3")
    assert f"plan {plan}: newest first" in first.output
    match = re.search(r"more: --before '([^']+)'", first.output)
    assert match is not None
    newest = _timeline_json(loaded, plan, "--limit", "1000")["events"]
    assert newest[0]["event_type"] in first.output
    second = _timeline_json(loaded, plan, "--limit", "3", "--before", match.group(1))
    assert [e["id"] for e in second["events"]] == [e["id"] for e in newest[3:6]]
    last = ok("timeline", "--database-url", loaded, plan, "--limit", str(live))
    assert "more: --before" not in last.output


def test_timeline_jsonl_prints_one_event_a_line(loaded: str) -> None:
    plan, _, _ = busiest_plan_with_a_deletion()
    result = ok("timeline", "--database-url", loaded, plan, "--format", "jsonl", "--limit", "4")
    lines = result.output.splitlines()
    assert len(lines) == 4
    assert all(json.loads(line)["course_designer_plan_id"] == plan for line in lines)


# -- audit ---------------------------------------------------------------------


def test_audit_lists_every_row_with_actor_and_all_three_timestamps(loaded: str) -> None:
    plan, total, live = busiest_plan_with_a_deletion()
    rows = json.loads(ok("audit", "--database-url", loaded, plan, "--format", "json").output)
    assert len(rows) == total > live
    assert sum(1 for r in rows if r["deleted_at"] is not None) == total - live
    expected = {
        json.dumps(r, sort_keys=True)
        for r in fixture_rows()
        if r["course_designer_plan_id"] == plan
    }
    assert {json.dumps(r, sort_keys=True) for r in rows} == expected
    recorded = [r["created_at"] for r in rows]
    assert recorded == sorted(recorded)
    jsonl = ok("audit", "--database-url", loaded, plan, "--format", "jsonl").output.splitlines()
    assert [json.loads(line) for line in jsonl] == rows
    table = ok("audit", "--database-url", loaded, plan).output
    for column in ("occurred_at", "created_at", "deleted_at", "actor"):
        assert column in table
    deleted = next(r for r in rows if r["deleted_at"] is not None)
    assert deleted["deleted_at"] in table


# -- append, delete, restore ---------------------------------------------------


def test_append_checks_the_expected_version_and_a_conflict_is_one_line(
    loaded: str,
) -> None:
    plan, total, _ = busiest_plan_with_a_deletion()
    appended = ok(
        "append",
        "--database-url",
        loaded,
        plan,
        "--type",
        "note_added",
        "--payload",
        '{"text": "hello"}',
        "--stage",
        "design",
        "--expected-version",
        str(total),
        "--format",
        "json",
    )
    document = json.loads(appended.output)
    assert document["appended"] == 1
    assert document["version"] == total + 1
    assert UUID(document["event_ids"][0]).version == 7
    newest = _timeline_json(loaded, plan, "--limit", "1")["events"][0]
    assert newest["id"] == document["event_ids"][0]
    assert newest["payload"] == {"text": "hello"}
    assert newest["stage"] == "design"
    conflict = run(
        "append", "--database-url", loaded, plan, "--type", "x", "--expected-version", str(total)
    )
    line = one_line_error(conflict)
    assert f"expected version {total}" in line
    assert f"at version {total + 1}" in line
    assert plan in line
    audit = json.loads(ok("audit", "--database-url", loaded, plan, "--format", "json").output)
    assert len(audit) == total + 1


def test_append_with_no_stream_on_a_plan_with_events_is_a_conflict(loaded: str) -> None:
    plan, total, _ = busiest_plan_with_a_deletion()
    line = one_line_error(
        run(
            "append",
            "--database-url",
            loaded,
            plan,
            "--type",
            "x",
            "--expected-version",
            "no-stream",
        )
    )
    assert "expected version no_stream" in line
    assert f"at version {total}" in line


def test_appending_the_same_id_twice_is_an_idempotent_no_op(loaded: str) -> None:
    plan, total, _ = busiest_plan_with_a_deletion()
    event_id = str(uuid4())
    args = ["append", "--database-url", loaded, plan, "--type", "x", "--id", event_id]
    assert f"{event_id} appended" in ok(*args).output
    assert f"{event_id} already stored (idempotent re-send)" in ok(*args).output
    audit = json.loads(ok("audit", "--database-url", loaded, plan, "--format", "json").output)
    assert len(audit) == total + 1


def test_append_with_a_backfilled_occurred_at_and_an_actor(loaded: str) -> None:
    plan, _, _ = busiest_plan_with_a_deletion()
    rows = [json.loads(line) for line in sample_lines()]
    actor = next(r["actor_user_id"] for r in rows if r["actor_user_id"])
    result = ok(
        "append",
        "--database-url",
        loaded,
        plan,
        "--type",
        "backfilled",
        "--actor",
        actor,
        "--occurred-at",
        "2020-02-03T04:05:06.123456+02:00",
        "--format",
        "json",
    )
    event_id = json.loads(result.output)["event_ids"][0]
    rows = json.loads(ok("audit", "--database-url", loaded, plan, "--format", "json").output)
    stored = next(r for r in rows if r["id"] == event_id)
    assert stored["occurred_at"] == "2020-02-03T02:05:06.123456Z"
    assert stored["actor_user_id"] == actor


def test_delete_and_restore_toggle_deleted_at(loaded: str) -> None:
    plan, _, live = busiest_plan_with_a_deletion()
    newest = _timeline_json(loaded, plan, "--limit", "1")["events"][0]
    assert ok("delete", "--database-url", loaded, newest["id"]).output.strip() == "deleted"
    again = ok("delete", "--database-url", loaded, newest["id"]).output.strip()
    assert again == "already deleted; nothing changed"
    assert len(_timeline_json(loaded, plan, "--limit", "1000")["events"]) == live - 1
    assert ok("restore", "--database-url", loaded, newest["id"]).output.strip() == "restored"
    assert len(_timeline_json(loaded, plan, "--limit", "1000")["events"]) == live
    line = one_line_error(run("delete", "--database-url", loaded, str(uuid4())))
    assert "no event with id" in line


BAD_APPENDS: list[tuple[list[str], list[str]]] = [
    (["--payload", "[1]"], ["payload must be a JSON object"]),
    (["--payload", "{nope"], ["--payload is not valid JSON"]),
    (["--stage", "planning"], ["stage 'planning' is not one of"]),
    (["--type", "   "], ["event_type is blank"]),
    (["--occurred-at", "2020-01-01T00:00:00"], ["naive"]),
    (["--occurred-at", "last tuesday"], ["occurred-at", "RFC 3339"]),
    (["--actor", "bob"], ["actor 'bob' is not a UUID"]),
    (["--actor", str(UUID(int=5))], ["actor_user_id", "does not exist"]),
    (["--id", "x1"], ["id 'x1' is not a UUID"]),
    (["--expected-version", "soon"], ["--expected-version 'soon'"]),
    (["--expected-version", "-1"], ["expected_version cannot be negative"]),
]


def test_a_bad_append_is_a_one_line_error_and_writes_nothing(loaded: str) -> None:
    plan, total, _ = busiest_plan_with_a_deletion()
    for args, words in BAD_APPENDS:
        base = ["append", "--database-url", loaded, plan]
        if "--type" not in args:
            base += ["--type", "x"]
        line = one_line_error(run(*base, *args))
        for word in words:
            assert word in line, (args, line)
    audit = json.loads(ok("audit", "--database-url", loaded, plan, "--format", "json").output)
    assert len(audit) == total


# -- export and generate -------------------------------------------------------


def test_export_to_a_file_writes_every_row(loaded: str, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    result = ok("export", "--database-url", loaded, "-o", str(out))
    assert f"wrote {len(sample_lines())} events of 3 plans to {out}" in result.stderr
    assert not list(tmp_path.glob("*.partial"))  # no partial file left
    exported = out.read_text(encoding="utf-8").splitlines()
    assert sorted(exported) == sorted(sample_lines())
    stdout = ok("export", "--database-url", loaded).stdout
    assert stdout == out.read_text(encoding="utf-8")


def test_export_of_one_plan(loaded: str) -> None:
    plan, total, _ = busiest_plan_with_a_deletion()
    lines = ok("export", "--database-url", loaded, "--plan", plan).stdout.splitlines()
    assert len(lines) == total
    assert {json.loads(line)["course_designer_plan_id"] for line in lines} == {plan}


def test_generate_is_deterministic_and_imports(backend_url: str, tmp_path: Path) -> None:
    first = ok("generate", "--plans", "5", "--seed", "1").stdout
    assert ok("generate", "--plans", "5", "--seed", "1").stdout == first
    assert ok("generate", "--plans", "5", "--seed", "2").stdout != first
    rows = [json.loads(line) for line in first.splitlines()]
    assert len({r["course_designer_plan_id"] for r in rows}) == 5
    out = tmp_path / "gen.jsonl"
    ok("generate", "--plans", "5", "--seed", "1", "-o", str(out))
    assert out.read_text(encoding="utf-8") == first
    ok("migrate", "--database-url", backend_url)
    imported = ok("import", "--database-url", backend_url, "--create-parents", str(out))
    assert f"read {len(rows)} events: {len(rows)} inserted" in imported.output


# -- command discovery ---------------------------------------------------------

STORE_COMMANDS = ("migrate", "import", "export", "append", "timeline", "audit", "delete", "restore")
PROJECTION_COMMANDS = (
    "generate",
    "quarantine",
    "state",
    "replay",
    "verify",
    "reconcile",
    "worker",
    "status",
    "schema",
    "demo",
    "report",
    "host-drift",
)


def test_python_dash_m_eventsource_help_lists_every_command() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "eventsource", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "Usage:" in completed.stdout
    listed = completed.stdout.split("Commands:", 1)[1].split()
    for command in (*STORE_COMMANDS, *PROJECTION_COMMANDS):
        assert command in listed


def test_importing_the_cli_loads_no_command_entry_point() -> None:
    code = (
        "import sys, eventsource.cli; "
        "assert not [m for m in sys.modules if m.split('.')[0] == 'projections'], sys.modules"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert completed.returncode == 0, completed.stderr


def test_the_group_lists_the_commands_its_entry_points_register() -> None:
    assert set(main.list_commands(click.Context(main))) == {
        *STORE_COMMANDS,
        *PROJECTION_COMMANDS,
    }
    assert "--changes" in ok("timeline", "--help").output


def register_hello(group: click.Group) -> None:
    group.add_command(click.Command("hello", callback=lambda: click.echo("hello")))


hello_command = click.Command("hello")


def entry_point(value: str, name: str = "plugin") -> EntryPoint:
    return EntryPoint(name=name, value=value, group="test.commands")


def plugin_group(monkeypatch: pytest.MonkeyPatch, *found: EntryPoint) -> CommandGroup:
    monkeypatch.setattr(cli, "entry_points", lambda group: found)
    group = CommandGroup(name="eventsource", entry_point_group="test.commands")
    group.add_command(click.Command("builtin", callback=lambda: click.echo("builtin")))
    return group


def test_an_entry_point_function_adds_its_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    group = plugin_group(monkeypatch, entry_point("tests.test_cli_store:register_hello"))
    result = CliRunner().invoke(group, ["hello"])
    assert result.exit_code == 0, result.output
    assert result.output == "hello\n"
    assert group.list_commands(click.Context(group)) == ["builtin", "hello"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("no_such_package.cli:register", "ModuleNotFoundError: No module named 'no_such_package'"),
        ("tests.test_cli_store:no_such_function", "AttributeError"),
        ("tests.test_cli_store:hello_command", "TypeError"),
        ("tests.test_cli_store:register_hello.__name__", "TypeError"),
    ],
)
def test_a_broken_command_entry_point_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, value: str, reason: str
) -> None:
    group = plugin_group(
        monkeypatch,
        entry_point("tests.test_cli_store:register_hello", name="good"),
        entry_point(value, name="broken"),
    )
    for args in (["--help"], ["builtin"], ["hello"]):
        result = CliRunner().invoke(group, args)
        line = one_line_error(result)
        assert f"the test.commands entry point 'broken' ({value}) is broken: {reason}" in line
        assert line.endswith("reinstall or remove the package that provides it")
    # Nothing of a failed discovery is kept: the group still has only its own commands.
    assert list(group.commands) == ["builtin"]


# -- errors --------------------------------------------------------------------


def test_a_plan_that_is_not_a_uuid_is_a_one_line_error(loaded: str) -> None:
    for command in ("timeline", "audit"):
        line = one_line_error(run(command, "--database-url", loaded, "not-a-uuid"))
        assert "plan 'not-a-uuid' is not a UUID" in line
    line = one_line_error(run("append", "--database-url", loaded, "nope", "--type", "x"))
    assert "plan 'nope' is not a UUID" in line


def test_an_unknown_plan_is_a_one_line_error(loaded: str) -> None:
    missing = str(uuid4())
    for command in ("timeline", "audit"):
        line = one_line_error(run(command, "--database-url", loaded, missing))
        assert f"plan {missing} has no events" in line
    line = one_line_error(run("append", "--database-url", loaded, missing, "--type", "x"))
    assert "course_designer_plan_id" in line
    assert "does not exist" in line


def test_a_malformed_cursor_is_a_one_line_error(loaded: str) -> None:
    plan, _, _ = busiest_plan_with_a_deletion()
    line = one_line_error(run("timeline", "--database-url", loaded, plan, "--before", "xyz"))
    assert "cursor 'xyz' is not one this tool printed" in line


@pytest.mark.parametrize(
    "args",
    [
        ["migrate"],
        ["timeline", str(UUID(int=1))],
        ["audit", str(UUID(int=1))],
        ["export"],
        ["append", str(UUID(int=1)), "--type", "x"],
        ["import", str(FIXTURE)],
    ],
    ids=["migrate", "timeline", "audit", "export", "append", "import"],
)
def test_an_unsupported_database_url_is_a_one_line_error(args: list[str]) -> None:
    line = one_line_error(run(args[0], "--database-url", "mysql://x", *args[1:]))
    assert "'mysql'" in line
    assert "PostgreSQL" in line


def test_an_unparseable_database_url_is_a_one_line_error() -> None:
    line = one_line_error(run("migrate", "--database-url", "::not a url::"))
    assert "cannot be parsed" in line


def test_the_database_url_can_come_from_the_environment(
    loaded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan, _, live = busiest_plan_with_a_deletion()
    monkeypatch.setenv("EVENTSOURCE_DATABASE_URL", loaded)
    document = json.loads(ok("timeline", plan, "--format", "json", "--limit", "1000").output)
    assert len(document["events"]) == live
    monkeypatch.setenv("EVENTSOURCE_DATABASE_URL", "mysql://x")
    line = one_line_error(run("timeline", plan))
    assert "EVENTSOURCE_DATABASE_URL" in line


def test_a_database_never_migrated_is_a_one_line_error_saying_to_migrate(
    backend_url: str,
) -> None:
    line = one_line_error(run("timeline", "--database-url", backend_url, str(uuid4())))
    assert "run `eventsource migrate`" in line
