"""The maintenance requests and workload locks of one cluster, as the planner gets them.

Mirantis' node maintenance API (docs/api.md, "Maintenance and workload locks"): NodeMaintenanceRequest and
ClusterMaintenanceRequest ask for a node (cluster) to be put in maintenance; NodeWorkloadLock and
ClusterWorkloadLock are each controller's say on whether its workloads let the node (cluster) be disrupted.
The runtime routes them to the cluster they concern (``spec.clusterName``, or the machine a ``nodeName``
names); the planner still checks every name, since a request may name what is not there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.api.models import (
    ClusterMaintenanceRequest,
    ClusterWorkloadLock,
    NodeMaintenanceRequest,
    NodeWorkloadLock,
)


@dataclass(frozen=True)
class MaintenanceObjects:
    node_requests: Sequence[NodeMaintenanceRequest] = ()
    cluster_requests: Sequence[ClusterMaintenanceRequest] = ()
    node_locks: Sequence[NodeWorkloadLock] = ()
    cluster_locks: Sequence[ClusterWorkloadLock] = ()
