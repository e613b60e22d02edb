"""The operator's view: ``eventsource status`` (queue, lag, snapshots, replay runs),
worker batch logs in text and JSON, and ``eventsource schema``."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import update

from eventsource import EventStore, NewEvent
from eventsource.cli import main
from eventsource.logformat import JsonFormatter
from eventsource.status import feed_lag, store_status
from eventsource.tables import snapshots
from eventsource.transfer import import_events
from projections import CourseDesignerPlanProjection, ProjectionEngine
from tests.clirun import one_error_line, run_cli
from tests.conftest import DATA

COURSE = CourseDesignerPlanProjection()
FIXTURE = DATA / "course_designer_events.jsonl"


def sample(plans: int) -> list[str]:
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()
    chosen = sorted({json.loads(line)["course_designer_plan_id"] for line in lines})[:plans]
    return [line for line in lines if json.loads(line)["course_designer_plan_id"] in chosen]


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result


def status_json(url: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        invoke("status", "--format", "json", "--database-url", url).stdout
    )
    return document


def course(document: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(
        p for p in document["projections"] if p["projection"] == COURSE.name
    )
    return found


def test_status_follows_the_queue_and_the_snapshots(store: EventStore, backend_url: str) -> None:
    import_events(store, sample(4), create_parents=True)
    first = status_json(backend_url)
    assert first["plans"] == 4
    assert first["queue"]["plans"] == 4, "an import records every plan it changed"
    assert first["queue"]["oldest_change_age_seconds"] >= 0
    assert course(first) == {
        "projection": COURSE.name,
        "version": COURSE.version,
        "fresh": 0,
        "stale": 0,
        "other_version": 0,
        "missing": 4,
    }
    assert first["quarantined"] == []
    assert first["replay_runs"] == []

    invoke("worker", "--once", "--database-url", backend_url)
    caught_up = status_json(backend_url)
    assert caught_up["queue"] == {
        "plans": 0,
        "oldest_change_at": None,
        "oldest_change_age_seconds": None,
    }
    assert course(caught_up)["fresh"] == 4
    assert caught_up["stored_snapshots"] == [
        {"projection": COURSE.name, "version": COURSE.version, "fresh": 4, "stale": 0}
    ]

    plans = sorted(store.plan_ids())
    first_event = next(iter(store.read(plans[0])))
    backfill = NewEvent("note_added", {}, occurred_at=first_event.occurred_at - timedelta(days=1))
    store.append(plans[0], [backfill])  # lands before the snapshot's position: stale
    with store.write_transaction() as connection:
        connection.execute(
            update(snapshots).where(snapshots.c.plan_id == plans[1]).values(projection_version=0)
        )
    behind = status_json(backend_url)
    assert behind["queue"]["plans"] == 1
    assert course(behind) | {"fresh": None} == course(first) | {
        "fresh": None,
        "stale": 1,
        "other_version": 1,
        "missing": 0,
    }
    table = invoke("status", "--database-url", backend_url).stdout
    assert "1 plan queued; the oldest change is" in table
    assert f"{COURSE.name} v{COURSE.version}: 2 fresh, 1 stale, 1 of another version" in table
    assert "quarantined plans   none" in table


def test_status_lists_an_interrupted_replay_run(store: EventStore, backend_url: str) -> None:
    import_events(store, sample(3), create_parents=True)
    plans = sorted(store.plan_ids())
    engine = ProjectionEngine(store)

    def stop_after_the_first(_done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        engine.replay(COURSE, plans, run="nightly", batch_size=1, progress=stop_after_the_first)
    runs = status_json(backend_url)["replay_runs"]
    assert [(r["run"], r["plans_done"]) for r in runs] == [("nightly", 1)]
    assert "nightly: 1 plan done" in invoke("status", "--database-url", backend_url).stdout
    # The CLI resumes it and says what was done before.
    resumed = invoke("replay", "--run", "nightly", "--database-url", backend_url).stdout
    assert resumed.startswith("rebuilt 2 plans, 1 already done by run 'nightly'")
    assert status_json(backend_url)["replay_runs"] == []


def test_store_status_reads_in_one_transaction_and_writes_nothing(store: EventStore) -> None:
    import_events(store, sample(2), create_parents=True)
    before = feed_lag(store)
    report = store_status(store, [(COURSE.name, COURSE.version)])
    assert report.feed == before
    assert report.projections[0].missing == 2
    assert feed_lag(store) == before


def test_worker_logs_each_batch_as_json_for_collectors(store: EventStore, backend_url: str) -> None:
    import_events(store, sample(5), create_parents=True)
    result = run_cli(
        "worker",
        "--once",
        "--batch-size",
        "2",
        "--log-format",
        "json",
        "--database-url",
        backend_url,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "folded 5 plans; queue empty"
    records = [json.loads(line) for line in result.stderr.splitlines()]
    batches = [r for r in records if r["message"].startswith("batch:")]
    assert [b["plans"] for b in batches] == [2, 2, 1]
    assert [b["queued"] for b in batches] == [3, 1, 0]
    assert all(b["events"] > 0 and b["seconds"] >= 0 for b in batches)
    assert all(b["lag_seconds"] >= 0 for b in batches[:2])
    assert batches[-1]["lag_seconds"] is None
    assert {b["logger"] for b in batches} == {"projections.worker"}
    assert all(b["level"] == "info" and b["ts"].endswith("Z") for b in batches)
    drained = records[-1]
    assert drained["plans"] == 5
    assert drained["batches"] == 3


def test_worker_text_logs_say_plans_events_time_and_lag(
    store: EventStore, backend_url: str
) -> None:
    import_events(store, sample(2), create_parents=True)
    result = run_cli("worker", "--once", "--database-url", backend_url)
    assert result.returncode == 0, result.stderr
    batch = next(line for line in result.stderr.splitlines() if "batch:" in line)
    assert " INFO projections.worker: batch: folded 2 plans (" in batch
    assert "0 plans queued, oldest change none" in batch
    quiet = run_cli("worker", "--once", "--log-level", "warning", "--database-url", backend_url)
    assert quiet.stderr == ""


def test_the_json_formatter_keeps_extra_fields_and_exceptions() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "lost %s", ("it",), None)
    record.plans = 3
    document = json.loads(JsonFormatter().format(record))
    assert document["message"] == "lost it"
    assert document["plans"] == 3
    assert document["level"] == "warning"


# -- schema ---------------------------------------------------------------------------


def test_schema_prints_the_payload_models_json_schema() -> None:
    result = run_cli("schema", "--projection", COURSE.name)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["projection"] == COURSE.name
    assert set(document["payloads"]) == set(COURSE.payload_models)
    created = document["payloads"]["schedule_created"]
    assert created == COURSE.payload_models["schedule_created"].model_json_schema()
    stage = created["$defs"]["PlannedStage"]["properties"]["stage"]
    assert "Design" in stage["enum"]
    one = json.loads(run_cli("schema", "--type", "stage_extended").stdout)
    assert list(one["payloads"]) == ["stage_extended"]
    assert set(one["payloads"]["stage_extended"]["required"]) == {
        "stage_id",
        "months",
        "new_ends_on",
    }


def test_schema_of_an_unknown_type_or_projection_is_one_line() -> None:
    line = one_error_line(run_cli("schema", "--type", "nope"))
    assert "has no payload model for 'nope'" in line
    assert "schedule_created" in line
    line = one_error_line(run_cli("schema", "--projection", "nope"))
    assert "no projection named 'nope'" in line
