"""What a person at a terminal sees: progress bars with totals and ETAs, a summary line,
output that stays whole at 80 columns and in pipes, hints they can paste back."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections import Counter
from pathlib import Path

import pytest

from eventsource import EventStore, migrate
from eventsource.transfer import import_events
from tests.clirun import ROOT, cli_env, run_cli
from tests.conftest import DATA

FIXTURE = DATA / "course_designer_events.jsonl"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_terminal(*args: str, columns: int = 80, timeout: float = 120) -> tuple[int, str]:
    """The CLI with stdout and stderr on a pseudo-terminal of ``columns``; (code, text)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = cli_env(COLUMNS=str(columns), TERM="xterm")
    proc = subprocess.Popen(
        [sys.executable, "-m", "eventsource", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, "the command did not finish"
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal closed
                data = b""
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    proc.wait(timeout=30)
    text = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    return proc.returncode, text


def screen_lines(text: str) -> list[str]:
    """What stays on screen: carriage-return rewrites resolved, escapes removed."""
    plain = ANSI.sub("", text)
    return [line.rsplit("\r", 1)[-1] for line in plain.split("\n")]


@pytest.fixture
def loaded(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'shown.sqlite3'}"
    store = EventStore.from_url(url)
    migrate.upgrade(store.engine)
    import_events(store, FIXTURE.read_text(encoding="utf-8").splitlines(), create_parents=True)
    store.close()
    return url


PLANS = 3000


def test_generate_shows_each_phase_with_a_total_and_ends_with_a_summary(tmp_path: Path) -> None:
    # Enough plans that each phase outlasts a few refreshes: the ETA shows only
    # once a rate is known (on a fast machine 300 plans took 0.1 s, one frame).
    out = tmp_path / "gen.jsonl"
    code, text = run_in_terminal("generate", "--plans", str(PLANS), "-o", str(out))
    assert code == 0, text
    lines = screen_lines(text)
    assert any("simulating" in line and f"{PLANS:,}/{PLANS:,} plans" in line for line in lines), (
        lines
    )
    rows = len(out.read_text().splitlines())
    assert any("writing" in line and f"{rows:,}/{rows:,} events" in line for line in lines)
    assert any(re.search(r"\bdone\b", line) for line in lines)
    assert any(line.startswith(f"wrote {rows} events of {PLANS} plans to {out}") for line in lines)
    plain = ANSI.sub("", text)
    assert "eta " in plain, "a bar with a total shows its ETA while it runs"


def test_import_counts_bytes_then_shows_its_phases(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'imported.sqlite3'}"
    assert run_cli("migrate", "--database-url", url).returncode == 0
    code, text = run_in_terminal("import", str(FIXTURE), "--create-parents", "--database-url", url)
    assert code == 0, text
    lines = screen_lines(text)
    size = FIXTURE.stat().st_size / 1e6
    total = f"{size:.1f}/{size:.1f} MB"
    # The file's name, cut to leave the bar and the counts room at 80 columns.
    assert any("reading course_designer_" in line and total in line for line in lines), lines
    assert any("recording changes" in line and "300/300 plans" in line for line in lines)
    assert any("committing" in line for line in lines)
    assert lines[-2].startswith("read 2401 events: 2401 inserted") or any(
        line.startswith("read 2401 events: 2401 inserted") for line in lines
    )


@pytest.mark.parametrize("command", [["replay"], ["verify"], ["state", "--all"], ["reconcile"]])
def test_long_commands_show_a_bar_over_the_plans(loaded: str, command: list[str]) -> None:
    code, text = run_in_terminal(*command, "--database-url", loaded)
    assert code in (0, 3), text
    assert any("300/300 plans" in line for line in screen_lines(text)), text[-2000:]


def busiest_plan() -> str:
    rows = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]
    counts: Counter[str] = Counter(
        r["course_designer_plan_id"] for r in rows if r["deleted_at"] is None
    )
    return max(counts, key=lambda plan: (counts[plan], plan))


def plan_types(plan: str) -> set[str]:
    rows = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]
    return {
        r["event_type"]
        for r in rows
        if r["course_designer_plan_id"] == plan and r["deleted_at"] is None
    }


@pytest.mark.parametrize("extra", [[], ["--changes"]], ids=["plain", "changes"])
def test_the_timeline_fits_80_columns_without_cutting_event_types(
    loaded: str, extra: list[str]
) -> None:
    plan = busiest_plan()
    code, text = run_in_terminal("timeline", plan, *extra, "--database-url", loaded, columns=80)
    assert code == 0, text
    lines = [line for line in screen_lines(text) if line and not line.startswith("more:")]
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert "…" not in text
    headers = [line.split()[1] for line in lines if re.match(r"\d{4}-\d\d-\d\dT", line)]
    assert set(headers) == plan_types(plan)


def test_piped_the_timeline_keeps_every_payload_on_one_line(loaded: str) -> None:
    plan = busiest_plan()
    result = run_cli("timeline", plan, "--database-url", loaded)
    assert result.returncode == 0, result.stderr
    payloads = [line.strip() for line in result.stdout.splitlines() if line.startswith("    {")]
    assert payloads
    for payload in payloads:
        json.loads(payload)  # whole: not wrapped, not cut


def test_changes_print_a_schedule_as_one_line_a_stage(loaded: str) -> None:
    rows = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]
    plan = next(
        r["course_designer_plan_id"]
        for r in rows
        if r["event_type"] == "schedule_created" and r["deleted_at"] is None
    )
    result = run_cli("timeline", plan, "--changes", "--limit", "500", "--database-url", loaded)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    first = lines.index("    stages: none → 5 stages")
    stage_lines = lines[first + 1 : first + 6]
    assert [line.split()[0] for line in stage_lines] == [
        "analysis",
        "design",
        "development",
        "implementation",
        "evaluation",
    ]
    assert all("planned" in line and "→" in line for line in stage_lines)
    assert not any(line.strip() in ("{", "}", "[", "]") for line in lines), "no JSON blobs"


def test_the_demos_hints_use_the_command_as_it_was_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    result = run_cli("demo", "--plans", "4", "--database-url", url)
    assert result.returncode == 0, result.stderr
    program = f"{Path(sys.executable).name} -m eventsource"
    hints = result.stdout.split("next:", 1)[1].split()
    assert hints[:2] == [program.split()[0], "-m"]
    assert f"{program} verify" in result.stdout


def installed_script() -> Path:
    script = Path(sys.executable).parent / "eventsource"
    if not script.exists():
        pytest.skip("the eventsource script is not installed beside this Python")
    return script


def test_shell_completion_offers_commands_and_options() -> None:
    script = installed_script()

    def complete(words: str, cword: int) -> list[str]:
        env = cli_env(_EVENTSOURCE_COMPLETE="bash_complete", COMP_WORDS=words)
        env["COMP_CWORD"] = str(cword)
        result = subprocess.run(
            [str(script)], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        return [line.split(",", 1)[1] for line in result.stdout.splitlines()]

    assert {"state", "status"} <= set(complete("eventsource sta", 1))
    assert "--changes" in complete("eventsource timeline --ch", 2)
    source = subprocess.run(
        [str(script)],
        env=cli_env(_EVENTSOURCE_COMPLETE="bash_source"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "complete -o nosort -F _eventsource_completion eventsource" in source.stdout


def test_no_command_at_all_prints_the_help() -> None:
    result = run_cli()
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: ")
    assert "Exit codes: 0 done, 1 failed" in result.stdout
