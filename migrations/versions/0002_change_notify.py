"""Wake workers at commit: NOTIFY on every change-feed write (PostgreSQL only).

A statement-level trigger on ``eventsource_plan_changes`` costs writers no extra
round trip; notifications are delivered when the writing transaction commits,
and duplicates within a transaction are folded by PostgreSQL.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(
        """CREATE OR REPLACE FUNCTION eventsource_notify_plan_changes() RETURNS trigger
    LANGUAGE plpgsql AS $f$
BEGIN
    PERFORM pg_notify('eventsource_plan_changes', '');
    RETURN NULL;
END;
$f$"""
    )
    op.execute(
        """DO $$ BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_trigger
        WHERE tgname = 'eventsource_plan_changes_notify'
          AND tgrelid = 'eventsource_plan_changes'::regclass
    ) THEN
        CREATE TRIGGER eventsource_plan_changes_notify
            AFTER INSERT OR UPDATE ON eventsource_plan_changes
            FOR EACH STATEMENT EXECUTE FUNCTION eventsource_notify_plan_changes();
    END IF;
END $$"""
    )


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS eventsource_plan_changes_notify ON eventsource_plan_changes")
    op.execute("DROP FUNCTION IF EXISTS eventsource_notify_plan_changes()")
