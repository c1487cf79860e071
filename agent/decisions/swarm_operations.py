"""What an LCMClusterState asks of the agent that executes it: a playbook run, or a status to write once.

Pure, so the executor (``agent.daemon.swarm_executor``) only carries it out: ``swarm-drain`` runs the
release's drain playbook with ``availability`` drain or active and moves the target's ``swarmCordonDrain``
around the run; ``swarm-remove`` runs the remove playbook when requested; any other type is answered once
with a message saying it is not handled here. A failed attempt is paced from the object's status
(``lastFailure``), so the pacing survives a restart. A drain waits for its node to empty only as long as is
left of its timeout (``drain_wait``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agent.api.models import CordonDrain, LCMClusterState
from agent.api.names import DEFAULT_DRAIN_TIMEOUT, DRAIN_TIMEOUT_ANNOTATION
from agent.decisions.execution import stable_uniform
from agent.kits.backoff import Backoff
from agent.kits.timestamps import micro_time, parse_time

DRAIN_PLAYBOOK = "maintenance/swarm-drain.yml"
REMOVE_PLAYBOOK = "maintenance/swarm-remove.yml"
MIN_DRAIN_WAIT = 30.0
"""Seconds a drain attempt waits for the node to empty at least, even past the drain's deadline: a retry
(after the operator moved the stuck task) must be able to see the node empty."""


@dataclass(frozen=True)
class Operation:
    """A playbook run for one object; ``cordon`` = the target's swarmCordonDrain before and after it."""

    playbook: str
    params: Mapping[str, str]
    cordon: tuple[CordonDrain, CordonDrain | None] | None = None


@dataclass(frozen=True)
class Settle:
    """No run: write this status once (``value`` None leaves it unset)."""

    value: str | None
    message: str


def operation(state: LCMClusterState) -> Operation | Settle:
    """What ``state`` asks of this agent."""
    spec = state.spec
    if spec.type == "swarm-drain" and spec.requested:
        return Operation(DRAIN_PLAYBOOK, {"availability": "drain"}, ("cordondraining", "cordondrained"))
    if spec.type == "swarm-drain":
        return Operation(DRAIN_PLAYBOOK, {"availability": "active"}, ("uncordoning", None))
    if spec.type == "swarm-remove" and spec.requested:
        return Operation(REMOVE_PLAYBOOK, {})
    if spec.type == "swarm-remove":
        return Settle("false", "")
    return Settle(None, f"{spec.type} is not handled here: the swarm agent only executes swarm-drain and "
                        "swarm-remove")


def settled(state: LCMClusterState) -> bool:
    """Nothing left to do: the requested value is applied, or the one-off answer is already written."""
    if state.status.value == state.spec.value:
        return True
    todo = operation(state)
    written = (state.status.value, state.status.message)
    return isinstance(todo, Settle) and written == (todo.value, todo.message)


def retry_at(state: LCMClusterState, backoff: Backoff) -> datetime | None:
    """When the requested value may be attempted again after failing: the backoff for its failures in a
    row, from the end of the last one, jittered by a pure function of the object (so the decision can be
    recomputed after a restart); None when nothing failed at this value (attempt now)."""
    failure = state.status.last_failure
    if failure is None or failure.value != state.spec.value:
        return None
    ended = parse_time(failure.finished_at)
    return None if ended is None else paced(state, failure.count, ended, backoff)


def paced(state: LCMClusterState, failures: int, ended: datetime, backoff: Backoff) -> datetime:
    """The retry time after ``failures`` failed attempts in a row at the requested value, the last at
    ``ended``."""
    seed = f"{state.metadata.namespace}/{state.metadata.name}/{state.spec.value}/{failures}"
    return ended + timedelta(seconds=backoff.delay(failures - 1, stable_uniform(seed)))


def failure_after(state: LCMClusterState, now: datetime) -> dict[str, Any]:
    """The ``lastFailure`` to write after one more failed attempt at the requested value."""
    failure = state.status.last_failure
    count = failure.count if failure is not None and failure.value == state.spec.value else 0
    return {"value": state.spec.value, "count": count + 1, "finishedAt": micro_time(now)}


def drain_wait(state: LCMClusterState, now: datetime) -> float:
    """Seconds the drain playbook may wait for the node to run no tasks: what is left of the drain's
    timeout (its annotation, counted from the object's creation), at least ``MIN_DRAIN_WAIT``."""
    raw = state.metadata.annotations.get(DRAIN_TIMEOUT_ANNOTATION, "")
    timeout = float(raw) if raw.isdigit() else float(DEFAULT_DRAIN_TIMEOUT)
    created = parse_time(state.metadata.creation_timestamp)
    spent = 0.0 if created is None else max(0.0, (now - created).total_seconds())
    return max(MIN_DRAIN_WAIT, timeout - spent)
