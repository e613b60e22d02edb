"""Every failure a user can cause or meet, through the real CLI in a subprocess: one
line on stderr naming the cause as the driver or the OS gave it and what to do, the
documented exit code, never a traceback, and nothing written."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy import Table, func, select
from sqlalchemy.engine import make_url

from eventsource import EventStore, migrate
from eventsource.tables import replay_progress, snapshots
from eventsource.transfer import import_events
from tests.clirun import (
    ROOT,
    cli_env,
    one_error_line,
    read_only_directory,
    run_cli,
    run_cli_unprivileged,
)
from tests.conftest import DATA, require_postgres

FIXTURE = DATA / "course_designer_events.jsonl"
REFUSED = "postgresql://postgres@127.0.0.1:1/nothing_listens_here"


def sample(plans: int = 3) -> list[str]:
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()
    chosen = sorted({json.loads(line)["course_designer_plan_id"] for line in lines})[:plans]
    return [line for line in lines if json.loads(line)["course_designer_plan_id"] in chosen]


@pytest.fixture
def loaded(tmp_path: Path) -> Iterator[tuple[str, EventStore]]:
    """A migrated SQLite file holding three plans: (url, store)."""
    url = f"sqlite:///{tmp_path / 'loaded.sqlite3'}"
    store = EventStore.from_url(url)
    migrate.upgrade(store.engine)
    import_events(store, sample(), create_parents=True)
    yield url, store
    store.close()


def count(store: EventStore, table: Table) -> int:
    with store.read_transaction() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


# -- databases that cannot be reached --------------------------------------------------


@pytest.mark.parametrize("command", ["migrate", "demo", "status"])
def test_a_refused_port_is_one_line_with_the_drivers_reason(command: str) -> None:
    line = one_error_line(run_cli(command, "--database-url", REFUSED))
    assert "cannot connect to postgresql://postgres@127.0.0.1:1/nothing_listens_here" in line
    assert "Connection refused" in line
    assert "check that the server is running" in line


@pytest.mark.postgres
@pytest.mark.parametrize("command", ["migrate", "demo"])
def test_a_missing_postgres_database_is_one_line_naming_it(command: str) -> None:
    server = make_url(require_postgres())
    missing = f"eventsource_missing_{uuid4().hex[:8]}"
    url = server.set(database=missing).render_as_string(hide_password=False)
    line = one_error_line(run_cli(command, "--database-url", url))
    assert f'database "{missing}" does not exist' in line
    assert "createdb" in line


@pytest.mark.postgres
def test_an_unknown_postgres_role_is_one_line_naming_it() -> None:
    server = make_url(require_postgres())
    url = server.set(username="no_such_role_here").render_as_string(hide_password=False)
    line = one_error_line(run_cli("migrate", "--database-url", url))
    assert 'role "no_such_role_here" does not exist' in line


@pytest.mark.parametrize("command", ["migrate", "demo"])
def test_a_sqlite_path_in_a_missing_directory_is_one_line(command: str) -> None:
    line = one_error_line(run_cli(command, "--database-url", "sqlite:////nonexistent/x.db"))
    assert "cannot create the SQLite database /nonexistent/x.db" in line
    assert "the directory /nonexistent does not exist" in line
    assert "mkdir -p /nonexistent" in line


def test_migrate_into_a_read_only_directory_is_one_line() -> None:
    with read_only_directory() as locked:
        result = run_cli_unprivileged("migrate", "--database-url", f"sqlite:///{locked}/x.db")
        if result is None:
            pytest.skip("running as root and no Python usable by an unprivileged user")
        line = one_error_line(result)
        assert f"the directory {locked} is not writable (Permission denied)" in line
        assert not (locked / "x.db").exists()


# -- read-only commands never create a database ----------------------------------------

READ_ONLY = [
    ["state", "--all"],
    ["timeline", str(uuid4())],
    ["timeline", str(uuid4()), "--changes"],
    ["audit", str(uuid4())],
    ["export"],
    ["verify"],
    ["status"],
]


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: " ".join(a[:1] + a[2:]))
def test_a_read_only_command_on_a_missing_sqlite_file_creates_nothing(
    tmp_path: Path, args: list[str]
) -> None:
    path = tmp_path / "never.sqlite3"
    line = one_error_line(run_cli(*args, "--database-url", f"sqlite:///{path}"))
    assert f"there is no SQLite database at {path}" in line
    assert "run `eventsource migrate`" in line
    assert list(tmp_path.iterdir()) == []


def test_every_command_but_migrate_refuses_a_sqlite_path_with_no_file(tmp_path: Path) -> None:
    path = tmp_path / "never.sqlite3"
    for args in (["append", str(uuid4()), "--type", "x"], ["replay"], ["worker", "--once"]):
        line = one_error_line(run_cli(*args, "--database-url", f"sqlite:///{path}"))
        assert "run `eventsource migrate`" in line
    assert not path.exists()


@pytest.mark.postgres
def test_a_never_migrated_postgres_schema_says_to_migrate() -> None:
    from tests.conftest import create_pg_schema, drop_pg_schema, pg_schema_url

    schema = create_pg_schema()
    try:
        line = one_error_line(run_cli("state", "--all", "--database-url", pg_schema_url(schema)))
        assert "run `eventsource migrate`" in line
    finally:
        drop_pg_schema(schema)


# -- files: missing and read-only directories, links, devices, full disks -------------


def test_export_and_generate_into_a_missing_directory_are_one_line(
    loaded: tuple[str, EventStore],
) -> None:
    url, _ = loaded
    for args in (["export", "--database-url", url], ["generate", "--plans", "2"]):
        line = one_error_line(run_cli(*args, "-o", "/nonexistent/x.jsonl"))
        assert "cannot write /nonexistent/x.jsonl: the directory /nonexistent" in line
        assert "does not exist" in line


def test_export_into_a_read_only_directory_is_one_line(loaded: tuple[str, EventStore]) -> None:
    with read_only_directory() as locked:
        result = run_cli_unprivileged("generate", "--plans", "2", "-o", str(locked / "x.jsonl"))
        if result is None:
            pytest.skip("running as root and no Python usable by an unprivileged user")
        line = one_error_line(result)
        assert f"cannot write {locked / 'x.jsonl'}: Permission denied" in line
        assert list(locked.iterdir()) == []


def test_export_refuses_to_replace_a_symlink_and_leaves_it(
    loaded: tuple[str, EventStore], tmp_path: Path
) -> None:
    url, _ = loaded
    target = tmp_path / "target.jsonl"
    target.write_text("keep me\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    line = one_error_line(run_cli("export", "--database-url", url, "-o", str(link)))
    assert f"refusing to replace {link}: it is a symbolic link to {target}" in line
    assert f"> {link}" in line
    assert link.is_symlink()
    assert target.read_text() == "keep me\n"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_export_refuses_to_replace_a_device_or_a_directory(
    loaded: tuple[str, EventStore], tmp_path: Path
) -> None:
    url, _ = loaded
    line = one_error_line(run_cli("export", "--database-url", url, "-o", "/dev/full"))
    assert "refusing to replace /dev/full: it is a character device" in line
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    line = one_error_line(run_cli("export", "--database-url", url, "-o", str(tmp_path)))
    assert "it is a directory" in line


def run_into_full_disk(*args: str) -> subprocess.CompletedProcess[str]:
    with open("/dev/full", "w") as full:
        return subprocess.run(
            [sys.executable, "-m", "eventsource", *args],
            cwd=ROOT,
            env=cli_env(),
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_output_to_a_full_disk_is_one_line(loaded: tuple[str, EventStore]) -> None:
    url, store = loaded
    plan = str(next(iter(store.plan_ids())))
    for args in (
        ["export", "--database-url", url],
        ["generate", "--plans", "50"],
        ["timeline", plan, "--format", "jsonl", "--database-url", url],
        ["state", "--all", "--format", "jsonl", "--database-url", url],
    ):
        line = one_error_line(run_into_full_disk(*args))
        assert "cannot write to standard output: No space left on device" in line, args
        assert "free some space" in line


def test_import_of_a_missing_file_or_a_directory_is_one_line(
    loaded: tuple[str, EventStore], tmp_path: Path
) -> None:
    url, _ = loaded
    line = one_error_line(run_cli("import", str(tmp_path / "nope.jsonl"), "--database-url", url))
    assert f"cannot read {tmp_path / 'nope.jsonl'}: No such file or directory" in line


# -- plans and events that do not exist ------------------------------------------------


def test_commands_on_a_plan_that_does_not_exist_say_so_and_write_nothing(
    loaded: tuple[str, EventStore], tmp_path: Path
) -> None:
    url, store = loaded
    missing = str(uuid4())
    out = tmp_path / "out.jsonl"
    for args in (
        ["replay", "--plan", missing],
        ["verify", "--plan", missing],
        ["export", "--plan", missing],
        ["export", "--plan", missing, "-o", str(out)],
        ["reconcile", "--plan", missing],
        ["audit", missing],
        ["state", missing],
        ["timeline", missing],
        ["timeline", missing, "--changes"],
    ):
        result = run_cli(*args, "--database-url", url)
        line = one_error_line(result)
        assert f"plan {missing} has no events; check the plan id" in line, args
        assert result.stdout == "", args
    assert count(store, snapshots) == 0
    assert count(store, replay_progress) == 0
    assert not out.exists()


def test_one_unknown_plan_among_several_stops_replay_before_it_writes(
    loaded: tuple[str, EventStore],
) -> None:
    url, store = loaded
    known = str(next(iter(store.plan_ids())))
    missing = str(uuid4())
    result = run_cli("replay", "--plan", known, "--plan", missing, "--database-url", url)
    line = one_error_line(result)
    assert missing in line
    assert count(store, snapshots) == 0


def test_delete_or_restore_of_an_unknown_event_is_one_line(loaded: tuple[str, EventStore]) -> None:
    url, _ = loaded
    missing = str(uuid4())
    for command in ("delete", "restore"):
        line = one_error_line(run_cli(command, missing, "--database-url", url))
        assert f"no event with id {missing}" in line


# -- bad arguments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["timeline", "--limit", "x", "P"], ["'--limit'", "'x'", "eventsource timeline --help"]),
        (["nosuch"], ["No such command 'nosuch'", "eventsource --help"]),
        (["export", "--bogus"], ["No such option", "--bogus", "eventsource export --help"]),
        (["timeline"], ["Missing argument 'PLAN'", "eventsource timeline --help"]),
        (["state", "--format", "xml", "--all"], ["'xml' is not one of"]),
    ],
)
def test_a_usage_error_is_one_line_and_exits_2(args: list[str], words: list[str]) -> None:
    line = one_error_line(run_cli(*args), code=2)
    for word in words:
        assert word in line


def test_bad_values_are_one_line_and_exit_1(loaded: tuple[str, EventStore]) -> None:
    url, store = loaded
    plan = str(next(iter(store.plan_ids())))
    cases = [
        (["timeline", "not-a-plan"], "plan 'not-a-plan' is not a UUID"),
        (["state", plan, "--as-of", "yesterday"], "is not an RFC 3339 timestamp"),
        (["append", plan, "--type", "x", "--payload", "[1]"], "payload must be a JSON object"),
        (["append", plan, "--type", "x", "--expected-version", "soon"], "--expected-version"),
        (["append", plan, "--type", "stage_completed", "--stage", "Design"], "use 'design'"),
    ]
    for args, words in cases:
        line = one_error_line(run_cli(*args, "--database-url", url))
        assert words in line, (args, line)


# -- what nobody planned for -----------------------------------------------------------------

BOOM = """
import click, sys
from eventsource.cli import main

@main.command()
def boom() -> None:
    raise ZeroDivisionError("division by zero")

main()
"""


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", BOOM, *args],
            cwd=ROOT,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    line = one_error_line(run("boom"))
    assert "unexpected ZeroDivisionError: division by zero" in line
    assert "--debug" in line
    debug = run("--debug", "boom")
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == line
