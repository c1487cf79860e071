"""One plan's view of a cluster, and the writes its rules have decided so far.

The rules (rollout, upgrade, deletion) run in a fixed order over the machines and share two budgets: one
control machine changing at a time, and ``maxWorkerUpgradeCount`` worker drains in flight. Each rule reads
the budgets as the previous ones left them and records its writes here; nothing is written until the plan
is complete, and the runtime applies it all at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.api.models import ClusterRelease, LCMCluster, LCMClusterState, MaintenanceScope
from agent.api.names import DEFAULT_DRAIN_TIMEOUT, MachineOperation
from regional.planning.contract import EXECUTOR_LABEL
from regional.planning.machines import MachineView
from regional.planning.maintenance_objects import MaintenanceObjects
from regional.planning.ordering import first_ready
from regional.planning.rendering import Swarm, Target, Templates, machine_patch, swarm_item_for, target
from regional.planning.swarm_orders import Wanted
from regional.planning.waves import RolloutGate


@dataclass(frozen=True)
class Hold:
    """Why a machine that has work to do is not given it now. ``reason`` is machine-readable (CamelCase, a
    condition's reason: ``WindowClosed``, ``DisruptionBudget``, ``QuorumGuard``, ``LockHeld``...), ``message``
    names what it waits for (the service, the lock's holder) so an operator needs no log to learn why."""

    reason: str
    message: str


@dataclass
class Fleet:
    cluster: LCMCluster
    releases: Mapping[str, ClusterRelease]
    templates: Templates
    """The target release's."""
    swarm: Swarm
    views: Sequence[MachineView]
    """The cluster's assigned machines, in order (index annotation, then name)."""
    drains: Mapping[str, LCMClusterState]
    """``sd-`` states by machine name."""
    removals: Mapping[str, LCMClusterState]
    """``sr-`` states by machine name."""
    halted: bool
    """Something is stuck: nothing new starts; what is in flight may finish."""
    drain_timeout: int = DEFAULT_DRAIN_TIMEOUT
    """Seconds a drain may take (the LCMCluster's ``drainTimeoutSeconds``, or the planner's limit): its
    executor is told on each ``sd-`` state."""

    patches: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)
    """Machine name → (merge patch, reason)."""
    wanted: dict[str, Wanted] = field(default_factory=dict)
    """The LCMClusterStates that should exist, by name."""
    control_busy: bool = False
    """A control machine is changing (deploying, upgrading, draining or leaving)."""
    cordoned: int = 0
    """Workers with a drain in flight (``sd-`` exists)."""
    converged: int = 0
    """Machines with the spec the planner wants, all of it done."""
    rebooting: set[str] = field(default_factory=set)
    """Machines the reboot rule is taking through a reboot (``reboots.py``): the other rules leave them be."""
    holds: dict[str, Hold] = field(default_factory=dict)
    """Machine name → why it waits; the first rule that held it back wins (it is what must change first)."""
    gate: RolloutGate | None = None
    """The canary wave, failure budget and maintenance windows of an upgrade (waves.py); None: no gates."""
    maintenance: MaintenanceObjects = field(default_factory=MaintenanceObjects)
    """The cluster's maintenance requests and workload locks (regional.planning.maintenance, locks)."""
    in_maintenance: set[str] = field(default_factory=set)
    """Machines in maintenance, or on their way in: no rollout rule touches them."""
    requested: dict[str, MaintenanceScope] = field(default_factory=dict)
    """Machine name → scope of the NodeMaintenanceRequest of the scheduler's it needs (a rule is about to
    disrupt it: regional.planning.maintenance_requests)."""
    _other_templates: dict[str, Templates] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Budgets start from what is in flight; drains of machines still here are kept as they are unless a
        # rule says otherwise (a halted upgrade keeps its node drained).
        by_name = {v.name: v for v in self.views}
        for name, state in self.drains.items():
            v = by_name.get(name)
            if v is not None and not v.deleting:
                executor = self.executor or state.metadata.labels.get(EXECUTOR_LABEL, "")
                self.wanted[state.metadata.name or ""] = Wanted(
                    "swarm-drain", name, state.spec.requested, executor, "drain in flight",
                    self.timeout("swarm-drain"),
                )
            if v is not None and not v.control:
                self.cordoned += 1
        self.control_busy = any(
            v.control and ((v.released and not v.settled) or v.name in self.drains or v.name in self.removals)
            for v in self.views
        )

    def timeout(self, operation: MachineOperation) -> int | None:
        return self.drain_timeout if operation == "swarm-drain" else None

    @property
    def executor(self) -> str | None:
        """The machine whose agent drains and removes nodes: the first control machine, a manager."""
        return self.swarm.first.name if self.swarm.first is not None else None

    @property
    def first_ready(self) -> bool:
        return first_ready(self.swarm.first)

    def templates_of(self, release: str) -> Templates:
        """The templates of a release the cluster uses (a leaving machine's); the target's if unknown."""
        if release == self.templates.release or release not in self.releases:
            return self.templates
        if release not in self._other_templates:
            self._other_templates[release] = Templates(self.releases[release], self.cluster)
        return self._other_templates[release]

    def full(self, v: MachineView) -> Target | None:
        """Every item the machine should run, or None when the release has none for its type."""
        items = self.templates.full(v.type, swarm_item_for(v, self.swarm))
        return target(v, items, self.templates, self.swarm) if items else None

    def prepare(self, v: MachineView) -> Target:
        """Only the prepare items: what a machine runs before it is let into the swarm rollout."""
        return target(v, self.templates.prepare(v.type), self.templates, self.swarm)

    def diff(self, v: MachineView, want: Target) -> dict[str, Any] | None:
        return machine_patch(v.machine, want, self.templates)

    def write(self, v: MachineView, patch: dict[str, Any], reason: str) -> None:
        self.patches[v.name] = (patch, reason)

    def hold(self, v: MachineView, reason: str, message: str) -> None:
        self.holds.setdefault(v.name, Hold(reason, message))

    def upgrade_held(self, v: MachineView) -> bool:
        """The rollout's gates hold the machine's upgrade back now (the hold is recorded)."""
        held = self.gate.hold(v) if self.gate is not None else None
        if held is not None:
            self.hold(v, *held)
        return held is not None

    def upgrade_started(self, v: MachineView) -> None:
        if self.gate is not None:
            self.gate.started(v)

    def hold_drain(self, v: MachineView, drain: LCMClusterState) -> None:
        """The executor has not started the machine's drain: its reason (a disruption budget, the quorum
        guard, from the state's ``status.waiting``) is the machine's."""
        waiting = drain.status.waiting
        if waiting is not None and drain.spec.requested:
            self.hold(v, waiting.reason, waiting.message)

    def want(self, operation: MachineOperation, v: MachineView, value: bool, reason: str) -> None:
        state = Wanted(operation, v.name, value, self.executor or "", reason, self.timeout(operation))
        self.wanted[state.name] = state

    def drop(self, operation: MachineOperation, v: MachineView) -> None:
        self.wanted.pop(Wanted(operation, v.name, False, "").name, None)
