"""Timing: every variant of a workload runs N times, interleaved round by round.

Interleaving (library, raw, library, raw, ...) rather than running one variant N
times and then the next means slow drift on the machine (a checkpoint, another
process, the page cache warming) hits every variant alike. The order rotates by
one each round (library, raw; then raw, library), so no variant always runs
first, right after the setup's checkpoint, or always last. The figure reported
is the best run: the run least disturbed by anything but the code under test.
The median is kept beside it (and every sample goes to the JSON output) so a
noisy machine shows up as a wide gap between the two. Comparisons that must hold
up on a noisy machine (the peer table) use :func:`paired_ratio` instead: the
median, over the rounds, of the two variants' ratio within one round.

Each run also records this process's CPU time. On PostgreSQL that is the
client's own work (Python, SQLAlchemy, the driver), which other load on the
machine barely changes: when wall times are noisy, library CPU against raw CPU
still says what the library costs. On SQLite the database runs in-process, so
its work is included.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["Result", "Variant", "measure", "paired_ratio", "run_interleaved"]


def _nothing() -> None:
    return None


def _no_problem() -> str | None:
    return None


@dataclass(frozen=True)
class Variant:
    """One way of doing a workload's work.

    Attributes:
        name: shown in the table (``library store.append``, ``raw COPY``...).
        run: the timed work.
        setup: untimed, before every run (emptying the table, say).
        check: untimed, after every run; returns what is wrong, or None.
    """

    name: str
    run: Callable[[], object]
    setup: Callable[[], None] = _nothing
    check: Callable[[], str | None] = _no_problem


@dataclass
class Result:
    """One row of the report.

    ``ratio`` is the baseline's best time over this variant's best time: for a
    library variant against its raw baseline, library events/s divided by raw
    events/s (1.0 = as fast as the raw driver). For the snapshot row it is the
    speed-up of a snapshot load over the full fold.
    """

    backend: str
    workload: str
    title: str
    variant: str
    events: int
    seconds: list[float]
    cpu_seconds: list[float] = field(default_factory=list)
    """This process's CPU time, per run."""
    baseline: str | None = None
    ratio: float | None = None
    target: float | None = None
    problems: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def cpu_best(self) -> float:
        return min(self.cpu_seconds) if self.cpu_seconds else float("nan")

    @property
    def events_per_second(self) -> float:
        return self.events / self.best if self.best > 0 else float("inf")

    @property
    def verdict(self) -> str:
        if self.problems:
            return "ERROR"
        if self.target is None or self.ratio is None:
            return ""
        return "PASS" if self.ratio >= self.target else "MISS"

    def compare(self, baseline: Result, target: float | None = None) -> Result:
        """Set the ratio against ``baseline`` (and the target it must reach)."""
        self.baseline = baseline.variant
        self.ratio = baseline.best / self.best if self.best > 0 else float("inf")
        self.target = target
        return self


def run_interleaved(
    variants: Sequence[Variant],
    repeat: int,
    progress: Callable[[str], None],
    label: str,
) -> dict[str, tuple[list[float], list[float], list[str]]]:
    """Run every variant ``repeat`` times; per variant, wall times, CPU times, problems.

    Round ``r`` (from 0) starts with variant ``r % len(variants)``; the lists
    returned are in round order, so index ``i`` of two variants is one round.
    """
    times: dict[str, list[float]] = {v.name: [] for v in variants}
    cpu: dict[str, list[float]] = {v.name: [] for v in variants}
    problems: dict[str, list[str]] = {v.name: [] for v in variants}
    for round_number in range(1, repeat + 1):
        shift = (round_number - 1) % len(variants) if variants else 0
        for variant in [*variants[shift:], *variants[:shift]]:
            variant.setup()
            gc.collect()
            start, start_cpu = time.perf_counter(), time.process_time()
            variant.run()
            elapsed = time.perf_counter() - start
            cpu[variant.name].append(time.process_time() - start_cpu)
            times[variant.name].append(elapsed)
            problem = variant.check()
            if problem is not None and problem not in problems[variant.name]:
                problems[variant.name].append(problem)
            progress(f"{label}: {variant.name} run {round_number}/{repeat}: {elapsed:.3f} s")
    return {name: (times[name], cpu[name], problems[name]) for name in times}


def measure(
    backend: str,
    workload: str,
    title: str,
    events: int,
    variants: Sequence[Variant],
    repeat: int,
    progress: Callable[[str], None],
) -> dict[str, Result]:
    """Run ``variants`` interleaved ``repeat`` times; one :class:`Result` per variant."""
    timed = run_interleaved(variants, repeat, progress, f"{backend} {workload}")
    return {
        name: Result(backend, workload, title, name, events, seconds, cpu, problems=problems)
        for name, (seconds, cpu, problems) in timed.items()
    }


def paired_ratio(numerator: Result, denominator: Result) -> float:
    """Median over the rounds of numerator events/s / denominator events/s in that round.

    Both results must come from one :func:`run_interleaved` call (same rounds).
    """
    if len(numerator.seconds) != len(denominator.seconds):
        raise ValueError(
            f"{numerator.variant} and {denominator.variant} ran {len(numerator.seconds)} "
            f"and {len(denominator.seconds)} rounds"
        )
    ratios = [
        (numerator.events / mine) / (denominator.events / theirs)
        if mine > 0 and theirs > 0
        else float("nan")
        for mine, theirs in zip(numerator.seconds, denominator.seconds, strict=True)
    ]
    return statistics.median(ratios)
