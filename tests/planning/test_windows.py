"""Maintenance windows: open or not at an instant, the next opening, across zones, midnight and DST."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agent.api.models import RolloutSpec
from regional.planning.windows import windows


def _windows(zone: str, *ranges: tuple[list[str], str, str]) -> Any:
    raw = {"timeZone": zone, "windows": [{"days": d, "start": s, "end": e} for d, s, e in ranges]}
    return windows(RolloutSpec.model_validate(raw))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


WEEKEND_NIGHTS = (["Fri"], "22:00", "02:00")
OPEN_CASES = [
    # zone, window, instant (UTC), open
    ("UTC", (["Mon"], "09:00", "17:00"), "2026-12-07T09:00:00", True),  # a Monday, at the start
    ("UTC", (["Mon"], "09:00", "17:00"), "2026-12-07T17:00:00", False),  # the end is not inside
    ("UTC", (["Mon"], "09:00", "17:00"), "2026-12-08T10:00:00", False),  # a Tuesday
    ("UTC", WEEKEND_NIGHTS, "2026-12-04T23:30:00", True),  # Friday night
    ("UTC", WEEKEND_NIGHTS, "2026-12-05T01:59:00", True),  # past midnight: Saturday, on Friday's window
    ("UTC", WEEKEND_NIGHTS, "2026-12-05T02:00:00", False),
    ("UTC", WEEKEND_NIGHTS, "2026-12-05T23:00:00", False),  # Saturday night is not Friday's
    ("UTC", (["Sun"], "00:00", "24:00"), "2026-12-06T23:59:59", True),  # 24:00 ends at midnight
    ("UTC", (["Sun"], "00:00", "24:00"), "2026-12-07T00:00:00", False),
    ("Europe/Berlin", (["Mon"], "09:00", "10:00"), "2026-12-07T08:30:00", True),  # CET, UTC+1
    ("Europe/Berlin", (["Mon"], "09:00", "10:00"), "2026-07-06T07:30:00", True),  # CEST, UTC+2
    ("Europe/Berlin", (["Mon"], "09:00", "10:00"), "2026-07-06T08:30:00", False),
    ("Asia/Kolkata", (["Tue"], "00:00", "01:00"), "2026-12-07T18:45:00", True),  # UTC+5:30: Tuesday there
    ("America/New_York", WEEKEND_NIGHTS, "2026-12-05T05:00:00", True),  # Sat 00:00 EST
    ("Australia/Sydney", (["Sat"], "10:00", "12:00"), "2026-01-09T23:30:00", True),  # AEDT, UTC+11
    # Spring forward in Berlin, Sunday 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
    ("Europe/Berlin", (["Sun"], "02:00", "03:30"), "2026-03-29T00:59:00", False),  # 01:59 CET
    ("Europe/Berlin", (["Sun"], "02:00", "03:30"), "2026-03-29T01:00:00", True),  # 03:00 CEST
    ("Europe/Berlin", (["Sun"], "02:00", "02:30"), "2026-03-29T01:00:00", False),  # skipped hours never open
    # Fall back, Sunday 2026-10-25: 03:00 CEST returns to 02:00 CET (01:00 UTC): 02:00-03:00 happens twice.
    ("Europe/Berlin", (["Sun"], "02:00", "03:00"), "2026-10-25T00:30:00", True),  # 02:30 CEST
    ("Europe/Berlin", (["Sun"], "02:00", "03:00"), "2026-10-25T01:30:00", True),  # 02:30 CET
    ("Europe/Berlin", (["Sun"], "02:00", "03:00"), "2026-10-25T02:00:00", False),  # 03:00 CET
]


@pytest.mark.parametrize(("zone", "window", "at", "is_open"), OPEN_CASES)
def test_a_window_is_open_on_its_zones_wall_clock(zone: str, window: Any, at: str, is_open: bool) -> None:
    assert _windows(zone, window).open_at(utc(at)) is is_open


NEXT_CASES = [
    # zone, window, now (UTC), next opening (UTC)
    ("UTC", (["Mon"], "09:00", "17:00"), "2026-12-07T10:00:00", "2026-12-07T10:00:00"),  # open: now
    ("UTC", (["Mon"], "09:00", "17:00"), "2026-12-07T17:00:00", "2026-12-14T09:00:00"),  # a week on
    ("UTC", WEEKEND_NIGHTS, "2026-12-05T03:00:00", "2026-12-11T22:00:00"),
    ("Europe/Berlin", (["Sat", "Sun"], "01:00", "05:00"), "2026-12-04T12:00:00", "2026-12-05T00:00:00"),
    ("America/New_York", WEEKEND_NIGHTS, "2026-03-28T12:00:00", "2026-04-04T02:00:00"),  # EDT by then
    # The start is skipped by spring forward: the window opens when the clock resumes inside it.
    ("Europe/Berlin", (["Sun"], "02:00", "03:30"), "2026-03-28T12:00:00", "2026-03-29T01:00:00"),
    # Wholly skipped that day: the next Sunday's.
    ("Europe/Berlin", (["Sun"], "02:00", "02:30"), "2026-03-28T12:00:00", "2026-04-05T00:00:00"),
    # Repeated by fall back: the first of the two.
    ("Europe/Berlin", (["Sun"], "02:00", "03:00"), "2026-10-24T12:00:00", "2026-10-25T00:00:00"),
]


@pytest.mark.parametrize(("zone", "window", "now", "opening"), NEXT_CASES)
def test_the_next_opening(zone: str, window: Any, now: str, opening: str) -> None:
    assert _windows(zone, window).next_opening(utc(now)) == utc(opening)


@pytest.mark.parametrize(("zone", "ranges", "problem"), [
    ("UTC", [([], "01:00", "02:00")], "no window ever opens"),
    ("UTC", [(["Mon"], "03:00", "03:00")], "no window ever opens"),
    ("Mars/Olympus", [(["Mon"], "01:00", "02:00")], "unknown time zone 'Mars/Olympus'"),
    ("", [(["Mon"], "01:00", "02:00")], "unknown time zone ''"),
])
def test_windows_that_never_open_say_so_and_never_open(zone: str, ranges: Any, problem: str) -> None:
    parsed = _windows(zone, *ranges)
    assert parsed.never_open
    assert problem in parsed.problem
    assert not parsed.open_at(utc("2026-12-07T01:30:00"))
    assert parsed.next_opening(utc("2026-12-07T01:30:00")) is None


def test_without_windows_upgrades_may_start_at_any_time() -> None:
    parsed = windows(RolloutSpec())
    assert not parsed.configured
    assert not parsed.never_open
    assert parsed.open_at(utc("2026-12-07T03:00:00"))


def test_a_zero_length_window_beside_a_real_one_is_ignored() -> None:
    parsed = _windows("UTC", (["Mon"], "03:00", "03:00"), (["Tue"], "03:00", "04:00"))
    assert not parsed.never_open
    assert parsed.next_opening(utc("2026-12-07T00:00:00")) == utc("2026-12-08T03:00:00")
