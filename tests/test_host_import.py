"""No surprise writes into a host: ``import --create-parents`` and the host's tables.

``--create-parents`` inserts minimal users and plans only into the stand-ins that
``eventsource migrate`` created (they carry its mark); a host's own tables are left
alone unless the import is told otherwise (``--allow-host-parents``), and the
refusal says why.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, text

from eventsource import EventStore, migrate
from eventsource.cli import main
from eventsource.config import make_engine
from eventsource.errors import HostParentsRefused
from eventsource.events import RecordedEvent
from eventsource.jsonl import dumps_row, event_to_row
from eventsource.transfer import STAND_IN_MARK, import_events
from tests.host import Upstream, host_database
from tests.test_schema import libpq_url

T0 = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)


def line(plan: uuid.UUID, actor: uuid.UUID | None, event_type: str = "plan_created") -> str:
    event = RecordedEvent(
        uuid.uuid4(), plan, event_type, {"name": "Imported"}, None, actor, T0, T0, T0, None
    )
    return dumps_row(event_to_row(event))


def run_import(url: str, path: Path, *flags: str) -> Result:
    return CliRunner().invoke(main, ["import", "--database-url", url, *flags, str(path)])


def counts(url: str) -> tuple[int, int, int]:
    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM course_designer_plans),"
            " (SELECT count(*) FROM course_designer_plan_events)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def test_stand_ins_take_parent_rows_on_every_backend(engine: Engine) -> None:
    store = EventStore(engine)
    plan, actor = uuid.uuid4(), uuid.uuid4()
    result = import_events(store, [line(plan, actor)], create_parents=True)
    assert (result.inserted, result.users_created, result.plans_created) == (1, 1, 1)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM course_designer_plans")).scalar_one() == 1
        if engine.dialect.name == "sqlite":
            note = conn.execute(
                text("SELECT sql FROM sqlite_master WHERE name = 'course_designer_plans'")
            ).scalar_one()
        else:
            note = conn.execute(
                text("SELECT obj_description('course_designer_plans'::regclass, 'pg_class')")
            ).scalar_one()
    assert STAND_IN_MARK in note


@pytest.fixture
def host_url() -> Iterator[str]:
    with host_database() as url:
        engine = make_engine(url)
        try:
            migrate.upgrade(engine)
        finally:
            engine.dispose()
        yield url


@pytest.mark.postgres
def test_create_parents_refuses_to_write_into_the_hosts_tables_and_says_why(
    host_url: str, tmp_path: Path
) -> None:
    upstream = Upstream(host_url)
    try:
        member = upstream.create_user()
    finally:
        upstream.close()
    missing_plan = uuid.uuid4()
    path = tmp_path / "events.jsonl"
    path.write_text(line(missing_plan, member) + "\n", encoding="utf-8")
    before = counts(host_url)

    refused = run_import(host_url, path, "--create-parents")
    assert refused.exit_code == 1
    (message,) = refused.stderr.splitlines()
    assert f"line 1: course_designer_plan_id {missing_plan} does not exist" in message
    assert "course_designer_plans here is the host service's own table" in message
    assert "--allow-host-parents" in message
    assert counts(host_url) == before  # nothing written, not even the event

    store = EventStore(make_engine(host_url))
    try:
        with pytest.raises(HostParentsRefused) as info:
            import_events(store, [line(missing_plan, member)], create_parents=True)
        assert (info.value.table, info.value.field) == (
            "course_designer_plans",
            "course_designer_plan_id",
        )
        # Told to, it inserts the minimal plan row (the host's defaults fill the rest).
        result = import_events(
            store, [line(missing_plan, member)], create_parents=True, allow_host_parents=True
        )
        assert (result.inserted, result.plans_created, result.users_created) == (1, 1, 0)
    finally:
        store.close()
    with psycopg.connect(libpq_url(host_url)) as conn:
        assert conn.execute(
            "SELECT created_by_user_id, status::text FROM course_designer_plans WHERE id = %s",
            (missing_plan,),
        ).fetchone() == (member, "draft")


@pytest.mark.postgres
def test_a_missing_actor_is_refused_too_and_the_hosts_own_rules_still_hold(
    host_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(line(uuid.uuid4(), uuid.uuid4()) + "\n", encoding="utf-8")
    before = counts(host_url)
    refused = run_import(host_url, path, "--create-parents")
    assert refused.exit_code == 1
    assert "users here is the host service's own table" in refused.stderr
    # Allowed anyway, the host's users table wants more than an id: a one-line
    # error, and the whole import rolled back.
    forced = run_import(host_url, path, "--create-parents", "--allow-host-parents")
    assert forced.exit_code == 1
    assert len(forced.stderr.splitlines()) == 1
    assert "refused the value" in forced.stderr
    assert counts(host_url) == before


@pytest.mark.postgres
def test_an_import_that_needs_no_parent_rows_runs_beside_a_host(
    host_url: str, tmp_path: Path
) -> None:
    upstream = Upstream(host_url)
    try:
        owner = upstream.create_user()
        plan = upstream.create_plan(owner, "Exists")
    finally:
        upstream.close()
    path = tmp_path / "events.jsonl"
    path.write_text(line(plan.plan_id, owner, "comment_added") + "\n", encoding="utf-8")
    result = run_import(host_url, path, "--create-parents")
    assert result.exit_code == 0, result.output
    assert "1 inserted" in result.stdout
    assert "created 0 users and 0 plans" in result.stdout
