"""Functions that change history for roles that may not (PostgreSQL only).

The least-privilege roles (``eventsource.roles``) may not set ``deleted_at``,
write ``eventsource_retractions``, update snapshots or lock the event table
themselves: with those privileges a role could forge a retraction at any past
time, rewrite the retraction history or un-stale a snapshot. The store does
those writes through these functions instead, which run as their owner (the
role that ran ``migrate``, ``SECURITY DEFINER``) and can do only this:

- ``eventsource_soft_delete(plan, event)``: set ``deleted_at`` to ``now()`` (the
  transaction's start, the clock of the table's defaults) on a live event of the
  plan and open its retraction; true if it changed the row.
- ``eventsource_restore(plan, event)``: clear ``deleted_at`` and close the open
  retraction at ``now()`` (or record the interval of a deletion made outside the
  library); true if it changed the row.
- ``eventsource_mark_stale(plan, earliest)``: mark the plan's snapshots positioned
  at or after ``earliest`` (null: the transaction's time) stale; never fresh.
- ``eventsource_lock_events()``: ``LOCK`` the event table ``IN SHARE ROW EXCLUSIVE
  MODE`` for the rest of the transaction (a bulk import), returning ``now()``.

Pinned: every table is named in the body with the schema that the migration's own
statements resolve it to (``to_regclass`` follows the ``search_path``, as all the
library's names do), and each function runs with ``search_path = pg_catalog,
pg_temp``, so no object created later in a schema of a caller's path can stand in
for one of them. ``EXECUTE`` is revoked from ``PUBLIC``: only the owner, and the
roles ``migrate --create-roles`` grants it to, may call them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SIGNATURES = (
    "eventsource_soft_delete(uuid, uuid)",
    "eventsource_restore(uuid, uuid)",
    "eventsource_mark_stale(uuid, timestamp with time zone)",
    "eventsource_lock_events()",
)

TABLES = {
    "@events@": "course_designer_plan_events",
    "@retractions@": "eventsource_retractions",
    "@snapshots@": "eventsource_snapshots",
}
"""The marks in the bodies below, and the tables they stand for."""

PINNED = "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp"

# Bodies with @table@ marks, replaced by each table's schema-qualified name when the
# migration runs (no ``%`` anywhere: ``migrate --sql`` would print it doubled). The
# parameters' names differ from every column.
# A restore that finds no open retraction (the event was deleted outside the
# library, or imported deleted) records the interval it was retracted for.
FUNCTIONS = (
    f"""CREATE OR REPLACE FUNCTION eventsource_soft_delete(target_plan uuid, target_event uuid)
    RETURNS boolean {PINNED} AS $body$
BEGIN
    UPDATE @events@ SET deleted_at = now()
        WHERE course_designer_plan_id = target_plan AND id = target_event
          AND deleted_at IS NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO @retractions@ (plan_id, event_id, deleted_at, restored_at)
        VALUES (target_plan, target_event, now(), NULL);
    RETURN true;
END
$body$""",
    f"""CREATE OR REPLACE FUNCTION eventsource_restore(target_plan uuid, target_event uuid)
    RETURNS boolean {PINNED} AS $body$
DECLARE
    was timestamp with time zone;
BEGIN
    SELECT deleted_at INTO was FROM @events@
        WHERE course_designer_plan_id = target_plan AND id = target_event FOR UPDATE;
    IF was IS NULL THEN
        RETURN false;
    END IF;
    UPDATE @events@ SET deleted_at = NULL
        WHERE course_designer_plan_id = target_plan AND id = target_event;
    UPDATE @retractions@ SET restored_at = now()
        WHERE plan_id = target_plan AND event_id = target_event AND restored_at IS NULL;
    IF NOT FOUND THEN
        INSERT INTO @retractions@ (plan_id, event_id, deleted_at, restored_at)
            VALUES (target_plan, target_event, was, now());
    END IF;
    RETURN true;
END
$body$""",
    f"""CREATE OR REPLACE FUNCTION eventsource_mark_stale(
    target_plan uuid, earliest timestamp with time zone
) RETURNS integer {PINNED} AS $body$
DECLARE
    staled integer;
BEGIN
    UPDATE @snapshots@ SET stale = true
        WHERE plan_id = target_plan AND NOT stale
          AND position_occurred_at >= LEAST(COALESCE(earliest, now()), now());
    GET DIAGNOSTICS staled = ROW_COUNT;
    RETURN staled;
END
$body$""",
    f"""CREATE OR REPLACE FUNCTION eventsource_lock_events()
    RETURNS timestamp with time zone {PINNED} AS $body$
BEGIN
    LOCK TABLE @events@ IN SHARE ROW EXCLUSIVE MODE;
    RETURN now();
END
$body$""",
)


def _qualified(table: str) -> str:
    """SQL for ``table``'s schema-qualified, quoted name, as the search_path resolves it."""
    return (
        "(SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class AS c"
        " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
        f" WHERE c.oid = to_regclass('{table}'))"
    )


def _create(function: str) -> str:
    sql = f"$create${function}$create$"
    for mark, table in TABLES.items():
        sql = f"replace({sql}, '{mark}', {_qualified(table)})"
    return f"DO $do$ BEGIN EXECUTE {sql}; END $do$"


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for function in FUNCTIONS:
        op.execute(_create(function))
    # Functions are executable by PUBLIC by default: these only by whom it is granted.
    op.execute(f"REVOKE ALL ON FUNCTION {', '.join(SIGNATURES)} FROM PUBLIC")


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for signature in SIGNATURES:
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
