"""Least-privilege roles (opt-in: ``eventsource migrate --create-roles``), PostgreSQL only.

Four NOLOGIN group roles, each allowed exactly what one part of the library runs
(README, "Least privilege"); none may rewrite history:

- ``eventsource_writer`` appends, soft deletes and restores through the store.
  It inserts events naming only ``id``, the plan, the actor, the type, the stage,
  the payload and ``occurred_at`` (the store's append does not send the rest):
  ``created_at`` and ``updated_at`` are the database's ``now()`` and ``deleted_at``
  is null, so a writer cannot record an event in the past, which ``--known-at``
  would then serve. Soft delete and restore go through the ``SECURITY DEFINER``
  functions of migration 0004 (``eventsource_soft_delete``,
  ``eventsource_restore``), which stamp the database's time and write
  ``eventsource_retractions``; the writer cannot set ``deleted_at`` itself. Its
  bookkeeping records the plan in the change feed (``INSERT (plan_id)``,
  ``UPDATE (change_seq)``: the feed's clock is the table's default) and marks
  snapshots stale through ``eventsource_mark_stale`` (never fresh). Writes lock
  the plan's ``course_designer_plans`` row ``FOR UPDATE`` (the host's lock), which
  PostgreSQL allows only with ``UPDATE`` on a column of it: the writer gets it on
  ``updated_at`` alone, whose ``set_timestamp`` trigger (on a host's table) makes
  it the column a write can least change. No ``DELETE``, no ``TRUNCATE``, no
  ``UPDATE`` of an event, a snapshot or the retraction history.
- ``eventsource_importer`` imports backfills: ``INSERT`` on every event column
  (an import keeps ids, timestamps and ``deleted_at`` as the file has them), the
  same bookkeeping as the writer, and ``eventsource_lock_events()``: an import
  holds ``SHARE ROW EXCLUSIVE`` on the event table, which ``LOCK`` grants only to
  a role with table-level ``UPDATE``, ``DELETE`` or ``TRUNCATE`` (each enough to
  rewrite or empty the log), so it locks through that function instead.
  ``import --create-parents`` inserts into the parent tables, which it may not:
  run that as their owner.
- ``eventsource_projector`` runs the projections: snapshots (insert, update,
  delete), the change feed as workers, ``reconcile`` and ``requeue`` use it
  (claim with ``FOR UPDATE SKIP LOCKED``, clear, record; no ``TRUNCATE``), replay
  checkpoints and the quarantine table; it locks plan rows as ``snapshot`` and
  ``replay`` do (``UPDATE (updated_at)`` on the plans). It cannot write an event.
- ``eventsource_reader`` reads.

Every role reads every table the library uses. They are NOLOGIN group roles:
grant them to the login roles your services use (``GRANT eventsource_writer TO
my_service``); a service that runs inline projections (snapshots written inside
its appends) needs ``eventsource_projector`` too. Creating them again re-grants
exactly this, first revoking whatever the four hold on these tables and functions
(also the broader grants of earlier versions).
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import Connection, text

WRITER: Final = "eventsource_writer"
IMPORTER: Final = "eventsource_importer"
PROJECTOR: Final = "eventsource_projector"
READER: Final = "eventsource_reader"
ROLES: Final = (WRITER, IMPORTER, PROJECTOR, READER)

EVENTS: Final = "course_designer_plan_events"
SNAPSHOTS: Final = "eventsource_snapshots"
CHANGES: Final = "eventsource_plan_changes"
RETRACTIONS: Final = "eventsource_retractions"
PROGRESS: Final = "eventsource_replay_progress"
QUARANTINE: Final = "eventsource_quarantine"
ENGINE_TABLES: Final = (SNAPSHOTS, CHANGES, RETRACTIONS, PROGRESS, QUARANTINE)
READABLE: Final = (
    EVENTS,
    "users",
    "course_designer_plans",
    "eventsource_alembic_version",
    *ENGINE_TABLES,
)

APPEND_COLUMNS: Final = (
    "id",
    "course_designer_plan_id",
    "actor_user_id",
    "event_type",
    "stage",
    "payload",
    "occurred_at",
)
"""The event columns a writer may insert: the store's append sends exactly these."""

SOFT_DELETE: Final = "eventsource_soft_delete(uuid, uuid)"
RESTORE: Final = "eventsource_restore(uuid, uuid)"
MARK_STALE: Final = "eventsource_mark_stale(uuid, timestamp with time zone)"
LOCK_EVENTS: Final = "eventsource_lock_events()"
FUNCTIONS: Final = (SOFT_DELETE, RESTORE, MARK_STALE, LOCK_EVENTS)
"""Migration 0004's SECURITY DEFINER functions (``EXECUTE`` revoked from PUBLIC)."""

# The change feed as the store's bookkeeping writes it (PostgreSQL dialect's
# record_change): an upsert naming the plan, bumping change_seq on conflict.
_RECORD_CHANGES: Final = (
    f"GRANT INSERT (plan_id), UPDATE (change_seq) ON {CHANGES} TO {{role}}",
    f"GRANT EXECUTE ON FUNCTION {MARK_STALE} TO {{role}}",
)
_LOCK_PLANS: Final = "GRANT UPDATE (updated_at) ON course_designer_plans TO {role}"

GRANTS: Final = {
    WRITER: (
        f"GRANT INSERT ({', '.join(APPEND_COLUMNS)}) ON {EVENTS} TO {{role}}",
        f"GRANT EXECUTE ON FUNCTION {SOFT_DELETE}, {RESTORE} TO {{role}}",
        *_RECORD_CHANGES,
        _LOCK_PLANS,
    ),
    IMPORTER: (
        f"GRANT INSERT ON {EVENTS} TO {{role}}",
        f"GRANT EXECUTE ON FUNCTION {LOCK_EVENTS} TO {{role}}",
        *_RECORD_CHANGES,
    ),
    PROJECTOR: (
        f"GRANT INSERT, UPDATE, DELETE ON {SNAPSHOTS}, {CHANGES}, {QUARANTINE} TO {{role}}",
        f"GRANT INSERT, DELETE ON {PROGRESS} TO {{role}}",
        f"GRANT EXECUTE ON FUNCTION {MARK_STALE} TO {{role}}",
        _LOCK_PLANS,
    ),
    READER: (),
}
"""What each role may do beyond reading, as statements (``{role}`` is the role)."""


def statements() -> list[str]:
    """The DDL, in order (printed by ``migrate --create-roles --sql``).

    Plain SQL a host can run as it is: the schema is the one the tables were
    migrated into (``current_schema()``), resolved and quoted by the server.
    """
    out = []
    for role in ROLES:
        # duplicate_object: the role exists; unique_violation: another session
        # created it at the same moment.
        out.append(
            f"DO $$ BEGIN CREATE ROLE {role} NOLOGIN; "
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        )
        # Exactly what follows, whatever the role held before (column privileges
        # go with the table's).
        out.append(f"REVOKE ALL ON {', '.join(READABLE)} FROM {role}")
        out.append(f"REVOKE ALL ON FUNCTION {', '.join(FUNCTIONS)} FROM {role}")
        out.append(
            "DO $$ BEGIN EXECUTE format('GRANT USAGE ON SCHEMA %I TO "
            f"{role}', current_schema()); END $$"
        )
        out.append(f"GRANT SELECT ON {', '.join(READABLE)} TO {role}")
        out.extend(grant.format(role=role) for grant in GRANTS[role])
    return out


def create_roles(connection: Connection) -> None:
    """Create (or re-grant) the four roles in the connection's current schema."""
    for statement in statements():
        connection.execute(text(statement))
