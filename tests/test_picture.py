"""The plan's picture (timeline --html/--svg), the demo's page and the portfolio report,
as a user runs them; the page's markup read as a test would (no browser here: see
test_picture_browser.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from eventsource import EventStore, NewEvent, NoEventsAsOf, RecordedEvent
from eventsource.config import make_engine
from eventsource.transfer import import_events
from projections import ProjectionEngine, canonical_json, discover, state_hash
from projections.picture import MAX_AXIS_POINTS, MAX_VIEWS, build_picture, render_html, time_axes
from tests.clirun import run_cli
from tests.conftest import DATA

FIXTURE = DATA / "course_designer_events.jsonl"
# A plan of the sample data with a backfilled import, a soft-deleted stage_extended
# and a completed schedule.
PLAN = "57eaf131-d4a8-419f-8e14-7bf39921d0fc"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventsource", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
    )


def ok(*args: str, cwd: Path | None = None) -> str:
    result = cli(*args, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The sample data, imported into a fresh SQLite database through the CLI."""
    url = f"sqlite:///{tmp_path_factory.mktemp('picture') / 'sample.sqlite3'}"
    ok("migrate", "--database-url", url)
    ok("import", str(FIXTURE), "--create-parents", "--database-url", url)
    return url


def fixture_rows(plan: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]
    return [row for row in rows if row["course_designer_plan_id"] == plan]


class Elements(HTMLParser):
    """Every start tag of a document with its attributes (what a test reads)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))

    handle_startendtag = handle_starttag


def elements(markup: str) -> list[tuple[str, dict[str, str]]]:
    parser = Elements()
    parser.feed(markup)
    return parser.found


def state_json(url: str, plan: str, *extra: str) -> dict[str, Any]:
    return dict(json.loads(ok("state", plan, "--format", "json", "--database-url", url, *extra)))


def travel(markup: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="travel-data">(.*?)</script>', markup)
    assert found is not None
    return dict(json.loads(found.group(1)))


def test_timeline_html_and_svg_draw_every_stage_bar_and_every_event(
    sample_db: str, tmp_path: Path
) -> None:
    page, chart = tmp_path / "plan.html", tmp_path / "plan.svg"
    out = ok(
        "timeline", PLAN, "--html", str(page), "--svg", str(chart), "--database-url", sample_db
    )
    assert str(page) in out
    assert str(chart) in out
    state = state_json(sample_db, PLAN)
    rows = fixture_rows(PLAN)
    for markup in (page.read_text(), chart.read_text()):
        found = elements(markup.split("</svg>")[0])  # the chart: the page's first svg
        bars = {(a["data-stage"], a["data-bar"]): a for _, a in found if "data-bar" in a}
        for stage in state["stages"]:
            planned = bars[(stage["stage"], "planned")]
            assert (planned["data-start"], planned["data-end"]) == (
                stage["planned_starts_on"],
                stage["planned_ends_on"],
            )
            actual = bars[(stage["stage"], "actual")]
            assert actual["data-start"] == stage["actual_started_at"]
        markers = {a["data-event-id"]: a for _, a in found if "data-event-id" in a}
        assert set(markers) == {row["id"] for row in rows}
        deleted = {row["id"] for row in rows if row["deleted_at"] is not None}
        assert deleted, "the sample plan has a soft-deleted event"
        assert {i for i, a in markers.items() if a.get("data-deleted") == "true"} == deleted
        backfilled = {row["id"] for row in rows if row["created_at"] > row["occurred_at"]}
        assert {i for i, a in markers.items() if a.get("data-backfilled") == "true"} == backfilled
    # The static SVG is a well-formed document of its own, with its style inside.
    root = ET.fromstring(chart.read_text())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "Course plan 282" in chart.read_text()


def test_page_is_self_contained_and_works_without_its_script(
    sample_db: str, tmp_path: Path
) -> None:
    page = tmp_path / "plan.html"
    ok("timeline", PLAN, "--html", str(page), "--database-url", sample_db)
    markup = page.read_text()
    # Nothing fetched: no external scripts, styles, images or fonts.
    assert not re.search(r"<(link|img|iframe)\b", markup)
    assert not re.search(r"<script[^>]+src=", markup)
    assert "@import" not in markup
    assert "url(http" not in markup
    addresses = set(re.findall(r"https?://[^\s\"'<>)]+", markup))
    assert addresses <= {"http://www.w3.org/2000/svg"}
    # Without the script: the controls stay hidden, and the chart, stage table and
    # header already show the current state.
    assert '<form class="travel" id="travel" hidden>' in markup
    state = state_json(sample_db, PLAN)
    head = markup.split("<svg", 1)[0]
    assert f'id="plan-status">{state["status"]}<' in head
    assert 'data-known-at="now" data-as-of="latest"' in markup
    digest = state_hash(canonical_json(state))
    assert f'data-state-hash="{digest}"' in markup
    # The inline chart is well-formed XML too.
    inline = markup[markup.index('<svg xmlns="http://www.w3.org/2000/svg" class="plan-chart"') :]
    ET.fromstring(inline[: inline.index("</svg>") + len("</svg>")])


def hash_at(engine: ProjectionEngine, projection: Any, **when: Any) -> str:
    """The engine's state hash then; before the plan's first event (``NoEventsAsOf``)
    the picture draws the state before any event, so that hash."""
    try:
        return engine.load(projection, UUID(PLAN), **when).hash
    except NoEventsAsOf:
        return state_hash(canonical_json(projection.to_json(projection.initial_state(UUID(PLAN)))))


def test_every_embedded_state_is_the_engines_state_for_that_time(
    sample_db: str, tmp_path: Path
) -> None:
    """The page's time travel agrees with `state --known-at --as-of` at every point."""
    page = tmp_path / "plan.html"
    ok("timeline", PLAN, "--html", str(page), "--database-url", sample_db)
    data = travel(page.read_text())
    rows = fixture_rows(PLAN)
    assert len(data["valid"]) == len({r["occurred_at"] for r in rows}) + 2  # before, latest
    assert data["valid"][-1] is None
    assert data["record"][-1] is None
    store = EventStore(make_engine(sample_db))
    engine = ProjectionEngine(store, snapshot_every=None)
    projection = discover().get_projection(None)
    n_valid = len(data["valid"])

    def parse(value: str | None) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))

    for k, known in enumerate(data["record"]):
        for v, as_of in enumerate(data["valid"]):
            combo = data["views"][data["grid"][k * n_valid + v]]
            head = data["heads"][combo[2]]
            digest = hash_at(engine, projection, as_of=parse(as_of), known_at=parse(known))
            assert head[4] == digest, (known, as_of)
    # Before anything was recorded the page draws the state before any event, and the
    # command line says the plan had no events then.
    before = run_cli("state", PLAN, "--known-at", data["record"][0], "--database-url", sample_db)
    assert before.returncode == 1
    assert f"plan {PLAN} has no events as of" in before.stderr
    # And through the command line, at a few points a user would pick.
    for known, as_of in [
        (data["record"][1], data["valid"][2]),
        (data["record"][-2], data["valid"][-2]),
        (data["record"][1], None),
    ]:
        args = (["--known-at", known] if known else []) + (["--as-of", as_of] if as_of else [])
        state = state_json(sample_db, PLAN, *args)
        k, v = data["record"].index(known), data["valid"].index(as_of)
        combo = data["views"][data["grid"][k * n_valid + v]]
        assert data["heads"][combo[2]][4] == state_hash(canonical_json(state))
        fragment = "".join(data["pieces"][i] for i in combo[0])
        for stage in state["stages"]:
            assert (
                f'data-stage="{stage["stage"]}" data-bar="planned" '
                f'data-start="{stage["planned_starts_on"]}" '
                f'data-end="{stage["planned_ends_on"]}"' in fragment
            )


def test_marks_follow_record_time_for_a_deleted_then_restored_event(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'restore.sqlite3'}"
    ok("migrate", "--database-url", url)
    plan = "11111111-2222-4333-8444-555555555555"
    store = EventStore(make_engine(url))
    first = datetime(2025, 1, 2, 9, 0, tzinfo=UTC)
    event_id = "aaaaaaaa-0000-4000-8000-000000000001"
    row = {
        "id": event_id,
        "course_designer_plan_id": plan,
        "actor_user_id": None,
        "event_type": "plan_created",
        "stage": None,
        "payload": {"name": "Restored"},
        "occurred_at": first.isoformat().replace("+00:00", "Z"),
        "created_at": first.isoformat().replace("+00:00", "Z"),
        "updated_at": first.isoformat().replace("+00:00", "Z"),
        "deleted_at": None,
    }
    import_events(store, [json.dumps(row)], create_parents=True)
    store.append(UUID(plan), [NewEvent("weekly_stage_reminder_sent", {"n": 1})])
    ok("delete", event_id, "--database-url", url)
    ok("restore", event_id, "--database-url", url)
    page = tmp_path / "restored.html"
    ok("timeline", plan, "--html", str(page), "--database-url", url)
    data = travel(page.read_text())
    index = data["events"].index(event_id)
    # Record times: before, created, the reminder, the delete, the restore, then "now".
    assert len(data["record"]) == 6
    latest = len(data["valid"]) - 1
    views = [data["views"][data["grid"][k * len(data["valid"]) + latest]] for k in range(6)]
    marks = [data["marks"][view[3]] for view in views]
    assert [m[index] for m in marks] == ["u", "l", "l", "x", "l", "l"]
    markers = {a["data-event-id"]: a for _, a in elements(page.read_text()) if "data-event-id" in a}
    assert "data-deleted" not in markers[event_id]
    # The reminder is a type the projection skips: drawn, set apart.
    others = [a for a in markers.values() if a.get("data-unknown-type") == "true"]
    assert [a["data-type"] for a in others] == ["weekly_stage_reminder_sent"]


def test_time_axes_stay_bounded_and_keep_the_ends() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    plan = UUID(int=1)
    rows = [
        RecordedEvent(
            UUID(int=i + 10),
            plan,
            "stage_extended",
            {},
            "design",
            None,
            start + timedelta(hours=i),
            start + timedelta(hours=i, minutes=30),
            start,
            start + timedelta(days=100, hours=i) if i % 3 == 0 else None,
        )
        for i in range(600)
    ]
    valid, record = time_axes(rows, [])
    assert len(valid) <= MAX_AXIS_POINTS
    assert len(record) <= MAX_AXIS_POINTS
    assert (len(valid) + 2) * (len(record) + 2) <= MAX_VIEWS
    assert valid[0] == rows[0].occurred_at
    assert valid[-1] == rows[-1].occurred_at
    assert record[0] == rows[0].created_at
    assert record[-1] == max(r.deleted_at for r in rows if r.deleted_at is not None)
    assert valid == sorted(valid)
    assert len(set(valid)) == len(valid)
    small = rows[:5]
    deletions = {r.deleted_at for r in small if r.deleted_at is not None}
    assert len(deletions) == 2
    assert time_axes(small, []) == (
        [r.occurred_at for r in small],
        sorted({r.created_at for r in small} | deletions),
    )


def test_names_and_payloads_are_escaped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'escape.sqlite3'}"
    ok("migrate", "--database-url", url)
    store = EventStore(make_engine(url))
    plan = "22222222-2222-4333-8444-555555555555"
    at = "2025-03-01T10:00:00Z"
    evil = '<script>alert("x")</script>&'
    row = {
        "id": "bbbbbbbb-0000-4000-8000-000000000001",
        "course_designer_plan_id": plan,
        "actor_user_id": None,
        "event_type": "plan_created",
        "stage": None,
        "payload": {"name": evil},
        "occurred_at": at,
        "created_at": at,
        "updated_at": at,
        "deleted_at": None,
    }
    import_events(store, [json.dumps(row)], create_parents=True)
    page, chart = tmp_path / "p.html", tmp_path / "p.svg"
    ok("timeline", plan, "--html", str(page), "--svg", str(chart), "--database-url", url)
    markup = page.read_text()
    assert evil not in markup
    assert markup.count("<script") == 2  # the page's own data and script, nothing else
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in markup
    ET.fromstring(chart.read_text())


def test_unknown_plan_is_one_line_and_writes_nothing(sample_db: str, tmp_path: Path) -> None:
    page = tmp_path / "none.html"
    result = cli(
        "timeline",
        "00000000-0000-4000-8000-000000000000",
        "--html",
        str(page),
        "--database-url",
        sample_db,
    )
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "00000000-0000-4000-8000-000000000000" in result.stderr
    assert not page.exists()


def test_timeline_without_html_still_lists_events(sample_db: str) -> None:
    out = ok("timeline", PLAN, "--format", "json", "--database-url", sample_db)
    assert len(json.loads(out)["events"]) == sum(
        1 for row in fixture_rows(PLAN) if row["deleted_at"] is None
    )


def test_demo_writes_the_plans_page_beside_its_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    out = ok("demo", "--plans", "3", "--seed", "2", "--database-url", url, cwd=tmp_path)
    pages = list(tmp_path.glob("plan-*.html"))
    assert len(pages) == 1
    assert str(pages[0]) in out.replace("\n", "")
    assert 'data-bar="planned"' in pages[0].read_text()


# --- The portfolio ----------------------------------------------------------------


def test_report_draws_one_row_per_plan_with_overdue_stages_flagged(
    sample_db: str, tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    out = ok("report", "--html", str(page), "--database-url", sample_db)
    assert "300 plans" in out
    markup = page.read_text()
    rows = [a for tag, a in elements(markup) if tag == "li"]
    assert len(rows) == 300
    states = [
        json.loads(line)
        for line in ok("state", "--all", "--format", "jsonl", "--database-url", sample_db)
        .strip()
        .splitlines()
    ]
    drawn_at = re.search(r'data-drawn-at="([^"]+)"', markup)
    assert drawn_at is not None
    now = datetime.fromisoformat(drawn_at.group(1).replace("Z", "+00:00"))

    def overdue(state: dict[str, Any]) -> bool:
        return any(
            s["status"] != "completed"
            and datetime.fromisoformat(s["planned_ends_on"]).replace(tzinfo=UTC) + timedelta(days=1)
            < now
            for s in state["stages"]
        )

    assert sum(" od" in a["class"] for a in rows) == sum(map(overdue, states))
    by_status: dict[str, int] = {}
    for state in states:
        by_status[state["status"]] = by_status.get(state["status"], 0) + 1
    for status, count in by_status.items():
        assert sum(a["class"].split()[0] == f"s-{status}" for a in rows) == count
    assert "<script" not in markup


def test_report_status_filter_and_pages(sample_db: str, tmp_path: Path) -> None:
    page = tmp_path / "out" / "done.html"
    page.parent.mkdir()
    out = ok(
        "report",
        "--html",
        str(page),
        "--status",
        "completed",
        "--pages",
        str(tmp_path / "out" / "plans"),
        "--database-url",
        sample_db,
    )
    markup = page.read_text()
    links = re.findall(r'<a href="([^"]+)"', markup)
    completed = [
        line
        for line in ok(
            "state", "--all", "--format", "jsonl", "--database-url", sample_db
        ).splitlines()
        if json.loads(line)["status"] == "completed"
    ]
    assert f"wrote {len(completed)} plans" in out
    assert len(links) == len(completed) > 0
    for link in links:
        assert link.startswith("plans/")
        assert (page.parent / link).is_file()
    assert all(a["class"].startswith("s-completed") for t, a in elements(markup) if t == "li")
    bad = cli("report", "--html", str(page), "--status", "finished", "--database-url", sample_db)
    assert bad.returncode == 2
    assert "finished" in bad.stderr


def test_picture_on_every_backend_follows_deletes_and_restores(store: EventStore) -> None:
    """The picture reads the store's retraction history on SQLite and PostgreSQL alike."""
    rows = fixture_rows(PLAN)
    import_events(store, [json.dumps(row) for row in rows], create_parents=True)
    live = [row["id"] for row in rows if row["deleted_at"] is None]
    restored = live[-1]
    assert store.soft_delete(restored)
    assert store.restore(restored)
    projection = discover().get_projection(None)
    now = datetime(2027, 1, 1, tzinfo=UTC)
    picture = build_picture(store, projection, UUID(PLAN), now=now)
    assert picture.now == now
    assert (
        len(picture.record_axis)
        == len({r["created_at"] for r in rows} | {r["deleted_at"] for r in rows if r["deleted_at"]})
        + 4
    )  # before, the delete, the restore, "now"
    engine = ProjectionEngine(store, snapshot_every=None)
    index = [str(entry.event.id) for entry in picture.events].index(restored)
    latest = len(picture.valid_axis) - 1
    marks = [picture.views[(k, latest)].marks[index] for k in range(len(picture.record_axis))]
    assert marks[-3:] == ["x", "l", "l"]
    for (k, v), view in picture.views.items():
        digest = hash_at(
            engine, projection, as_of=picture.valid_axis[v], known_at=picture.record_axis[k]
        )
        assert view.hash == digest
    page = render_html(picture)
    assert page.count('data-bar="planned"') == len(picture.current.state["stages"])


def test_files_that_cannot_be_written_and_bad_links_are_one_line(
    sample_db: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = cli("timeline", PLAN, "--svg", str(blocker / "x.svg"), "--database-url", sample_db)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "x.svg" in result.stderr
    nested = tmp_path / "new" / "folder" / "plan.svg"
    ok("timeline", PLAN, "--svg", str(nested), "--database-url", sample_db)
    assert nested.read_text().startswith("<svg")
    bad = cli(
        "report", "--html", str(tmp_path / "r.html"), "--link", "{id}", "--database-url", sample_db
    )
    assert bad.returncode == 2
    assert "{plan_id}" in bad.stderr
    assert not (tmp_path / "r.html").exists()
