"""Progress for long commands: a bar with a count, a total and an ETA on stderr.

Shown only when stderr is a terminal (never in pipes, logs or tests); the final
summary line each command prints is what stays. One display can hold several
tasks, one per phase (``import``: reading, then recording changes, then
committing), each with its own unit: plans, events, or bytes read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

DESCRIPTION_ROOM = 52
"""Columns the bar, counts and times take; the description gets the rest."""

Advance = Callable[[int], None]
"""Called with how many units (plans, events, bytes) were just done."""

stderr = Console(stderr=True)


class _CountColumn(ProgressColumn):
    """``120/300 plans``, ``4.2/10.0 MB``, or ``4,874 events`` without a total
    (nothing for a task without a unit: a phase shown by its spinner)."""

    def render(self, task: Task) -> Text:
        unit = str(task.fields.get("unit", ""))
        if not unit:
            return Text("")
        if unit == "bytes":
            text = _bytes(task.completed, task.total)
        elif task.total is None:
            text = f"{int(task.completed):,} {unit}".rstrip()
        else:
            text = f"{int(task.completed):,}/{int(task.total):,} {unit}".rstrip()
        return Text(text, style="progress.download")


def _bytes(completed: float, total: float | None) -> str:
    """``4.2/21.1 MB``: both in the total's unit (``decimal`` would repeat it)."""
    if total is None:
        return decimal(int(completed))
    for size, suffix in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if total >= size:
            return f"{completed / size:.1f}/{total / size:.1f} {suffix}"
    return f"{int(completed)}/{int(total)} bytes"


class _EtaColumn(ProgressColumn):
    """``eta 0:00:12`` once a rate is known; nothing when there is no total."""

    max_refresh = 0.5

    def render(self, task: Task) -> Text:
        if task.finished:
            return Text("done", style="progress.elapsed")
        remaining = task.time_remaining
        if task.total is None or remaining is None:
            return Text("")
        return Text(f"eta {timedelta(seconds=int(remaining))}", style="progress.remaining")


class Display:
    """The tasks of one command's progress display."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._current: TaskID | None = None

    @property
    def enabled(self) -> bool:
        return not self._progress.disable

    def task(
        self, description: str, total: int | None = None, *, unit: str = "", completed: int = 0
    ) -> Advance:
        """Start a task (finishing the previous one); return its advance function.

        ``completed`` counts work done before this run (a resumed replay): it shows
        in the bar but not in the rate, so the ETA stays right.
        """
        self.finish()
        room = max(12, self._progress.console.width - DESCRIPTION_ROOM)
        if len(description) > room:
            description = description[: room - 1] + "…"
        task = self._progress.add_task(description, total=total, unit=unit, completed=completed)
        self._current = task
        progress = self._progress

        def advance(count: int) -> None:
            progress.advance(task, count)

        return advance

    def finish(self) -> None:
        """Mark the current task done (a bar without a total gets one)."""
        if self._current is None:
            return
        task = next(t for t in self._progress.tasks if t.id == self._current)
        if task.total is None:
            done = max(task.completed, 1)
            self._progress.update(self._current, total=done, completed=done)
        else:
            self._progress.update(self._current, completed=task.total)
        self._current = None


@contextmanager
def progress_display(console: Console | None = None) -> Iterator[Display]:
    """A progress display on stderr (inert when stderr is not a terminal)."""
    target = console or stderr
    with Progress(
        SpinnerColumn(finished_text="✓"),
        TextColumn("{task.description}"),
        BarColumn(bar_width=16),
        _CountColumn(),
        TimeElapsedColumn(),
        _EtaColumn(),
        console=target,
        transient=False,
        disable=not target.is_terminal,
        expand=False,
    ) as progress:
        display = Display(progress)
        yield display
        display.finish()


@contextmanager
def progress_bar(
    description: str, total: int | None, *, unit: str = "", completed: int = 0
) -> Iterator[Advance]:
    """One task's bar on stderr (hidden when stderr is not a terminal)."""
    with progress_display() as display:
        yield display.task(description, total, unit=unit, completed=completed)


def counted(items: Any, advance: Advance) -> Iterator[Any]:
    """Yield ``items``, advancing by one after each."""
    for item in items:
        yield item
        advance(1)


__all__ = ["Advance", "Display", "counted", "progress_bar", "progress_display", "stderr"]
