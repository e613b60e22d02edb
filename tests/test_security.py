"""Untrusted strings (the least-privilege roles are ``tests/test_roles.py``'s).

On both backends, SQL-injection shaped event types, payload keys and values are
stored and read back verbatim, and such strings as plan ids on the command line
are refused without touching a table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any
from uuid import UUID

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, inspect, select

from eventsource import EventStore
from eventsource.cli import main
from eventsource.events import NewEvent
from eventsource.jsonl import dumps_row, event_to_row
from eventsource.tables import events, metadata
from eventsource.transfer import export_rows, import_events
from projections.worker import Worker
from tests.test_worker import (
    LEDGER,
    Ledger,
    assert_snapshots_are_fresh_folds,
    note,
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
            assert "rebuilt 1 plan" in result.output
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
