"""Projection registry (entry points) and the replay tooling: state, replay, verify,
timeline --changes and demo, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest
from click.testing import CliRunner

from eventsource import EventStore
from eventsource.cli import main
from eventsource.errors import DuplicateProjection
from eventsource.transfer import import_file
from projections.course_designer import CourseDesignerPlanProjection
from projections.registry import Registry, discover
from tests.conftest import DATA

EXPECTED: dict[str, Any] = json.loads((DATA / "course_designer_states.json").read_text())["plans"]

THIRD_PARTY = textwrap.dedent(
    '''
    from types import MappingProxyType


    class EventCounter:
        """Counts events by type: a third-party projection."""

        name = "event_counter"
        version = 1
        handles = None
        payload_models = MappingProxyType({})
        tie_rank = MappingProxyType({})

        def initial_state(self, plan_id):
            return {}

        def evolve(self, state, event):
            return {**state, event.event_type: state.get(event.event_type, 0) + 1}

        def to_json(self, state):
            return dict(state)

        def from_json(self, data):
            return dict(data)


    class Impostor(EventCounter):
        name = "course_designer_plan"
    '''
)


def install_third_party(tmp_path: Path, entries: str) -> dict[str, str]:
    """A fake installed distribution registering projections via entry points."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "thirdparty_projection.py").write_text(THIRD_PARTY)
    dist = site / "thirdparty_projection-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: thirdparty-projection\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text(f"[eventsource.projections]\n{entries}\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    return env


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventsource", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def loaded_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    runner = CliRunner()
    assert runner.invoke(main, ["migrate", "--database-url", url]).exit_code == 0
    result = runner.invoke(
        main,
        [
            "import",
            str(DATA / "course_designer_events.jsonl"),
            "--create-parents",
            "--database-url",
            url,
        ],
    )
    assert result.exit_code == 0, result.output
    return url


def test_registry_refuses_two_projections_with_one_name() -> None:
    class Other(CourseDesignerPlanProjection):
        pass

    registry = Registry([CourseDesignerPlanProjection()])
    with pytest.raises(DuplicateProjection, match="course_designer_plan"):
        registry.register(Other())


def test_builtin_projection_is_discovered_by_entry_point() -> None:
    assert "course_designer_plan" in discover()


def test_third_party_projection_found_by_cli_projection_flag(
    tmp_path: Path, loaded_db: str
) -> None:
    env = install_third_party(tmp_path, "event_counter = thirdparty_projection:EventCounter")
    plan = "00b31fde-c3c1-4117-98a6-e9bdab0683f8"
    result = run_cli(
        env,
        "state",
        plan,
        "--projection",
        "event_counter",
        "--format",
        "json",
        "--database-url",
        loaded_db,
    )
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)
    expected: dict[str, int] = {}
    for line in (DATA / "course_designer_events.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["course_designer_plan_id"] == plan and row["deleted_at"] is None:
            expected[row["event_type"]] = expected.get(row["event_type"], 0) + 1
    assert counts == expected


def test_third_party_projection_with_a_taken_name_is_an_error(
    tmp_path: Path, loaded_db: str
) -> None:
    env = install_third_party(tmp_path, "impostor = thirdparty_projection:Impostor")
    result = run_cli(
        env, "state", "00b31fde-c3c1-4117-98a6-e9bdab0683f8", "--database-url", loaded_db
    )
    assert result.returncode != 0
    assert "two projections are named 'course_designer_plan'" in result.stderr
    assert "Traceback" not in result.stderr


def test_state_json_matches_the_service_state(loaded_db: str) -> None:
    plan = "0144e7e0-d95b-4564-a344-c14d492e4ccc"
    result = CliRunner().invoke(
        main, ["state", plan, "--format", "json", "--database-url", loaded_db]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == EXPECTED[plan]


def test_state_all_jsonl_prints_one_state_a_line(loaded_db: str) -> None:
    result = CliRunner().invoke(
        main, ["state", "--all", "--format", "jsonl", "--database-url", loaded_db]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 300
    states = {s["plan_id"]: s for s in map(orjson.loads, lines)}
    assert states == EXPECTED


def test_state_as_of_before_creation_says_the_plan_had_no_events_then(loaded_db: str) -> None:
    plan = "0144e7e0-d95b-4564-a344-c14d492e4ccc"
    runner = CliRunner()
    past = runner.invoke(
        main,
        [
            "state",
            plan,
            "--as-of",
            "2000-01-01T00:00:00Z",
            "--format",
            "json",
            "--database-url",
            loaded_db,
        ],
    )
    # Not a fabricated draft: the plan did not exist yet then.
    assert past.exit_code == 1, past.output
    assert f"plan {plan} has no events as of 2000-01-01T00:00:00Z" in past.output
    known = runner.invoke(
        main,
        [
            "state",
            plan,
            "--known-at",
            "2100-01-01T00:00:00Z",
            "--format",
            "json",
            "--database-url",
            loaded_db,
        ],
    )
    assert json.loads(known.output) == EXPECTED[plan]


def test_state_table_shows_stages(loaded_db: str) -> None:
    plan = "00b31fde-c3c1-4117-98a6-e9bdab0683f8"
    result = CliRunner().invoke(main, ["state", plan, "--database-url", loaded_db])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    stages = lines.index("  stages:")
    assert lines[stages + 1].split()[:2] == ["analysis", "in_progress"]
    assert [line.split()[0] for line in lines[stages + 1 : stages + 6]] == [
        "analysis",
        "design",
        "development",
        "implementation",
        "evaluation",
    ]


def test_state_errors_are_one_line(loaded_db: str) -> None:
    runner = CliRunner()
    unknown = runner.invoke(
        main, ["state", "7b1e3a4e-0000-4000-8000-000000000000", "--database-url", loaded_db]
    )
    assert unknown.exit_code == 1
    assert "has no events" in unknown.output
    bad_time = runner.invoke(
        main,
        [
            "state",
            "00b31fde-c3c1-4117-98a6-e9bdab0683f8",
            "--as-of",
            "yesterday",
            "--database-url",
            loaded_db,
        ],
    )
    assert bad_time.exit_code == 1
    assert "RFC 3339" in bad_time.output
    naive = runner.invoke(
        main,
        [
            "state",
            "00b31fde-c3c1-4117-98a6-e9bdab0683f8",
            "--as-of",
            "2025-01-01T00:00:00",
            "--database-url",
            loaded_db,
        ],
    )
    assert naive.exit_code == 1
    assert "timezone" in naive.output
    unknown_projection = runner.invoke(
        main, ["state", "--all", "--projection", "nope", "--database-url", loaded_db]
    )
    assert unknown_projection.exit_code == 1
    assert "no projection named 'nope'" in unknown_projection.output


def test_replay_then_verify_reports_all_consistent(loaded_db: str) -> None:
    runner = CliRunner()
    replay = runner.invoke(main, ["replay", "--database-url", loaded_db])
    assert replay.exit_code == 0, replay.output
    assert "rebuilt 300 plans" in replay.output
    verify = runner.invoke(main, ["verify", "--database-url", loaded_db, "--format", "json"])
    assert verify.exit_code == 0, verify.output
    report = json.loads(verify.output)
    assert report == {"plans": 300, "differing": []}


def test_verify_names_a_plan_whose_snapshot_was_tampered(loaded_db: str) -> None:
    runner = CliRunner()
    plan = UUID("00b31fde-c3c1-4117-98a6-e9bdab0683f8")
    assert (
        runner.invoke(main, ["replay", "--plan", str(plan), "--database-url", loaded_db]).exit_code
        == 0
    )
    store = EventStore.from_url(loaded_db)
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE eventsource_snapshots SET state = json_set(state, '$.name', 'tampered')"
        )
    result = runner.invoke(main, ["verify", "--plan", str(plan), "--database-url", loaded_db])
    assert result.exit_code == 3
    assert f"{plan}: snapshot differs" in result.output


def test_timeline_changes_shows_field_by_field_newest_first(loaded_db: str) -> None:
    plan = "00b31fde-c3c1-4117-98a6-e9bdab0683f8"
    result = CliRunner().invoke(
        main, ["timeline", plan, "--changes", "--format", "json", "--database-url", loaded_db]
    )
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    times = [r["occurred_at"] for r in records]
    assert times == sorted(times, reverse=True)
    created = records[-1]
    assert created["event_type"] == "plan_created"
    assert {"field": "status", "before": "draft", "after": "draft"} not in created["changes"]
    fields = {c["field"] for r in records for c in r["changes"]}
    assert "status" in fields
    assert any(f.startswith("stages[analysis].") for f in fields)


def test_demo_migrates_imports_rebuilds_and_tells_one_plans_story(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    runner = CliRunner(env={"COLUMNS": "200"})
    first = runner.invoke(main, ["demo", "--plans", "4", "--seed", "3", "--database-url", url])
    assert first.exit_code == 0, first.output
    for step in ("1. migrate", "2. import", "3. replay", "4. timeline with changes", "next:"):
        assert step in first.output
    assert "rebuilt 4 plan snapshots with course_designer_plan" in first.output
    again = runner.invoke(main, ["demo", "--plans", "4", "--seed", "3", "--database-url", url])
    assert again.exit_code == 0, again.output
    assert "already current" in again.output
    assert " 0 new" in again.output


def test_import_into_sqlite_then_state_all_equals_fixture_states(tmp_path: Path) -> None:
    store = EventStore.from_url(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    from eventsource import migrate

    migrate.upgrade(store.engine)
    import_file(store, str(DATA / "course_designer_events.jsonl"), create_parents=True)
    assert len(list(store.plan_ids())) == 300
