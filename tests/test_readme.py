"""The README, as a newcomer follows it: its Python blocks run as written on a fresh
standalone database, and its lists (commands, errors, exit codes) are complete.

A ``python`` block runs on SQLite unless the comment line before it says otherwise:
``<!-- readme-test: sqlite postgresql -->`` runs it on both, ``<!-- readme-test: skip
(why) -->`` not at all. Each block runs in a fresh interpreter, in a fresh directory,
with ``EVENTSOURCE_DATABASE_URL`` naming a fresh, never-migrated database.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest

from eventsource import errors
from eventsource.cli import main
from eventsource.failures import (
    EXIT_DIFFERENCES,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
)
from tests.clirun import ROOT, cli_env
from tests.conftest import create_pg_schema, drop_pg_schema, pg_schema_url

README = ROOT / "README.md"
MARKER = re.compile(r"<!--\s*readme-test:\s*(.*?)\s*-->")


@dataclass(frozen=True)
class Block:
    line: int
    code: str
    backends: tuple[str, ...]
    skip: str | None


def python_blocks() -> list[Block]:
    lines = README.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        if lines[index].strip() != "```python":
            index += 1
            continue
        start = index
        marker = MARKER.fullmatch(lines[start - 1].strip()) if start else None
        end = lines.index("```", start + 1)
        code = "\n".join(lines[start + 1 : end]) + "\n"
        spec = marker.group(1) if marker else "sqlite"
        if spec.startswith("skip"):
            reason = spec.removeprefix("skip").strip(" ()") or "marked skip"
            blocks.append(Block(start + 1, code, (), reason))
        else:
            blocks.append(Block(start + 1, code, tuple(spec.split()), None))
        index = end + 1
    return blocks


def cases() -> list[Any]:
    found: list[Any] = []
    for block in python_blocks():
        if not block.backends:
            found.append(
                pytest.param(
                    block,
                    "none",
                    id=f"line{block.line}-skipped",
                    marks=pytest.mark.skip(reason=block.skip or "marked skip"),
                )
            )
        for backend in block.backends:
            marks = [pytest.mark.postgres] if backend == "postgresql" else []
            found.append(
                pytest.param(block, backend, id=f"line{block.line}-{backend}", marks=marks)
            )
    return found


@pytest.mark.parametrize(("block", "backend"), cases())
def test_a_readme_python_block_runs_as_written(block: Block, backend: str, tmp_path: Path) -> None:
    schema = None
    if backend == "postgresql":
        schema = create_pg_schema()
        url = pg_schema_url(schema)
    else:
        url = f"sqlite:///{tmp_path / 'readme.sqlite3'}"
    try:
        result = subprocess.run(
            [sys.executable, "-c", block.code],
            cwd=tmp_path,
            env=cli_env(EVENTSOURCE_DATABASE_URL=url, PYTHONPATH=str(ROOT)),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        if schema is not None:
            drop_pg_schema(schema)
    assert result.returncode == 0, (
        f"README.md's python block at line {block.line} failed on {backend}; make it run "
        f"as written, or mark it <!-- readme-test: skip (why) -->\n{result.stderr}"
    )


def test_the_api_example_and_the_payload_walkthrough_run_on_both_backends() -> None:
    both = [b for b in python_blocks() if b.backends == ("sqlite", "postgresql")]
    assert any("create_plan(store, created_by_user_id=" in b.code for b in both)
    assert any("schedule_finalized" in b.code for b in both)


def readme() -> str:
    return README.read_text(encoding="utf-8")


def test_every_command_is_in_the_command_table() -> None:
    table = readme().split("## The command line", 1)[1].split("### ", 1)[0]
    listed = set(re.findall(r"^\| `([a-z-]+)", table, re.M))
    commands = set(main.list_commands(click.Context(main)))
    assert commands <= listed | {"delete", "restore"}
    assert "`delete EVENT` / `restore EVENT`" in table


def test_every_public_error_is_in_the_error_table() -> None:
    table = readme().split("| error | raised when |", 1)[1].split("\n\n", 1)[0]
    internal = {errors.EventSourceError}
    for name, value in vars(errors).items():
        public = isinstance(value, type) and issubclass(value, errors.EventSourceError)
        if public and value not in internal:
            assert f"`{name}" in table, f"{name} is missing from the README's error table"


def test_every_exit_code_is_in_the_exit_code_table() -> None:
    table = readme().split("| exit code | meaning |", 1)[1].split("\n\n", 1)[0]
    codes = {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.M)}
    assert codes == {EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_DIFFERENCES, EXIT_INTERRUPTED}


def test_the_readme_test_command_never_allows_a_server_restart() -> None:
    text = readme()
    setup = text.split("## Configuration", 1)[0]
    command = re.findall(r"```sh\n(.*?)```", setup, re.S)
    assert any("pytest" in c for c in command)
    assert not any("EVENTSOURCE_ALLOW_SERVER_RESTART" in c for c in command)
    assert "EVENTSOURCE_ALLOW_SERVER_RESTART=1" in setup  # documented, with its warning
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "EVENTSOURCE_ALLOW_SERVER_RESTART=1 .venv/bin/python -m pytest" in ci  # CI allows it


def test_every_file_the_readme_cites_is_in_the_repository() -> None:
    cited = set(re.findall(r"`((?:[\w.-]+/)+[\w.-]+\.(?:py|md|txt|json|jsonl|toml))`", readme()))
    missing = sorted(path for path in cited if not (ROOT / path).exists())
    assert missing == []
