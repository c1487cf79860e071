"""Two scheduler replicas never act at once: the Lease decides who writes, a dead leader is replaced within
the lease duration, one cut off from the Lease stops writing before anyone else starts, and a clean stop
hands over at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from scheduler_harness import (
    CLUSTERS,
    LEASES,
    RELEASES,
    cluster_body,
    eventually,
    release_body,
    scheduler,
)

from agent.adapters.kube import Kube, Resource, connect
from agent.kits.timestamps import micro_time
from regional.planning.actions import Patch, Plan, PlanInput
from regional.scheduler.runtime import Scheduler
from testbed.sim.faults import Faults
from testbed.sim.testing import KubeApi, Recorder

pytestmark = pytest.mark.kube

CLUSTER_ROLES = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", namespaced=False)
CLUSTER_ROLE_BINDINGS = Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", namespaced=False)
LEASE = 6
"""Seconds: short for a test, long enough for two GET+PUT round trips on a loaded machine."""


def stamping(identity: str) -> tuple[list[int], object]:
    """A planner that writes who planned, and a count, onto the cluster every 0.2 s: a leader that writes
    continuously, so any overlap with another leader would show in the cluster's history."""
    counter = [0]

    def plan(inputs: PlanInput) -> Plan:
        counter[0] += 1
        stamp = {"metadata": {"annotations": {"writer": identity, "count": str(counter[0])}}}
        return Plan((Patch("lcmclusters", inputs.cluster.metadata.namespace or "", "demo", stamp),),
                    requeue_after=0.2)

    return counter, plan


def replica(kube: Kube, ns: str, identity: str) -> Scheduler:
    _, plan = stamping(identity)
    return scheduler(kube, ns, plan=plan, identity=identity, lease_duration=LEASE)  # type: ignore[arg-type]


def writers(recorder: Recorder) -> list[str]:
    """The writer of each committed version of the cluster, collapsed to runs: ["a", "b"] = a, then b."""
    runs: list[str] = []
    for obj in recorder.versions("demo"):
        writer = obj["metadata"].get("annotations", {}).get("writer")
        if writer and (not runs or runs[-1] != writer):
            runs.append(writer)
    return runs


async def holder(kube: Kube, ns: str) -> str:
    lease = await kube.get(LEASES, ns, "lcm-scheduler")
    return str(lease["spec"].get("holderIdentity") or "")


async def start(s: Scheduler) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stopping = asyncio.Event()
    return stopping, asyncio.create_task(s.run(stopping))


async def setup(kube: Kube, ns: str) -> None:
    await kube.create(RELEASES, "", release_body("swarm-1.0.0", "1.0.0"))
    await kube.create(CLUSTERS, ns, cluster_body(ns, "swarm-1.0.0"))


async def test_a_standby_takes_over_within_the_lease_duration_when_the_leader_dies(
        kube_api: KubeApi, kube: Kube) -> None:
    ns = kube_api.namespace
    await setup(kube, ns)
    async with Recorder(kube, CLUSTERS, ns) as history, Recorder(kube, LEASES, ns) as leases:
        _, a = await start(replica(kube, ns, "a"))
        await eventually(lambda: writers(history) == ["a"], what="a leading")
        stop_b, b = await start(replica(kube, ns, "b"))
        await renewed(leases, "a", 3)  # three retry periods: b campaigned meanwhile, and lost each time
        assert writers(history) == ["a"]  # b waits while a renews
        a.cancel()  # a crash: no release
        await asyncio.gather(a, return_exceptions=True)
        await eventually(lambda: _held_by(kube, ns, "b"), within=3 * LEASE, what="b holding the lease")
        await eventually(lambda: writers(history) == ["a", "b"], within=LEASE, what="b writing")
        stop_b.set()
        await b
    assert await holder(kube, ns) == ""  # b released it on stop
    # Not before a's lease expired (from its last renewal, on the record's own times): b judges expiry from
    # when it saw the record change, which is after a wrote it. How soon after is bench/leader_takeover.py's.
    held = [obj["spec"] for obj in leases.versions("lcm-scheduler")]
    last_of_a = next(spec for spec in reversed(held) if spec["holderIdentity"] == "a")
    first_of_b = next(spec for spec in held if spec["holderIdentity"] == "b")
    round_trip = timedelta(seconds=LEASE / 8)  # b's read that saw a's last renewal may have left before it
    expired = datetime.fromisoformat(last_of_a["renewTime"]) + timedelta(seconds=LEASE) - round_trip
    assert datetime.fromisoformat(first_of_b["acquireTime"]) >= expired
    assert first_of_b["leaseTransitions"] == 1


def holdings(leases: Recorder, identity: str) -> int:
    """How many versions of the Lease name ``identity`` as its holder: its acquisition and each renewal."""
    return sum(obj["spec"].get("holderIdentity") == identity for obj in leases.versions("lcm-scheduler"))


async def renewed(leases: Recorder, identity: str, times: int) -> None:
    """Until ``identity`` has renewed the Lease ``times`` more times: as many retry periods, in which every
    other replica, polling with the same period, had its chances to act."""
    seen = holdings(leases, identity)
    await eventually(lambda: holdings(leases, identity) >= seen + times, within=3 * LEASE,
                     what=f"{identity} renewing {times} times")


async def _held_by(kube: Kube, ns: str, identity: str) -> bool:
    return await holder(kube, ns) == identity


@pytest.mark.simulator("a network partition of one replica: 503s for its lease requests only")
async def test_a_leader_cut_off_from_the_lease_stops_writing_before_the_standby_starts(
        kube_api: KubeApi, kube: Kube, faults: Faults) -> None:
    ns = kube_api.namespace
    await setup(kube, ns)
    clients = {name: await connect(kubeconfig=await _service_account(kube_api, kube, name)) for name in "ab"}
    try:
        async with Recorder(kube, CLUSTERS, ns) as history, Recorder(kube, LEASES, ns) as leases:
            stop_a, a = await start(replica(clients["a"], ns, "a"))
            await eventually(lambda: writers(history) == ["a"], what="a leading")
            stop_b, b = await start(replica(clients["b"], ns, "b"))
            await renewed(leases, "a", 2)  # b is a standby that has seen a renew
            faults.error(503, resource="leases", user=f"system:serviceaccount:{ns}:a")  # a partition
            await eventually(lambda: writers(history) == ["a", "b"], within=3 * LEASE, what="b writing")
            faults.clear()
            await renewed(leases, "b", 3)  # a, healed, campaigned for three retry periods meanwhile
            assert writers(history) == ["a", "b"]  # a healed, yet stays a standby
            assert not a.done()
            stop_a.set()
            stop_b.set()
            await asyncio.gather(a, b)
    finally:
        for client in clients.values():
            await client.close()


async def _service_account(kube_api: KubeApi, kube: Kube, name: str) -> Path:
    """A replica's own identity on the API (so faults can single it out), allowed what a scheduler needs."""
    ns = kube_api.namespace
    path = await kube_api.service_account_kubeconfig(ns, name)
    role = f"{ns}-scheduler"
    if name == "a":
        await kube.create(CLUSTER_ROLES, "", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": role},
            "rules": [{"apiGroups": ["lcm.mirantis.com", "kaas.mirantis.com"], "resources": ["*"],
                       "verbs": ["*"]},
                      {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["*"]},
                      {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}]})
    await kube.create(CLUSTER_ROLE_BINDINGS, "", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": f"{role}-{name}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]})
    return path


async def test_a_clean_stop_releases_the_lease_and_the_standby_takes_over_at_once(
        kube_api: KubeApi, kube: Kube) -> None:
    ns = kube_api.namespace
    await setup(kube, ns)
    async with Recorder(kube, CLUSTERS, ns) as history, Recorder(kube, LEASES, ns) as leases:
        stop_a, a = await start(replica(kube, ns, "a"))
        await eventually(lambda: writers(history) == ["a"], what="a leading")
        stop_b, b = await start(replica(kube, ns, "b"))
        await renewed(leases, "a", 2)  # b is a standby that has seen a renew
        stop_a.set()
        await a
        await eventually(lambda: writers(history) == ["a", "b"], within=LEASE, what="b writing")
        stop_b.set()
        await b
    # No waiting for expiry: b took the Lease as a released it (holder cleared), not as it ran out.
    holders = [obj["spec"]["holderIdentity"] for obj in leases.versions("lcm-scheduler")]
    taken = holders.index("b")
    assert holders[taken - 1] == ""
    assert set(holders[:taken - 1]) == {"a"}
    lease = await kube.get(LEASES, ns, "lcm-scheduler")
    assert lease["spec"]["leaseTransitions"] == 1


async def test_a_leader_whose_last_renewal_it_never_saw_answered_still_releases_on_stop(
        kube_api: KubeApi, kube: Kube) -> None:
    """A renewal cancelled by the stop can land without its answer: the leader's copy of the Lease is then
    one resourceVersion behind, as here, where the renewal is written for it."""
    ns = kube_api.namespace
    await setup(kube, ns)
    async with Recorder(kube, CLUSTERS, ns) as history:
        stop_a, a = await start(replica(kube, ns, "a"))
        await eventually(lambda: writers(history) == ["a"], what="a leading")
        lease = await kube.get(LEASES, ns, "lcm-scheduler")
        renewed_for_a = {**lease["spec"], "renewTime": micro_time(datetime.now(UTC))}
        await kube.replace(LEASES, ns, "lcm-scheduler", {**lease, "spec": renewed_for_a})
        stop_a.set()
        await a
    assert await holder(kube, ns) == ""
