"""Rollouts end to end: the scheduler with the real planner, simulated agents over the real API, and what an
operator would check (kubectl get: states, the cluster's status, drains) at each step."""

from __future__ import annotations

from collections.abc import Callable
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

from agent.adapters.kube import Kube, KubeError
from agent.api.execution import ItemResult
from agent.api.models import StateItem
from regional.planning.settings import PlanSettings
from testbed.fake_agents import SimulatedFleetSettings, succeed
from testbed.sim.testing import KubeApi, Recorder

pytestmark = pytest.mark.kube

CONTROL = "c0"


async def create_cluster(kube: Kube, ns: str, workers: int, **cluster: Any) -> list[str]:
    await kube.create(RELEASES, "", release_body("swarm-1.0.0", "1.0.0"))
    await kube.create(CLUSTERS, ns, cluster_body(ns, "swarm-1.0.0", **cluster))
    await kube.create(MACHINES, ns, machine_body(ns, CONTROL, "control", index=0))
    names = [f"w{i}" for i in range(workers)]
    for i, name in enumerate(names):
        await kube.create(MACHINES, ns, machine_body(ns, name, "worker", index=i + 1))
    return [CONTROL, *names]


async def cluster_status(kube: Kube, ns: str) -> dict[str, Any]:
    return dict((await kube.get(CLUSTERS, ns, "demo")).get("status", {}))


def first(history: Recorder, name: str, when: Callable[[dict[str, Any]], bool]) -> int:
    """The resourceVersion of the first recorded version of ``name`` for which ``when`` holds."""
    return next(int(o["metadata"]["resourceVersion"]) for o in history.versions(name) if when(o))


def has_item(item: str) -> Callable[[dict[str, Any]], bool]:
    return lambda o: any(i["name"] == item for i in o["spec"].get("stateItems", []))


def done(item: str) -> Callable[[dict[str, Any]], bool]:
    """The item in spec and reported done (a machine holding only prepare items is Ready too, so Ready alone
    does not say that its swarm item ran)."""
    def check(o: dict[str, Any]) -> bool:
        slot = o.get("status", {}).get("stateItemStatuses", {}).get(item, {})
        return has_item(item)(o) and slot.get("exitCode") == 0 and o["status"].get("state") == "Ready"
    return check


async def test_first_deploy_brings_the_control_machine_up_before_the_workers_join(kube_api: KubeApi,
                                                                                 kube: Kube) -> None:
    ns = kube_api.namespace
    names = await create_cluster(kube, ns, 2)
    async with (Recorder(kube, MACHINES, ns) as history, running(scheduler(kube, ns)),
                fleet_running(kube, ns, names)):
        await eventually(lambda: _cluster_ready(kube, ns, 3), within=60, what="the cluster's status: 3 ready")
    control_ready = first(history, CONTROL, done("swarm-init"))
    for worker in names[1:]:
        prepared = first(history, worker, has_item("preflight"))
        joining = first(history, worker, has_item("swarm-join"))
        assert prepared < joining  # prepare items first, in parallel with the control machine...
        assert control_ready < joining  # ...the swarm join only once the first manager is up
        machine = await kube.get(MACHINES, ns, worker)
        control_ip = history.versions(CONTROL)[-1]["status"]["addresses"][0]["address"]
        join = next(i for i in machine["spec"]["stateItems"] if i["name"] == "swarm-join")["params"]
        assert join["managerAddresses"] == f"{control_ip}:2377"
        assert "lcm.mirantis.com/swarm-member" in machine["metadata"]["finalizers"]
    status = await cluster_status(kube, ns)
    assert status["release"] == "swarm-1.0.0"
    assert status["lcmOperationStuck"] is False


async def _cluster_ready(kube: Kube, ns: str, count: int) -> bool:
    status = await cluster_status(kube, ns)
    return bool(status.get("readyNodes") == count and status.get("release") == "swarm-1.0.0")


async def test_a_worker_added_later_joins_without_touching_the_others(kube_api: KubeApi, kube: Kube) -> None:
    ns = kube_api.namespace
    names = await create_cluster(kube, ns, 1)
    async with running(scheduler(kube, ns)), fleet_running(kube, ns, [*names, "w9"]):
        await eventually(lambda: _cluster_ready(kube, ns, 2), within=60, what="2 ready")
        before = {n: (await kube.get(MACHINES, ns, n))["metadata"]["generation"] for n in names}
        await kube.create(MACHINES, ns, machine_body(ns, "w9", "worker", index=9))
        await eventually(lambda: _cluster_ready(kube, ns, 3), within=60, what="3 ready")
    after = {n: (await kube.get(MACHINES, ns, n))["metadata"]["generation"] for n in names}
    assert after == before  # no spec write reached the machines already Ready


async def test_a_removed_worker_is_drained_and_removed_from_the_swarm_before_it_goes(kube_api: KubeApi,
                                                                                   kube: Kube) -> None:
    ns = kube_api.namespace
    names = await create_cluster(kube, ns, 2)
    async with running(scheduler(kube, ns)), fleet_running(kube, ns, names) as fleet:
        await eventually(lambda: _cluster_ready(kube, ns, 3), within=60, what="3 ready")
        async with Recorder(kube, CLUSTER_STATES, ns) as operations:
            await kube.delete(MACHINES, ns, "w1")  # the provider deletes it; the finalizer holds it
            await eventually(lambda: _gone(kube, MACHINES, ns, "w1"), within=30, what="w1 deleted")
            await eventually(lambda: _gone(kube, CLUSTER_STATES, ns, "sr-w1"), what="sr-w1 cleaned up")
        await eventually(lambda: _cluster_ready(kube, ns, 2), what="2 ready")
    assert fleet.executor.drained == [("w1", True)]
    created = [o["metadata"]["name"] for kind, o in operations.events if kind == "ADDED"]
    assert created == ["sd-w1", "sr-w1"]  # drained first, then removed
    assert await _gone(kube, CLUSTER_STATES, ns, "sd-w1")


async def _gone(kube: Kube, res: Any, ns: str, name: str) -> bool:
    try:
        await kube.get(res, ns, name)
    except KubeError as exc:
        return exc.status == 404
    return False


async def test_an_upgrade_drains_workers_no_more_than_the_cluster_allows_at_once(kube_api: KubeApi,
                                                                                kube: Kube) -> None:
    ns = kube_api.namespace
    names = await create_cluster(kube, ns, 4, maxWorkerUpgradeCount=2)
    settings = SimulatedFleetSettings(drain_seconds=0.2)
    async with running(scheduler(kube, ns)), fleet_running(kube, ns, names, settings=settings) as fleet:
        await eventually(lambda: _cluster_ready(kube, ns, 5), within=60, what="5 ready on 1.0.0")
        async with Recorder(kube, CLUSTER_STATES, ns) as operations:
            await kube.create(RELEASES, "", release_body("swarm-1.1.0", "1.1.0", upgrade_from=["swarm-1.0.0"],
                                                         item_version="1.1.0"))
            await kube.patch(CLUSTERS, ns, "demo", {"spec": {"release": "swarm-1.1.0"}})
            await eventually(lambda: _upgraded(kube, ns, names), within=90, what="every machine on 1.1.0")
    most = max_drained_at_once(operations.events)
    assert most == 2  # the budget was used, and never exceeded
    drained = [name for name, on in fleet.executor.drained if on]
    assert sorted(drained) == sorted(names[1:])  # every worker drained once; the dedicated control plane not
    assert [name for name, on in fleet.executor.drained if not on] == drained  # and undrained in turn


def max_drained_at_once(events: list[tuple[str, dict[str, Any]]]) -> int:
    """Replays the LCMClusterStates' history: the most sd- objects asking for a drain at one moment."""
    asking: set[str] = set()
    most = 0
    for kind, obj in events:
        name = obj["metadata"]["name"]
        if not name.startswith("sd-"):
            continue
        if kind != "DELETED" and obj["spec"]["value"] == "true":
            asking.add(name)
        else:
            asking.discard(name)
        most = max(most, len(asking))
    return most


async def _upgraded(kube: Kube, ns: str, names: list[str]) -> bool:
    status = await cluster_status(kube, ns)
    machines = [await kube.get(MACHINES, ns, n) for n in names]
    return status.get("release") == "swarm-1.1.0" and all(
        m["spec"]["release"] == "swarm-1.1.0" and m["status"].get("state") == "Ready"
        and not m["status"].get("swarmCordonDrain") for m in machines)


async def test_a_failing_item_halts_the_rollout_until_it_succeeds(kube_api: KubeApi, kube: Kube) -> None:
    ns = kube_api.namespace
    names = await create_cluster(kube, ns, 3, maxWorkerDeployCount=2)
    broken = {"w0"}

    def script(machine: str, item: StateItem, attempt: int) -> ItemResult:
        if machine in broken and item.name == "docker-engine":
            return ItemResult(exit_code=2, result="failed", message="E: Unable to locate package docker.io")
        return succeed(machine, item, attempt)

    # One failed attempt halts: w0's failure is then in the API long before w1 has run its four deploy and
    # reconfigure items, so the halt always comes before w1's slot frees up (with two attempts, w0's
    # retry backoff raced w1's items, and w2 was sometimes let in before the halt, legitimately).
    sched = scheduler(kube, ns, planning=PlanSettings(max_item_attempts=1))
    async with running(sched), fleet_running(kube, ns, names, script=script):
        await eventually(lambda: _stuck(kube, ns), within=60, what="the cluster marked stuck")
        await eventually(lambda: _machine_stuck(kube, ns, "w0"), what="w0 marked stuck")
        await eventually(lambda: _settled(kube, ns, "w1"), what="w1 deployed beside w0")
        # w1's deploy slot is free again and w0 keeps retrying: each retry is a status write, so a plan.
        # Three plans that had w1 settled in view: w2 must not have started.
        planned = sched.terms[-1].plans
        await eventually(lambda: sched.terms[-1].plans >= planned + 3, what="three more plans")
        w2 = await kube.get(MACHINES, ns, "w2")
        assert {i["phase"] for i in w2["spec"]["stateItems"]} == {"prepare"}
        # The failure's own words follow once the planner has read w0's item message (a later write).
        await eventually(lambda: _stuck_says(kube, ns, "Unable to locate package"), what="apt error")
        status = await cluster_status(kube, ns)
        assert status["progress"].startswith("halted, ")
        stuck = next(c for c in status["conditions"] if c["type"] == "OperationStuck")
        assert "w0: item docker-engine failed" in stuck["message"]
        assert "Unable to locate package" in stuck["message"]
        broken.clear()  # the operator fixed the mirror: the agent's next retry succeeds
        await eventually(lambda: _cluster_ready(kube, ns, 4), within=60, what="4 ready")
    assert (await cluster_status(kube, ns))["lcmOperationStuck"] is False
    assert (await kube.get(MACHINES, ns, "w0"))["status"]["lcmOperationStuck"] is False


async def _stuck_says(kube: Kube, ns: str, text: str) -> bool:
    conditions = (await cluster_status(kube, ns)).get("conditions") or []
    return any(c["type"] == "OperationStuck" and text in c.get("message", "") for c in conditions)


async def _machine_stuck(kube: Kube, ns: str, name: str) -> bool:
    return bool((await kube.get(MACHINES, ns, name))["status"].get("lcmOperationStuck"))


async def _settled(kube: Kube, ns: str, name: str) -> bool:
    machine = await kube.get(MACHINES, ns, name)
    return machine["status"].get("state") == "Ready" and any(
        i["phase"] != "prepare" for i in machine["spec"]["stateItems"])


async def _stuck(kube: Kube, ns: str) -> bool:
    return bool((await cluster_status(kube, ns)).get("lcmOperationStuck"))




async def test_a_drain_past_the_clusters_timeout_stops_the_rollout(kube_api: KubeApi, kube: Kube) -> None:
    """``drainTimeoutSeconds`` reaches the executor on the ``sd-`` state; when it expires the rollout stops
    by itself (the plan asked to be woken), the machine and the cluster marked stuck, the drain named."""
    ns = kube_api.namespace
    names = await create_cluster(kube, ns, 2, drainTimeoutSeconds=3)
    settings = SimulatedFleetSettings(drain_seconds=3600)  # the executor's drains never finish
    async with running(scheduler(kube, ns)), fleet_running(kube, ns, names, settings=settings):
        await eventually(lambda: _cluster_ready(kube, ns, 3), within=60, what="3 ready on 1.0.0")
        await kube.create(RELEASES, "", release_body("swarm-1.1.0", "1.1.0", upgrade_from=["swarm-1.0.0"],
                                                     item_version="1.1.0"))
        await kube.patch(CLUSTERS, ns, "demo", {"spec": {"release": "swarm-1.1.0"}})
        await eventually(lambda: _stuck(kube, ns), within=60, what="the cluster marked stuck")
        status = await cluster_status(kube, ns)
        drain = await kube.get(CLUSTER_STATES, ns, "sd-w0")
        w0 = await kube.get(MACHINES, ns, "w0")
        w1 = await kube.get(MACHINES, ns, "w1")
    assert drain["metadata"]["annotations"]["lcm.mirantis.com/drain-timeout-seconds"] == "3"
    stuck = next(c for c in status["conditions"] if c["type"] == "OperationStuck")
    assert stuck["message"] == "w0: drain of w0 not done after 3s"
    assert w0["status"]["lcmOperationStuck"] is True
    assert w0["status"]["swarmCordonDrain"] == "cordondraining"  # left draining, and the status says so
    assert w1["spec"]["release"] == "swarm-1.0.0"  # the rollout stopped there
