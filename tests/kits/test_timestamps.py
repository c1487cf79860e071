"""Timestamps in the API's forms: what status, Events, Leases and logs write, and reading them back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from agent.kits.timestamps import micro_time, parse_time, rfc3339

MOMENT = datetime(2026, 5, 1, 12, 0, 7, 250_000, tzinfo=UTC)


@pytest.mark.parametrize(("moment", "expected"), [
    (MOMENT, "2026-05-01T12:00:07Z"),  # whole seconds: the fraction is dropped, not rounded
    (MOMENT.astimezone(timezone(timedelta(hours=2))), "2026-05-01T12:00:07Z"),  # always written in UTC
    (MOMENT.timestamp(), "2026-05-01T12:00:07Z"),  # seconds since the epoch, as a token's exp claim
    (0, "1970-01-01T00:00:00Z"),
])
def test_rfc3339_writes_utc_whole_seconds_with_a_z(moment: datetime | float, expected: str) -> None:
    assert rfc3339(moment) == expected


def test_micro_time_keeps_the_microseconds() -> None:
    assert micro_time(MOMENT.astimezone(timezone(timedelta(hours=-5)))) == "2026-05-01T12:00:07.250000Z"


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-05-01T12:00:07Z", MOMENT.replace(microsecond=0)),
    ("2026-05-01T12:00:07.250000Z", MOMENT),
    ("2026-05-01T14:00:07+02:00", MOMENT.replace(microsecond=0)),
    (None, None),
    ("", None),
    ("yesterday", None),
])
def test_parse_time_reads_what_the_api_writes(text: str | None, expected: datetime | None) -> None:
    assert parse_time(text) == expected


def test_what_is_written_reads_back() -> None:
    assert parse_time(rfc3339(MOMENT)) == MOMENT.replace(microsecond=0)
    assert parse_time(micro_time(MOMENT)) == MOMENT
