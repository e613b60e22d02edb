"""Input, output and interruption, as a shell user meets them: import from stdin, pipes
and process substitutions (read once), atomic -o files, broken pipes under pipefail,
and Ctrl-C telling the truth per command."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from eventsource import EventStore, migrate
from eventsource.cli import main
from eventsource.errors import UnusableFile
from eventsource.outputs import atomic_text_file
from eventsource.transfer import import_events
from projections.engine import ProjectionEngine
from tests.clirun import ROOT, cli_env, run_cli, run_shell
from tests.conftest import DATA

FIXTURE = DATA / "course_designer_events.jsonl"


def sample_lines(plans: int = 5) -> list[str]:
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()
    chosen = sorted({json.loads(line)["course_designer_plan_id"] for line in lines})[:plans]
    return [line for line in lines if json.loads(line)["course_designer_plan_id"] in chosen]


@pytest.fixture
def sample_file(tmp_path: Path) -> Path:
    path = tmp_path / "sample.jsonl"
    path.write_text("\n".join(sample_lines()) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def empty_db(tmp_path: Path) -> Iterator[tuple[str, EventStore]]:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    store = EventStore.from_url(url)
    migrate.upgrade(store.engine)
    yield url, store
    store.close()


@pytest.fixture
def loaded(empty_db: tuple[str, EventStore]) -> tuple[str, EventStore]:
    import_events(empty_db[1], sample_lines(), create_parents=True)
    return empty_db


def stored(store: EventStore) -> int:
    return sum(store.version(plan) for plan in store.plan_ids())


# -- import reads its input once, as it streams --------------------------------------


@pytest.mark.parametrize(
    "script",
    [
        'cat "$FILE" | eventsource import - --create-parents --database-url "$URL"',
        'eventsource import - --create-parents --database-url "$URL" < "$FILE"',
        'cat "$FILE" | eventsource import /dev/stdin --create-parents --database-url "$URL"',
        'eventsource import <(cat "$FILE") --create-parents --database-url "$URL"',
    ],
    ids=["dash-pipe", "dash-redirect", "dev-stdin-pipe", "process-substitution"],
)
def test_import_reads_stdin_pipes_and_process_substitutions_whole(
    script: str, sample_file: Path, empty_db: tuple[str, EventStore], tmp_path: Path
) -> None:
    url, store = empty_db
    n = len(sample_lines())
    result = run_shell(f'FILE="{sample_file}" URL="{url}"\n{script}', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"read {n} events: {n} inserted, 0 already stored, 5 plans changed" in result.stdout
    assert stored(store) == n


def test_a_bad_line_arriving_through_a_pipe_keeps_nothing(
    sample_file: Path, empty_db: tuple[str, EventStore], tmp_path: Path
) -> None:
    url, store = empty_db
    result = run_shell(
        f'(cat "{sample_file}"; echo "{{oops") | eventsource import - --create-parents '
        f'--database-url "{url}"',
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: line {len(sample_lines()) + 1}: not valid JSON")
    assert stored(store) == 0


# -- broken pipes end quietly ----------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "reader"),
    [
        ('eventsource state --all --format jsonl --database-url "$URL"', "head -n 2"),
        ('eventsource export --database-url "$URL"', "head -c 100"),
        ("eventsource generate --plans 2000", "head -n 1"),
        ('eventsource timeline "$PLAN" --format jsonl --database-url "$URL"', "head -n 1"),
    ],
    ids=["state-all", "export", "generate", "timeline"],
)
def test_a_reader_that_stops_early_ends_the_command_quietly_with_0(
    command: str, reader: str, loaded: tuple[str, EventStore], tmp_path: Path
) -> None:
    url, store = loaded
    plan = max(store.plan_ids(), key=store.version)
    # Under pipefail (set by run_shell), as the README's own line runs.
    result = run_shell(f'URL="{url}" PLAN="{plan}"\n{command} | {reader} > /dev/null', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


# -- -o replaces a regular file atomically -----------------------------------------------


def test_export_replaces_a_regular_file_keeping_its_mode(
    loaded: tuple[str, EventStore], tmp_path: Path
) -> None:
    url, _ = loaded
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")
    out.chmod(0o640)
    result = run_cli("export", "--database-url", url, "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(out.read_text().splitlines()) == sorted(sample_lines())
    assert out.stat().st_mode & 0o777 == 0o640
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_a_failed_atomic_write_leaves_the_old_file_and_no_partial(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")

    def half_written() -> None:
        with atomic_text_file(out) as handle:
            handle.write("new, half written\n")
            raise RuntimeError("the export failed half way")

    with pytest.raises(RuntimeError):
        half_written()
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]

    def into_a_missing_directory() -> None:
        with atomic_text_file(tmp_path / "missing" / "x.jsonl"):
            pass

    with pytest.raises(UnusableFile, match=r"the directory .* does not exist"):
        into_a_missing_directory()


# -- Ctrl-C ------------------------------------------------------------------------------


def test_ctrl_c_during_an_import_keeps_nothing_and_says_so(
    empty_db: tuple[str, EventStore], tmp_path: Path
) -> None:
    url, store = empty_db
    wal = Path(str(make_path(url)) + "-wal")
    store.close()  # the last connection closing checkpoints and removes the -wal file
    assert not wal.exists()
    proc = subprocess.Popen(
        [sys.executable, "-m", "eventsource", "import", "-", "--create-parents",
         "--database-url", url],
        cwd=ROOT,
        env=cli_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdin is not None
    try:
        proc.stdin.write("\n".join(sample_lines()) + "\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        # The import holds its write transaction open while stdin stays open.
        # The store's first connection makes SQLite's -wal file: the command is running
        # (then it waits for the rest of stdin, which stays open).
        while not wal.exists():
            assert time.monotonic() < deadline, "the import never opened the database"
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == (
        "interrupted; nothing was imported (an import is all or nothing); rerun it"
    )
    assert "Traceback" not in err
    assert stored(store) == 0


def make_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def interrupt(*_args: Any, **_kwargs: Any) -> Any:
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("args", "target", "note"),
    [
        (["verify"], (ProjectionEngine, "verify"), "nothing was changed (this command only reads)"),
        (["state", "--all"], (ProjectionEngine, "load"), "nothing was changed"),
        (["replay"], (ProjectionEngine, "replay"), "rerun with the same --run"),
    ],
    ids=["verify", "state", "replay"],
)
def test_ctrl_c_says_what_the_command_leaves_behind(
    loaded: tuple[str, EventStore],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    target: tuple[type, str],
    note: str,
) -> None:
    url, _ = loaded
    monkeypatch.setattr(*target, interrupt)
    result = CliRunner().invoke(main, [*args, "--database-url", url])
    assert result.exit_code == 130
    assert result.stderr.strip().startswith("interrupted; ")
    assert note in result.stderr


def test_ctrl_c_during_export_to_a_file_leaves_the_file_as_it_was(
    loaded: tuple[str, EventStore], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventsource import transfer

    url, _ = loaded
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")

    def half(store: EventStore, handle: Any, plans: Any, **kwargs: Any) -> int:
        handle.write("half\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(transfer, "export_file", half)
    result = CliRunner().invoke(main, ["export", "--database-url", url, "-o", str(out)])
    assert result.exit_code == 130
    assert f"interrupted; {out} was left as it was" in result.stderr
    assert out.read_text() == "old\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_a_worker_stops_on_ctrl_c_after_the_plan_in_hand(
    loaded: tuple[str, EventStore],
) -> None:
    url, _ = loaded
    proc = subprocess.Popen(
        [sys.executable, "-m", "eventsource", "worker", "--database-url", url],
        cwd=ROOT,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while not any("waiting for changes" in line for line in lines):
            assert time.monotonic() < deadline
            lines.append(proc.stderr.readline())
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "stopped after folding" in err
    assert "Traceback" not in err
