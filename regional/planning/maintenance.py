"""Maintenance: a machine drained and held out of every rollout until its maintenance ends.

A machine is wanted in maintenance while its ``spec.maintenance`` is true (Mirantis' flag, set by an operator
or by MCC's Machine controller from ``Machine.spec.providerSpec.value.maintenance``) or while a
NodeMaintenanceRequest names its node. Going in, one step per plan, as Mirantis' stages go ("Node workload
locks inactive", "Swarm drained"):

1. wait until no other controller's workload lock on its node or cluster is active (``LockHeld``); a failed
   one stops it there with the lock's message (``LockFailed``);
2. drain its node (``sd-<machine>`` true) within the drain budgets: a control machine only while no other
   control machine changes, a worker within ``maxWorkerUpgradeCount`` drains in flight. A node that runs no
   workloads (a dedicated control plane's manager) or never joined is not drained;
3. once drained, ``status.maintenance: true``.

From its first step on, no rollout rule gives it another spec (its hold says why it waits). When maintenance
ends (the flag false, the request deleted) ``status.maintenance`` goes false at once and the machine is back
in the rollout, whose rules undrain it once it is settled: after ``os`` maintenance (the operator may have
rebooted it or updated its packages) that is once its agent is back and its items are done again. Scope
``drain`` only moves the workloads; both are drained alike here, the scope tells other controllers what to
expect. A machine being deleted is not the maintenance rules' any more: deletion wins, and its leaving
drains it and takes its node out of the swarm, so nothing is left cordoned.

The cluster is in maintenance while its ``spec.maintenance`` is true or a ClusterMaintenanceRequest names it:
nothing new starts (no upgrade, settings change or new machine), machines may still go in and out of
maintenance, and ``status.maintenance`` is true once no other controller's ClusterWorkloadLock is active.

Requests get lcm-agent's status extension: ``Waiting`` (with what for), ``InMaintenance``, or ``Refused``
when the node named is not a machine of the cluster. Of two requests for one node (cluster) the older serves
and the other waits for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agent.api.models import ClusterMaintenanceRequest, MaintenancePhase, NodeMaintenanceRequest
from regional.planning.actions import Action, Patch, Resource
from regional.planning.deletion import take_slot
from regional.planning.fleet import Fleet
from regional.planning.locks import cluster_hold
from regional.planning.machines import MachineView
from regional.planning.maintenance_requests import is_ours, ready_to_disrupt
from regional.planning.quorum import REASON as QUORUM_GUARD
from regional.planning.quorum import quorum_refusal
from regional.planning.release_upgrade import runs_workloads
from regional.planning.waiting import hold_slot

Request = NodeMaintenanceRequest | ClusterMaintenanceRequest
Verdict = tuple[MaintenancePhase, str]
"""A request's status: its phase and message."""

IN: MaintenancePhase = "InMaintenance"


def _age(request: Request) -> tuple[str, str]:
    return request.metadata.creation_timestamp or "", request.metadata.name or ""


def plan_maintenance(fleet: Fleet) -> list[Action]:
    """The machines' and the cluster's steps in and out of maintenance, before the rollout rules run (which
    then leave ``fleet.in_maintenance`` alone); the status writes they need."""
    verdicts: dict[str, tuple[Request, Verdict]] = {}
    served = _serve_node_requests(fleet, verdicts)
    actions: list[Action] = []
    for v in fleet.views:
        if v.deleting:
            continue
        request = served.get(v.name)
        inside = False
        if v.spec.maintenance or request is not None:
            fleet.in_maintenance.add(v.name)
            waiting = _step_in(fleet, v)
            inside = waiting is None
            if inside:  # from the plan that steps in: its status.waiting never goes blank in between
                fleet.hold(v, "Maintenance", "in maintenance")
            if request is not None:
                verdict: Verdict = ("Waiting", waiting) if waiting else (IN, "")
                verdicts[request.metadata.name or ""] = (request, verdict)
        if inside != v.status.maintenance:
            actions.append(_status(v, inside))
    actions += _plan_cluster(fleet, verdicts)
    actions += _request_statuses(verdicts.values())
    return actions


def _serve_node_requests(fleet: Fleet, verdicts: dict[str, tuple[Request, Verdict]]) -> dict[str, Request]:
    """The request each machine serves (the oldest naming it); the others' verdicts: refused or waiting."""
    by_name = {v.name: v for v in fleet.views}
    served: dict[str, Request] = {}
    for request in sorted((r for r in fleet.maintenance.node_requests if not is_ours(r)), key=_age):
        node, name = request.spec.node_name, request.metadata.name or ""
        v = by_name.get(node)
        if v is None:
            where = f" in cluster {request.spec.cluster_name}" if request.spec.cluster_name else ""
            verdicts[name] = (request, ("Refused", f"no machine {node}{where}"))
        elif v.deleting:
            verdicts[name] = (request, ("Refused", f"machine {node} is being deleted"))
        elif node in served:
            first = served[node].metadata.name
            verdicts[name] = (request, ("Waiting", f"waits for NodeMaintenanceRequest {first}"))
        else:
            served[node] = request
    return served


def _step_in(fleet: Fleet, v: MachineView) -> str | None:
    """One step into maintenance; None once in (the caller holds it then), else what it waits for (also
    recorded as its hold)."""
    if v.status.maintenance:
        if v.name in fleet.drains:
            fleet.want("swarm-drain", v, True, "in maintenance")
        return None
    drain = fleet.drains.get(v.name)
    drains = runs_workloads(fleet, v) and fleet.executor is not None
    if drain is None and v.control and (refusal := quorum_refusal(fleet.views, v, removal=False)):
        fleet.hold(v, QUORUM_GUARD, refusal)  # the operator's work may take its manager down
        return refusal
    if drain is None or not drain.spec.requested:  # not drained: maybe an earlier drain's undoing
        if not ready_to_disrupt(fleet, v, "os"):
            if drain is not None and drain.status.value == "false" and v.status.swarm_cordon_drain is None:
                fleet.drop("swarm-drain", v)  # that undoing is over; no rollout rule looks at it meanwhile
            return fleet.holds[v.name].message
        if not drains:
            return None
        if drain is None and not take_slot(fleet, v, drains=True):
            hold_slot(fleet, v, "control" if v.control else "upgrade")
            return fleet.holds[v.name].message
    elif v.status.swarm_cordon_drain == "cordondrained":
        fleet.want("swarm-drain", v, True, "in maintenance")
        return None
    fleet.want("swarm-drain", v, True, "drain for maintenance")
    fleet.hold(v, "Maintenance", "draining for maintenance")
    return "draining its node"


def _plan_cluster(fleet: Fleet, verdicts: dict[str, tuple[Request, Verdict]]) -> list[Action]:
    """The cluster's step in or out of maintenance (by its flag, once the scheduler's own request for it
    exists, or by an operator's request)."""
    cluster = fleet.cluster
    requests = sorted((r for r in fleet.maintenance.cluster_requests if not is_ours(r)), key=_age)
    first = requests[0] if requests else None
    for request in requests[1:]:
        waits = f"waits for ClusterMaintenanceRequest {requests[0].metadata.name}"
        verdicts[request.metadata.name or ""] = (request, ("Waiting", waits))
    ours = any(is_ours(r) for r in fleet.maintenance.cluster_requests)
    inside = False
    if cluster.spec.maintenance or first is not None:
        fleet.halted = True  # nothing new starts: no upgrade, settings change or new machine
        hold = None if cluster.status.maintenance else cluster_hold(fleet)
        inside = hold is None and (first is not None or ours or cluster.status.maintenance)
        if first is not None:
            verdict: Verdict = (IN, "") if hold is None else ("Waiting", hold.message)
            verdicts[first.metadata.name or ""] = (first, verdict)
    if inside == cluster.status.maintenance:
        return []
    return [Patch("lcmclusters", cluster.metadata.namespace or "", cluster.metadata.name or "",
                  {"status": {"maintenance": inside}}, subresource="status",
                  reason="cluster in maintenance" if inside else "cluster maintenance ended")]


def _status(v: MachineView, inside: bool) -> Patch:
    """``status.maintenance`` alone, a scalar: a merge patch that cannot touch what the agent writes."""
    return Patch("lcmmachines", v.machine.metadata.namespace or "", v.name,
                 {"status": {"maintenance": inside}}, subresource="status",
                 reason="in maintenance" if inside else "maintenance ended")


def _request_statuses(verdicts: Iterable[tuple[Request, Verdict]]) -> list[Action]:
    actions: list[Action] = []
    for request, (phase, message) in verdicts:
        if (request.status.phase, request.status.message) == (phase, message):
            continue
        resource: Resource = "nodemaintenancerequests" if isinstance(request, NodeMaintenanceRequest) \
            else "clustermaintenancerequests"
        status: Mapping[str, Any] = {"phase": phase, "message": message}
        reason = f"{phase}: {message}" if message else phase
        actions.append(Patch(resource, request.metadata.namespace or "", request.metadata.name or "",
                             {"status": status}, subresource="status", reason=reason))
    return actions

