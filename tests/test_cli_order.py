"""One order everywhere: every newest-first view is exactly the stream order reversed,
the projection's tie rank included, page after page."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from click.testing import CliRunner, Result

from eventsource import EventStore, NewEvent, RecordedEvent, create_plan, create_user
from eventsource.cli import main
from eventsource.timeline_order import decode_cursor, encode_cursor, newest_first
from projections.course_designer import CourseDesignerPlanProjection

PROJECTION = CourseDesignerPlanProjection()
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def ident(n: int) -> UUID:
    return UUID(int=n)


def tied_plan(store: EventStore) -> UUID:
    """A plan whose same-transaction groups have ids ordered against the tie rank.

    In each group ``stage_completed`` (rank 0) has the highest id and ``stage_started``
    (rank 1) the lowest, so ordering ties by id alone puts a stage's start before the
    previous stage's completion.
    """
    user = create_user(store)
    plan = create_plan(store, created_by_user_id=user)
    store.append(plan, [NewEvent("plan_created", {"name": "ties"}, actor_user_id=user)])
    stages = ["analysis", "design", "development", "implementation", "evaluation"]
    for k in range(4):
        at = T0 + timedelta(hours=k)
        base = (k + 1) * 1000
        store.append(
            plan,
            [
                NewEvent(
                    "stage_completed", {}, stage=stages[k], occurred_at=at, id=ident(base + 900)
                ),
                NewEvent("note_added", {"k": k}, occurred_at=at, id=ident(base + 500)),
                NewEvent(
                    "stage_started", {}, stage=stages[k + 1], occurred_at=at, id=ident(base + 1)
                ),
            ],
        )
    at = T0 + timedelta(hours=9)
    store.append(
        plan,
        [
            NewEvent("plan_completed", {}, occurred_at=at, id=ident(99_001)),
            NewEvent("stage_completed", {}, stage="evaluation", occurred_at=at, id=ident(99_900)),
        ],
    )
    return plan


def expected_newest_first(store: EventStore, plan: UUID) -> list[RecordedEvent]:
    return list(reversed(list(store.read(plan, tie_rank=PROJECTION.tie_rank))))


def test_the_store_timeline_alone_puts_a_start_before_the_completion(store: EventStore) -> None:
    """Why the view layer orders ties: the index's order is not the fold's."""
    plan = tied_plan(store)
    by_index = [e.id for e in store.timeline(plan, limit=1000).events]
    assert by_index != [e.id for e in expected_newest_first(store, plan)]


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 50])
def test_newest_first_pages_are_the_stream_reversed(store: EventStore, limit: int) -> None:
    plan = tied_plan(store)
    expected = [e.id for e in expected_newest_first(store, plan)]
    seen: list[UUID] = []
    cursor = None
    while True:
        page = newest_first(store, plan, PROJECTION.tie_rank, before=cursor, limit=limit)
        assert 1 <= len(page.events) <= limit
        seen += [e.id for e in page.events]
        if page.next_cursor is None:
            break
        cursor = decode_cursor(encode_cursor(page.next_cursor))
    assert seen == expected


def test_without_a_tie_rank_newest_first_is_the_store_timeline(store: EventStore) -> None:
    plan = tied_plan(store)
    page = newest_first(store, plan, {}, limit=1000)
    assert [e.id for e in page.events] == [e.id for e in store.timeline(plan, limit=1000).events]


def cli(*args: str) -> Result:
    result = CliRunner(env={"COLUMNS": "80"}).invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_every_timeline_view_has_the_same_order(store: EventStore, backend_url: str) -> None:
    plan = tied_plan(store)
    expected = expected_newest_first(store, plan)
    ids = [str(e.id) for e in expected]
    url = ["--database-url", backend_url]

    document = json.loads(cli("timeline", str(plan), "--format", "json", *url).stdout)
    assert [e["id"] for e in document["events"]] == ids
    jsonl = cli("timeline", str(plan), "--format", "jsonl", *url).stdout.splitlines()
    assert [json.loads(line)["id"] for line in jsonl] == ids
    changes = json.loads(cli("timeline", str(plan), "--changes", "--format", "json", *url).stdout)
    assert [r["id"] for r in changes] == ids

    # The text views: one header line an event, in the same order.
    for extra in ([], ["--changes"]):
        text = cli("timeline", str(plan), *extra, *url).stdout
        headers = [line.split()[1] for line in text.splitlines() if re.match(r"\d{4}-", line)]
        assert headers == [e.event_type for e in expected], extra


@pytest.mark.parametrize("changes", [False, True], ids=["plain", "changes"])
def test_paging_the_text_views_with_before_covers_the_plan_once(
    store: EventStore, backend_url: str, changes: bool
) -> None:
    plan = tied_plan(store)
    expected = [e.event_type for e in expected_newest_first(store, plan)]
    seen: list[str] = []
    before: list[str] = []
    while True:
        extra = ["--changes"] if changes else []
        args = ["timeline", str(plan), "--limit", "2", *extra, *before]
        text = cli(*args, "--database-url", backend_url).stdout
        seen += [line.split()[1] for line in text.splitlines() if re.match(r"\d{4}-", line)]
        found = re.search(r"more: --before '([^']+)'", text)
        if found is None:
            break
        before = ["--before", found.group(1)]
    assert seen == expected
