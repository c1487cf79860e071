"""Evidence on failure from end to end: the real scheduler flags a machine whose item keeps failing as stuck
(its own rule, ``maxItemAttempts``), and the real agent, told only by that flag on its LCMMachine, gathers
its diagnostics bundle and sends it over the real broker, where ``lcmctl diagnostics`` finds it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent_harness import Node
from conftest import PASSWORDS, kind, listening, telemetry_config
from scheduler_harness import (
    AGENT,
    CLUSTERS,
    RELEASES,
    cluster_body,
    eventually,
    machine_body,
    running,
    scheduler,
)
from test_diagnostics import _lcmctl, _regional_password

from agent.api.models import KAAS_API_VERSION
from agent.daemon.own_machine import LCMMACHINES
from regional.planning.settings import PlanSettings
from testbed.lab.stack.mosquitto import Broker
from testbed.sim.testing import field_of

PATIENCE = 120.0
"""Seconds any wait may take: the host is shared and loaded."""


def _release(node: Node, marker: Path) -> dict[str, Any]:
    engine = node.item("engine", "prepare", playbook="flaky.yml", marker=str(marker))
    return {"apiVersion": KAAS_API_VERSION, "kind": "ClusterRelease", "metadata": {"name": "flaky-1.0.0"},
            "spec": {"version": "1.0.0", "agent": AGENT, "machineTypes": {"control": [engine]}}}


async def test_the_scheduler_flags_a_failing_item_stuck_and_the_agent_sends_its_evidence(
    node: Node, mqtt_broker: Broker, tmp_path: Path,
) -> None:
    ns = node.namespace
    marker = tmp_path / "broken"
    marker.touch()
    await node.admin.create(RELEASES, "", _release(node, marker))
    await node.admin.create(CLUSTERS, ns, cluster_body(ns, "flaky-1.0.0"))
    await node.admin.create(LCMMACHINES, ns, machine_body(ns, node.name, "control", index=0))
    cfg = await telemetry_config(node, mqtt_broker, heartbeat_period=0.5)
    planner = scheduler(node.admin, ns, planning=PlanSettings(max_item_attempts=2))
    async with listening(mqtt_broker) as regional, node.agent(cfg), running(planner):
        await eventually(lambda: field_of(node.admin, LCMMACHINES, ns, node.name, "status",
                                          "lcmOperationStuck"),
                         within=PATIENCE, what="the scheduler flagging the machine stuck")
        sent = await regional.wait_for(kind("diagnostics"), within=PATIENCE, describe="the bundle")

    machine = await node.get()
    engine = machine["status"]["stateItemStatuses"]["engine"]
    assert engine["attempt"] >= 2
    assert engine["exitCode"] not in (0, -1)
    stuck = next(c for c in (await field_of(node.admin, CLUSTERS, ns, "demo", "status", "conditions") or [])
                 if c["type"] == "OperationStuck")
    assert stuck["status"] == "True"
    assert node.name in stuck["message"]
    assert "item engine failed" in stuck["message"]

    bundle = sent.message["bundle"]
    assert (sent.message["trigger"], sent.message["item"]) == ("stuck", "engine")
    assert bundle["task"]["task"] == "refuse while the marker exists"  # from a failed attempt, not the retry
    assert bundle["task"]["event"] == "runner_on_failed"
    assert 1 <= bundle["evidenceAttempt"] <= bundle["attempt"]
    assert PASSWORDS[node.name] not in sent.payload.decode()
    assert json.loads((node.state_dir / "diagnostics" / "latest.json").read_text()) == bundle
    code, out, err = await _lcmctl(mqtt_broker, ns, node.name, _regional_password(tmp_path))
    assert code == 0, err
    assert '"refuse while the marker exists"' in out
