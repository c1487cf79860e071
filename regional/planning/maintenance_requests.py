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
from regional.planning.contract import MANAGED_BY_LABEL, SCHEDULER_NAME
from regional.planning.fleet import Fleet


def is_ours(request: NodeMaintenanceRequest | ClusterMaintenanceRequest) -> bool:
    return request.metadata.labels.get(MANAGED_BY_LABEL) == SCHEDULER_NAME


def own_request_writes(fleet: Fleet, nodes: Mapping[str, MaintenanceScope],
                       cluster_scope: MaintenanceScope | None) -> list[Action]:
    """Creates and deletes that make the scheduler's own requests exactly those wanted: one per machine in
    ``nodes`` (with its scope), one for the cluster when ``cluster_scope`` is set."""
    cluster = fleet.cluster
    namespace, name = cluster.metadata.namespace or "", cluster.metadata.name or ""
    actions: list[Action] = []
    ours = {r.spec.node_name: r for r in fleet.maintenance.node_requests if is_ours(r)}
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
    mine = next((r for r in fleet.maintenance.cluster_requests if is_ours(r)), None)
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
