"""The scheduler's runtime around a planner, with planners written for each test: what it writes, how
often, what it does when the API refuses, and what an operator sees (Events, logs)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from scheduler_harness import (
    CLUSTER_STATES,
    CLUSTERS,
    EVENTS,
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
from regional.planning.actions import Action, Create, Patch, Plan, PlanInput
from regional.scheduler.settings import Throttle
from testbed.sim.faults import Faults
from testbed.sim.testing import KubeApi

pytestmark = pytest.mark.kube


def assign_items(inputs: PlanInput) -> Plan:
    """Every registered machine without items gets its type's items from the release; the cluster's status
    counts Ready machines."""
    release = inputs.releases[inputs.cluster.spec.release]
    actions: list[Action] = []
    for machine in inputs.machines:
        if machine.status.internal_ip and not machine.spec.state_items:
            items = [i.model_dump(mode="json", by_alias=True) for i in release.spec.machine_types["worker"]]
            actions.append(Patch("lcmmachines", machine.metadata.namespace or "", machine.metadata.name or "",
                                 {"spec": {"stateItems": items, "lcmType": "ucp",
                                           "components": {"ucpVersion": release.spec.version}}},
                                 reason="registered: items assigned"))
    ready = sum(m.status.state == "Ready" for m in inputs.machines)
    actions.append(Patch("lcmclusters", inputs.cluster.metadata.namespace or "", "demo",
                         {"status": {"readyNodes": ready, "requestedNodes": len(inputs.machines)}},
                         subresource="status"))
    return Plan(tuple(actions))


async def setup(kube: Kube, ns: str, machines: int, **cluster: Any) -> list[str]:
    await kube.create(RELEASES, "", release_body("swarm-1.0.0", "1.0.0"))
    await kube.create(CLUSTERS, ns, cluster_body(ns, "swarm-1.0.0", **cluster))
    names = [f"m{i}" for i in range(machines)]
    for name in names:
        await kube.create(MACHINES, ns, machine_body(ns, name, "worker"))
    return names


async def test_each_write_is_sent_once_however_often_the_cluster_is_planned(kube_api: KubeApi,
                                                                             kube: Kube) -> None:
    ns = kube_api.namespace
    names = await setup(kube, ns, 8)
    sched = scheduler(kube, ns, plan=assign_items)
    async with running(sched), fleet_running(kube, ns, names) as fleet:
        await asyncio.wait_for(fleet.wait(fleet.ready), 30)
        await eventually(lambda: _ready_nodes(kube, ns, 8), what="readyNodes 8")
    term = sched.terms[-1]
    assert term.plans > 8  # status writes of the agents re-planned the cluster many times...
    assert sched.writes["patch lcmmachines"] == 8  # ...yet each machine got its items exactly once
    assert sched.writes["patch lcmclusters/status"] <= term.plans
    events = (await kube.list_objects(EVENTS, ns))["items"]
    assigned = [e for e in events if e["reason"] == "Updated" and e["involvedObject"]["kind"] == "LCMMachine"]
    assert {e["involvedObject"]["name"] for e in assigned} == set(names)
    assert {e["message"] for e in assigned} == {"registered: items assigned"}
    assert all(e["source"]["component"] == "lcm-scheduler" for e in assigned)


async def _ready_nodes(kube: Kube, ns: str, count: int) -> bool:
    cluster = await kube.get(CLUSTERS, ns, "demo")
    return bool(cluster.get("status", {}).get("readyNodes") == count)


async def test_a_patch_the_server_prunes_is_not_sent_again(kube_api: KubeApi, kube: Kube) -> None:
    ns = kube_api.namespace
    await setup(kube, ns, 0)

    def plan(inputs: PlanInput) -> Plan:  # a planner bug: a field the CRD does not have
        return Plan((Patch("lcmclusters", ns, "demo", {"spec": {"noSuchField": "x"}}),), requeue_after=0.05)

    sched = scheduler(kube, ns, plan=plan)
    async with running(sched):
        await eventually(lambda: sched.terms and sched.terms[-1].plans >= 10, what="10 plans")
    assert sched.writes["patch lcmclusters"] == 1


@pytest.mark.simulator("the CRD keeps item names unique (a list-map keyed by name), so a real server "
                        "never stores such a machine; the simulator does not model list-map uniqueness")
async def test_a_machine_whose_items_share_a_name_runs_nothing_says_why_and_the_others_go_on(
        kube_api: KubeApi, kube: Kube) -> None:
    """Go reads such a machine (both items share one status slot), so it is not malformed: its agent refuses
    to run it and says why in status.specError; the scheduler leaves it alone and plans the others."""
    ns = kube_api.namespace
    names = await setup(kube, ns, 2)
    twice = [{"runner": "bash", "name": "x", "version": "1", "phase": "prepare"},
             {"runner": "bash", "name": "x", "version": "2", "phase": "prepare"}]
    await kube.create(MACHINES, ns, machine_body(ns, "bad", "worker", stateItems=twice))
    sched = scheduler(kube, ns, plan=assign_items)
    async with running(sched), fleet_running(kube, ns, [*names, "bad"]) as fleet:
        await asyncio.wait_for(fleet.wait(lambda: fleet.ready(names)), 30)
        await eventually(lambda: _spec_error(kube, ns, "bad"), what="the bad machine's specError")
    bad = await kube.get(MACHINES, ns, "bad")
    assert "duplicate item names ['x']" in bad["status"]["specError"]
    assert "stateItemStatuses" not in bad["status"]  # nothing ran
    assert [i["version"] for i in bad["spec"]["stateItems"]] == ["1", "2"]  # left alone


async def _spec_error(kube: Kube, ns: str, name: str) -> bool:
    return bool((await kube.get(MACHINES, ns, name)).get("status", {}).get("specError"))


def drain_request(ns: str) -> Create:
    return Create("lcmclusterstates", ns, {
        "apiVersion": "lcm.mirantis.com/v1alpha1", "kind": "LCMClusterState",
        "metadata": {"name": "sd-m0", "namespace": ns},
        "spec": {"clusterName": "demo", "type": "swarm-drain", "arg": "m0", "value": "true"}},
        reason="drain m0")


@pytest.mark.simulator("a create refused with 409 on demand")
async def test_a_create_refused_with_a_conflict_is_planned_again(kube_api: KubeApi, kube: Kube,
                                                                 faults: Faults) -> None:
    ns = kube_api.namespace
    await setup(kube, ns, 1)
    faults.error(409, count=1, verb="create", resource="lcmclusterstates")
    plans: list[int] = []

    def plan(inputs: PlanInput) -> Plan:
        plans.append(len(inputs.cluster_states))
        return Plan(() if inputs.cluster_states else (drain_request(ns),))

    sched = scheduler(kube, ns, plan=plan)
    async with running(sched) as task:
        await eventually(lambda: _exists(kube, CLUSTER_STATES, ns, "sd-m0"), what="sd-m0")
        await eventually(lambda: plans[-1] == 1, what="a plan that sees sd-m0")
        assert not task.done()
    assert sched.writes["create lcmclusterstates"] == 1


async def _exists(kube: Kube, res: Any, ns: str, name: str) -> bool:
    try:
        await kube.get(res, ns, name)
    except KubeError:
        return False
    return True


async def test_an_invalid_write_is_reported_and_retried_with_backoff(kube_api: KubeApi, kube: Kube) -> None:
    ns = kube_api.namespace
    await setup(kube, ns, 1)
    planned: list[float] = []

    def plan(inputs: PlanInput) -> Plan:
        planned.append(asyncio.get_running_loop().time())
        return Plan((Patch("lcmmachines", ns, "m0", {"spec": {"type": "mainframe"}}, reason="retype m0"),))

    sched = scheduler(kube, ns, plan=plan)
    async with running(sched) as task:
        await eventually(lambda: _refused(kube, ns), what="a WriteRefused event")
        await eventually(lambda: len(planned) >= 4, what="three re-plans after the refusals")
        assert not task.done()
        gaps = [later - earlier for earlier, later in itertools.pairwise(planned[:4])]
    # Nothing else triggers a plan here (the refused write changed nothing), so each re-plan waited for its
    # retry, drawn from a window twice the last: 0.25-0.5 s, then 0.5-1 s, then 1-2 s. A plan that went
    # round at once, or a backoff that did not grow, falls short of the window's start.
    assert all(gap >= low for gap, low in zip(gaps, (0.25, 0.5, 1.0), strict=True)), gaps
    assert sum(term.writer.failures["patch", "lcmmachines", 422] for term in sched.terms) >= 3  # each refused


async def _refused(kube: Kube, ns: str) -> bool:
    events = (await kube.list_objects(EVENTS, ns))["items"]
    return any(e["reason"] == "WriteRefused" and "retype m0" in e["message"] and "spec.type" in e["message"]
               for e in events)


async def test_writes_are_held_to_the_rate_limit(kube_api: KubeApi, kube: Kube) -> None:
    ns = kube_api.namespace
    names = await setup(kube, ns, 12)

    def plan(inputs: PlanInput) -> Plan:
        return Plan(tuple(Patch("lcmmachines", ns, m.metadata.name or "",
                                {"metadata": {"labels": {"seen": "yes"}}}) for m in inputs.machines))

    sched = scheduler(kube, ns, plan=plan, writes=Throttle(qps=10.0, burst=2))
    async with running(sched):
        started = asyncio.get_running_loop().time()
        async with fleet_running(kube, ns, []):
            await eventually(lambda: sched.writes["patch lcmmachines"] == len(names), what="12 writes")
        elapsed = asyncio.get_running_loop().time() - started
    assert elapsed >= (len(names) - 2) / 10.0 * 0.9  # two at once, then ten per second
    assert sched.writes["patch lcmmachines"] == len(names)


async def test_requeue_after_plans_again_without_any_change(kube_api: KubeApi, kube: Kube) -> None:
    ns = kube_api.namespace
    await setup(kube, ns, 0)
    plans: list[float] = []

    def plan(inputs: PlanInput) -> Plan:
        plans.append(asyncio.get_running_loop().time())
        return Plan((), requeue_after=0.2 if len(plans) < 4 else None)

    async with running(scheduler(kube, ns, plan=plan)):
        await eventually(lambda: len(plans) >= 4, what="4 plans")
        await asyncio.sleep(0.6)
    assert len(plans) == 4
    assert all(b - a >= 0.19 for a, b in itertools.pairwise(plans[1:]))  # the first may follow an event


async def test_one_objects_writes_keep_the_plans_order_and_a_refused_write_stops_the_rest(
        kube_api: KubeApi, kube: Kube) -> None:
    ns = kube_api.namespace
    names = await setup(kube, ns, 24)
    plans = 0

    def label(name: str, value: str) -> Patch:
        return Patch("lcmmachines", ns, name, {"metadata": {"labels": {"step": value}}})

    def plan(inputs: PlanInput) -> Plan:
        nonlocal plans
        plans += 1
        if plans > 1:
            return Plan(())
        refused = Patch("lcmmachines", ns, "m2", {"spec": {"type": "mainframe"}})
        later = tuple(label(name, "late") for name in names[3:])
        return Plan((label("m0", "1"), label("m0", "2"), label("m1", "1"), refused, *later))

    sched = scheduler(kube, ns, plan=plan, writes_in_flight=4)
    async with running(sched):
        await eventually(lambda: plans >= 2, what="a second plan after the refusal")
    machines = {m["metadata"]["name"]: m for m in (await kube.list_objects(MACHINES, ns))["items"]}
    assert machines["m0"]["metadata"]["labels"]["step"] == "2"
    started_anyway = [n for n in names[3:] if machines[n]["metadata"].get("labels", {}).get("step") == "late"]
    assert len(started_anyway) <= 3  # at most the writes already in flight beside the refused one
