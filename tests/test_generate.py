"""The seeded log generator: deterministic, parseable, quirky, and a valid workflow."""

from __future__ import annotations

import calendar
import io
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from eventsource.errors import InvalidInput
from eventsource.events import STAGES
from eventsource.jsonl import COLUMNS, dumps_row, event_to_row, row_to_event
from projections.generate import (
    GeneratedLog,
    generate_long_plan,
    generate_rows,
    write_jsonl,
)

Row = dict[str, Any]

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PASCAL = ("Analysis", "Design", "Development", "Implementation", "Evaluation")
KNOWN = {
    "plan_created",
    "schedule_created",
    "schedule_updated",
    "schedule_finalized",
    "plan_started",
    "stage_extended",
    "stage_completed",
    "stage_started",
    "plan_completed",
}
SNAPSHOT_KEYS = {
    "id",
    "created_at",
    "updated_at",
    "stage",
    "status",
    "planned_starts_on",
    "planned_ends_on",
    "actual_started_at",
    "actual_completed_at",
}
SEEDS = (0, 1, 7)


def plus_months(day: date, months: int) -> date:
    """An independent oracle for the spec's month arithmetic (day clamped)."""
    month = day.month + months
    year = day.year + (month - 1) // 12
    month = (month - 1) % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def by_plan(rows: list[Row]) -> dict[str, list[Row]]:
    plans: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        plans[row["course_designer_plan_id"]].append(row)
    return plans


def transactions(rows: list[Row]) -> list[list[Row]]:
    """Rows grouped by ``occurred_at`` (one upstream transaction each), in time order."""
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        groups[row["occurred_at"]].append(row)
    return [groups[key] for key in sorted(groups)]


@dataclass
class Replay:
    """A strict replay of one plan's live events that asserts every workflow rule."""

    status: str | None = None
    active: int | None = None
    stages: list[tuple[date, date]] = field(default_factory=list)
    stage_ids: list[str] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)

    def schedule(self, payload: Any) -> None:
        assert set(payload) == {"name", "stages"}
        assert payload["name"] is None or isinstance(payload["name"], str)
        assert [s["stage"] for s in payload["stages"]] == list(PASCAL)
        stages = []
        for element in payload["stages"]:
            assert set(element) == {"stage", "planned_starts_on", "planned_ends_on"}
            assert DATE.match(element["planned_starts_on"])
            starts = date.fromisoformat(element["planned_starts_on"])
            ends = date.fromisoformat(element["planned_ends_on"])
            stages.append((starts, ends))
        self.stages = stages
        self.check_contiguous()

    def check_contiguous(self) -> None:
        assert len(self.stages) == 5
        for index, (starts, ends) in enumerate(self.stages):
            assert starts <= ends
            if index:
                assert starts == self.stages[index - 1][1] + timedelta(days=1)

    def check_snapshot(self, snapshot: Any, *, newer: bool) -> None:
        assert [s["stage"] for s in snapshot] == list(PASCAL)
        for index, element in enumerate(snapshot):
            keys = SNAPSHOT_KEYS | {"workspace_data"} if newer else SNAPSHOT_KEYS
            assert set(element) == keys
            assert element["planned_starts_on"] == self.stages[index][0].isoformat()
            assert element["planned_ends_on"] == self.stages[index][1].isoformat()
            assert element["actual_completed_at"] is None
            started = newer and index == 0
            assert element["status"] == ("InProgress" if started else "NotStarted")
            assert (element["actual_started_at"] is not None) == started
            UUID(element["id"])
        self.stage_ids = [element["id"] for element in snapshot]

    def apply(self, row: Row, transaction: list[Row]) -> None:
        kind, stage, payload = row["event_type"], row["stage"], row["payload"]
        if kind not in KNOWN:
            assert self.status is not None, "an unknown event before plan_created"
            return
        if kind == "plan_created":
            assert self.status is None
            assert stage is None
            assert set(payload) == {"name"}
            self.status = "draft"
        elif kind == "schedule_created":
            assert self.status == "draft"
            assert stage is None
            self.schedule(payload)
            self.status = "scheduling"
        elif kind == "schedule_updated":
            assert self.status in ("scheduling", "ready_to_start")
            assert stage is None
            self.schedule(payload)
        elif kind == "schedule_finalized":
            assert self.status == "scheduling"
            if stage is None:
                assert set(payload) == {"stages"}
                self.check_snapshot(payload["stages"], newer=False)
                self.status = "ready_to_start"
            else:
                assert stage == "analysis"
                assert set(payload) == {"stages", "active_stage", "activated_at"}
                assert payload["active_stage"] == "Analysis"
                assert TIMESTAMP.match(payload["activated_at"])
                assert payload["activated_at"] >= row["occurred_at"]
                assert payload["stages"][0]["actual_started_at"] == payload["activated_at"]
                self.check_snapshot(payload["stages"], newer=True)
                self.status, self.active = "in_progress", 0
        elif kind == "plan_started":
            assert self.status == "ready_to_start"
            assert (stage, payload) == ("analysis", {})
            self.status, self.active = "in_progress", 0
        elif kind == "stage_extended":
            assert self.status == "in_progress"
            assert self.active is not None
            assert stage == STAGES[self.active]
            assert set(payload) == {"stage_id", "months", "new_ends_on"}
            assert payload["stage_id"] == self.stage_ids[self.active]
            assert isinstance(payload["months"], int)
            assert payload["months"] >= 1
            new_end = plus_months(self.stages[self.active][1], payload["months"])
            assert payload["new_ends_on"] == new_end.isoformat()
            starts, _ = self.stages[self.active]
            self.stages[self.active] = (starts, new_end)
            for index in range(self.active + 1, 5):
                length = self.stages[index][1] - self.stages[index][0]
                begin = self.stages[index - 1][1] + timedelta(days=1)
                self.stages[index] = (begin, begin + length)
            self.check_contiguous()
        elif kind == "stage_completed":
            assert self.status == "in_progress"
            assert self.active is not None
            assert stage == STAGES[self.active]
            assert payload == {}
            follow = {"stage_started"} if self.active < 4 else {"plan_completed"}
            assert {r["event_type"] for r in transaction if r is not row} == follow
            self.completed.append(self.active)
        elif kind == "stage_started":
            assert self.active is not None
            assert self.completed[-1:] == [self.active], "stage_started without its pair"
            assert self.active < 4
            assert stage == STAGES[self.active + 1]
            assert payload == {}
            self.active += 1
        else:  # plan_completed
            assert self.completed[-1:] == [4]
            assert (stage, payload) == (None, {})
            self.status, self.active = "completed", None


def replay(rows: list[Row]) -> Replay:
    """Replay the live rows of one plan, checking the workflow; the final model."""
    state = Replay()
    live = [row for row in rows if row["deleted_at"] is None]
    previous: list[int] = []
    for transaction in transactions(live):
        assert len({(r["created_at"], r["updated_at"]) for r in transaction}) == 1
        if len(transaction) > 1:
            kinds = sorted(r["event_type"] for r in transaction)
            assert kinds in (
                ["stage_completed", "stage_started"],
                ["plan_completed", "stage_completed"],
            )
        # Within a transaction there is no order: apply stage_completed first.
        for row in sorted(transaction, key=lambda r: r["event_type"] != "stage_completed"):
            state.apply(row, transaction)
        if state.active is not None:
            previous.append(state.active)
    assert previous == sorted(previous), "stages went backwards"
    return state


@pytest.fixture(scope="module")
def logs() -> dict[int, GeneratedLog]:
    return {seed: generate_rows(60, seed) for seed in SEEDS}


def test_same_seed_gives_identical_rows() -> None:
    first = generate_rows(25, 42)
    second = generate_rows(25, 42)
    assert first == second
    assert [dumps_row(r) for r in first.rows] == [dumps_row(r) for r in second.rows]


def test_different_seed_gives_different_rows() -> None:
    one, other = generate_rows(25, 1), generate_rows(25, 2)
    assert {r["id"] for r in one.rows}.isdisjoint({r["id"] for r in other.rows})
    assert one.plan_owners.keys() != other.plan_owners.keys()


def test_start_moves_every_timestamp() -> None:
    start = datetime(2030, 3, 1, tzinfo=UTC)
    rows = generate_rows(10, 5, start=start).rows
    assert min(r["occurred_at"] for r in rows) >= "2030-03-01T00:00:00.000000Z"
    default = generate_rows(10, 5).rows
    assert min(r["occurred_at"] for r in default) >= "2025-01-06T09:00:00.000000Z"
    assert max(r["occurred_at"] for r in default) < "2030-03-01"


def test_naive_start_and_negative_plans_are_refused() -> None:
    with pytest.raises(InvalidInput):
        generate_rows(3, 1, start=datetime(2025, 1, 1))
    with pytest.raises(InvalidInput):
        generate_rows(-1, 1)
    assert generate_rows(0, 1) == GeneratedLog([], {}, [])


def test_rows_parse_and_round_trip(logs: dict[int, GeneratedLog]) -> None:
    rows = logs[0].rows
    ids = set()
    for row in rows:
        assert list(row) == list(COLUMNS)
        for column in ("created_at", "occurred_at", "updated_at"):
            assert TIMESTAMP.match(row[column]), row
        assert json.loads(dumps_row(row)) == row
        event = row_to_event(row)
        assert event_to_row(event) == row
        assert event.id.version == 4
        assert row["stage"] is None or row["stage"] in STAGES
        ids.add(row["id"])
    assert len(ids) == len(rows)


def test_rows_are_shuffled(logs: dict[int, GeneratedLog]) -> None:
    rows = logs[0].rows
    plans = [r["course_designer_plan_id"] for r in rows]
    switches = sum(1 for a, b in pairwise(plans) if a != b)
    assert switches > 4 * len(set(plans)), "rows of a plan stay together"
    occurred = [r["occurred_at"] for r in rows]
    assert occurred != sorted(occurred)


@pytest.mark.parametrize("seed", SEEDS)
def test_every_quirk_is_present(logs: dict[int, GeneratedLog], seed: int) -> None:
    rows = logs[seed].rows
    kinds = {r["event_type"] for r in rows}
    backfilled = [r for r in rows if r["created_at"] > r["occurred_at"]]
    deleted = [r for r in rows if r["deleted_at"] is not None]
    unknown = [r for r in rows if r["event_type"] not in KNOWN]
    finalized = [r for r in rows if r["event_type"] == "schedule_finalized"]
    assert backfilled
    assert any(r["deleted_at"] is None for r in backfilled)
    assert {r["event_type"] for r in deleted} == {"stage_extended", "schedule_updated"}
    assert {r["event_type"] for r in unknown} >= {"weekly_stage_reminder_sent"}
    assert len({r["event_type"] for r in unknown}) >= 2
    assert any(r["stage"] is not None for r in unknown)
    assert any(not dumps_row(r).isascii() for r in unknown)
    assert any(r["actor_user_id"] is None for r in rows)
    assert {r["stage"] is None for r in finalized} == {True, False}
    assert {"plan_started", "plan_completed"} <= kinds
    pairs = [t for t in transactions(rows) if len(t) == 2]
    assert {tuple(sorted(r["event_type"] for r in t)) for t in pairs} == {
        ("stage_completed", "stage_started"),
        ("plan_completed", "stage_completed"),
    }
    for pair in pairs:
        assert (
            len({(r["created_at"], r["updated_at"], r["course_designer_plan_id"]) for r in pair})
            == 1
        )


@pytest.mark.parametrize("seed", SEEDS)
def test_backfilled_transactions_share_created_at(logs: dict[int, GeneratedLog], seed: int) -> None:
    for rows in by_plan(logs[seed].rows).values():
        imports = {r["created_at"] for r in rows if r["created_at"] > r["occurred_at"]}
        assert len(imports) <= 1
        for transaction in transactions(rows):
            assert len({r["created_at"] for r in transaction}) == 1


@pytest.mark.parametrize("seed", SEEDS)
def test_timestamps_of_live_and_deleted_rows(logs: dict[int, GeneratedLog], seed: int) -> None:
    for row in logs[seed].rows:
        assert row["created_at"] >= row["occurred_at"]
        if row["deleted_at"] is None:
            assert row["updated_at"] == row["created_at"]
        else:
            assert row["deleted_at"] > row["created_at"]
            assert row["updated_at"] == row["deleted_at"]


@pytest.mark.parametrize("seed", SEEDS)
def test_live_events_make_a_valid_workflow(logs: dict[int, GeneratedLog], seed: int) -> None:
    statuses = set()
    for rows in by_plan(logs[seed].rows).values():
        state = replay(rows)
        statuses.add(state.status)
        if state.status == "completed":
            assert state.completed == [0, 1, 2, 3, 4]
    assert statuses == {"draft", "scheduling", "ready_to_start", "in_progress", "completed"}


@pytest.mark.parametrize("seed", SEEDS)
def test_deleted_mistakes_would_break_or_change_the_plan(
    logs: dict[int, GeneratedLog], seed: int
) -> None:
    plans = by_plan(logs[seed].rows)
    for row in logs[seed].rows:
        if row["deleted_at"] is None:
            continue
        live = [r for r in plans[row["course_designer_plan_id"]] if r["deleted_at"] is None]
        with_mistake = [{**r, "deleted_at": None} if r is row else r for r in [*live, row]]
        before = replay(live)
        try:
            after = replay(with_mistake)
        except AssertionError:
            continue  # the mistake breaks a workflow rule
        assert after.stages != before.stages


@pytest.mark.parametrize("seed", SEEDS)
def test_owners_and_users(logs: dict[int, GeneratedLog], seed: int) -> None:
    log = logs[seed]
    plans = by_plan(log.rows)
    assert set(log.plan_owners) == set(plans)
    assert len(plans) == 60
    for plan_id, rows in plans.items():
        (created,) = [r for r in rows if r["event_type"] == "plan_created"]
        assert created["actor_user_id"] == log.plan_owners[plan_id]
    actors = {r["actor_user_id"] for r in log.rows} - {None}
    assert actors <= set(log.users)
    assert set(log.plan_owners.values()) <= set(log.users)
    assert len(log.users) == len(set(log.users))
    for user in log.users:
        assert UUID(user).version == 4


@pytest.mark.parametrize("seed", SEEDS)
def test_time_moves_forward_between_transactions(logs: dict[int, GeneratedLog], seed: int) -> None:
    for rows in by_plan(logs[seed].rows).values():
        ordered = transactions(rows)  # live and deleted rows alike
        assert ordered[0][0]["event_type"] == "plan_created"
        for transaction in ordered:
            assert len(transaction) in (1, 2)
            if len(transaction) == 2:
                assert "stage_completed" in {r["event_type"] for r in transaction}
        times = [datetime.fromisoformat(t[0]["occurred_at"]) for t in ordered]
        for earlier, later in pairwise(times):
            assert timedelta(minutes=1) <= later - earlier <= timedelta(days=22)


@pytest.mark.parametrize("events", [3, 4, 50, 1000])
def test_long_plan_has_exactly_n_rows(events: int) -> None:
    log = generate_long_plan(events, 9)
    rows = log.rows
    assert len(rows) == events
    assert len(log.plan_owners) == 1
    assert all(r["deleted_at"] is None for r in rows)
    occurred = [r["occurred_at"] for r in rows]
    assert occurred == sorted(occurred)
    assert len(set(occurred)) == events
    assert [r["event_type"] for r in rows[:3]] == [
        "plan_created",
        "schedule_created",
        "schedule_finalized",
    ]
    assert rows[2]["stage"] == "analysis"
    assert {r["event_type"] for r in rows[3:]} <= {"stage_extended"}
    assert all(r["payload"]["months"] == 1 and r["stage"] == "analysis" for r in rows[3:])
    ends = [r["payload"]["new_ends_on"] for r in rows[3:]]
    assert ends == sorted(ends)
    assert len(set(ends)) == len(ends)
    state = replay(rows)
    assert (state.status, state.active) == ("in_progress", 0)
    assert generate_long_plan(events, 9) == log


def test_long_plan_refuses_impossible_counts() -> None:
    with pytest.raises(InvalidInput):
        generate_long_plan(2, 1)
    with pytest.raises(InvalidInput):
        generate_long_plan(200_000, 1)


def test_write_jsonl_to_path_and_file(tmp_path: Path) -> None:
    log = generate_rows(8, 3)
    path = tmp_path / "events.jsonl"
    write_jsonl(log, path)
    data = path.read_bytes()
    lines = data.decode("utf-8").split("\n")
    assert lines[-1] == ""
    assert [json.loads(line) for line in lines[:-1]] == log.rows
    assert b"\r" not in data
    buffer = io.StringIO()
    write_jsonl(log, buffer)
    assert buffer.getvalue().encode("utf-8") == data
    write_jsonl(log, str(path))
    assert path.read_bytes() == data
