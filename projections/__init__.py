"""projections: the engine folding plan streams into states, and its projections.

The public API is re-exported here; everything else is implementation. The
Hypothesis kit is :mod:`projections.testing`.
"""

from .async_engine import AsyncInlineProjections, AsyncProjectionEngine
from .async_worker import AsyncWorker
from .course_designer import CourseDesignerPlanProjection, PlanState, StageState
from .engine import (
    FieldChange,
    InlineProjections,
    LoadedState,
    ProjectionEngine,
    ReplayReport,
    VerifyReport,
)
from .fold import FoldResult, FrozenMapping, canonical_json, fold, state_hash
from .host_drift import DriftReport, FieldDrift, PlanDrift, host_drift
from .registry import Registry, discover
from .typing import Event, JSONValue, Projection
from .worker import Finding, Worker, WorkerStats, reconcile

__all__ = [
    "AsyncInlineProjections",
    "AsyncProjectionEngine",
    "AsyncWorker",
    "CourseDesignerPlanProjection",
    "DriftReport",
    "Event",
    "FieldChange",
    "FieldDrift",
    "Finding",
    "FoldResult",
    "FrozenMapping",
    "InlineProjections",
    "JSONValue",
    "LoadedState",
    "PlanDrift",
    "PlanState",
    "Projection",
    "ProjectionEngine",
    "Registry",
    "ReplayReport",
    "StageState",
    "VerifyReport",
    "Worker",
    "WorkerStats",
    "canonical_json",
    "discover",
    "fold",
    "host_drift",
    "reconcile",
    "state_hash",
]
