"""Snapshot rows: per plan and projection, a folded state and the position it covers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from eventsource.store import StreamPosition
from eventsource.tables import snapshots


@dataclass(frozen=True, slots=True)
class Snapshot:
    plan_id: UUID
    projection: str
    projection_version: int
    state: Any
    """The state as JSON data (``Projection.to_json``)."""
    state_hash: str
    event_count: int
    """Live events covered: folded plus skipped (unknown types)."""
    position: StreamPosition | None
    """The last event covered, or None for an empty stream."""
    stale: bool
    updated_at: datetime

    def usable_for(self, name: str, version: int) -> bool:
        """Only a fresh snapshot of this exact projection version is ever served."""
        return self.projection == name and self.projection_version == version and not self.stale


def load(connection: Connection, plan_id: UUID, projection: str) -> Snapshot | None:
    row = connection.execute(
        select(snapshots).where(
            snapshots.c.plan_id == plan_id, snapshots.c.projection == projection
        )
    ).one_or_none()
    if row is None:
        return None
    position = (
        None
        if row.position_id is None
        else StreamPosition(
            row.position_occurred_at, row.position_created_at, row.position_rank, row.position_id
        )
    )
    return Snapshot(
        plan_id=row.plan_id,
        projection=row.projection,
        projection_version=row.projection_version,
        state=row.state,
        state_hash=row.state_hash.strip(),
        event_count=row.event_count,
        position=position,
        stale=bool(row.stale),
        updated_at=row.updated_at,
    )


def save(connection: Connection, snapshot: Snapshot) -> None:
    """Insert or replace the plan's snapshot for this projection."""
    position = snapshot.position
    values = {
        "plan_id": snapshot.plan_id,
        "projection": snapshot.projection,
        "projection_version": snapshot.projection_version,
        "state": snapshot.state,
        "state_hash": snapshot.state_hash,
        "event_count": snapshot.event_count,
        "position_occurred_at": None if position is None else position.occurred_at,
        "position_created_at": None if position is None else position.created_at,
        "position_rank": None if position is None else position.rank,
        "position_id": None if position is None else position.id,
        "stale": False,
        # The database's clock on PostgreSQL, the one events' updated_at come from,
        # so reconcile's "updated after the snapshot" check compares like with like.
        "updated_at": func.now()
        if connection.dialect.name == "postgresql"
        else snapshot.updated_at,
    }
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    statement = insert(snapshots).values(**values)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[snapshots.c.plan_id, snapshots.c.projection],
            set_={k: statement.excluded[k] for k in values if k not in ("plan_id", "projection")},
        )
    )
