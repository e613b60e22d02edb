"""Least privilege and untrusted strings.

On PostgreSQL, ``migrate --create-roles`` creates ``eventsource_writer`` (insert,
read, set ``deleted_at``; maintain the engine's own tables) and
``eventsource_reader`` (read only); sessions here ``SET ROLE`` to them and find
that the writer cannot change a payload or delete a row and the reader cannot
write at all. On both backends, SQL-injection shaped event types, payload keys and
values are stored and read back verbatim, and such strings as plan ids on the
command line are refused without touching a table.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any
from uuid import UUID

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, event, func, inspect, select, text
from sqlalchemy.exc import DBAPIError

from eventsource import EventStore, roles
from eventsource.backend import translated
from eventsource.cli import main
from eventsource.config import make_engine
from eventsource.errors import PermissionDenied
from eventsource.events import NewEvent
from eventsource.jsonl import dumps_row, event_to_row
from eventsource.tables import events, metadata
from eventsource.transfer import export_rows, import_events
from projections.engine import ProjectionEngine
from projections.worker import Worker, reconcile
from tests.conftest import create_pg_schema, drop_pg_schema, make_plan, pg_schema_url
from tests.test_worker import (
    LEDGER,
    Ledger,
    assert_snapshots_are_fresh_folds,
    note,
    queued,
)

Plan = tuple[UUID, UUID]

HOSTILE = (
    "x'); DROP TABLE course_designer_plan_events; --",
    'plan"; DELETE FROM users; --',
    "' OR '1'='1",
    "1; UPDATE course_designer_plan_events SET payload = '{}'",
    "$$; DROP TABLE users; $$",
    "$tag$ DROP SCHEMA public CASCADE $tag$",
    ":id",
    "%(id)s %s %%",
    "\\'; SELECT pg_sleep(10); --",
    "Robert'); DROP TABLE eventsource_snapshots;--",
    "payload->>'n' = 'x' OR TRUE",
    "); ATTACH DATABASE '/tmp/pwned.db' AS pwned; --",
    "`\"]}{[' ; \\\\ ;",
    "ünïcödé '’‘ ;--",
)


# -- least privilege (PostgreSQL) --------------------------------------------------


@pytest.fixture
def roled() -> Iterator[str]:
    """A schema migrated with ``--create-roles``: its URL (the owner's session)."""
    schema = create_pg_schema()
    url = pg_schema_url(schema)
    try:
        result = CliRunner().invoke(main, ["migrate", "--create-roles", "--database-url", url])
        assert result.exit_code == 0, result.output
        assert f"roles {roles.WRITER} and {roles.READER} are in place" in result.output
        yield url
    finally:
        drop_pg_schema(schema)


def role_engine(url: str, role: str) -> Engine:
    """An engine whose every session runs as ``role`` (SET ROLE)."""
    engine = make_engine(url)

    @event.listens_for(engine, "connect")
    def _set_role(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET ROLE {role}")
        dbapi_connection.commit()

    return engine


def insert_sql(plan_id: UUID, actor: UUID, event_type: str = "note_added") -> Any:
    return text(
        "INSERT INTO course_designer_plan_events "
        "(course_designer_plan_id, actor_user_id, event_type, payload) "
        "VALUES (:plan, :actor, :type, CAST(:payload AS jsonb)) RETURNING id"
    ).bindparams(plan=plan_id, actor=actor, type=event_type, payload='{"n": 1}')


def denied(engine: Engine, sql: str, params: dict[str, Any] | None = None) -> None:
    """``sql`` fails with insufficient_privilege, raw and through the store boundary."""
    with pytest.raises(DBAPIError) as raw, engine.begin() as connection:
        connection.execute(text(sql), params or {})
    assert isinstance(raw.value.orig, psycopg.errors.InsufficientPrivilege), raw.value
    with pytest.raises(PermissionDenied, match="42501"), translated(), engine.begin() as conn:
        conn.execute(text(sql), params or {})


def stored_rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                select(
                    events.c.id,
                    events.c.event_type,
                    events.c.payload,
                    events.c.occurred_at,
                    events.c.created_at,
                    events.c.deleted_at,
                ).order_by(events.c.id)
            )
        ]


@pytest.mark.postgres
def test_create_roles_is_idempotent_and_its_sql_runs_as_printed(roled: str) -> None:
    runner = CliRunner()
    again = runner.invoke(main, ["migrate", "--create-roles", "--database-url", roled])
    assert again.exit_code == 0, again.output
    assert "nothing to do" in again.output

    printed = runner.invoke(main, ["migrate", "--create-roles", "--sql", "--database-url", roled])
    assert printed.exit_code == 0, printed.output
    role_sql = printed.output[printed.output.index(f"DO $$ BEGIN CREATE ROLE {roles.WRITER}") :]
    # A host runs the printed DDL in another schema of its own: it must be valid as is.
    schema = create_pg_schema()
    try:
        url = pg_schema_url(schema)
        engine = make_engine(url)
        result = runner.invoke(main, ["migrate", "--database-url", url])
        assert result.exit_code == 0, result.output
        with engine.begin() as connection:
            # As psql would send it: no parameters, so no placeholder parsing.
            driver = connection.connection.driver_connection
            assert driver is not None
            driver.execute(role_sql)
            granted = connection.execute(
                text(
                    "SELECT has_schema_privilege(:w, current_schema(), 'USAGE'),"
                    " has_table_privilege(:w, 'course_designer_plan_events', 'INSERT'),"
                    " has_table_privilege(:w, 'course_designer_plan_events', 'UPDATE'),"
                    " has_column_privilege(:w, 'course_designer_plan_events', 'deleted_at',"
                    "   'UPDATE'),"
                    " has_column_privilege(:w, 'course_designer_plan_events', 'payload',"
                    "   'UPDATE'),"
                    " has_table_privilege(:w, 'course_designer_plan_events', 'DELETE'),"
                    " has_table_privilege(:r, 'course_designer_plan_events', 'SELECT'),"
                    " has_table_privilege(:r, 'course_designer_plan_events', 'INSERT'),"
                    " has_table_privilege(:r, 'eventsource_snapshots', 'UPDATE')"
                ),
                {"w": roles.WRITER, "r": roles.READER},
            ).one()
        engine.dispose()
        assert tuple(granted) == (True, True, False, True, False, False, True, False, False)
    finally:
        drop_pg_schema(schema)


@pytest.mark.postgres
def test_the_writer_role_appends_soft_deletes_and_folds_through_the_library(roled: str) -> None:
    owner = make_engine(roled)
    writer = role_engine(roled, roles.WRITER)
    try:
        with writer.connect() as connection:
            assert connection.execute(text("SELECT current_user")).scalar_one() == roles.WRITER
        plan_id, actor = make_plan(owner)  # the host's parent rows
        store = EventStore(writer)
        result = store.append(plan_id, [note(1, actor_user_id=actor), note(2), note(3)])
        assert store.soft_delete(result.event_ids[1])
        assert store.restore(result.event_ids[1])
        assert store.soft_delete(result.event_ids[2])
        assert set(queued(store)) == {plan_id}
        assert Worker(store, [LEDGER]).drain() == 1
        assert_snapshots_are_fresh_folds(store, [LEDGER], [plan_id])
        ProjectionEngine(store).replay(LEDGER, [plan_id])
        assert reconcile(store, [LEDGER]) == []
        with writer.begin() as connection:
            connection.execute(insert_sql(plan_id, actor))
        assert store.version(plan_id) == 4
    finally:
        writer.dispose()
        owner.dispose()


@pytest.mark.postgres
def test_the_writer_role_cannot_change_a_payload_or_any_other_column_nor_delete(
    roled: str,
) -> None:
    owner = make_engine(roled)
    writer = role_engine(roled, roles.WRITER)
    try:
        plan_id, actor = make_plan(owner)
        store = EventStore(writer)
        event_id = store.append(plan_id, [note(1, actor_user_id=actor)]).event_ids[0]
        before = stored_rows(owner)
        where = {"id": event_id}
        for sql in (
            "UPDATE course_designer_plan_events SET payload = '{\"n\": 666}' WHERE id = :id",
            "UPDATE course_designer_plan_events SET event_type = 'forged' WHERE id = :id",
            "UPDATE course_designer_plan_events SET occurred_at = now() WHERE id = :id",
            "UPDATE course_designer_plan_events SET created_at = now() WHERE id = :id",
            "UPDATE course_designer_plan_events SET actor_user_id = NULL WHERE id = :id",
            "DELETE FROM course_designer_plan_events WHERE id = :id",
        ):
            denied(writer, sql, where)
        denied(writer, "DELETE FROM course_designer_plan_events")
        denied(writer, "TRUNCATE course_designer_plan_events")
        denied(writer, "DELETE FROM users")
        denied(writer, "ALTER TABLE course_designer_plan_events DROP COLUMN payload")
        denied(writer, "DROP TABLE course_designer_plan_events")
        # Setting deleted_at is the one update allowed.
        with writer.begin() as connection:
            changed = connection.execute(
                text("UPDATE course_designer_plan_events SET deleted_at = now() WHERE id = :id"),
                where,
            ).rowcount
        assert changed == 1
        after = stored_rows(owner)
        assert [row[:5] for row in after] == [row[:5] for row in before]
        assert after[0][5] is not None
    finally:
        writer.dispose()
        owner.dispose()


@pytest.mark.postgres
def test_the_writer_role_cannot_bulk_import_which_needs_the_owner(roled: str) -> None:
    owner = make_engine(roled)
    writer = role_engine(roled, roles.WRITER)
    try:
        plan_id, _ = make_plan(owner)
        EventStore(owner).append(plan_id, [note(1)])
        lines = [dumps_row(event_to_row(e)) for e in export_rows(EventStore(owner))]
        with pytest.raises(PermissionDenied):
            import_events(EventStore(writer), lines)
    finally:
        writer.dispose()
        owner.dispose()


@pytest.mark.postgres
def test_the_reader_role_may_only_read(roled: str) -> None:
    owner = make_engine(roled)
    reader = role_engine(roled, roles.READER)
    try:
        plan_id, actor = make_plan(owner)
        owned = EventStore(owner)
        event_id = owned.append(plan_id, [note(1), note(2)]).event_ids[0]
        store = EventStore(reader)
        assert [e.payload for e in store.read(plan_id)] == [{"n": 1}, {"n": 2}]
        assert len(store.timeline(plan_id).events) == 2
        assert store.get(event_id).id == event_id
        assert ProjectionEngine(store, snapshot_every=None).load(LEDGER, plan_id).event_count == 2

        with pytest.raises(PermissionDenied):
            store.append(plan_id, [note(3)])
        with pytest.raises(PermissionDenied):
            store.soft_delete(event_id)
        with pytest.raises(PermissionDenied):
            Worker(store, [LEDGER]).run_batch()
        with pytest.raises(PermissionDenied):
            ProjectionEngine(store).snapshot(LEDGER, plan_id)
        with pytest.raises(DBAPIError) as raw, reader.begin() as connection:
            connection.execute(insert_sql(plan_id, actor))
        assert isinstance(raw.value.orig, psycopg.errors.InsufficientPrivilege)
        denied(
            reader,
            "UPDATE course_designer_plan_events SET deleted_at = now() WHERE id = :id",
            {"id": event_id},
        )
        denied(reader, "DELETE FROM eventsource_plan_changes")
        denied(reader, "INSERT INTO eventsource_snapshots (plan_id) VALUES (gen_random_uuid())")
        assert owned.version(plan_id) == 2
        assert set(queued(owned)) == {plan_id}
    finally:
        reader.dispose()
        owner.dispose()


# -- untrusted strings (both backends) --------------------------------------------


def table_census(engine: Engine) -> dict[str, int]:
    """Every table and its row count."""
    with engine.connect() as connection:
        names = sorted(inspect(connection).get_table_names())
        return {
            name: int(
                connection.execute(select(func.count()).select_from(metadata.tables[name])).scalar()
                or 0
            )
            if name in metadata.tables
            else -1
            for name in names
        }


def test_injection_shaped_event_types_payload_keys_and_values_are_stored_verbatim(
    store: EventStore, engine: Engine, plan: Plan
) -> None:
    plan_id, actor = plan
    payload: dict[str, Any] = {text_: text_ for text_ in HOSTILE}
    payload["nested"] = {"list": list(HOSTILE), HOSTILE[0]: {HOSTILE[1]: HOSTILE[2]}}
    batch = [NewEvent(text_, payload, actor_user_id=actor) for text_ in HOSTILE]
    census = table_census(engine)

    result = store.append(plan_id, batch)
    assert result.appended == len(HOSTILE)
    read = list(store.read(plan_id))
    assert [e.event_type for e in read] == list(HOSTILE)
    assert all(e.payload == payload for e in read)
    for event_id, text_ in zip(result.event_ids, HOSTILE, strict=True):
        stored = store.get(event_id)
        assert stored.event_type == text_
        assert stored.payload == payload
    # Raw rows, not only the library's reading of them.
    with engine.connect() as connection:
        raw = connection.execute(
            select(events.c.event_type, events.c.payload).where(
                events.c.course_designer_plan_id == plan_id
            )
        ).all()
    assert sorted(row.event_type for row in raw) == sorted(HOSTILE)
    assert all(row.payload == payload for row in raw)

    # Re-sending is recognised by content, and queries by these values bind them.
    resent = replace(batch[0], id=result.event_ids[0])
    assert store.append(plan_id, [resent]).appended == 0
    with engine.connect() as connection:
        for text_ in HOSTILE:
            count = connection.execute(
                select(func.count()).select_from(events).where(events.c.event_type == text_)
            ).scalar_one()
            assert count == 1

    # Soft delete, audit, export/import and folds keep them intact.
    assert store.soft_delete(result.event_ids[3])
    assert [e.event_type for e in store.audit(plan_id)] == list(HOSTILE)
    exported = [dumps_row(event_to_row(e)) for e in export_rows(store)]
    assert import_events(store, exported).unchanged == len(HOSTILE)
    ranked = RankedLedger()
    # The blocking worker folds what either face wrote.
    blocking = EventStore(engine)
    Worker(blocking, [LEDGER, ranked]).drain()
    assert_snapshots_are_fresh_folds(blocking, [LEDGER, ranked], [plan_id])
    after = table_census(engine)
    assert set(after) == set(census), "no table created or dropped"
    assert after["users"] == census["users"]
    assert after["course_designer_plans"] == census["course_designer_plans"]
    assert after["course_designer_plan_events"] == len(HOSTILE)


class RankedLedger(Ledger):
    """A projection whose tie ranks name injection-shaped event types."""

    name = "ranked_ledger"
    tie_rank: Mapping[str, int] = MappingProxyType(
        {text_: -index for index, text_ in enumerate(HOSTILE)}
    )


def test_injection_shaped_strings_through_the_cli_append_and_timeline(
    backend_url: str, store: EventStore, engine: Engine, plan: Plan
) -> None:
    plan_id, _ = plan
    runner = CliRunner()
    payload = {text_: [text_] for text_ in HOSTILE}
    for text_ in HOSTILE:
        result = runner.invoke(
            main,
            [
                "append",
                str(plan_id),
                "--database-url",
                backend_url,
                "--type",
                text_,
                "--payload",
                json.dumps(payload),
            ],
        )
        assert result.exit_code == 0, result.output
    result = runner.invoke(
        main, ["timeline", str(plan_id), "--database-url", backend_url, "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)["events"]
    assert sorted(e["event_type"] for e in shown) == sorted(HOSTILE)
    assert all(e["payload"] == payload for e in shown)
    result = runner.invoke(main, ["timeline", str(plan_id), "--database-url", backend_url])
    assert result.exit_code == 0, result.output
    assert store.version(plan_id) == len(HOSTILE)


CLI_PLAN_COMMANDS = (
    ("state", "{}"),
    ("timeline", "{}"),
    ("audit", "{}"),
    ("append", "{} --type note_added"),
    ("export", "--plan {}"),
    ("replay", "--plan {}"),
    ("verify", "--plan {}"),
    ("reconcile", "--plan {}"),
    ("delete", "{}"),
    ("restore", "{}"),
)


@pytest.mark.parametrize("hostile", [HOSTILE[0], HOSTILE[3], HOSTILE[6], HOSTILE[7]])
def test_injection_shaped_plan_ids_on_the_cli_are_refused_and_touch_nothing(
    backend_url: str, store: EventStore, engine: Engine, plan: Plan, hostile: str
) -> None:
    plan_id, _ = plan
    store.append(plan_id, [note(1), note(2)])
    census = table_census(engine)
    runner = CliRunner()
    for command, template in CLI_PLAN_COMMANDS:
        args = [command, *[hostile if part == "{}" else part for part in template.split()]]
        result = runner.invoke(main, [*args, "--database-url", backend_url])
        assert result.exit_code == 1, (command, result.output)
        assert "is not a UUID" in result.output, (command, result.output)
        assert repr(hostile) in result.output, "the input is echoed quoted, never run"
        assert "Traceback" not in result.output
    for option in ("--projection", "--run"):
        result = runner.invoke(main, ["replay", "--database-url", backend_url, option, hostile])
        if option == "--projection":
            assert result.exit_code == 1
            assert "no projection named" in result.output
        else:
            # A run name is a label stored as data: the replay works.
            assert result.exit_code == 0, result.output
            assert "rebuilt 1 plans" in result.output
    result = runner.invoke(
        main, ["timeline", str(plan_id), "--database-url", backend_url, "--before", hostile]
    )
    assert result.exit_code == 1
    assert "is not one this tool printed" in result.output
    after = table_census(engine)
    assert {k: v for k, v in after.items() if k != "eventsource_snapshots"} == {
        k: v for k, v in census.items() if k != "eventsource_snapshots"
    }
    assert [e.payload for e in store.read(plan_id)] == [{"n": 1}, {"n": 2}]
