"""Running the real ``eventsource`` command line in a subprocess, as a user would.

Shared by the ``tests/test_cli_*.py`` files that check what a person sees: the exit
code, stdout, and stderr (one line on failure, never a traceback).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTSOURCE_")}
    env.update(extra)
    env.setdefault("COLUMNS", "80")
    return env


def run_cli(
    *args: str,
    cwd: Path | None = None,
    stdin: str | bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``python -m eventsource ARGS`` with text output."""
    data = stdin.decode() if isinstance(stdin, bytes) else stdin
    return subprocess.run(
        [sys.executable, "-m", "eventsource", *args],
        cwd=cwd or ROOT,
        env=env or cli_env(),
        input=data,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_shell(script: str, *, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """A bash script where ``eventsource`` is this checkout's CLI (pipes, ``<(...)``)."""
    env = cli_env()
    prog = f"{sys.executable} -m eventsource"
    return subprocess.run(
        ["bash", "-c", f'set -o pipefail\neventsource() {{ {prog} "$@"; }}\n{script}'],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_error_line(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The single ``Error:`` line of a failed command; no traceback, the given exit code."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    return lines[0]


# -- permissions: as root nothing is read-only, so run the CLI as nobody ------------


@cache
def nobody_python() -> list[str] | None:
    """A Python the user ``nobody`` can run with this checkout importable, or None."""
    site = next((p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()), None)
    if site is None:
        return None
    candidates = [sys.executable, shutil.which("python3") or "", "/usr/bin/python3"]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in dict.fromkeys(c for c in candidates if c):
        command = [candidate]
        try:
            probe = subprocess.run(
                [
                    *command,
                    "-c",
                    f"import sys; assert sys.version.startswith('{version}'); "
                    "import eventsource.cli",
                ],
                env=_nobody_env(site),
                preexec_fn=_as_nobody,
                capture_output=True,
                cwd="/",
                check=False,
                timeout=60,
            )
        except OSError:  # nobody may not execute it (a Python under /root)
            continue
        if probe.returncode == 0:
            return command
    return None


def _nobody_env(site: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
        "COLUMNS": "80",
        "PYTHONPATH": os.pathsep.join([site, str(ROOT)]),
    }


def _as_nobody() -> None:
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def run_cli_unprivileged(*args: str) -> subprocess.CompletedProcess[str] | None:
    """The CLI as a user that permissions apply to (nobody when we are root).

    None when we are root and no Python is usable by nobody (the caller skips).
    """
    if os.geteuid() != 0:
        return run_cli(*args, cwd=Path("/"))
    python = nobody_python()
    if python is None:
        return None
    site = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    return subprocess.run(
        [*python, "-m", "eventsource", *args],
        env=_nobody_env(site),
        preexec_fn=_as_nobody,
        capture_output=True,
        text=True,
        cwd="/",
        check=False,
        timeout=120,
    )


@contextmanager
def read_only_directory() -> Iterator[Path]:
    """A directory nobody (and we, when not root) can enter but not write to."""
    base = Path(tempfile.mkdtemp(prefix="eventsource-ro-", dir="/tmp"))
    try:
        base.chmod(0o755)
        locked = base / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        yield locked
    finally:
        (base / "locked").chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)
