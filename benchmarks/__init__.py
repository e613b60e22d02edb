"""Benchmarks: the store and the engine against the raw driver, in one run.

``python -m benchmarks --help`` lists the options; :mod:`benchmarks.cli` says what
is printed, :mod:`benchmarks.workloads` what each workload does,
:mod:`benchmarks.raw` what the raw yardstick does and :mod:`benchmarks.catchup`
how workload E's worker processes are started and timed. Speed is only ever measured
here, never asserted by tests.
"""
