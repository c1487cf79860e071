"""Workload locks: whether a machine may be disrupted now, and the locks lcm-scheduler holds itself.

A NodeWorkloadLock (ClusterWorkloadLock) is a controller's say on whether the workloads it runs let a node
(a cluster) be disrupted: drained for maintenance, rebooted, upgraded. ``active`` (Mirantis' default, also for
a lock without a status) forbids it until the controller sets ``inactive``; ``failed`` means the controller
could not make its workloads safe and stops the operation with its ``errorMessage``. The annotation
``lcm.mirantis.com/skip-maintenance: "true"`` on the machine or its cluster means no lock is waited for.

lcm-scheduler holds locks of its own (``controllerName: lcm-scheduler``): a NodeWorkloadLock per machine it
has drained, active while the drain is in flight (from the ``sd-`` state's creation until it is gone), and a
ClusterWorkloadLock per cluster, active while any of its machines is drained. Other controllers read them
to learn that the swarm is being disrupted; the scheduler never waits for its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agent.api.models import API_VERSION, ClusterWorkloadLock, NodeWorkloadLock, WorkloadState
from agent.api.names import cluster_state_name
from regional.planning.actions import Action, Create, Delete, Patch, Resource
from regional.planning.contract import SCHEDULER_NAME, SKIP_MAINTENANCE_ANNOTATION
from regional.planning.fleet import Fleet, Hold
from regional.planning.machines import MachineView

LOCK_CONTROLLER = SCHEDULER_NAME
"""``spec.controllerName`` of the scheduler's own locks."""


def disruption_hold(fleet: Fleet, v: MachineView) -> Hold | None:
    """May ``v`` be disrupted now (drained, rebooted, upgraded)? None when it may; otherwise why not:
    ``LockFailed`` (a lock of another controller on its node or its cluster failed: the locks' messages) or
    ``LockHeld`` (such a lock is active), naming the locks and their controllers. Pure: it reads the locks
    the plan was given (``fleet.maintenance``) and the ``lcm.mirantis.com/skip-maintenance`` annotation of
    the machine and its cluster."""
    if maintenance_skipped(fleet, v):
        return None
    node: list[tuple[str, NodeWorkloadLock | ClusterWorkloadLock]] = [
        (f"NodeWorkloadLock {lock.metadata.name}", lock) for lock in fleet.maintenance.node_locks
        if lock.spec.node_name == v.name]
    return _blocking(fleet, node)


def maintenance_skipped(fleet: Fleet, v: MachineView) -> bool:
    """``lcm.mirantis.com/skip-maintenance: "true"`` on the machine or its cluster: Mirantis' "a maintenance
    won't be initiated": no request is made and no lock waited for."""
    annotations = (v.machine.metadata.annotations, fleet.cluster.metadata.annotations)
    return any(a.get(SKIP_MAINTENANCE_ANNOTATION) == "true" for a in annotations)


def cluster_hold(fleet: Fleet) -> Hold | None:
    """May the cluster as a whole be disrupted (put in maintenance) now? As ``disruption_hold``, for the
    cluster's ClusterWorkloadLocks alone."""
    return _blocking(fleet, [])


def _blocking(fleet: Fleet, found: list[tuple[str, NodeWorkloadLock | ClusterWorkloadLock]]) -> Hold | None:
    if fleet.cluster.metadata.annotations.get(SKIP_MAINTENANCE_ANNOTATION) == "true":
        return None
    found = found + [(f"ClusterWorkloadLock {lock.metadata.name}", lock)
                     for lock in fleet.maintenance.cluster_locks]
    theirs = [(what, lock) for what, lock in found if lock.spec.controller_name != LOCK_CONTROLLER]
    failed = [f"{what} of {lock.spec.controller_name} failed: {lock.status.error_message or 'no message'}"
              for what, lock in theirs if lock.status.state == "failed"]
    if failed:
        return Hold("LockFailed", "; ".join(failed))
    held = [f"{what} of {lock.spec.controller_name}"
            for what, lock in theirs if lock.status.state == "active"]
    if held:
        return Hold("LockHeld", "active: " + ", ".join(held))
    return None


def node_lock_name(machine: str) -> str:
    return f"{machine}-{LOCK_CONTROLLER}"


def cluster_lock_name(cluster: str) -> str:
    return f"{cluster}-{LOCK_CONTROLLER}"


def own_lock_writes(fleet: Fleet) -> list[Action]:
    """The writes that make the scheduler's own locks say which drains are in flight after this plan: a
    machine's lock is created with its first drain and kept (inactive) afterwards; a gone machine's goes."""
    cluster = fleet.cluster
    namespace, name = cluster.metadata.namespace or "", cluster.metadata.name or ""
    drained = {v.name for v in fleet.views if cluster_state_name("swarm-drain", v.name) in fleet.wanted}
    here = {v.name for v in fleet.views}
    ours = {lock.spec.node_name: lock for lock in fleet.maintenance.node_locks
            if lock.spec.controller_name == LOCK_CONTROLLER}
    actions: list[Action] = []
    for machine in sorted(drained | ours.keys()):
        lock = ours.get(machine)
        if machine not in here:
            if lock is not None and lock.metadata.name:
                actions.append(
                    Delete("nodeworkloadlocks", namespace, lock.metadata.name, f"{machine} is gone"))
            continue
        spec = {"controllerName": LOCK_CONTROLLER, "nodeName": machine, "clusterName": name}
        actions += _lock_writes("nodeworkloadlocks", "NodeWorkloadLock", namespace, node_lock_name(machine),
                                lock, spec, machine in drained, f"drain of {machine}")
    cluster_lock = next((lock for lock in fleet.maintenance.cluster_locks
                         if lock.spec.controller_name == LOCK_CONTROLLER and lock.spec.cluster_name == name),
                        None)
    if drained or cluster_lock is not None:
        spec = {"controllerName": LOCK_CONTROLLER, "clusterName": name}
        what = "drains in " + (", ".join(sorted(drained)) or name)
        actions += _lock_writes("clusterworkloadlocks", "ClusterWorkloadLock", namespace,
                                cluster_lock_name(name), cluster_lock, spec, bool(drained), what)
    return actions


def _lock_writes(resource: Resource, kind: str, namespace: str, name: str,
                 lock: NodeWorkloadLock | ClusterWorkloadLock | None, spec: dict[str, Any], active: bool,
                 what: str) -> Iterable[Action]:
    """Create the lock if missing, then set its state where it differs (a lock without a status reads
    active, Mirantis' default, so a created lock always gets its state written)."""
    state: WorkloadState = "active" if active else "inactive"
    reason = f"{what} in flight" if active else f"{what} done"
    if lock is None:
        body = {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name, "namespace": namespace},
                "spec": spec}
        yield Create(resource, namespace, body, reason)
    else:
        if lock.status.state == state and "status" in lock.to_raw():
            return
        name = lock.metadata.name or name
    yield Patch(resource, namespace, name, {"status": {"state": state}}, subresource="status", reason=reason)
