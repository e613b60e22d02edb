"""``eventsource migrate``: empty databases, second runs, host databases, the DDL mode,
and what an unmigrated database tells the user."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import psycopg
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Connection, Engine, text

from eventsource import EventStore, migrate
from eventsource.cli import main
from eventsource.config import make_engine
from eventsource.errors import SchemaMissing
from eventsource.events import NewEvent
from tests.conftest import create_pg_schema, drop_pg_schema, pg_schema_url
from tests.test_schema import (
    STAGES,
    assert_matches_spec,
    fresh_pg_database,
    libpq_url,
)

TABLES: Final = {
    "users",
    "course_designer_plans",
    "course_designer_plan_events",
    "eventsource_alembic_version",
    "eventsource_snapshots",
    "eventsource_plan_changes",
    "eventsource_retractions",
    "eventsource_replay_progress",
}

# Everything PostgreSQL knows about the objects of the current schema, with the
# oids: an object dropped and created again shows up as a difference.
PG_CATALOG: Final = {
    "relations": """
        SELECT c.oid::bigint, c.relname, c.relkind::text FROM pg_class AS c
        WHERE c.relnamespace = to_regnamespace(current_schema()) ORDER BY 2""",
    "columns": """
        SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod),
               a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
        FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relnamespace = to_regnamespace(current_schema())
          AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY 1, 2""",
    "constraints": """
        SELECT con.oid::bigint, c.relname, con.conname, con.contype::text,
               pg_get_constraintdef(con.oid)
        FROM pg_constraint AS con JOIN pg_class AS c ON c.oid = con.conrelid
        WHERE c.relnamespace = to_regnamespace(current_schema()) ORDER BY 2, 3""",
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = current_schema() ORDER BY 1, 2""",
    "triggers": """
        SELECT t.oid::bigint, c.relname, t.tgname, pg_get_triggerdef(t.oid)
        FROM pg_trigger AS t JOIN pg_class AS c ON c.oid = t.tgrelid
        WHERE c.relnamespace = to_regnamespace(current_schema()) ORDER BY 2, 3, 4""",
    "functions": """
        SELECT p.oid::bigint, p.proname, pg_get_function_identity_arguments(p.oid), p.prosrc
        FROM pg_proc AS p
        WHERE p.pronamespace = to_regnamespace(current_schema()) ORDER BY 2, 3""",
    "types": """
        SELECT t.oid::bigint, t.typname, t.typtype::text,
               array(SELECT e.enumlabel::text FROM pg_enum AS e
                     WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
        FROM pg_type AS t
        WHERE t.typnamespace = to_regnamespace(current_schema()) ORDER BY 2""",
    "comments": """
        SELECT c.relname, d.objsubid, d.description
        FROM pg_description AS d JOIN pg_class AS c ON c.oid = d.objoid
        WHERE d.classoid = 'pg_class'::regclass
          AND c.relnamespace = to_regnamespace(current_schema())
        ORDER BY 1, 2""",
    "extensions": """
        SELECT e.oid::bigint, e.extname, e.extversion, e.extnamespace::regnamespace::text
        FROM pg_extension AS e ORDER BY 2""",
}


SQLITE_MASTER: Final = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"


# The entries whose first column is an object's identity (an oid, SQLite's rootpage).
IDENTITY_FIRST: Final = {*PG_CATALOG} - {"columns", "indexes", "comments"} | {"sqlite_master"}


def catalog_dump(engine: Engine, *, identity: bool = True) -> dict[str, list[tuple[Any, ...]]]:
    """The whole schema of the database (the current schema on PostgreSQL) and the
    version table's rows; without ``identity``, only what the objects are, not
    which ones (a dropped and re-created object compares equal)."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            dump = {
                key: [tuple(row) for row in conn.execute(text(query))]
                for key, query in PG_CATALOG.items()
            }
        else:
            dump = {
                "sqlite_master": [
                    tuple(row)
                    for row in conn.execute(
                        text(
                            "SELECT rootpage, type, name, tbl_name, sql FROM sqlite_master"
                            " ORDER BY type, name"
                        )
                    )
                ],
                "schema_version": [
                    tuple(row) for row in conn.exec_driver_sql("PRAGMA schema_version")
                ],
            }
        dump["version"] = [
            tuple(row)
            for row in conn.execute(text("SELECT version_num FROM eventsource_alembic_version"))
        ]
    if not identity:
        dump.pop("schema_version", None)
        for key in IDENTITY_FIRST & dump.keys():
            dump[key] = [row[1:] for row in dump[key]]
    return dump


def table_names(conn: Connection) -> set[str]:
    if conn.dialect.name == "postgresql":
        query = (
            "SELECT relname FROM pg_class"
            " WHERE relnamespace = to_regnamespace(current_schema()) AND relkind = 'r'"
        )
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'table'"
    return {name for (name,) in conn.execute(text(query))}


@pytest.fixture
def url_engine(backend_url: str) -> Iterator[Engine]:
    """An engine on the empty, unmigrated database of ``backend_url``."""
    engine = make_engine(backend_url)
    yield engine
    engine.dispose()


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


# -- migrating -----------------------------------------------------------------------


def test_migrate_empty_database_then_again_changes_nothing(url_engine: Engine) -> None:
    head = migrate.head_revision()
    with url_engine.connect() as conn:
        assert table_names(conn) == set()
    assert migrate.current_revision(url_engine) is None

    assert migrate.upgrade(url_engine) == (None, head)
    with url_engine.connect() as conn:
        assert table_names(conn) >= TABLES
    first = catalog_dump(url_engine)
    assert first["version"] == [(head,)]

    assert migrate.upgrade(url_engine) == (head, head)
    assert catalog_dump(url_engine) == first

    # Every statement of the migrations tolerates what exists: with the version row
    # gone, they all run again over the schema and leave the same schema (objects
    # may be re-created, e.g. 0002's notify trigger, but nothing else changes).
    same = catalog_dump(url_engine, identity=False)
    with url_engine.begin() as conn:
        conn.execute(text("DELETE FROM eventsource_alembic_version"))
    assert migrate.upgrade(url_engine) == (None, head)
    assert catalog_dump(url_engine, identity=False) == same


def test_cli_migrate_then_nothing_to_do(backend_url: str, url_engine: Engine) -> None:
    head = migrate.head_revision()
    first = run_cli("migrate", "--database-url", backend_url)
    assert first.exit_code == 0, first.output
    assert first.stdout.strip().endswith(f"migrated (no eventsource schema) -> {head}")
    assert len(first.stdout.splitlines()) == 1
    assert migrate.current_revision(url_engine) == head
    dump = catalog_dump(url_engine)

    second = run_cli("migrate", "--database-url", backend_url)
    assert second.exit_code == 0, second.output
    assert second.stdout.strip().endswith(f"already at revision {head}; nothing to do")
    assert catalog_dump(url_engine) == dump


# Nothing listens on port 1: printing the DDL never connects. The percent-encoded
# parts once broke it (Alembic's config interpolates ``%``).
NOWHERE: Final = "postgresql://nobody:p%25ss@127.0.0.1:1/none?options=-csearch_path%3Dx"


def test_cli_migrate_sql_needs_no_database() -> None:
    result = run_cli("migrate", "--sql", "--database-url", NOWHERE)
    assert result.exit_code == 0, result.output
    ddl = result.stdout
    assert "CREATE TABLE course_designer_plan_events (" in ddl
    assert 'CREATE EXTENSION "uuid-ossp"' in ddl
    assert "CREATE TRIGGER set_timestamp BEFORE UPDATE ON course_designer_plan_events" in ddl
    assert "CREATE INDEX course_designer_plan_events_timeline_idx" in ddl
    assert "eventsource_alembic_version" in ddl
    assert ddl.rstrip().endswith("COMMIT;")


@pytest.mark.postgres
def test_cli_migrate_sql_does_not_touch_the_database() -> None:
    schema = create_pg_schema()
    try:
        url = pg_schema_url(schema)
        result = run_cli("migrate", "--sql", "--database-url", url)
        assert result.exit_code == 0, result.output
        assert "CREATE TABLE course_designer_plan_events (" in result.stdout
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            assert conn.execute(
                "SELECT count(*) FROM pg_class WHERE relnamespace = to_regnamespace(%s)",
                (schema,),
            ).fetchone() == (0,)
    finally:
        drop_pg_schema(schema)


@pytest.mark.postgres
def test_migrate_sql_output_builds_the_spec_schema() -> None:
    """A host that runs the printed DDL itself gets the same, spec'd table."""
    ddl = run_cli("migrate", "--sql", "--database-url", NOWHERE).stdout
    with fresh_pg_database("eventsource_ddl") as url:
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            conn.execute(ddl.encode())
        assert_matches_spec(libpq_url(url))
        engine = make_engine(url)
        try:
            assert migrate.current_revision(engine) == migrate.head_revision()
            assert migrate.upgrade(engine)[0] == migrate.head_revision()
        finally:
            engine.dispose()


def normalized(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(" ".join(v.split()) if isinstance(v, str) else v for v in row)


def test_migrate_sql_output_for_sqlite_builds_the_same_schema(tmp_path: Path) -> None:
    target = tmp_path / "printed.sqlite3"
    result = run_cli("migrate", "--sql", "--database-url", f"sqlite:///{target}")
    assert result.exit_code == 0, result.output
    assert not target.exists()
    with closing(sqlite3.connect(target)) as conn:
        conn.executescript(result.stdout)
        printed = conn.execute(SQLITE_MASTER).fetchall()
    engine = make_engine(f"sqlite:///{tmp_path / 'migrated.sqlite3'}")
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn2:
            migrated = [tuple(row) for row in conn2.exec_driver_sql(SQLITE_MASTER)]
    finally:
        engine.dispose()
    # Alembic indents its version table differently when printing: compare the
    # statements token by token.
    assert [normalized(row) for row in printed] == [normalized(row) for row in migrated]


# -- host databases ------------------------------------------------------------------

HOST_FUNCTION_BODY: Final = """
BEGIN
    -- the host's own: eventsource migrate must leave it exactly as it is
    NEW.updated_at = clock_timestamp();
    RETURN NEW;
END;
"""
HOST_SCHEMA: Final = f"""
CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
CREATE TYPE course_designer_stage AS ENUM ({", ".join(f"'{s}'" for s in STAGES)});
CREATE FUNCTION trigger_set_timestamp() RETURNS trigger LANGUAGE plpgsql
    AS $body${HOST_FUNCTION_BODY}$body$;
CREATE TABLE users (
    id uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    email text NOT NULL UNIQUE,
    display_name text
);
CREATE TABLE course_designer_plans (
    id uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    owner_id uuid NOT NULL REFERENCES users(id),
    title text NOT NULL,
    budget_cents bigint,
    created_at timestamp with time zone NOT NULL DEFAULT now()
);
"""
# The host made the event table itself, from the spec, but left out the comments
# and the timeline index.
HOST_EVENT_TABLE: Final = """
CREATE TABLE course_designer_plan_events (
    id uuid NOT NULL DEFAULT uuid_generate_v4() PRIMARY KEY,
    course_designer_plan_id uuid NOT NULL REFERENCES course_designer_plans(id),
    actor_user_id uuid REFERENCES users(id),
    event_type varchar(255) NOT NULL CHECK (TRIM(event_type) <> ''),
    stage course_designer_stage,
    payload jsonb NOT NULL DEFAULT '{}'::jsonb,
    occurred_at timestamp with time zone NOT NULL DEFAULT now(),
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    deleted_at timestamp with time zone
);
CREATE TRIGGER set_timestamp BEFORE UPDATE ON course_designer_plan_events
    FOR EACH ROW EXECUTE FUNCTION trigger_set_timestamp();
"""
HOST_OBJECTS: Final = """
SELECT 'function', p.oid::bigint, p.prosrc FROM pg_proc AS p
WHERE p.oid = to_regprocedure('trigger_set_timestamp()')
UNION ALL
SELECT 'enum', t.oid::bigint, string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
FROM pg_type AS t JOIN pg_enum AS e ON e.enumtypid = t.oid
WHERE t.oid = to_regtype('course_designer_stage') GROUP BY t.oid
UNION ALL
SELECT 'extension', oid::bigint, extversion FROM pg_extension WHERE extname = 'uuid-ossp'
UNION ALL
SELECT 'column ' || c.relname || '.' || a.attname, c.oid::bigint,
       format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text
       || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid
LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.oid IN (to_regclass('users'), to_regclass('course_designer_plans'))
  AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint ' || conname, oid::bigint, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid IN (to_regclass('users'), to_regclass('course_designer_plans'))
ORDER BY 1
"""


def host_objects(conninfo: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return conn.execute(HOST_OBJECTS).fetchall()


def host_parents(conninfo: str) -> tuple[uuid.UUID, uuid.UUID]:
    user, plan = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (id, email) VALUES (%s, %s)", (user, f"{user.hex}@example.org")
        )
        conn.execute(
            "INSERT INTO course_designer_plans (id, owner_id, title) VALUES (%s, %s, 'Host plan')",
            (plan, user),
        )
    return user, plan


def append_and_read_back(url: str, plan: uuid.UUID, user: uuid.UUID) -> None:
    store = EventStore.from_url(url)
    try:
        occurred = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
        result = store.append(
            plan,
            [
                NewEvent(
                    event_type="plan_created",
                    payload={"name": "Host plan"},
                    stage="analysis",
                    actor_user_id=user,
                    occurred_at=occurred,
                )
            ],
        )
        assert result.appended == 1
        (event,) = list(store.read(plan))
        assert event.id == result.event_ids[0]
        assert (event.plan_id, event.event_type, dict(event.payload)) == (
            plan,
            "plan_created",
            {"name": "Host plan"},
        )
        assert (event.stage, event.actor_user_id, event.occurred_at) == ("analysis", user, occurred)
        assert event.deleted_at is None
    finally:
        store.close()


@pytest.mark.postgres
def test_migrate_host_database_keeps_the_host_objects() -> None:
    with fresh_pg_database("eventsource_host") as url:
        conninfo = libpq_url(url)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(HOST_SCHEMA.encode())
        before = host_objects(conninfo)
        assert [row[2] for row in before if row[0] == "function"] == [HOST_FUNCTION_BODY]

        result = run_cli("migrate", "--database-url", url)
        assert result.exit_code == 0, result.output
        assert f"-> {migrate.head_revision()}" in result.stdout

        assert host_objects(conninfo) == before
        assert_matches_spec(conninfo)
        user, plan = host_parents(conninfo)
        append_and_read_back(url, plan, user)
        # The event table's trigger runs the host's function: clock_timestamp(), so
        # later than the transaction's now() (which the stand-in would write).
        with psycopg.connect(conninfo) as conn:
            changed = conn.execute(
                "UPDATE course_designer_plan_events SET deleted_at = now()"
                " RETURNING updated_at > now()"
            ).fetchall()
        assert changed == [(True,)]

        second = run_cli("migrate", "--database-url", url)
        assert "nothing to do" in second.stdout
        assert host_objects(conninfo) == before


@pytest.mark.postgres
def test_migrate_accepts_a_host_made_event_table() -> None:
    with fresh_pg_database("eventsource_host") as url:
        conninfo = libpq_url(url)
        user, plan = uuid.uuid4(), uuid.uuid4()
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute((HOST_SCHEMA + HOST_EVENT_TABLE).encode())
            conn.execute("INSERT INTO users (id, email) VALUES (%s, 'host@example.org')", (user,))
            conn.execute(
                "INSERT INTO course_designer_plans (id, owner_id, title) VALUES (%s, %s, 'p')",
                (plan, user),
            )
            conn.execute(
                "INSERT INTO course_designer_plan_events"
                " (course_designer_plan_id, event_type, occurred_at)"
                " VALUES (%s, 'plan_created', '2025-01-01T00:00:00Z')",
                (plan,),
            )
            table = conn.execute(
                "SELECT to_regclass('course_designer_plan_events')::oid::bigint"
            ).fetchone()
        before = host_objects(conninfo)

        engine = make_engine(url)
        try:
            assert migrate.upgrade(engine) == (None, migrate.head_revision())
        finally:
            engine.dispose()

        assert host_objects(conninfo) == before
        with psycopg.connect(conninfo, autocommit=True) as conn:
            assert (
                conn.execute(
                    "SELECT to_regclass('course_designer_plan_events')::oid::bigint"
                ).fetchone()
                == table
            )
            # The host's table is used as it is: no comment, no index added to it.
            assert conn.execute(
                "SELECT count(*) FROM pg_description"
                " WHERE objoid = 'course_designer_plan_events'::regclass"
            ).fetchone() == (0,)
            assert conn.execute(
                "SELECT count(*) FROM pg_indexes WHERE tablename = 'course_designer_plan_events'"
            ).fetchone() == (1,)
            assert conn.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgname = 'set_timestamp'"
            ).fetchone() == (1,)
        store = EventStore.from_url(url)
        try:
            (kept,) = list(store.read(plan))  # the host's row is still there
            assert kept.event_type == "plan_created"
        finally:
            store.close()


# -- an unmigrated database ----------------------------------------------------------


def test_unmigrated_database_raises_schema_missing(url_engine: Engine) -> None:
    store = EventStore(url_engine)
    with pytest.raises(SchemaMissing, match="eventsource migrate"):
        store.append(uuid.uuid4(), [NewEvent(event_type="plan_created", payload={})])
    with pytest.raises(SchemaMissing, match="eventsource migrate"):
        list(store.read(uuid.uuid4()))
    with url_engine.connect() as conn:
        assert table_names(conn) == set()  # nothing was created on the way


@pytest.mark.parametrize("command", ["timeline", "audit"])
def test_cli_on_unmigrated_database_says_to_migrate(backend_url: str, command: str) -> None:
    result = run_cli(command, str(uuid.uuid4()), "--database-url", backend_url)
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "`eventsource migrate`" in lines[0]
    assert "Traceback" not in result.output
