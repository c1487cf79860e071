"""Objects for planner tests, and a tiny pure "world" that applies plans and plays the agents' part.

The world holds raw objects as the API would (merge patches applied with the simulator's own RFC 7396
code), hands the planner a ``PlanInput`` of parsed models, and moves machines on one item at a time: each
agent runs the first item of its spec that is not done (or reports it failed, for items the test declares
broken), upgrades itself to ``spec.agentConfig``, and the executor carries out drains and removals. No API,
no clock: ``now`` advances by ``TICK`` per step.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.api.models import (
    PHASES,
    ApiObject,
    ClusterMaintenanceRequest,
    ClusterRelease,
    ClusterWorkloadLock,
    GracefulRebootRequest,
    KaaSRelease,
    LCMCluster,
    LCMClusterState,
    LCMMachine,
    NodeMaintenanceRequest,
    NodeWorkloadLock,
)
from agent.decisions.hashing import item_hash
from agent.decisions.state import item_done, machine_state
from agent.kits.timestamps import rfc3339
from regional.planning.actions import Action, Create, Delete, Patch, Plan, PlanInput
from regional.planning.durations import Norm
from regional.planning.maintenance_objects import MaintenanceObjects
from regional.planning.planner import plan
from regional.planning.settings import PlanSettings
from testbed.sim.patching import merge_patch

API = "lcm.mirantis.com/v1alpha1"
NS = "demo"
CLUSTER = "demo"
SHA = "0" * 64
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TICK = timedelta(seconds=10)
MAINTENANCE_KINDS: dict[str, type[ApiObject]] = {
    "nodemaintenancerequests": NodeMaintenanceRequest,
    "clustermaintenancerequests": ClusterMaintenanceRequest,
    "nodeworkloadlocks": NodeWorkloadLock,
    "clusterworkloadlocks": ClusterWorkloadLock,
}
MAINTENANCE_FIELDS = {
    "nodemaintenancerequests": "node_requests", "clustermaintenancerequests": "cluster_requests",
    "nodeworkloadlocks": "node_locks", "clusterworkloadlocks": "cluster_locks",
}


def item(name: str, phase: str, version: str = "1.0.0", **params: str) -> dict[str, Any]:
    return {"runner": "ansible", "name": name, "version": version, "phase": phase,
            "params": {"playbook": f"{phase}/{name}.yml", **params}}


def templates(version: str = "1.0.0") -> dict[str, list[dict[str, Any]]]:
    """A release's items like the sample's: prepare, engine, swarm, labels, and a decommission item."""
    common = [item("preflight", "prepare", version), item("packages", "prepare", version),
              item("docker-engine", "deploy", version)]
    tail = [item("node-labels", "reconfigure", version), item("swarm-leave", "decommission", version)]
    swarm = [item("swarm-init", "deploy", version), item("swarm-join", "deploy", version)]
    return {
        "control": [*common, *swarm, *tail],
        "worker": [*common, item("swarm-join", "deploy", version), *tail],
    }


def release(
    name: str = "swarm-1.0.0", version: str = "1.0.0", *, agent: str = "0.1.0",
    upgrade_from: Iterable[str] = (), machine_types: Mapping[str, Any] | None = None,
) -> ClusterRelease:
    return ClusterRelease.from_raw({
        "apiVersion": "kaas.mirantis.com/v1alpha1", "kind": "ClusterRelease", "metadata": {"name": name},
        "spec": {
            "version": version,
            "agent": {"version": agent, "downloadURL": f"http://mirror/lcm_agent-{agent}.whl", "sha256": SHA},
            "machineTypes": machine_types if machine_types is not None else templates(version),
            "upgradeFrom": list(upgrade_from),
        },
    })


def cluster_raw(release_name: str = "swarm-1.0.0", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "LCMCluster",
            "metadata": {"name": CLUSTER, "namespace": NS, "generation": 1},
            "spec": {"release": release_name, **spec}}


def machine_raw(
    name: str, machine_type: str = "worker", *, ip: str | None = None, index: int | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NS}
    if index is not None:
        meta["annotations"] = {"lcm.mirantis.com/index": str(index)}
    if labels:
        meta["labels"] = dict(labels)
    raw: dict[str, Any] = {"apiVersion": API, "kind": "LCMMachine", "metadata": meta,
                           "spec": {"clusterName": CLUSTER, "type": machine_type}, "status": {}}
    if ip is not None:
        raw["status"]["addresses"] = [{"type": "InternalIP", "address": ip}]
    return raw


@dataclass
class World:
    cluster: dict[str, Any]
    machines: dict[str, dict[str, Any]]
    releases: dict[str, ClusterRelease] = field(default_factory=dict)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    now: datetime = T0
    broken: set[tuple[str, str]] = field(default_factory=set)
    """(machine, item) pairs whose runs always fail."""
    settings: PlanSettings = field(default_factory=PlanSettings)
    item_norms: dict[tuple[str, str], Norm] = field(default_factory=dict)
    kaas_releases: list[KaaSRelease] = field(default_factory=list)
    maintenance: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {resource: {} for resource in MAINTENANCE_KINDS})
    """The maintenance requests and workload locks, by resource and name."""
    reboot_requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    """Machines that go down when asked to reboot and never come back."""

    @classmethod
    def of(cls, cluster: dict[str, Any], machines: Iterable[dict[str, Any]], *rels: ClusterRelease) -> World:
        releases = {r.metadata.name or "": r for r in (rels or (release(),))}
        by_name = {m["metadata"]["name"]: copy.deepcopy(m) for m in machines}
        return cls(copy.deepcopy(cluster), by_name, releases)

    # --- what the planner sees

    def input(self) -> PlanInput:
        return PlanInput(
            cluster=LCMCluster.from_raw(self.cluster),
            releases=self.releases,
            machines=[LCMMachine.from_raw(m) for m in self.machines.values()],
            cluster_states=[LCMClusterState.from_raw(s) for s in self.states.values()],
            now=self.now,
            settings=self.settings,
            kaas_releases=self.kaas_releases,
            item_norms=self.item_norms,
            maintenance=MaintenanceObjects(**{
                field_name: [MAINTENANCE_KINDS[resource].from_raw(o) for o in objects.values()]
                for resource, objects in self.maintenance.items()
                for field_name in (MAINTENANCE_FIELDS[resource],)}),
            reboot_requests=[GracefulRebootRequest.from_raw(r) for r in self.reboot_requests.values()],
        )

    def machine(self, name: str) -> LCMMachine:
        return LCMMachine.from_raw(self.machines[name])

    def state(self, name: str) -> str:
        m = self.machine(name)
        return machine_state(m.spec, m.status)

    def items(self, name: str) -> list[str]:
        return [i.name for i in self.machine(name).spec.state_items]

    def params(self, name: str, item: str) -> dict[str, str]:
        """The params of the machine's item, machine-specific ones included (the planner renders them in)."""
        return dict(next(i for i in self.machine(name).spec.state_items if i.name == item).params)

    # --- applying a plan, as the runtime would

    def apply(self, plan: Plan) -> None:
        for action in plan.actions:
            self._apply(action)

    def _apply(self, action: Action) -> None:
        store = {"lcmmachines": self.machines, "lcmclusterstates": self.states,
                 "gracefulrebootrequests": self.reboot_requests, **self.maintenance}.get(action.resource)
        if isinstance(action, Create):
            name = action.body["metadata"]["name"]
            assert store is not None
            assert name not in store, f"create of existing {name}"
            body = copy.deepcopy(dict(action.body))
            body["metadata"]["creationTimestamp"] = rfc3339(self.now)
            body.pop("status", None)  # the status subresource: a create does not set it
            store[name] = body
            return
        if isinstance(action, Delete):
            assert store is not None
            del store[action.name]
            return
        assert isinstance(action, Patch)
        if action.resource == "lcmclusters":
            assert action.subresource == "status"
            assert set(action.patch) == {"status"}
            self.cluster = merge_patch(self.cluster, action.patch)
            return
        assert store is not None
        if action.subresource == "status":
            assert set(action.patch) == {"status"}
        else:
            assert "status" not in action.patch
        store[action.name] = merge_patch(store[action.name], action.patch)

    # --- the agents' part

    def run_agent(self, name: str) -> None:
        """One step of the machine's agent: upgrade itself, or run (or fail) its next item."""
        raw = self.machines[name]
        m = LCMMachine.from_raw(raw)
        if m.status.internal_ip is None:
            return
        if self._reboot(name, m):
            return
        wanted = m.spec.agent_config.version
        if wanted and m.status.agent_version != wanted:
            raw["status"]["agentVersion"] = wanted
            return
        statuses = m.status.state_item_statuses
        for phase in PHASES:
            for it in m.spec.state_items:
                if it.phase != phase or item_done(it, statuses.get(it.name), wanted):
                    continue
                digest = item_hash(it, wanted)
                old = statuses.get(it.name)
                attempt = old.attempt + 1 if old is not None and old.hash == digest else 1
                failed = (name, it.name) in self.broken
                raw["status"].setdefault("stateItemStatuses", {})[it.name] = {
                    "hash": digest, "exitCode": 1 if failed else 0, "attempt": attempt,
                    "message": "boom" if failed else "", "startedAt": rfc3339(self.now),
                    "finishedAt": rfc3339(self.now),
                }
                return
        # Every item done: the node reports the stack version it converged to, as the agent does.
        if m.spec.components.ucp_version:
            raw["status"]["components"] = {"ucpVersion": m.spec.components.ucp_version}

    def _reboot(self, name: str, m: LCMMachine) -> bool:
        """The agent's answer to ``spec.rebootRequired``: the machine reboots and is back at once (or, when
        ``down``, never); once the spec no longer asks, the answer is cleared."""
        status = self.machines[name]["status"]
        if m.spec.reboot_required and not (m.status.reboot is not None and m.status.reboot.completed):
            if name in self.down:
                status["reboot"] = {"requestedAt": rfc3339(self.now), "completed": False}
                return True
            status["reboot"] = {"requestedAt": rfc3339(self.now), "completed": True}
            status.setdefault("hostInfo", {})["rebootRequired"] = False
            return True
        if not m.spec.reboot_required and "reboot" in status:
            del status["reboot"]
            return True
        return False

    def run_executor(self) -> None:
        """The first control machine's agent: carries out every drain and removal at once."""
        for state in self.states.values():
            spec, status = state["spec"], state.setdefault("status", {})
            target = self.machines.get(spec["arg"])
            if spec["type"] == "swarm-drain" and target is not None:
                if spec["value"] == "true":
                    target["status"]["swarmCordonDrain"] = "cordondrained"
                else:
                    target["status"].pop("swarmCordonDrain", None)
                status["value"] = spec["value"]
            elif spec["type"] == "swarm-remove":
                status["value"] = spec["value"]

    def step(self, movers: Iterable[str] | None = None) -> Plan:
        """Plan, apply, let the agents (all, or ``movers``) and the executor act, advance the clock."""
        plan = plan_for(self)
        self.apply(plan)
        for name in self.machines if movers is None else movers:
            if name in self.machines:
                self.run_agent(name)
        self.run_executor()
        self.now += TICK
        return plan

    def converge(self, limit: int = 400) -> int:
        """Steps until nothing moves (no action planned, no agent acting); fails after ``limit``."""
        for n in range(limit):
            before = copy.deepcopy((self.machines, self.states))
            if not self.step().actions and (self.machines, self.states) == before:
                return n
        raise AssertionError(f"no convergence in {limit} steps")


def plan_for(world: World) -> Plan:
    return plan(world.input())


def done(world: World, name: str, item_name: str) -> bool:
    m = world.machine(name)
    spec_item = next((i for i in m.spec.state_items if i.name == item_name), None)
    return spec_item is not None and item_done(
        spec_item, m.status.state_item_statuses.get(item_name), m.spec.agent_config.version
    )
