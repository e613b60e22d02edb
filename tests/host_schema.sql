-- A host database: what the upstream service's migrations leave behind for the
-- course designer (written for these tests from the facts of upstream's schema:
-- names, types, defaults, checks, constraints, triggers and the event table's
-- column order). Loaded by tests/host.py into a fresh database, as its owner,
-- before any `eventsource migrate`.

CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
CREATE EXTENSION IF NOT EXISTS btree_gist;

-- Upstream stamps updated_at only when the row really changed.
CREATE OR REPLACE FUNCTION trigger_set_timestamp() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    IF row(NEW.*) IS DISTINCT FROM row(OLD.*) THEN
        NEW.updated_at = now();
        RETURN NEW;
    ELSE
        RETURN OLD;
    END IF;
END;
$body$;

CREATE TABLE users (
    id uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    deleted_at timestamp with time zone,
    email varchar(255) NOT NULL UNIQUE
);
CREATE TRIGGER set_timestamp BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION trigger_set_timestamp();

CREATE TYPE course_designer_stage AS ENUM (
    'analysis', 'design', 'development', 'implementation', 'evaluation'
);
CREATE TYPE course_designer_plan_status AS ENUM (
    'draft', 'scheduling', 'ready_to_start', 'in_progress', 'completed', 'archived'
);
CREATE TYPE course_designer_plan_stage_status AS ENUM ('not_started', 'in_progress', 'completed');

CREATE TABLE course_designer_plans (
    id uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    deleted_at timestamp with time zone,
    created_by_user_id uuid NOT NULL REFERENCES users(id),
    name varchar(255),
    status course_designer_plan_status NOT NULL DEFAULT 'draft',
    active_stage course_designer_stage,
    last_weekly_stage_email_sent_at timestamp with time zone,
    CHECK (name IS NULL OR TRIM(name) <> ''),
    CHECK (status <> 'in_progress' OR active_stage IS NOT NULL)
);
CREATE TRIGGER set_timestamp BEFORE UPDATE ON course_designer_plans
    FOR EACH ROW EXECUTE FUNCTION trigger_set_timestamp();
COMMENT ON TABLE course_designer_plans IS
    'A collaborative plan used to design a MOOC course over multiple months.';

CREATE TABLE course_designer_plan_members (
    id uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    deleted_at timestamp with time zone,
    course_designer_plan_id uuid NOT NULL REFERENCES course_designer_plans(id),
    user_id uuid NOT NULL REFERENCES users(id),
    CONSTRAINT course_designer_plan_members_plan_user_unique
        UNIQUE NULLS NOT DISTINCT (course_designer_plan_id, user_id, deleted_at)
);
CREATE TRIGGER set_timestamp BEFORE UPDATE ON course_designer_plan_members
    FOR EACH ROW EXECUTE FUNCTION trigger_set_timestamp();

CREATE TABLE course_designer_plan_stages (
    id uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    deleted_at timestamp with time zone,
    course_designer_plan_id uuid NOT NULL REFERENCES course_designer_plans(id),
    stage course_designer_stage NOT NULL,
    status course_designer_plan_stage_status NOT NULL DEFAULT 'not_started',
    planned_starts_on date NOT NULL,
    planned_ends_on date NOT NULL,
    actual_started_at timestamp with time zone,
    actual_completed_at timestamp with time zone,
    workspace_data jsonb,
    CHECK (planned_starts_on <= planned_ends_on),
    CHECK (
        actual_started_at IS NULL
        OR actual_completed_at IS NULL
        OR actual_started_at <= actual_completed_at
    ),
    CONSTRAINT course_designer_plan_stages_plan_stage_unique
        UNIQUE NULLS NOT DISTINCT (course_designer_plan_id, stage, deleted_at)
);
CREATE TRIGGER set_timestamp BEFORE UPDATE ON course_designer_plan_stages
    FOR EACH ROW EXECUTE FUNCTION trigger_set_timestamp();
ALTER TABLE course_designer_plan_stages
    ADD CONSTRAINT course_designer_plan_stages_no_overlap EXCLUDE USING gist (
        course_designer_plan_id WITH =,
        daterange(planned_starts_on, planned_ends_on, '[]') WITH &&
    ) WHERE (deleted_at IS NULL) DEFERRABLE INITIALLY DEFERRED;

-- The event log, in upstream's column order.
CREATE TABLE course_designer_plan_events (
    id uuid DEFAULT uuid_generate_v4() PRIMARY KEY,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    deleted_at timestamp with time zone,
    course_designer_plan_id uuid NOT NULL REFERENCES course_designer_plans(id),
    actor_user_id uuid REFERENCES users(id),
    event_type varchar(255) NOT NULL,
    stage course_designer_stage,
    payload jsonb NOT NULL DEFAULT '{}'::jsonb,
    occurred_at timestamp with time zone NOT NULL DEFAULT now(),
    CHECK (TRIM(event_type) <> '')
);
CREATE TRIGGER set_timestamp BEFORE UPDATE ON course_designer_plan_events
    FOR EACH ROW EXECUTE FUNCTION trigger_set_timestamp();
CREATE INDEX course_designer_plan_events_timeline_idx
    ON course_designer_plan_events (course_designer_plan_id, deleted_at, occurred_at DESC);

COMMENT ON TABLE course_designer_plan_events IS
    'Append-only event log for reconstructing a design plan timeline and auditing changes.';
COMMENT ON COLUMN course_designer_plan_events.id IS
    'A unique, stable identifier for the record.';
COMMENT ON COLUMN course_designer_plan_events.created_at IS
    'Timestamp when the record was created.';
COMMENT ON COLUMN course_designer_plan_events.updated_at IS
    'Timestamp when the record was last updated. The field is updated automatically by the set_timestamp trigger.';
COMMENT ON COLUMN course_designer_plan_events.deleted_at IS
    'Timestamp when the record was deleted. If null, the record is not deleted.';
COMMENT ON COLUMN course_designer_plan_events.course_designer_plan_id IS
    'The plan this event belongs to.';
COMMENT ON COLUMN course_designer_plan_events.actor_user_id IS
    'User who caused the event, or NULL for system-generated events.';
COMMENT ON COLUMN course_designer_plan_events.event_type IS
    'Application-defined event type identifier.';
COMMENT ON COLUMN course_designer_plan_events.stage IS
    'Optional workflow stage associated with the event.';
COMMENT ON COLUMN course_designer_plan_events.payload IS
    'Event-specific structured data used to reconstruct timeline details.';
COMMENT ON COLUMN course_designer_plan_events.occurred_at IS
    'When the event occurred. May differ from created_at when backfilling events.';
