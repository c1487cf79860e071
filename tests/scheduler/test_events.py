"""Kubernetes Events an operator reads in ``kubectl describe``, seen through the API: one Event per change,
its count raised by a retry loop, a new one for a new condition."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
from scheduler_harness import (
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
from scheduler_harness import settings as harness_settings

from agent.adapters.kube import Kube
from agent.api.execution import ItemResult
from agent.api.models import StateItem
from regional.planning.durations import Norm
from regional.planning.settings import PlanSettings
from regional.scheduler.recording import EventRecorder, Involved
from regional.scheduler.runtime import Scheduler
from testbed.fake_agents import SimulatedFleetSettings
from testbed.sim.testing import KubeApi

pytestmark = pytest.mark.kube


async def _events(kube: Kube, ns: str, name: str) -> list[dict[str, Any]]:
    listed = await kube.list_objects(EVENTS, ns)
    return [e for e in listed.get("items", []) if e["involvedObject"]["name"] == name]


async def _cluster(kube: Kube, ns: str, *machines: str) -> None:
    """The release, the cluster ``demo`` and its machines: the first a control machine, the rest workers."""
    await kube.create(RELEASES, "", release_body("swarm-1.0.0", "1.0.0"))
    await kube.create(CLUSTERS, ns, cluster_body(ns, "swarm-1.0.0"))
    for n, name in enumerate(machines):
        body = machine_body(ns, name, "control", index=0) if n == 0 else machine_body(ns, name, "worker")
        await kube.create(MACHINES, ns, body)


def _counts(events: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """(reason, message) → the count the API holds, summed over Events saying it (one each, if folded)."""
    counts: Counter[tuple[str, str]] = Counter()
    for e in events:
        counts[(e["reason"], e["message"])] += e.get("count", 1)
    return counts


async def test_the_same_event_again_raises_the_count_of_the_one_sent_and_a_new_one_is_new(
    kube_api: KubeApi, kube: Kube,
) -> None:
    ns = kube_api.namespace
    recorder = EventRecorder(kube, instance="test", qps=0, burst=1)
    involved = Involved("LCMMachine", ns, "w0")
    await kube.create(MACHINES, ns, machine_body(ns, "w0", "worker"))
    task = asyncio.create_task(recorder.run())
    try:
        for n in range(1, 4):
            recorder.record(involved, "ItemFailed", "item x failed: boom", "Warning")
            await eventually(lambda n=n: recorder.sent == n, what=f"send {n}")  # sent one by one, not folded
        recorder.record(involved, "ItemFailed", "item x failed: another error", "Warning")
        await eventually(lambda: recorder.sent == 4, what="the new message sent")
    finally:
        task.cancel()
    events = await _events(kube, ns, "w0")
    assert len(events) == 2
    same = next(e for e in events if e["message"] == "item x failed: boom")
    assert (same["count"], same["type"], same["reason"]) == (3, "Warning", "ItemFailed")
    first, last = (datetime.fromisoformat(same[k].replace("Z", "+00:00")) for k in ("firstTimestamp",
                                                                                      "lastTimestamp"))
    assert first <= last
    assert next(e for e in events if e is not same)["count"] == 1


def _fails_three_times(machine: str, item: StateItem, attempt: int) -> ItemResult:
    if machine == "w0" and item.name == "docker-engine" and attempt <= 3:
        return ItemResult(exit_code=2, result="failed", message="apt: unable to fetch docker.io")
    return ItemResult(exit_code=0, result="success", message="")


async def test_a_retry_loop_is_one_failure_event_and_one_retry_event_with_their_counts(
    kube_api: KubeApi, kube: Kube,
) -> None:
    ns = kube_api.namespace
    await _cluster(kube, ns, "c0", "w0")

    async def ready() -> bool:
        listed = await kube.list_objects(MACHINES, ns)
        return all((m.get("status") or {}).get("state") == "Ready" for m in listed["items"])

    async with running(scheduler(kube, ns)), fleet_running(kube, ns, ["c0", "w0"], script=_fails_three_times):
        await eventually(ready, within=60, what="both machines Ready")

        async def told() -> bool:
            counts = _counts(await _events(kube, ns, "w0"))
            return counts[("ItemRetried", "item docker-engine is run again after a failure")] == 3 \
                and counts[("ItemFailed", "item docker-engine failed: apt: unable to fetch docker.io")] == 3
        await eventually(told, within=30, what="three failures and three retries told")

    events = await _events(kube, ns, "w0")
    mine = [e for e in events if e["reason"] in ("ItemFailed", "ItemRetried")]
    assert sorted(e["reason"] for e in mine) == ["ItemFailed", "ItemRetried"], "one Event each, counted"
    assert next(e for e in mine if e["reason"] == "ItemFailed")["type"] == "Warning"
    assert not [e for e in await _events(kube, ns, "c0") if e["reason"] in ("ItemFailed", "ItemRetried")]


async def test_a_halted_rollout_is_one_warning_on_the_cluster_and_its_end_one_more(
    kube_api: KubeApi, kube: Kube,
) -> None:
    ns = kube_api.namespace
    await _cluster(kube, ns, "c0", "w0")
    broken = {"w0"}

    def script(machine: str, item: StateItem, attempt: int) -> ItemResult:
        if machine in broken and item.name == "docker-engine":
            return ItemResult(exit_code=2, result="failed", message="apt: unable to fetch docker.io")
        return ItemResult(exit_code=0, result="success", message="")

    async def halted_and_resumed() -> bool:
        counts = _counts(await _events(kube, ns, "demo"))
        return counts[("RolloutResumed", "nothing is stuck any more: the rollout goes on")] == 1

    sched = scheduler(kube, ns, planning=PlanSettings(max_item_attempts=2))
    async with running(sched), fleet_running(kube, ns, ["c0", "w0"], script=script):
        async def halted() -> bool:
            return any(e["reason"] == "RolloutHalted" for e in await _events(kube, ns, "demo"))
        await eventually(halted, within=60, what="the rollout halted")
        broken.clear()  # the mirror is back: the next retry succeeds and the rollout goes on
        await eventually(halted_and_resumed, within=60, what="the rollout resumed")

    cluster_events = [e for e in await _events(kube, ns, "demo") if e["reason"].startswith("Rollout")]
    assert sorted(e["reason"] for e in cluster_events) == ["RolloutHalted", "RolloutResumed"]
    halt = next(e for e in cluster_events if e["reason"] == "RolloutHalted")
    assert halt["type"] == "Warning"
    assert halt["involvedObject"]["kind"] == "LCMCluster"
    assert "w0: item docker-engine failed 2 times or more" in halt["message"]


async def test_an_item_running_past_the_fleets_figure_is_flagged_stuck_by_the_running_scheduler(
    kube_api: KubeApi, kube: Kube,
) -> None:
    ns = kube_api.namespace
    await _cluster(kube, ns, "c0")
    # The fleet says preflight 1.0.0 takes half a second; here every run takes four.
    norms = {("preflight", "1.0.0"): Norm(p95=0.5, samples=50)}
    chosen = harness_settings(ns, planning=PlanSettings(norm_floor=1.0, norm_factor=2.0, norm_samples=20))
    sched = Scheduler(kube, chosen, item_norms=lambda: norms)
    async with running(sched), fleet_running(kube, ns, ["c0"],
                                             settings=SimulatedFleetSettings(item_seconds=4.0)):
        async def flagged() -> bool:
            return bool(((await kube.get(MACHINES, ns, "c0")).get("status") or {}).get("lcmOperationStuck"))
        await eventually(flagged, within=30, what="c0 flagged stuck")
        cluster = await kube.get(CLUSTERS, ns, "demo")
        stuck = next(c for c in cluster["status"]["conditions"] if c["type"] == "OperationStuck")
        assert stuck["message"] == ("c0: item preflight has run for more than 1s; the fleet's p95 for "
                                    "preflight 1.0.0 is 0.5s")
