"""Roles that cannot forge history (``migrate --create-roles``, PostgreSQL).

Each test logs in as a throwaway LOGIN role that is granted one of the four group
roles (as a deployment does: ``GRANT eventsource_writer TO my_service``), shows that
what the role is for works through the library's own API, and that every way of
rewriting history its grants could once allow fails with SQLSTATE 42501
(insufficient_privilege), raw and as :class:`PermissionDenied` at the store
boundary: a snapshot's state, ``deleted_at`` set to a past time, an event recorded
in the past (``created_at``) that ``known_at`` would serve, the retraction history
and the change feed emptied.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from eventsource import EventStore, roles
from eventsource.backend import translated
from eventsource.cli import main
from eventsource.config import make_engine
from eventsource.errors import PermissionDenied
from eventsource.events import NewEvent, RecordedEvent
from eventsource.jsonl import dumps_row, event_to_row
from eventsource.transfer import export_rows, import_events
from projections import CourseDesignerPlanProjection, InlineProjections
from projections.engine import ProjectionEngine
from projections.worker import Worker, reconcile
from tests.conftest import create_pg_schema, drop_pg_schema, make_plan, pg_schema_url
from tests.faces import BlockingAsyncStore
from tests.host import login_role
from tests.test_worker import LEDGER, assert_snapshots_are_fresh_folds, note, queued

pytestmark = pytest.mark.postgres

Y2000: Final = datetime(2000, 1, 1, tzinfo=UTC)
Y2001: Final = datetime(2001, 1, 1, tzinfo=UTC)


@pytest.fixture
def roled() -> Iterator[str]:
    """A schema migrated with ``--create-roles``: its URL (the owner's session)."""
    schema = create_pg_schema()
    url = pg_schema_url(schema)
    try:
        result = CliRunner().invoke(main, ["migrate", "--create-roles", "--database-url", url])
        assert result.exit_code == 0, result.output
        assert f"roles {', '.join(roles.ROLES)} are in place" in result.output
        yield url
    finally:
        drop_pg_schema(schema)


@pytest.fixture
def owner(roled: str) -> Iterator[Engine]:
    engine = make_engine(roled)
    yield engine
    engine.dispose()


@contextmanager
def member_of(url: str, *groups: str) -> Iterator[Engine]:
    """An engine logged in as a new LOGIN role granted ``groups`` (dropped afterwards)."""
    grants = [f"GRANT {group} TO {{}}" for group in groups]
    with login_role(url, "es_member", grants) as login:
        engine = make_engine(login)
        LOGIN_URLS[engine] = login
        try:
            name = make_url(login).username
            with engine.connect() as connection:
                assert connection.execute(text("SELECT current_user")).scalar_one() == name
                for group in groups:
                    assert connection.execute(
                        text("SELECT pg_has_role(current_user, :g, 'USAGE')"), {"g": group}
                    ).scalar_one()
            yield engine
        finally:
            LOGIN_URLS.pop(engine, None)
            engine.dispose()


LOGIN_URLS: dict[Engine, str] = {}
"""The login URL of each :func:`member_of` engine (for the asyncio face)."""


def denied(engine: Engine, sql: str, params: dict[str, Any] | None = None) -> None:
    """``sql`` fails with insufficient_privilege, raw and through the store boundary."""
    with pytest.raises(DBAPIError) as raw, engine.begin() as connection:
        connection.execute(text(sql), params or {})
    assert isinstance(raw.value.orig, psycopg.errors.InsufficientPrivilege), (sql, raw.value)
    with pytest.raises(PermissionDenied, match="42501"), translated(), engine.begin() as conn:
        conn.execute(text(sql), params or {})


def insert_sql(columns: str = "", values: str = "") -> str:
    """A raw event insert naming ``columns`` beyond the ones a writer may set."""
    names = f"course_designer_plan_id, actor_user_id, event_type, payload{columns}"
    given = f":plan, :actor, 'note_added', CAST('{{\"n\": 9}}' AS jsonb){values}"
    return f"INSERT INTO course_designer_plan_events ({names}) VALUES ({given})"  # noqa: S608


def census(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the event table and the engine's tables, in a stable order."""
    tables = {
        "events": "SELECT * FROM course_designer_plan_events ORDER BY id",
        "snapshots": "SELECT * FROM eventsource_snapshots ORDER BY plan_id, projection",
        "changes": "SELECT * FROM eventsource_plan_changes ORDER BY plan_id",
        "retractions": "SELECT * FROM eventsource_retractions ORDER BY event_id, deleted_at",
        "progress": "SELECT * FROM eventsource_replay_progress ORDER BY run, plan_id",
        "quarantine": "SELECT * FROM eventsource_quarantine ORDER BY plan_id, projection",
    }
    with engine.connect() as connection:
        return {
            name: [tuple(row) for row in connection.execute(text(sql))]
            for name, sql in tables.items()
        }


# Statements no role but the owner may run: rewriting or erasing what was recorded.
HISTORY_FORGERIES: Final = (
    "UPDATE course_designer_plan_events SET payload = '{\"n\": 666}' WHERE id = :id",
    "UPDATE course_designer_plan_events SET deleted_at = '2000-01-01T00:00:00Z' WHERE id = :id",
    "UPDATE course_designer_plan_events SET deleted_at = NULL WHERE id = :id",
    "UPDATE course_designer_plan_events SET created_at = '2000-01-01T00:00:00Z' WHERE id = :id",
    "UPDATE course_designer_plan_events SET occurred_at = now() WHERE id = :id",
    "DELETE FROM course_designer_plan_events WHERE id = :id",
    "TRUNCATE course_designer_plan_events",
    "LOCK TABLE course_designer_plan_events IN SHARE ROW EXCLUSIVE MODE",
    "INSERT INTO eventsource_retractions (plan_id, event_id, deleted_at) "
    "VALUES (gen_random_uuid(), :id, '2000-01-01T00:00:00Z')",
    "UPDATE eventsource_retractions SET deleted_at = '2000-01-01T00:00:00Z'",
    "UPDATE eventsource_retractions SET restored_at = NULL",
    "DELETE FROM eventsource_retractions",
    "TRUNCATE eventsource_retractions",
    "TRUNCATE eventsource_plan_changes",
    "TRUNCATE eventsource_snapshots",
    "DELETE FROM users",
    "ALTER TABLE course_designer_plan_events DROP COLUMN payload",
    "DROP TABLE eventsource_retractions",
)

# What only the projector may do: the served state and the workers' claims.
STATE_FORGERIES: Final = (
    "UPDATE eventsource_snapshots SET state = '{\"count\": 666}'::jsonb",
    "UPDATE eventsource_snapshots SET stale = false",
    "DELETE FROM eventsource_snapshots",
    "INSERT INTO eventsource_snapshots (plan_id, projection, projection_version, state,"
    " state_hash, event_count) VALUES (gen_random_uuid(), 'forged', 1, '{}', 'x', 0)",
    "DELETE FROM eventsource_plan_changes",
    "DELETE FROM eventsource_replay_progress",
    "INSERT INTO eventsource_replay_progress (run, plan_id) VALUES ('forged', gen_random_uuid())",
    "DELETE FROM eventsource_quarantine",
    "INSERT INTO eventsource_quarantine (plan_id, projection, projection_version, error,"
    " stream_events) VALUES (gen_random_uuid(), 'forged', 1, 'x', 0)",
)


def assert_all_denied(engine: Engine, statements: tuple[str, ...], event_id: UUID) -> None:
    for sql in statements:
        denied(engine, sql, {"id": event_id} if ":id" in sql else None)


def retractions(engine: Engine, event_id: UUID) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                text(
                    "SELECT deleted_at, restored_at FROM eventsource_retractions"
                    " WHERE event_id = :id ORDER BY deleted_at"
                ),
                {"id": event_id},
            )
        ]


def server_now(engine: Engine) -> datetime:
    with engine.connect() as connection:
        stamp: datetime = connection.execute(text("SELECT now()")).scalar_one()
    return stamp


# -- the DDL ------------------------------------------------------------------------

PRIVILEGES: Final = {
    # (check, object, privilege): writer, importer, projector, reader
    ("table", "course_designer_plan_events", "SELECT"): (True, True, True, True),
    ("table", "course_designer_plan_events", "INSERT"): (False, True, False, False),
    ("table", "course_designer_plan_events", "UPDATE"): (False, False, False, False),
    ("table", "course_designer_plan_events", "DELETE"): (False, False, False, False),
    ("table", "course_designer_plan_events", "TRUNCATE"): (False, False, False, False),
    ("column", "course_designer_plan_events.payload", "INSERT"): (True, True, False, False),
    ("column", "course_designer_plan_events.occurred_at", "INSERT"): (True, True, False, False),
    ("column", "course_designer_plan_events.created_at", "INSERT"): (False, True, False, False),
    ("column", "course_designer_plan_events.updated_at", "INSERT"): (False, True, False, False),
    ("column", "course_designer_plan_events.deleted_at", "INSERT"): (False, True, False, False),
    ("column", "course_designer_plan_events.deleted_at", "UPDATE"): (False, False, False, False),
    ("column", "course_designer_plans.updated_at", "UPDATE"): (True, False, True, False),
    ("column", "course_designer_plans.name", "UPDATE"): (False, False, False, False),
    ("table", "users", "INSERT"): (False, False, False, False),
    ("table", "eventsource_snapshots", "SELECT"): (True, True, True, True),
    ("table", "eventsource_snapshots", "UPDATE"): (False, False, True, False),
    ("column", "eventsource_snapshots.stale", "UPDATE"): (False, False, True, False),
    ("table", "eventsource_snapshots", "DELETE"): (False, False, True, False),
    ("table", "eventsource_snapshots", "TRUNCATE"): (False, False, False, False),
    ("column", "eventsource_plan_changes.plan_id", "INSERT"): (True, True, True, False),
    ("column", "eventsource_plan_changes.changed_at", "INSERT"): (False, False, True, False),
    ("column", "eventsource_plan_changes.change_seq", "UPDATE"): (True, True, True, False),
    ("table", "eventsource_plan_changes", "DELETE"): (False, False, True, False),
    ("table", "eventsource_plan_changes", "TRUNCATE"): (False, False, False, False),
    ("table", "eventsource_retractions", "SELECT"): (True, True, True, True),
    ("table", "eventsource_retractions", "INSERT"): (False, False, False, False),
    ("table", "eventsource_retractions", "UPDATE"): (False, False, False, False),
    ("table", "eventsource_retractions", "DELETE"): (False, False, False, False),
    ("table", "eventsource_replay_progress", "INSERT"): (False, False, True, False),
    ("table", "eventsource_replay_progress", "DELETE"): (False, False, True, False),
    ("table", "eventsource_quarantine", "INSERT"): (False, False, True, False),
    ("table", "eventsource_quarantine", "UPDATE"): (False, False, True, False),
    ("table", "eventsource_quarantine", "DELETE"): (False, False, True, False),
    ("function", roles.SOFT_DELETE, "EXECUTE"): (True, False, False, False),
    ("function", roles.RESTORE, "EXECUTE"): (True, False, False, False),
    ("function", roles.MARK_STALE, "EXECUTE"): (True, True, True, False),
    ("function", roles.LOCK_EVENTS, "EXECUTE"): (False, True, False, False),
}


def privileges(engine: Engine) -> dict[tuple[str, str, str], tuple[bool, ...]]:
    """What each of the four roles holds, as :data:`PRIVILEGES` lists it."""
    found = {}
    with engine.connect() as connection:
        for key in PRIVILEGES:
            kind, target, privilege = key
            if kind == "column":
                table, column = target.split(".")
                sql = "has_column_privilege(:role, :table, :column, :privilege)"
                params = {"table": table, "column": column}
            else:
                sql = f"has_{kind}_privilege(:role, :target, :privilege)"
                params = {"target": target}
            found[key] = tuple(
                bool(
                    connection.execute(
                        text(f"SELECT {sql}"), {**params, "role": role, "privilege": privilege}
                    ).scalar_one()
                )
                for role in roles.ROLES
            )
    return found


def test_create_roles_is_idempotent_tightens_old_grants_and_its_sql_runs_as_printed(
    roled: str, owner: Engine
) -> None:
    assert privileges(owner) == PRIVILEGES
    with owner.begin() as connection:
        # What the writer held before this version, and more.
        for grant in (
            "GRANT UPDATE (deleted_at) ON course_designer_plan_events TO eventsource_writer",
            "GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON eventsource_snapshots,"
            " eventsource_plan_changes, eventsource_retractions TO eventsource_writer",
            "GRANT EXECUTE ON FUNCTION eventsource_lock_events() TO eventsource_reader",
        ):
            connection.execute(text(grant))
    runner = CliRunner()
    again = runner.invoke(main, ["migrate", "--create-roles", "--database-url", roled])
    assert again.exit_code == 0, again.output
    assert "nothing to do" in again.output
    assert privileges(owner) == PRIVILEGES

    printed = runner.invoke(main, ["migrate", "--create-roles", "--sql", "--database-url", roled])
    assert printed.exit_code == 0, printed.output
    assert "CREATE OR REPLACE FUNCTION eventsource_soft_delete" in printed.output
    role_sql = printed.output[printed.output.index(f"DO $$ BEGIN CREATE ROLE {roles.WRITER}") :]
    # A host runs the printed DDL in another schema of its own: it must be valid as is.
    schema = create_pg_schema()
    try:
        url = pg_schema_url(schema)
        engine = make_engine(url)
        try:
            result = runner.invoke(main, ["migrate", "--database-url", url])
            assert result.exit_code == 0, result.output
            with engine.begin() as connection:
                # As psql would send it: no parameters, so no placeholder parsing.
                driver = connection.connection.driver_connection
                assert driver is not None
                driver.execute(role_sql)
            assert privileges(engine) == PRIVILEGES
        finally:
            engine.dispose()
    finally:
        drop_pg_schema(schema)


def test_the_history_functions_are_pinned_and_not_for_public(owner: Engine, roled: str) -> None:
    with owner.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT p.oid::regprocedure::text, p.prosecdef, p.proconfig,"
                " pg_get_userbyid(p.proowner) = current_user,"
                " has_function_privilege('public', p.oid, 'EXECUTE')"
                " FROM pg_proc AS p WHERE p.pronamespace = to_regnamespace(current_schema())"
                " AND p.prosecdef ORDER BY 1"
            )
        ).all()
    assert sorted(row[0] for row in rows) == sorted(
        name.replace(", ", ",") for name in roles.FUNCTIONS
    )
    for _, definer, config, owned, public in rows:
        assert definer
        assert owned
        assert not public
        assert config == ["search_path=pg_catalog, pg_temp"]
    # A login role with no group role may not call them.
    with owner.connect() as connection:
        schema = connection.execute(text("SELECT current_schema()")).scalar_one()
    with login_role(roled, "es_nobody", [f'GRANT USAGE ON SCHEMA "{schema}" TO {{}}']) as login:
        nobody = make_engine(login)
        try:
            plan_id, _ = make_plan(owner)
            denied(nobody, "SELECT eventsource_soft_delete(:p, :p)", {"p": plan_id})
            denied(nobody, "SELECT eventsource_lock_events()")
        finally:
            nobody.dispose()


# -- eventsource_writer --------------------------------------------------------------


def test_the_writer_appends_soft_deletes_and_restores_through_the_library(
    roled: str, owner: Engine
) -> None:
    plan_id, actor = make_plan(owner)  # the host's parent rows
    engine = ProjectionEngine(EventStore(owner))
    with member_of(roled, roles.WRITER) as writer:
        store = EventStore(writer)
        before = server_now(owner)
        first = store.append(plan_id, [note(1, actor_user_id=actor), note(2)]).event_ids
        # Caller-given ids take the statement-by-statement path; a backfill's
        # occurred_at is the writer's to give (valid time), created_at never is.
        given_id = uuid.uuid4()
        given = NewEvent("note_added", {"n": 3}, id=given_id, occurred_at=Y2000)
        assert store.append(plan_id, [given]).appended == 1
        assert store.append(plan_id, [given]).appended == 0  # a re-send is a no-op
        stored = store.get(given_id)
        assert stored.occurred_at == Y2000
        assert stored.created_at >= before
        engine.snapshot(LEDGER, plan_id)  # as the owner: a fresh snapshot to stale

        assert store.soft_delete(first[1])
        assert not store.soft_delete(first[1])
        deleted_at = store.get(first[1]).deleted_at
        assert deleted_at is not None
        assert deleted_at >= before
        snapshot = EventStore(owner).snapshot_row(plan_id, LEDGER.name)
        assert snapshot is not None
        assert snapshot.stale
        assert store.restore(first[1])
        assert not store.restore(first[1])
        assert store.get(first[1]).deleted_at is None
        [(opened, closed)] = retractions(owner, first[1])
        assert opened == deleted_at
        assert closed is not None
        assert closed >= opened

        # A deletion made outside the library (the host's SQL): restoring it keeps
        # the interval it was retracted for.
        with owner.begin() as connection:
            connection.execute(
                text("UPDATE course_designer_plan_events SET deleted_at = :t WHERE id = :id"),
                {"t": Y2001, "id": first[0]},
            )
        assert store.restore(first[0])
        [(opened, closed)] = retractions(owner, first[0])
        assert opened == Y2001
        assert closed is not None
        assert closed >= before

        # The asyncio face takes the same functions.
        face = BlockingAsyncStore(writer, LOGIN_URLS[writer])
        try:
            assert face.soft_delete(first[0])
            assert face.restore(first[0])
            assert face.append(plan_id, [note(4)]).appended == 1
        finally:
            face.close()

        assert [e.payload["n"] for e in store.read(plan_id)] == [3, 1, 2, 4]
        assert set(queued(store)) == {plan_id}
        # Not the writer's job: folding and storing snapshots.
        with pytest.raises(PermissionDenied):
            Worker(store, [LEDGER]).run_batch()
        with pytest.raises(PermissionDenied):
            ProjectionEngine(store).snapshot(LEDGER, plan_id)
        with pytest.raises(PermissionDenied):
            import_events(store, [dumps_row(event_to_row(store.get(first[0])))])
    assert set(queued(EventStore(owner))) == {plan_id}
    assert Worker(EventStore(owner), [LEDGER]).drain() == 1
    assert_snapshots_are_fresh_folds(EventStore(owner), [LEDGER], [plan_id])


def test_the_writer_cannot_forge_history_or_served_state(roled: str, owner: Engine) -> None:
    plan_id, actor = make_plan(owner)
    owned = EventStore(owner)
    event_id = owned.append(plan_id, [note(1, actor_user_id=actor), note(2)]).event_ids[0]
    ProjectionEngine(owned).snapshot(LEDGER, plan_id)
    assert owned.soft_delete(event_id)
    assert owned.restore(event_id)
    ProjectionEngine(owned).snapshot(LEDGER, plan_id)
    with member_of(roled, roles.WRITER) as writer:
        before = census(owner)
        where = {"plan": plan_id, "actor": actor}
        # Recorded in the past, so that --known-at 2001 would serve it.
        denied(writer, insert_sql(", created_at", ", '2000-01-01T00:00:00Z'"), where)
        denied(writer, insert_sql(", updated_at", ", '2000-01-01T00:00:00Z'"), where)
        denied(writer, insert_sql(", deleted_at", ", '2000-01-01T00:00:00Z'"), where)
        assert_all_denied(writer, HISTORY_FORGERIES, event_id)
        assert_all_denied(writer, STATE_FORGERIES, event_id)
        # The feed's clock is the table's: no jumping or stalling the queue.
        denied(
            writer,
            "INSERT INTO eventsource_plan_changes (plan_id, changed_at) VALUES (:p, :t)",
            {"p": uuid.uuid4(), "t": Y2000},
        )
        denied(writer, "UPDATE eventsource_plan_changes SET changed_at = :t", {"t": Y2000})
        denied(writer, "SELECT eventsource_lock_events()")
        denied(writer, "UPDATE course_designer_plans SET name = 'forged'")
        assert census(owner) == before

        # What it may do directly is what the store does, stamped by the database.
        with writer.begin() as connection:
            connection.execute(text(insert_sql()), where)
            assert connection.execute(
                text("SELECT eventsource_soft_delete(:p, :e)"), {"p": plan_id, "e": event_id}
            ).scalar_one()
            stamp = connection.execute(text("SELECT now()")).scalar_one()
        assert owned.get(event_id).deleted_at == stamp
        assert owned.version(plan_id) == 3
        assert list(owned.read(plan_id, known_at=Y2001)) == []
    after = census(owner)["retractions"]
    assert after[:-1] == before["retractions"]
    assert after[-1][2:] == (stamp, None)


def test_a_writer_session_cannot_redirect_the_functions(roled: str, owner: Engine) -> None:
    plan_id, actor = make_plan(owner)
    event_id = EventStore(owner).append(plan_id, [note(1, actor_user_id=actor)]).event_ids[0]
    with member_of(roled, roles.WRITER) as writer, writer.begin() as connection:
        # Temporary tables come first in a session's own search_path; the
        # functions' is pinned, their tables named with their schema.
        connection.execute(
            text(
                "CREATE TEMP TABLE eventsource_retractions (plan_id uuid, event_id uuid,"
                " deleted_at timestamptz, restored_at timestamptz);"
                " CREATE TEMP TABLE course_designer_plan_events (course_designer_plan_id uuid,"
                " id uuid, deleted_at timestamptz)"
            )
        )
        assert connection.execute(
            text("SELECT eventsource_soft_delete(:p, :e)"), {"p": plan_id, "e": event_id}
        ).scalar_one()
        decoy = connection.execute(text("SELECT count(*) FROM pg_temp.eventsource_retractions"))
        assert decoy.scalar_one() == 0
    assert EventStore(owner).get(event_id).deleted_at is not None
    assert len(retractions(owner, event_id)) == 1


def test_inline_projections_need_the_projector_beside_the_writer(roled: str, owner: Engine) -> None:
    plan_id, actor = make_plan(owner)
    plans = CourseDesignerPlanProjection()
    created = NewEvent("plan_created", {"name": "Databases"}, actor_user_id=actor)
    with member_of(roled, roles.WRITER) as writer:
        store = EventStore(writer)
        store.hooks.append(InlineProjections(ProjectionEngine(store), [plans]))
        with pytest.raises(PermissionDenied):
            store.append(plan_id, [created])
    with member_of(roled, roles.WRITER, roles.PROJECTOR) as service:
        store = EventStore(service)
        store.hooks.append(InlineProjections(ProjectionEngine(store), [plans]))
        store.append(plan_id, [created])
        snapshot = store.snapshot_row(plan_id, plans.name)
        assert snapshot is not None
        assert not snapshot.stale
        assert snapshot.state["name"] == "Databases"


# -- eventsource_importer ------------------------------------------------------------


def backfill(plan_id: UUID, actor: UUID) -> list[RecordedEvent]:
    """Events recorded long ago, one of them retracted since."""
    return [
        RecordedEvent(uuid.uuid4(), plan_id, "note_added", {"n": n}, None, actor, t, t, t, d)
        for n, (t, d) in enumerate(
            [(Y2000, None), (Y2000 + timedelta(days=1), Y2001), (Y2001, None)], start=1
        )
    ]


def test_the_importer_imports_backfills_with_their_timestamps(roled: str, owner: Engine) -> None:
    plan_id, actor = make_plan(owner)
    owned = EventStore(owner)
    owned.append(plan_id, [note(0, actor_user_id=actor)])
    ProjectionEngine(owned).snapshot(LEDGER, plan_id)
    rows = backfill(plan_id, actor)
    lines = [dumps_row(event_to_row(event)) for event in rows]
    with member_of(roled, roles.IMPORTER) as importer:
        store = EventStore(importer)
        result = import_events(store, lines)
        assert (result.inserted, result.plans) == (3, 1)
        assert import_events(store, lines).unchanged == 3  # a second import changes nothing
        assert [store.get(event.id) for event in rows] == rows
        as_known = [e.payload["n"] for e in store.read(plan_id, known_at=Y2000 + timedelta(days=2))]
        assert as_known == [1, 2]
        assert set(queued(store)) == {plan_id}
        snapshot = store.snapshot_row(plan_id, LEDGER.name)
        assert snapshot is not None
        assert snapshot.stale
        # Only imports: not appends, deletes, folds; nor the parents of --create-parents.
        with pytest.raises(PermissionDenied):
            store.append(plan_id, [note(9)])
        with pytest.raises(PermissionDenied):
            store.soft_delete(rows[0].id)
        with pytest.raises(PermissionDenied):
            ProjectionEngine(store).snapshot(LEDGER, plan_id)
        orphan = backfill(uuid.uuid4(), uuid.uuid4())[0]
        with pytest.raises(PermissionDenied):
            import_events(store, [dumps_row(event_to_row(orphan))], create_parents=True)
        before = census(owner)
        assert_all_denied(importer, HISTORY_FORGERIES, rows[0].id)
        assert_all_denied(importer, STATE_FORGERIES, rows[0].id)
        denied(importer, "SELECT eventsource_soft_delete(:p, :e)", {"p": plan_id, "e": rows[0].id})
        denied(importer, "SELECT eventsource_restore(:p, :e)", {"p": plan_id, "e": rows[1].id})
        assert census(owner) == before
    assert Worker(owned, [LEDGER]).drain() == 1
    assert_snapshots_are_fresh_folds(owned, [LEDGER], [plan_id])


def test_an_owner_still_imports_by_locking_the_table_itself(pg: tuple[str, EventStore]) -> None:
    _, store = pg
    plan_id, actor = make_plan(store.engine)
    rows = backfill(plan_id, actor)
    assert import_events(store, [dumps_row(event_to_row(event)) for event in rows]).inserted == 3
    assert list(export_rows(store)) == rows


# -- eventsource_projector -----------------------------------------------------------


def test_the_projector_folds_snapshots_workers_replays_and_quarantines(
    roled: str, owner: Engine
) -> None:
    plan_id, actor = make_plan(owner)
    other, _ = make_plan(owner)
    owned = EventStore(owner)
    ids = owned.append(plan_id, [note(1, actor_user_id=actor), note(2)]).event_ids
    owned.append(other, [note(1)])
    with member_of(roled, roles.PROJECTOR) as projector:
        store = EventStore(projector)
        engine = ProjectionEngine(store)
        assert engine.snapshot(LEDGER, plan_id).event_count == 2
        assert Worker(store, [LEDGER]).drain() == 2
        assert queued(store) == {}
        assert_snapshots_are_fresh_folds(store, [LEDGER], [plan_id, other])
        report = engine.replay(LEDGER, [plan_id, other], run="roles")
        assert report.run == "roles"
        with owner.begin() as connection:  # the host's own SQL, behind the feed's back
            connection.execute(
                text("UPDATE course_designer_plan_events SET deleted_at = now() WHERE id = :id"),
                {"id": ids[0]},
            )
        assert [finding.plan_id for finding in reconcile(store, [LEDGER])] == [plan_id]
        assert store.requeue([other]) == 1
        assert Worker(store, [LEDGER]).drain() == 2
        assert_snapshots_are_fresh_folds(store, [LEDGER], [plan_id, other])
        with projector.begin() as connection:
            params = {"p": plan_id, "e": ids[1]}
            connection.execute(
                text(
                    "INSERT INTO eventsource_quarantine (plan_id, projection, projection_version,"
                    " event_id, event_type, error, stream_events)"
                    " VALUES (:p, 'ledger', 1, :e, 'note_added', 'boom', 2)"
                ),
                params,
            )
            connection.execute(
                text(
                    "UPDATE eventsource_quarantine SET attempts = attempts + 1, last_seen = now()"
                    " WHERE plan_id = :p"
                ),
                params,
            )
            connection.execute(
                text("DELETE FROM eventsource_quarantine WHERE plan_id = :p"), params
            )

        # It folds what was written; it writes nothing of the log.
        with pytest.raises(PermissionDenied):
            store.append(plan_id, [note(3)])
        with pytest.raises(PermissionDenied):
            store.soft_delete(ids[1])
        with pytest.raises(PermissionDenied):
            import_events(store, [dumps_row(event_to_row(owned.get(ids[1])))])
        before = census(owner)
        denied(projector, insert_sql(), {"plan": plan_id, "actor": actor})
        assert_all_denied(projector, HISTORY_FORGERIES, ids[1])
        denied(projector, "SELECT eventsource_soft_delete(:p, :e)", {"p": plan_id, "e": ids[1]})
        assert census(owner) == before


# -- eventsource_reader --------------------------------------------------------------


def test_the_reader_may_only_read(roled: str, owner: Engine) -> None:
    plan_id, actor = make_plan(owner)
    owned = EventStore(owner)
    ids = owned.append(plan_id, [note(1, actor_user_id=actor), note(2)]).event_ids
    ProjectionEngine(owned).snapshot(LEDGER, plan_id)
    with member_of(roled, roles.READER) as reader:
        store = EventStore(reader)
        assert [e.payload for e in store.read(plan_id)] == [{"n": 1}, {"n": 2}]
        assert len(store.timeline(plan_id).events) == 2
        assert len(list(store.audit(plan_id))) == 2
        assert store.get(ids[0]).id == ids[0]
        assert list(store.plan_ids()) == [plan_id]
        loaded = ProjectionEngine(store, snapshot_every=None).load(LEDGER, plan_id)
        assert loaded.event_count == 2
        assert loaded.from_snapshot
        assert store.version(plan_id) == 2
        assert len(list(export_rows(store))) == 2

        with pytest.raises(PermissionDenied):
            store.append(plan_id, [note(3)])
        with pytest.raises(PermissionDenied):
            store.soft_delete(ids[0])
        with pytest.raises(PermissionDenied):
            Worker(store, [LEDGER]).run_batch()
        with pytest.raises(PermissionDenied):
            ProjectionEngine(store).snapshot(LEDGER, plan_id)
        with pytest.raises(PermissionDenied):
            import_events(store, [dumps_row(event_to_row(owned.get(ids[0])))])
        before = census(owner)
        denied(reader, insert_sql(), {"plan": plan_id, "actor": actor})
        assert_all_denied(reader, HISTORY_FORGERIES, ids[0])
        assert_all_denied(reader, STATE_FORGERIES, ids[0])
        denied(reader, "SELECT eventsource_mark_stale(:p, NULL)", {"p": plan_id})
        assert census(owner) == before
    assert owned.version(plan_id) == 2
    assert set(queued(owned)) == {plan_id}
