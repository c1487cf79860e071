"""Maintenance and workload locks end to end: the scheduler, simulated agents over the API (the real server,
or the simulator), and what an operator and another controller see (kubectl get lcmm, nwl, nmr)."""

from __future__ import annotations

from typing import Any

import pytest
from scheduler_harness import (
    CLUSTER_STATES,
    CLUSTERS,
    MACHINES,
    RELEASES,
    cluster_body,
    eventually,
    fleet_running,
    machine_body,
    release_body,
    running,
    scheduler,
)

from agent.adapters.kube import Kube, Resource
from agent.api.models import API_VERSION, GROUP, VERSION
from testbed.sim.testing import KubeApi, field_of

pytestmark = pytest.mark.kube

NODE_LOCKS = Resource(GROUP, VERSION, "nodeworkloadlocks")
NODE_REQUESTS = Resource(GROUP, VERSION, "nodemaintenancerequests")
NAMES = ["c0", "w0", "w1"]
PATIENCE = 60.0
"""Seconds any wait may take: the host is shared and loaded."""


async def _ready_cluster(kube: Kube, ns: str) -> None:
    await kube.create(RELEASES, "", release_body("swarm-1.0.0", "1.0.0"))
    await kube.create(CLUSTERS, ns, cluster_body(ns, "swarm-1.0.0"))
    for i, (name, kind) in enumerate(zip(NAMES, ("control", "worker", "worker"), strict=True)):
        await kube.create(MACHINES, ns, machine_body(ns, name, kind, index=i))


async def _equals(value: Any, kube: Kube, res: Resource, ns: str, name: str, *path: str) -> bool:
    return bool(await field_of(kube, res, ns, name, *path) == value)


async def _all_ready(kube: Kube, ns: str) -> bool:
    return await field_of(kube, CLUSTERS, ns, "demo", "status", "readyNodes") == len(NAMES)


async def _w0_into_maintenance(kube: Kube, ns: str) -> None:
    """Once the cluster is ready, w0's flag set, and the wait until the scheduler says it is in."""
    await eventually(lambda: _all_ready(kube, ns), within=PATIENCE, what="3 ready")
    await kube.patch(MACHINES, ns, "w0", {"spec": {"maintenance": True}})
    await eventually(lambda: field_of(kube, MACHINES, ns, "w0", "status", "maintenance"),
                     within=PATIENCE, what="w0 in maintenance")


async def test_a_worker_goes_into_maintenance_drained_and_comes_out_undrained(kube_api: KubeApi,
                                                                            kube: Kube) -> None:
    ns = kube_api.namespace
    await _ready_cluster(kube, ns)
    async with running(scheduler(kube, ns)), fleet_running(kube, ns, NAMES) as fleet:
        await _w0_into_maintenance(kube, ns)
        assert await field_of(kube, MACHINES, ns, "w0", "status", "swarmCordonDrain") == "cordondrained"
        lock = await kube.get(NODE_LOCKS, ns, "w0-lcm-scheduler")
        assert (lock["spec"]["controllerName"], lock["status"]["state"]) == ("lcm-scheduler", "active")
        request = await kube.get(NODE_REQUESTS, ns, "w0")  # what other controllers are told
        assert request["spec"] == {"nodeName": "w0", "scope": "os", "clusterName": "demo"}

        await kube.patch(MACHINES, ns, "w0", {"spec": {"maintenance": False}})
        await eventually(lambda: _equals(None, kube, CLUSTER_STATES, ns, "sd-w0"), within=PATIENCE,
                         what="the drain undone and gone")
        await eventually(lambda: _equals("inactive", kube, NODE_LOCKS, ns, "w0-lcm-scheduler", "status",
                                         "state"), within=PATIENCE, what="the scheduler's lock inactive")
        w0 = await kube.get(MACHINES, ns, "w0")
        assert (w0["status"].get("maintenance"), w0["status"].get("swarmCordonDrain")) == (False, None)
        await eventually(lambda: _equals(None, kube, NODE_REQUESTS, ns, "w0"), within=PATIENCE,
                         what="the request removed")
    assert fleet.executor.drained == [("w0", True), ("w0", False)]


async def test_another_controllers_lock_holds_a_request_and_a_typo_is_refused(kube_api: KubeApi,
                                                                             kube: Kube) -> None:
    ns = kube_api.namespace
    await _ready_cluster(kube, ns)
    lock = {"apiVersion": API_VERSION, "kind": "NodeWorkloadLock", "metadata": {"name": "w1-ceph"},
            "spec": {"controllerName": "ceph", "nodeName": "w1"}}
    await kube.create(NODE_LOCKS, ns, lock)
    await kube.patch(NODE_LOCKS, ns, "w1-ceph", {"status": {"state": "active"}}, subresource="status")
    async with running(scheduler(kube, ns)), fleet_running(kube, ns, NAMES) as fleet:
        await eventually(lambda: _all_ready(kube, ns), within=PATIENCE, what="3 ready")
        for name, node in (("fix-w1", "w1"), ("typo", "w9")):
            await kube.create(NODE_REQUESTS, ns, {
                "apiVersion": API_VERSION, "kind": "NodeMaintenanceRequest", "metadata": {"name": name},
                "spec": {"nodeName": node, "scope": "drain"}})
        await eventually(lambda: _equals("Refused", kube, NODE_REQUESTS, ns, "typo", "status", "phase"),
                         within=PATIENCE, what="the request naming no machine refused")
        assert await field_of(kube, NODE_REQUESTS, ns, "typo", "status", "message") == "no machine w9"
        await eventually(lambda: _equals("Waiting", kube, NODE_REQUESTS, ns, "fix-w1", "status", "phase"),
                         within=PATIENCE, what="the request for w1 waiting")
        assert await field_of(kube, NODE_REQUESTS, ns, "fix-w1", "status", "message") == \
            "active: NodeWorkloadLock w1-ceph of ceph"
        assert fleet.executor.drained == []  # the lock held it

        await kube.patch(NODE_LOCKS, ns, "w1-ceph", {"status": {"state": "inactive"}}, subresource="status")
        await eventually(lambda: _equals("InMaintenance", kube, NODE_REQUESTS, ns, "fix-w1", "status",
                                         "phase"), within=PATIENCE, what="w1 in maintenance")
        assert await field_of(kube, MACHINES, ns, "w1", "status", "maintenance") is True
        await kube.delete(NODE_REQUESTS, ns, "fix-w1")
        await eventually(lambda: _equals(None, kube, CLUSTER_STATES, ns, "sd-w1"), within=PATIENCE,
                         what="w1 undrained")
    assert fleet.executor.drained == [("w1", True), ("w1", False)]


async def test_a_worker_deleted_in_maintenance_leaves_the_swarm_and_nothing_of_it_is_left(kube_api: KubeApi,
                                                                                        kube: Kube) -> None:
    ns = kube_api.namespace
    await _ready_cluster(kube, ns)
    async with running(scheduler(kube, ns)), fleet_running(kube, ns, NAMES) as fleet:
        await _w0_into_maintenance(kube, ns)
        await kube.delete(MACHINES, ns, "w0")  # the provider deletes it; the finalizer holds it until it left
        await eventually(lambda: _equals(None, kube, MACHINES, ns, "w0"), within=PATIENCE, what="w0 gone")
        for res, name in ((CLUSTER_STATES, "sd-w0"), (CLUSTER_STATES, "sr-w0"), (NODE_REQUESTS, "w0"),
                          (NODE_LOCKS, "w0-lcm-scheduler")):
            await eventually(lambda res=res, name=name: _equals(None, kube, res, ns, name),
                             within=PATIENCE, what=f"{res.plural}/{name} cleaned up")
    # Drained once, for maintenance; its node then left the swarm (sr-w0), so no cordoned node stays behind.
    assert fleet.executor.drained == [("w0", True)]
