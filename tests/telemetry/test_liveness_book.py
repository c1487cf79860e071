"""The liveness book (pure): when a machine counts as reachable, and which condition writes are due."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent.scheduler.liveness import CONDITION, LivenessBook, Verdict, condition_patch

A, B = ("ns", "a"), ("ns", "b")


def _book(settle: float = 0.0) -> LivenessBook:
    book = LivenessBook(grace=1.5, settle=settle, default_interval=10.0)
    book.connected(0.0)
    return book


@pytest.mark.parametrize(("events", "now", "reachable", "reason"), [
    ([("beat", 0.0)], 14.9, True, "HeartbeatReceived"),
    ([("beat", 0.0)], 15.1, False, "HeartbeatMissed"),
    ([("beat", 0.0), ("beat", 10.0)], 24.0, True, "HeartbeatReceived"),
    ([("beat", 0.0), ("will", 1.0)], 1.0, False, "AgentOffline"),
    ([("beat", 0.0), ("stopped", 1.0)], 1.0, False, "AgentStopped"),
    ([("will", 0.0), ("online", 5.0)], 5.0, True, "HeartbeatReceived"),
    ([("will", 0.0), ("beat", 5.0)], 5.0, True, "HeartbeatReceived"),
])
def test_verdicts(events: list[tuple[str, float]], now: float, reachable: bool, reason: str) -> None:
    book = _book()
    for what, at in events:
        if what == "beat":
            book.heard(A, at, interval=10.0)
        else:
            book.heard(A, at, online=what == "online", reason={"will": "lost"}.get(what, what))
    verdict = book.verdict(A, now)
    assert (verdict.reachable, verdict.reason) == (reachable, reason)


def test_the_interval_is_each_machines_own() -> None:
    book = _book()
    book.heard(A, 0.0, interval=60.0)
    book.heard(B, 0.0, interval=2.0)
    assert book.verdict(A, 30.0).reachable
    assert not book.verdict(B, 30.0).reachable


def test_only_transitions_are_due_and_each_once_written() -> None:
    book = _book()
    book.recorded[A] = True
    book.heard(A, 0.0, interval=10.0)
    book.heard(B, 0.0, interval=10.0)
    assert book.due(1.0) == [(B, Verdict(True, "HeartbeatReceived", "heartbeats every 10s"))]
    book.recorded[B] = True
    for second in range(2, 15):
        book.heard(A, float(second), interval=10.0)
        book.heard(B, float(second), interval=10.0)
        assert book.due(float(second)) == [], "steady heartbeats cost no writes"
    book.heard(A, 15.0, online=False, reason="lost")
    assert [(key, v.reachable) for key, v in book.due(15.0)] == [(A, False)]


def test_after_connecting_bad_news_waits_for_the_fleet_to_come_back() -> None:
    book = _book(settle=40.0)
    book.recorded.update({A: True, B: True})
    book.heard(A, 0.0, online=False, reason="lost")  # the broker's retained will from before its restart
    book.heard(B, 0.0, online=False, reason="lost")
    assert book.due(10.0) == []
    book.heard(A, 20.0)  # A reconnects: it says online, then beats
    book.heard(A, 30.0, interval=10.0)
    assert book.due(39.0) == []
    assert [(key, v.reason) for key, v in book.due(40.0)] == [(B, "AgentOffline")]


def test_the_condition_patch_keeps_other_conditions_and_guards_the_version() -> None:
    other = {"type": "ReconcilerConverged", "status": "True", "reason": "Converged", "message": "",
             "lastTransitionTime": "2024-01-01T00:00:00Z"}
    raw = {"metadata": {"resourceVersion": "41"}, "status": {"conditions": [other]}}
    now = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    patch = condition_patch(raw, Verdict(False, "AgentOffline", "gone"), now)
    assert patch == {"metadata": {"resourceVersion": "41"}, "status": {"conditions": [other, {
        "type": CONDITION, "status": "False", "reason": "AgentOffline", "message": "gone",
        "lastTransitionTime": "2024-05-06T07:08:09Z"}]}}
    raw["status"]["conditions"] = patch["status"]["conditions"]
    assert condition_patch(raw, Verdict(False, "HeartbeatMissed", "still gone"), now) is None


def test_a_queued_write_is_checked_again_when_its_turn_comes() -> None:
    book = _book()
    book.recorded[A] = True
    book.heard(A, 0.0, interval=10.0)
    assert [key for key, _ in book.due(16.0)] == [A], "silent past the grace: due"
    book.heard(A, 17.0, interval=10.0)  # it beats again while the write waits for its token
    assert book.still_due(A, 17.5) is None
