"""The tables, as SQLAlchemy Core ``Table`` objects.

``course_designer_plan_events`` is specified to the letter by the tbls spec; the
migrations create it (DDL in ``migrations/``), these objects only query it.
``users`` and ``course_designer_plans`` belong to the host service: only their
``id`` columns are declared here. The ``eventsource_*`` tables are the engine's
own; every one carries ``plan_id`` first so it distributes with the events (see
docs/scaling.md).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Enum,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
)
from sqlalchemy.dialects.postgresql import JSONB

from .events import STAGES
from .types import Timestamp, UUIDType

metadata = MetaData(
    naming_convention={
        "ix": "%(table_name)s_%(column_0_N_name)s_idx",
        "uq": "%(table_name)s_%(column_0_N_name)s_key",
        "ck": "%(table_name)s_%(constraint_name)s_check",
        "fk": "%(table_name)s_%(column_0_name)s_fkey",
        "pk": "%(table_name)s_pkey",
    }
)

JSONDocument = JSON().with_variant(JSONB(), "postgresql")
Stage = Enum(*STAGES, name="course_designer_stage", create_type=False, native_enum=True)

users = Table("users", metadata, Column("id", UUIDType, primary_key=True))

course_designer_plans = Table(
    "course_designer_plans",
    metadata,
    Column("id", UUIDType, primary_key=True),
    Column("created_by_user_id", UUIDType, ForeignKey("users.id"), nullable=False),
)

events = Table(
    "course_designer_plan_events",
    metadata,
    Column("id", UUIDType, primary_key=True),
    Column(
        "course_designer_plan_id",
        UUIDType,
        ForeignKey("course_designer_plans.id"),
        nullable=False,
    ),
    Column("actor_user_id", UUIDType, ForeignKey("users.id")),
    Column("event_type", String(255), nullable=False),
    Column("stage", Stage),
    Column("payload", JSONDocument, nullable=False),
    Column("occurred_at", Timestamp, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("deleted_at", Timestamp),
)

snapshots = Table(
    "eventsource_snapshots",
    metadata,
    Column("plan_id", UUIDType, primary_key=True),
    Column("projection", String(255), primary_key=True),
    Column("projection_version", Integer, nullable=False),
    Column("state", JSONDocument, nullable=False),
    Column("state_hash", String(64), nullable=False),
    Column("event_count", BigInteger, nullable=False),
    Column("position_occurred_at", Timestamp),
    Column("position_created_at", Timestamp),
    Column("position_rank", Integer),
    Column("position_id", UUIDType),
    Column("stale", Boolean, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)
"""Per plan and projection: the folded state and the stream position it covers.

``stale`` is set, in the same transaction, by any write that lands at or before
the position (backfill, soft delete, restore); a stale snapshot is never served.
"""

plan_changes = Table(
    "eventsource_plan_changes",
    metadata,
    Column("plan_id", UUIDType, primary_key=True),
    Column("change_seq", BigInteger, nullable=False),
    Column("changed_at", Timestamp, nullable=False),
)
"""The change feed: which plans changed since their projections were folded.

See ``eventsource.feed`` for why this exists instead of polling timestamps.
"""

retractions = Table(
    "eventsource_retractions",
    metadata,
    Column("plan_id", UUIDType, nullable=False),
    Column("event_id", UUIDType, primary_key=True),
    Column("deleted_at", Timestamp, primary_key=True),
    Column("restored_at", Timestamp),
)
"""History of soft deletes, so ``known_at`` queries stay exact after a restore
(the spec'd table keeps only the current ``deleted_at``)."""

replay_progress = Table(
    "eventsource_replay_progress",
    metadata,
    Column("run", String(255), primary_key=True),
    Column("plan_id", UUIDType, primary_key=True),
    Column("finished_at", Timestamp, nullable=False),
)
"""Plans a named ``replay`` run has finished, so an interrupted run resumes."""

quarantine = Table(
    "eventsource_quarantine",
    metadata,
    Column("plan_id", UUIDType, primary_key=True),
    Column("projection", String(255), primary_key=True),
    Column("projection_version", Integer, nullable=False),
    Column("event_id", UUIDType),
    Column("event_type", String(255)),
    Column("error", String, nullable=False),
    Column("stream_events", BigInteger, nullable=False),
    Column("stream_updated_at", Timestamp),
    Column("first_seen", Timestamp, nullable=False),
    Column("last_seen", Timestamp, nullable=False),
    Column("attempts", Integer, nullable=False),
)
"""Plans a projection cannot fold, skipped until their stream changes (migration 0003)."""

ENGINE_TABLES = (snapshots, plan_changes, retractions, replay_progress, quarantine)
