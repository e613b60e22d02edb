"""Import and export of the JSONL exchange format, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import Engine, func, select

from eventsource import EventStore, migrate, transfer
from eventsource.config import make_engine
from eventsource.errors import (
    IdempotencyConflict,
    InvalidEventPayload,
    InvalidInput,
    UnknownReference,
)
from eventsource.events import MAX_PAYLOAD_DEPTH, NewEvent
from eventsource.jsonl import dumps_row, format_timestamp, parse_timestamp, row_to_event
from eventsource.tables import course_designer_plans, events, users
from eventsource.transfer import export_file, export_rows, import_events, import_file
from projections.generate import generate_rows
from tests.clirun import one_error_line, run_cli
from tests.conftest import DATA, create_pg_schema, drop_pg_schema, make_plan, pg_schema_url
from tests.test_bad_input import CATALOGUE, MODEL_REFUSALS, nested

FIXTURE = DATA / "course_designer_events.jsonl"
Row = dict[str, Any]


# -- helpers -------------------------------------------------------------------


def fixture_lines() -> list[str]:
    return FIXTURE.read_text(encoding="utf-8").splitlines()


def canonical(lines: list[str]) -> set[str]:
    """Lines as parsed JSON, comparable as a set."""
    return {json.dumps(json.loads(line), sort_keys=True) for line in lines if line.strip()}


def export_text(store: EventStore, plan_ids: list[UUID] | None = None) -> str:
    buffer = io.StringIO()
    export_file(store, buffer, plan_ids)
    return buffer.getvalue()


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def totals(engine: Engine) -> tuple[int, int, int]:
    return count(engine, events), count(engine, course_designer_plans), count(engine, users)


def lines_of(rows: list[Row]) -> list[str]:
    return [dumps_row(row) for row in rows]


def row(plan_id: UUID, actor: UUID | None, **fields: Any) -> Row:
    stamp = "2025-05-01T10:00:00.000000Z"
    return {
        "actor_user_id": None if actor is None else str(actor),
        "course_designer_plan_id": str(plan_id),
        "created_at": stamp,
        "deleted_at": None,
        "event_type": "note_added",
        "id": str(uuid4()),
        "occurred_at": stamp,
        "payload": {},
        "stage": None,
        "updated_at": stamp,
        **fields,
    }


@pytest.fixture
def other_url(backend_url: str, tmp_path: Path) -> Iterator[str]:
    """A second empty, migrated database on the same backend as ``backend_url``."""
    if backend_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'other.sqlite3'}"
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url
        return
    schema = create_pg_schema()
    try:
        url = pg_schema_url(schema)
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url
    finally:
        drop_pg_schema(schema)


# -- import --------------------------------------------------------------------


def test_importing_the_fixture_keeps_every_row_exactly_and_a_second_import_changes_nothing(
    store: EventStore, engine: Engine
) -> None:
    result = import_file(store, str(FIXTURE), create_parents=True)
    expected = [row_to_event(json.loads(line)) for line in fixture_lines()]
    assert result.read == len(expected) == 2401
    assert result.inserted == len(expected)
    assert result.unchanged == 0
    plan_ids = {e.plan_id for e in expected}
    assert result.plans == result.plans_created == len(plan_ids)
    assert result.users_created >= len({e.actor_user_id for e in expected} - {None})
    assert count(engine, events) == len(expected)
    assert any(e.deleted_at is not None for e in expected)
    assert any(e.occurred_at != e.created_at for e in expected)
    stored = {e.id: e for plan_id in plan_ids for e in store.audit(plan_id)}
    assert stored == {e.id: e for e in expected}
    # Each stand-in plan's creator is its plan_created actor, whichever chunk of
    # the file that event came in.
    creators = {
        e.plan_id: e.actor_user_id
        for e in expected
        if e.event_type == "plan_created" and e.actor_user_id is not None
    }
    assert creators
    with engine.connect() as conn:
        creators_stored = dict(
            conn.execute(
                select(course_designer_plans.c.id, course_designer_plans.c.created_by_user_id)
            ).all()
        )
    assert all(creators_stored[plan] == user for plan, user in creators.items())

    before = totals(engine), export_text(store)
    again = import_file(store, str(FIXTURE), create_parents=True)
    assert again.read == 2401
    assert again.inserted == 0
    assert again.unchanged == 2401
    assert again.plans == again.users_created == again.plans_created == 0
    assert (totals(engine), export_text(store)) == before


def test_import_reports_progress_for_every_line(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfer, "CHUNK", 4)
    seen: list[int] = []
    lines = fixture_lines()[:10]
    result = import_events(store, lines, create_parents=True, progress=seen.append)
    assert seen == [4, 4, 2]
    assert result.read == result.inserted == 10


@pytest.mark.parametrize(
    ("replacement", "words"),
    [
        pytest.param('{"id": "truncated', ["not valid JSON"], id="invalid-json"),
        pytest.param("[1, 2]", ["JSON object"], id="not-an-object"),
        pytest.param(None, ["stage", "planning"], id="bad-stage"),
    ],
)
def test_a_bad_line_five_is_named_and_nothing_of_the_file_is_kept(
    store: EventStore, engine: Engine, tmp_path: Path, replacement: str | None, words: list[str]
) -> None:
    lines = fixture_lines()[:10]
    if replacement is None:
        fifth = json.loads(lines[4])
        fifth["stage"] = "planning"
        replacement = dumps_row(fifth)
    lines[4] = replacement
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as info:
        import_file(store, str(path), create_parents=True)
    message = str(info.value)
    assert message.startswith("line 5: ")
    for word in words:
        assert word in message
    assert totals(engine) == (0, 0, 0)


def test_a_bad_line_names_its_number_and_field(store: EventStore, engine: Engine) -> None:
    plan_id, user = make_plan(engine)
    cases: list[tuple[Row, str]] = [
        ({"occurred_at": "2025-05-01T10:00:00"}, "occurred_at"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"deleted_at": 5}, "deleted_at"),
        ({"id": "not-a-uuid"}, "id"),
        ({"course_designer_plan_id": None}, "course_designer_plan_id"),
        ({"event_type": " "}, "event_type"),
        ({"event_type": "x" * 256}, "event_type"),
        ({"stage": "Design"}, "stage"),
        ({"payload": {"s": "a\u0000b"}}, "payload"),
        ({"payload": None}, "payload"),
        ({"payload": ["a"]}, "payload"),
        ({"colour": "red"}, "colour"),
    ]
    for change, field in cases:
        rows = [row(plan_id, user), row(plan_id, user), row(plan_id, user, **change)]
        with pytest.raises(InvalidInput) as info:
            import_events(store, lines_of(rows))
        assert str(info.value).startswith("line 3: "), change
        assert info.value.field == field, change
        assert field in str(info.value), change
        assert store.version(plan_id) == 0, change
    missing = {k: v for k, v in row(plan_id, user).items() if k != "event_type"}
    with pytest.raises(InvalidInput, match=r"^line 1: missing column\(s\): event_type"):
        import_events(store, lines_of([missing]))


def test_a_bad_line_after_the_first_chunk_rolls_back_the_chunks_already_written(
    store: EventStore, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfer, "CHUNK", 3)  # lines 1-9 are written before line 11
    lines = [*fixture_lines()[:9], "", "not json at all"]
    with pytest.raises(InvalidInput, match=r"^line 11: not valid JSON"):
        import_events(store, lines, create_parents=True)
    assert totals(engine) == (0, 0, 0)


def test_without_create_parents_an_unknown_plan_fails_naming_the_line(
    store: EventStore, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfer, "CHUNK", 2)  # lines 1-2 are written before line 4 fails
    plan_id, user = make_plan(engine)
    stranger = uuid4()
    rows = [row(plan_id, user), row(plan_id, user), row(plan_id, None), row(stranger, user)]
    before = totals(engine)
    with pytest.raises(UnknownReference) as info:
        import_events(store, lines_of(rows))
    assert str(info.value).startswith("line 4: ")
    assert str(stranger) in str(info.value)
    assert info.value.field == "course_designer_plan_id"
    assert "--create-parents" in str(info.value)
    assert totals(engine) == before


def test_without_create_parents_an_unknown_actor_fails_naming_the_line(
    store: EventStore, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfer, "CHUNK", 2)
    plan_id, user = make_plan(engine)
    stranger = uuid4()
    rows = [row(plan_id, user), row(plan_id, user), row(plan_id, stranger)]
    before = totals(engine)
    with pytest.raises(UnknownReference) as info:
        import_events(store, lines_of(rows))
    assert str(info.value).startswith("line 3: ")
    assert str(stranger) in str(info.value)
    assert info.value.field == "actor_user_id"
    assert totals(engine) == before


def test_with_existing_parents_no_parent_rows_are_created(
    store: EventStore, engine: Engine
) -> None:
    plan_id, user = make_plan(engine)
    before = totals(engine)
    result = import_events(store, lines_of([row(plan_id, user), row(plan_id, None)]))
    assert result.inserted == 2
    assert (result.users_created, result.plans_created) == (0, 0)
    assert totals(engine) == (before[0] + 2, before[1], before[2])


def test_an_id_already_stored_with_other_content_is_a_conflict_naming_the_line(
    store: EventStore, engine: Engine
) -> None:
    plan_id, user = make_plan(engine)
    first = row(plan_id, user, payload={"v": 1})
    import_events(store, lines_of([first]))
    changed = {**first, "payload": {"v": 2}}
    with pytest.raises(IdempotencyConflict) as info:
        import_events(store, lines_of([row(plan_id, user), changed]))
    assert str(info.value).startswith("line 2: ")
    assert "payload" in str(info.value)
    assert store.version(plan_id) == 1


def test_an_id_repeated_in_the_file_with_other_content_is_a_conflict_naming_the_line(
    store: EventStore, engine: Engine
) -> None:
    plan_id, user = make_plan(engine)
    first = row(plan_id, user, payload={"v": 1})
    rows = [first, row(plan_id, user), {**first, "payload": {"v": 2}}]
    with pytest.raises(IdempotencyConflict) as info:
        import_events(store, lines_of(rows))
    assert str(info.value).startswith("line 3: ")
    assert store.version(plan_id) == 0


def test_an_id_repeated_in_the_file_with_the_same_content_is_imported_once(
    store: EventStore, engine: Engine
) -> None:
    plan_id, user = make_plan(engine)
    first = row(plan_id, user, payload={"v": 1})
    result = import_events(store, lines_of([first, first]))
    assert (result.read, result.inserted, result.unchanged) == (2, 1, 1)
    assert store.version(plan_id) == 1


def test_numbers_the_database_normalises_still_make_a_reimport_a_no_op(
    store: EventStore, engine: Engine
) -> None:
    plan_id, user = make_plan(engine)
    rows = [row(plan_id, user, payload={"zero": -0.0, "big": 1e16, "frac": 0.1})]
    assert import_events(store, lines_of(rows)).inserted == 1
    again = import_events(store, lines_of(rows))
    assert (again.inserted, again.unchanged) == (0, 1)


def test_import_applies_the_stores_payload_limit(engine: Engine) -> None:
    store = EventStore(engine, max_payload_bytes=64)
    plan_id, user = make_plan(engine)
    rows = [row(plan_id, user), row(plan_id, user, payload={"s": "x" * 100})]
    with pytest.raises(InvalidInput) as info:
        import_events(store, lines_of(rows))
    assert str(info.value).startswith("line 2: ")
    assert info.value.field == "payload"
    assert store.version(plan_id) == 0


def test_imported_events_read_in_stream_order_with_appended_ones(
    store: EventStore, engine: Engine
) -> None:
    plan_id, user = make_plan(engine)
    rows = [
        row(plan_id, user, event_type="second", occurred_at="2025-05-01T11:00:00.000000Z"),
        row(plan_id, user, event_type="first", occurred_at="2025-05-01T09:00:00.000000Z"),
    ]
    import_events(store, lines_of(rows))
    store.append(plan_id, [NewEvent("third", {})])
    assert [e.event_type for e in store.read(plan_id)] == ["first", "second", "third"]


# -- export --------------------------------------------------------------------


def test_the_export_is_the_fixture_plan_by_plan_and_reimports_into_an_empty_database_byte_for_byte(
    store: EventStore, other_url: str
) -> None:
    import_file(store, str(FIXTURE), create_parents=True)
    exported = export_text(store).splitlines()
    assert len(exported) == 2401
    assert canonical(exported) == canonical(fixture_lines())
    rows = list(export_rows(store))
    plan_order = [e.plan_id for e in rows]
    assert plan_order == sorted(plan_order)
    keys = [(e.plan_id, e.occurred_at, e.created_at, e.id) for e in rows]
    assert keys == sorted(keys)
    assert any(e.deleted_at is not None for e in rows)
    some_plan = rows[0].plan_id
    only = export_text(store, [some_plan]).splitlines()
    assert only
    assert all(json.loads(line)["course_designer_plan_id"] == str(some_plan) for line in only)
    assert len(only) == store.version(some_plan)
    # export -> import into an empty database -> export gives the same bytes.
    store.append(next(iter(store.plan_ids())), [NewEvent("appended_here", {"n": 1.5, "s": "é😀"})])
    first = export_text(store)
    other = EventStore.from_url(other_url)
    try:
        result = import_events(other, io.StringIO(first), create_parents=True)
        assert result.inserted == 2402
        assert export_text(other) == first
    finally:
        other.close()


@pytest.mark.postgres
def test_sqlite_and_postgresql_exports_agree_byte_for_byte(tmp_path: Path) -> None:
    sqlite_store = EventStore.from_url(f"sqlite:///{tmp_path / 'a.sqlite3'}")
    migrate.upgrade(sqlite_store.engine)
    schema = create_pg_schema()
    pg_store = EventStore.from_url(pg_schema_url(schema))
    try:
        migrate.upgrade(pg_store.engine)
        import_file(sqlite_store, str(FIXTURE), create_parents=True)
        from_sqlite = export_text(sqlite_store)
        import_events(pg_store, io.StringIO(from_sqlite), create_parents=True)
        from_pg = export_text(pg_store)
        assert from_pg == from_sqlite
        back = EventStore.from_url(f"sqlite:///{tmp_path / 'b.sqlite3'}")
        migrate.upgrade(back.engine)
        import_events(back, io.StringIO(from_pg), create_parents=True)
        assert export_text(back) == from_sqlite
        back.close()
    finally:
        sqlite_store.close()
        pg_store.close()
        drop_pg_schema(schema)


def test_the_generators_output_imports_and_exports_back_as_the_same_rows(
    store: EventStore, engine: Engine
) -> None:
    log = generate_rows(12, 5)
    lines = lines_of(log.rows)
    result = import_events(store, lines, create_parents=True)
    assert result.inserted == len(log.rows)
    assert result.plans_created == len(log.plan_owners)
    assert canonical(export_text(store).splitlines()) == canonical(lines)
    again = import_events(store, lines, create_parents=True)
    assert again.inserted == 0
    with engine.connect() as conn:
        owners = conn.execute(
            select(course_designer_plans.c.id, course_designer_plans.c.created_by_user_id)
        ).all()
    # Each plan's creator is the actor of its plan_created event.
    assert {str(plan): str(owner) for plan, owner in owners} == log.plan_owners


def test_exchange_timestamps_are_fixed_width_even_before_year_1000() -> None:
    ancient = datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=1)))
    text_form = format_timestamp(ancient)
    assert text_form == "0999-01-02T02:04:05.000006Z"
    assert parse_timestamp(text_form, "occurred_at") == ancient
    assert format_timestamp(datetime(2025, 5, 14, 3, 27, 36, tzinfo=UTC)) == (
        "2025-05-14T03:27:36.000000Z"
    )


# -- import refuses what the API refuses ----------------------------------------------


def with_payload_text(fields: Row, text: str) -> str:
    """The line of ``fields`` with its payload spelt as ``text`` (JSON or not)."""
    line = dumps_row({**fields, "payload": {}})
    assert line.count('"payload": {}') == 1
    return line.replace('"payload": {}', f'"payload": {text}')


_NOT_IN_A_LINE = object()


def _as_column(field: str, value: Any) -> Any:
    """A bad value of the API catalogue as an exchange-format line holds it, or
    ``_NOT_IN_A_LINE`` where JSON text cannot say it (a set, an integer key) or the
    format spells it as valid text (an ``occurred_at`` given as a string)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if field == "occurred_at" or (field == "actor_user_id" and not isinstance(value, str)):
        return _NOT_IN_A_LINE
    try:
        text = json.dumps(value)  # NaN, Infinity and lone surrogates spelt as JSON would
    except (TypeError, ValueError, RecursionError):
        return _NOT_IN_A_LINE  # deeper than the standard library writes: tested below
    if isinstance(value, dict) and json.loads(text) != value:
        return _NOT_IN_A_LINE  # an integer key becomes a string
    return value


def test_import_refuses_every_case_of_the_bad_input_catalogue_naming_the_line_and_field(
    store: EventStore, engine: Engine
) -> None:
    plan_id, user = make_plan(engine)
    tried = 0
    for field, cases in CATALOGUE.items():
        for case, event in cases:
            value = _as_column(field, getattr(event, field))
            if value is _NOT_IN_A_LINE:
                continue
            column = "occurred_at" if field == "occurred_at" else field
            bad_row = row(plan_id, user, **{column: value})
            lines = [*lines_of([row(plan_id, user), row(plan_id, user)]), json.dumps(bad_row)]
            with pytest.raises(InvalidInput) as info:
                import_events(store, lines)
            message = str(info.value)
            assert type(info.value) is InvalidInput, case
            assert message.startswith("line 3: "), (case, message)
            assert info.value.field == field, (case, message)
            assert field in message, case
            assert "\n" not in message, case
            assert store.version(plan_id) == 0, case
            tried += 1
    assert tried >= 35  # most of the catalogue can be spelt in a line


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        pytest.param('{"x": 18446744073709551616}', "payload.x", id="2**64"),
        pytest.param('{"x": -9223372036854775809}', "payload.x", id="-2**63-1"),
        pytest.param('{"a": [1, {"b": 1180591620717411303424}]}', "payload.a[1].b", id="nested"),
        pytest.param('{"x": 1' + "0" * 400 + "}", "payload.x", id="400-digits"),
    ],
)
def test_import_refuses_integers_beyond_64_bits_instead_of_storing_floats(
    store: EventStore, engine: Engine, payload: str, where: str
) -> None:
    plan_id, user = make_plan(engine)
    line = with_payload_text(row(plan_id, user), payload)
    with pytest.raises(InvalidInput) as info:
        import_events(store, [dumps_row(row(plan_id, user)), line])
    assert str(info.value).startswith(f"line 2: {where} is an integer outside ")
    assert "store it as a string" in str(info.value)
    assert info.value.field == "payload"
    assert store.version(plan_id) == 0


def test_integers_at_the_64_bit_limits_and_long_digit_strings_import_exactly(
    store: EventStore, engine: Engine
) -> None:
    plan_id, user = make_plan(engine)
    payload = {
        "max": 2**64 - 1,
        "min": -(2**63),
        "digits": "123456789012345678901234567890",
        "pi": 3.14159265358979323846264338327950288,
    }
    first = row(plan_id, user, payload=payload)
    assert import_events(store, lines_of([first])).inserted == 1
    stored = store.get(UUID(first["id"])).payload
    assert stored == {**payload, "pi": 3.141592653589793}
    assert type(stored["max"]) is int
    assert type(stored["min"]) is int


@pytest.mark.parametrize("levels", [MAX_PAYLOAD_DEPTH + 1, 300, 1100, 5000])
def test_import_refuses_a_payload_nested_too_deep_naming_the_line_and_path(
    store: EventStore, engine: Engine, levels: int
) -> None:
    plan_id, user = make_plan(engine)
    deep = "[" * (levels - 1) + "]" * (levels - 1)  # inside the payload object: `levels`
    line = with_payload_text(row(plan_id, user), f'{{"a": {deep}}}')
    with pytest.raises(InvalidInput) as info:
        import_events(store, [dumps_row(row(plan_id, user)), line])
    message = str(info.value)
    assert message.startswith("line 2: payload.a[0][0]"), message
    assert f"more than {MAX_PAYLOAD_DEPTH} levels deep" in message
    assert info.value.field == "payload"
    assert len(message) < 200, message
    assert store.version(plan_id) == 0


def test_import_accepts_a_payload_at_the_nesting_limit_and_refuses_deep_columns(
    store: EventStore, engine: Engine
) -> None:
    plan_id, user = make_plan(engine)
    at_limit = row(plan_id, user, payload=nested(MAX_PAYLOAD_DEPTH))
    assert import_events(store, lines_of([at_limit])).inserted == 1
    assert store.get(UUID(at_limit["id"])).payload == nested(MAX_PAYLOAD_DEPTH)
    deep_stage = dumps_row(row(plan_id, user, stage=[])).replace(
        '"stage": []', '"stage": ' + "[" * 2000 + "]" * 2000
    )
    with pytest.raises(InvalidInput) as info:
        import_events(store, [deep_stage])
    assert str(info.value).startswith("line 1: stage[0][0]")
    assert info.value.field == "stage"


def test_import_refuses_nan_infinity_and_lone_surrogates_naming_the_path(
    store: EventStore, engine: Engine
) -> None:
    plan_id, user = make_plan(engine)
    for text, words in (
        ('{"a": [1, NaN]}', "payload.a[1] is nan"),
        ('{"a": {"b": -Infinity}}', "payload.a.b is -inf"),
        ('{"a": "\\udc80"}', "payload.a contains a lone surrogate"),
    ):
        line = with_payload_text(row(plan_id, user), text)
        with pytest.raises(InvalidInput) as info:
            import_events(store, [line])
        assert str(info.value).startswith(f"line 1: {words}"), str(info.value)
        assert info.value.field == "payload"


@pytest.mark.parametrize(
    ("field", "accepted"),
    [
        ("deleted_at", "2025-05-01T10:00:00.000000Z"),  # the same moment is fine
        ("updated_at", "2025-05-01T10:00:00.000001Z"),
    ],
)
def test_import_refuses_a_record_time_before_created_at(
    store: EventStore, engine: Engine, field: str, accepted: str
) -> None:
    plan_id, user = make_plan(engine)
    early = row(plan_id, user, **{field: "2025-05-01T09:59:59.999999Z"})
    with pytest.raises(InvalidInput) as info:
        import_events(store, lines_of([row(plan_id, user), early]))
    assert str(info.value).startswith(f"line 2: {field} 2025-05-01T09:59:59.999999+00:00 is ")
    assert "before created_at" in str(info.value)
    assert info.value.field == field
    assert store.version(plan_id) == 0  # all or nothing: line 1 is not kept either
    assert import_events(store, lines_of([row(plan_id, user, **{field: accepted})])).inserted == 1


def test_import_refuses_an_event_type_blank_after_format_characters(
    store: EventStore, engine: Engine
) -> None:
    plan_id, user = make_plan(engine)
    for blank in ("\u200b", "\ufeff", "\u2060 \u200d"):
        with pytest.raises(InvalidInput, match=r"^line 1: event_type is blank") as info:
            import_events(store, lines_of([row(plan_id, user, event_type=blank)]))
        assert info.value.field == "event_type"


def test_import_refuses_payloads_the_projection_cannot_read_unless_told_not_to_check(
    store: EventStore, engine: Engine
) -> None:
    plan_id, user = make_plan(engine)
    for event, path in [(e, p) for _, e, p in MODEL_REFUSALS][:4]:
        bad_row = row(plan_id, user, event_type=event.event_type, payload=event.payload)
        bad_row["stage"] = event.stage
        with pytest.raises(InvalidEventPayload) as info:
            import_events(store, lines_of([row(plan_id, user), bad_row]))
        assert str(info.value).startswith(f"line 2: {path}: "), str(info.value)
        assert "course_designer_plan" in str(info.value)
        assert info.value.field == "payload"
    deleted = row(
        plan_id,
        user,
        event_type="plan_created",
        payload={"name": 5},
        deleted_at="2025-05-02T00:00:00.000000Z",
    )
    with pytest.raises(InvalidEventPayload, match=r"^line 1: payload.name: "):
        import_events(store, lines_of([deleted]))  # a restore would bring it back
    assert store.version(plan_id) == 0
    unknown = row(plan_id, user, event_type="plan_created_v9", payload={"name": 5})
    assert import_events(store, lines_of([unknown])).inserted == 1
    result = import_events(store, lines_of([deleted]), validate_payloads=False)
    assert result.inserted == 1
    assert store.version(plan_id) == 2


def test_the_import_command_refuses_bad_lines_in_one_line_naming_it(
    backend_url: str, engine: Engine, tmp_path: Path
) -> None:
    plan_id, user = make_plan(engine)
    good_line = dumps_row(row(plan_id, user))
    cases: list[tuple[str, str]] = [
        (
            dumps_row(row(plan_id, user, event_type="plan_created", payload={"name": 5})),
            "line 2: payload.name: ",
        ),
        (
            with_payload_text(row(plan_id, user), '{"n": 18446744073709551617}'),
            "line 2: payload.n is an integer outside ",
        ),
        (with_payload_text(row(plan_id, user), "[" * 3000), "line 2: payload[0][0]"),
        (
            dumps_row(row(plan_id, user, deleted_at="2025-04-01T00:00:00.000000Z")),
            "line 2: deleted_at ",
        ),
        (dumps_row(row(plan_id, user, event_type="\u200b")), "line 2: event_type is blank"),
    ]
    path = tmp_path / "bad.jsonl"
    for bad_line, words in cases:
        path.write_text(f"{good_line}\n{bad_line}\n", encoding="utf-8")
        result = run_cli("import", "--database-url", backend_url, str(path))
        line = one_error_line(result, 1)
        assert f"Error: {words}" in line, line
    assert store_count(engine) == 0
    path.write_text(cases[0][0] + "\n", encoding="utf-8")
    result = run_cli("import", "--database-url", backend_url, str(path), "--no-validate-payloads")
    assert result.returncode == 0, result.stderr
    assert store_count(engine) == 1


def store_count(engine: Engine) -> int:
    return count(engine, events)
