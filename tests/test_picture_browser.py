"""The plan page and the portfolio in a real browser: headless Chromium (Debian's
``chromium``), read back as the DOM after the page's script ran, and as screenshots.

The time control is moved through the page's address (``#known_at=...&as_of=...``),
which the page reads on load. Screenshots go to the test's temporary folder, and also to
``$EVENTSOURCE_SCREENSHOTS`` when that names a folder (to look at them).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import struct
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from projections import canonical_json, state_hash
from tests.test_picture import FIXTURE, PLAN, elements, fixture_rows, ok, state_json

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)

# The sample plan's backfilled batch was recorded at this instant; its soft-deleted
# stage_extended was retracted an hour later.
BATCH = "2026-01-26T20:10:40.840228Z"
EXTENSION = next(
    row["id"]
    for row in fixture_rows(PLAN)
    if row["event_type"] == "stage_extended" and row["deleted_at"] is not None
)


def browse(tmp: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM is not None
    profile = tmp / "chromium-profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        timeout=timeout,
        check=True,
    )


def dom(tmp: Path, page: Path, fragment: str = "", timeout: float = 120) -> str:
    return browse(tmp, "--dump-dom", page.as_uri() + fragment, timeout=timeout).stdout.decode()


def screenshot(tmp: Path, page: Path, name: str, width: int, height: int) -> Path:
    path = tmp / name
    browse(tmp, f"--screenshot={path}", f"--window-size={width},{height}", page.as_uri())
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (width, height)
    assert len(data) > 10_000, "a blank page would compress to almost nothing"
    keep = os.environ.get("EVENTSOURCE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / name)
    return path


def chart(markup: str) -> list[tuple[str, dict[str, str]]]:
    start = markup.index('class="plan-chart"')
    return elements(markup[markup.rindex("<svg", 0, start) : markup.index("</svg>", start)])


def x_of(attrs: dict[str, str]) -> float:
    if "x" in attrs:
        return float(attrs["x"])
    found = re.match(r"translate\(([-\d.]+) ([-\d.]+)\)", attrs["transform"])
    assert found is not None
    return float(found.group(1))


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    folder = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{folder / 'sample.sqlite3'}"
    ok("migrate", "--database-url", url)
    ok("import", str(FIXTURE), "--create-parents", "--database-url", url)
    path = folder / "plan.html"
    ok("timeline", PLAN, "--html", str(path), "--database-url", url)
    return url, path


def test_rendered_chart_has_every_bar_and_marker_in_time_order(
    page: tuple[str, Path], tmp_path: Path
) -> None:
    url, path = page
    found = chart(dom(tmp_path, path))
    state = state_json(url, PLAN)
    bars = {(a["data-stage"], a["data-bar"]): a for _, a in found if "data-bar" in a}
    markers = [a for _, a in found if "data-event-id" in a]
    rows = fixture_rows(PLAN)
    assert len(markers) == len(rows)
    # Stages in stage order run one after the other on the time axis.
    planned = [bars[(s["stage"], "planned")] for s in state["stages"]]
    for earlier, later in itertools.pairwise(planned):
        assert x_of(earlier) + float(earlier["width"]) <= x_of(later) + 0.2
    # Each actual bar starts where the event that started the stage sits.
    by_time = sorted(markers, key=lambda a: a["data-occurred-at"])
    for stage in state["stages"]:
        actual = bars[(stage["stage"], "actual")]
        starters = [
            m
            for m in markers
            if m["data-type"] in ("stage_started", "schedule_finalized", "plan_started")
            and "data-deleted" not in m
            and abs(x_of(m) - x_of(actual)) < 1.5
        ]
        assert starters, stage["stage"]
        assert x_of(actual) + float(actual["width"]) >= x_of(actual)
    # Markers sit at their occurred_at: later events never left of earlier ones.
    xs = [x_of(m) for m in by_time]
    assert xs == sorted(xs)
    deleted = [m["data-event-id"] for m in markers if m.get("data-deleted") == "true"]
    assert deleted == [EXTENSION]


def test_moving_the_time_control_redraws_the_engines_state(
    page: tuple[str, Path], tmp_path: Path
) -> None:
    url, path = page
    as_of = "2025-10-30T00:00:00Z"
    known_at = "2026-01-26T20:30:00Z"  # after the backfill, before the retraction
    markup = dom(tmp_path, path, f"#known_at={known_at}&as_of={as_of}")
    state = state_json(url, PLAN, "--known-at", known_at, "--as-of", as_of)
    found = chart(markup)
    root = found[0][1]
    assert root["data-known-at"] == BATCH
    assert root["data-as-of"] == "2025-10-29T06:50:39.688342Z"
    assert root["data-state-hash"] == state_hash(canonical_json(state))
    bars = {(a["data-stage"], a["data-bar"]): a for _, a in found if "data-bar" in a}
    assert {stage for stage, bar in bars if bar == "actual"} == {
        s["stage"] for s in state["stages"] if s["actual_started_at"] is not None
    }
    for stage in state["stages"]:
        planned = bars[(stage["stage"], "planned")]
        assert (planned["data-start"], planned["data-end"]) == (
            stage["planned_starts_on"],
            stage["planned_ends_on"],
        )
    # The extension was in force then: drawn as the shift it caused, marker not struck.
    assert [a["data-extension-of"] for _, a in found if "data-extension-of" in a] == [EXTENSION]
    markers = {a["data-event-id"]: a for _, a in found if "data-event-id" in a}
    assert "data-deleted" not in markers[EXTENSION]
    later = {i for i, a in markers.items() if a.get("data-view") == "later"}
    cutoff = datetime.fromisoformat(as_of)
    rows = fixture_rows(PLAN)
    assert later == {r["id"] for r in rows if datetime.fromisoformat(r["occurred_at"]) > cutoff}
    assert f'id="plan-status">{state["status"]}<' in markup
    assert "Showing the state as known at" in markup
    # Back to now: the retraction is known, the extension gone from the bars.
    now = chart(dom(tmp_path, path, "#known_at=now&as_of=latest"))
    assert not [a for _, a in now if "data-extension-of" in a]
    assert {a["data-event-id"]: a for _, a in now if "data-event-id" in a}[EXTENSION][
        "data-deleted"
    ] == "true"


def test_markers_are_keyboard_focusable_with_text_alternatives(
    page: tuple[str, Path], tmp_path: Path
) -> None:
    _url, path = page
    found = chart(dom(tmp_path, path))
    root = found[0][1]
    assert root["role"] == "group"
    assert root["aria-labelledby"] == "chart-title chart-desc"
    for tag, attrs in found:
        if "data-event-id" in attrs:
            assert tag == "a"
            assert attrs["href"] == f"#ev-{attrs['data-event-id']}"
            assert attrs["aria-label"].startswith(attrs["data-type"])
    # Focusing a marker (the page focuses the one its address names) shows its details.
    markup = dom(tmp_path, path, f"#event={EXTENSION}")
    details = re.search(r'<div class="details" id="details"([^>]*)>(.*?)</div>', markup, re.S)
    assert details is not None
    assert "hidden" not in details.group(1)
    assert f'data-event-id="{EXTENSION}"' in details.group(1)
    assert "stage_extended" in details.group(2)
    assert "0ecaf828-e2f7-4553-8fcc-69d79561a0d1" in details.group(2)  # the full actor


def test_screenshots_at_desktop_and_phone_width(page: tuple[str, Path], tmp_path: Path) -> None:
    _, path = page
    screenshot(tmp_path, path, "plan-1280.png", 1280, 900)
    screenshot(tmp_path, path, "plan-390.png", 390, 844)


@pytest.fixture(scope="module")
def portfolio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10,000 generated plans, drawn as one report page."""
    folder = tmp_path_factory.mktemp("portfolio")
    url = f"sqlite:///{folder / 'many.sqlite3'}"
    log = folder / "many.jsonl"
    ok("generate", "--plans", "10000", "--seed", "5", "-o", str(log))
    ok("migrate", "--database-url", url)
    ok("import", str(log), "--create-parents", "--database-url", url)
    path = folder / "report.html"
    out = ok("report", "--html", str(path), "--database-url", url)
    assert "wrote 10000 plans" in out
    return path


@pytest.mark.slow
def test_report_of_10000_plans_stays_small_and_renders(portfolio: Path, tmp_path: Path) -> None:
    size = portfolio.stat().st_size
    assert size < 10_000 * 1_000, f"{size} bytes: more than 1 kB a plan"
    markup = dom(tmp_path, portfolio, timeout=240)
    rows: list[dict[str, Any]] = [a for tag, a in elements(markup) if tag == "li"]
    assert len(rows) == 10_000
    assert re.search(r'<ol class="plans" data-count="10000"', markup)
    assert sum(" od" in a["class"] for a in rows) > 0
    screenshot(tmp_path, portfolio, "report-1280.png", 1280, 900)
    screenshot(tmp_path, portfolio, "report-390.png", 390, 844)
