"""The report: a table for people, JSON for programs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import groupby
from typing import Any

from .measure import Result

__all__ = ["format_table", "to_json"]

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
