"""Which cluster's plan sees a maintenance request or workload lock, and which clusters a change of one
re-plans: by its clusterName, else by the machine it names, else every cluster of its namespace."""

from __future__ import annotations

from typing import Any

import pytest

from agent.adapters.followed import FollowedObjects
from agent.api.models import API_VERSION, LCMCluster, LCMMachine
from regional.scheduler.maintenance_routing import MaintenanceCaches

NS = "ns"
A, B = (NS, "a"), (NS, "b")


def _raw(kind: str, name: str, rv: int, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind,
            "metadata": {"name": name, "namespace": NS, "resourceVersion": str(rv)}, "spec": spec}


@pytest.fixture
def caches() -> MaintenanceCaches:
    machines = FollowedObjects(LCMMachine)
    clusters = FollowedObjects(LCMCluster)
    for rv, (name, cluster) in enumerate((("m-a1", "a"), ("m-b1", "b")), start=1):
        machines.answered(_raw("LCMMachine", name, rv, clusterName=cluster, type="worker"))
    for rv, name in enumerate(("a", "b"), start=10):
        clusters.answered(_raw("LCMCluster", name, rv, release="r"))
    return MaintenanceCaches(machines, clusters)


@pytest.mark.parametrize(("spec", "concerned"), [
    ({"nodeName": "m-b1", "clusterName": "a"}, [A]),  # a's plan refuses it: m-b1 is not a machine of a
    ({"nodeName": "m-b1"}, [B]),
    ({"nodeName": "m-zz"}, [A, B]),  # names nothing: every cluster of the namespace refuses it alike
])
def test_a_node_request_goes_to_the_cluster_it_concerns(caches: MaintenanceCaches, spec: dict[str, str],
                                                        concerned: list[tuple[str, str]]) -> None:
    raw = _raw("NodeMaintenanceRequest", "r1", 20, **spec)
    caches.node_requests.answered(raw)
    assert sorted(caches.concerned(raw)) == concerned
    planned_with = [key for key in (A, B) if caches.for_cluster(key).node_requests]
    assert planned_with == concerned


def test_locks_go_to_their_nodes_cluster_or_to_every_cluster(caches: MaintenanceCaches) -> None:
    node_lock = _raw("NodeWorkloadLock", "m-a1-ceph", 30, controllerName="ceph", nodeName="m-a1")
    cluster_lock = _raw("ClusterWorkloadLock", "ceph", 31, controllerName="ceph")
    caches.node_locks.answered(node_lock)
    caches.cluster_locks.answered(cluster_lock)
    assert (list(caches.concerned(node_lock)), sorted(caches.concerned(cluster_lock))) == ([A], [A, B])
    assert [len(caches.for_cluster(k).node_locks) for k in (A, B)] == [1, 0]
    assert [len(caches.for_cluster(k).cluster_locks) for k in (A, B)] == [1, 1]


def test_a_cluster_request_without_a_cluster_name_is_its_clusters_by_name(caches: MaintenanceCaches) -> None:
    raw = _raw("ClusterMaintenanceRequest", "b", 40, scope="drain")
    caches.cluster_requests.answered(raw)
    assert list(caches.concerned(raw)) == [B]
    assert [len(caches.for_cluster(k).cluster_requests) for k in (A, B)] == [0, 1]
