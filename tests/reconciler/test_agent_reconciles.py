"""The agent with a real lab node: it records the desired state once the machine is Ready, leaves a healthy
node alone (no reconciler process), starts the reconciler on drift and reports each run on the LCMMachine
(condition and Event) and to telemetry, backs off while a node cannot converge, and waits while the node
is drained or an item runs."""

from __future__ import annotations

import asyncio
import calendar
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from reconciler_lab import (
    SwarmLab,
    access,
    agent_settings,
    docker,
    grant_agent_extras,
    release_items,
    token_body,
)

from agent.adapters.engine_checks import observe
from agent.adapters.kube import SECRETS, connect
from agent.daemon.app import Hooks
from agent.daemon.config import AgentSettings, load_config
from agent.daemon.drift_watch import EVENTS
from agent.daemon.own_machine import LCMMACHINES
from testbed.lab.netns.node import LabNode
from testbed.lab.stack.mosquitto import free_port
from testbed.lab.stack.prometheus import fetch, parse, value
from testbed.sim.testing import KubeApi

sys.path.insert(0, str(Path(__file__).parents[1] / "agent"))  # the agent's end-to-end harness, reused
from agent_harness import Node, status

PERIOD = 1.0
RECONCILE = {"check_period": PERIOD, "timeout": 120.0, "backoff_base": 6.0, "backoff_cap": 12.0}


@dataclass
class Runs:
    """What the agent told telemetry, with arrival times (``time.time()``, to compare with API stamps), and
    where it serves its metrics."""

    metrics: str
    events: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, event: str, data: Any, /) -> None:
        self.events.append((time.time(), event, dict(data)))

    def of(self, kind: str) -> list[tuple[float, dict[str, Any]]]:
        return [(at, data) for at, event, data in self.events if event == kind]

    def checks(self, result: str, reason: str = "") -> int:
        """How many checks ended with ``result`` (skipped ones for a reason holding ``reason``)."""
        return sum(1 for _, data in self.of("checked")
                   if data["result"] == result and reason in data.get("reason", ""))


def reconcilers(state_dir: Path) -> list[str]:
    """Processes running ``lcm-agent reconcile`` for this agent (what an operator would look for)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        started_as = {b"reconcile", b"agent.reconciler.converge"} & set(argv)  # by hand, or by the agent
        if started_as and any(str(state_dir).encode() in a for a in argv):
            found.append(cmdline.parent.name)
    return found


async def configure(node: Node, lab_node: LabNode, metrics: str) -> AgentSettings:
    """The harness's config pointed at the lab node, with quick reconciler timings, metrics on
    ``metrics``, and the RBAC a provider grants an agent for its join token and Events."""
    await node.configure(metrics_address=metrics)
    doc = yaml.safe_load(node.config_path.read_text())
    doc.update(agent_settings(lab_node, RECONCILE))
    node.config_path.write_text(yaml.safe_dump(doc))
    await grant_agent_extras(node.admin, node.namespace, f"agent-{node.name}", "worker")
    return load_config(node.config_path, {})


@pytest.fixture
async def worker(kube_api: KubeApi, swarm_lab: SwarmLab, tmp_path: Path) -> AsyncIterator[tuple[Node, Runs]]:
    """The agent of lab node ``w1``, its machine Ready (items run), its desired state recorded."""
    admin = await connect(kubeconfig=kube_api.kubeconfig_path)
    async with admin:
        node = Node(kube_api, admin, tmp_path, name="w1")
        await admin.create(SECRETS, node.namespace, token_body(swarm_lab, "worker"))
        runs = Runs(metrics=f"127.0.0.1:{free_port()}")
        cfg = await configure(node, swarm_lab.node("w1"), runs.metrics)
        await node.create(release_items(swarm_lab, "w1"))
        async with node.agent(cfg, Hooks(on_reconcile=runs)):
            await node.wait_state("Ready", within=90)
            await node.wait_for(lambda o: reconciled(o).get("status") == "True", 30, "Reconciled True")
            yield node, runs


def reconciled(obj: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in status(obj).get("conditions", []) if c["type"] == "Reconciled"), {})


async def wait_until(what: Any, within: float, describe: str) -> None:
    deadline = time.monotonic() + within
    while not what():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {describe}")
        await asyncio.sleep(0.2)


def proxy_running(lab_node: LabNode) -> bool:
    return any(c.state == "running" for c in observe(access(lab_node)).containers)


async def test_a_healthy_node_is_recorded_and_left_alone(worker: tuple[Node, Runs],
                                                        swarm_lab: SwarmLab) -> None:
    node, runs = worker
    record = json.loads((node.state_dir / "desired.json").read_text())
    assert record["membership"]["role"] == "worker"
    assert record["labels"]["values"] == {"zone": "z-w1"}
    assert [c["name"] for c in record["containers"]] == ["node-proxy"]
    assert record["config"]["content"] == swarm_lab.node("w1").config_path.read_text()
    assert reconciled(await node.get())["message"] == "no drift"
    await wait_until(lambda: runs.checks("clean") >= 3, 60, "three clean checks of the engine")
    assert reconcilers(node.state_dir) == []
    assert runs.of("started") == []
    assert runs.checks("drifted") == 0
    samples = parse(await asyncio.to_thread(fetch, runs.metrics))
    assert value(samples, "lcm_agent_drift_checks_total", result="clean") >= 3
    assert value(samples, "lcm_agent_drift_checks_total", result="drifted") == 0


async def test_a_removed_container_is_recreated_and_the_run_reported(worker: tuple[Node, Runs],
                                                                    swarm_lab: SwarmLab) -> None:
    node, runs = worker
    w1 = swarm_lab.node("w1")
    docker(w1, "rm", "--force", "node-proxy")
    await wait_until(lambda: proxy_running(w1), 60, "node-proxy running again")
    obj = await node.wait_for(lambda o: reconciled(o).get("message") == "converged containers", 30,
                              "the run's condition")
    assert reconciled(obj)["status"] == "True"
    [(_, drift)] = runs.of("drift")
    assert drift["components"][0]["component"] == "containers"
    [(_, finished)] = runs.of("finished")
    assert finished["converged"] is True
    events = (await node.admin.list_objects(EVENTS, node.namespace))["items"]
    assert [(e["reason"], e["type"], e["involvedObject"]["name"]) for e in events] == [
        ("Reconciled", "Normal", "w1")]
    await wait_until(lambda: reconcilers(node.state_dir) == [], 10, "the reconciler gone")


async def test_an_unreachable_manager_fails_backs_off_and_recovers(worker: tuple[Node, Runs],
                                                                  swarm_lab: SwarmLab) -> None:
    node, runs = worker
    w1 = swarm_lab.node("w1")
    docker(w1, "swarm", "leave")
    link = [*w1.nsenter("ip", "link", "set", "eth0"), "down"]
    await asyncio.to_thread(subprocess.run, link, check=True)
    try:
        await wait_until(lambda: reconcilers(node.state_dir) != [], 60, "a reconciler process")
        obj = await node.wait_for(lambda o: reconciled(o).get("status") == "False", 120, "Reconciled False")
        condition = reconciled(obj)
        assert condition["reason"] == "ReconcileFailed"
        assert condition["message"].startswith("membership: cannot join the swarm")
        await wait_until(lambda: len(runs.of("finished")) >= 2, 120, "a second attempt")
    finally:
        await asyncio.to_thread(subprocess.run, [*link[:-1], "up"], check=True)
    first, second = runs.of("finished")[:2]
    started = runs.of("started")
    assert (first[1]["attempt"], second[1]["attempt"]) == (1, 2)
    assert started[1][0] - first[0] >= RECONCILE["backoff_base"] / 2  # equal jitter: at least half the window
    warnings = [e for e in (await node.admin.list_objects(EVENTS, node.namespace))["items"]
                if e["type"] == "Warning"]
    assert warnings
    assert all(e["reason"] == "ReconcileFailed" for e in warnings)
    await node.wait_for(lambda o: reconciled(o).get("status") == "True", 120, "Reconciled True again")
    assert observe(access(w1)).swarm_state == "active"


async def test_nothing_is_reconciled_while_drained_or_while_an_item_runs(
        worker: tuple[Node, Runs], swarm_lab: SwarmLab) -> None:
    node, runs = worker
    w1 = swarm_lab.node("w1")
    drained = {"status": {"swarmCordonDrain": "cordondrained"}}
    await node.admin.patch(LCMMACHINES, node.namespace, node.name, drained, subresource="status")
    await wait_until(lambda: runs.checks("skipped", "cordondrained") >= 1, 30,
                     "a check skipped: the node is cordondrained")
    docker(w1, "rm", "--force", "node-proxy")
    # Two checks since the container went: each would have seen the drift.
    skipped = runs.checks("skipped", "cordondrained")
    await wait_until(lambda: runs.checks("skipped", "cordondrained") >= skipped + 2, 30,
                     "two more checks skipped for the drain")
    assert value(parse(await asyncio.to_thread(fetch, runs.metrics)), "lcm_agent_drift_checks_total",
                 result="skipped") >= skipped + 2
    assert runs.of("started") == []
    assert not proxy_running(w1)
    slow = {"runner": "bash", "name": "slow", "version": "1", "phase": "reconfigure",
            "params": {"script": "sleep 4"}}
    machine = await node.get()
    await node.patch_spec({"stateItems": [*machine["spec"]["stateItems"], slow]})
    await node.admin.patch(LCMMACHINES, node.namespace, node.name, {"status": {"swarmCordonDrain": None}},
                           subresource="status")
    slot = await node.wait_slot("slow", lambda s: s.get("exitCode") == 0, 30, "the slow item done")
    await wait_until(lambda: proxy_running(w1), 60, "node-proxy running again")
    finished_at = calendar.timegm(time.strptime(slot["finishedAt"], "%Y-%m-%dT%H:%M:%SZ"))
    assert runs.of("started")[0][0] >= finished_at  # not before the item ended (stamps are truncated)
