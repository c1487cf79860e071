"""The liveness book (pure): when a machine counts as reachable, and which condition writes are due."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from regional.planning.liveness import CONDITION, LivenessBook, Verdict, liveness_patch

A, B = ("ns", "a"), ("ns", "b")


def _book(settle: float = 0.0) -> LivenessBook:
    book = LivenessBook(grace=1.5, settle=settle, default_interval=10.0)
    book.connected(0.0)
    return book


def due(book: LivenessBook, now: float) -> list[tuple[tuple[str, str], Verdict]]:
    """``book.due(now)`` with the subscriber's own probes back every period until ``now``: the broker
    works."""
    at = book.proven_at if book.proven_at is not None else 0.0
    while at < now:
        at = min(now, at + book.probe_period)
        book.proven(at)
    return book.due(now)


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
    assert due(book, 1.0) == [(B, Verdict(True, "HeartbeatReceived", "heartbeats every 10s"))]
    book.recorded[B] = True
    for second in range(2, 15):
        book.heard(A, float(second), interval=10.0)
        book.heard(B, float(second), interval=10.0)
        assert due(book, float(second)) == [], "steady heartbeats cost no writes"
    book.heard(A, 15.0, online=False, reason="lost")
    assert [(key, v.reachable) for key, v in due(book, 15.0)] == [(A, False)]


def test_after_connecting_bad_news_waits_for_the_fleet_to_come_back() -> None:
    book = _book(settle=40.0)
    book.recorded.update({A: True, B: True})
    book.heard(A, 0.0, online=False, reason="lost")  # the broker's retained will from before its restart
    book.heard(B, 0.0, online=False, reason="lost")
    assert due(book, 10.0) == []
    book.heard(A, 20.0)  # A reconnects: it says online, then beats
    book.heard(A, 30.0, interval=10.0)
    assert due(book, 39.0) == []
    assert [(key, v.reason) for key, v in due(book, 40.0)] == [(B, "AgentOffline")]


def test_the_condition_patch_keeps_other_conditions_and_guards_the_version() -> None:
    other = {"type": "ReconcilerConverged", "status": "True", "reason": "Converged", "message": "",
             "lastTransitionTime": "2024-01-01T00:00:00Z"}
    raw = {"metadata": {"resourceVersion": "41"}, "status": {"conditions": [other]}}
    now = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    patch = liveness_patch(raw, Verdict(False, "AgentOffline", "gone"), now)
    assert patch == {"metadata": {"resourceVersion": "41"}, "status": {"conditions": [other, {
        "type": CONDITION, "status": "False", "reason": "AgentOffline", "message": "gone",
        "lastTransitionTime": "2024-05-06T07:08:09Z"}]}}
    raw["status"]["conditions"] = patch["status"]["conditions"]
    assert liveness_patch(raw, Verdict(False, "HeartbeatMissed", "still gone"), now) is None


def test_a_queued_write_is_checked_again_when_its_turn_comes() -> None:
    book = _book()
    book.recorded[A] = True
    book.heard(A, 0.0, interval=10.0)
    assert [key for key, _ in due(book, 16.0)] == [A], "silent past the grace: due"
    book.heard(A, 17.0, interval=10.0)  # it beats again while the write waits for its token
    assert book.still_due(A, 17.5) is None


def test_silence_counts_only_up_to_the_last_probe_back() -> None:
    """The broker hangs at 2 s (stopped: the connection stays open, nothing moves). Nobody is called
    unreachable however long it lasts; when probes come back the book settles again before judging."""
    book = _book(settle=10.0)
    book.recorded.update({A: True, B: True})
    book.heard(A, 0.0, interval=10.0)
    book.heard(B, 0.0, interval=10.0)
    assert due(book, 2.0) == []
    assert book.due(16.0) == [], "no probe back since 2 s: silence is no evidence"
    assert book.due(300.0) == []
    book.proven(301.0)  # the broker resumes
    book.heard(A, 302.0, interval=10.0)  # A's heartbeats come through again, B's do not
    assert due(book, 310.0) == [], "settling again, as after a reconnect"
    assert [(key, v.reason) for key, v in due(book, 316.0)] == [(B, "HeartbeatMissed")]


def test_a_will_of_an_older_connection_than_the_latest_online_is_ignored() -> None:
    book = _book()
    book.recorded[A] = True
    book.heard(A, 0.0, online=True, reason="connected", connection=1000.0)
    book.heard(A, 5.0, online=False, reason="lost", connection=400.0)  # a hung broker's late delivery
    assert book.verdict(A, 5.0).reachable
    assert due(book, 5.0) == []
    book.heard(A, 6.0, online=False, reason="lost", connection=1000.0)  # the current connection's own will
    assert [(key, v.reason) for key, v in due(book, 6.0)] == [(A, "AgentOffline")]
