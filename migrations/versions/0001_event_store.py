"""The spec'd event table, its host stand-ins, and the engine's own tables.

On PostgreSQL, ``course_designer_plan_events`` is created exactly as
``spec/course_designer_plan_events.tbls.txt`` documents it (a test compares the
catalog with the spec row by row), in the upstream service's column order and
with its ``trigger_set_timestamp()`` (which stamps ``updated_at`` only when the
row really changed).

Beside a host. Every object the host service may own (the ``uuid-ossp``
extension, the ``course_designer_stage`` and ``course_designer_plan_status``
enums, ``trigger_set_timestamp()``, ``users``, ``course_designer_plans``, the
event table itself) is created by a block that first asks whether it exists, by
the name the library's own statements resolve (``to_regclass`` and friends
follow the ``search_path``), and does nothing at all when it does: no
``CREATE ... IF NOT EXISTS`` (PostgreSQL checks ownership before existence for
some of them), no comment, index or trigger added to a host's table. So
``migrate`` runs as a role that owns nothing but the ``eventsource_*`` objects,
and what ``migrate --sql`` prints is exactly what runs, on an empty database and
on a host's alike: the checks are in the printed SQL.

Stand-ins. ``users`` and ``course_designer_plans`` created here are minimal
stand-ins for a standalone database, marked as the library's own (a table
comment on PostgreSQL, a comment inside the ``CREATE TABLE`` text that SQLite
keeps in ``sqlite_master``): ``import --create-parents`` writes only into tables
carrying the mark. The mark lives and dies with the table, so a host table that
replaced a stand-in is never mistaken for one.

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

STAND_IN = "eventsource stand-in"
"""How a stand-in table is marked (``eventsource.transfer`` looks for it)."""
STAND_IN_COMMENT = (
    STAND_IN + ": created by eventsource migrate because the database had no host {table} "
    "table; import --create-parents may insert rows into it"
)

EVENT_COMMENTS = (
    (
        "TABLE course_designer_plan_events",
        "Append-only event log for reconstructing a design plan timeline and auditing changes.",
    ),
    ("COLUMN course_designer_plan_events.id", "A unique, stable identifier for the record."),
    ("COLUMN course_designer_plan_events.created_at", "Timestamp when the record was created."),
    (
        "COLUMN course_designer_plan_events.updated_at",
        "Timestamp when the record was last updated. "
        "The field is updated automatically by the set_timestamp trigger.",
    ),
    (
        "COLUMN course_designer_plan_events.deleted_at",
        "Timestamp when the record was deleted. If null, the record is not deleted.",
    ),
    (
        "COLUMN course_designer_plan_events.course_designer_plan_id",
        "The plan this event belongs to.",
    ),
    (
        "COLUMN course_designer_plan_events.actor_user_id",
        "User who caused the event, or NULL for system-generated events.",
    ),
    ("COLUMN course_designer_plan_events.event_type", "Application-defined event type identifier."),
    (
        "COLUMN course_designer_plan_events.stage",
        "Optional workflow stage associated with the event.",
    ),
    (
        "COLUMN course_designer_plan_events.payload",
        "Event-specific structured data used to reconstruct timeline details.",
    ),
    (
        "COLUMN course_designer_plan_events.occurred_at",
        "When the event occurred. May differ from created_at when backfilling events.",
    ),
)


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _when_missing(check: str, *body: str) -> str:
    """A block that runs ``body`` only when ``check`` (SQL that is NULL for a
    missing object) finds nothing."""
    statements = "\n".join(f"        {statement};" for statement in body)
    return f"DO $$ BEGIN\n    IF {check} IS NULL THEN\n{statements}\n    END IF;\nEND $$"


POSTGRESQL = [
    _when_missing(
        "(SELECT oid FROM pg_extension WHERE extname = 'uuid-ossp')",
        'CREATE EXTENSION "uuid-ossp"',
    ),
    _when_missing(
        "to_regtype('course_designer_stage')",
        f"CREATE TYPE course_designer_stage AS ENUM ({STAGES})",
    ),
    _when_missing(
        "to_regclass('users')",
        "CREATE TABLE users (id uuid PRIMARY KEY DEFAULT uuid_generate_v4())",
        f"COMMENT ON TABLE users IS {_quoted(STAND_IN_COMMENT.format(table='users'))}",
    ),
    _when_missing(
        "to_regclass('course_designer_plans')",
        f"""IF to_regtype('course_designer_plan_status') IS NULL THEN
            CREATE TYPE course_designer_plan_status AS ENUM ({PLAN_STATUSES});
        END IF""",
        """CREATE TABLE course_designer_plans (
            id uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
            created_at timestamp with time zone NOT NULL DEFAULT now(),
            updated_at timestamp with time zone NOT NULL DEFAULT now(),
            deleted_at timestamp with time zone,
            created_by_user_id uuid NOT NULL REFERENCES users(id),
            name varchar(255),
            status course_designer_plan_status NOT NULL DEFAULT 'draft',
            active_stage course_designer_stage
        )""",
        "COMMENT ON TABLE course_designer_plans IS "
        + _quoted(STAND_IN_COMMENT.format(table="course_designer_plans")),
    ),
    # The event table, only where the host has none. Its trigger function is the
    # host's when the host has one; otherwise upstream's: updated_at moves only
    # when the row really changed (an UPDATE that sets what is there leaves it).
    _when_missing(
        "to_regclass('course_designer_plan_events')",
        """IF to_regprocedure('trigger_set_timestamp()') IS NULL THEN
            CREATE FUNCTION trigger_set_timestamp() RETURNS trigger LANGUAGE plpgsql AS $f$
            BEGIN
                IF row(NEW.*) IS DISTINCT FROM row(OLD.*) THEN
                    NEW.updated_at = now();
                    RETURN NEW;
                ELSE
                    RETURN OLD;
                END IF;
            END;
            $f$;
        END IF""",
        # Upstream's column order: id, the three record timestamps, then the event.
        """CREATE TABLE course_designer_plan_events (
            id uuid NOT NULL DEFAULT uuid_generate_v4(),
            created_at timestamp with time zone NOT NULL DEFAULT now(),
            updated_at timestamp with time zone NOT NULL DEFAULT now(),
            deleted_at timestamp with time zone,
            course_designer_plan_id uuid NOT NULL,
            actor_user_id uuid,
            event_type varchar(255) NOT NULL,
            stage course_designer_stage,
            payload jsonb NOT NULL DEFAULT '{}'::jsonb,
            occurred_at timestamp with time zone NOT NULL DEFAULT now(),
            CONSTRAINT course_designer_plan_events_pkey PRIMARY KEY (id),
            CONSTRAINT course_designer_plan_events_course_designer_plan_id_fkey
                FOREIGN KEY (course_designer_plan_id) REFERENCES course_designer_plans(id),
            CONSTRAINT course_designer_plan_events_actor_user_id_fkey
                FOREIGN KEY (actor_user_id) REFERENCES users(id),
            CONSTRAINT course_designer_plan_events_event_type_check
                CHECK (TRIM(event_type) <> '')
        )""",
        "CREATE INDEX course_designer_plan_events_timeline_idx ON course_designer_plan_events"
        " USING btree (course_designer_plan_id, deleted_at, occurred_at DESC)",
        "CREATE TRIGGER set_timestamp BEFORE UPDATE ON course_designer_plan_events"
        " FOR EACH ROW EXECUTE FUNCTION trigger_set_timestamp()",
        *(f"COMMENT ON {target} IS {_quoted(comment)}" for target, comment in EVENT_COMMENTS),
    ),
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

EVENT_COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "deleted_at",
    "course_designer_plan_id",
    "actor_user_id",
    "event_type",
    "stage",
    "payload",
    "occurred_at",
)
"""The event table's columns in upstream's order."""
_CHANGED = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in EVENT_COLUMNS if c != "updated_at")

SQLITE = [
    f"""CREATE TABLE IF NOT EXISTS users ( -- {STAND_IN_COMMENT.format(table="users")}
    id TEXT NOT NULL PRIMARY KEY CHECK ({UUID_CHECK.format("id")})
)""",
    f"""CREATE TABLE IF NOT EXISTS course_designer_plans (
    -- {STAND_IN_COMMENT.format(table="course_designer_plans")}
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
    created_at TEXT NOT NULL DEFAULT {NOW} CHECK ({TIMESTAMP_CHECK.format("created_at")}),
    updated_at TEXT NOT NULL DEFAULT {NOW} CHECK ({TIMESTAMP_CHECK.format("updated_at")}),
    deleted_at TEXT CHECK (deleted_at IS NULL OR ({TIMESTAMP_CHECK.format("deleted_at")})),
    course_designer_plan_id TEXT NOT NULL,
    actor_user_id TEXT,
    event_type VARCHAR(255) NOT NULL CHECK (length(event_type) <= 255),
    stage TEXT CHECK (stage IN ({STAGES})),
    payload TEXT NOT NULL DEFAULT '{{}}'
        CHECK (json_valid(payload) AND json_type(payload) = 'object'),
    occurred_at TEXT NOT NULL DEFAULT {NOW} CHECK ({TIMESTAMP_CHECK.format("occurred_at")}),
    CONSTRAINT course_designer_plan_events_pkey PRIMARY KEY (id),
    CONSTRAINT course_designer_plan_events_course_designer_plan_id_fkey
        FOREIGN KEY (course_designer_plan_id) REFERENCES course_designer_plans(id),
    CONSTRAINT course_designer_plan_events_actor_user_id_fkey
        FOREIGN KEY (actor_user_id) REFERENCES users(id),
    CONSTRAINT course_designer_plan_events_event_type_check CHECK (TRIM(event_type) <> '')
)""",
    """CREATE INDEX IF NOT EXISTS course_designer_plan_events_timeline_idx
    ON course_designer_plan_events (course_designer_plan_id, deleted_at, occurred_at DESC)""",
    # PostgreSQL's set_timestamp trigger stamps every update that changes the row;
    # SQLite has no BEFORE-UPDATE assignment, so an AFTER trigger stamps rows that
    # changed and whose writer did not set updated_at itself (recursive triggers
    # are off, so it fires once). NOW and the column names are this module's own.
    f"""CREATE TRIGGER IF NOT EXISTS set_timestamp
    AFTER UPDATE ON course_designer_plan_events FOR EACH ROW
    WHEN NEW.updated_at IS OLD.updated_at AND ({_CHANGED})
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
