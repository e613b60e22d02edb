"""Benchmarks: the store and the engine beside the floor and the peer, in one run.

``python -m benchmarks --help`` lists the options; :mod:`benchmarks.cli` says what
is printed, :mod:`benchmarks.workloads` what workloads A-E do,
:mod:`benchmarks.peer` what W1-W4 do beside eventsourcing (``--peer``),
:mod:`benchmarks.raw` what the floor does and :mod:`benchmarks.catchup`
how workload E's worker processes are started and timed. Speed is only ever measured
here, never asserted by tests.
"""
