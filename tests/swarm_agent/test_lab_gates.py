"""An upgrade's gates on real swarms: three netns lab nodes deployed by the real scheduler through their
agents (machine_harness.deployed_swarm), then a new release rolled out by the same scheduler — held by a
canary's failure, by a maintenance window in the future (the scheduler's clock moved, nobody sleeping), and
kept by the disruption budget from draining the last replica of a two-replica service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from machine_harness import (
    CLUSTERS,
    CONTROL,
    LAB_RELEASE,
    MACHINES,
    OTHER,
    RELEASES,
    WORKER,
    MakeNode,
    bash_item,
    cluster_status,
    deployed_swarm,
    eventually,
    lab_release,
    swarm_node,
)
from swarm_services import Probe, StateHistory, running_on, web_service

from agent.adapters.kube import Kube
from regional.planning.settings import PlanSettings
from testbed.lab.netns.nodes import Lab
from testbed.sim.testing import Clock

LabFactory = Callable[..., Lab]
NEXT = "swarm-lab-2"
GOOD = lab_release(NEXT, "1.1.0", upgrade_from=[LAB_RELEASE], worker_items=[bash_item("tuning", "true")])
"""The new release: one more item on the workers, so each worker is drained for its upgrade."""
BROKEN = lab_release(NEXT, "1.1.0", upgrade_from=[LAB_RELEASE],
                     worker_items=[bash_item("new-engine", "echo the new engine does not start >&2; exit 1")])


async def _upgrade_to(admin: Kube, ns: str, release: dict[str, Any]) -> None:
    await admin.create(RELEASES, "", release)
    await admin.patch(CLUSTERS, ns, "demo", {"spec": {"release": release["metadata"]["name"]}})


async def _machine(admin: Kube, ns: str, name: str) -> dict[str, Any]:
    return await admin.get(MACHINES, ns, name)


async def _reason(admin: Kube, ns: str, name: str) -> str:
    return str(((await _machine(admin, ns, name)).get("status") or {}).get("waiting", {}).get("reason", ""))


async def _condition(admin: Kube, ns: str, kind: str) -> dict[str, Any]:
    conditions = (await cluster_status(admin, ns)).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), {})


async def _upgraded(admin: Kube, ns: str) -> bool:
    status = await cluster_status(admin, ns)
    return status.get("release") == NEXT and status.get("readyNodes") == 3


async def test_a_release_failing_on_the_canary_pauses_the_rollout_with_the_other_worker_untouched(
    machine: MakeNode, admin: Kube, lab_nodes: LabFactory, tmp_path: Path,
) -> None:
    lab = lab_nodes("ctl-a", "wk0-a", "wk1-a")
    manager = lab["ctl-a"]
    addresses = {WORKER: lab["wk0-a"].address, OTHER: lab["wk1-a"].address}
    # Never stuck (which would halt the rollout as well): only the failure budget stops it.
    async with deployed_swarm(machine, admin, lab, tmp_path,
                              planning=PlanSettings(max_item_attempts=1000)) as (ns, _):
        await admin.patch(CLUSTERS, ns, "demo", {"spec": {"rollout": {"canaryWorkers": 1, "maxFailures": 0}}})
        await _upgrade_to(admin, ns, BROKEN)

        async def spent() -> bool:
            return (await _condition(admin, ns, "FailureBudgetSpent")).get("status") == "True"

        await eventually(spent, "the failure budget spent")
        canaries = [n for n in (WORKER, OTHER) if (await _machine(admin, ns, n))["spec"]["release"] == NEXT]
        assert len(canaries) == 1, canaries
        canary, other = canaries[0], ({WORKER, OTHER} - set(canaries)).pop()
        assert f"touched failed ({canary})" in (await _condition(admin, ns, "FailureBudgetSpent"))["message"]
        # The planner saw the budget spent and said so on the other worker: it had its chance to start it.
        async def held() -> bool:
            return await _reason(admin, ns, other) == "FailureBudgetSpent"

        await eventually(held, "the other worker held")
        assert (await _machine(admin, ns, other))["spec"]["release"] == LAB_RELEASE  # the old spec
        assert swarm_node(manager, addresses[other])["Spec"]["Availability"] == "active"  # never drained
        assert swarm_node(manager, addresses[canary])["Spec"]["Availability"] == "drain"  # drained for it
        assert (await cluster_status(admin, ns))["release"] == LAB_RELEASE


async def test_a_window_in_the_future_holds_the_upgrade_until_the_scheduler_clock_enters_it(
    machine: MakeNode, admin: Kube, lab_nodes: LabFactory, tmp_path: Path,
) -> None:
    lab = lab_nodes("ctl-b", "wk0-b", "wk1-b")
    opening = datetime(2026, 12, 7, 10, tzinfo=UTC)  # a Monday, 10:00 UTC
    clock = Clock()
    clock.set(opening - timedelta(hours=1))
    async with deployed_swarm(machine, admin, lab, tmp_path, clock=clock.now) as (ns, _):
        window = {"days": ["Mon"], "start": "10:00", "end": "11:00"}
        await admin.patch(CLUSTERS, ns, "demo", {"spec": {"rollout": {"windows": [window]}}})
        await _upgrade_to(admin, ns, GOOD)

        async def closed() -> bool:
            return await _reason(admin, ns, CONTROL) == "WindowClosed"

        await eventually(closed, "the control machine held by the closed window")
        waiting = (await _machine(admin, ns, CONTROL))["status"]["waiting"]
        assert waiting["message"].endswith("; the next opens at 2026-12-07T10:00+00:00")
        for name in (CONTROL, WORKER, OTHER):  # the plan that wrote the reason started nobody
            assert (await _machine(admin, ns, name))["spec"]["release"] == LAB_RELEASE
        assert (await cluster_status(admin, ns))["release"] == LAB_RELEASE
        # Two seconds before the opening and a touch to plan again: the plan's requeue brings it back at the
        # opening, and the upgrade goes through.
        clock.set(opening - timedelta(seconds=2))
        await admin.patch(CLUSTERS, ns, "demo", {"metadata": {"annotations": {"test/touched": "1"}}})
        await eventually(lambda: _upgraded(admin, ns), "every machine on the new release")
        for name in (CONTROL, WORKER, OTHER):
            assert (await _machine(admin, ns, name))["spec"]["release"] == NEXT
            assert await _reason(admin, ns, name) == ""


async def test_a_rolling_upgrade_waits_for_the_rescheduled_task_and_the_service_answers_throughout(
    machine: MakeNode, admin: Kube, lab_nodes: LabFactory, tmp_path: Path,
) -> None:
    lab = lab_nodes("ctl-c", "wk0-c", "wk1-c")
    manager = lab["ctl-c"]
    w0, w1 = lab["wk0-c"].address, lab["wk1-c"].address
    async with deployed_swarm(machine, admin, lab, tmp_path) as (ns, _):
        web_service(manager)
        await eventually(lambda: running_on(manager, "web") == {w0: 1, w1: 1}, "web spread over both workers")
        probe = Probe([w0, w1])
        async with StateHistory(admin, ns) as history, probe.probing():
            await eventually(lambda: probe.answered > 0, "the probe's first answer")
            tried, answered = probe.tried, probe.answered
            await _upgrade_to(admin, ns, GOOD)
            await eventually(lambda: _upgraded(admin, ns), "every machine on the new release")
            tried, answered = probe.tried - tried, probe.answered - answered
        drains = list(dict.fromkeys(o["metadata"]["name"] for _, o in history.events
                                    if o["metadata"]["name"].startswith("sd-")))
    assert drains == [f"sd-{WORKER}", f"sd-{OTHER}"] or drains == [f"sd-{OTHER}", f"sd-{WORKER}"], drains
    first, second = (history.statuses(name) for name in drains)
    assert not [s for s in first if "waiting" in s]  # the first drain leaves one replica running
    held = [i for i, s in enumerate(second) if "waiting" in s]
    # Both replicas ran on the second worker after the first's drain: its drain waited for them to run on
    # the first worker again (rebalanced), and only then drained.
    assert held, second
    assert {second[i]["waiting"]["reason"] for i in held} == {"DisruptionBudget"}
    assert "service web: draining would stop" in second[held[0]]["waiting"]["message"]
    drained = [i for i, s in enumerate(second) if s.get("value") == "true"]
    assert drained, second
    assert held[-1] < drained[0]
    assert tried > 0
    assert answered == tried  # not one probe round without an answer
