"""``eventsource migrate`` beside the upstream service, and on a database of its own.

On a host database (``tests/host_schema.sql``) migrate runs as a role that owns
nothing but what it creates, touches none of the host's objects and creates only
``eventsource_*`` ones; ``migrate --sql`` prints exactly the statements it runs.
On an empty database the event table takes upstream's column order and upstream's
``trigger_set_timestamp()`` (an update that changes nothing leaves ``updated_at``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url

from eventsource import migrate
from eventsource.cli import main
from eventsource.config import make_engine
from tests.host import HOST_SCHEMA, host_database, library_role
from tests.test_schema import assert_matches_spec, fresh_pg_database, libpq_url

pytestmark = pytest.mark.postgres

UPSTREAM_COLUMNS: Final = [
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
]

# Every object of the public schema, with its owner, definition and comment; oids
# included, so an object dropped and made again shows up as a difference.
CATALOG: Final = {
    "relations": """
        SELECT c.oid::bigint, c.relname, c.relkind::text, pg_get_userbyid(c.relowner),
               c.relacl::text, obj_description(c.oid, 'pg_class')
        FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace ORDER BY 2""",
    "columns": """
        SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod),
               a.attnotnull, pg_get_expr(d.adbin, d.adrelid), col_description(c.oid, a.attnum),
               a.attacl::text
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY 1, 2""",
    "constraints": """
        SELECT con.oid::bigint, c.relname, con.conname, pg_get_constraintdef(con.oid)
        FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
        WHERE c.relnamespace = 'public'::regnamespace ORDER BY 2, 3""",
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'public' ORDER BY 1, 2""",
    "triggers": """
        SELECT t.oid::bigint, c.relname, t.tgname, pg_get_triggerdef(t.oid)
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal ORDER BY 2, 3""",
    "functions": """
        SELECT p.oid::bigint, p.proname, pg_get_userbyid(p.proowner), p.prosrc
        FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace ORDER BY 2, 3""",
    "types": """
        SELECT t.oid::bigint, t.typname, pg_get_userbyid(t.typowner),
               array(SELECT e.enumlabel::text FROM pg_enum e
                     WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
        FROM pg_type t WHERE t.typnamespace = 'public'::regnamespace AND t.typtype = 'e'
        ORDER BY 2""",
    "extensions": "SELECT e.oid::bigint, e.extname, e.extversion FROM pg_extension e ORDER BY 2",
}


def catalog(conninfo: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return {key: conn.execute(query).fetchall() for key, query in CATALOG.items()}


def ours(name: str) -> bool:
    return name.startswith("eventsource_")


def host_part(dump: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """The catalog without the library's own objects (named ``eventsource_*``)."""
    name_at = {"columns": 0, "indexes": 0, "constraints": 1, "triggers": 1}
    out = {}
    for key, rows in dump.items():
        at = name_at.get(key, 1)
        out[key] = [row for row in rows if not ours(str(row[at]))]
    return out


@pytest.fixture
def host() -> Iterator[str]:
    with host_database() as url:
        yield url


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def statements_of(engine: Engine) -> list[str]:
    """Record every statement ``engine`` sends from now on."""
    sent: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    return sent


def normalized(statement: str) -> str:
    return " ".join(statement.split()).rstrip(";")


MIGRATION_STATEMENT: Final = re.compile(r"^(DO|CREATE|COMMENT|ALTER|GRANT|DROP|INSERT|UPDATE)\b")


def printed_statements(script: str) -> list[str]:
    """The statements of ``migrate --sql`` output (PostgreSQL: ``;`` then a blank
    line; Alembic's ``-- Running upgrade`` notes left out)."""
    chunks = re.split(r";\s*\n\s*\n", re.sub(r"(?m)^-- Running upgrade .*$", "", script))
    return [normalized(c) for c in chunks if MIGRATION_STATEMENT.match(c.strip())]


def test_migrate_runs_as_a_role_owning_only_its_own_objects_and_leaves_the_host_alone(
    host: str,
) -> None:
    conninfo = libpq_url(host)
    before = catalog(conninfo)
    with library_role(host) as role_url:
        result = run("migrate", "--database-url", role_url)
        assert result.exit_code == 0, result.output
        assert f"-> {migrate.head_revision()}" in result.stdout

        after = catalog(conninfo)
        assert host_part(after) == host_part(before)
        assert_matches_spec(conninfo)  # the host's own event table, as the spec has it

        name = make_url(role_url).username
        owned = [row[1] for row in after["relations"] if row[3] == name]
        assert owned
        assert all(ours(relation) for relation in owned), owned
        functions = [row[1] for row in after["functions"] if row[2] == name]
        assert sorted(functions) == [
            "eventsource_lock_events",
            "eventsource_mark_stale",
            "eventsource_notify_plan_changes",
            "eventsource_restore",
            "eventsource_soft_delete",
        ]
        assert not [row for row in after["types"] if row[2] == name]
        assert {row[1] for row in after["relations"] if not ours(row[1])} == {
            row[1] for row in before["relations"]
        }

        again = run("migrate", "--database-url", role_url)
        assert again.exit_code == 0, again.output
        assert "nothing to do" in again.stdout
        assert catalog(conninfo) == after


def test_migrate_sql_prints_exactly_what_migrate_runs_on_a_host_database(host: str) -> None:
    with library_role(host) as role_url:
        printed = run("migrate", "--sql", "--database-url", role_url)
        assert printed.exit_code == 0, printed.output
        engine = make_engine(role_url)
        try:
            sent = statements_of(engine)
            migrate.upgrade(engine)
        finally:
            engine.dispose()
    ran = [normalized(s) for s in sent if MIGRATION_STATEMENT.match(s.strip())]
    shown = printed_statements(printed.stdout)
    # The migrations' own statements, in order, and the version bookkeeping.
    assert [s for s in ran if "eventsource_alembic_version" not in s] == [
        s for s in shown if "eventsource_alembic_version" not in s
    ]
    # Create, insert, then one update per later revision (they are numbered 0001, 0002, ...).
    assert sum("eventsource_alembic_version" in s for s in shown) == 1 + int(
        migrate.head_revision()
    )
    assert any(s.startswith("CREATE TABLE eventsource_alembic_version") for s in ran)
    # On the host, every block that would create a host object finds it and does
    # nothing: what the printed text holds for them is a check, not an act.
    blocks = [s for s in shown if s.startswith("DO $$ BEGIN IF ") and "eventsource_" not in s]
    assert len(blocks) == 5
    for block in blocks:
        assert " IS NULL THEN " in block


def test_a_standalone_event_table_has_upstreams_column_order_and_trigger() -> None:
    with fresh_pg_database("eventsource_standalone") as url, host_database() as host_url:
        engine = make_engine(url)
        try:
            migrate.upgrade(engine)
        finally:
            engine.dispose()
        conninfo, host_conninfo = libpq_url(url), libpq_url(host_url)
        assert_matches_spec(conninfo)  # still the spec's table, row by row
        mine, theirs = catalog(conninfo), catalog(host_conninfo)

        def event_table(dump: dict[str, list[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
            return [row[1:] for row in dump["columns"] if row[0] == "course_designer_plan_events"]

        assert [row[1] for row in event_table(mine)] == UPSTREAM_COLUMNS
        assert event_table(mine) == event_table(theirs)  # types, defaults, comments too
        for key in ("indexes", "triggers", "constraints"):
            start = 0 if key == "indexes" else 1
            assert [r[start:] for r in mine[key] if "course_designer_plan_events" in str(r)] == [
                r[start:] for r in theirs[key] if "course_designer_plan_events" in str(r)
            ], key

        def body(dump: dict[str, list[tuple[Any, ...]]]) -> str:
            (found,) = [row[3] for row in dump["functions"] if row[1] == "trigger_set_timestamp"]
            return " ".join(str(found).split())

        assert "IF row(NEW.*) IS DISTINCT FROM row(OLD.*) THEN" in body(mine)
        assert body(mine) == body(theirs)

        with psycopg.connect(conninfo) as conn:
            user, plan = uuid.uuid4(), uuid.uuid4()
            conn.execute("INSERT INTO users (id) VALUES (%s)", (user,))
            conn.execute(
                "INSERT INTO course_designer_plans (id, created_by_user_id) VALUES (%s, %s)",
                (plan, user),
            )
            (event_id,) = conn.execute(
                "INSERT INTO course_designer_plan_events (course_designer_plan_id, event_type,"
                " updated_at) VALUES (%s, 'plan_created', '2000-01-01T00:00:00Z') RETURNING id",
                (plan,),
            ).fetchone() or (None,)
            conn.commit()
            # Setting what is already there is no change: updated_at stays.
            unchanged = conn.execute(
                "UPDATE course_designer_plan_events SET deleted_at = deleted_at WHERE id = %s"
                " RETURNING updated_at = '2000-01-01T00:00:00Z'",
                (event_id,),
            ).fetchone()
            assert unchanged == (True,)
            changed = conn.execute(
                "UPDATE course_designer_plan_events SET deleted_at = now() WHERE id = %s"
                " RETURNING updated_at = now()",
                (event_id,),
            ).fetchone()
            assert changed == (True,)


def test_on_sqlite_the_event_table_has_upstreams_order_and_a_no_op_update_keeps_updated_at(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'order.sqlite3'}")
    try:
        migrate.upgrade(engine)
        with engine.begin() as conn:
            columns = [
                row[1]
                for row in conn.exec_driver_sql("PRAGMA table_info(course_designer_plan_events)")
            ]
            assert columns == UPSTREAM_COLUMNS
            user, plan, ident = (str(uuid.uuid4()) for _ in range(3))
            conn.execute(text("INSERT INTO users (id) VALUES (:u)"), {"u": user})
            conn.execute(
                text("INSERT INTO course_designer_plans (id, created_by_user_id) VALUES (:p, :u)"),
                {"p": plan, "u": user},
            )
            old = "2000-01-01T00:00:00.000000Z"
            conn.execute(
                text(
                    "INSERT INTO course_designer_plan_events (id, course_designer_plan_id,"
                    " event_type, updated_at) VALUES (:i, :p, 'plan_created', :old)"
                ),
                {"i": ident, "p": plan, "old": old},
            )
            conn.execute(
                text(
                    "UPDATE course_designer_plan_events SET event_type = event_type WHERE id = :i"
                ),
                {"i": ident},
            )
            stamp = "SELECT updated_at FROM course_designer_plan_events WHERE id = :i"
            assert conn.execute(text(stamp), {"i": ident}).scalar_one() == old
            conn.execute(
                text("UPDATE course_designer_plan_events SET deleted_at = :old WHERE id = :i"),
                {"i": ident, "old": old},
            )
            assert conn.execute(text(stamp), {"i": ident}).scalar_one() > old
    finally:
        engine.dispose()


def test_stand_ins_are_marked_as_the_librarys_own_and_a_hosts_tables_are_not(host: str) -> None:
    query = (
        "SELECT relname, obj_description(oid, 'pg_class') FROM pg_class"
        " WHERE relname IN ('users', 'course_designer_plans') ORDER BY 1"
    )
    with fresh_pg_database("eventsource_standalone") as url:
        engine = make_engine(url)
        try:
            migrate.upgrade(engine)
        finally:
            engine.dispose()
        with psycopg.connect(libpq_url(url)) as conn:
            marks = conn.execute(query).fetchall()
    assert [name for name, _ in marks] == ["course_designer_plans", "users"]
    assert all(str(comment).startswith("eventsource stand-in") for _, comment in marks)

    engine = make_engine(host)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    with psycopg.connect(libpq_url(host)) as conn:
        host_marks: dict[str, str | None] = dict(conn.execute(query).fetchall())
    assert host_marks == {
        "course_designer_plans": "A collaborative plan used to design a MOOC course over "
        "multiple months.",
        "users": None,
    }


def test_migrating_the_library_first_is_what_the_hosts_migrations_trip_over() -> None:
    """Why the README says: host migrations first, then the library's."""
    with fresh_pg_database("eventsource_first") as url:
        engine = make_engine(url)
        try:
            migrate.upgrade(engine)
        finally:
            engine.dispose()
        with (
            pytest.raises(psycopg.errors.DuplicateTable) as failed,
            psycopg.connect(libpq_url(url), autocommit=True) as conn,
        ):
            conn.execute(HOST_SCHEMA.read_bytes())
        assert failed.value.diag.message_primary == 'relation "users" already exists'
