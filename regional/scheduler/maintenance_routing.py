"""Which cluster a maintenance request or workload lock concerns, for the controller's caches and queue.

Mirantis' kinds name a node or nothing (their API server holds one cluster); here each lives in the namespace
of its LCMMachines and may name its LCMCluster (``spec.clusterName``, an extension). So each is indexed by
``(namespace, clusterName)``, a ClusterMaintenanceRequest without one by its own name (Mirantis names it
after its cluster), anything else without one by ``(namespace, "")``; a cluster's plan then takes from
that last index what names one of its machines (node requests and locks) or all of it (cluster locks). A node
request naming no machine at all goes to every cluster of its namespace, each of which refuses it alike.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

from agent.adapters.followed import FollowedObjects, object_key, raw_field
from agent.adapters.kube import Object
from agent.api.models import (
    ClusterMaintenanceRequest,
    ClusterWorkloadLock,
    LCMCluster,
    LCMMachine,
    NodeMaintenanceRequest,
    NodeWorkloadLock,
)
from regional.planning.maintenance_objects import MaintenanceObjects

ClusterKey = tuple[str, str]
UNNAMED = ""
"""The index of the objects that name no cluster."""


def routing_key(raw: Object) -> Hashable | None:
    """``(namespace, cluster)`` of a request or lock; ``(namespace, "")`` when it names none."""
    namespace, name = object_key(raw)
    cluster = raw_field(raw, "spec", "clusterName")
    if isinstance(cluster, str) and cluster:
        return namespace, cluster
    if raw_field(raw, "kind") == "ClusterMaintenanceRequest":
        return namespace, name
    return namespace, UNNAMED


class MaintenanceCaches:
    """The followed requests and locks, and the clusters a change of one of them concerns."""

    def __init__(self, machines: FollowedObjects[LCMMachine], clusters: FollowedObjects[LCMCluster],
                 **callbacks: Any) -> None:
        self.machines, self.clusters = machines, clusters
        self.node_requests = FollowedObjects(NodeMaintenanceRequest, index=routing_key, **callbacks)
        self.cluster_requests = FollowedObjects(ClusterMaintenanceRequest, index=routing_key, **callbacks)
        self.node_locks = FollowedObjects(NodeWorkloadLock, index=routing_key, **callbacks)
        self.cluster_locks = FollowedObjects(ClusterWorkloadLock, index=routing_key, **callbacks)

    def followed(self) -> list[tuple[type[Any], FollowedObjects[Any]]]:
        return [(NodeMaintenanceRequest, self.node_requests),
                (ClusterMaintenanceRequest, self.cluster_requests),
                (NodeWorkloadLock, self.node_locks), (ClusterWorkloadLock, self.cluster_locks)]

    def _node_cluster(self, namespace: str, node: object) -> str | None:
        """The cluster of the machine a node name names; None when there is no such machine."""
        entry = self.machines.entry(namespace, node) if isinstance(node, str) else None
        cluster = raw_field(entry.raw, "spec", "clusterName") if entry is not None else None
        return cluster if isinstance(cluster, str) else None

    def concerned(self, raw: Object) -> Iterable[ClusterKey]:
        """The clusters to plan again when ``raw`` changed."""
        key = routing_key(raw)
        assert isinstance(key, tuple)
        namespace, cluster = key
        if cluster != UNNAMED:
            return [(namespace, cluster)]
        owner = self._node_cluster(namespace, raw_field(raw, "spec", "nodeName"))
        if owner is not None and raw_field(raw, "kind") != "ClusterWorkloadLock":
            return [(namespace, owner)]
        return [object_key(e.raw) for e in self.clusters.entries() if object_key(e.raw)[0] == namespace]

    def for_cluster(self, key: ClusterKey) -> MaintenanceObjects:
        """What the cluster's plan gets: what names it, and of what names no cluster, what concerns it."""
        namespace, name = key
        unnamed = (namespace, UNNAMED)

        def mine(node: str) -> bool:
            owner = self._node_cluster(namespace, node)
            return owner == name or owner is None

        return MaintenanceObjects(
            node_requests=[*self.node_requests.models(key),
                           *(r for r in self.node_requests.models(unnamed) if mine(r.spec.node_name))],
            cluster_requests=self.cluster_requests.models(key),
            node_locks=[*self.node_locks.models(key),
                        *(lock for lock in self.node_locks.models(unnamed)
                          if self._node_cluster(namespace, lock.spec.node_name) == name)],
            cluster_locks=[*self.cluster_locks.models(key), *self.cluster_locks.models(unnamed)],
        )
