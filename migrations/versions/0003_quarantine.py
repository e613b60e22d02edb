"""Quarantine: plans whose events a projection cannot fold.

One bad event must stop nobody: a plan whose fold raises is recorded here (per
projection and version) and skipped by workers, ``replay``, ``verify`` and
``state --all`` until its stream changes (``stream_events`` and
``stream_updated_at`` are the stream's fingerprint when it was last tried) or a
user retries it (``eventsource quarantine --retry``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

POSTGRESQL = """CREATE TABLE IF NOT EXISTS eventsource_quarantine (
    plan_id uuid NOT NULL,
    projection varchar(255) NOT NULL,
    projection_version integer NOT NULL,
    event_id uuid,
    event_type varchar(255),
    error text NOT NULL,
    stream_events bigint NOT NULL,
    stream_updated_at timestamp with time zone,
    first_seen timestamp with time zone NOT NULL DEFAULT now(),
    last_seen timestamp with time zone NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 1,
    CONSTRAINT eventsource_quarantine_pkey PRIMARY KEY (plan_id, projection)
)"""

NOW = "(strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))"

SQLITE = f"""CREATE TABLE IF NOT EXISTS eventsource_quarantine (
    plan_id TEXT NOT NULL,
    projection VARCHAR(255) NOT NULL,
    projection_version INTEGER NOT NULL,
    event_id TEXT,
    event_type VARCHAR(255),
    error TEXT NOT NULL,
    stream_events INTEGER NOT NULL,
    stream_updated_at TEXT,
    first_seen TEXT NOT NULL DEFAULT {NOW},
    last_seen TEXT NOT NULL DEFAULT {NOW},
    attempts INTEGER NOT NULL DEFAULT 1,
    CONSTRAINT eventsource_quarantine_pkey PRIMARY KEY (plan_id, projection)
)"""


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    op.execute(POSTGRESQL if dialect == "postgresql" else SQLITE)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS eventsource_quarantine")
