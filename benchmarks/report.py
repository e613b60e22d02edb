"""The report: a table for people, JSON for programs.

Workloads A-E print one line per variant (:func:`format_table`). The peer
workloads W1-W4 print one line per comparison (:func:`format_peer_table`):
library, peer at its default durability, peer at the library's durability, and
the floor, as median events/s, with the ratios library/peer and library/floor
as the median of the per-round ratios (:func:`benchmarks.measure.paired_ratio`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from .measure import Result, paired_ratio

__all__ = ["PeerRow", "ScaleRow", "format_peer_table", "format_table", "peer_json", "to_json"]

_HEADER = (
    f"  {'variant':<44} {'events':>7} {'best s':>8} {'median s':>8} {'cpu s':>8} {'events/s':>10} "
    f"{'ratio':>7} {'target':>7} {'result':<6} vs / note"
)


def _ratio(result: Result) -> tuple[str, str]:
    if result.ratio is None:
        return "", ""
    speedup = result.workload == "C" and result.variant.startswith("library load")
    ratio = f"{result.ratio:.1f}x" if speedup else f"{result.ratio:.2f}"
    if result.target is None:
        return ratio, ""
    return ratio, f">={result.target:.0f}x" if speedup else f">={result.target:.2f}"


def _line(result: Result) -> str:
    ratio, target = _ratio(result)
    notes = [n for n in (result.baseline, result.note, *result.problems) if n]
    return (
        f"  {result.variant:<44} {result.events:>7} {result.best:>8.4f} {result.median:>8.4f} "
        f"{result.cpu_best:>8.4f} "
        f"{result.events_per_second:>10,.0f} {ratio:>7} {target:>7} {result.verdict:<6} "
        f"{'; '.join(notes)}"
    ).rstrip()


def format_table(results: Sequence[Result], where: Mapping[str, str]) -> str:
    """One block per backend, one group per workload; ratio = library/raw events/s."""
    lines: list[str] = []
    for backend, by_backend in groupby(results, key=lambda r: r.backend):
        lines.append(f"== {backend} ({where.get(backend, '')})")
        lines.append(_HEADER)
        for (workload, title), group in groupby(by_backend, key=lambda r: (r.workload, r.title)):
            lines.append(f"{workload}  {title}")
            lines.extend(_line(result) for result in group)
        lines.append("")
    return "\n".join(lines)


def to_json(result: Result) -> dict[str, Any]:
    return {
        "backend": result.backend,
        "workload": result.workload,
        "title": result.title,
        "variant": result.variant,
        "events": result.events,
        "seconds": result.seconds,
        "best_seconds": result.best,
        "median_seconds": result.median,
        "cpu_seconds": result.cpu_seconds,
        "best_cpu_seconds": result.cpu_best,
        "events_per_second": result.events_per_second,
        "baseline": result.baseline,
        "ratio": result.ratio,
        "target": result.target,
        "verdict": result.verdict or None,
        "problems": result.problems,
        "note": result.note,
    }


# -- the peer table -------------------------------------------------------------------


@dataclass
class PeerRow:
    """One comparison: the library beside the peer (two durabilities) and the floor.

    ``peer_default`` and ``peer_equal`` are the same result where the peer's
    default already is the library's durability (PostgreSQL) or where nothing
    commits (reads). All results come from one interleaved run.
    """

    backend: str
    workload: str
    title: str
    library: Result
    peer_default: Result
    peer_equal: Result
    floor: Result | None
    peer_target: float
    floor_target: float | None = None
    note: str = ""

    @property
    def events(self) -> int:
        return self.library.events

    @property
    def ratio_default(self) -> float:
        return paired_ratio(self.library, self.peer_default)

    @property
    def ratio_equal(self) -> float:
        return paired_ratio(self.library, self.peer_equal)

    @property
    def ratio_floor(self) -> float | None:
        return None if self.floor is None else paired_ratio(self.library, self.floor)

    @property
    def problems(self) -> list[str]:
        results = [self.library, self.peer_default, self.peer_equal, self.floor]
        distinct = {id(r): r for r in results if r is not None}
        return [f"{r.variant}: {p}" for r in distinct.values() for p in r.problems]

    @property
    def peer_verdict(self) -> str:
        if self.problems:
            return "ERROR"
        return "PASS" if self.ratio_equal >= self.peer_target else "MISS"

    @property
    def floor_verdict(self) -> str:
        ratio = self.ratio_floor
        if self.problems:
            return "ERROR"
        if self.floor_target is None or ratio is None:
            return ""
        return "PASS" if ratio >= self.floor_target else "MISS"


@dataclass
class ScaleRow:
    """Per-event load cost of a long plan over that of a shorter one (1.0 = linear)."""

    backend: str
    workload: str
    title: str
    long: dict[str, Result]
    """Per side (library, peer, floor), the long plan's full fold."""
    short: dict[str, Result]
    """Per side, the shorter plan's full fold."""
    target: float
    """The library's ratio must stay at or below this."""
    problems: list[str] = field(default_factory=list)

    def ratio(self, side: str) -> float:
        long, short = self.long[side], self.short[side]
        return (long.median / long.events) / (short.median / short.events)

    @property
    def verdict(self) -> str:
        if self.problems:
            return "ERROR"
        return "PASS" if self.ratio("library") <= self.target else "MISS"


def _rate(result: Result | None) -> str:
    if result is None:
        return "-"
    return f"{result.events / result.median:,.0f}" if result.median > 0 else "inf"


_PEER_HEADER = (
    f"  {'workload':<50} {'events':>7} {'library/s':>10} {'peer dflt/s':>11} "
    f"{'peer eq/s':>10} {'floor/s':>10} {'lib/peer':>8} {'lib/peer':>8} {'target':>6} "
    f"{'result':<6} {'lib/floor':>9} {'target':>6} {'result':<6}\n"
    f"  {'':<50} {'':>7} {'':>10} {'':>11} {'':>10} {'':>10} {'dflt':>8} {'eq':>8}"
)


def _peer_line(row: PeerRow) -> str:
    floor_ratio = row.ratio_floor
    floor_target = "" if row.floor_target is None else f">={row.floor_target:.1f}"
    same = row.peer_default is row.peer_equal
    line = (
        f"  {row.workload + ' ' + row.title:<50} {row.events:>7} {_rate(row.library):>10} "
        f"{_rate(row.peer_default):>11} {('=' if same else _rate(row.peer_equal)):>10} "
        f"{_rate(row.floor):>10} {row.ratio_default:>8.2f} {row.ratio_equal:>8.2f} "
        f">={row.peer_target:<4.1f} {row.peer_verdict:<6} "
        f"{'-' if floor_ratio is None else f'{floor_ratio:.2f}':>9} {floor_target:>6} "
        f"{row.floor_verdict:<6}"
    ).rstrip()
    notes = [n for n in (row.note, *row.problems) if n]
    return line + "".join(f"\n      {n}" for n in notes)


def _scale_line(row: ScaleRow) -> str:
    sides = ", ".join(f"{side} x{row.ratio(side):.2f}" for side in ("library", "peer", "floor"))
    line = (
        f"  {row.workload} {row.title}: {sides}; target library <= x{row.target:.1f}: {row.verdict}"
    )
    return line + "".join(f"\n      {p}" for p in row.problems)


def format_peer_table(
    rows: Sequence[PeerRow],
    scales: Sequence[ScaleRow],
    where: Mapping[str, str],
    durability: Mapping[str, str],
) -> str:
    """One block per backend: the comparisons, then the per-event scale lines."""
    lines: list[str] = []
    for backend in dict.fromkeys([*(r.backend for r in rows), *(s.backend for s in scales)]):
        lines.append(f"== {backend} ({where.get(backend, '')})")
        if backend in durability:
            lines.append(f"   durability: {durability[backend]}")
        lines.append(_PEER_HEADER)
        lines.extend(_peer_line(r) for r in rows if r.backend == backend)
        lines.extend(_scale_line(s) for s in scales if s.backend == backend)
        lines.append("")
    return "\n".join(lines)


def peer_json(rows: Sequence[PeerRow], scales: Sequence[ScaleRow]) -> dict[str, Any]:
    def rate(result: Result | None) -> float | None:
        return None if result is None else result.events / result.median

    return {
        "rows": [
            {
                "backend": r.backend,
                "workload": r.workload,
                "title": r.title,
                "events": r.events,
                "variants": {
                    "library": r.library.variant,
                    "peer_default": r.peer_default.variant,
                    "peer_equal": r.peer_equal.variant,
                    "floor": None if r.floor is None else r.floor.variant,
                },
                "median_events_per_second": {
                    "library": rate(r.library),
                    "peer_default": rate(r.peer_default),
                    "peer_equal": rate(r.peer_equal),
                    "floor": rate(r.floor),
                },
                "library_over_peer_default": r.ratio_default,
                "library_over_peer_equal": r.ratio_equal,
                "peer_target": r.peer_target,
                "peer_verdict": r.peer_verdict,
                "library_over_floor": r.ratio_floor,
                "floor_target": r.floor_target,
                "floor_verdict": r.floor_verdict or None,
                "note": r.note,
                "problems": r.problems,
            }
            for r in rows
        ],
        "scale": [
            {
                "backend": s.backend,
                "workload": s.workload,
                "title": s.title,
                "per_event_cost_ratio": {side: s.ratio(side) for side in s.long},
                "target": s.target,
                "verdict": s.verdict,
                "problems": s.problems,
            }
            for s in scales
        ],
        "ratio": "median over the rounds of library events/s / other events/s in that round",
    }
