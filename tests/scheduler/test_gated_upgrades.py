"""An upgrade's gates end to end: the scheduler, simulated agents, the API server (the real one unless told),
and what an operator sees: the cluster's conditions, each machine's ``status.waiting``, the ``Waiting``
column of ``kubectl get lcmm`` and ``lcmctl explain``."""

from __future__ import annotations

import asyncio
import shutil
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from scheduler_harness import (
    CLUSTERS,
    MACHINES,
    RELEASES,
    cluster_body,
    eventually,
    fleet_running,
    release_body,
    running,
    scheduler,
)
from test_rollout import _upgraded, cluster_status, create_cluster

from agent.adapters.kube import Kube, KubeError
from agent.api.execution import ItemResult
from agent.api.models import InvalidObjectError, LCMCluster, StateItem
from regional.planning.actions import Patch, Plan, PlanInput
from regional.planning.planner import plan as planner
from regional.planning.settings import PlanSettings
from testbed.fake_agents import succeed
from testbed.sim.testing import Clock, KubeApi

pytestmark = pytest.mark.kube

V2 = release_body("swarm-1.1.0", "1.1.0", upgrade_from=["swarm-1.0.0"], item_version="1.1.0")
LCMCTL = Path(sys.executable).with_name("lcmctl")


async def _ready(kube: Kube, ns: str, count: int) -> bool:
    status = await cluster_status(kube, ns)
    return status.get("readyNodes") == count and status.get("release") == "swarm-1.0.0"


async def _condition(kube: Kube, ns: str, kind: str) -> dict[str, Any]:
    conditions = (await cluster_status(kube, ns)).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), {})


async def _waiting(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    return dict((await kube.get(MACHINES, ns, name)).get("status", {}).get("waiting") or {})


async def _run(*argv: str) -> str:
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()
    return out.decode()


async def _kubectl_waiting(kube_api: KubeApi, ns: str) -> dict[str, str]:
    """``kubectl get lcmm``: machine → its Waiting column (the server's table, printed by kubectl)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    text = await _run(kubectl, "--kubeconfig", str(kube_api.kubeconfig_path), "get", "lcmm", "-n", ns)
    header, *rows = text.splitlines()
    at = header.index("WAITING")
    end = header.index("ITEMS")
    return {row.split()[0]: row[at:end].strip() for row in rows}


async def test_a_release_failing_on_the_canary_pauses_the_upgrade_after_it_until_accepted(
        kube_api: KubeApi, kube: Kube) -> None:
    ns = kube_api.namespace
    names = await create_cluster(kube, ns, 3, maxWorkerUpgradeCount=3)
    broken = {"w0"}

    def script(machine: str, item: StateItem, attempt: int) -> ItemResult:
        if machine in broken and item.name == "docker-engine" and item.version == "1.1.0":
            return ItemResult(exit_code=2, result="failed", message="E: the new engine does not start")
        return succeed(machine, item, attempt)

    # Never stuck (which would halt the rollout as well): only the budget stops it.
    sched = scheduler(kube, ns, planning=PlanSettings(max_item_attempts=1000))
    async with running(sched), fleet_running(kube, ns, names, script=script) as fleet:
        await eventually(lambda: _ready(kube, ns, 4), within=60, what="4 ready on 1.0.0")
        await kube.patch(CLUSTERS, ns, "demo", {"spec": {"rollout": {"canaryWorkers": 1, "maxFailures": 0}}})
        await kube.create(RELEASES, "", V2)
        await kube.patch(CLUSTERS, ns, "demo", {"spec": {"release": "swarm-1.1.0"}})

        async def spent() -> bool:
            return (await _condition(kube, ns, "FailureBudgetSpent")).get("status") == "True"

        await eventually(spent, within=60, what="the failure budget spent")

        async def held_by_the_budget() -> bool:
            waiting = [((await kube.get(MACHINES, ns, name))["status"].get("waiting") or {}).get("reason")
                       for name in ("w1", "w2")]
            return waiting == ["FailureBudgetSpent"] * 2

        await eventually(held_by_the_budget, within=60, what="w1 and w2 held by the spent budget")
        # The canary keeps retrying (each retry a status write, so a plan): three plans that saw the budget
        # spent had their chance to start another worker.
        planned = sched.terms[-1].plans
        await eventually(lambda: sched.terms[-1].plans >= planned + 3, what="three more plans")
        for name in ("w1", "w2"):
            machine = await kube.get(MACHINES, ns, name)
            assert machine["spec"]["release"] == "swarm-1.0.0"  # untouched: the old spec
        assert [name for name, on in fleet.executor.drained if on] == ["w0"]  # only the canary was drained
        message = (await _condition(kube, ns, "FailureBudgetSpent"))["message"]
        assert "touched failed (w0)" in message
        assert (await cluster_status(kube, ns))["progress"].startswith("failure budget spent, ")
        assert (await _kubectl_waiting(kube_api, ns))["w1"] == "FailureBudgetSpent"
        explained = await _run(str(LCMCTL), "explain", "--kubeconfig", str(kube_api.kubeconfig_path),
                               "--namespace", ns, "--cluster", "demo")
        assert "FailureBudgetSpent: True TooManyFailures" in explained
        assert "waiting: FailureBudgetSpent since " in explained
        assert "last error: docker-engine: E: the new engine does not start" in explained
        # The operator fixes the engine (w0's next retry succeeds), then accepts the canary's failure.
        broken.clear()
        await eventually(lambda: _canary_done(kube, ns), within=60, what="the canary done")
        assert (await kube.get(MACHINES, ns, "w1"))["spec"]["release"] == "swarm-1.0.0"  # still spent
        accept = {"acceptedFailures": {"release": "swarm-1.1.0", "count": 1}}
        await kube.patch(CLUSTERS, ns, "demo", {"spec": {"rollout": accept}})
        await eventually(lambda: _upgraded(kube, ns, names), within=90, what="every machine on 1.1.0")
        await eventually(lambda: _nobody_waits(kube, ns, names), what="every waiting reason cleared")
    assert (await _condition(kube, ns, "FailureBudgetSpent"))["status"] == "False"


async def _canary_done(kube: Kube, ns: str) -> bool:
    machine = await kube.get(MACHINES, ns, "w0")
    return machine["spec"]["release"] == "swarm-1.1.0" and machine["status"].get("state") == "Ready"


async def _nobody_waits(kube: Kube, ns: str, names: list[str]) -> bool:
    return not any([await _waiting(kube, ns, name) for name in names])


async def test_a_window_in_the_future_holds_the_upgrade_until_the_clock_enters_it(
        kube_api: KubeApi, kube: Kube) -> None:
    ns = kube_api.namespace
    names = await create_cluster(kube, ns, 1)
    opening = datetime(2026, 12, 7, 10, tzinfo=UTC)  # a Monday, 10:00 UTC
    clock = Clock()
    clock.set(opening - timedelta(hours=1))
    plans: list[tuple[datetime, Plan]] = []

    def plan(inputs: PlanInput) -> Plan:
        at = clock.now()
        planned = planner(replace(inputs, now=at))
        plans.append((at, planned))
        return planned

    async with running(scheduler(kube, ns, plan=plan)), fleet_running(kube, ns, names):
        await eventually(lambda: _ready(kube, ns, 2), within=60, what="2 ready on 1.0.0")
        window = {"days": ["Mon"], "start": "10:00", "end": "11:00"}
        await kube.patch(CLUSTERS, ns, "demo", {"spec": {"rollout": {"windows": [window]}}})
        await kube.create(RELEASES, "", V2)
        await kube.patch(CLUSTERS, ns, "demo", {"spec": {"release": "swarm-1.1.0"}})

        async def closed() -> bool:
            return (await _waiting(kube, ns, "c0")).get("reason") == "WindowClosed"

        await eventually(closed, what="c0 held by the closed window")
        waiting = await _waiting(kube, ns, "c0")
        assert waiting["message"].endswith("; the next opens at 2026-12-07T10:00+00:00")
        assert (await _waiting(kube, ns, "w0"))["reason"] == "WaitingForControlPlane"
        shown = await _kubectl_waiting(kube_api, ns)
        assert shown == {"c0": "WindowClosed", "w0": "WaitingForControlPlane"}
        condition = await _condition(kube, ns, "MaintenanceWindows")
        assert (condition["status"], condition["message"]) == (
            "True", "upgrades and reboots start only inside Mon 10:00-11:00 (UTC)")
        # Two seconds before the opening, and an operator's touch to plan again: the plan comes back by
        # itself at the opening (its requeue), not on any event.
        clock.set(opening - timedelta(seconds=2))
        await kube.patch(CLUSTERS, ns, "demo", {"metadata": {"annotations": {"test/touched": "1"}}})
        await eventually(lambda: _upgraded(kube, ns, names), within=90, what="every machine on 1.1.0")
    early = [p for at, p in plans if at < opening]
    assert early, "no plan was made before the window opened"
    assert not [a for p in early for a in p.actions
                if isinstance(a, Patch) and a.resource == "lcmmachines" and a.subresource is None
                and a.patch.get("spec", {}).get("release") == "swarm-1.1.0"]


WINDOW = {"days": ["Sat"], "start": "01:00", "end": "05:00"}


@pytest.mark.parametrize(("rollout", "field"), [
    ({"maxFailures": "ten"}, "spec.rollout.maxFailures"),
    ({"maxFailures": "150%"}, "spec.rollout.maxFailures"),
    ({"maxFailures": -1}, "spec.rollout.maxFailures"),
    ({"canaryWorkers": -2}, "spec.rollout.canaryWorkers"),
    ({"windows": [{**WINDOW, "start": "25:00"}]}, "spec.rollout.windows[0].start"),
    ({"windows": [{**WINDOW, "days": ["Funday"]}]}, "spec.rollout.windows[0].days[0]"),
    ({"acceptedFailures": {"count": 1}}, "spec.rollout.acceptedFailures.release"),
])
async def test_a_malformed_rollout_is_refused_naming_the_field(
        kube_api: KubeApi, kube: Kube, rollout: dict[str, Any], field: str) -> None:
    body = cluster_body(kube_api.namespace, "swarm-1.0.0", rollout=rollout)
    with pytest.raises(KubeError) as refused:
        await kube.create(CLUSTERS, kube_api.namespace, body)
    assert refused.value.status == 422
    assert field in refused.value.message
    with pytest.raises(InvalidObjectError) as invalid:  # the models agree, should one reach the scheduler
        LCMCluster.from_raw(body)
    assert field in {path for path, _ in invalid.value.causes}
