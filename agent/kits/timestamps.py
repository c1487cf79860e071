"""Timestamps as the Kubernetes API writes and reads them.

One copy of each form, so a status field, an Event, a Lease and a log line that name the same moment spell
it the same way: ``metav1.Time`` (whole seconds, a literal Z), ``metav1.MicroTime`` (microseconds), and the
reading back of either.
"""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(moment: datetime | float) -> str:
    """Kubernetes' timestamp form (``2024-05-01T12:00:00Z``): UTC, whole seconds, a literal Z. ``moment`` is
    an aware datetime, or seconds since the epoch (a token's ``exp`` claim)."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(moment: datetime) -> str:
    """metav1.MicroTime's wire form (a Lease's acquire and renew times)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 timestamp from the API (``Z`` suffix), or None when absent or unreadable."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
