"""A drain that does not end, end to end on the API server: the LCMCluster's ``drainTimeoutSeconds`` reaches
the drain's executor on its ``sd-`` state, and when it expires the rollout stops by itself (no other event
needed: the plan asked to be woken), the machine and the cluster marked stuck, and the cluster's status
says which drain and for how long."""

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

from agent.adapters.kube import Kube
from testbed.fake_agents import SimulatedFleetSettings
from testbed.sim.testing import KubeApi

pytestmark = pytest.mark.kube


async def _stuck_message(kube: Kube, ns: str) -> str:
    status: dict[str, Any] = (await kube.get(CLUSTERS, ns, "demo")).get("status") or {}
    conditions = status.get("conditions", [])
    stuck = [c for c in conditions if c["type"] == "OperationStuck" and c["status"] == "True"]
    return str(stuck[0]["message"]) if stuck else ""


async def test_a_drain_past_the_clusters_timeout_stops_the_rollout(kube_api: KubeApi, kube: Kube) -> None:
    ns = kube_api.namespace
    await kube.create(RELEASES, "", release_body("swarm-1.0.0", "1.0.0"))
    await kube.create(CLUSTERS, ns, cluster_body(ns, "swarm-1.0.0", drainTimeoutSeconds=3))
    names = ["c0", "w0", "w1"]
    await kube.create(MACHINES, ns, machine_body(ns, "c0", "control", index=0))
    for i, name in enumerate(names[1:]):
        await kube.create(MACHINES, ns, machine_body(ns, name, "worker", index=i + 1))
    # The executor's drains never finish (say, a task that will not stop).
    settings = SimulatedFleetSettings(drain_seconds=3600)
    async with running(scheduler(kube, ns)), fleet_running(kube, ns, names, settings=settings):
        async def ready() -> bool:
            status = (await kube.get(CLUSTERS, ns, "demo")).get("status") or {}
            return bool(status.get("readyNodes") == 3 and status.get("release") == "swarm-1.0.0")

        await eventually(ready, within=60, what="3 ready on 1.0.0")
        await kube.create(RELEASES, "", release_body("swarm-1.1.0", "1.1.0", upgrade_from=["swarm-1.0.0"],
                                                     item_version="1.1.0"))
        await kube.patch(CLUSTERS, ns, "demo", {"spec": {"release": "swarm-1.1.0"}})
        await eventually(lambda: _stuck_message(kube, ns), within=60, what="the cluster marked stuck")
        message = await _stuck_message(kube, ns)
        drain = await kube.get(CLUSTER_STATES, ns, "sd-w0")
        w0 = await kube.get(MACHINES, ns, "w0")
        w1 = await kube.get(MACHINES, ns, "w1")
    assert drain["metadata"]["annotations"]["lcm.mirantis.com/drain-timeout-seconds"] == "3"
    assert message == "w0: drain of w0 not done after 3s"
    assert w0["status"]["lcmOperationStuck"] is True
    assert w0["status"]["swarmCordonDrain"] == "cordondraining"  # left draining, and the status says so
    assert w1["spec"]["release"] == "swarm-1.0.0"  # the rollout stopped there
