"""One condition among a status' conditions: when it is written, what its transition time says, what stays."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agent.decisions.reporting import condition_patch

NOW = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
BEFORE = "2026-01-01T00:00:00Z"
OTHER = {"type": "Other", "status": "True", "reason": "Fine", "message": "", "lastTransitionTime": BEFORE}


def held(status: str, reason: str = "Converged", message: str = "no drift") -> dict[str, Any]:
    return {"type": "Reconciled", "status": status, "reason": reason, "message": message,
            "lastTransitionTime": BEFORE}


@pytest.mark.parametrize(("current", "status", "reason", "message", "status_only", "since"), [
    (None, "True", "Converged", "no drift", False, "2026-05-06T07:08:09Z"),  # new: the time is now
    (held("True"), "True", "Converged", "no drift", False, None),  # says it already: no write
    (held("True"), "True", "Converged", "converged engine", False, BEFORE),  # new message, same status
    (held("True"), "False", "ReconcileFailed", "boom", False, "2026-05-06T07:08:09Z"),  # a flip moves it
    (held("False", "AgentOffline"), "False", "HeartbeatMissed", "", True, None),  # status_only: no write
    (held("False"), "True", "Converged", "no drift", True, "2026-05-06T07:08:09Z"),
])
def test_the_condition_is_written_only_when_it_changes(
    current: dict[str, Any] | None, status: str, reason: str, message: str, status_only: bool,
    since: str | None,
) -> None:
    conditions = [OTHER] if current is None else [current, OTHER]
    patch = condition_patch(conditions, "Reconciled", status, reason, message, NOW, generation=3,
                            status_only=status_only)
    if since is None:
        assert patch is None
        return
    assert patch == {"status": {"conditions": [OTHER, {
        "type": "Reconciled", "status": status, "reason": reason, "message": message,
        "lastTransitionTime": since, "observedGeneration": 3}]}}


def test_without_a_generation_no_observed_generation_is_written() -> None:
    patch = condition_patch([], "Reconciled", "True", "Converged", "", NOW)
    assert patch is not None
    assert "observedGeneration" not in patch["status"]["conditions"][0]
