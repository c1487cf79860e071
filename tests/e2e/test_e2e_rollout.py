"""The whole product on one host, as the demo runs it (``agent.lab.stack``): the API simulator, lcm-scheduler,
Mosquitto, and three network-namespace nodes (one control, two workers) each with its own dockerd and the
real agent in its namespaces, driving the release's playbooks. From nothing to a three-node swarm; then a
reconfigure (an engine label), a drift the reconciler repairs (a worker's dockerd stopped), and an upgrade
to swarm-1.1.0 that drains each worker. Each stage's wall time is printed (tests/e2e/conftest.py)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from stages import stage

from agent.adapters.kube import Kube, connect
from agent.cli.demo import missing_prerequisites, open_stack
from agent.lab import dockerd
from agent.lab.nodes import session_prefix
from agent.lab.stack import LCMCLUSTERS, LCMCLUSTERSTATES, LCMMACHINES, Rollout, Stack, StackSettings

missing = missing_prerequisites()
pytestmark = pytest.mark.skipif(bool(missing), reason="; ".join(missing))

NS, CONTROL, WORKER_0, WORKER_1 = "demo", "demo-control-0", "demo-worker-0", "demo-worker-1"
PATIENCE = 900.0
"""Seconds a rollout stage may take: some twenty Ansible runs on two cores shared with other work."""
ZONE = "swarm.lcm.mirantis.com/zone"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[Stack, Kube]]:
    # A short reconcile period: the drift stage should not wait the default 30 s for the first check.
    settings = StackSettings(tmp_path / "demo", prefix=session_prefix("e2e"), reconcile={"check_period": 3.0})
    async with open_stack(settings) as (running, sim), await connect(kubeconfig=sim.kubeconfig_path) as kube:
        yield running, kube


def swarm_nodes(stack: Stack) -> dict[str, dict[str, str]]:
    """``docker node ls`` on the control machine's engine, by host name."""
    lines = stack.docker(stack.control_node(), "node", "ls", "--format", "{{json .}}").splitlines()
    return {row["Hostname"]: row for row in map(json.loads, lines)}


def engine_labels(stack: Stack, node: str) -> dict[str, str]:
    """The engine labels the manager sees for ``node`` (placement constraints: ``engine.labels.<key>``)."""
    out = stack.docker(stack.control_node(), "node", "inspect", node, "--format",
                       "{{json .Description.Engine.Labels}}")
    labels: dict[str, str] = json.loads(out) or {}
    return labels


def slots(rollout: Rollout) -> dict[str, dict[str, Any]]:
    """Every machine's ``stateItemStatuses``."""
    return {name: dict((m.get("status") or {}).get("stateItemStatuses") or {})
            for name, m in rollout.machines.items()}


def condition(machine: dict[str, Any], kind: str) -> dict[str, Any]:
    conditions = (machine.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), {})


def reconciled(machine: dict[str, Any]) -> dict[str, Any]:
    return condition(machine, "Reconciled")


async def test_rollout_reconfigure_drift_and_upgrade(stack: tuple[Stack, Kube]) -> None:
    lab, kube = stack

    with stage("boot to every LCMMachine Ready (1.0.0)"):
        await lab.wait(kube, lambda r: r.ready("swarm-1.0.0"), within=PATIENCE)
    # The scheduler's liveness subscriber saw every agent's heartbeats over MQTT.
    await lab.wait(kube, lambda r: all(condition(m, "AgentReachable").get("status") == "True"
                                       for m in r.machines.values()), within=60)
    nodes = swarm_nodes(lab)
    assert set(nodes) == {CONTROL, WORKER_0, WORKER_1}, lab.swarm()
    assert nodes[CONTROL]["ManagerStatus"] == "Leader"
    assert nodes[CONTROL]["Availability"] == "Drain"  # dedicatedControlPlane: no workloads on managers
    for worker in (WORKER_0, WORKER_1):
        assert (nodes[worker]["ManagerStatus"], nodes[worker]["Status"], nodes[worker]["Availability"]) == (
            "", "Ready", "Active")

    before = slots(await lab.look(kube))
    with stage("reconfigure: an engine label on one worker"):
        await kube.patch(LCMMACHINES, NS, WORKER_0, {"metadata": {"labels": {ZONE: "a"}}})
        after = slots(await lab.wait(kube, lambda r: r.ready("swarm-1.0.0") and slots(r)[WORKER_0][
            "node-labels"]["hash"] != before[WORKER_0]["node-labels"]["hash"], within=PATIENCE))
    assert json.loads(lab.node(WORKER_0).config_path.read_text())["labels"] == ["zone=a"]
    # swarmkit refreshes a node's description about every 20 s
    await wait_for(lambda: engine_labels(lab, WORKER_0) == {"zone": "a"}, "the manager to see the label")
    assert engine_labels(lab, WORKER_1) == {}
    changed = {(m, item) for m in before for item in before[m] if before[m][item] != after[m].get(item)}
    assert changed == {(WORKER_0, "node-labels")}, "only that node's node-labels item re-ran"

    worker = lab.node(WORKER_1)
    with stage("drift: a worker's dockerd stopped, reconciled"):
        first = await lab.wait(kube, lambda r: reconciled(r.machines[WORKER_1]).get("status") == "True",
                               within=PATIENCE)  # the agent has recorded its desired state and checked it
        before_drift = reconciled(first.machines[WORKER_1])
        await asyncio.to_thread(subprocess.run, [str(worker.service_script), "stop"], check=True,
                                capture_output=True, timeout=60)
        assert not dockerd.ping(worker)

        def repaired(rollout: Rollout) -> bool:
            now = reconciled(rollout.machines[WORKER_1])
            return now.get("status") == "True" and now != before_drift

        await lab.wait(kube, repaired, within=PATIENCE)
    assert dockerd.ping(worker)
    assert "engine" in reconciled((await lab.look(kube)).machines[WORKER_1])["message"]
    await wait_for(lambda: swarm_nodes(lab)[WORKER_1]["Status"] == "Ready", "the worker back in the swarm")

    seen_drains: set[str] = set()
    seen_marks: set[str] = set()
    with stage("upgrade to swarm-1.1.0 with drains"):
        await kube.patch(LCMCLUSTERS, NS, "demo", {"spec": {"release": "swarm-1.1.0"}})
        watcher = asyncio.ensure_future(watch_drains(lab, kube, seen_drains, seen_marks))
        try:
            await lab.wait(kube, lambda r: r.ready("swarm-1.1.0"), within=PATIENCE)
        finally:
            watcher.cancel()
    assert {f"sd-{WORKER_0}", f"sd-{WORKER_1}"} <= seen_drains, seen_drains
    assert f"sd-{CONTROL}" not in seen_drains  # a dedicated control plane runs nothing to drain
    assert "cordondrained" in seen_marks
    assert (await kube.list_objects(LCMCLUSTERSTATES, NS))["items"] == []  # every drain undone and deleted
    nodes = swarm_nodes(lab)
    for w in (WORKER_0, WORKER_1):
        assert (nodes[w]["Availability"], nodes[w]["Status"]) == ("Active", "Ready")  # undrained
    config = json.loads(worker.config_path.read_text())
    assert config["log-opts"]["max-size"] == "20m"


async def watch_drains(stack: Stack, kube: Kube, drains: set[str], marks: set[str]) -> None:
    """Record every ``sd-`` LCMClusterState and ``swarmCordonDrain`` mark seen while the upgrade runs."""
    while True:
        states = await kube.list_objects(LCMCLUSTERSTATES, NS)
        drains.update(n for s in states["items"] if (n := s["metadata"]["name"]).startswith("sd-"))
        for machine in (await stack.look(kube)).machines.values():
            mark = (machine.get("status") or {}).get("swarmCordonDrain")
            if mark:
                marks.add(mark)
        await asyncio.sleep(0.3)


async def wait_for(check: Callable[[], bool], what: str, within: float = 120.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(1.0)
