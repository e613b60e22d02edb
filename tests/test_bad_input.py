"""The bad-input catalogue: every refusal is the right error, names the field,
and leaves nothing of the batch behind. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from pydantic import BaseModel
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from eventsource import AsyncEventStore, EventStore, payload_models
from eventsource.backend import translate
from eventsource.config import make_engine
from eventsource.errors import (
    ConfigurationError,
    EventSourceError,
    IdempotencyConflict,
    InvalidEventPayload,
    InvalidInput,
    SchemaMissing,
    UnknownReference,
)
from eventsource.events import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_DEPTH,
    STAGES,
    NewEvent,
    same_json,
)
from eventsource.payload_models import GROUP as PAYLOAD_MODELS_GROUP
from eventsource.payload_models import PayloadModels
from eventsource.tables import events
from projections.course_designer import CourseDesignerPlanProjection
from tests.clirun import one_error_line, run_cli
from tests.conftest import make_plan

Plan = tuple[UUID, UUID]
AWARE = datetime(2025, 4, 1, 12, 0, tzinfo=UTC)


def nested(levels: int, leaf: Any = None) -> dict[str, Any]:
    """An object nesting ``levels`` objects deep (itself level 1), ``leaf`` innermost."""
    value: dict[str, Any] = {"leaf": leaf}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def nested_lists(levels: int) -> list[Any]:
    """An array nesting ``levels`` arrays deep (itself level 1)."""
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def cycle() -> dict[str, Any]:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    return loop


def good(name: str = "note_added") -> NewEvent:
    return NewEvent(event_type=name, payload={"ok": True})


def row_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(events)).scalar_one())


def bad(**fields: Any) -> NewEvent:
    """A NewEvent with deliberately wrong field types (bypassing the type checker)."""
    values: dict[str, Any] = {"event_type": "note_added", "payload": {}, **fields}
    return NewEvent(**values)


def refusal(store: EventStore, plan_id: UUID, batch: list[NewEvent], case: str) -> InvalidInput:
    """The InvalidInput an append of ``batch`` raises (failing the test, naming ``case``,
    if it is accepted)."""
    try:
        store.append(plan_id, batch)
    except InvalidInput as exc:
        return exc
    pytest.fail(f"{case}: the append was accepted")


CATALOGUE: dict[str, list[tuple[str, NewEvent]]] = {
    "event_type": [
        ("event_type-empty", bad(event_type="")),
        ("event_type-spaces", bad(event_type="   ")),
        ("event_type-whitespace", bad(event_type="\t\n ")),
        ("event_type-zero-width-space", bad(event_type="\u200b")),
        ("event_type-byte-order-mark", bad(event_type="\ufeff")),
        ("event_type-invisible-mix", bad(event_type=" \u200b\u2060\u00a0\u3000\u200d")),
        ("event_type-256-chars", bad(event_type="x" * 256)),
        ("event_type-nul", bad(event_type="plan\x00created")),
        ("event_type-surrogate", bad(event_type="plan\ud800")),
        ("event_type-not-a-string", bad(event_type=42)),
        ("event_type-none", bad(event_type=None)),
    ],
    "payload": [
        ("payload-list", bad(payload=[1, 2])),
        ("payload-str", bad(payload="{}")),
        ("payload-none", bad(payload=None)),
        ("payload-int", bad(payload=7)),
        ("payload-nan", bad(payload={"x": float("nan")})),
        ("payload-inf", bad(payload={"x": float("inf")})),
        ("payload-minus-inf", bad(payload={"x": float("-inf")})),
        ("payload-nested-nan", bad(payload={"a": [1, {"b": float("nan")}]})),
        ("payload-nul-in-value", bad(payload={"x": "a\x00b"})),
        ("payload-nul-in-key", bad(payload={"a\x00": 1})),
        ("payload-nested-nul", bad(payload={"a": [{"b": "\x00"}]})),
        ("payload-surrogate-value", bad(payload={"x": "\udc80"})),
        ("payload-surrogate-key", bad(payload={"\ud800": 1})),
        ("payload-int-too-big", bad(payload={"x": 2**64})),
        ("payload-int-too-small", bad(payload={"x": -(2**63) - 1})),
        ("payload-int-key", bad(payload={1: "x"})),
        ("payload-datetime", bad(payload={"at": AWARE})),
        ("payload-set", bad(payload={"s": {1, 2}})),
        ("payload-65-levels", bad(payload=nested(65))),
        ("payload-65-levels-of-arrays", bad(payload={"a": nested_lists(64)})),
        ("payload-255-levels", bad(payload=nested(255))),  # past what orjson writes
        ("payload-5000-levels", bad(payload=nested(5000))),  # past Python's recursion
        ("payload-65-levels-of-mappings", bad(payload=MappingProxyType(nested(65)))),
        ("payload-containing-itself", bad(payload=cycle())),
    ],
    "stage": [
        ("stage-capitalised", bad(stage="Analysis")),
        ("stage-unknown", bad(stage="planning")),
        ("stage-empty", bad(stage="")),
        ("stage-int", bad(stage=1)),
    ],
    "occurred_at": [
        ("naive", bad(occurred_at=datetime(2025, 4, 1, 12, 0))),
        ("occurred_at-str", bad(occurred_at="2025-04-01T12:00:00Z")),
        (
            "occurred_at-before-year-1-in-utc",
            bad(occurred_at=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))),
        ),
        (
            "occurred_at-after-year-9999-in-utc",
            bad(occurred_at=datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))),
        ),
    ],
    "actor_user_id": [
        ("actor-not-a-uuid", bad(actor_user_id="bob")),
    ],
    "id": [
        ("id-not-a-uuid", bad(id="nope")),
    ],
}
"""Per field, the bad values (named for failure messages) an append must refuse."""


@pytest.mark.parametrize("field", list(CATALOGUE))
def test_a_bad_event_in_the_middle_of_a_batch_is_refused_naming_the_field_and_nothing_is_written(
    store: EventStore, plan: Plan, field: str
) -> None:
    plan_id, _ = plan
    store.append(plan_id, [good("already_there")])
    for case, event in CATALOGUE[field]:
        error = refusal(store, plan_id, [good("first"), event, good("last")], case)
        assert type(error) is InvalidInput, case
        assert error.field == field, case
        assert field in str(error), case
        assert str(error).startswith("event 1: "), case
        assert "\n" not in str(error), case
        assert store.version(plan_id) == 1, case
        assert row_count(store.engine) == 1, case
    assert [e.event_type for e in store.read(plan_id)] == ["already_there"]


def test_a_bad_event_first_or_last_in_a_batch_is_named_by_its_position(
    store: EventStore, plan: Plan
) -> None:
    plan_id, _ = plan
    with pytest.raises(InvalidInput, match=r"^event 0: event_type is blank"):
        store.append(plan_id, [bad(event_type=" "), good()])
    with pytest.raises(InvalidInput, match=r"^event 2: stage 'x' is not one of"):
        store.append(plan_id, [good(), good(), bad(stage="x")])
    assert store.version(plan_id) == 0


def test_a_batch_item_that_is_not_a_new_event_is_refused(store: EventStore, plan: Plan) -> None:
    plan_id, _ = plan
    items: list[Any] = [good(), {"event_type": "x", "payload": {}}]
    with pytest.raises(InvalidInput, match=r"event 1 is a dict, not a NewEvent"):
        store.append(plan_id, items)
    assert store.version(plan_id) == 0


def test_the_limits_themselves_are_accepted(store: EventStore, plan: Plan) -> None:
    plan_id, _ = plan
    accepted = [
        NewEvent("x" * 255, {}),
        NewEvent("é" * 255, {}),
        NewEvent("t", {"big": 2**64 - 1, "small": -(2**63)}),
        NewEvent("t", {"unicode": "é😀\u2028", "nested": {"list": [1.5, None, True, "s"]}}),
        NewEvent("t", nested(MAX_PAYLOAD_DEPTH)),
        NewEvent("t", {"a": nested_lists(MAX_PAYLOAD_DEPTH - 1)}),
        NewEvent("plan\u200b_created", {}),  # not blank: visible characters around it
        NewEvent("t", {}, occurred_at=datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=-8)))),
        *(NewEvent("t", {}, stage=stage) for stage in STAGES),
    ]
    result = store.append(plan_id, accepted)
    assert result.appended == len(accepted)
    stored = {e.id: e for e in store.read(plan_id)}
    assert stored[result.event_ids[0]].event_type == "x" * 255
    assert stored[result.event_ids[2]].payload == {"big": 2**64 - 1, "small": -(2**63)}
    assert stored[result.event_ids[3]].payload["unicode"] == "é😀\u2028"
    assert stored[result.event_ids[4]].payload == nested(MAX_PAYLOAD_DEPTH)
    assert stored[result.event_ids[5]].payload == {"a": nested_lists(MAX_PAYLOAD_DEPTH - 1)}
    assert [stored[i].stage for i in result.event_ids[-len(STAGES) :]] == list(STAGES)


def test_a_payload_over_a_configured_limit_is_refused_and_one_at_it_accepted(
    engine: Engine, plan: Plan
) -> None:
    plan_id, _ = plan
    store = EventStore(engine, max_payload_bytes=64)
    at_limit = {"s": "x" * 56}  # {"s":"…"} is 64 bytes of JSON
    store.append(plan_id, [NewEvent("t", at_limit)])
    for payload in ({"s": "x" * 57}, {"s": "é" * 30}):  # 65 bytes; 30 chars but 68 bytes
        with pytest.raises(InvalidInput) as info:
            store.append(plan_id, [good(), NewEvent("t", payload)])
        assert info.value.field == "payload"
        assert "over the limit of 64" in str(info.value)
    assert store.version(plan_id) == 1


def test_the_default_payload_limit_is_one_mebibyte(store: EventStore, plan: Plan) -> None:
    plan_id, _ = plan
    assert store.max_payload_bytes == DEFAULT_MAX_PAYLOAD_BYTES == 1024 * 1024
    with pytest.raises(InvalidInput) as info:
        store.append(plan_id, [good(), NewEvent("t", {"s": "x" * (1024 * 1024)})])
    assert info.value.field == "payload"
    assert f"over the limit of {1024 * 1024}" in str(info.value)
    assert store.version(plan_id) == 0
    exactly = {"s": "x" * (1024 * 1024 - 8)}
    (event_id,) = store.append(plan_id, [NewEvent("t", exactly)]).event_ids
    assert store.get(event_id).payload == exactly


def test_an_unknown_plan_is_an_unknown_reference_naming_the_plan_column(
    store: EventStore,
) -> None:
    missing = uuid4()
    with pytest.raises(UnknownReference) as info:
        store.append(missing, [good(), good()])
    assert isinstance(info.value, InvalidInput)
    assert info.value.field == "course_designer_plan_id"
    assert "course_designer_plan_id" in str(info.value)
    assert "plan" in str(info.value)
    assert store.version(missing) == 0
    assert row_count(store.engine) == 0


def test_an_unknown_actor_anywhere_in_a_batch_is_an_unknown_reference_and_nothing_is_written(
    store: EventStore, plan: Plan
) -> None:
    plan_id, user = plan
    stranger = uuid4()
    batch = [
        NewEvent("a", {}, actor_user_id=user),
        NewEvent("b", {}),
        NewEvent("c", {}, actor_user_id=stranger),
    ]
    with pytest.raises(UnknownReference) as info:
        store.append(plan_id, batch)
    assert info.value.field == "actor_user_id"
    assert "actor_user_id" in str(info.value)
    assert store.version(plan_id) == 0
    assert row_count(store.engine) == 0


def test_an_unknown_reference_with_an_expected_version_still_writes_nothing(
    store: EventStore, plan: Plan
) -> None:
    plan_id, _ = plan
    store.append(plan_id, [good()])
    with pytest.raises(UnknownReference):
        store.append(plan_id, [NewEvent("b", {}, actor_user_id=uuid4())], expected_version=1)
    assert store.version(plan_id) == 1


@pytest.mark.postgres
def test_on_postgresql_a_foreign_key_failure_is_classified_by_sqlstate_23503(
    pg_engine: Engine,
) -> None:
    store = EventStore(pg_engine)
    plan_id, _ = make_plan(pg_engine)
    with pytest.raises(UnknownReference) as info:
        store.append(plan_id, [NewEvent("a", {}, actor_user_id=uuid4())])
    # The append runs at the driver level: the cause is psycopg's own error.
    cause = info.value.__cause__
    assert isinstance(cause, psycopg.Error)
    assert cause.sqlstate == "23503"


class _Diag:
    def __init__(self, constraint: str | None) -> None:
        self.constraint_name = constraint
        self.message_primary = "a message that says nothing useful"


class _PgError(Exception):
    def __init__(self, sqlstate: str, constraint: str | None = None) -> None:
        super().__init__("misleading text: duplicate key value violates unique constraint")
        self.sqlstate = sqlstate
        self.diag = _Diag(constraint)


def _sqlite_error(code: int, message: str) -> sqlite3.Error:
    error = sqlite3.IntegrityError(message)
    error.sqlite_errorcode = code
    error.sqlite_errorname = f"SQLITE_CODE_{code}"
    return error


@pytest.mark.parametrize(
    ("orig", "expected", "field"),
    [
        pytest.param(
            _PgError("23503", "course_designer_plan_events_actor_user_id_fkey"),
            UnknownReference,
            "actor_user_id",
            id="pg-23503-actor",
        ),
        pytest.param(
            _PgError("23503", "course_designer_plan_events_course_designer_plan_id_fkey"),
            UnknownReference,
            "course_designer_plan_id",
            id="pg-23503-plan",
        ),
        pytest.param(
            _sqlite_error(787, "UNIQUE constraint failed (misleading)"),
            UnknownReference,
            None,
            id="sqlite-787",
        ),
        pytest.param(
            _sqlite_error(275, "FOREIGN KEY constraint failed (misleading)"),
            InvalidInput,
            None,
            id="sqlite-275-is-a-check-not-a-reference",
        ),
    ],
)
def test_driver_errors_are_classified_by_code_never_by_message_text(
    orig: Exception, expected: type[EventSourceError], field: str | None
) -> None:
    error = translate(IntegrityError("INSERT ...", {}, orig))
    assert type(error) is expected
    if field is not None:
        assert isinstance(error, InvalidInput)
        assert error.field == field


def test_a_database_never_migrated_raises_schema_missing_saying_what_to_do(
    backend_url: str,
) -> None:
    engine = make_engine(backend_url)
    try:
        store = EventStore(engine)
        calls: dict[str, Callable[[], object]] = {
            "append": lambda: store.append(uuid4(), [good()]),
            "read": lambda: list(store.read(uuid4())),
            "timeline": lambda: store.timeline(uuid4()),
            "audit": lambda: list(store.audit(uuid4())),
            "soft_delete": lambda: store.soft_delete(uuid4()),
        }
        for name, call in calls.items():
            with pytest.raises(SchemaMissing) as info:
                call()
            assert "course_designer_plan_events" in str(info.value), name
            assert "eventsource migrate" in str(info.value), name
    finally:
        engine.dispose()


def test_an_expected_version_of_the_wrong_type_is_invalid_input(
    store: EventStore, plan: Plan
) -> None:
    plan_id, _ = plan
    wrong: list[Any] = [True, False, -1, "3", 1.5, None]
    for expected_version in wrong:
        with pytest.raises(InvalidInput) as info:
            store.append(plan_id, [good()], expected_version=expected_version)
        assert info.value.field == "expected_version", expected_version
        assert "expected_version" in str(info.value), expected_version
    assert store.version(plan_id) == 0


def test_an_empty_batch_is_invalid_input(store: EventStore, plan: Plan) -> None:
    with pytest.raises(InvalidInput) as info:
        store.append(plan[0], [])
    assert info.value.field == "events"


def test_a_batch_repeating_an_event_id_is_invalid_and_writes_nothing(
    store: EventStore, plan: Plan
) -> None:
    plan_id, _ = plan
    same = uuid4()
    with pytest.raises(InvalidInput) as info:
        store.append(plan_id, [NewEvent("a", {}, id=same), NewEvent("a", {}, id=same)])
    assert info.value.field == "id"
    assert store.version(plan_id) == 0


def test_a_plan_or_event_id_that_is_not_a_uuid_is_invalid_input_naming_it(
    store: EventStore,
) -> None:
    calls: dict[str, tuple[str, Callable[[], object]]] = {
        "append": ("plan_id", lambda: store.append("plan-1", [good()])),
        "read": ("plan_id", lambda: list(store.read("plan-1"))),
        "timeline": ("plan_id", lambda: store.timeline("plan-1")),
        "audit": ("plan_id", lambda: list(store.audit("plan-1"))),
        "version": ("plan_id", lambda: store.version("plan-1")),
        "get": ("event_id", lambda: store.get("plan-1")),
        "soft_delete": ("event_id", lambda: store.soft_delete("plan-1")),
        "restore": ("event_id", lambda: store.restore("plan-1")),
    }
    for operation, (field, call) in calls.items():
        with pytest.raises(InvalidInput) as info:
            call()
        assert info.value.field == field, operation
        assert field in str(info.value), operation
        assert "plan-1" in str(info.value), operation


def test_a_naive_read_time_is_invalid_input(store: EventStore, plan: Plan) -> None:
    naive = datetime(2025, 1, 1)
    with pytest.raises(InvalidInput, match="naive"):
        list(store.read(plan[0], valid_at=naive))
    with pytest.raises(InvalidInput, match="naive") as info:
        list(store.read(plan[0], known_at=naive))
    assert info.value.field == "known_at"


def test_an_occurred_at_before_year_1000_is_stored_on_every_backend(
    store: EventStore, plan: Plan
) -> None:
    plan_id, _ = plan
    ancient = datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    (event_id,) = store.append(plan_id, [NewEvent("t", {}, occurred_at=ancient)]).event_ids
    assert store.get(event_id).occurred_at == ancient


def test_numbers_the_database_normalises_still_make_an_identical_resend_a_no_op(
    store: EventStore, plan: Plan
) -> None:
    plan_id, _ = plan
    # jsonb keeps numbers as numeric: -0.0 comes back 0.0, 1e16 as an integer.
    payload = {"zero": -0.0, "big": 1e16, "huge": 1.2345678901234567e19, "tiny": 1.5e-7}
    event = NewEvent("t", payload, id=uuid4())
    store.append(plan_id, [event])
    assert store.append(plan_id, [event]).appended == 0
    assert store.version(plan_id) == 1
    stored = store.get(event.id or uuid4()).payload
    assert same_json(stored, payload)  # the same numbers by value on both backends
    assert not same_json(stored, {**payload, "tiny": 1.6e-7})


def test_a_resend_differing_only_by_bool_versus_number_is_a_conflict(
    store: EventStore, plan: Plan
) -> None:
    plan_id, _ = plan
    event_id = uuid4()
    store.append(plan_id, [NewEvent("t", {"flag": True}, id=event_id)])
    with pytest.raises(IdempotencyConflict):
        store.append(plan_id, [NewEvent("t", {"flag": 1}, id=event_id)])


def test_other_mappings_are_accepted_as_json_objects(store: EventStore, plan: Plan) -> None:
    plan_id, _ = plan
    payload = MappingProxyType({"outer": MappingProxyType({"inner": (1, 2)})})
    (event_id,) = store.append(plan_id, [NewEvent("t", payload)]).event_ids
    assert store.get(event_id).payload == {"outer": {"inner": [1, 2]}}


# -- depth ---------------------------------------------------------------------


@pytest.mark.parametrize("levels", [MAX_PAYLOAD_DEPTH + 1, 255, 1100, 5000])
def test_a_payload_nested_too_deep_is_invalid_input_naming_its_path_at_any_depth(
    store: EventStore, plan: Plan, levels: int
) -> None:
    plan_id, _ = plan
    for payload, path in (
        (nested(levels), "payload.a.a.a.a[... "),
        ({"list": [0, nested_lists(levels - 1)]}, "payload.list[1][0][0]"),
    ):
        with pytest.raises(InvalidInput) as info:
            store.append(plan_id, [good(), NewEvent("t", payload)])
        message = str(info.value)
        assert type(info.value) is InvalidInput
        assert info.value.field == "payload"
        assert message.startswith(f"event 1: {path}"), message
        assert f"more than {MAX_PAYLOAD_DEPTH} levels deep" in message
        assert len(message) < 200, message  # the path is shortened, not 5000 steps long
    assert store.version(plan_id) == 0


# -- what the projections read ---------------------------------------------------

STAGE_ID = "8d0b5a52-6f5e-4c1e-9b47-3c2d1e0f9a8b"
MODEL_REFUSALS: list[tuple[str, NewEvent, str]] = [
    ("name-a-number", NewEvent("plan_created", {"name": 5}), "payload.name"),
    ("name-a-list", NewEvent("plan_created", {"name": ["x"]}), "payload.name"),
    (
        "extension-empty",
        NewEvent("stage_extended", {}, stage="analysis"),
        "payload.stage_id",
    ),
    (
        "extension-zero-months",
        NewEvent(
            "stage_extended",
            {"stage_id": STAGE_ID, "months": 0, "new_ends_on": "2025-10-31"},
            stage="analysis",
        ),
        "payload.months",
    ),
    (
        "extension-months-as-text",
        NewEvent(
            "stage_extended",
            {"stage_id": STAGE_ID, "months": "1", "new_ends_on": "2025-10-31"},
            stage="analysis",
        ),
        "payload.months",
    ),
    (
        "extension-a-bad-date",
        NewEvent(
            "stage_extended",
            {"stage_id": STAGE_ID, "months": 1, "new_ends_on": "2025-02-30"},
            stage="analysis",
        ),
        "payload.new_ends_on",
    ),
    ("schedule-without-stages", NewEvent("schedule_created", {"name": "x"}), "payload.stages"),
    (
        "schedule-a-bad-stage",
        NewEvent(
            "schedule_updated",
            {
                "stages": [
                    {"stage": s, "planned_starts_on": "2025-01-01", "planned_ends_on": "2025-01-31"}
                    for s in ("Analysis", "design", "Development", "Implementation", "Evaluation")
                ]
            },
        ),
        "payload.stages[1].stage",
    ),
    (
        "finalized-half-activated",
        NewEvent("schedule_finalized", {"stages": [], "active_stage": "Analysis"}),
        "payload.stages",
    ),
]
"""Payloads of types the course-designer projection reads, which its models refuse:
(case, event, the path the error names)."""


def test_a_payload_the_projection_cannot_read_is_refused_naming_the_path_and_the_projection(
    store: EventStore, plan: Plan
) -> None:
    plan_id, _ = plan
    for case, event, path in MODEL_REFUSALS:
        error = refusal(store, plan_id, [good("first"), event, good("last")], case)
        message = str(error)
        assert type(error) is InvalidEventPayload, case
        assert error.field == "payload", case
        assert message.startswith(f"event 1: {path}: "), (case, message)
        assert "course_designer_plan" in message, case
        assert event.event_type in message, case
        assert "\n" not in message, case
        assert store.version(plan_id) == 0, case


def test_payloads_the_projection_can_read_and_types_it_does_not_know_are_accepted(
    store: EventStore, plan: Plan
) -> None:
    plan_id, _ = plan
    accepted = [
        NewEvent("plan_created", {"name": None}),
        NewEvent("plan_created", {"name": "x", "extra": [1, 2]}),  # extra keys are ignored
        NewEvent(
            "stage_extended",
            {"stage_id": STAGE_ID, "months": 1, "new_ends_on": "2025-10-31"},
            stage="analysis",
        ),
        NewEvent("plan_created_v9", {"name": 5}),  # nobody reads it: stored as it is
        NewEvent("weekly_stage_reminder_sent", {"anything": {"at": "all"}}),
    ]
    assert store.append(plan_id, accepted).appended == len(accepted)


def test_payload_validation_can_be_turned_off_per_append_or_for_the_store(
    store: EventStore, engine: Engine, plan: Plan
) -> None:
    plan_id, _ = plan
    unreadable = NewEvent("plan_created", {"name": 5})
    (event_id,) = store.append(plan_id, [unreadable], validate_payloads=False).event_ids
    assert store.get(event_id).payload == {"name": 5}
    raw = EventStore(engine, validate_payloads=False)
    assert raw.append(plan_id, [NewEvent("stage_extended", {})]).appended == 1
    with pytest.raises(InvalidEventPayload):
        raw.append(plan_id, [unreadable], validate_payloads=True)  # the call decides
    assert store.version(plan_id) == 2


def test_the_async_store_turns_payload_validation_off_too(backend_url: str, plan: Plan) -> None:
    plan_id, _ = plan

    async def main() -> int:
        async with AsyncEventStore.from_url(backend_url, validate_payloads=False) as raw:
            result = await raw.append(plan_id, [NewEvent("plan_created", {"name": 5})])
            with pytest.raises(InvalidEventPayload):
                await raw.append(
                    plan_id, [NewEvent("plan_created", {"name": 5})], validate_payloads=True
                )
            return result.appended

    assert asyncio.run(main()) == 1


class ThingDone(BaseModel):
    count: int


def test_a_store_given_its_own_payload_models_checks_those_only(engine: Engine, plan: Plan) -> None:
    plan_id, _ = plan
    store = EventStore(engine, payload_models=PayloadModels({"mine": {"thing_done": ThingDone}}))
    with pytest.raises(InvalidEventPayload) as info:
        store.append(plan_id, [NewEvent("thing_done", {"count": "many"})])
    assert str(info.value).startswith("event 0: payload.count: ")
    assert "projection 'mine'" in str(info.value)
    store.append(plan_id, [NewEvent("thing_done", {"count": 3})])
    store.append(plan_id, [NewEvent("plan_created", {"name": 5})])  # not in these models
    assert store.version(plan_id) == 2


def test_the_store_learns_the_models_through_an_entry_point_without_importing_projections() -> None:
    assert [e.value for e in entry_points(group=PAYLOAD_MODELS_GROUP)] == [
        "projections.registry:payload_models"
    ]
    script = (
        "import sys\n"
        "import eventsource, eventsource.payload_models as models\n"
        "assert not any(m.split('.')[0] == 'projections' for m in sys.modules), 'imported'\n"
        "found = models.installed()\n"
        "print(sorted(found.event_types))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert eval(done.stdout) == sorted(CourseDesignerPlanProjection().payload_models)


def test_a_broken_payload_models_entry_point_is_a_configuration_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = EntryPoint("broken", "no_such_package.models:payload_models", PAYLOAD_MODELS_GROUP)
    monkeypatch.setattr(payload_models, "entry_points", lambda group: [broken])
    with pytest.raises(ConfigurationError) as info:
        payload_models.installed.__wrapped__(PAYLOAD_MODELS_GROUP)
    assert "'broken'" in str(info.value)
    assert "no_such_package" in str(info.value)


# -- through the command line -------------------------------------------------------


def test_the_cli_refuses_what_the_api_refuses_in_one_line_naming_the_field(
    backend_url: str, engine: Engine, plan: Plan
) -> None:
    plan_id, _ = plan
    cases: list[tuple[list[str], str]] = [
        (["--type", "plan_created", "--payload", '{"name": 5}'], "payload.name: "),
        (["--type", "stage_extended", "--stage", "analysis"], "payload.stage_id: "),
        (["--type", "x", "--payload", '{"n": 18446744073709551617}'], "payload.n is an integer"),
        (["--type", "x", "--payload", '{"n": [-9223372036854775809]}'], "payload.n[0] is an"),
        (["--type", "x", "--payload", "[" * 300 + "]" * 300], "payload[0][0]"),
        (["--type", "x", "--payload", '{"a": ' + "[" * 2000 + "]" * 2000 + "}"], "payload.a[0]"),
        (["--type", "x", "--payload", '{"a": NaN}'], "payload.a is nan"),
        (["--type", "\u200b"], "event_type is blank"),
    ]
    for args, words in cases:
        result = run_cli("append", "--database-url", backend_url, str(plan_id), *args)
        line = one_error_line(result, 1)
        assert words in line, (args, line)
        assert "TypeError" not in line, line
        assert "Recursion" not in line, line
    assert row_count(engine) == 0
    result = run_cli(
        "append",
        "--database-url",
        backend_url,
        str(plan_id),
        "--type",
        "plan_created",
        "--payload",
        '{"name": 5}',
        "--no-validate-payloads",
    )
    assert result.returncode == 0, result.stderr
    assert row_count(engine) == 1
