"""The spec'd event table, its host stand-ins, and the engine's own tables.

On PostgreSQL, ``course_designer_plan_events`` is created exactly as
``spec/course_designer_plan_events.tbls.txt`` documents it (a test compares the
catalog with the spec row by row). Every statement tolerates what a host
database may already have (the extension, the enums, ``trigger_set_timestamp()``,
``users``, ``course_designer_plans``, even the event table), so ``migrate`` brings
an empty or a host database to the same schema and a second run changes nothing.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STAGES = "'analysis', 'design', 'development', 'implementation', 'evaluation'"
PLAN_STATUSES = "'draft', 'scheduling', 'ready_to_start', 'in_progress', 'completed', 'archived'"

POSTGRESQL = [
    'CREATE EXTENSION IF NOT EXISTS "uuid-ossp"',
    f"""DO $$ BEGIN
    CREATE TYPE course_designer_stage AS ENUM ({STAGES});
EXCEPTION WHEN duplicate_object THEN NULL;
END $$""",
    f"""DO $$ BEGIN
    CREATE TYPE course_designer_plan_status AS ENUM ({PLAN_STATUSES});
EXCEPTION WHEN duplicate_object THEN NULL;
END $$""",
    # A host's own trigger_set_timestamp() is left exactly as it is.
    """DO $$ BEGIN
    IF to_regprocedure('trigger_set_timestamp()') IS NULL THEN
        CREATE FUNCTION trigger_set_timestamp() RETURNS trigger LANGUAGE plpgsql AS $f$
        BEGIN
            NEW.updated_at = NOW();
            RETURN NEW;
        END;
        $f$;
    END IF;
END $$""",
    # Minimal stand-ins for the host's tables, only when they do not exist.
    """CREATE TABLE IF NOT EXISTS users (
    id uuid PRIMARY KEY DEFAULT uuid_generate_v4()
)""",
    """CREATE TABLE IF NOT EXISTS course_designer_plans (
    id uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    deleted_at timestamp with time zone,
    created_by_user_id uuid NOT NULL REFERENCES users(id),
    name varchar(255),
    status course_designer_plan_status NOT NULL DEFAULT 'draft',
    active_stage course_designer_stage
)""",
    """CREATE TABLE IF NOT EXISTS course_designer_plan_events (
    id uuid NOT NULL DEFAULT uuid_generate_v4(),
    course_designer_plan_id uuid NOT NULL,
    actor_user_id uuid,
    event_type varchar(255) NOT NULL,
    stage course_designer_stage,
    payload jsonb NOT NULL DEFAULT '{}'::jsonb,
    occurred_at timestamp with time zone NOT NULL DEFAULT now(),
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    deleted_at timestamp with time zone,
    CONSTRAINT course_designer_plan_events_pkey PRIMARY KEY (id),
    CONSTRAINT course_designer_plan_events_course_designer_plan_id_fkey
        FOREIGN KEY (course_designer_plan_id) REFERENCES course_designer_plans(id),
    CONSTRAINT course_designer_plan_events_actor_user_id_fkey
        FOREIGN KEY (actor_user_id) REFERENCES users(id),
    CONSTRAINT course_designer_plan_events_event_type_check CHECK (TRIM(event_type) <> '')
)""",
    "CREATE INDEX IF NOT EXISTS course_designer_plan_events_timeline_idx"
    " ON course_designer_plan_events"
    " USING btree (course_designer_plan_id, deleted_at, occurred_at DESC)",
    """DO $$ BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_trigger
        WHERE tgname = 'set_timestamp'
          AND tgrelid = 'course_designer_plan_events'::regclass
    ) THEN
        CREATE TRIGGER set_timestamp BEFORE UPDATE ON course_designer_plan_events
            FOR EACH ROW EXECUTE FUNCTION trigger_set_timestamp();
    END IF;
END $$""",
    "COMMENT ON TABLE course_designer_plan_events IS "
    "'Append-only event log for reconstructing a design plan timeline and auditing changes.'",
    "COMMENT ON COLUMN course_designer_plan_events.actor_user_id IS "
    "'User who caused the event, or NULL for system-generated events.'",
    "COMMENT ON COLUMN course_designer_plan_events.course_designer_plan_id IS "
    "'The plan this event belongs to.'",
    "COMMENT ON COLUMN course_designer_plan_events.created_at IS "
    "'Timestamp when the record was created.'",
    "COMMENT ON COLUMN course_designer_plan_events.deleted_at IS "
    "'Timestamp when the record was deleted. If null, the record is not deleted.'",
    "COMMENT ON COLUMN course_designer_plan_events.event_type IS "
    "'Application-defined event type identifier.'",
    "COMMENT ON COLUMN course_designer_plan_events.id IS "
    "'A unique, stable identifier for the record.'",
    "COMMENT ON COLUMN course_designer_plan_events.occurred_at IS "
    "'When the event occurred. May differ from created_at when backfilling events.'",
    "COMMENT ON COLUMN course_designer_plan_events.payload IS "
    "'Event-specific structured data used to reconstruct timeline details.'",
    "COMMENT ON COLUMN course_designer_plan_events.stage IS "
    "'Optional workflow stage associated with the event.'",
    "COMMENT ON COLUMN course_designer_plan_events.updated_at IS "
    "'Timestamp when the record was last updated. "
    "The field is updated automatically by the set_timestamp trigger.'",
    # The engine's own tables: plan_id leads every key so they co-locate with the
    # events when distributed by plan (docs/scaling.md).
    """CREATE TABLE IF NOT EXISTS eventsource_snapshots (
    plan_id uuid NOT NULL,
    projection varchar(255) NOT NULL,
    projection_version integer NOT NULL,
    state jsonb NOT NULL,
    state_hash char(64) NOT NULL,
    event_count bigint NOT NULL,
    position_occurred_at timestamp with time zone,
    position_created_at timestamp with time zone,
    position_rank integer,
    position_id uuid,
    stale boolean NOT NULL DEFAULT false,
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT eventsource_snapshots_pkey PRIMARY KEY (plan_id, projection)
)""",
    """CREATE TABLE IF NOT EXISTS eventsource_plan_changes (
    plan_id uuid NOT NULL,
    change_seq bigint NOT NULL DEFAULT 1,
    changed_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT eventsource_plan_changes_pkey PRIMARY KEY (plan_id)
)""",
    """CREATE INDEX IF NOT EXISTS eventsource_plan_changes_changed_at_idx
    ON eventsource_plan_changes (changed_at)""",
    """CREATE TABLE IF NOT EXISTS eventsource_retractions (
    plan_id uuid NOT NULL,
    event_id uuid NOT NULL,
    deleted_at timestamp with time zone NOT NULL,
    restored_at timestamp with time zone,
    CONSTRAINT eventsource_retractions_pkey PRIMARY KEY (event_id, deleted_at)
)""",
    """CREATE INDEX IF NOT EXISTS eventsource_retractions_plan_id_idx
    ON eventsource_retractions (plan_id)""",
    """CREATE TABLE IF NOT EXISTS eventsource_replay_progress (
    run varchar(255) NOT NULL,
    plan_id uuid NOT NULL,
    finished_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT eventsource_replay_progress_pkey PRIMARY KEY (run, plan_id)
)""",
]

NOW = "(strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))"
UUID_CHECK = "length({0}) = 36 AND {0} = lower({0})"
TIMESTAMP_CHECK = "{0} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*Z' AND length({0}) = 27"

SQLITE = [
    f"""CREATE TABLE IF NOT EXISTS users (
    id TEXT NOT NULL PRIMARY KEY CHECK ({UUID_CHECK.format("id")})
)""",
    f"""CREATE TABLE IF NOT EXISTS course_designer_plans (
    id TEXT NOT NULL PRIMARY KEY CHECK ({UUID_CHECK.format("id")}),
    created_at TEXT NOT NULL DEFAULT {NOW},
    updated_at TEXT NOT NULL DEFAULT {NOW},
    deleted_at TEXT,
    created_by_user_id TEXT NOT NULL REFERENCES users(id),
    name VARCHAR(255),
    status TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ({PLAN_STATUSES})),
    active_stage TEXT CHECK (active_stage IN ({STAGES}))
)""",
    f"""CREATE TABLE IF NOT EXISTS course_designer_plan_events (
    id TEXT NOT NULL CHECK ({UUID_CHECK.format("id")}),
    course_designer_plan_id TEXT NOT NULL,
    actor_user_id TEXT,
    event_type VARCHAR(255) NOT NULL CHECK (length(event_type) <= 255),
    stage TEXT CHECK (stage IN ({STAGES})),
    payload TEXT NOT NULL DEFAULT '{{}}'
        CHECK (json_valid(payload) AND json_type(payload) = 'object'),
    occurred_at TEXT NOT NULL DEFAULT {NOW} CHECK ({TIMESTAMP_CHECK.format("occurred_at")}),
    created_at TEXT NOT NULL DEFAULT {NOW} CHECK ({TIMESTAMP_CHECK.format("created_at")}),
    updated_at TEXT NOT NULL DEFAULT {NOW} CHECK ({TIMESTAMP_CHECK.format("updated_at")}),
    deleted_at TEXT CHECK (deleted_at IS NULL OR ({TIMESTAMP_CHECK.format("deleted_at")})),
    CONSTRAINT course_designer_plan_events_pkey PRIMARY KEY (id),
    CONSTRAINT course_designer_plan_events_course_designer_plan_id_fkey
        FOREIGN KEY (course_designer_plan_id) REFERENCES course_designer_plans(id),
    CONSTRAINT course_designer_plan_events_actor_user_id_fkey
        FOREIGN KEY (actor_user_id) REFERENCES users(id),
    CONSTRAINT course_designer_plan_events_event_type_check CHECK (TRIM(event_type) <> '')
)""",
    """CREATE INDEX IF NOT EXISTS course_designer_plan_events_timeline_idx
    ON course_designer_plan_events (course_designer_plan_id, deleted_at, occurred_at DESC)""",
    # PostgreSQL's set_timestamp trigger stamps every update; SQLite has no
    # BEFORE-UPDATE assignment, so an AFTER trigger stamps rows whose writer did
    # not set updated_at itself (recursive triggers are off, so it fires once).
    # NOW is a constant of this module, not input.
    f"""CREATE TRIGGER IF NOT EXISTS set_timestamp
    AFTER UPDATE ON course_designer_plan_events FOR EACH ROW
    WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE course_designer_plan_events SET updated_at = {NOW} WHERE id = NEW.id;
END""",
    f"""CREATE TABLE IF NOT EXISTS eventsource_snapshots (
    plan_id TEXT NOT NULL,
    projection VARCHAR(255) NOT NULL,
    projection_version INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (json_valid(state)),
    state_hash CHAR(64) NOT NULL,
    event_count INTEGER NOT NULL,
    position_occurred_at TEXT,
    position_created_at TEXT,
    position_rank INTEGER,
    position_id TEXT,
    stale BOOLEAN NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL DEFAULT {NOW},
    CONSTRAINT eventsource_snapshots_pkey PRIMARY KEY (plan_id, projection)
)""",
    f"""CREATE TABLE IF NOT EXISTS eventsource_plan_changes (
    plan_id TEXT NOT NULL,
    change_seq INTEGER NOT NULL DEFAULT 1,
    changed_at TEXT NOT NULL DEFAULT {NOW},
    CONSTRAINT eventsource_plan_changes_pkey PRIMARY KEY (plan_id)
)""",
    """CREATE INDEX IF NOT EXISTS eventsource_plan_changes_changed_at_idx
    ON eventsource_plan_changes (changed_at)""",
    """CREATE TABLE IF NOT EXISTS eventsource_retractions (
    plan_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    deleted_at TEXT NOT NULL,
    restored_at TEXT,
    CONSTRAINT eventsource_retractions_pkey PRIMARY KEY (event_id, deleted_at)
)""",
    """CREATE INDEX IF NOT EXISTS eventsource_retractions_plan_id_idx
    ON eventsource_retractions (plan_id)""",
    f"""CREATE TABLE IF NOT EXISTS eventsource_replay_progress (
    run VARCHAR(255) NOT NULL,
    plan_id TEXT NOT NULL,
    finished_at TEXT NOT NULL DEFAULT {NOW},
    CONSTRAINT eventsource_replay_progress_pkey PRIMARY KEY (run, plan_id)
)""",
]


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect == "postgresql":
        statements = POSTGRESQL
    elif dialect == "sqlite":
        statements = SQLITE
    else:
        raise NotImplementedError(f"no migration for the {dialect} dialect")
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    # The event log is append-only and may belong to the host: dropping it is
    # never automated. Only the engine's own (derivable) tables go.
    for table in (
        "eventsource_replay_progress",
        "eventsource_retractions",
        "eventsource_plan_changes",
        "eventsource_snapshots",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
