"""Generated event ids: UUIDv7 that increase in the order they are made."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from eventsource import ids


def test_ids_are_version_7_with_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    ident = ids.uuid7()
    after = time.time_ns() // 1_000_000
    assert ident.version == 7
    assert ident.variant == uuid.RFC_4122
    assert before <= ident.int >> 80 <= after + 1
    assert uuid.UUID(str(ident)) == ident
    assert hash(uuid.UUID(str(ident))) == hash(ident)


def test_ids_made_in_one_millisecond_still_increase(monkeypatch: pytest.MonkeyPatch) -> None:
    # More ids than the counter holds in a millisecond: the time borrows the next.
    frozen = time.time_ns()
    monkeypatch.setattr(time, "time_ns", lambda: frozen)
    made = [ids.uuid7() for _ in range(10_000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert (made[-1].int >> 80) - frozen // 1_000_000 <= 5


def test_ids_from_many_threads_are_unique_and_each_thread_s_increase() -> None:
    made: dict[int, list[uuid.UUID]] = {}

    def make(key: int) -> None:
        made[key] = [ids.uuid7() for _ in range(5_000)]

    threads = [threading.Thread(target=make, args=(key,)) for key in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [ident for run in made.values() for ident in run]
    assert len(set(every)) == len(every) == 20_000
    assert all(run == sorted(run) for run in made.values())
