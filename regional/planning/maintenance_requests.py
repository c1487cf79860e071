"""The maintenance requests lcm-scheduler makes itself, as Mirantis' LCM does: they tell other controllers
(Mirantis' application controllers: OpenStack, Ceph...) that a node (the cluster) is about to be disrupted, so
they make their workloads safe and set their workload locks inactive.

A machine put in maintenance through its ``spec.maintenance`` gets a NodeMaintenanceRequest named after it
(scope ``os``: the operator may reboot it); it stays until the machine is out of maintenance and undrained
(Mirantis' "Node maintenance request removed" comes after "Swarm uncordoned"). A cluster put in maintenance
through its ``spec.maintenance`` gets a ClusterMaintenanceRequest named after it. Ours carry the label
``app.kubernetes.io/managed-by: lcm-scheduler``; every other request is an operator's, which puts its node
(cluster) in maintenance by itself (regional.planning.maintenance).
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.api.models import (
    API_VERSION,
    ClusterMaintenanceRequest,
    MaintenanceScope,
    NodeMaintenanceRequest,
)
from regional.planning.actions import Action, Create, Delete
from regional.planning.contract import MANAGED_BY_LABEL, SCHEDULER_NAME, SKIP_MAINTENANCE_ANNOTATION
from regional.planning.fleet import Fleet
from regional.planning.locks import disruption_hold, maintenance_skipped
from regional.planning.machines import MachineView

MAINTENANCE_REQUESTED = "MaintenanceRequested"
"""The hold of a machine whose disruption waits for a maintenance request of the scheduler's to exist."""


def is_ours(request: NodeMaintenanceRequest | ClusterMaintenanceRequest) -> bool:
    return request.metadata.labels.get(MANAGED_BY_LABEL) == SCHEDULER_NAME


def ready_to_disrupt(fleet: Fleet, v: MachineView, scope: MaintenanceScope, *, upgrade: bool = False) -> bool:
    """Asked by a rule just before it disrupts ``v`` (drains it, upgrades it in place): as Mirantis' LCM
    does, first request maintenance of its node (the scheduler's own request, unless an operator's names it
    already) and, for an ``upgrade``, of the cluster (made while the cluster upgrades, by
    ``own_request_writes``), then wait until no other controller's workload lock forbids it
    (``disruption_hold``). True once all allow it; otherwise False, and the machine's hold says what it
    waits for."""
    if maintenance_skipped(fleet, v):
        return True
    if upgrade and not fleet.maintenance.cluster_requests:
        fleet.hold(v, MAINTENANCE_REQUESTED, "the cluster's ClusterMaintenanceRequest is being created")
        return False
    theirs = any(r.spec.node_name == v.name and not is_ours(r) for r in fleet.maintenance.node_requests)
    if not theirs:
        fleet.requested.setdefault(v.name, scope)
        if not any(r.spec.node_name == v.name for r in fleet.maintenance.node_requests):
            fleet.hold(v, MAINTENANCE_REQUESTED, "its NodeMaintenanceRequest is being created")
            return False
    if (hold := disruption_hold(fleet, v)) is not None:
        fleet.hold(v, hold.reason, hold.message)
        return False
    return True


def _still_needed(fleet: Fleet, v: MachineView) -> bool:
    """A request of ours stays while its machine is disrupted: in maintenance by its flag, drained,
    rebooting, or changing after a disruption began (Mirantis removes it after "Swarm uncordoned")."""
    return not v.deleting and (v.spec.maintenance or v.name in fleet.drains or v.name in fleet.rebooting
                               or (v.released and not v.settled))


def _upgrading(fleet: Fleet, ours: bool) -> bool:
    """The cluster is on its way to another release (Mirantis requests cluster maintenance for that): a
    released machine not on the target yet, or, once the request is made, one not settled or drained."""
    staying = [v for v in fleet.views if not v.deleting and v.released]
    if any(v.spec.release != fleet.templates.release for v in staying):
        return True
    return ours and any(not v.settled or v.name in fleet.drains for v in staying)


def own_request_writes(fleet: Fleet) -> list[Action]:
    """Creates and deletes that make the scheduler's own requests those needed at the end of the plan: one
    per machine a rule asked for (``fleet.requested``) or still disrupted, one for the cluster while its
    ``spec.maintenance`` is set and no operator's request names it."""
    cluster = fleet.cluster
    namespace, name = cluster.metadata.namespace or "", cluster.metadata.name or ""
    actions: list[Action] = []
    ours = {r.spec.node_name: r for r in fleet.maintenance.node_requests if is_ours(r)}
    nodes = dict(fleet.requested)
    for v in fleet.views:
        if v.name in ours and v.name not in nodes and _still_needed(fleet, v):
            nodes[v.name] = ours[v.name].spec.scope or "drain"
    theirs = any(not is_ours(r) for r in fleet.maintenance.cluster_requests)
    mine = next((r for r in fleet.maintenance.cluster_requests if is_ours(r)), None)
    skipped = cluster.metadata.annotations.get(SKIP_MAINTENANCE_ANNOTATION) == "true"
    wanted = cluster.spec.maintenance or (not skipped and _upgrading(fleet, mine is not None))
    cluster_scope: MaintenanceScope | None = "drain" if wanted and not theirs else None
    for node, request in sorted(ours.items()):
        if node not in nodes:
            actions.append(Delete("nodemaintenancerequests", namespace, request.metadata.name or "",
                                  f"maintenance of {node} over"))
    for node, scope in sorted(nodes.items()):
        if node not in ours:
            spec = {"nodeName": node, "scope": scope, "clusterName": name}
            actions.append(Create("nodemaintenancerequests", namespace,
                                  _body("NodeMaintenanceRequest", namespace, node, spec),
                                  f"maintenance of {node} requested"))
    if mine is not None and cluster_scope is None:
        actions.append(Delete("clustermaintenancerequests", namespace, mine.metadata.name or "",
                              "cluster maintenance over"))
    elif mine is None and cluster_scope is not None:
        actions.append(Create("clustermaintenancerequests", namespace, _body(
            "ClusterMaintenanceRequest", namespace, name, {"scope": cluster_scope, "clusterName": name}),
            "cluster maintenance requested"))
    return actions


def _body(kind: str, namespace: str, name: str, spec: Mapping[str, str]) -> dict[str, object]:
    metadata = {"name": name, "namespace": namespace, "labels": {MANAGED_BY_LABEL: SCHEDULER_NAME}}
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": dict(spec)}
