"""The determinism kit: Hypothesis strategies, property checks and helpers.

* :mod:`.strategies`: event streams for any projection, and workflow-valid
  course-designer plans with the state they must fold to.
* :mod:`.properties`: checks that take any projection and a stream: replay is
  deterministic, snapshot + tail equals a full fold at every cut, insertion order
  and batches do not matter, a backfill equals appending in order, delete then
  restore changes nothing, snapshots survive their JSON round trip, ``evolve``
  never changes its input, and a state never depends on what the instance folded
  before (no memo by plan or event id).
* :mod:`.hashseed`: the one impurity a single process cannot see (set iteration
  order under different ``PYTHONHASHSEED`` values).
* :mod:`.suite`: all of the above as a ready-made pytest class.
* :mod:`.given`: given / when / then for reducer tests.
* :mod:`.profiles`: the ``dev``, ``ci`` and ``nightly`` Hypothesis profiles.
* :mod:`.echo`: a projection whose state is the stream, for testing stores.
"""

from .echo import EchoProjection, EchoState
from .given import Scenario, given
from .hashseed import HashSeedCheck, check_hash_seed_independence
from .profiles import database_settings, load_profile, scaled
from .properties import (
    IncrementalModel,
    PropertyViolation,
    check_all,
    check_backfill_equivalent,
    check_delete_restore_noop,
    check_evolve_pure,
    check_insertion_order_independent,
    check_no_hidden_state,
    check_replay_deterministic,
    check_snapshot_plus_tail,
    check_snapshot_round_trip,
    instance_factory,
    live_stream,
    plan_ids,
    regression_test,
    replay,
    round_trip,
)
from .strategies import (
    FloatPolicy,
    PlanPath,
    PlanStory,
    Service,
    course_designer_plans,
    course_designer_stories,
    course_designer_streams,
    event_streams,
    event_types,
    json_objects,
    json_values,
    timestamps,
)
from .suite import projection_properties, subsets_of_ids, write_orders

__all__ = [
    "EchoProjection",
    "EchoState",
    "FloatPolicy",
    "HashSeedCheck",
    "IncrementalModel",
    "PlanPath",
    "PlanStory",
    "PropertyViolation",
    "Scenario",
    "Service",
    "check_all",
    "check_backfill_equivalent",
    "check_delete_restore_noop",
    "check_evolve_pure",
    "check_hash_seed_independence",
    "check_insertion_order_independent",
    "check_no_hidden_state",
    "check_replay_deterministic",
    "check_snapshot_plus_tail",
    "check_snapshot_round_trip",
    "course_designer_plans",
    "course_designer_stories",
    "course_designer_streams",
    "database_settings",
    "event_streams",
    "event_types",
    "given",
    "instance_factory",
    "json_objects",
    "json_values",
    "live_stream",
    "load_profile",
    "plan_ids",
    "projection_properties",
    "regression_test",
    "replay",
    "round_trip",
    "scaled",
    "subsets_of_ids",
    "timestamps",
    "write_orders",
]
