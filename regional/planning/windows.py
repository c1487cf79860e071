"""Maintenance windows: whether an upgrade or reboot may start at an instant, and when the next one opens.

A window is weekly wall-clock hours in the rollout's IANA time zone (``spec.rollout.windows``,
``spec.rollout.timeZone``): the days it starts on, ``start`` and ``end`` as ``HH:MM``. An ``end`` not after
``start`` runs past midnight into the next day (``Fri 22:00-02:00`` is open until Saturday 02:00). The
hours are the zone's clock, so across a daylight-saving change a window keeps its wall-clock hours: hours
the clock skips (spring) never open, hours it repeats (autumn) open twice. Windows that never open (no
days, a zero-length range) or an unknown zone are reported, not guessed around: no upgrade may start.

Pure: the instant is the plan's ``now`` (the runtime's clock, injected in tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.api.models import MaintenanceWindow, RolloutSpec

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
"""``datetime.weekday()`` order."""
MINUTES_PER_DAY = 24 * 60


def _minutes(wall: str) -> int:
    hours, minutes = wall.split(":")
    return int(hours) * 60 + int(minutes)


@dataclass(frozen=True)
class _Range:
    """One window on one weekday, in minutes after that day's midnight; ``end`` may pass 1440."""

    weekday: int
    start: int
    end: int


def _ranges(windows: Sequence[MaintenanceWindow]) -> list[_Range]:
    out: list[_Range] = []
    for window in windows:
        start, end = _minutes(window.start), _minutes(window.end)
        if start == end:
            continue  # zero length: never open
        if end < start:
            end += MINUTES_PER_DAY  # past midnight, into the next day
        out.extend(_Range(DAYS.index(day), start, end) for day in dict.fromkeys(window.days))
    return out


@dataclass(frozen=True)
class Windows:
    """The cluster's windows, parsed once per plan. ``problem`` says why no upgrade can ever start."""

    zone: ZoneInfo | None
    ranges: tuple[_Range, ...]
    configured: bool
    problem: str = ""
    text: str = ""
    """The windows as written, for people: ``Sat,Sun 01:00-05:00 (Europe/Berlin)``."""

    @property
    def never_open(self) -> bool:
        return bool(self.problem)

    def open_at(self, now: datetime) -> bool:
        """Whether an upgrade or reboot may start at ``now`` (an aware datetime)."""
        if not self.configured:
            return True
        if self.zone is None or not self.ranges:
            return False
        local = now.astimezone(self.zone)
        minute = local.hour * 60 + local.minute + local.second / 60
        weekday = local.weekday()
        for r in self.ranges:
            if r.weekday == weekday and r.start <= minute < r.end:
                return True
            if r.weekday == (weekday - 1) % 7 and r.start <= minute + MINUTES_PER_DAY < r.end:
                return True
        return False

    def next_opening(self, now: datetime) -> datetime | None:
        """The first instant after ``now`` at which a window is open (``now`` itself when one is); None when
        none ever opens."""
        if self.open_at(now):
            return now
        if self.zone is None or not self.ranges:
            return None
        today = now.astimezone(self.zone).date()
        starts = [
            opening
            for offset in range(-1, 9)
            for r in self.ranges
            if (day := today + timedelta(days=offset)).weekday() == r.weekday
            and (opening := _opening(day, r, self.zone)) is not None
            and opening > now
        ]
        return min(starts, default=None)


def _opening(day: date, r: _Range, zone: ZoneInfo) -> datetime | None:
    """The first instant of the window ``r`` on ``day``: its start, or, when the zone's clock skips the
    start (a spring change), the first instant after the skip, if the window is still open then."""
    wall = datetime.combine(day + timedelta(days=r.start // MINUTES_PER_DAY),
                            time(r.start % MINUTES_PER_DAY // 60, r.start % 60), tzinfo=zone)
    instant = wall.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall.replace(tzinfo=None):
        return instant
    # Skipped: before the skip the clock reads less than start, after it more. The first instant after it
    # lies between the two readings of the skipped wall time; find it to the second.
    low, high = wall.replace(fold=1).astimezone(UTC), instant
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) < wall.replace(tzinfo=None):
            low = middle
        else:
            high = middle
    end = datetime.combine(day, time(), tzinfo=None) + timedelta(minutes=r.end)
    return high if high.astimezone(zone).replace(tzinfo=None) < end else None


def windows(rollout: RolloutSpec) -> Windows:
    """Parse ``spec.rollout``'s windows; a bad zone or windows that never open become ``problem``."""
    if not rollout.windows:
        return Windows(None, (), configured=False)
    try:
        zone = ZoneInfo(rollout.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        problem = f"unknown time zone {rollout.time_zone!r} (an IANA name: Europe/Berlin)"
        return Windows(None, (), True, problem)
    ranges = tuple(_ranges(rollout.windows))
    if not ranges:
        return Windows(zone, (), True, "no window ever opens (no days, or start equal to end)")
    opening = [w for w in rollout.windows if w.days and w.start != w.end]
    text = ", ".join(f"{','.join(w.days)} {w.start}-{w.end}" for w in opening)
    return Windows(zone, ranges, True, text=f"{text} ({zone.key})")
