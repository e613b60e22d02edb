"""Hypothesis profiles for the determinism kit: ``dev``, ``ci`` and ``nightly``.

Importing this module registers them; :func:`load_profile` activates one, chosen
by ``HYPOTHESIS_PROFILE`` (``dev`` when unset)::

    HYPOTHESIS_PROFILE=ci pytest

* ``dev``: quick local runs; failures found are kept in the local example
  database and replayed first next time.
* ``ci``: more examples, derandomized so a run is reproducible, no example
  database, and failures print a ``@reproduce_failure`` blob as well as the
  example. Sized to stay within a few minutes on two cores.
* ``nightly``: ten times the CI examples, longer state-machine runs, fresh
  randomness each night.

No profile has a deadline: a fold that takes long once is not a failure (speed is
measured by the benchmarks). Tests that touch a database run fewer examples than
in-memory ones: size them with :func:`scaled`, which follows the active profile.
"""

from __future__ import annotations

import os
from typing import Final

from hypothesis import HealthCheck, settings

__all__ = ["DEV_EXAMPLES", "PROFILES", "database_settings", "load_profile", "scaled"]

PROFILES: Final = ("dev", "ci", "nightly")
DEV_EXAMPLES: Final = 50
"""``max_examples`` of the dev profile: the unit :func:`scaled` multiplies."""

_SLOW: Final = [HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile("dev", max_examples=DEV_EXAMPLES, deadline=None, stateful_step_count=30)
settings.register_profile(
    "ci",
    # Hypothesis's own CI profile (derandomized, no database, print_blob), larger.
    parent=settings.get_profile("ci"),
    max_examples=DEV_EXAMPLES * 4,
    deadline=None,
    suppress_health_check=_SLOW,
)
settings.register_profile(
    "nightly",
    max_examples=DEV_EXAMPLES * 40,
    deadline=None,
    database=None,
    print_blob=True,
    stateful_step_count=100,
    suppress_health_check=_SLOW,
)


def load_profile(name: str | None = None) -> str:
    """Activate ``name``, else ``HYPOTHESIS_PROFILE``, else ``dev``; return it.

    A profile chosen another way (``pytest --hypothesis-profile``) is kept when
    neither is given.

    Raises:
        hypothesis.errors.InvalidArgument: no profile has that name.
    """
    chosen = name or os.environ.get("HYPOTHESIS_PROFILE")
    if chosen is None:
        # get_current_profile_name is recent (older Hypothesis: always dev here).
        current_name = getattr(settings, "get_current_profile_name", lambda: "default")
        current = str(current_name())
        chosen = "dev" if current == "default" else current
    settings.load_profile(chosen)
    return chosen


def scaled(dev_examples: int) -> int:
    """An example count for the active profile: ``dev_examples`` under ``dev``.

    Grows with the profile's ``max_examples`` (four times under ``ci``, forty
    times under ``nightly``), never below one.
    """
    return max(1, dev_examples * settings().max_examples // DEV_EXAMPLES)


def database_settings(dev_examples: int) -> settings:
    """Settings for a Hypothesis test that writes to a database.

    :func:`scaled` examples, no deadline, and no health check failing because one
    example is slow (a database round trip is) or the data is large.
    """
    return settings(
        max_examples=scaled(dev_examples),
        deadline=None,
        suppress_health_check=[*_SLOW, HealthCheck.filter_too_much],
    )
