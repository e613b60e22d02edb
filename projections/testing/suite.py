"""Every determinism property of a projection as a ready-made pytest test class.

In a test module::

    from projections.testing import event_streams, projection_properties
    from my_package.projections import TagsProjection

    TestTagsProjection = projection_properties(TagsProjection(), event_streams())

pytest collects the class; each property is one Hypothesis test, run under the
active profile (:mod:`projections.testing.profiles`).

The hidden-state test folds in new instances of the projection: its class called
with no arguments, unless ``fresh`` gives a function that builds one (for a
projection built with arguments).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from eventsource.events import RecordedEvent

from ..typing import Projection
from .hashseed import HashSeedCheck, projection_path
from .properties import (
    check_backfill_equivalent,
    check_delete_restore_noop,
    check_evolve_pure,
    check_insertion_order_independent,
    check_no_hidden_state,
    check_replay_deterministic,
    check_snapshot_plus_tail,
    check_snapshot_round_trip,
    instance_factory,
)
from .strategies import event_streams

__all__ = ["projection_properties", "subsets_of_ids", "write_orders"]


def write_orders(
    events: Sequence[RecordedEvent],
) -> st.SearchStrategy[tuple[list[int], list[int]]]:
    """A write order (a permutation of indices) and batch sizes for ``events``."""
    return st.tuples(
        st.permutations(range(len(events))),
        st.lists(st.integers(1, 4), max_size=len(events)),
    )


def subsets_of_ids(events: Sequence[RecordedEvent]) -> st.SearchStrategy[frozenset[UUID]]:
    """Sets of the events' ids (empty for no events)."""
    if not events:
        return st.just(frozenset())
    return st.frozensets(st.sampled_from([e.id for e in events]))


def projection_properties(
    projection: Projection[Any],
    streams: st.SearchStrategy[list[RecordedEvent]] | None = None,
    *,
    hash_seeds: Sequence[int] | None = (0, 1, 2, 3),
    importable_as: str | None = None,
    fresh: Callable[[], Projection[Any]] | None = None,
) -> type:
    """A test class checking the determinism properties of ``projection``.

    Args:
        projection: any projection.
        streams: the event streams to try (default :func:`event_streams`).
        hash_seeds: seeds for the hash-seed test, or None to leave it out.
        importable_as: ``"module:attribute"`` the hash-seed workers load the
            projection from (default: its class, built with no arguments).
        fresh: builds a new instance of the projection for the hidden-state test
            (default: its class, called with no arguments).
    """
    events_in: st.SearchStrategy[list[RecordedEvent]] = (
        streams if streams is not None else event_streams()
    )

    class ProjectionProperties:
        @given(events=events_in)
        def test_replay_twice_gives_identical_bytes(self, events: list[RecordedEvent]) -> None:
            check_replay_deterministic(projection, events)

        @given(events=events_in)
        def test_evolve_never_changes_the_state_it_was_given(
            self, events: list[RecordedEvent]
        ) -> None:
            check_evolve_pure(projection, events)

        @given(events=events_in)
        def test_a_snapshot_survives_its_json_round_trip(self, events: list[RecordedEvent]) -> None:
            check_snapshot_round_trip(projection, events)

        @given(events=events_in)
        def test_a_snapshot_plus_its_tail_equals_a_full_fold_at_every_cut(
            self, events: list[RecordedEvent]
        ) -> None:
            check_snapshot_plus_tail(projection, events)

        @given(events=events_in, data=st.data())
        def test_insertion_order_and_batch_boundaries_do_not_change_the_state(
            self, events: list[RecordedEvent], data: st.DataObject
        ) -> None:
            order, sizes = data.draw(write_orders(events), label="order, batch sizes")
            check_insertion_order_independent(projection, events, order=order, batch_sizes=sizes)

        @given(events=events_in, data=st.data())
        def test_a_backfill_equals_having_appended_in_order(
            self, events: list[RecordedEvent], data: st.DataObject
        ) -> None:
            late = data.draw(subsets_of_ids(events), label="late")
            check_backfill_equivalent(projection, events, late=late)

        @given(events=events_in, data=st.data())
        def test_soft_delete_then_restore_changes_nothing(
            self, events: list[RecordedEvent], data: st.DataObject
        ) -> None:
            retract = data.draw(subsets_of_ids(events), label="retract")
            check_delete_restore_noop(projection, events, retract=retract)

    try:
        make: Callable[[], Projection[Any]] | None = instance_factory(projection, fresh)
        problem = ""
    except ValueError as exc:  # reported by the test itself, not at import
        make, problem = None, str(exc)

    if make is not None:
        new_instance = make

        @given(events=events_in)
        def test_folding_other_streams_first_never_changes_a_state(
            self: Any, events: list[RecordedEvent]
        ) -> None:
            check_no_hidden_state(projection, events, fresh=new_instance)

    else:

        def test_folding_other_streams_first_never_changes_a_state(self: Any) -> None:
            raise ValueError(problem)

    setattr(  # noqa: B010 - one of two definitions
        ProjectionProperties,
        "test_folding_other_streams_first_never_changes_a_state",
        test_folding_other_streams_first_never_changes_a_state,
    )

    if hash_seeds is not None:
        seeds = tuple(hash_seeds)
        target = importable_as or projection_path(projection)

        def test_the_state_does_not_depend_on_the_hash_seed(self: Any) -> None:
            with HashSeedCheck(target, seeds=seeds) as check:

                @given(events=events_in)
                def fold_under_every_seed(events: list[RecordedEvent]) -> None:
                    check.check(events)

                fold_under_every_seed()

        setattr(  # noqa: B010 - added only when asked for
            ProjectionProperties,
            "test_the_state_does_not_depend_on_the_hash_seed",
            test_the_state_does_not_depend_on_the_hash_seed,
        )

    name = f"Test{type(projection).__name__}Properties"
    ProjectionProperties.__name__ = ProjectionProperties.__qualname__ = name
    return ProjectionProperties
