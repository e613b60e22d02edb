"""``eventsource host-drift``: rebuilt plans against the host's own tables.

Plans are written the way the service writes them (``tests/host.py``) into the
host-schema fixture; the audit runs as a role that may only read the host's plan
and stage tables and the events. After the service's lifecycles every field
agrees; a tampered row is reported, plan and field; plans the host deleted, plans
with no events and stage rows the host soft-deleted are handled.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final

import orjson
import psycopg
import pytest
from click.testing import CliRunner, Result

from eventsource import EventStore, migrate
from eventsource.cli import main
from eventsource.config import make_engine
from projections import host_drift
from tests.host import (
    HostPlan,
    Upstream,
    five_lifecycles,
    host_database,
    library_role,
    login_role,
    suggested,
)
from tests.test_schema import libpq_url

pytestmark = pytest.mark.postgres

READ_HOST: Final = (
    "GRANT USAGE ON SCHEMA public TO {}",
    "GRANT SELECT ON course_designer_plans, course_designer_plan_stages,"
    " course_designer_plan_events TO {}",
)


@dataclass
class Host:
    url: str
    reader_url: str
    upstream: Upstream
    plans: list[HostPlan]

    def sql(self, statement: str, *params: Any) -> None:
        with psycopg.connect(libpq_url(self.url), autocommit=True) as conn:
            conn.execute(statement, params)


@pytest.fixture
def host() -> Iterator[Host]:
    with host_database() as url, library_role(url) as role_url:
        engine = make_engine(role_url)
        try:
            migrate.upgrade(engine)
        finally:
            engine.dispose()
        upstream = Upstream(url)
        try:
            plans = five_lifecycles(upstream)
            with login_role(url, "eventsource_audit", READ_HOST) as reader_url:
                yield Host(url, reader_url, upstream, plans)
        finally:
            upstream.close()


def drift(host: Host, *args: str) -> Result:
    return CliRunner().invoke(main, ["host-drift", "--database-url", host.reader_url, *args])


def drift_json(host: Host, *args: str) -> tuple[int, dict[str, Any]]:
    result = drift(host, "--format", "json", *args)
    assert result.exit_code in (0, 3), result.output
    return result.exit_code, orjson.loads(result.stdout)


def test_after_the_services_lifecycles_every_field_agrees(host: Host) -> None:
    result = drift(host)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(
        "checked 5 plans against the host's tables (times within 1s): every field agrees"
    )
    code, report = drift_json(host)
    assert code == 0
    assert (report["plans"], report["drifting"], report["drift"]) == (5, 0, [])
    lines = drift(host, "--format", "jsonl").stdout.splitlines()
    records = [orjson.loads(line) for line in lines]
    assert sorted(r["plan_id"] for r in records) == sorted(str(p.plan_id) for p in host.plans)
    assert not any(r["drifts"] for r in records)


def test_without_a_tolerance_only_the_gap_the_events_cannot_close_shows(host: Host) -> None:
    """The service stamps advances with its clock after the lock, a moment after the
    transaction began (``occurred_at``); the finalize's ``activated_at`` is exact."""
    code, report = drift_json(host, "--tolerance", "0")
    assert code == 3
    differences = [d for plan in report["drift"] for d in plan["differences"]]
    assert differences
    for d in differences:
        assert d["table"] == "course_designer_plan_stages"
        assert d["field"] in ("actual_started_at", "actual_completed_at")
        assert 0 < d["seconds"] < 0.5  # the host's clock read later, never earlier
        assert not (d["stage"] == "analysis" and d["field"] == "actual_started_at")


def test_a_tampered_host_row_is_reported_by_plan_and_field(host: Host) -> None:
    midway, done = host.plans[3], host.plans[4]
    host.sql(
        "UPDATE course_designer_plan_stages SET status = 'in_progress'"
        " WHERE course_designer_plan_id = %s AND stage = 'design'",
        midway.plan_id,
    )
    host.sql(
        "UPDATE course_designer_plan_stages"
        " SET actual_completed_at = actual_completed_at + interval '5 seconds'"
        " WHERE course_designer_plan_id = %s AND stage = 'evaluation'",
        done.plan_id,
    )
    host.sql(
        "UPDATE course_designer_plans SET name = 'Renamed by hand' WHERE id = %s", done.plan_id
    )
    code, report = drift_json(host)
    assert code == 3
    assert report["drifting"] == 2
    by_plan = {p["plan_id"]: p["differences"] for p in report["drift"]}
    assert by_plan[str(midway.plan_id)] == [
        {
            "table": "course_designer_plan_stages",
            "stage": "design",
            "field": "status",
            "host": "in_progress",
            "rebuilt": "completed",
            "seconds": None,
        }
    ]
    name, evaluation = by_plan[str(done.plan_id)]
    assert (name["table"], name["field"]) == ("course_designer_plans", "name")
    assert (name["host"], name["rebuilt"]) == ("Renamed by hand", "Done")
    assert (evaluation["stage"], evaluation["field"]) == ("evaluation", "actual_completed_at")
    assert 4.5 < evaluation["seconds"] < 5.5

    table = drift(host)
    assert table.exit_code == 3
    assert f"plan {midway.plan_id}: drifts from the host's rows" in table.stdout
    assert "+5." in table.stdout  # how far apart, shown when over the tolerance
    assert table.stdout.strip().endswith("2 drift")
    # A wider tolerance forgives the time, not the status or the name.
    _, wider = drift_json(host, "--tolerance", "10")
    assert sorted(d["field"] for p in wider["drift"] for d in p["differences"]) == [
        "name",
        "status",
    ]


def test_deleted_plans_eventless_plans_and_soft_deleted_stage_rows(host: Host) -> None:
    started, done = host.plans[2], host.plans[4]
    # The host soft-deletes a plan: still compared (its rows are its last state).
    host.sql("UPDATE course_designer_plans SET deleted_at = now() WHERE id = %s", done.plan_id)
    # An admin replaces a stage row: the old one soft-deleted, a new live one.
    host.sql(
        "UPDATE course_designer_plan_stages SET deleted_at = now()"
        " WHERE course_designer_plan_id = %s AND stage = 'evaluation'",
        started.plan_id,
    )
    host.sql(
        "INSERT INTO course_designer_plan_stages"
        " (course_designer_plan_id, stage, planned_starts_on, planned_ends_on)"
        " SELECT course_designer_plan_id, stage, planned_starts_on, planned_ends_on"
        " FROM course_designer_plan_stages"
        " WHERE course_designer_plan_id = %s AND stage = 'evaluation'",
        started.plan_id,
    )
    code, report = drift_json(host)
    assert code == 0, report
    lines = drift(host, "--format", "jsonl").stdout.splitlines()
    records = {r["plan_id"]: r for r in map(orjson.loads, lines)}
    assert records[str(done.plan_id)]["host_deleted_at"] is not None
    assert records[str(started.plan_id)]["deleted_stage_rows"] == 1
    assert "1 deleted by the host" in drift(host).stdout

    # A plan row the service's events never mention, and a live stage row deleted
    # without a replacement.
    owner = host.plans[0].owner
    host.sql(
        "INSERT INTO course_designer_plans (id, created_by_user_id, name)"
        " VALUES ('00000000-0000-4000-8000-0000000000ee', %s, 'Imported elsewhere')",
        owner,
    )
    host.sql(
        "UPDATE course_designer_plan_stages SET deleted_at = now()"
        " WHERE course_designer_plan_id = %s AND stage = 'design' AND deleted_at IS NULL",
        started.plan_id,
    )
    code, report = drift_json(host)
    assert code == 3
    by_plan = {p["plan_id"]: p for p in report["drift"]}
    eventless = by_plan["00000000-0000-4000-8000-0000000000ee"]
    assert eventless["reason"].startswith("no events")
    assert eventless["events"] == 0
    assert by_plan[str(started.plan_id)]["differences"] == [
        {
            "table": "course_designer_plan_stages",
            "stage": "design",
            "field": "row",
            "host": None,
            "rebuilt": "present",
            "seconds": None,
        }
    ]


def test_a_double_clicked_advance_agrees_with_the_hosts_rows(host: Host) -> None:
    """Two advance requests: A begins first, B takes the lock and commits, then A
    advances past B. The log lists A first; the rows follow commit order."""
    upstream = host.upstream
    owner = upstream.create_user()
    plan = upstream.create_plan(owner, "Double click")
    upstream.save_schedule(plan, owner, "Double click", suggested(date(2026, 6, 1)))
    upstream.finalize(plan, owner)
    with upstream.connect() as a:
        a.execute("BEGIN")
        a.execute("SELECT 1")  # A's transaction has begun: its now(), its occurred_at
        assert upstream.advance(plan, owner) == "analysis"  # B: lock, advance, commit
        assert upstream.advance_in(a, plan, owner) == "design"  # then A, past B
        a.execute("COMMIT")
    with psycopg.connect(libpq_url(host.url)) as conn:
        order = conn.execute(
            "SELECT event_type, stage FROM course_designer_plan_events"
            " WHERE course_designer_plan_id = %s AND event_type = 'stage_completed'"
            " ORDER BY occurred_at",
            (plan.plan_id,),
        ).fetchall()
        held = conn.execute(
            "SELECT active_stage::text FROM course_designer_plans WHERE id = %s",
            (plan.plan_id,),
        ).fetchone()
    assert order == [("stage_completed", "design"), ("stage_completed", "analysis")]
    assert held == ("development",)

    code, report = drift_json(host, "--plan", str(plan.plan_id))
    assert (code, report["drifting"]) == (0, 0)
    state = CliRunner().invoke(
        main, ["state", str(plan.plan_id), "--format", "json", "--database-url", host.url]
    )
    assert state.exit_code == 0, state.output
    data = orjson.loads(state.stdout)
    assert data["active_stage"] == "development"
    assert [s["status"] for s in data["stages"]] == [
        "completed",
        "completed",
        "in_progress",
        "not_started",
        "not_started",
    ]


def test_the_api_reports_progress_and_reads_only(host: Host) -> None:
    store = EventStore(make_engine(host.reader_url))
    seen: list[int] = []
    try:
        report = host_drift(store, progress=seen.append, tolerance=timedelta(seconds=2))
    finally:
        store.close()
    assert sum(seen) == len(report.plans) == 5
    assert report.drifting == []
    assert report.tolerance == timedelta(seconds=2)


def test_a_role_that_cannot_read_the_stage_rows_is_told_what_to_grant(host: Host) -> None:
    grants = (
        "GRANT USAGE ON SCHEMA public TO {}",
        "GRANT SELECT ON course_designer_plans, course_designer_plan_events TO {}",
    )
    with login_role(host.url, "eventsource_noaudit", grants) as url:
        result = CliRunner().invoke(main, ["host-drift", "--database-url", url])
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert "host-drift needs SELECT on course_designer_plans, course_designer_plan_stages" in line


def test_a_database_without_the_hosts_tables_is_a_one_line_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'standalone.sqlite3'}"
    assert CliRunner().invoke(main, ["migrate", "--database-url", url]).exit_code == 0
    result = CliRunner().invoke(main, ["host-drift", "--database-url", url])
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert "no course_designer_plan_stages table" in line
    assert "point it at the host's database" in line
