"""The liveness book: from heartbeats and last wills, which machines' ``AgentReachable`` condition is wrong.

Pure (times are passed in, the scheduler's subscriber ``regional.scheduler.liveness`` feeds it and writes what
it says is due): a machine is unreachable when its retained status says ``offline`` or no heartbeat came for
``grace`` of its own intervals; silence counts only up to the subscriber's last probe that came back through
the broker, and nobody is called unreachable for ``settle`` seconds after a (re)connect.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.decisions.reporting import condition_patch

CONDITION = "AgentReachable"
"""The condition's type on each LCMMachine."""
Key = tuple[str, str]
"""(namespace, machine name)."""


@dataclass(frozen=True)
class Verdict:
    """What the book says of one machine, as the condition shows it."""

    reachable: bool
    """The condition's status: True, or False."""
    reason: str
    message: str


@dataclass
class _Machine:
    online: bool = True
    seen: float = 0.0
    interval: float = 10.0
    offline_reason: str = ""
    connection: float = 0.0
    """``connection`` of the newest ``online`` status or heartbeat: wills of older connections are stale."""
    since: float = 0.0
    """When the current verdict first held: transitions are written oldest first."""


@dataclass
class LivenessBook:
    """Who was heard when; ``due(now)`` says which machines' written condition is now wrong."""

    grace: float
    settle: float
    default_interval: float
    machines: dict[Key, _Machine] = field(default_factory=dict)
    recorded: dict[Key, bool] = field(default_factory=dict)
    """The condition's value on each LCMMachine, as read at start or last written."""
    settled_at: float = 0.0
    probe_period: float = 1.0
    proven_at: float | None = None
    """When the subscriber's own probe last came back through the broker; None: not yet on this connection."""

    def connected(self, now: float) -> None:
        self.settled_at = now + self.settle
        self.proven_at = None

    def proven(self, now: float) -> None:
        """A probe came back. After a gap of several periods the broker was hung: the machines need their
        reconnects and heartbeats to come through before silence means anything again."""
        if self.proven_at is not None and now - self.proven_at > 3 * self.probe_period:
            self.settled_at = max(self.settled_at, now + self.settle)
        self.proven_at = now

    def judged_at(self, now: float) -> float:
        """The time up to which silence is evidence: the last proof that the broker passes messages."""
        return now if self.proven_at is None else min(now, self.proven_at)

    def heard(self, key: Key, now: float, *, interval: float | None = None, online: bool = True,
              reason: str = "", connection: float = 0.0) -> bool:
        """A heartbeat (``online``) or a status message arrived for ``key``; a will of a connection older
        than the one of the machine's latest ``online`` or heartbeat is ignored (False)."""
        machine = self.machines.setdefault(key, _Machine(interval=self.default_interval, since=now))
        if not online and reason == "lost" and connection and connection < machine.connection:
            return False
        if interval:
            machine.interval = interval
        if online:
            machine.seen = now
            machine.connection = max(machine.connection, connection)
        machine.online, machine.offline_reason = online, reason
        return True

    def verdict(self, key: Key, now: float) -> Verdict:
        """``key``'s reachability, silence counted up to ``judged_at(now)``."""
        now = self.judged_at(now)
        machine = self.machines[key]
        if not machine.online:
            if machine.offline_reason == "stopped":
                return Verdict(False, "AgentStopped", "the agent stopped")
            return Verdict(False, "AgentOffline", "the broker lost the agent's connection (its last will)")
        silent = now - machine.seen
        if silent > self.grace * machine.interval:
            return Verdict(False, "HeartbeatMissed",
                           f"no heartbeat for {silent:.0f}s (interval {machine.interval:g}s)")
        return Verdict(True, "HeartbeatReceived", f"heartbeats every {machine.interval:g}s")

    def due(self, now: float) -> list[tuple[Key, Verdict]]:
        """Machines whose verdict differs from the recorded condition, oldest transition first. Before
        ``settled_at`` only good news is due."""
        found = []
        for key, machine in self.machines.items():
            verdict = self.still_due(key, now)
            if verdict is None:
                if self.recorded.get(key) == self.verdict(key, now).reachable:
                    machine.since = now
                continue
            found.append((machine.since, key, verdict))
        return [(key, verdict) for _, key, verdict in sorted(found)]

    def still_due(self, key: Key, now: float) -> Verdict | None:
        """The verdict to write for ``key`` now, or None when the recorded condition is right (or the news
        is bad and the book has not settled)."""
        verdict = self.verdict(key, now)
        judging = self.proven_at is not None and now >= self.settled_at
        if self.recorded.get(key) == verdict.reachable or not (verdict.reachable or judging):
            return None
        return verdict


def liveness_patch(raw: Mapping[str, Any], verdict: Verdict, now: datetime) -> dict[str, Any] | None:
    """The status merge patch setting the condition when its status flips (other conditions kept), with the
    object's resourceVersion as precondition, since a merge patch replaces the whole list; None when it
    already says so."""
    patch = condition_patch((raw.get("status") or {}).get("conditions") or [], CONDITION,
                            "True" if verdict.reachable else "False", verdict.reason, verdict.message, now,
                            status_only=True)
    if patch is not None:
        patch["metadata"] = {"resourceVersion": raw["metadata"]["resourceVersion"]}
    return patch
