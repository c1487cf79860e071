"""May this node be drained, demoted or removed now? Swarm disruption budgets and the managers' quorum.

Pure: the swarm executor takes a ``SwarmSnapshot`` on its manager and asks these rules before it sets a node
to availability drain (``check_drain``) or takes a manager out (``quorum_refusal``); docs/swarm.md,
"Disruption budgets and the quorum guard", is the operator's version.

**Budgets.** A replicated service with running tasks on the node may not be left with fewer running tasks
elsewhere than its budget: the label ``lcm.mirantis.com/min-available: N`` (at least N keep running) or
``lcm.mirantis.com/max-unavailable: N`` (at least replicas - N keep running); with both, the stricter wins.
Without a label (or with a bad one: not an integer, negative, or above the replicas) the default protects
the last running replica: min-available 1 for a service of two replicas or more. A single-replica service
has no default budget: its only task must stop somewhere for it to move, so protecting it would stop every
drain for good; label it ``min-available: 1`` to make drains wait (and time out) instead. Global services
and jobs are exempt: a global service runs one task per node by definition, and a drain never shrinks a job.

Tasks count as available after the drain when they run on another node that is ``ready`` and not itself
draining (two drains at once must not each count the other's tasks).

**Rebalancing.** Swarm does not move tasks back to a node that was drained and made active again, so after
worker 1's upgrade both replicas of a service may run on worker 2, and draining worker 2 would take both
down at once. Waiting would never help; so when a blocked service is settled (every task it wants runs, no
update in progress), another node could take its tasks, and its own update settings keep it within budget
while its tasks are replaced (``start-first``, or ``stop-first`` replacing no more tasks at once than the
budget allows), the executor asks for a rolling ``service update --force``: swarm's spread strategy then
places the new tasks on the emptier nodes. It does so once per drain request and service; a service whose
update settings would break its budget is left to the operator, and the drain waits (and times out).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from agent.api.swarm_snapshot import (
    MAX_UNAVAILABLE_LABEL,
    MIN_AVAILABLE_LABEL,
    SwarmService,
    SwarmSnapshot,
)

_INTEGER = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Budget:
    min_available: int
    """Running tasks the service must keep on other nodes while one drains."""
    source: str
    """Where the number comes from, for messages: ``min-available=1 (the default)``, the label as written."""
    warnings: tuple[str, ...] = ()
    """Budget labels that could not be used, each naming the service, the label and why."""


def budget(service: SwarmService) -> Budget:
    """The service's budget from its labels, or the default for the labels it lacks or has wrong."""
    replicas = service.replicas
    default = 1 if replicas > 1 else 0
    floors: list[tuple[int, str]] = []
    warnings: list[str] = []
    for label in (MIN_AVAILABLE_LABEL, MAX_UNAVAILABLE_LABEL):
        raw = service.labels.get(label)
        if raw is None:
            continue
        if not _INTEGER.fullmatch(raw) or int(raw) > replicas:
            warnings.append(f"service {service.name}: label {label}={raw!r} is not an integer from 0 to its "
                            f"{replicas} replicas; the default applies (min-available {default})")
            continue
        floor = int(raw) if label == MIN_AVAILABLE_LABEL else replicas - int(raw)
        floors.append((floor, f"{label}={raw}"))
    if not floors:
        return Budget(default, f"min-available {default} (the default)", tuple(warnings))
    floor, source = max(floors)
    return Budget(floor, source, tuple(warnings))


@dataclass(frozen=True)
class Blocker:
    """A service the drain would take below its budget."""

    service: str
    service_id: str
    on_node: int
    """Its running tasks on the node to drain."""
    left: int
    """Its running tasks that would be left elsewhere."""
    budget: Budget
    rebalance: bool
    """A rolling forced update may spread its tasks so that the drain fits (see the module's docstring)."""

    @property
    def message(self) -> str:
        text = (f"service {self.service}: draining would stop {self.on_node} running task(s) and leave "
                f"{self.left}, below its budget ({self.budget.source})")
        if self.rebalance:
            text += "; rebalancing it with a rolling service update --force"
        return text


@dataclass(frozen=True)
class DrainCheck:
    blockers: tuple[Blocker, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return not self.blockers

    @property
    def message(self) -> str:
        """Why the drain waits, every blocked service named; "" when it may go."""
        return "disruption budget: " + "; ".join(b.message for b in self.blockers) if self.blockers else ""


def check_drain(snapshot: SwarmSnapshot, address: str, *, rebalanced: Collection[str] = ()) -> DrainCheck:
    """Whether draining the node at ``address`` keeps every replicated service within its budget.
    ``rebalanced``: ids of the services already force-updated for this drain (never twice)."""
    targets = {n.id for n in snapshot.nodes_at(address)}
    usable = {n.id for n in snapshot.nodes
              if n.id not in targets and n.state == "ready" and n.availability != "drain"}
    blockers: list[Blocker] = []
    warnings: list[str] = []
    for service in snapshot.services:
        if service.mode != "replicated":
            continue
        tasks = [t for t in snapshot.tasks if t.service_id == service.id]
        on_node = sum(1 for t in tasks if t.running and t.node_id in targets)
        if on_node == 0:
            continue
        limits = budget(service)
        warnings += limits.warnings
        left = sum(1 for t in tasks if t.running and t.node_id in usable)
        if left >= limits.min_available:
            continue
        settled = not service.updating and len(tasks) == service.replicas and all(t.running for t in tasks)
        rebalance = (settled and service.id not in rebalanced and _room_elsewhere(snapshot, usable)
                     and _update_keeps_budget(service, left + on_node, limits.min_available))
        blockers.append(Blocker(service.name, service.id, on_node, left, limits, rebalance))
    return DrainCheck(tuple(blockers), tuple(warnings))


def _room_elsewhere(snapshot: SwarmSnapshot, usable: Collection[str]) -> bool:
    return any(n.id in usable and n.availability == "active" for n in snapshot.nodes)


def _update_keeps_budget(service: SwarmService, running: int, needed: int) -> bool:
    """Replacing the service's tasks by its own update settings never leaves fewer than ``needed`` running."""
    if service.update_order == "start-first":
        return True
    return service.update_parallelism >= 1 and running - service.update_parallelism >= needed


def lost_quorum(managers: int, others_reachable: int, *, removal: bool) -> int | None:
    """The Raft quorum that taking one of ``managers`` managers out would lose, with ``others_reachable`` of
    the others reachable; None when it is kept. A drain (before a reboot or an engine upgrade) takes the
    manager out for a while: the others reachable must still be a majority of all managers. A removal
    (demote, remove) also shrinks the membership: they must be a majority of the managers that stay. A swarm
    of one or two managers survives neither even with every manager reachable (no fault tolerance): there
    is no safer moment to wait for, so that is not refused either. The scheduler's guard
    (``regional.planning.quorum``) and the executor's use the same rule."""
    quorum = (managers - 1 if removal else managers) // 2 + 1
    if others_reachable >= quorum or managers - 1 < quorum:
        return None
    return quorum


def quorum_refusal(snapshot: SwarmSnapshot, address: str, *, removal: bool) -> str:
    """Why taking the manager at ``address`` out would lose the Raft quorum, as ``docker node ls`` shows the
    managers' reachability ("" when it would not, or when the node is no manager)."""
    managers = [n for n in snapshot.nodes if n.role == "manager"]
    if not any(n.address == address for n in managers):
        return ""
    others = [n for n in managers if n.address != address]
    reachable = sum(1 for n in others if n.reachability == "reachable")
    quorum = lost_quorum(len(managers), reachable, removal=removal)
    if quorum is None:
        return ""
    down = sorted(n.address for n in others if n.reachability != "reachable")
    return quorum_message(f"the manager at {address}", removal, reachable, len(managers), quorum, down)


def quorum_message(who: str, removal: bool, left: int, managers: int, quorum: int, down: list[str]) -> str:
    what = "removing" if removal else "taking out"
    return (f"quorum guard: {what} {who} would leave {left} of {managers} managers reachable, below the Raft "
            f"quorum of {quorum} (unreachable: {', '.join(down) or 'none'})")
