"""Least-privilege roles (opt-in: ``eventsource migrate --create-roles``), PostgreSQL only.

- ``eventsource_writer``: read everything, insert events, and update only the
  ``deleted_at`` column (soft delete and restore). It cannot change a payload
  or any other column, and cannot delete a row. It maintains the engine's own
  tables (snapshots, change feed, retractions, replay progress). Writes lock the
  plan's ``course_designer_plans`` row ``FOR UPDATE`` (the host's lock), which
  PostgreSQL allows only with ``UPDATE`` on a column of it: the writer gets it on
  ``updated_at`` alone, whose ``set_timestamp`` trigger (on a host's table) makes
  it the column a write can least change.
- ``eventsource_reader``: read only.

Both are NOLOGIN group roles: grant them to the login roles your services use
(``GRANT eventsource_writer TO my_service``). Bulk ``import`` locks the event
table and so needs the table's owner.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import Connection, text

WRITER: Final = "eventsource_writer"
READER: Final = "eventsource_reader"
ENGINE_TABLES: Final = (
    "eventsource_snapshots",
    "eventsource_plan_changes",
    "eventsource_retractions",
    "eventsource_replay_progress",
    "eventsource_quarantine",
)
READABLE: Final = (
    "course_designer_plan_events",
    "users",
    "course_designer_plans",
    "eventsource_alembic_version",
    *ENGINE_TABLES,
)


def statements() -> list[str]:
    """The DDL, in order (printed by ``migrate --create-roles --sql``).

    Plain SQL a host can run as it is: the schema is the one the tables were
    migrated into (``current_schema()``), resolved and quoted by the server.
    """
    out = []
    for role in (WRITER, READER):
        # duplicate_object: the role exists; unique_violation: another session
        # created it at the same moment.
        out.append(
            f"DO $$ BEGIN CREATE ROLE {role} NOLOGIN; "
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        )
        out.append(
            "DO $$ BEGIN EXECUTE format('GRANT USAGE ON SCHEMA %I TO "
            f"{role}', current_schema()); END $$"
        )
        out.append(f"GRANT SELECT ON {', '.join(READABLE)} TO {role}")
    out.append(f"GRANT INSERT ON course_designer_plan_events TO {WRITER}")
    out.append(f"GRANT UPDATE (deleted_at) ON course_designer_plan_events TO {WRITER}")
    out.append(f"GRANT UPDATE (updated_at) ON course_designer_plans TO {WRITER}")
    out.append(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(ENGINE_TABLES)} TO {WRITER}")
    return out


def create_roles(connection: Connection) -> None:
    """Create (or re-grant) both roles in the connection's current schema."""
    for statement in statements():
        connection.execute(text(statement))
