"""Catching reducers whose result depends on the hash seed.

Iterating a ``set`` (or ``frozenset``) of strings visits them in an order that
depends on ``PYTHONHASHSEED``, which Python picks at random for every process. A
reducer that turns such a set into a list gives one state in one process and
another in the next, but always the same state within one process: folding twice
(``check_replay_deterministic``, the engine's ``verify``) cannot see it.

The only honest check is to fold in several processes with different hash seeds
and compare. :class:`HashSeedCheck` keeps one worker process per seed alive, so a
Hypothesis test can send it every example (and shrink a failure) at the cost of a
pipe round trip. The seeds are fixed, so a result is reproducible; a dependence
that happens to give the same order under every chosen seed goes unnoticed (with
n seeds, a two-element set escapes with probability 2**-(n-1)), so use enough of
them. ``dict`` iteration follows insertion order and needs no such check.

The projection must be importable by the workers: pass ``"module:attribute"`` (a
projection instance, a class or a factory taking no arguments), or an instance
of a class importable at module level.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
from collections.abc import Sequence
from types import TracebackType
from typing import IO, Any, Final

import orjson

from eventsource.events import RecordedEvent
from eventsource.jsonl import event_to_row

from ..typing import Projection
from .properties import _differences, _fail

__all__ = ["DEFAULT_SEEDS", "HashSeedCheck", "check_hash_seed_independence", "projection_path"]

DEFAULT_SEEDS: Final = (0, 1, 2, 3, 4, 5, 6, 7)
"""Eight seeds: a two-element set keeps one order under all of them once in 128."""


def projection_path(projection: Projection[Any] | str) -> str:
    """``"module:attribute"`` for a projection the workers can import and build.

    Raises:
        ValueError: the projection's class is defined inside a function.
    """
    if isinstance(projection, str):
        return projection
    cls = type(projection)
    if "<locals>" in cls.__qualname__ or cls.__module__ == "__main__":
        raise ValueError(
            f"{cls.__qualname__} is not importable from another process; define it at "
            "module level in an importable module, or pass 'module:attribute'"
        )
    return f"{cls.__module__}:{cls.__qualname__}"


class HashSeedCheck:
    """Fold streams in one worker process per hash seed and compare the states.

    Use as a context manager (the workers stop on exit)::

        with HashSeedCheck("my_package.projections:TagsProjection") as check:
            check.check(events)

    Args:
        projection: ``"module:attribute"`` or an importable projection instance.
        seeds: the ``PYTHONHASHSEED`` values, one worker each (at least two).
        timeout: seconds to wait for a worker's answer.
    """

    def __init__(
        self,
        projection: Projection[Any] | str,
        *,
        seeds: Sequence[int] = DEFAULT_SEEDS,
        timeout: float = 60.0,
    ) -> None:
        if len(set(seeds)) < 2:
            raise ValueError("give at least two different seeds")
        self.target = projection_path(projection)
        self.seeds = tuple(seeds)
        self.timeout = timeout
        self._workers: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> HashSeedCheck:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start the workers and wait until each has loaded the projection.

        Raises:
            RuntimeError: a worker cannot load the projection.
        """
        if self._workers:
            return
        path = os.pathsep.join(p for p in sys.path if p)
        inherited = os.environ.get("PYTHONPATH")
        for seed in self.seeds:
            env = {
                **os.environ,
                "PYTHONHASHSEED": str(seed),
                "PYTHONPATH": path if not inherited else f"{path}{os.pathsep}{inherited}",
            }
            self._workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "projections.testing._seedworker", self.target],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env=env,
                )
            )
        try:
            for seed, worker in zip(self.seeds, self._workers, strict=True):
                answer = self._read(worker)
                if "error" in answer:
                    raise RuntimeError(
                        f"the worker for PYTHONHASHSEED={seed} cannot load {self.target!r}: "
                        f"{answer['error']}"
                    )
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the workers."""
        workers, self._workers = self._workers, []
        for worker in workers:
            if worker.stdin is not None:
                worker.stdin.close()
        for worker in workers:
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            if worker.stdout is not None:
                worker.stdout.close()

    def _read(self, worker: subprocess.Popen[bytes]) -> dict[str, Any]:
        stdout: IO[bytes] | None = worker.stdout
        assert stdout is not None
        if os.name == "posix":
            with selectors.DefaultSelector() as selector:
                selector.register(stdout, selectors.EVENT_READ)
                if not selector.select(self.timeout):
                    raise TimeoutError(f"a hash-seed worker gave no answer in {self.timeout} s")
        line = stdout.readline()
        if not line:
            raise RuntimeError(
                f"a hash-seed worker for {self.target!r} exited (code {worker.poll()})"
            )
        answer: dict[str, Any] = orjson.loads(line)
        return answer

    def states(self, events: Sequence[RecordedEvent]) -> dict[int, dict[str, str]]:
        """Per seed, each plan's folded state (canonical JSON, or the error raised)."""
        self.start()
        request = orjson.dumps([event_to_row(e) for e in events]) + b"\n"
        for worker in self._workers:
            assert worker.stdin is not None
            worker.stdin.write(request)
            worker.stdin.flush()
        return {
            seed: self._read(worker)["states"]
            for seed, worker in zip(self.seeds, self._workers, strict=True)
        }

    def check(self, events: Sequence[RecordedEvent]) -> None:
        """Every seed folds every plan to the same bytes.

        Raises:
            PropertyViolation: two seeds give different states (or errors).
        """
        results = self.states(events)
        first_seed, first = self.seeds[0], results[self.seeds[0]]
        for seed in self.seeds[1:]:
            for plan, state in results[seed].items():
                if state != first.get(plan):
                    other = first.get(plan, "")
                    _fail(
                        "check_hash_seed_independence",
                        self.target,
                        events,
                        f"plan {plan} folds differently under PYTHONHASHSEED={first_seed} and "
                        f"={seed}: {_describe(other, state)}. A reducer must not depend on the "
                        "iteration order of a set (sort it first)",
                        seeds=self.seeds,
                    )


def _describe(first: str, second: str) -> str:
    try:
        return _differences(first.encode(), second.encode())
    except orjson.JSONDecodeError:
        return f"{first[:200]!r} != {second[:200]!r}"


def check_hash_seed_independence(
    projection: Projection[Any] | str,
    events: Sequence[RecordedEvent],
    *,
    seeds: Sequence[int] = DEFAULT_SEEDS,
) -> None:
    """Fold ``events`` under several hash seeds (one process each); all must agree.

    Starts and stops the workers; for many streams keep one :class:`HashSeedCheck`.

    Raises:
        PropertyViolation: two seeds give different states.
    """
    with HashSeedCheck(projection, seeds=seeds) as check:
        check.check(events)
