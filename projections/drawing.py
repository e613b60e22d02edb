"""What the plan page and the portfolio page draw with: a time scale with sensible
ticks, plan-state dates as instants, and text made safe for HTML and SVG.

I/O-free: both pages compute everything they show before they write a byte.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from typing import Any, Final

_DAY: Final = timedelta(days=1)
_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)


def asset(name: str) -> str:
    """A stylesheet or script shipped in ``projections/assets`` (pages inline them)."""
    return resources.files("projections").joinpath("assets", name).read_text(encoding="utf-8")


def esc(value: Any) -> str:
    """Text for an HTML or SVG element or a quoted attribute."""
    return html.escape(str(value), quote=True)


def num(value: float) -> str:
    """A coordinate with one decimal at most (``12``, ``12.5``)."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of ``day``."""
    return datetime.combine(day, time(), UTC)


def day_end(day: date) -> datetime:
    """Midnight UTC after ``day``: a planned span's last day counts whole."""
    return day_start(day + _DAY)


def parse_day(text: str) -> date:
    return date.fromisoformat(text)


def parse_instant(text: str) -> datetime:
    """An RFC 3339 timestamp of the state JSON (``...Z``) as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def short_time(when: datetime) -> str:
    """``2025-10-29 06:50 UTC``: what a label has room for."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Tick:
    at: datetime
    label: str
    major: bool
    """The first tick of a year (drawn stronger)."""


@dataclass(frozen=True)
class TimeScale:
    """Instants from ``start`` to ``end`` mapped linearly onto ``left``..``right``."""

    start: datetime
    end: datetime
    left: float
    right: float

    @classmethod
    def spanning(cls, instants: Iterable[datetime], left: float, right: float) -> TimeScale:
        """A scale over ``instants`` with a little room either side (two weeks at least)."""
        points = list(instants)
        if not points:
            points = [datetime.now(UTC)]
        low, high = min(points), max(points)
        pad = max((high - low) * 0.02, timedelta(days=3))
        if high - low < timedelta(days=14):
            pad = max(pad, (timedelta(days=14) - (high - low)) / 2)
        return cls(low - pad, high + pad, left, right)

    def x(self, when: datetime) -> float:
        span = (self.end - self.start).total_seconds()
        offset = (when - self.start).total_seconds()
        return self.left + (self.right - self.left) * offset / span

    def ticks(self) -> list[Tick]:
        """Weeks, months, quarters or years, whichever keeps labels apart."""
        days = (self.end - self.start).days
        if days <= 70:
            return self._weekly()
        if days <= 550:
            return self._monthly(1)
        if days <= 1100:
            return self._monthly(3)
        if days <= 2200:
            return self._monthly(6)
        return self._yearly()

    def _weekly(self) -> list[Tick]:
        day = self.start.date()
        day += timedelta(days=(7 - day.weekday()) % 7)  # the next Monday
        ticks = []
        while day_start(day) <= self.end:
            at = day_start(day)
            if at >= self.start:
                ticks.append(Tick(at, f"{_MONTHS[day.month - 1]} {day.day}", day.day <= 7))
            day += timedelta(days=7)
        return ticks

    def _monthly(self, step: int) -> list[Tick]:
        year, month = self.start.year, self.start.month
        ticks: list[Tick] = []
        while True:
            at = day_start(date(year, month, 1))
            if at > self.end:
                return ticks
            if at >= self.start and (month - 1) % step == 0:
                first = not ticks
                label = _MONTHS[month - 1]
                if month == 1 or first:
                    label += f" {year}"
                ticks.append(Tick(at, label, month == 1))
            month += 1
            if month == 13:
                year, month = year + 1, 1

    def _yearly(self) -> list[Tick]:
        step = max(1, round((self.end.year - self.start.year) / 10))
        return [
            Tick(day_start(date(year, 1, 1)), str(year), True)
            for year in range(self.start.year + 1, self.end.year + 1, step)
        ]


def lateness(stage: Mapping[str, Any], present: datetime) -> str:
    """``overdue``: not completed and its planned end has passed by ``present``;
    ``late``: completed after its planned end; else ``""``."""
    end = stage.get("planned_ends_on")
    if not isinstance(end, str):
        return ""
    due = day_end(parse_day(end))
    completed = stage.get("actual_completed_at")
    if isinstance(completed, str):
        return "late" if parse_instant(completed) > due else ""
    return "overdue" if present > due else ""
